"""Check a student's whole model (a CS231n-style model class with ``params`` and ``loss(X, y) -> (loss, grads)``, or
with ``--style layers`` a list of layer objects, ``oracle.untrusted.network_layers``) and name the layer whose
gradient is wrong.

MODEL is the model's ``.py`` file (or a dotted module); ``--model CLASS`` (with ``--kwargs JSON``) or
``--factory FUNCTION`` says how to build it. The model runs only in a worker process, in float64 (its
parameters are cast), on a batch bpcheck draws (``--batch-size`` images of ``--input-shape``, ``--classes``
labels, from ``--seed``: printed, so the run repeats) or the one in ``--batch FILE.npz`` (arrays X and y).

1. one forward/backward pass, with every layer function the model calls recorded (its inputs, configuration,
   dout and results);
2. end to end: each parameter's gradient from model.loss vs central differences of model.loss itself (the
   course notebooks' rel_error shown next to bpcheck's verdict);
3. per layer: each layer's forward and backward judged against torch on the arrays that actually reached it,
   with the per-op checks' derived tolerances; the first broken layer in backward order is named, with its
   worst element, why the end-to-end check points at other parameters, and the smallest configuration that
   fails in isolation (the per-op backward check, shrunk);
4. a heat map of the broken gradient's error (PNG, with ``bpcheck[plots]``).

Exit status: 0 if every layer and every parameter passes, 1 if a layer or a parameter gradient is wrong (or the
model's loss fails to run), 2 for a usage error (a bad option, a model that cannot be built).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from oracle import course
from oracle.verdict import FAIL

HELP = "check a student's whole model (CS231n-style loss(X, y), or a list of layer objects) end to end and layer by layer; name the broken layer"

NAMES = ["network_params", "network_run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from oracle.implementation import CALL_TIMEOUT  # noqa: PLC0415
    from oracle.verify import _nonnegative_float, _positive_int, add_sandbox_argument  # noqa: PLC0415

    parser.add_argument("model_file", metavar="MODEL", help="the model's .py file (or a dotted module name)")
    build = parser.add_mutually_exclusive_group()
    build.add_argument("--model", metavar="CLASS", help="the model class of MODEL (built with --kwargs)")
    build.add_argument("--factory", metavar="FUNCTION", help="a function of MODEL, without arguments, returning the model")
    parser.add_argument("--kwargs", metavar="JSON", default="{}", help="keyword arguments of CLASS, as a JSON object")
    parser.add_argument("--style", choices=("cs231n", "layers"), default="cs231n",
                        help="the API of the layer functions the model calls (cs231n: layers.py's function pairs); "
                        "layers: --factory returns a list of layer objects, described by --mapping")
    parser.add_argument("--mapping", metavar="FILE.toml",
                        help="with --style layers: the layer objects' mapping (bpcheck init --style layers)")
    parser.add_argument("--loss", metavar="FUNCTION",
                        help="with --style layers: a function of MODEL, loss(scores, y) -> (loss, dscores), judged as "
                        "softmax cross-entropy (mean); default bpcheck's own (not judged)")
    parser.add_argument("--conventions", choices=course.CONVENTIONS, default="course",
                        help="check the layers against the course's conventions (default) or torch's")
    parser.add_argument("--batch", metavar="FILE.npz", help="the batch: an .npz with arrays X and y (default: drawn)")
    parser.add_argument("--batch-size", type=_positive_int, default=2, metavar="N", help="images in a drawn batch (default 2)")
    parser.add_argument("--input-shape", metavar="C,H,W",
                        help="the shape of one image (default: the model's input_dim, or --kwargs' input_dim)")
    parser.add_argument("--classes", type=_positive_int, metavar="K",
                        help="the number of classes (default: the model's num_classes, or --kwargs')")
    parser.add_argument("--seed", type=int, metavar="N", help="the seed of the drawn batch and directions (default: drawn, printed)")
    parser.add_argument("--timeout", type=_nonnegative_float, default=CALL_TIMEOUT, metavar="SECONDS",
                        help=f"time limit of one call of the model (default {CALL_TIMEOUT:g})")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--heatmap", metavar="FILE.png",
                        help="where the heat map of a broken gradient goes (default: next to --json, else "
                        "bpcheck-network-heatmap.png here); needs matplotlib (bpcheck[plots])")
    parser.add_argument("--no-heatmap", action="store_true", help="draw no heat map")
    add_sandbox_argument(parser)


def _usage(message: str) -> int:
    print(f"bpcheck verify-network: {message}", file=sys.stderr)
    return 2


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be integers separated by commas, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def target(args: argparse.Namespace) -> str:
    """The worker's target ``network:{json}`` of the model (ValueError naming a bad option)."""
    if not (args.model or args.factory):
        raise ValueError("say how to build the model: --model CLASS [--kwargs JSON] or --factory FUNCTION")
    try:
        kwargs = json.loads(args.kwargs)
    except ValueError as exc:
        raise ValueError(f"--kwargs is not JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"--kwargs must be a JSON object, got {args.kwargs!r}")
    if args.factory and kwargs:
        raise ValueError("--kwargs goes with --model, not --factory")
    path = Path(args.model_file)
    file = str(path.resolve()) if args.model_file.endswith(".py") or path.is_file() else args.model_file
    if args.style == "layers":
        if not args.factory or not args.mapping:
            raise ValueError("--style layers needs --factory FUNCTION (returning the list of layer objects) and "
                             "--mapping FILE.toml")
        if not Path(args.mapping).is_file():
            raise ValueError(f"--mapping {args.mapping}: no such file")
        return "network:" + json.dumps({"file": file, "factory": args.factory, "style": "layers",
                                        "mapping": str(Path(args.mapping).resolve()), "loss": args.loss})
    if args.mapping or args.loss:
        raise ValueError("--mapping and --loss go with --style layers")
    spec = {"file": file, "factory": args.factory} if args.factory else {"file": file, "class": args.model, "kwargs": kwargs}
    return "network:" + json.dumps({**spec, "style": args.style})


def batch(args: argparse.Namespace, hints: dict, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(X, y, where it came from)``: the --batch file's, or drawn from ``seed``."""
    if args.batch:
        try:
            with np.load(args.batch) as data:
                X, y = np.array(data["X"], np.float64), np.array(data["y"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"--batch {args.batch}: needs an .npz with arrays X and y ({exc})") from None
        if y.dtype.kind not in "iu" or y.shape != (X.shape[0],):
            raise ValueError(f"--batch {args.batch}: y must hold one integer label per row of X")
        return X, y.astype(np.int64), f"batch {args.batch}: X {X.shape}, y {y.tolist()}"
    kwargs = json.loads(args.kwargs)
    shape = _shape(args.input_shape) if args.input_shape else tuple(kwargs.get("input_dim") or hints.get("input_dim") or ())
    classes = args.classes or kwargs.get("num_classes") or hints.get("num_classes")
    if not shape or not classes:
        raise ValueError("the batch's shape is unknown: give --input-shape C,H,W and --classes K (or --batch FILE.npz)")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((args.batch_size, *shape))
    y = rng.integers(0, int(classes), args.batch_size)
    return X, y, f"batch drawn: X {X.shape} standard normal, y {y.tolist()} of {classes} classes"


def run(args: argparse.Namespace) -> int:
    from oracle.verify import run_in_style  # noqa: PLC0415

    return run_in_style(_run, args, "verify-network")


def _run(args: argparse.Namespace) -> int:
    from oracle.implementation import ImplementationFailure, LoadError, NotImplementedForConfig  # noqa: PLC0415
    from oracle.untrusted.client import RemoteImplementation, containment  # noqa: PLC0415
    from oracle.verify import _console, resolve_sandbox  # noqa: PLC0415

    started = time.perf_counter()
    try:
        spec = target(args)
        course.activate(args.style, args.conventions)
    except ValueError as exc:
        return _usage(str(exc))
    sandbox = resolve_sandbox(args.sandbox, "verify-network")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    try:
        impl = RemoteImplementation(spec, NAMES, timeout=args.timeout, sandbox=sandbox)
    except LoadError as exc:
        return _usage(str(exc))
    console = _console()
    with impl:
        if set(impl.provided()) != set(NAMES):
            return _usage("the worker did not build the model")
        try:
            names, arrays, hint_pairs = impl.call("network_params", [], {})
            hints = {k: v for k, v in hint_pairs}
            X, y, origin = batch(args, hints, seed)
        except ValueError as exc:
            return _usage(str(exc))
        except (ImplementationFailure, NotImplementedForConfig) as exc:
            return _usage(f"reading the model's params failed: {exc}")
        params = {n: np.asarray(a, np.float64) for n, a in zip(names, arrays)}
        cast = sorted({str(a.dtype) for a in arrays if isinstance(a, np.ndarray) and a.dtype != np.float64})
        console.print(f"bpcheck verify-network {args.model_file} ({args.model or args.factory}), style {args.style}: "
                      f"{origin}, seed {seed}{'' if args.seed is not None else f' (drawn; --seed {seed} repeats this run)'}; "
                      f"float64{' (parameters cast from ' + ', '.join(cast) + ')' if cast else ''}; "
                      f"model run in a worker ({containment(sandbox)})", highlight=False)
        header = course.header()
        if header:
            console.print(header, highlight=False)
        try:
            loss, grad_names, grad_arrays, records = impl.call("network_run", [names, [params[n] for n in names], X, y, True], {})
        except (ImplementationFailure, NotImplementedForConfig) as exc:
            what = "the network's forward, loss and backward" if args.style == "layers" else "model.loss(X, y)"
            console.print(f"{what} failed: {exc}", highlight=False)
            return 1
        return _judge(args, console, impl, names, params, X, y, loss, dict(zip(grad_names, grad_arrays)), records,
                      seed, started)


def _judge(args, console, impl, names, params, X, y, loss, grads, records, seed, started) -> int:
    from oracle.network import end_to_end, isolate, layers, report  # noqa: PLC0415
    from oracle.network.records import layer_calls  # noqa: PLC0415
    from oracle.ops import SPECS  # noqa: PLC0415

    calls = layer_calls(records, names)
    for call in calls:
        if args.style == "layers" and call.op != "cross_entropy":
            call.alone = f"layers:{Path(args.mapping).resolve()}"  # the layer object alone, through its mapping
    verdicts = [layers.judge(call) for call in calls]
    first = layers.first_broken(verdicts)
    fan_in = sum(SPECS[c.op].fan_in(c.case()) for c in calls if c.not_checked is None) or 1
    try:
        params_results = end_to_end.check(end_to_end.Model(impl, names, params, X, y), grads, fan_in, records, seed)
    except TypeError as exc:
        console.print(f"the end-to-end check could not run: {exc}", highlight=False)
        params_results = []
    extra = sorted(set(grads) - set(names))
    console.print(report.layer_table(verdicts, first))
    console.print(report.param_table(params_results))
    lines = report.explanation(verdicts, first, params_results)
    if extra:
        lines.append(f"grads has entries that are not parameters: {', '.join(extra)}")
    unchecked = [c for c in calls if c.not_checked]
    if unchecked:
        lines.append("not checked: " + "; ".join(f"layer {c.position} {c.function}: {c.not_checked}" for c in unchecked))
    iso = isolate.isolate(first.call, args.timeout, impl.sandbox) if first is not None else None
    lines += report.isolation_lines(iso)
    if first is not None and first.backward.mismatch is not None:
        lines.insert(1, f"worst element (on the recorded activations): {first.backward.mismatch.describe()}")
    if first is not None and not args.no_heatmap:
        path = args.heatmap or (str(Path(args.json).with_suffix("")) + "-heatmap.png" if args.json
                                else "bpcheck-network-heatmap.png")
        lines.append(report.heat_map(first, path))
    broken = first is not None or any(v.forward_broken for v in verdicts) or any(p.status == FAIL for p in params_results)
    seconds = time.perf_counter() - started
    lines.append(f"{'FAIL' if broken else 'pass'}: {sum(v.broken for v in verdicts)} of "
                 f"{sum(v.backward is not None for v in verdicts)} layers' backward broken, "
                 f"{sum(p.status == FAIL for p in params_results)} of {len(params_results)} parameter gradients wrong "
                 f"end to end, loss {loss!r} ({seconds:.1f} s)")
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)  # a line a test or grep can find whole
    if args.json:
        doc = report.as_json({"model": args.model_file, "seed": seed, "loss": loss, "seconds": seconds},
                             verdicts, first, params_results, iso, lines)
        from oracle.report import _json_safe, write_json  # noqa: PLC0415 - inf (a relative error at 0) as in verify's

        try:
            write_json(args.json, _json_safe(doc))
        except OSError as exc:
            return _usage(f"cannot write the report: {exc}")
    return 1 if broken else 0
