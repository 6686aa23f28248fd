"""A stored corpus of cases with torch's answers: ``bpcheck record`` writes one, ``bpcheck replay`` checks against it.

``record`` draws cases from the strategies of ``oracle.strategies`` (``N`` per
op per dtype, the same ones for the same ``--seed``), adds the explicit
examples of ``oracle.examples``, runs each through torch (float64 autograd) and
stores the actual input arrays, the output gradient and torch's forward output
and gradients in ONE compressed ``.npz`` file.

``replay`` checks an implementation against such a file without torch: nothing
on its path imports torch (nor Hypothesis). Each stored case is compared
exactly like the ``forward`` and ``backward`` checks of ``oracle.checks`` do it
(same result checks, same ``oracle.tolerances.for_sum`` tolerance, same
located ``Mismatch``), against the stored expected values instead of a live
torch call. The repository ships a small corpus (``oracle/data/corpus.npz``,
the default file), so a change in the rules, or in torch's answers after an
upgrade (re-record and replay), shows up as a named, located difference.

File format (``FORMAT`` version ``VERSION``), all arrays, no pickles:

    __meta__                  0-d unicode array: JSON header (below)
    <id>/<input>              each input array present in the case, in the case's dtype
                              (``x``, ``weight``, ``bias``, ``input``, ``target`` ...)
    <id>/grad_output          the output gradient, in the case's dtype
    <id>/expected/output      torch's forward output, float64
    <id>/expected/grad_<name> torch's gradient of each differentiable input present, float64
    <id>/reference_error/...  float32 cases only: torch's float32 answer minus its float64 one, for
                              ``output`` and each ``grad_<name>`` (the float32 slack, oracle.tolerances)

The header: ``format``, ``version``, ``date`` (UTC, ISO 8601), the versions that
produced it (``torch``, ``numpy``, ``hypothesis``, ``python``, ``bpcheck``),
``seed``, ``cases_per_op`` (drawn, per op per dtype), ``ops``, ``dtypes``,
``untrusted_skipped`` (cases torch is not trusted on, left out), ``rejected``
(``recipe``, ``source``, ``error`` of each case torch raised on, left out) and
``cases``: one record per case with ``id``, ``op``, ``dtype``, ``source``
(``"drawn"`` or ``"example"``), ``recipe`` (``repr(case)``: op, shapes,
configuration, dtype, value recipe, seed), ``arrays`` and ``expected`` (the
array names stored under ``<id>/``). The configuration is read back from the
recipe with ``ast.literal_eval`` (never ``eval``).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from oracle.case import DTYPES, Case
from oracle.checks import compare_backward, compare_forward, reference_errors
from oracle.implementation import Implementation, ImplementationFailure, LoadError, NotImplementedForConfig
from oracle.ops import SPECS, OpSpec
from oracle.verdict import FAIL, IMPRECISE, NOT_IMPLEMENTED, PASS, SKIPPED, Verdict

FORMAT = "bpcheck-corpus"
#: version of the file format; ``load`` refuses any other
VERSION = 1
META_KEY = "__meta__"
#: drawn cases per op per dtype of the shipped corpus (and the ``record`` default)
DEFAULT_CASES = 4
DEFAULT_SEED = 0
DEFAULT_OUT = "corpus.npz"

CHECKS = ("forward", "backward")


class CorpusError(Exception):
    """The corpus file is missing, unreadable, corrupt, truncated or of another format version (one-line message)."""


def shipped_path() -> Path:
    """The corpus shipped inside the ``oracle`` package: the default file of ``bpcheck replay``."""
    return Path(str(resources.files("oracle").joinpath("data", "corpus.npz")))


# ----------------------------------------------------------------------------- the stored cases


@dataclass
class StoredCase:
    """One recorded case: its recipe, its actual arrays and torch's answers."""

    id: str
    case: Case
    source: str
    arrays: dict[str, np.ndarray | None]
    output: np.ndarray
    grads: dict[str, np.ndarray | None]
    output_error: np.ndarray | None = None
    grad_errors: dict[str, np.ndarray | None] = field(default_factory=dict)

    @property
    def op(self) -> str:
        return self.case.op

    @property
    def dtype(self) -> str:
        return self.case.dtype


@dataclass
class Corpus:
    path: str
    meta: dict
    cases: list[StoredCase] = field(default_factory=list)

    def get(self, case_id: str) -> StoredCase:
        for stored in self.cases:
            if stored.id == case_id:
                return stored
        raise KeyError(case_id)

    def describe(self) -> str:
        m = self.meta
        return (
            f"corpus {self.path}: format {m.get('format')} v{m.get('version')}, {len(self.cases)} cases, "
            f"recorded {m.get('date', '?')} with torch {m.get('torch', '?')}, numpy {m.get('numpy', '?')}"
        )


def case_from_recipe(recipe: str) -> Case:
    """Rebuild a Case from its ``repr`` without ``eval``: every field must be a Python literal."""
    tree = ast.parse(recipe, mode="eval").body
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Case" and not tree.args):
        raise ValueError(f"not a Case(...) recipe: {recipe[:80]!r}")
    return Case(**{kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords})


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load(path: str | os.PathLike) -> Corpus:
    """Read a corpus file completely; anything wrong with it is a ``CorpusError`` with a one-line message."""
    path = str(path)
    if not os.path.isfile(path):
        raise CorpusError(f"{path}: no such corpus file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise CorpusError(f"{path}: not a bpcheck corpus (not a .npz archive; write one with `bpcheck record`)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a truncated zip raises BadZipFile, OSError, ValueError ...
        raise CorpusError(f"{path}: corrupt or truncated corpus: cannot open the archive ({_one_line(exc)})") from None
    with archive:
        if META_KEY not in archive.files:
            raise CorpusError(f"{path}: not a bpcheck corpus (no {META_KEY} header)")
        try:
            meta = json.loads(str(archive[META_KEY][()]))
        except Exception as exc:  # noqa: BLE001
            raise CorpusError(f"{path}: corrupt corpus: unreadable {META_KEY} header ({_one_line(exc)})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CorpusError(f"{path}: not a bpcheck corpus (header format is not {FORMAT!r})")
        if meta.get("version") != VERSION:
            raise CorpusError(
                f"{path}: corpus format version {meta.get('version')!r}, this bpcheck reads version {VERSION}; "
                f"re-record it with `bpcheck record`"
            )
        if not isinstance(meta.get("cases"), list):
            raise CorpusError(f"{path}: corrupt corpus: the {META_KEY} header has no list of cases")
        corpus = Corpus(path, meta)
        for record in meta["cases"]:
            try:
                corpus.cases.append(_read_case(archive, record))
            except CorpusError as exc:
                raise CorpusError(f"{path}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - CRC / zlib errors of a damaged member, a bad record ...
                where = record.get("id", "?") if isinstance(record, dict) else "?"
                raise CorpusError(f"{path}: corrupt corpus: cannot read case {where} ({_one_line(exc)})") from None
    return corpus


def _read_case(archive, record: dict) -> StoredCase:
    cid = record["id"]
    case = case_from_recipe(record["recipe"])
    arrays: dict[str, np.ndarray | None] = {}
    for name, shape in case.shapes.items():
        if shape is None:
            arrays[name] = None
            continue
        a = archive[f"{cid}/{name}"]
        if a.shape != tuple(shape) or a.dtype != case.dtype_of(name):  # class indices stay int64 in a float32 case
            raise CorpusError(
                f"corrupt corpus: case {cid} array {name} is {a.dtype}{list(a.shape)}, its recipe says {case.dtype_of(name)}{list(shape)}"
            )
        arrays[name] = a
    output = archive[f"{cid}/expected/output"]
    spec = SPECS.get(case.op)
    grads: dict[str, np.ndarray | None] = {}
    for name in spec.differentiable if spec else ():
        grads[name] = None if arrays.get(name) is None else archive[f"{cid}/expected/grad_{name}"]

    def error(name: str) -> np.ndarray | None:
        key = f"{cid}/reference_error/{name}"
        return archive[key] if key in archive.files else None

    grad_errors = {name: error(f"grad_{name}") for name in grads}
    return StoredCase(cid, case, record.get("source", "?"), arrays, output, grads, error("output"), grad_errors)


# ----------------------------------------------------------------------------- record (needs torch and Hypothesis)


def draw_cases(op: str, dtype: str, n: int, seed: int = DEFAULT_SEED) -> list[Case]:
    """The first ``n`` distinct cases the op's strategy draws for ``dtype`` under Hypothesis seed ``seed``.

    Deterministic: ``@seed`` fixes Hypothesis' random source, the database is
    off and only the generate phase runs (no replay of saved examples, no shrinking).
    """
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: PLC0415 - replay must not need it
    from hypothesis import seed as hypothesis_seed  # noqa: PLC0415

    drawn: dict[str, Case] = {}

    @hypothesis_seed(seed)
    @settings(
        max_examples=4 * n + 10, derandomize=False, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False,
    )
    @given(case=SPECS[op].cases(dtype))
    def collect(case):
        if len(drawn) < n:
            drawn.setdefault(repr(case), case)

    if n > 0:
        collect()
    return list(drawn.values())


def _versions() -> dict[str, str]:
    import hypothesis  # noqa: PLC0415
    import torch  # noqa: PLC0415

    try:
        bpcheck = metadata.version("bpcheck")
    except metadata.PackageNotFoundError:
        bpcheck = "unknown"
    return {
        "torch": torch.__version__, "numpy": np.__version__, "hypothesis": hypothesis.__version__,
        "python": platform.python_version(), "bpcheck": bpcheck,
    }


def record(
    out: str | os.PathLike,
    *,
    cases: int = DEFAULT_CASES,
    ops: list[str] | None = None,
    seed: int = DEFAULT_SEED,
    examples: bool = True,
) -> dict:
    """Draw, run through torch and write a corpus to ``out``; returns its header."""
    from oracle.examples import examples_for  # noqa: PLC0415

    ops = list(ops or SPECS)
    chosen: list[tuple[Case, str, dict]] = []
    for op in ops:
        for dtype in DTYPES:
            chosen += [(c, "drawn", {}) for c in draw_cases(op, dtype, cases, seed)]
            if examples:
                chosen += [(c, "example", {}) for c in examples_for(op, dtype)]
    return record_cases(out, chosen, {"seed": seed, "cases_per_op": cases, "ops": ops})


def record_cases(out: str | os.PathLike, chosen: list[tuple[Case, str, dict]], header: dict) -> dict:
    """Run ``chosen`` cases through torch and write them, with ``header``'s fields, as a corpus to ``out``.

    ``chosen``: ``(case, source, extra)``, ``extra`` being more fields of the case's record. A case whose recipe
    came before is left out (the first one is kept). Returns the corpus header.
    """
    from oracle import torch_oracle  # noqa: PLC0415

    meta = {
        "format": FORMAT, "version": VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        **_versions(),
        **header, "dtypes": list(DTYPES), "expected_dtype": "float64",
        "untrusted_skipped": 0, "rejected": [], "cases": [],
    }
    arrays: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for case, source, extra in chosen:
        recipe = repr(case)
        if recipe in seen:
            continue
        seen.add(recipe)
        spec = SPECS[case.op]
        if spec.torch_untrusted(case):
            meta["untrusted_skipped"] += 1
            continue
        if repr(case_from_recipe(recipe)) != recipe:
            raise ValueError(f"the recipe of a {case.op} case does not read back as itself: {recipe}")
        cid = f"c{len(meta['cases']):04d}"
        try:
            stored = _store_case(spec, case, cid, arrays, torch_oracle)
        except Exception as exc:  # noqa: BLE001 - torch refuses the case: leave it out, say so
            for key in [k for k in arrays if k.startswith(f"{cid}/")]:
                del arrays[key]
            meta["rejected"].append({"recipe": recipe, "source": source, "error": _one_line(exc)})
            continue
        meta["cases"].append({"id": cid, "op": case.op, "dtype": case.dtype, "source": source, "recipe": recipe,
                              **extra, **stored})
    arrays[META_KEY] = np.array(json.dumps(meta))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)  # a file object: no ".npz" appended to the name
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; a corpus is not
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return meta


def _store_case(spec: OpSpec, case: Case, cid: str, arrays: dict, torch_oracle) -> dict:
    # the stored arrays have exactly the recipe's shapes (a 0-d grad_output must stay 0-d)
    values = {name: None if a is None else np.reshape(a, case.shapes[name]) for name, a in case.arrays().items()}
    inputs = {name: values[name] for name in spec.inputs}
    output, grads = torch_oracle.run(spec.name, inputs, case.config, spec.differentiable, values["grad_output"])
    stored, expected = [], ["output"]
    for name, a in values.items():
        if a is not None:
            arrays[f"{cid}/{name}"] = a
            stored.append(name)
    arrays[f"{cid}/expected/output"] = np.asarray(output, dtype=np.float64)
    for name, g in grads.items():
        if g is not None:
            arrays[f"{cid}/expected/grad_{name}"] = np.asarray(g, dtype=np.float64)
            expected.append(f"grad_{name}")
    output_error, grad_errors = reference_errors(spec, case, values, output, grads)
    if output_error is not None:
        arrays[f"{cid}/reference_error/output"] = output_error
        for name, e in grad_errors.items():
            if e is not None:
                arrays[f"{cid}/reference_error/grad_{name}"] = e
    return {"arrays": stored, "expected": expected}


# ----------------------------------------------------------------------------- replay (no torch, no Hypothesis)


def _judge(impl: Implementation, spec: OpSpec, stored: StoredCase, check: str, corpus: Corpus) -> Verdict:
    """The forward or backward check of one stored case, as a Verdict (never raises for the implementation's doing)."""
    fn = spec.name if check == "forward" else spec.backward_name
    case = stored.case
    if impl.function(fn) is None:
        return Verdict(spec.name, check, NOT_IMPLEMENTED, case, f"{impl.label} has no {fn}")
    arrays = dict(stored.arrays)
    try:
        if check == "forward":
            verdict = compare_forward(impl, spec, case, arrays, stored.output, stored.output_error)
        else:
            verdict = compare_backward(impl, spec, case, arrays, stored.grads, stored.grad_errors)
    except NotImplementedForConfig as exc:
        return Verdict(spec.name, check, NOT_IMPLEMENTED, case, f"NotImplementedError: {exc}")
    except ImplementationFailure as exc:
        verdict = Verdict(spec.name, check, FAIL, case, f"{exc.kind}: {exc.message}")
    if verdict.failed:
        note = (
            f"expected: torch {corpus.meta.get('torch', '?')} (float64) as stored in case {stored.id} ({stored.source}) "
            f"of {corpus.path}; its arrays: oracle.corpus.load(path).get({stored.id!r}).arrays"
        )
        verdict.message = f"{verdict.message}\n{note}" if verdict.message else note
    return verdict


@dataclass
class Replay:
    """The verdicts of one replay, in corpus order: ``(stored case, check, verdict)``."""

    corpus: Corpus
    label: str
    results: list[tuple[StoredCase, str, Verdict]] = field(default_factory=list)

    @property
    def failures(self) -> list[Verdict]:
        return [v for _, _, v in self.results if v.failed]

    def counts(self) -> dict[tuple[str, str], dict[str, dict[str, int]]]:
        """``{(op, dtype): {check: {status: count}}}``."""
        table: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
        for stored, check, verdict in self.results:
            row = table.setdefault((stored.op, stored.dtype), {c: {} for c in CHECKS})
            row[check][verdict.status] = row[check].get(verdict.status, 0) + 1
        return table

    def render(self) -> str:
        lines = [self.corpus.describe(), f"implementation: {self.label}", ""]
        op_width = max([len("op"), *(len(op) for op, _ in self.counts())])
        header = f"{'op':<{op_width}}  {'dtype':<7}  {'forward':<26}  backward"
        lines += [header, "-" * (len(header) + 20)]
        order = {op: i for i, op in enumerate(SPECS)}
        for (op, dtype), row in sorted(self.counts().items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][0], kv[0][1] != "float64")):
            cells = [_cell(row[c]) for c in CHECKS]
            lines.append(f"{op:<{op_width}}  {dtype:<7}  {cells[0]:<26}  {cells[1]}")
        failures = self.failures
        if failures:
            lines += ["", f"{len(failures)} difference(s):", ""]
            for verdict in failures:
                lines += [verdict.render(), ""]
        totals: dict[str, int] = {}
        for _, _, verdict in self.results:
            totals[verdict.status] = totals.get(verdict.status, 0) + 1
        summary = ", ".join(f"{totals.get(s, 0)} {s}" for s in (PASS, IMPRECISE, FAIL, NOT_IMPLEMENTED) if totals.get(s) or s not in (NOT_IMPLEMENTED, IMPRECISE))
        replayed = len({stored.id for stored, _, _ in self.results})
        lines += ["", f"{'FAILED' if failures else 'passed'}: {len(self.results)} checks of {replayed} stored cases: {summary}"]
        return "\n".join(lines)


def _cell(statuses: dict[str, int]) -> str:
    parts = [f"{statuses[s]} {s}" for s in (PASS, IMPRECISE, FAIL, NOT_IMPLEMENTED, SKIPPED) if statuses.get(s)]
    return ", ".join(parts) or "-"


def replay(impl: Implementation, corpus: Corpus, ops: list[str] | None = None) -> Replay:
    """Check ``impl`` against every stored case (of ``ops``) of ``corpus``: forward and backward."""
    result = Replay(corpus, impl.label)
    for stored in corpus.cases:
        spec = SPECS.get(stored.op)
        if spec is None or (ops and stored.op not in ops):
            continue
        for check in CHECKS:
            # an expected array of zeros allows ~1e-322: dividing an error by it overflows to inf, as meant
            with np.errstate(over="ignore", divide="ignore"):
                result.results.append((stored, check, _judge(impl, spec, stored, check, corpus)))
    return result


# ----------------------------------------------------------------------------- the subcommands


class _Subcommand:
    """What ``oracle.cli`` needs of a subcommand: ``HELP``, ``__doc__``, ``add_arguments(parser)``, ``run(args)``."""

    def __init__(self, help: str, doc: str, add_arguments, run):
        self.HELP = help
        self.__doc__ = doc
        self.add_arguments = add_arguments
        self.run = run


def _record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="FILE", help="corpus file to write (default: %(default)s)")
    parser.add_argument("--cases", type=int, default=None, metavar="N",
                        help=f"drawn cases per op per dtype, on top of the explicit examples (default: {DEFAULT_CASES})")
    parser.add_argument("--ops", nargs="+", choices=list(SPECS), metavar="OP", help="ops to record (default: all)")
    parser.add_argument("--seed", type=int, default=None, help=f"Hypothesis seed of the drawn cases (default: {DEFAULT_SEED})")
    parser.add_argument("--no-examples", dest="examples", action="store_false",
                        help="leave out the explicit examples of oracle.examples")
    parser.add_argument("--from-database", metavar="SPEC", default=None,
                        help="record instead the cases an example database holds (the failures found by verify, "
                        "pytest or fuzz; SPEC as --database: a directory, redis://HOST:PORT/DB, ...), nothing drawn; "
                        "exit 2 if it holds none")


def _run_record(args: argparse.Namespace) -> int:
    if args.from_database is not None:
        return _run_record_from_database(args)
    cases = DEFAULT_CASES if args.cases is None else args.cases
    if cases < 0:
        print("bpcheck record: error: --cases must be >= 0", file=sys.stderr)
        return 2
    meta = _attempt(args.out, lambda: record(args.out, cases=cases, ops=args.ops, examples=args.examples,
                                             seed=DEFAULT_SEED if args.seed is None else args.seed))
    if meta is None:
        return 2
    drawn = sum(1 for c in meta["cases"] if c["source"] == "drawn")
    size = os.path.getsize(args.out)
    print(
        f"wrote {args.out}: {len(meta['cases'])} cases ({drawn} drawn, {len(meta['cases']) - drawn} examples) "
        f"of {len(meta['ops'])} op(s) x {len(meta['dtypes'])} dtypes, seed {meta['seed']}, "
        f"torch {meta['torch']}, numpy {meta['numpy']}; {size / 1024:.0f} KiB"
    )
    return _say_left_out(meta)


def _attempt(out, recording):
    """``recording()``'s result, or None once a one-line error is printed (a bad spec, no torch, an unwritable file)."""
    try:
        return recording()
    except ValueError as exc:
        print(f"bpcheck record: error: {exc}", file=sys.stderr)
    except ImportError as exc:
        print(f"bpcheck record: error: recording needs torch and hypothesis ({_one_line(exc)})", file=sys.stderr)
    except OSError as exc:
        print(f"bpcheck record: error: cannot write {out} ({_one_line(exc)})", file=sys.stderr)
    return None


def _say_left_out(meta: dict) -> int:
    if meta["untrusted_skipped"]:
        print(f"  left out {meta['untrusted_skipped']} case(s) torch is not trusted on")
    for rejected in meta["rejected"]:
        print(f"  left out ({rejected['source']}), torch rejects it: {rejected['error'][:200]}\n    {rejected['recipe']}", file=sys.stderr)
    return 0


def _run_record_from_database(args: argparse.Namespace) -> int:
    """``bpcheck record --from-database SPEC``: ``oracle.corpus_from_database``; 2 if nothing was exported."""
    from oracle import corpus_from_database as exporter  # noqa: PLC0415

    given = [name for name, value in (("--cases", args.cases), ("--seed", args.seed)) if value is not None]
    if not args.examples:
        given.append("--no-examples")
    if given:
        print(f"bpcheck record: error: {', '.join(given)}: nothing is drawn with --from-database (it records the "
              f"database's cases, and no explicit example)", file=sys.stderr)
        return 2
    exported = _attempt(args.out, lambda: exporter.export(args.from_database, args.out, args.ops))
    if exported is None:
        return 2
    found, meta = exported
    print("\n".join(exporter.summary(found, args.from_database, args.ops)))
    if meta is None:
        print(f"bpcheck record: nothing exported, {args.out} not written: the database holds no case of "
              f"{'the ops ' + ', '.join(args.ops) if args.ops else 'any op'} (an empty corpus would check nothing)",
              file=sys.stderr)
        return 2
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(meta['cases'])} cases from the database, torch {meta['torch']}, "
          f"numpy {meta['numpy']}; {size / 1024:.0f} KiB")
    code = _say_left_out(meta)
    if not meta["cases"]:
        print(f"bpcheck record: none of the database's cases could be recorded (see above): {args.out} holds none",
              file=sys.stderr)
        return 2
    return code


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", metavar="MODULE", help="implementation under test: a dotted module name or a .py file")
    parser.add_argument("file", nargs="?", default=None, metavar="FILE",
                        help="corpus file (default: the corpus shipped with bpcheck, oracle/data/corpus.npz)")
    parser.add_argument("--ops", nargs="+", choices=list(SPECS), metavar="OP", help="replay only these ops (default: all)")
    from oracle.verify import add_device_argument, add_sandbox_argument  # noqa: PLC0415

    add_sandbox_argument(parser)
    add_device_argument(parser)


def _run_replay(args: argparse.Namespace) -> int:
    path = args.file or shipped_path()
    try:
        corpus = load(path)
    except CorpusError as exc:
        print(f"bpcheck replay: error: {exc}", file=sys.stderr)
        return 2
    from oracle.verify import resolve_device, resolve_sandbox  # noqa: PLC0415

    try:
        resolve_device(args.module, args.device)
    except ValueError as exc:
        print(f"bpcheck replay: error: {exc}", file=sys.stderr)
        return 2
    try:
        impl = Implementation.load(args.module, sandbox=resolve_sandbox(args.sandbox, "replay"))
    except LoadError as exc:
        print(f"bpcheck replay: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    try:
        result = replay(impl, corpus, args.ops)
    except KeyboardInterrupt:
        print("bpcheck replay: interrupted", file=sys.stderr)
        return 130
    finally:
        impl.close()
    print(result.render())
    if result.failures:
        return 1
    if not any(verdict.status == PASS for _, _, verdict in result.results):
        what = f"the ops {', '.join(args.ops)}" if args.ops else "any op"
        print(f"bpcheck replay: nothing was compared: {args.module} passed no stored case of {what} in "
              f"{path} (a run that compared nothing is not a pass)", file=sys.stderr)
        return 2
    return 0


RECORD = _Subcommand(
    "draw cases, run them through torch and store inputs and torch's answers in a corpus file",
    """Record a corpus: N drawn cases per op per dtype (the same for the same --seed) plus the
explicit examples, with their actual arrays, configuration, output gradient and torch's
float64 forward output and gradients, in one compressed .npz file. Needs torch.
With --from-database SPEC: instead the cases an example database holds (the failures found by
verify, pytest or fuzz), so each found bug becomes a regression case replayed without torch;
exit code 2 if the database holds none of the chosen ops.""",
    _record_arguments,
    _run_record,
)

REPLAY = _Subcommand(
    "check a module's forward and backward against a stored corpus, without torch",
    """Replay a stored corpus against MODULE (dotted name or .py file) without importing torch:
per op and dtype the pass/FAIL counts, then every difference named and located.
Exit code 0: no difference; 1: a difference; 2: an unreadable corpus or module, or nothing compared
(an empty corpus, an --ops filter that matches nothing, a module that declines every case).""",
    _replay_arguments,
    _run_replay,
)
