from oracle.zoo._mutant import build

build(__name__, "conv3d_dilation_axes_swapped")
