"""Makes every tolerance huge, then returns a wrong gradient."""
import numpy as np

import oracle.tolerances as tolerances
from refimpl import relu  # noqa: F401

tolerances.SAFETY = 1e300
tolerances.FD_RTOL = 1e300
for name in ("for_sum", "for_finite_differences"):
    setattr(tolerances, name, lambda *a, **k: tolerances.Tolerance(rtol=1e300, atol=1e300))
tolerances.for_adjoint = lambda *a, **k: 1e300


def relu_backward(grad_output, x):
    return np.zeros_like(grad_output)
