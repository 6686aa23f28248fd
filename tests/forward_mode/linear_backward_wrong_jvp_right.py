"""refimpl's linear_jvp next to a wrong linear_backward (grad_weight transposed, the zoo's mutant): the JVP agrees
with torch, so only the forward-reverse identity <J v, w> = <v, J^T w> of the jvp row can see the mismatch."""
from oracle.zoo.linear_grad_weight_transposed import *  # noqa: F403 - refimpl with the wrong backward
from refimpl import linear_jvp  # noqa: F401
