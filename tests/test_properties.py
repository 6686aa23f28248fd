"""The property suite: one test per op x check x dtype, generated from the op records (see oracle/suite.py)."""

from oracle.suite import TESTS

globals().update(TESTS)
