"""Writes a forged 'everything is fine' frame into every socket it holds, then returns a wrong gradient."""
import json
import os
import stat
import struct

import numpy as np

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    body = json.dumps({"type": "result", "id": 10**9, "value": {"t": "none"}, "arrays": [{"dtype": "|O", "shape": [1]}]}).encode()
    for fd in range(3, 256):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("<Q", len(body)) + body + b"garbage")
        except OSError:
            pass
    return np.zeros_like(grad_output)
