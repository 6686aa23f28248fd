from oracle.zoo._mutant import build

build(__name__, "log_softmax_sum_wrong_dim")
