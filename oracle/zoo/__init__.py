"""The bug zoo: one mutant of refimpl per classic mistake, to verify the verifier.

Each module ``oracle.zoo.<mistake name>`` is refimpl with exactly one backward
rule replaced by the mistake's (see ``oracle.mistakes``), and is an
implementation of the contract::

    bpcheck verify oracle.zoo.conv_unflipped_filter
    pytest --impl=oracle.zoo.conv_unflipped_filter

``tests/test_zoo.py`` runs the property suite on every mutant and requires it
to fail with the mistake named in a hint; ``python -m oracle.zoo.report``
prints, per mutant, which check kills it and how fast.
"""

from __future__ import annotations

from oracle.mistakes import MISTAKES

MUTANTS: dict[str, str] = {f"oracle.zoo.{name}": name for name in MISTAKES}
"""Module name of each mutant -> the name of the mistake it carries (``oracle.mistakes.MISTAKES``)."""
