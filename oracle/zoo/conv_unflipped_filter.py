from oracle.zoo._mutant import build

build(__name__, "conv_unflipped_filter")
