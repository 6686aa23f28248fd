"""Checks per second against the anchors: bpcheck's checks vs torch.autograd.gradcheck, on the same drawn cases.

    python benchmarks/checks_per_second.py [--cases 100] [--ops conv2d,max_pool2d,...] [--seed 0] [--reps 1]
                                           [--in-process] [--mutants NAME,...] [--markdown FILE]

For each op, ``--cases`` float64 cases are drawn once from bpcheck's own strategies
(``oracle.corpus.draw_cases``: Hypothesis seed ``--seed``, generate phase only, so the
same cases every run) and kept in a list; every method then runs over exactly those cases
on refimpl:

    bpcheck backward      checks.CHECKS["backward"]: the backward vs torch autograd
    bpcheck FD            the backward vs central differences of its own forward
    bpcheck all checks    every check of the op (oracle.suite.checks_for): forward, backward,
                          finite differences, adjoint, identities where they apply
    gradcheck             torch.autograd.gradcheck (default: slow mode, the full Jacobian)
    gradcheck fast        torch.autograd.gradcheck(fast_mode=True)

bpcheck calls refimpl the way ``bpcheck verify`` does: ``Implementation.load("refimpl")``,
refimpl in its own worker process (started before the clock runs). ``--in-process`` adds
the same bpcheck rows with refimpl imported into this process (``Implementation(module, label)``),
which is how gradcheck always calls it: refimpl's forward and backward wrapped in a
``torch.autograd.Function`` (float64 tensors, ``requires_grad`` on the differentiable inputs),
the way a user checks a NumPy backward with gradcheck. gradcheck runs on the case's own
arrays (``case.arrays()``, the values the backward check sees) and ignores its grad_output.
torch runs on one thread throughout (bpcheck's oracle sets that; gradcheck shares it).

The first table: op, method, cases, seconds, cases per second, that rate over gradcheck
fast mode's, and the cases the method failed on refimpl (a false alarm: refimpl is right).
The second: for a handful of zoo mutants (``oracle.zoo``, one classic mistake each), each
method runs over the op's drawn cases in order until its first failure; the time to it
(including what each method does once it fails: bpcheck's diagnosis of a failed backward, and
gradcheck's fast mode recomputing the slow mode's full Jacobians for its error message) and
the case's 1-based index, or "not found in N cases". A gradcheck failure is a GradcheckError (or False). A failure on a
case where the same method also fails refimpl (first table: gradcheck on NaN inputs, say) is a
false alarm, not a detection, and the run goes on past it.

Prints the load average before and after: on a shared machine the absolute rates are noisy,
the ratios less so.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from typing import Callable

import numpy as np

from oracle.case import Case
from oracle.corpus import draw_cases
from oracle.implementation import Implementation
from oracle.mistakes import MISTAKES
from oracle.ops import SPECS, OpSpec
from oracle.suite import ALL_CHECKS, checks_for
from oracle.torch_oracle import _torch

DEFAULT_OPS = ("conv2d", "max_pool2d", "linear", "sigmoid", "binary_cross_entropy_with_logits")
#: mutants gradcheck can in principle catch (a wrong rule away from kinks and ties), across the ops
DEFAULT_MUTANTS = (
    "conv_grad_x_stride_not_dilated",
    "conv_grad_weight_channels_transposed",
    "maxpool_overlap_overwrite",
    "linear_grad_weight_transposed",
    "sigmoid_derivative_s",
    "bce_logits_mean_not_divided",
)
GRADCHECK_METHODS = ("gradcheck", "gradcheck fast")
ANCHOR = "gradcheck fast"

#: a method: ``fails(case) -> bool`` (True: it found the case wrong)
Method = Callable[[Case], bool]


# ----------------------------------------------------------------------------- the methods


def bpcheck_method(impl, spec: OpSpec, checks: list[str]) -> Method:
    """bpcheck's ``checks`` of ``spec`` on one case: failed if any of them FAILs (stops at the first that does)."""
    return lambda case: any(ALL_CHECKS[check](impl, spec, case).failed for check in checks)


def bpcheck_methods(impl, op: str, suffix: str = "") -> dict[str, Method]:
    """The three bpcheck methods on ``impl`` (``ALL_CHECKS`` is ``oracle.checks.CHECKS`` plus the identities)."""
    spec = SPECS[op]
    checks = {"bpcheck backward": ["backward"], "bpcheck FD": ["finite_differences"], "bpcheck all checks": checks_for(op)}
    return {name + suffix: bpcheck_method(impl, spec, chosen) for name, chosen in checks.items()}


def as_autograd_function(module, spec: OpSpec, config: dict) -> Callable:
    """``module``'s forward and backward of ``spec`` as a torch function of the op's positional tensors.

    What a user writes to check a NumPy backward with gradcheck: the forward on the tensors'
    arrays, the backward on the output gradient's, each gradient back as a tensor (None for an
    input that is not differentiable or absent).
    """
    torch = _torch()
    forward, backward = getattr(module, spec.name), getattr(module, spec.backward_name)

    class NumpyOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            # copies: gradcheck perturbs its inputs in place between calls
            ctx.arrays = [None if t is None else t.detach().numpy().copy() for t in tensors]
            return torch.from_numpy(np.array(forward(*ctx.arrays, **config)))

        @staticmethod
        def backward(ctx, grad_output):
            grads = backward(grad_output.detach().numpy().copy(), *ctx.arrays, **config)
            by_name = dict(zip(spec.differentiable, grads if isinstance(grads, tuple) else (grads,)))
            return tuple(None if by_name.get(name) is None else torch.from_numpy(np.array(by_name[name]))
                         for name in spec.inputs)

    return NumpyOp.apply


def gradcheck_method(module, spec: OpSpec, fast: bool) -> Method:
    """torch.autograd.gradcheck of ``module``'s backward of ``spec`` on one case's arrays (float64)."""
    torch = _torch()
    from torch.autograd.gradcheck import GradcheckError  # noqa: PLC0415 - torch.autograd.gradcheck is also a function

    def fails(case: Case) -> bool:
        arrays = case.arrays()
        inputs = tuple(
            None if arrays[name] is None
            else torch.from_numpy(arrays[name]).to(torch.float64).requires_grad_(name in spec.differentiable)
            for name in spec.inputs
        )
        try:
            return not torch.autograd.gradcheck(as_autograd_function(module, spec, case.config), inputs, fast_mode=fast)
        except GradcheckError:
            return True

    return fails


def gradcheck_methods(module, op: str) -> dict[str, Method]:
    return {name: gradcheck_method(module, SPECS[op], fast=name == ANCHOR) for name in GRADCHECK_METHODS}


# ----------------------------------------------------------------------------- measuring


def run_all(method: Method, cases: list[Case]) -> tuple[float, set[int]]:
    """``(seconds, 1-based indices of the failing cases)`` of ``method`` over every case."""
    failing = set()
    started = time.perf_counter()
    for index, case in enumerate(cases, 1):
        if method(case):
            failing.add(index)
    return time.perf_counter() - started, failing


def first_failure(method: Method, cases: list[Case], false_alarms: set[int]) -> tuple[float, int | None]:
    """``(seconds, 1-based index of the first failing case or None)``, stopping there.

    A failure on a case in ``false_alarms`` (the method fails refimpl there too) is not a detection:
    the run goes on past it.
    """
    started = time.perf_counter()
    for index, case in enumerate(cases, 1):
        if method(case) and index not in false_alarms:
            return time.perf_counter() - started, index
    return time.perf_counter() - started, None


def rates(cases: dict[str, list[Case]], in_process: bool, reps: int = 1) -> list[tuple[str, str, int, float, set[int]]]:
    """``(op, method, cases, seconds, failing case indices)`` for every op and method, on refimpl (best of ``reps``)."""
    module = importlib.import_module("refimpl")
    rows = []
    with Implementation.load("refimpl") as worker:
        for op, drawn in cases.items():
            methods = bpcheck_methods(worker, op)
            if in_process:
                methods |= bpcheck_methods(Implementation(module, "refimpl"), op, " (in-process)")
            methods |= gradcheck_methods(module, op)
            for name, method in methods.items():
                method(drawn[0])  # warm up: imports, torch's first call, the worker's first request
                runs = [run_all(method, drawn) for _ in range(reps)]
                seconds, failures = min(seconds for seconds, _ in runs), runs[0][1]
                rows.append((op, name, len(drawn), seconds, failures))
                print(f"  {op:34s} {name:32s} {len(drawn):4d} cases {seconds:8.2f} s", flush=True)
    return rows


def detections(mutants: list[str], cases: dict[str, list[Case]], refimpl_rows) -> list[tuple]:
    """``(mutant, op, method, cases, seconds, first failing index or None)`` for each mutant and method.

    ``refimpl_rows`` (from ``rates``) tell the cases where a method fails refimpl itself: not detections.
    """
    false_alarms = {(op, method): failing for op, method, _, _, failing in refimpl_rows}
    rows = []
    for name in mutants:
        op = MISTAKES[name].op
        module = importlib.import_module(f"oracle.zoo.{name}")
        with Implementation.load(f"oracle.zoo.{name}") as worker:
            ALL_CHECKS["forward"](worker, SPECS[op], cases[op][0])  # warm up the worker (a mutant's forward is right)
            methods = bpcheck_methods(worker, op) | gradcheck_methods(module, op)
            for method_name, method in methods.items():
                seconds, index = first_failure(method, cases[op], false_alarms[op, method_name])
                rows.append((name, op, method_name, len(cases[op]), seconds, index))
                found = f"case {index}" if index else "not found"
                print(f"  {name:38s} {method_name:20s} {found:12s} {seconds:8.2f} s", flush=True)
    return rows


# ----------------------------------------------------------------------------- the tables


def rate_table(rows) -> list[str]:
    anchor = {op: n / s for op, method, n, s, _ in rows if method == ANCHOR}
    lines = ["| op | method | cases | seconds | cases/s | vs gradcheck fast | failed on refimpl |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for op, method, n, seconds, failing in rows:
        rate = n / seconds
        ratio = f"{rate / anchor[op]:.3g}x" if op in anchor else ""
        lines.append(f"| {op} | {method} | {n} | {seconds:.2f} | {rate:.1f} | {ratio} | {len(failing)} |")
    return lines


def detection_table(rows) -> list[str]:
    lines = ["| mutant | op | method | time to first failure | first failing case |", "|---|---|---|---:|---|"]
    for mutant, op, method, n, seconds, index in rows:
        if index is None:
            lines.append(f"| `{mutant}` | {op} | {method} | ({seconds:.2f} s) | not found in {n} cases |")
        else:
            lines.append(f"| `{mutant}` | {op} | {method} | {seconds * 1000:.0f} ms | {index} |")
    return lines


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100, help="drawn cases per op (default 100)")
    parser.add_argument("--ops", default=",".join(DEFAULT_OPS), help="comma-separated ops (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed of the drawn cases (default 0)")
    parser.add_argument("--mutants", default=",".join(DEFAULT_MUTANTS),
                        help="comma-separated zoo mutants, '' for none (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=1, help="time each method over the cases this often, keep the best")
    parser.add_argument("--in-process", action="store_true", help="also time bpcheck with refimpl in this process")
    parser.add_argument("--markdown", help="also write the tables as Markdown to this file")
    args = parser.parse_args(argv)
    ops = [op for op in args.ops.split(",") if op]
    mutants = [m for m in args.mutants.split(",") if m]
    for op in ops:
        if op not in SPECS:
            parser.error(f"unknown op {op!r}; the contract has: {', '.join(SPECS)}")
    for name in mutants:
        if name not in MISTAKES:
            parser.error(f"unknown mutant {name!r}; the zoo has: {', '.join(MISTAKES)}")
    torch = _torch()  # bpcheck's oracle: torch on one thread, gradcheck included
    load_before = _load()
    ops = list(dict.fromkeys(ops + [MISTAKES[m].op for m in mutants]))  # a mutant's op is measured on refimpl too
    cases = {op: draw_cases(op, "float64", args.cases, args.seed) for op in ops}
    header = [
        f"{args.cases} float64 cases per op drawn from bpcheck's strategies (oracle.corpus.draw_cases, Hypothesis "
        f"seed {args.seed}); every method on the same cases{f', best of {args.reps} runs' if args.reps > 1 else ''}. bpcheck: refimpl in its worker process "
        f"(Implementation.load, as `bpcheck verify`){' and in-process' if args.in_process else ''}; gradcheck: "
        f"refimpl in-process, wrapped in a torch.autograd.Function. torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread; {os.cpu_count()} cores.",
    ]
    print(header[0], flush=True)
    print(f"load average before: {load_before}", flush=True)
    rate_rows = rates(cases, args.in_process, args.reps)
    detection_rows = detections(mutants, cases, rate_rows)
    load = f"load average (1, 5, 15 min): {load_before} before, {_load()} after"
    text = [*header, load, "", *rate_table(rate_rows)]
    if detection_rows:
        text += ["", "Time to the first failing case, each method over the same cases in order (zoo mutants; a failure "
                 "on a case where the method fails refimpl too is not counted):", "",
                 *detection_table(detection_rows)]
    print("\n" + "\n".join(text))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
