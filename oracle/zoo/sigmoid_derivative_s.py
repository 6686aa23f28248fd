from oracle.zoo._mutant import build

build(__name__, "sigmoid_derivative_s")
