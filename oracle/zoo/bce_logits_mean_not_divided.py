from oracle.zoo._mutant import build

build(__name__, "bce_logits_mean_not_divided")
