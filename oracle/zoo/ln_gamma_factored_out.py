from oracle.zoo._mutant import build

build(__name__, "ln_gamma_factored_out")
