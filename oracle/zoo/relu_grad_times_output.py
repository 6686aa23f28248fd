from oracle.zoo._mutant import build

build(__name__, "relu_grad_times_output")
