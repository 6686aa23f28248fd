from oracle.zoo._mutant import build

build(__name__, "conv1d_grad_weight_dilation_ignored")
