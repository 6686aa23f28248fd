from oracle.zoo._mutant import build

build(__name__, "avgpool_count_include_pad_ignored")
