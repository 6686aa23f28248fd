from oracle.zoo._mutant import build

build(__name__, "cross_entropy_no_max_shift")
