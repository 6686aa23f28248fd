from oracle.zoo._mutant import build

build(__name__, "conv_stride_axes_swapped")
