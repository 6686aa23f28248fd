from oracle.zoo._mutant import build

build(__name__, "conv1d_grad_x_stride_not_dilated")
