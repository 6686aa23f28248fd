from oracle.zoo._mutant import build

build(__name__, "bn_grad_weight_without_xhat")
