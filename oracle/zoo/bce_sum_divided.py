from oracle.zoo._mutant import build

build(__name__, "bce_sum_divided")
