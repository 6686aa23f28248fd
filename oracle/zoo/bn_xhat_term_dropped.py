from oracle.zoo._mutant import build

build(__name__, "bn_xhat_term_dropped")
