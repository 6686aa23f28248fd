from oracle.zoo._mutant import build

build(__name__, "ln_mean_term_dropped")
