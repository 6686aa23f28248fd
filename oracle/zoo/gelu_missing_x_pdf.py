from oracle.zoo._mutant import build

build(__name__, "gelu_missing_x_pdf")
