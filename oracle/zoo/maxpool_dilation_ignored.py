from oracle.zoo._mutant import build

build(__name__, "maxpool_dilation_ignored")
