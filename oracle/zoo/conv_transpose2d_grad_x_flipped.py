from oracle.zoo._mutant import build

build(__name__, "conv_transpose2d_grad_x_flipped")
