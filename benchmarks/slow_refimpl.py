"""refimpl, ten times slower: every function of the contract computes its result ten times.

A stand-in for a student's NumPy implementation that is correct but slow, so that
``benchmarks/time_to_verdict.py`` can say how long such a module waits for its
verdict. The ten calls are identical, so the answers (and the verdict) are refimpl's.
"""

from __future__ import annotations

import functools

import refimpl

#: how many times each call is computed
SLOWDOWN = 10


def _slowed(rule):
    @functools.wraps(rule)
    def slow(*args, **kwargs):
        for _ in range(SLOWDOWN - 1):
            rule(*args, **kwargs)
        return rule(*args, **kwargs)

    return slow


for _op in refimpl.CONTRACT:
    for _name in (_op, f"{_op}_backward"):
        globals()[_name] = _slowed(getattr(refimpl, _name))
