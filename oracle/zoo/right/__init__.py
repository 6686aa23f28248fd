"""The other half of the zoo: implementations that are right but compute differently, and must never FAIL.

The bug zoo (``oracle.zoo``) measures that wrong rules are caught. This package
measures that right rules pass: each module ``oracle.zoo.right.<name>`` is
refimpl with one op, forward *and* backward, replaced by a correct alternative
formula or algorithm (FFT convolution, einsum, im2col accumulating in float32,
plain loops, strided views, summed-area tables, the sigmoid through tanh or
logaddexp, BCE through ``log(1 - p)`` or ``logaddexp`` ...), written
independently of refimpl's. Each is an implementation of the contract::

    bpcheck verify oracle.zoo.right.conv_fft
    pytest --impl=oracle.zoo.right.conv_fft

A FAIL on any of them is a false alarm of the verifier (a tolerance that
mistakes rounding for a wrong rule), or a bug of the counterpart.
``oracle.zoo.right.measure`` runs every check of the swapped op on each, in
both dtypes; ``tests/test_counterparts.py`` requires no FAIL;
``python -m oracle.zoo.report`` prints both halves.
"""

from __future__ import annotations

#: module name of each counterpart -> the op it computes differently
COUNTERPARTS: dict[str, str] = {
    f"oracle.zoo.right.{name}": op
    for name, op in [
        ("conv_fft", "conv2d"),
        ("conv_einsum", "conv2d"),
        ("conv_im2col_f32", "conv2d"),
        ("linear_einsum", "linear"),
        ("maxpool_strided", "max_pool2d"),
        ("maxpool_loops", "max_pool2d"),
        ("avgpool_loops", "avg_pool2d"),
        ("avgpool_cumsum", "avg_pool2d"),
        ("relu_heaviside", "relu"),
        ("sigmoid_tanh", "sigmoid"),
        ("sigmoid_logaddexp", "sigmoid"),
        ("bce_log1mp", "binary_cross_entropy"),
        ("bce_logits_logaddexp", "binary_cross_entropy_with_logits"),
        ("bce_logits_rearranged", "binary_cross_entropy_with_logits"),
        ("tanh_sigmoid", "tanh"),
        ("leaky_relu_maxmin", "leaky_relu"),
        ("gelu_erfc", "gelu"),
        ("adaptive_loops", "adaptive_avg_pool2d"),
        ("log_softmax_logsumexp", "log_softmax"),
        ("cross_entropy_jacobian", "cross_entropy"),
        ("conv1d_fft", "conv1d"),
        ("conv3d_fft", "conv3d"),
        ("conv_transpose2d_fft", "conv_transpose2d"),
        ("batch_norm_chain_rule", "batch_norm"),
        ("layer_norm_jacobian", "layer_norm"),
    ]
}
