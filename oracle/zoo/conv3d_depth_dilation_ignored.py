from oracle.zoo._mutant import build

build(__name__, "conv3d_depth_dilation_ignored")
