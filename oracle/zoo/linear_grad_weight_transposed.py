from oracle.zoo._mutant import build

build(__name__, "linear_grad_weight_transposed")
