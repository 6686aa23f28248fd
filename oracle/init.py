"""``bpcheck init --style layers [FILE]``: write the commented mapping template for layer objects.

Layer objects (a class per layer with ``forward(x)`` and ``backward(dout)``, the parameter gradients left in
attributes) need a few lines saying which class is which op and which attribute holds what. This writes
them, commented, to FILE (default ``bpcheck-layers.toml``); edit the names, then
``bpcheck verify --style layers FILE``. An existing FILE is never overwritten (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write the mapping template for checking layer objects (--style layers)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", choices=("layers",), required=True,
                        help="the API to write a mapping for (layer objects need one; cs231n and dls need none)")
    parser.add_argument("file", nargs="?", default="bpcheck-layers.toml", metavar="FILE",
                        help="where to write it (default: bpcheck-layers.toml)")


def run(args: argparse.Namespace) -> int:
    from oracle.untrusted.styles.layers import TEMPLATE  # noqa: PLC0415 - the mapping format lives with its reader

    path = Path(args.file)
    if path.exists():
        print(f"bpcheck init: {path} exists; not overwritten", file=sys.stderr)
        return 2
    try:
        path.write_text(TEMPLATE)
    except OSError as exc:
        print(f"bpcheck init: cannot write {path}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: edit the class and attribute names, then: bpcheck verify --style layers {path}")
    return 0
