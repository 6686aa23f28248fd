from oracle.zoo._mutant import build

build(__name__, "avgpool_divisor_override_ignored")
