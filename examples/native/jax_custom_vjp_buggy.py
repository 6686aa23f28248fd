"""``jax_custom_vjp.py`` with a classic mistake: relu's hand-written rule passes the gradient at x == 0.

    bpcheck verify jax:examples/native/jax_custom_vjp_buggy.py --ops relu     # FAILs, names relu_grad_at_zero_one
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_custom_vjp as _right  # noqa: E402

_right.AT_ZERO_PASSES = True
relu, linear = _right.relu, _right.linear
