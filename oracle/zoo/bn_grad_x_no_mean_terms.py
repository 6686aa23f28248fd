from oracle.zoo._mutant import build

build(__name__, "bn_grad_x_no_mean_terms")
