from oracle.zoo._mutant import build

build(__name__, "flatten_column_major")
