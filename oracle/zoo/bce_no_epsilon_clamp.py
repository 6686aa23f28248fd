from oracle.zoo._mutant import build

build(__name__, "bce_no_epsilon_clamp")
