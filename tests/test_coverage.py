"""Coverage said honestly, and every distinct defect with its own smallest case (issue 10, sections 6 and 7).

* An implementation that declines part of the configuration space with
  NotImplementedError is ``partial``, with the fraction verified and the
  configuration features declined, in the table, a line per op, JSON, JUnit
  and pytest's warning; ``--require-full`` makes it a failure.
* A check with two defects (a max-pool backward that reads the window from the
  unpadded input at padded coordinates: IndexError where the window runs past
  the end, wrong gradients where it does not) reports both, each shrunk to its
  own case, through ``bpcheck verify`` and under ``pytest --impl``.

Broken modules are written to ``tmp_path`` and import refimpl for what they do right.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from oracle import coverage, defects
from oracle.case import Case
from oracle.cases.record import OPTIONAL_FUNCTIONS
from oracle.cli import main
from oracle.diagnosis import HINT
from oracle.ops import SPECS
from oracle.verdict import FAIL, Mismatch, Verdict

FAST = ["--seed", "1", "--shrink-time", "5"]

NO_GROUPS_NO_DILATION = """
    from refimpl import conv2d as _conv2d, conv2d_backward as _conv2d_backward


    def _decline(dilation, groups):
        if groups > 1:
            raise NotImplementedError("groups > 1")
        if tuple(dilation) != (1, 1):
            raise NotImplementedError("dilation")


    def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
        _decline(dilation, groups)
        return _conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


    def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
        _decline(dilation, groups)
        return _conv2d_backward(grad_output, x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                groups=groups)
"""

#: reads each max-pool window from the unpadded input at padded coordinates: crashes on some shapes, wrong on others
PADDED_COORDINATES = Path(__file__).resolve().parent.parent / "examples" / "max_pool_padded_coordinates.py"



def module(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def verify(capsys, *args) -> tuple[int, str]:
    code = main(["verify", *map(str, args)])
    return code, capsys.readouterr().out


def table_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("│")]


# --------------------------------------------------------------------------- the features of a case


def _conv(**config) -> Case:
    base = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    shapes = {"x": (1, 2, 5, 5), "weight": (2, 2, 3, 3), "bias": (2,), "grad_output": (1, 2, 3, 3)}
    return Case("conv2d", shapes, {**base, **config})


def test_features_are_read_from_the_config_against_the_defaults():
    conv = SPECS["conv2d"]
    assert conv.features_of(_conv()) == ()
    assert conv.features_of(_conv(groups=2, dilation=(1, 2), padding=(0, 1))) == ("groups", "dilation", "padding")
    no_bias = Case("conv2d", {**_conv().shapes, "bias": None}, _conv().config)
    assert conv.features_of(no_bias) == ("bias=None",)
    pool = SPECS["max_pool2d"]
    plain = {"kernel_size": (2, 2), "stride": None, "padding": (0, 0), "dilation": (1, 1), "ceil_mode": False}
    shapes = {"x": (1, 1, 4, 4), "grad_output": (1, 1, 2, 2)}
    assert pool.features_of(Case("max_pool2d", shapes, plain)) == ()
    assert pool.features_of(Case("max_pool2d", shapes, {**plain, "stride": (2, 2)})) == ()  # = kernel: the default
    assert pool.features_of(Case("max_pool2d", shapes, {**plain, "stride": (1, 2), "ceil_mode": True})) == (
        "stride != kernel_size", "ceil_mode")
    avg = {"kernel_size": (2, 2), "stride": None, "padding": (1, 1), "ceil_mode": False,
           "count_include_pad": False, "divisor_override": 3}
    assert SPECS["avg_pool2d"].features_of(Case("avg_pool2d", shapes, avg)) == (
        "padding", "count_include_pad=False", "divisor_override")
    bce = Case("binary_cross_entropy", {"input": (3,), "target": (3,), "grad_output": (3,)}, {"reduction": "none"})
    assert SPECS["binary_cross_entropy"].features_of(bce) == ("reduction='none'",)


def test_features_of_other_ranks_compare_every_axis_with_the_default():
    """conv1d's 1-tuples and conv3d's triples: a default on every axis is no feature (not a pair to compare with)."""
    shapes1 = {"x": (1, 2, 5), "weight": (2, 2, 3), "bias": (2,), "grad_output": (1, 2, 3)}
    plain1 = {"stride": (1,), "padding": (0,), "dilation": (1,), "groups": 1}
    assert SPECS["conv1d"].features_of(Case("conv1d", shapes1, plain1)) == ()
    assert SPECS["conv1d"].features_of(Case("conv1d", shapes1, {**plain1, "stride": (2,)})) == ("stride",)
    shapes3 = {"x": (1, 2, 5, 5, 5), "weight": (2, 2, 3, 3, 3), "bias": None, "grad_output": (1, 2, 3, 3, 3)}
    plain3 = {"stride": (1, 1, 1), "padding": (0, 0, 0), "dilation": (1, 1, 1), "groups": 1}
    assert SPECS["conv3d"].features_of(Case("conv3d", shapes3, {**plain3, "dilation": (1, 1, 2)})) == ("dilation", "bias=None")
    transposed = {"x": (1, 2, 3, 3), "weight": (2, 1, 2, 2), "bias": (1,), "grad_output": (1, 1, 7, 7)}
    config = {"stride": (2, 2), "padding": (0, 0), "output_padding": (1, 0), "groups": 1, "dilation": (1, 1)}
    assert SPECS["conv_transpose2d"].features_of(Case("conv_transpose2d", transposed, config)) == ("stride", "output_padding")


def test_declined_features_are_those_no_checked_case_has():
    checked, declined = Counter(), Counter()
    for case in [_conv(padding=(1, 1)), _conv(stride=(2, 2))]:
        coverage.record(checked, "conv2d", case)
    for case in [_conv(groups=2, padding=(1, 1)), _conv(dilation=(2, 2)), _conv(groups=2)]:
        coverage.record(declined, "conv2d", case)
    summary = coverage.summary("conv2d", checked, declined)
    assert summary["checked"] == 2 and summary["declined"] == 3 and summary["fraction"] == 0.4
    assert summary["declined_features"] == ["groups", "dilation"]  # padding was checked: not declined
    assert coverage.describe(summary) == (
        "verified on 40% of the drawn configurations (2 of 5): groups and dilation declined")
    assert coverage.percent(0.001) == "<1%" and coverage.percent(0.999) == ">99%"


# --------------------------------------------------------------------------- partial through bpcheck verify


def test_declined_groups_and_dilation_is_partial(tmp_path, capsys):
    path = module(tmp_path, "no_groups_no_dilation", NO_GROUPS_NO_DILATION)
    json_path, junit_path = tmp_path / "out.json", tmp_path / "out.xml"
    code, out = verify(capsys, path, "--ops", "conv2d", "--dtype", "float64", "--examples", "30",
                       "--json", json_path, "--junit", junit_path, *FAST)
    assert code == 0, out  # partial is not a failure without --require-full
    rows = table_rows(out)
    optional = [row for row in rows if " jvp " in row or " double_backward " in row]  # optional parts it does not define
    rows = [row for row in rows if row not in optional]
    assert len(optional) == 2 and all(" not implemented " in row for row in optional), optional
    assert len(rows) == 5 and all(" partial " in row and "groups and dilation declined" in row for row in rows)
    line = re.search(r"^conv2d: verified on (\d+)% of the configuration space \((\d+) of (\d+) cases\): "
                     r"groups and dilation declined$", out, re.M)
    assert line, out
    assert 0 < int(line[1]) < 100 and 0 < int(line[2]) < int(line[3])
    assert out.rstrip().splitlines()[-1].startswith("OK: 7 op/check/dtype results: 5 partial, 2 not implemented")

    document = json.loads(json_path.read_text())
    assert document["summary"]["partial"] == 5 and document["summary"]["pass"] == 0
    assert document["summary"]["exit_code"] == 0
    assert document["coverage"]["conv2d"]["declined_features"] == ["groups", "dilation"]
    assert 0 < document["coverage"]["conv2d"]["fraction"] < 1
    for r in [r for r in document["results"] if r["check"] not in OPTIONAL_FUNCTIONS]:
        cov = r["coverage"]
        assert r["status"] == "partial" and cov["declined_features"] == ["groups", "dilation"]
        assert cov["checked"] > 0 and cov["declined"] > 0 and cov["checked"] + cov["declined"] == r["examples"]
        assert cov["fraction"] == pytest.approx(cov["checked"] / r["examples"], abs=1e-4)
        assert "groups and dilation declined" in r["message"]

    suite = ET.parse(junit_path).getroot()
    assert suite.get("failures") == "0"
    for case in [c for c in suite.iter("testcase") if not any(k in (c.get("name") or "") for k in OPTIONAL_FUNCTIONS)]:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["status"] == "partial" and props["declined_features"] == "groups, dilation"
        assert 0 < float(props["verified_fraction"]) < 1
        assert case.find("failure") is None and case.find("skipped") is None
        assert "groups and dilation declined" in case.find("system-out").text


def test_require_full_turns_partial_into_a_failure(tmp_path, capsys):
    path = module(tmp_path, "no_groups_no_dilation", NO_GROUPS_NO_DILATION)
    json_path, junit_path = tmp_path / "out.json", tmp_path / "out.xml"
    code, out = verify(capsys, path, "--ops", "conv2d,relu", "--dtype", "float64", "--examples", "10", "--require-full",
                       "--json", json_path, "--junit", junit_path, *FAST)
    assert code == 1, out
    assert out.rstrip().splitlines()[-1].startswith("FAILED: 12 op/check/dtype results: 5 partial, 7 not implemented")
    assert "(--require-full: 5 not verified on every drawn configuration)" in out  # relu is not provided: out of scope
    document = json.loads(json_path.read_text())
    assert document["settings"]["require_full"] is True and document["summary"]["exit_code"] == 1
    suite = ET.parse(junit_path).getroot()
    assert suite.get("failures") == "5"
    conv = [c for c in suite.iter("testcase") if c.get("classname") == "conv2d" and c.find("failure") is not None]
    assert len(conv) == 5  # jvp and double_backward: not implemented, optional parts of the contract, not failures
    assert all(c.find("failure").get("type") == "partial" for c in conv)
    assert all("--require-full" in c.find("failure").get("message") for c in conv)


# --------------------------------------------------------------------------- distinct defects


def _verdict(message="", mismatch=None, hints=(), check="backward") -> Verdict:
    return Verdict("conv2d", check, FAIL, None, message, mismatch, list(hints))


def test_failure_identities():
    grad_x = Mismatch("grad_x", (0, 0, 0, 0), 1.0, 2.0, 1e-9, 1, 4)
    assert defects.identity(_verdict("raised: conv2d_backward raised IndexError: index 3 is out of bounds")) == \
        "crash: IndexError"
    assert defects.identity(_verdict("hang: conv2d_backward did not return within 1 s")) == "hang"
    assert defects.identity(_verdict(mismatch=grad_x)) == "wrong grad_x"
    direction = Mismatch("<grad_weight, v0>", "random direction v0", 1.0, 2.0, 1e-9, 1, 1)
    assert defects.identity(_verdict("expected = central differences", direction, check="finite_differences")) == \
        "wrong grad_weight"
    hint = HINT.format(name="conv_unflipped_filter", description="the filter is not flipped")
    assert defects.identity(_verdict(mismatch=grad_x, hints=[hint])) == "wrong grad_x (conv_unflipped_filter)"
    # one class per identity, always the same one: Hypothesis tells failures apart by it
    crash = defects.failure_class("crash: IndexError")
    assert crash is defects.failure_class("crash: IndexError") is not defects.failure_class("wrong grad_x")
    assert issubclass(crash, AssertionError)


def test_a_defect_matching_two_mistakes_on_some_cases_stays_one():
    grad_x = Mismatch("grad_x", (0, 0, 0, 0), 1.0, 2.0, 1e-9, 1, 4)
    hint = {name: HINT.format(name=name, description="...") for name in ("cropped", "not_dilated", "unflipped")}
    ids = defects.Identities()
    first = ids.of(_verdict(mismatch=grad_x, hints=[hint["cropped"]]))
    assert ids.of(_verdict(mismatch=grad_x, hints=[hint["not_dilated"], hint["cropped"]])) == first
    assert ids.label(first) == "wrong grad_x (cropped)"
    assert ids.of(_verdict(mismatch=grad_x, hints=[hint["unflipped"]])) != first  # another mistake: another defect
    # a case that matches no catalogued mistake is no evidence of another defect
    assert ids.of(_verdict(mismatch=grad_x)) == first
    assert ids.of(_verdict(mismatch=Mismatch("grad_weight", (0,), 1.0, 2.0, 1e-9, 1, 1))) == "wrong grad_weight"


def test_crash_and_wrong_gradients_are_two_defects_each_with_its_own_case(tmp_path, capsys):
    path = str(PADDED_COORDINATES)
    json_path = tmp_path / "out.json"
    # the default --shrink-time: the search for the second defect comes after the first is shrunk
    code, out = verify(capsys, path, "--ops", "max_pool2d", "--dtype", "float64", "--examples", "60",
                       "--json", json_path, "--seed", "1")
    assert code == 1
    backward = next(row for row in table_rows(out) if " backward " in row)
    assert " FAIL " in backward and "2 distinct defects: crash: IndexError; wrong grad_x" in backward
    assert "FAIL: max_pool2d backward vs torch autograd (float64): defect 1 of 2: crash: IndexError" in out
    assert "FAIL: max_pool2d backward vs torch autograd (float64): defect 2 of 2: wrong grad_x" in out

    result = next(r for r in json.loads(json_path.read_text())["results"] if r["check"] == "backward")
    assert result["status"] == "FAIL" and result["verdict"] == result["defects"][0]["verdict"]
    crash, wrong = result["defects"]
    assert crash["identity"] == "crash: IndexError" and "IndexError" in crash["message"]
    assert wrong["identity"] == "wrong grad_x" and wrong["verdict"]["mismatch"]["array"] == "grad_x"
    crash_case, wrong_case = (eval(d["verdict"]["case"], {"Case": Case}) for d in (crash, wrong))  # noqa: S307
    assert crash_case != wrong_case
    for case in (crash_case, wrong_case):  # both need padding; each shrunk: a single image and channel
        assert case.config["padding"] != (0, 0)
        assert case.shapes["x"][:2] == (1, 1)
    assert "rebuild: from oracle.case import Case" in crash["rendered"] and "grad_x" in wrong["rendered"]


# --------------------------------------------------------------------------- under pytest --impl


SMALL_PROFILE = """
    from hypothesis import Phase, settings

    import oracle.pytest_plugin  # noqa: F401 - registers 'ci'

    settings.register_profile("small", parent=settings.get_profile("ci"), max_examples=60,
                              phases=[p for p in Phase if p is not Phase.explain])
    settings.register_profile("small100", parent=settings.get_profile("small"), max_examples=100)
"""


def _pytest(tmp_path: Path, impl: Path, test: str, *options: str, profile: str = "small") -> subprocess.CompletedProcess:
    """The generated suite (``--pyargs oracle.suite``) in a fresh pytest, 'ci' with 60 examples (``small``) or 100
    (``small100``): a test of ``impl``. The draws are derandomized from the property's source: they change with it."""
    module(tmp_path, "bpcheck_small_profile", SMALL_PROFILE)
    env = {**os.environ, "CI": "1", "COLUMNS": "250", "PYTHONPATH": str(tmp_path)}
    env.pop("BPCHECK_PROFILE", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rA",
               "-p", "bpcheck_small_profile", "--hypothesis-profile", profile,
               "--pyargs", "oracle.suite", f"--impl={impl}", "-k", test, *options]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)


def test_pytest_warns_partial_and_fails_with_require_full(tmp_path):
    path = module(tmp_path, "no_groups_no_dilation", NO_GROUPS_NO_DILATION)
    warned = _pytest(tmp_path, path, "test_conv2d_forward_float64")
    assert warned.returncode == 0, warned.stdout
    assert re.search(r"NotImplementedForSomeConfigurations: .*conv2d forward \(float64\) partial: verified on \d+% "
                     r"of the drawn configurations \(\d+ of 60\): groups(, | and )dilation((, | and )[a-z_]+)* declined", warned.stdout)
    gated = _pytest(tmp_path, path, "test_conv2d_forward_float64", "--require-full")
    assert gated.returncode == 1, gated.stdout
    assert re.search("groups(, | and )dilation", gated.stdout) and "--require-full" in gated.stdout


def test_pytest_shows_both_defects(tmp_path):
    path = str(PADDED_COORDINATES)
    run = _pytest(tmp_path, path, "test_max_pool2d_backward_float64", profile="small100")  # the second defect is rarer
    assert run.returncode == 1
    found = re.search(r"max_pool2d backward vs torch autograd \(float64\): 2 distinct defects, each shrunk to its own "
                      r"smallest case: ([^\n(]+)", run.stdout)
    assert found and set(found.group(1).strip().split("; ")) == {"crash: IndexError", "wrong grad_x"}, run.stdout
    assert "CheckFailed[crash: IndexError]" in run.stdout and "CheckFailed[wrong grad_x]" in run.stdout
    assert run.stdout.count("rebuild: from oracle.case import Case; case = Case(op='max_pool2d'") >= 2
