from oracle.zoo._mutant import build

build(__name__, "bce_grad_sign_flipped")
