from oracle.zoo._mutant import build

build(__name__, "avgpool_padding_offset_ignored")
