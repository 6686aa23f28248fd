from oracle.zoo._mutant import build

build(__name__, "avgpool_overlap_overwrite")
