from oracle.zoo._mutant import build

build(__name__, "conv_padding_cropped_at_end")
