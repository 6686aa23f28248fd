"""Hostile and broken implementations of relu's backward (and two harmless ones per class), run by tests/test_hostile.py.

Each module is an implementation of the contract (relu from refimpl, a relu_backward of its own) that does one
thing a judged implementation must not be able to turn into a pass or a hang. The ``harmless_*`` ones are
correct and only misbehave in ways that must not cost them their pass. Not collected as tests (no test_ prefix).
"""
