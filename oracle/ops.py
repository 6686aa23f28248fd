"""One record per op of the contract. Every test, oracle call and report is generated from these.

The records live with their strategies, edge examples and mistakes, one module
per op family in ``oracle.cases`` (adding an op means adding its ``OpSpec``
and its rules there; the property suite, ``bpcheck verify`` and the corpus
pick it up with no other change). This module keeps the import path
``oracle.ops`` the rest of the harness uses.
"""

from oracle.case import Case
from oracle.cases import SPECS, spec
from oracle.cases.record import OpSpec, positional

__all__ = ["SPECS", "Case", "OpSpec", "positional", "spec"]
