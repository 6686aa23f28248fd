"""torch.nn.functional wrapped to the bpcheck contract (a third-party library, as a user would wrap it)."""
import numpy as np
import torch
import torch.nn.functional as F

def _fwd(fn, arrays, **cfg):
    ts = [None if a is None else torch.from_numpy(np.array(a)) for a in arrays]
    return fn(*ts, **cfg).numpy()

def _bwd(fn, g, arrays, diff, **cfg):
    ts = [None if a is None else torch.from_numpy(np.array(a)).requires_grad_(i in diff) for i, a in enumerate(arrays)]
    out = fn(*ts, **cfg)
    out.backward(torch.from_numpy(np.array(g)))
    grads = [None if ts[i] is None else (ts[i].grad.numpy() if ts[i].grad is not None else np.zeros_like(arrays[i])) for i in diff]
    return grads[0] if len(grads) == 1 else tuple(grads)

def conv2d(x, weight, bias=None, **cfg): return _fwd(F.conv2d, [x, weight, bias], **cfg)
def conv2d_backward(g, x, weight, bias=None, **cfg): return _bwd(F.conv2d, g, [x, weight, bias], (0, 1, 2), **cfg)
def max_pool2d(x, **cfg): return _fwd(F.max_pool2d, [x], **cfg)
def max_pool2d_backward(g, x, **cfg): return _bwd(F.max_pool2d, g, [x], (0,), **cfg)
def avg_pool2d(x, **cfg): return _fwd(F.avg_pool2d, [x], **cfg)
def avg_pool2d_backward(g, x, **cfg): return _bwd(F.avg_pool2d, g, [x], (0,), **cfg)
def linear(x, weight, bias=None): return _fwd(F.linear, [x, weight, bias])
def linear_backward(g, x, weight, bias=None): return _bwd(F.linear, g, [x, weight, bias], (0, 1, 2))
def relu(x): return _fwd(F.relu, [x])
def relu_backward(g, x): return _bwd(F.relu, g, [x], (0,))
def sigmoid(x): return _fwd(torch.sigmoid, [x])
def sigmoid_backward(g, x): return _bwd(torch.sigmoid, g, [x], (0,))
def flatten(x): return _fwd(lambda t: torch.flatten(t, 1), [x])
def flatten_backward(g, x): return _bwd(lambda t: torch.flatten(t, 1), g, [x], (0,))
def binary_cross_entropy(input, target, **cfg): return _fwd(F.binary_cross_entropy, [input, target], **cfg)
def binary_cross_entropy_backward(g, input, target, **cfg): return _bwd(F.binary_cross_entropy, g, [input, target], (0,), **cfg)
def binary_cross_entropy_with_logits(input, target, **cfg): return _fwd(F.binary_cross_entropy_with_logits, [input, target], **cfg)
def binary_cross_entropy_with_logits_backward(g, input, target, **cfg): return _bwd(F.binary_cross_entropy_with_logits, g, [input, target], (0,), **cfg)
def softmax(x, **cfg): return _fwd(F.softmax, [x], **cfg)
def softmax_backward(g, x, **cfg): return _bwd(F.softmax, g, [x], (0,), **cfg)
def log_softmax(x, **cfg): return _fwd(F.log_softmax, [x], **cfg)
def log_softmax_backward(g, x, **cfg): return _bwd(F.log_softmax, g, [x], (0,), **cfg)
def cross_entropy(input, target, **cfg): return _fwd(F.cross_entropy, [input, target], **cfg)
def cross_entropy_backward(g, input, target, **cfg): return _bwd(F.cross_entropy, g, [input, target], (0,), **cfg)
def mse_loss(input, target, **cfg): return _fwd(F.mse_loss, [input, target], **cfg)
def mse_loss_backward(g, input, target, **cfg): return _bwd(F.mse_loss, g, [input, target], (0,), **cfg)
def conv1d(x, weight, bias=None, **cfg): return _fwd(F.conv1d, [x, weight, bias], **cfg)
def conv1d_backward(g, x, weight, bias=None, **cfg): return _bwd(F.conv1d, g, [x, weight, bias], (0, 1, 2), **cfg)
def conv3d(x, weight, bias=None, **cfg): return _fwd(F.conv3d, [x, weight, bias], **cfg)
def conv3d_backward(g, x, weight, bias=None, **cfg): return _bwd(F.conv3d, g, [x, weight, bias], (0, 1, 2), **cfg)
def conv_transpose2d(x, weight, bias=None, **cfg): return _fwd(F.conv_transpose2d, [x, weight, bias], **cfg)
def conv_transpose2d_backward(g, x, weight, bias=None, **cfg): return _bwd(F.conv_transpose2d, g, [x, weight, bias], (0, 1, 2), **cfg)
def adaptive_avg_pool2d(x, **cfg): return _fwd(F.adaptive_avg_pool2d, [x], **cfg)
def adaptive_avg_pool2d_backward(g, x, **cfg): return _bwd(F.adaptive_avg_pool2d, g, [x], (0,), **cfg)
def _bn(x, w, b, *, eps): return F.batch_norm(x, None, None, w, b, training=True, eps=eps)
def batch_norm(x, weight=None, bias=None, **cfg): return _fwd(_bn, [x, weight, bias], **cfg)
def batch_norm_backward(g, x, weight=None, bias=None, **cfg): return _bwd(_bn, g, [x, weight, bias], (0, 1, 2), **cfg)
def _ln(x, w, b, *, normalized_shape, eps): return F.layer_norm(x, normalized_shape, w, b, eps)
def layer_norm(x, weight=None, bias=None, **cfg): return _fwd(_ln, [x, weight, bias], **cfg)
def layer_norm_backward(g, x, weight=None, bias=None, **cfg): return _bwd(_ln, g, [x, weight, bias], (0, 1, 2), **cfg)
def tanh(x): return _fwd(torch.tanh, [x])
def tanh_backward(g, x): return _bwd(torch.tanh, g, [x], (0,))
def leaky_relu(x, **cfg): return _fwd(F.leaky_relu, [x], **cfg)
def leaky_relu_backward(g, x, **cfg): return _bwd(F.leaky_relu, g, [x], (0,), **cfg)
def gelu(x, **cfg): return _fwd(F.gelu, [x], **cfg)
def gelu_backward(g, x, **cfg): return _bwd(F.gelu, g, [x], (0,), **cfg)
