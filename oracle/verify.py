"""Check an implementation of the contract: every op it provides, every check, every dtype.

MODULE is a dotted module name (``refimpl``, ``mypkg.ops``) or a path to a
``.py`` file. For each op of the contract the module provides (its forward
and/or its backward; a missing one is "not implemented"), each check that
applies to the op

    forward             the forward vs torch
    backward            the backward vs torch autograd
    finite_differences  the backward vs central differences of the forward (float64)
    adjoint             <F dx, dy> = <dx, F^T dy> (ops linear in an input)
    identities          the derivation's identities (convolutions, linear, max_pool2d, flatten, BCE)

runs over the op's Hypothesis strategy in each dtype: the profile's number of
drawn cases, then (if those pass) the op's explicit edge cases and field bugs.
The cases are drawn once per op and dtype and every check runs on each (the
screen); a check that fails is run again alone. On a drawn failure Hypothesis
shrinks to a minimal counterexample, printed
below the table with where the error sits, expected vs got, and the lines that
rebuild the case; distinct failures of one check (a crash on some
configurations, wrong gradients on others) are each shrunk and printed
separately. A configuration the implementation declines with
NotImplementedError is counted, not failed: the result is "partial", with the
fraction of the cases verified and the configuration features declined
(groups, dilation, ceil_mode, ...), and a line per op says what was verified.

The checks run in a child process: a crash (segfault, abort) is a FAIL of
the op and check it happened in, with the configuration that caused it, and
the other ops and checks go on in a fresh process. A call that does not
return within --timeout seconds is a FAIL ("hang").

A right rule that loses digits beyond rounding (``-log(1 - p)`` for
``-log1p(-p)``) is "imprecise": shown with the digits lost and the stable
formula, not a failure unless --strict. A backward whose gradients are right
but differ between two identical calls is "not deterministic": a note on the
result (its status stays pass or imprecise), not a failure unless --strict.

Exit status: 0 if nothing failed (not implemented, partial, imprecise and not
deterministic are not failures), 1 if any check failed (or, with --require-full,
if any op the module provides was not verified on every drawn configuration;
with --strict, if any result is imprecise or not deterministic), 2 if MODULE cannot be imported, implements none
of the contract, or an option is wrong.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import unittest
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from oracle import course, screening
from oracle.case import DTYPES, Case
from oracle.isolation import Death, SetupFailed, WorkerPool
from oracle.ops import SPECS
from oracle.report import Result, as_json, exit_code, footer_line, junit, print_report, write_json, write_junit
from oracle.verdict import FAIL, IMPRECISE, NOT_EXPRESSIBLE, NOT_IMPLEMENTED, PASS, SKIPPED, Verdict

HELP = "check an implementation (a module or a .py file) against the oracles, op by op, with shrunk counterexamples"

PROFILES = ("ci", "dev", "thorough", "replay")
DEFAULT_SHRINK_TIME = 60.0
DEFAULT_BUDGET = 600.0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _jobs(text: str) -> int:
    """``--jobs``: a count, or ``auto`` (the cores this process may run on)."""
    if text == "auto":
        return available_cores()
    return _positive_int(text)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from oracle.implementation import CALL_TIMEOUT  # noqa: PLC0415

    parser.add_argument("module", metavar="MODULE", help="the implementation: a dotted module name or a path to a .py file")
    parser.add_argument("--ops", metavar="OP[,OP...]",
                        help=f"check only these ops (default: all the module provides); the contract has: {', '.join(SPECS)}")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default=None,
                        help="the dtype(s) to check in (default: both = float64 and float32; float64 with --style, the "
                        "courses' dtype); float16 and bfloat16 on request (bfloat16: torch: and jax: modules only, "
                        "NumPy has no bfloat16)")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="Hypothesis profile: ci (derandomized), dev (random), thorough (10x the examples, random), "
                        "replay (only the failures stored in --database, no new case, no explicit example); "
                        "default: $BPCHECK_PROFILE, else ci if $CI is set, else dev")
    parser.add_argument("--examples", type=_positive_int, metavar="N",
                        help="drawn cases per op, check and dtype (default: the profile's)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="seed Hypothesis with N (repeats a run exactly); without it a random profile draws a "
                        "seed and prints it")
    parser.add_argument("--timeout", type=_nonnegative_float, default=CALL_TIMEOUT, metavar="SECONDS",
                        help=f"time limit of one call of the implementation; beyond it the case FAILs as a hang "
                        f"(default: {CALL_TIMEOUT:g}, $BPCHECK_CALL_TIMEOUT; 0: none)")
    parser.add_argument("--shrink-time", type=_nonnegative_float, default=DEFAULT_SHRINK_TIME, metavar="SECONDS",
                        help=f"stop shrinking a failure after this long and report the smallest case so far "
                        f"(default: {DEFAULT_SHRINK_TIME:g}; 0: report the first failing case as found)")
    parser.add_argument("--budget", type=_nonnegative_float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help=f"kill the child process checking one op/check/dtype after this long and report it "
                        f"(default: {DEFAULT_BUDGET:g}; 0: no limit)")
    parser.add_argument("--jobs", "-j", type=_jobs, default="auto", metavar="N",
                        help="checks run in parallel, each in a child process with its own worker (default: auto, "
                        "one per core this process may use)")
    parser.add_argument("--require-full", action="store_true",
                        help="exit 1 unless every op the module provides was verified on every drawn configuration: "
                        "a partial result (some configurations declined with NotImplementedError) or a not-implemented "
                        "check of a provided op is a failure (for CI gates)")
    parser.add_argument("--strict", action="store_true",
                        help="an imprecise result (right rule, digits lost beyond rounding) or a backward that is not "
                        "deterministic (two identical calls differ) fails the run (exit 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML to FILE")
    add_style_arguments(parser)
    add_database_argument(parser)
    add_sandbox_argument(parser)
    add_device_argument(parser)


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    from oracle.untrusted.styles.constraints import STYLES  # noqa: PLC0415

    parser.add_argument("--style", choices=STYLES, default=None,
                        help="the module is written to a course's API, not the contract: cs231n (layers.py's function "
                        "pairs with a cache, NCHW) or dls (the deep-learning specialization's channels-last "
                        "conv_forward/pool_forward) or layers (layer objects; MODULE is then their mapping file, "
                        "written by bpcheck init --style layers); the same as the target STYLE:MODULE")
    parser.add_argument("--conventions", choices=course.CONVENTIONS, default="course",
                        help="with a style: check the course's own conventions (default; the report says where torch "
                        "differs) or torch's")


def resolve_style(args: argparse.Namespace) -> tuple[str, str | None]:
    """``(target, style)``: ``--style S MODULE`` is the target ``S:MODULE``; the style made this process's."""
    from oracle.untrusted import styles  # noqa: PLC0415 - plain data: the target's prefix

    target, style = args.module, getattr(args, "style", None)
    if style and styles.style_of(target) not in (None, style):
        raise ValueError(f"--style {style} and the target's prefix {styles.style_of(target)}: disagree")
    if style and not styles.is_styled(target):
        target = f"{style}:{target}"
    style = styles.style_of(target)
    course.activate(style, getattr(args, "conventions", "course"))
    return target, style


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """``--database``, shared by the subcommands that run properties (``oracle.database``)."""
    parser.add_argument("--database", metavar="SPEC", default=None,
                        help="Hypothesis example database, replayed first and fed with every failure: none, a "
                        "directory, redis://HOST:PORT/DB, ro:SPEC (read only), or SPEC,SPEC (all of them); "
                        "default: $BPCHECK_DATABASE, else none")


def resolve_database(option: str | None) -> str | None:
    """The database spec in force (``--database``, else ``$BPCHECK_DATABASE``), checked: ValueError if it is malformed
    or a Redis server in it cannot be reached."""
    from oracle.database import check_reachable, resolve  # noqa: PLC0415

    spec = resolve(option)
    check_reachable(spec)
    return spec


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, shared by the subcommands that run an implementation."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where the ops of a torch:MODULE implementation run (default: cpu, $BPCHECK_DEVICE); "
                        "cuda without a GPU stops the run with exit 2, having checked nothing")


#: what ``--dtype`` takes: one dtype of ``oracle.dtypes.ALL``, or ``both`` (the default pair, float64 and float32)
DTYPE_CHOICES = ("float32", "float64", "both", "float16", "bfloat16")


def resolve_dtypes(target: str, dtype: str | None, style: str | None) -> list[str]:
    """The dtypes ``--dtype`` asks for (default: float64 and float32; float64 under a course ``style``).

    ValueError, naming ``--dtype``, for bfloat16 on an implementation of NumPy functions (a plain module or file,
    or a course style): NumPy has no bfloat16, so such code cannot take one; ``torch:`` and ``jax:`` modules can
    (the judge holds bfloat16 values in float32 and the worker's adapters convert, ``oracle.dtypes``).
    """
    from oracle import dtypes  # noqa: PLC0415
    from oracle.untrusted import native  # noqa: PLC0415

    dtype = dtype or ("float64" if style else "both")
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    if dtype == "bfloat16" and (style or not native.is_native(target)):
        raise ValueError(f"--dtype bfloat16 needs a torch: or jax: module (torch:MODULE, jax:MODULE): {target} is NumPy "
                         "code, and NumPy has no bfloat16; nothing was checked (--dtype float16 is a NumPy dtype)")
    return list(dtypes.DTYPES) if dtype == "both" else [dtype]


def resolve_device(target: str, device: str | None) -> None:
    """Send a ``torch:`` implementation's ops to ``device`` (its workers inherit ``BPCHECK_DEVICE``).

    ValueError, naming the reason, for a device an implementation of NumPy functions cannot use, or CUDA where
    there is none: a CUDA check that silently ran on the CPU would be a verdict about something else.
    """
    from oracle.untrusted import native  # noqa: PLC0415

    device = device or os.environ.get("BPCHECK_DEVICE")
    if not device:
        return
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device / BPCHECK_DEVICE must be cpu or cuda, got {device!r}")
    if device != "cpu" and not native.is_native(target):
        raise ValueError(f"--device {device} applies to torch:MODULE implementations only; {target} is NumPy code")
    if device == "cuda":
        from oracle.torch_oracle import cuda_available  # noqa: PLC0415

        if not cuda_available():
            raise ValueError("--device cuda: torch.cuda.is_available() is False on this machine, nothing was checked")
    os.environ["BPCHECK_DEVICE"] = device


def add_sandbox_argument(parser: argparse.ArgumentParser) -> None:
    """``--sandbox``, shared by the subcommands that run an implementation."""
    from oracle.untrusted.client import SANDBOX_LIMITS  # noqa: PLC0415

    limits = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in SANDBOX_LIMITS.items())
    parser.add_argument("--sandbox", action="store_true",
                        help="run the implementation in bubblewrap: no network, a read-only filesystem except a "
                        f"scratch folder, resource limits ({limits}); without bubblewrap, says so and runs without")


def resolve_sandbox(asked: bool, command: str) -> bool:
    """Whether to sandbox: as asked, unless bubblewrap cannot run here (then say so on stderr and run without)."""
    from oracle.untrusted.client import sandbox_unavailable  # noqa: PLC0415

    reason = sandbox_unavailable() if asked else None
    if reason:
        print(f"bpcheck {command}: --sandbox unavailable, running without it: {reason}", file=sys.stderr)
        return False
    return asked


# --------------------------------------------------------------------------- in the child process


def hypothesis_settings(config: dict):
    """The Hypothesis settings of a run: the profile's, with the run's examples / derandomization, quiet, no database
    (``run_unit`` adds the run's, ``oracle.database``)."""
    from hypothesis import Verbosity, settings  # noqa: PLC0415

    import oracle.pytest_plugin  # noqa: F401,PLC0415 - registers the profiles

    return settings(
        settings.get_profile(config["profile"]),
        max_examples=config["max_examples"],
        derandomize=config["derandomize"],
        database=None,
        verbosity=Verbosity.quiet,
        print_blob=False,
        report_multiple_bugs=True,  # each distinct failure (oracle.defects) shrunk and reported
        phases=[phase for phase in settings.get_profile(config["profile"]).phases if phase.name != "explain"],
    )


def load_in_child(target: str, config: dict) -> tuple[Any, list[str]]:
    """WorkerPool setup: load the implementation (LoadError on failure); the contract's functions it defines."""
    from oracle.implementation import Implementation  # noqa: PLC0415

    course.activate(config.get("style"), config.get("conventions"))

    impl = Implementation.load(target, timeout=config["timeout"], sandbox=config["sandbox"])
    return impl, impl.provided()


def run_work(impl, unit: tuple, config: dict, announce: Callable[[str], None]) -> dict:
    """WorkerPool work: a screen of every check of an (op, dtype) (``oracle.screening``) or one unit alone."""
    return (screening.run_screen if screening.is_screen(unit) else run_unit)(impl, unit, config, announce)


def run_unit(impl, unit: tuple[str, str, str], config: dict, announce: Callable[[str], None]) -> dict:
    """WorkerPool work: run one check of one op in one dtype under Hypothesis; a ``Result`` as a dict.

    Each case is announced (its repr) before it is checked, so that the parent
    knows the configuration if the process dies. Shrinking stops after
    ``config["shrink_time"]`` seconds: from then on the property passes every
    case unchecked, and the last failing verdict of each distinct failure (the
    smallest found) is reported: the first as the result's verdict, all of them
    in its ``defects``. Declined cases make a passing result ``partial``.
    Optional ``config`` keys: ``database`` (a spec, ``oracle.database``: replayed first, failures saved),
    ``draw_seconds`` (stop checking new cases after this long; ``bpcheck fuzz``'s rounds),
    ``explicit_examples`` (False: not the op's explicit examples).
    A fourth element of ``unit``, the choice sequences (hex) of cases that failed the screen
    (``oracle.screening``), is replayed (from an example database of its own) if the check's own draws find
    no failure.
    """
    from hypothesis.reporting import with_reporter  # noqa: PLC0415

    from oracle.database import WriteOnly, open_database  # noqa: PLC0415
    from oracle.database import apply as apply_database  # noqa: PLC0415
    from oracle.screening import replaying  # noqa: PLC0415
    from oracle.suite import ShrinkBudget, Tally, build_property, search_defects  # noqa: PLC0415

    op, check, dtype = unit[:3]
    course.activate(config.get("style"), config.get("conventions"))
    undrawn = undrawn_result(impl, unit[:3])
    if undrawn:
        return undrawn
    tally = Tally()
    before = ShrinkBudget(tally, config["shrink_time"], announce, config.get("draw_seconds"))
    started = time.perf_counter()

    def search(db) -> BaseException | None:
        def make_prop(round_: int):
            prop = build_property(op, check, dtype, before=before, examples=())
            # the first round replays the database first; later ones mask the defects found, so must not replay them
            return apply_database(prop, hypothesis_settings(config), db if round_ == 0 or db is None else WriteOnly(db),
                                  seed=config["seed"])

        try:
            with with_reporter(lambda *_: None):
                search_defects(make_prop, impl, tally)
        except unittest.SkipTest:  # Hypothesis had no case to run: the replay profile, and nothing stored
            pass
        except BaseException as exc:  # noqa: BLE001 - AssertionError is the finding; anything else is reported too
            if isinstance(exc, KeyboardInterrupt):
                raise
            return exc
        return None

    error = search(open_database(config.get("database")))
    if len(unit) > 3 and tally.failing is None and error is None:  # the screen's failing case, missed by these draws
        error = search(replaying(unit[3], unit[:3]))
    if tally.failing is None and error is None and config.get("explicit_examples", config["profile"] != "replay"):
        run_examples(impl, op, check, dtype, tally, before)
    return conclude(impl, unit[:3], tally, before, error, time.perf_counter() - started, config)


def undrawn_result(impl, unit: tuple[str, str, str]) -> dict | None:
    """The result (a dict) of a check nothing is drawn for: NOT_IMPLEMENTED if it needs a function the contract
    makes optional and the module does not define; SKIPPED if it says nothing in this dtype (the second order in
    half precision). None if the check runs."""
    from oracle.suite import not_applicable, optional_missing  # noqa: PLC0415

    missing = optional_missing(impl, unit[0], unit[1])
    if missing:
        return Result(*unit, NOT_IMPLEMENTED, message=missing[len(impl.label) + len(" has "):]).as_dict()
    why = not_applicable(unit[1], unit[2])
    return Result(*unit, SKIPPED, message=why).as_dict() if why else None


def conclude(impl, unit: tuple[str, str, str], tally, before, error: BaseException | None, seconds: float,
             config: dict) -> dict:
    """The ``Result`` (as a dict) of one op/check/dtype from what its cases showed (``tally``): FAIL with every
    distinct defect, the run's own error, not expressible, not implemented, skipped, partial, imprecise or pass."""
    from oracle.coverage import PARTIAL, describe  # noqa: PLC0415
    from oracle.defects import only_failures  # noqa: PLC0415

    op, check, dtype = unit
    result = Result(op, check, dtype, PASS, examples=tally.ran, not_implemented=len(tally.declined),
                    skipped=len(tally.skipped), seconds=round(seconds, 3))
    if tally.ran or tally.not_expressible:
        result.coverage = tally.coverage(op)
    if tally.failing is not None:
        found = list(tally.defects.values()) or [tally.failing]
        replayed = error is not None and only_failures(error)
        for verdict in found:
            if before.hint():
                verdict.hints.append(before.hint())
            elif error is not None and not replayed:
                verdict.hints.append(f"Hypothesis could not replay the failure ({type(error).__name__}): it may be flaky")
        return _failed(result, found[0], tally.defect_list())
    if error is not None:
        verdict = Verdict(op, check, FAIL, before.last,
                          f"the check could not run: {type(error).__name__}: {error}".strip(),
                          hints=["this is a problem of bpcheck or of its environment, or an exception the "
                                 "implementation raised that is not an Exception (SystemExit, ...)"])
        return _failed(result, verdict)
    checked = tally.checked
    if tally.not_expressible and tally.ran == 0:
        result.status = NOT_EXPRESSIBLE
        result.message = f"{course.style()} API: {tally.not_expressible[0]}"
    elif tally.declined and checked == 0:
        first = tally.declined[0]
        message = first.message
        if message.startswith(f"{impl.label} has no "):  # the label (maybe a long path) is the module under test
            message = message[len(impl.label) + len(" has "):]
        result.status, result.message, result.verdict = NOT_IMPLEMENTED, message, first.as_dict()
    elif checked == 0:
        first = tally.skipped[0] if tally.skipped else None
        result.status = SKIPPED
        result.message = first.message if first else (
            "the example database holds no case of this property" if config["profile"] == "replay"
            else "no case was checked")
        result.verdict = first.as_dict() if first else None
    elif tally.declined:
        first = tally.declined[0]
        if result.status == PASS:
            result.status = PARTIAL
        result.message = f"{describe(result.coverage)}; e.g. {first.message}"
        result.verdict = first.as_dict()
    if result.status == PASS and tally.imprecise is not None:
        _imprecise(result, tally.imprecise)
    if tally.nondeterministic is not None:
        result.nondeterministic = tally.nondeterministic.render()
    return result.as_dict()


def _imprecise(result: Result, verdict: Verdict) -> None:
    """The unit is imprecise: no case failed, and this is its worst imprecise case."""
    result.status = IMPRECISE
    result.message = verdict.mismatch.describe() if verdict.mismatch else verdict.message
    result.verdict = verdict.as_dict()
    result.rendered = verdict.render()


def run_examples(impl, op: str, check: str, dtype: str, tally, before: Callable[[Case], bool]) -> None:
    """The explicit examples (edge cases, field bugs), after the drawn cases passed; the first failure of each
    distinct identity (``oracle.defects``) is kept."""
    from oracle.suite import check_example, examples_for, record  # noqa: PLC0415

    for case in examples_for(op, dtype):
        why = course.not_expressible(case)
        if why:
            tally.not_expressible.append(why)
            continue
        before(case)
        verdict = check_example(impl, op, check, case)
        if record(tally, verdict) and tally.identities.of(verdict) not in tally.defects:
            verdict.hints.append("an explicit example (oracle/examples.py) failed; the drawn cases did not")
            tally.fail(verdict)


def _failed(result: Result, verdict: Verdict, defects: list[tuple[str, Verdict]] = ()) -> dict:
    """A FAIL result: ``verdict`` is the first failure; ``defects`` each distinct one, (identity, verdict)."""
    result.status = FAIL
    result.message = verdict.message or (verdict.mismatch.describe() if verdict.mismatch else "")
    result.verdict = verdict.as_dict()
    result.rendered = verdict.render()
    if defects:
        result.defects = [{"identity": name, "message": v.message or (v.mismatch.describe() if v.mismatch else ""),
                           "verdict": v.as_dict(), "rendered": v.render()} for name, v in defects]
    return result.as_dict()


# --------------------------------------------------------------------------- in the parent


def parse_ops(text: str | None) -> list[str]:
    """The ops of ``--ops`` in contract order; ValueError naming an unknown one."""
    if not text:
        return list(SPECS)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SPECS]
    if unknown:
        raise ValueError(f"unknown op{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"(the contract has: {', '.join(SPECS)})")
    if not wanted:
        raise ValueError(f"--ops names no op (the contract has: {', '.join(SPECS)})")
    return [name for name in SPECS if name in wanted]


def _case_from_repr(text: str | None) -> Case | None:
    if not text:
        return None
    try:
        case = eval(text, {"__builtins__": {}}, {"Case": Case})  # noqa: S307 - our own child's repr of a Case
    except Exception:  # noqa: BLE001
        return None
    return case if isinstance(case, Case) else None


def _crash_hints(death: Death) -> list[str]:
    """Where the child was when it died: faulthandler's innermost frames up to the harness's call into the module."""
    hints = []
    if death.fatal_error():
        hints.append(death.fatal_error())
    frames = death.frames()
    if frames:
        own = str(Path(__file__).resolve().parent)
        outside = []
        for frame in frames:
            if own in frame:
                break
            outside.append(frame)
        shown = (outside or frames)[:4]
        hints.append("where (innermost call first): " + " <- ".join(shown))
    elif death.last_output():
        hints.append(f"the process's last output: {death.last_output()}")
    if death.last_announcement is not None:
        hints.append("not shrunk: the process died on this case, so Hypothesis could not try smaller ones")
    return hints


def death_result(unit: tuple[str, str, str], death: Death, examples: int, seconds: float) -> Result:
    op, check, dtype = unit
    case = _case_from_repr(death.last_announcement)
    if death.last_announcement is None:
        message = f"{death.description} before it checked its first case"
    else:
        message = f"{death.description} on this configuration"
        if case is None:
            message += f": {death.last_announcement}"
    message += "\n(the process checking it died; the other ops and checks went on in a fresh one)"
    verdict = Verdict(op, check, FAIL, case, message, hints=_crash_hints(death))
    return Result(op, check, dtype, FAIL, examples=examples, seconds=round(seconds, 3),
                  message=message, verdict=verdict.as_dict(), rendered=verdict.render())


def _missing_results(op: str, dtypes: list[str]) -> list[Result]:
    from oracle.suite import checks_for  # noqa: PLC0415

    spec = SPECS[op]
    message = f"no {spec.name} or {spec.backward_name}"
    return [Result(op, check, dtype, NOT_IMPLEMENTED, message=message, missing_op=True)
            for check in checks_for(op) for dtype in dtypes]


def _fail_usage(message: str) -> int:
    print(f"bpcheck verify: {message}", file=sys.stderr)
    return 2


def resolve_settings(args: argparse.Namespace) -> dict:
    from hypothesis import settings  # noqa: PLC0415

    from oracle.pytest_plugin import default_profile  # noqa: PLC0415 - also registers the profiles

    profile = args.profile or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (from $BPCHECK_PROFILE); choose one of {', '.join(PROFILES)}")
    base = settings.get_profile(profile)
    database = resolve_database(getattr(args, "database", None))
    if profile == "replay" and database is None:
        raise ValueError("--profile replay replays the example database: give one (--database or $BPCHECK_DATABASE)")
    seed = args.seed
    if seed is None and not base.derandomize:
        seed = random.SystemRandom().randrange(2**32)  # drawn here so that the run can be repeated with --seed
        seed_origin = "random"
    else:
        seed_origin = "given" if seed is not None else None
    return {
        "profile": profile,
        "max_examples": args.examples or base.max_examples,
        "derandomize": seed is None and bool(base.derandomize),
        "seed": seed,
        "seed_origin": seed_origin,
        "timeout": args.timeout,
        "shrink_time": args.shrink_time,
        "budget": args.budget,
        "jobs": args.jobs,
        "sandbox": resolve_sandbox(getattr(args, "sandbox", False), "verify"),
        "database": database,
        "require_full": bool(getattr(args, "require_full", False)),
        "strict": bool(getattr(args, "strict", False)),
    }


def _header(target: str, config: dict, ops: list[str], dtypes: list[str]) -> str:
    if config["derandomize"]:
        randomness = "derandomized"
    elif config["seed_origin"] == "random":
        randomness = f"seed {config['seed']} (drawn; --seed {config['seed']} repeats this run)"
    else:
        randomness = f"seed {config['seed']}"
    from oracle.untrusted.client import containment  # noqa: PLC0415

    line = (f"bpcheck verify {target}: profile {config['profile']}, {config['max_examples']} examples per check, "
            f"{randomness}{_database_note(config)}, {' and '.join(dtypes)}, call timeout {config['timeout']:g} s, {config['jobs']} "
            f"{'job' if config['jobs'] == 1 else 'jobs'}, implementation run in a worker ({containment(config['sandbox'])})")
    styled = course.header()
    return line + (f"\n{styled}" if styled else "")


def _database_note(config: dict) -> str:
    return f", database {config['database']}" if config.get("database") else ""


def _console(stderr: bool = False) -> Console:
    file = sys.stderr if stderr else sys.stdout
    is_tty = file.isatty()
    width = None if is_tty or os.environ.get("COLUMNS") else 160
    return Console(file=file, width=width, highlight=False, soft_wrap=False)


def run(args: argparse.Namespace) -> int:
    return run_in_style(_run, args, "verify")


def run_in_style(body: Callable[[argparse.Namespace], int], args: argparse.Namespace, command: str) -> int:
    """``body(args)``'s exit code (130 on Ctrl-C), with this process's course style and conventions put back after."""
    before = (course.style(), course.conventions())
    try:
        return body(args)
    except KeyboardInterrupt:
        print(f"bpcheck {command}: interrupted", file=sys.stderr)
        return 130
    finally:
        course.activate(*before)  # a run in a process that goes on (a test) leaves its style behind


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        target, style = resolve_style(args)
        ops = parse_ops(args.ops) if args.ops or style is None else course.ops(style)
        config = resolve_settings(args)
        config.update(style=style, conventions=course.conventions())
        resolve_device(args.module, args.device)
        dtypes = resolve_dtypes(args.module, args.dtype, style)
    except ValueError as exc:
        return _fail_usage(str(exc))
    from oracle.suite import checks_for  # noqa: PLC0415

    stall = max(60.0, 10 * config["timeout"]) if config["timeout"] > 0 else config["budget"]
    pool = WorkerPool(load_in_child, run_work, target, config, jobs=config["jobs"], budget=config["budget"] or float("inf"),
                      stall=min(stall, config["budget"] or float("inf")), weight=_checks_in)
    screen = screening.wanted(config)
    with pool:
        try:
            provided = pool.start()
        except SetupFailed as exc:
            return _fail_usage(str(exc).splitlines()[0] if str(exc) else "the module could not be loaded")
        units: list[tuple[str, str, str]] = []
        results: dict[tuple[str, str, str], Result] = {}
        order: list[tuple[str, str, str]] = []
        for op in ops:
            spec = SPECS[op]
            if spec.name not in provided and spec.backward_name not in provided:
                for r in _missing_results(op, dtypes):
                    key = (r.op, r.check, r.dtype)
                    order.append(key)
                    results[key] = r
                continue
            checks = checks_for(op)
            order.extend((op, check, dtype) for check in checks for dtype in dtypes)
            if screen:
                units.extend(screening.unit(op, dtype, checks) for dtype in dtypes)
            else:
                units.extend((op, check, dtype) for check in checks for dtype in dtypes)
        results.update(_run_units(pool, units, len(order) - len(results)))
    ordered = [results[key] for key in order]
    seconds = time.perf_counter() - started
    settings_doc = {"ops": ops, "dtypes": dtypes, **{k: v for k, v in config.items() if k != "seed_origin"}}
    print_report(_console(), ordered, header=_header(target, config, ops, dtypes),
                 footer=footer_line(ordered, seconds, require_full=config["require_full"], strict=config["strict"]))
    try:
        if args.json:
            write_json(args.json, as_json(target, provided, settings_doc, ordered, seconds))
        if args.junit:
            write_junit(args.junit, junit(target, settings_doc, ordered, seconds))
    except OSError as exc:
        return _fail_usage(f"cannot write the report: {exc}")
    return exit_code(ordered, require_full=config["require_full"], strict=config["strict"])


#: the checks that take longest per unit (several times the forward's: every case is many calls), started first
SLOW_CHECKS = ("finite_differences", "jvp", "double_backward")


def dispatch_order(units: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The units in the order the pool hands them out: the slow checks first, the rest as given.

    Longest first keeps the cores busy to the end: a slow unit started last would run alone on one core
    while the others have nothing left to take. The report keeps the contract's order.
    """
    return sorted(units, key=lambda unit: unit[1] not in SLOW_CHECKS)  # stable: the contract's order within each


def _checks_in(unit: tuple) -> int:
    """How many units' time (--budget) ``unit`` may take: a screen's, one per check."""
    return len(unit[3]) if screening.is_screen(unit) else 1


def _run_units(pool: WorkerPool, units: list[tuple], expected: int) -> dict[tuple[str, str, str], Result]:
    """Run the units in the pool with a progress bar on stderr (shown on a terminal only); the results of the
    ``expected`` op/check/dtype units. The checks that failed a screen (``oracle.screening``) are run again
    alone, after every screen: shrunk, and searched for their other defects."""
    results: dict[tuple[str, str, str], Result] = {}
    announced: dict[tuple, int] = {}
    began: dict[tuple, float] = {}
    rechecks: list[tuple] = []
    screened: dict[tuple[str, str, str], Result] = {}  # the screen's own result of each check run again
    console = _console(stderr=True)
    lines = not console.is_terminal  # CI logs: a plain line per finished unit instead of the live bar

    def finished(key: tuple[str, str, str], result: Result) -> None:
        results[key] = result
        if lines:
            print(f"bpcheck verify: [{len(results)}/{expected}] {' '.join(key)}: {result.status} "
                  f"({result.examples} cases, {result.seconds:.1f} s)", file=sys.stderr, flush=True)
        progress.advance(task)

    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("starting", total=expected)

        def on_announce(unit, text):
            announced[unit] = announced.get(unit, 0) + 1
            began.setdefault(unit, time.perf_counter())
            progress.update(task, description=f"{unit[0]} {unit[1]} {unit[2]}: case {announced[unit]}")

        def on_result(unit, data):
            if screening.is_screen(unit):
                for item in data["results"]:
                    result = Result.from_dict(item)
                    key = (result.op, result.check, result.dtype)
                    if result.check in data["recheck"]:
                        screened[key] = result
                    else:
                        finished(key, result)
                rechecks.extend((unit[0], check, unit[2], tuple(choices)) for check, choices in data["recheck"].items())
            elif "error" in data:  # run_unit itself raised: report it, do not lose the unit
                verdict = Verdict(unit[0], unit[1], FAIL, None, f"the check could not run: {data['error']}")
                finished(unit[:3], Result(*unit[:3], FAIL, message=verdict.message, verdict=verdict.as_dict(),
                                          rendered=verdict.render() + "\n" + data.get("traceback", "")))
            else:
                finished(unit[:3], Result.from_dict(data))

        def on_death(unit, death):
            if screening.is_screen(unit):  # each check alone: the death is then charged to the one it happens in
                rechecks.extend((unit[0], check, unit[2], ()) for check in unit[3])
                return
            seconds = time.perf_counter() - began.get(unit, time.perf_counter())
            finished(unit[:3], death_result(unit[:3], death, announced.get(unit, 0), seconds))

        pool.run(dispatch_order(units), on_result=on_result, on_death=on_death, on_announce=on_announce)
        if rechecks:
            pool.run(dispatch_order(rechecks), on_result=on_result, on_death=on_death, on_announce=on_announce)
    for key, result in screened.items():
        if results[key].status != FAIL:
            results[key] = _not_reproduced(result)
    return results


def _not_reproduced(result: Result) -> Result:
    """A check's screen failure that did not fail again when the check ran alone: the screen's verdict stands."""
    hint = ("this case failed when every check ran on it in turn (in the same worker, after the others), but not "
            "when this check ran alone: the result depends on earlier calls (state kept between calls?); "
            "the case is as drawn, not shrunk")
    if result.verdict is not None:
        result.verdict.setdefault("hints", []).append(hint)
    result.rendered = (result.rendered or "") + f"\n  {hint}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bpcheck verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    # run as ``python -m oracle.verify``: use the functions of the importable module, which the children unpickle
    from oracle.verify import main as _main

    sys.exit(_main())
