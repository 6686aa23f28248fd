from oracle.zoo._mutant import build

build(__name__, "bn_unbiased_variance")
