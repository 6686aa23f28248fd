from oracle.zoo._mutant import build

build(__name__, "leaky_relu_negative_side_zero")
