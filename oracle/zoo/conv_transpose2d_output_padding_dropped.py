from oracle.zoo._mutant import build

build(__name__, "conv_transpose2d_output_padding_dropped")
