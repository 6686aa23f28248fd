"""The pytest plugin: ``--impl``, the Hypothesis profiles, and the ``impl`` fixture.

Registered as a ``pytest11`` entry point named ``oracle.pytest_plugin`` (so
that after ``pip install`` it works from any repository) and listed in the
project's ``conftest.py`` under the same name, so it is loaded exactly once.
The profile applies to bpcheck's generated tests (``oracle.suite``) only; this
project's ``conftest.py`` also loads it for its other Hypothesis tests.

Profiles (``--hypothesis-profile NAME`` or ``BPCHECK_PROFILE=NAME``; default
``ci`` when the ``CI`` environment variable is set, else ``dev``):

    ci        derandomized (the same examples every run), sized so the whole default run fits in CI
    dev       random examples (a new seed each run, printed on failure), same size
    thorough  ten times as many examples as ci, random; for nightly runs
    replay    only the failures stored in the example database (--database), no new case drawn
"""

from __future__ import annotations

import os
import warnings

import pytest
from hypothesis import HealthCheck, Phase, settings

CI_EXAMPLES = 200

_common = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, database=None, **_common)
settings.register_profile("dev", max_examples=CI_EXAMPLES, **_common)
settings.register_profile("thorough", max_examples=10 * CI_EXAMPLES, **_common)
# replays what the example database (--database, oracle.database) holds and draws nothing new
settings.register_profile("replay", max_examples=CI_EXAMPLES, phases=[Phase.explicit, Phase.reuse, Phase.shrink],
                          **_common)


def default_profile() -> str:
    return os.environ.get("BPCHECK_PROFILE") or ("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser):
    group = parser.getgroup("bpcheck", "gradient verification")
    group.addoption(
        "--impl",
        default="refimpl",
        metavar="MODULE",
        help="implementation under test: a module (package.module) or a .py file implementing the contract "
        "(default: refimpl), or torch:MODULE for a module of torch ops (gradients by torch autograd); it is "
        "imported and called only in a worker process of its own",
    )
    group.addoption(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="where the ops of a torch:MODULE implementation run (default: cpu, $BPCHECK_DEVICE); cuda without a "
        "GPU stops the session with exit 2",
    )
    group.addoption(
        "--bpcheck-dtype",
        choices=("float32", "float64", "both", "float16", "bfloat16"),
        default=None,
        dest="bpcheck_dtype",
        help="the dtype(s) bpcheck's generated tests check in, as bpcheck verify --dtype (default: both = float64 and "
        "float32); float16 and bfloat16 on request (bfloat16: torch:/jax: modules only, NumPy has no bfloat16); "
        "the tests are generated for these dtypes only (test_conv2d_backward_bfloat16, ...)",
    )
    group.addoption(
        "--shrink-time",
        type=float,
        default=float(os.environ.get("BPCHECK_SHRINK_TIME", "60")),
        metavar="SECONDS",
        help="stop shrinking a failure after this long and report the smallest case so far "
        "(default: $BPCHECK_SHRINK_TIME, else 60; a hang costs --timeout per attempt)",
    )
    group.addoption(
        "--database",
        default=None,
        dest="bpcheck_database",
        metavar="SPEC",
        help="Hypothesis example database of bpcheck's tests, replayed first and fed with every failure: none, a "
        "directory, redis://HOST:PORT/DB, ro:SPEC (read only), SPEC,SPEC (all of them) (oracle.database); "
        "default: $BPCHECK_DATABASE, else the profile's (ci: none; dev, thorough: Hypothesis's own directory)",
    )
    group.addoption(
        "--sandbox",
        action="store_true",
        help="run the implementation's worker in bubblewrap (no network, read-only filesystem but a scratch "
        "folder, resource limits); without bubblewrap, says so and runs without",
    )
    group.addoption(
        "--style",
        choices=("cs231n", "dls", "layers"),
        default=None,
        help="--impl is written to a course API (cs231n: layers.py function pairs with a cache; dls: the deep-"
        "learning specialization's channels-last conv_forward/pool_forward; layers: layer objects, --impl being "
        "their mapping file), as bpcheck verify --style",
    )
    group.addoption(
        "--conventions",
        choices=("course", "torch"),
        default="course",
        help="with --style: check the course's conventions (default) or torch's",
    )
    group.addoption(
        "--require-full",
        action="store_true",
        default=False,
        help="fail a check when the implementation declined some of its configurations with NotImplementedError "
        "(default: pass with a warning saying the fraction verified and the features declined)",
    )
    group.addoption(
        "--bpcheck-strict",
        action="store_true",
        default=False,
        dest="bpcheck_strict",
        help="an imprecise gradient (right rule, digits lost beyond rounding) or a backward that is not deterministic "
        "(two identical calls differ) fails the test instead of warning "
        "(pytest's own --strict is taken; bpcheck verify calls it --strict)",
    )


#: the profile bpcheck's generated tests run under in this session (set at configure time)
active_profile = default_profile()
#: seconds of shrinking after a failure is found (``--shrink-time``; set at configure time)
shrink_time = float(os.environ.get("BPCHECK_SHRINK_TIME", "60"))
#: --require-full: a declined configuration fails the check (set at configure time)
require_full = False
#: the target the worker loads: --impl, as STYLE:MODULE with --style (set at configure time)
impl_target = "refimpl"
#: the example database of bpcheck's tests (``--database``, ``oracle.database``); None: the profile's (set at configure time)
database = None
#: the dtypes bpcheck's tests are generated for (``--bpcheck-dtype``; set at configure time, before ``oracle.suite`` is
#: collected)
dtypes = ("float64", "float32")


def pytest_configure(config):
    # Only bpcheck's own tests take the profile (oracle.suite applies it per test): loaded as an entry
    # point in someone else's project, the plugin must not change their Hypothesis settings.
    global active_profile, database, require_full, shrink_time, impl_target, dtypes
    active_profile = config.getoption("hypothesis_profile", default=None) or default_profile()
    impl_target = _styled_target(config)
    dtypes = _dtypes(config)
    from oracle.database import check_reachable, open_database, resolve  # noqa: PLC0415

    spec = resolve(config.getoption("bpcheck_database", default=None))
    try:
        check_reachable(spec)
        database = open_database(spec)
    except (ValueError, TypeError) as exc:
        raise pytest.UsageError(f"--database / $BPCHECK_DATABASE: {exc}") from None
    require_full = bool(config.getoption("require_full", default=False))
    shrink_time = config.getoption("--shrink-time", default=shrink_time)


def _dtypes(config) -> tuple[str, ...]:
    """``--bpcheck-dtype`` as the dtypes to generate tests for; bfloat16 on NumPy code stops the session (exit 2)."""
    from oracle.verify import resolve_dtypes  # noqa: PLC0415

    try:
        return tuple(resolve_dtypes(impl_target, config.getoption("bpcheck_dtype", default=None), None))
    except ValueError as exc:
        pytest.exit(f"--impl={impl_target}: {str(exc).replace('--dtype', '--bpcheck-dtype')}", returncode=2)


def _styled_target(config) -> str:
    """``--impl``, prefixed with ``--style`` (and the style and conventions made this process's, ``oracle.course``)."""
    from types import SimpleNamespace  # noqa: PLC0415

    from oracle.verify import resolve_style  # noqa: PLC0415

    target = config.getoption("--impl", default="refimpl")
    args = SimpleNamespace(module=target, style=config.getoption("--style", default=None),
                           conventions=config.getoption("--conventions", default="course"))
    try:
        return resolve_style(args)[0]
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config):
    s = settings.get_profile(active_profile)
    return (
        f"bpcheck: implementation under test = {config.getoption('--impl')}; hypothesis profile = {active_profile} "
        f"(max_examples={s.max_examples}, derandomize={s.derandomize})"
        + (f"; database = {database!r}" if database is not None else "")
    )


@pytest.fixture(scope="session")
def impl(request):
    """The implementation under test (``--impl``), in its own worker process, ended with the session."""
    from oracle.implementation import Implementation, LoadError  # noqa: PLC0415
    from oracle.untrusted.client import sandbox_unavailable  # noqa: PLC0415

    from oracle.verify import resolve_device  # noqa: PLC0415

    target = impl_target
    try:
        resolve_device(target, request.config.getoption("--device"))
    except ValueError as exc:
        pytest.exit(f"--impl={target}: {exc}", returncode=2)
    sandbox = request.config.getoption("--sandbox")
    if sandbox and sandbox_unavailable():
        warnings.warn(f"--sandbox unavailable, running without it: {sandbox_unavailable()}", stacklevel=1)
        sandbox = False
    try:
        loaded = Implementation.load(target, sandbox=sandbox)
    except LoadError as exc:
        pytest.exit(f"--impl={target}: {exc}", returncode=2)
    yield loaded
    loaded.close()
