from oracle.zoo._mutant import build

build(__name__, "conv_dilation_axes_swapped")
