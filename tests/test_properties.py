"""The property suite: every op x check x dtype, generated from the op records (see oracle/suite.py)."""

from oracle.suite import test_property  # noqa: F401 - collected here
