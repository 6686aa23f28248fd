from oracle.zoo._mutant import build

build(__name__, "conv3d_grad_x_groups_ignored")
