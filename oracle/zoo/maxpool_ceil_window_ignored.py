from oracle.zoo._mutant import build

build(__name__, "maxpool_ceil_window_ignored")
