"""Correct, but changes every piece of global state it can: NumPy errors raise, torch's default dtype and
threads, random seeds, warnings are errors, the environment and the working directory."""
import os
import random
import warnings

import numpy as np
import torch

from refimpl import relu, relu_backward  # noqa: F401

np.seterr(all="raise")
torch.set_default_dtype(torch.float32)
torch.set_num_threads(1)
torch.manual_seed(0)
np.random.seed(0)
random.seed(0)
warnings.simplefilter("error")
os.environ["BPCHECK_CALL_TIMEOUT"] = "0.001"
os.environ["CI"] = ""
os.chdir("/")
