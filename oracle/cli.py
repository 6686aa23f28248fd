"""The ``bpcheck`` command line: one subcommand per module.

Each subcommand is a module with ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int`` (the exit code). To add one, import its module and
append ``(name, module)`` to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys

from oracle import corpus, demo, fuzz, init, verify
from oracle.network import cli as verify_network

SUBCOMMANDS = [
    ("demo", demo),
    ("verify", verify),
    ("verify-network", verify_network),
    ("record", corpus.RECORD),
    ("replay", corpus.REPLAY),
    ("init", init),
    ("fuzz", fuzz),
]
"""(name, module with HELP, add_arguments(parser) and run(args) -> exit code), in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpcheck",
        description="Gradient-verification harness for CNN backpropagation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in SUBCOMMANDS:
        doc = (module.__doc__ or "").strip()
        sub = subparsers.add_parser(
            name, help=module.HELP, description=doc or module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
