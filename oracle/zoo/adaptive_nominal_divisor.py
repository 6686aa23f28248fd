from oracle.zoo._mutant import build

build(__name__, "adaptive_nominal_divisor")
