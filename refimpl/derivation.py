"""The contract with conv2d's backward and the pools exactly as the derivation states them.

Everything is ``refimpl``, except ``conv2d_backward``: the readable rule of
``refimpl.convolution`` (a stride-s backward is the stride-1 backward of the
gradient dilated by s; dW a correlation of the input with it; dX a full
correlation with the flipped filter), instead of ``refimpl.fast``'s; and the
pools, from ``refimpl.pooling_derivation`` (one strided block per kernel
offset) instead of ``refimpl.pooling``'s phase layout. So the whole suite can
check the rules themselves: ``bpcheck verify refimpl.derivation``.
"""

from refimpl import *  # noqa: F401,F403 - the rest of the contract, unchanged
from refimpl.convolution import conv1d_backward, conv2d_backward, conv3d_backward  # noqa: F401 - the derivation's rule
from refimpl.pooling_derivation import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward  # noqa: F401
