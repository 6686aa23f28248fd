from oracle.zoo._mutant import build

build(__name__, "conv1d_unflipped_filter")
