"""Students' code as it is written: course-style APIs (``--style cs231n``, ``--style dls``), through the CLI.

The example files (``examples/students/``) are a correct and a buggy file per course. Each runs through
``bpcheck verify`` in this process (the checks in child processes, the student's code in a worker, as
always), on the ops it concerns and few cases, so the file stays cheap. The unit tests below them pin the
pieces the verdicts rest on: the expressible space, the steering onto it, the course's max-pool tie rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from oracle import course
from oracle.case import Case
from oracle.cli import main
from oracle.implementation import Implementation, NotImplementedForConfig
from oracle.ops import SPECS
from oracle.untrusted.styles.constraints import reason

STUDENTS = Path(__file__).resolve().parent.parent / "examples" / "students"
FAST = ["--examples", "12", "--shrink-time", "5", "--profile", "ci"]


@pytest.fixture(autouse=True)
def contract_style():
    """Every test starts and ends without a course style active in this process."""
    course.activate(None)
    yield
    course.activate(None)


def verify(tmp_path: Path, capsys, *args: str) -> tuple[int, list[dict], str]:
    report = tmp_path / "report.json"
    code = main(["verify", *args, *FAST, "--json", str(report)])
    out, _ = capsys.readouterr()
    return code, json.loads(report.read_text())["results"] if report.exists() else [], out


def hints(results: list[dict], op: str, check: str) -> str:
    return "\n".join(h for r in results if r["op"] == op and r["check"] == check and r["verdict"]
                     for h in r["verdict"].get("hints", []))


# --------------------------------------------------------------------------- the examples, through the CLI


def test_correct_cs231n_layers_pass_and_report_what_the_api_cannot_express(tmp_path, capsys):
    code, results, out = verify(tmp_path, capsys, "--style", "cs231n", str(STUDENTS / "cs231n_layers.py"),
                                "--ops", "conv2d,max_pool2d,linear")
    assert code == 0, out
    assert results and not [r for r in results if r["status"] == "FAIL"]
    assert {r["status"] for r in results} == {"pass"}
    assert "style cs231n: the course's conventions" in out
    # the explicit edge examples are not steered: those the API cannot express are counted, never checked
    assert "drawn cases not expressible in the course's API" in out and "groups > 1 (the API has none)" in out
    conv = [r for r in results if r["op"] == "conv2d"]
    assert sum(r["coverage"].get("not_expressible", 0) for r in conv) > 0


def test_cs231n_conv_backward_that_keeps_the_padding_is_caught_and_named(tmp_path, capsys):
    code, results, out = verify(tmp_path, capsys, "--style", "cs231n", str(STUDENTS / "cs231n_buggy.py"),
                                "--ops", "conv2d")
    assert code == 1, out
    statuses = {r["check"]: r["status"] for r in results}
    assert statuses["forward"] == "pass" and statuses["backward"] == "FAIL"
    assert "conv_padding_cropped_at_end" in hints(results, "conv2d", "backward")


def test_correct_dls_file_passes_with_the_course_tie_convention(tmp_path, capsys):
    code, results, out = verify(tmp_path, capsys, "--style", "dls", str(STUDENTS / "dls_step_by_step.py"),
                                "--ops", "conv2d,max_pool2d")
    assert code == 0, out
    assert {r["status"] for r in results} == {"pass"}
    assert "every tied maximum" in out  # the convention is stated in the header


def test_dls_tie_convention_fails_against_torch_conventions_with_the_hint(tmp_path, capsys):
    code, results, out = verify(tmp_path, capsys, "--style", "dls", str(STUDENTS / "dls_step_by_step.py"),
                                "--ops", "max_pool2d", "--conventions", "torch")
    assert code == 1, out
    backward = next(r for r in results if r["check"] == "backward")
    assert backward["status"] == "FAIL"
    assert "maxpool_ties_all" in hints(results, "max_pool2d", "backward")


def test_dls_conv_backward_that_ignores_the_stride_in_dw_is_caught_and_named(tmp_path, capsys):
    code, results, out = verify(tmp_path, capsys, "--style", "dls", str(STUDENTS / "dls_buggy.py"), "--ops", "conv2d")
    assert code == 1, out
    statuses = {r["check"]: r["status"] for r in results}
    assert statuses["forward"] == "pass" and statuses["backward"] == "FAIL"
    assert "conv_grad_weight_stride_not_dilated" in hints(results, "conv2d", "backward")


def test_style_and_target_prefix_that_disagree_are_a_usage_error(tmp_path, capsys):
    code = main(["verify", "--style", "dls", f"cs231n:{STUDENTS / 'cs231n_layers.py'}"])
    _, err = capsys.readouterr()
    assert code == 2 and "disagree" in err


def test_pytest_impl_takes_the_style(tmp_path):
    """``pytest --impl FILE --style cs231n``: the buggy conv backward fails with its hint, its relu passes."""
    env = {**os.environ, "CI": "1", "COLUMNS": "250"}
    env.pop("BPCHECK_PROFILE", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rA",
               "--pyargs", "oracle.suite", f"--impl={STUDENTS / 'cs231n_buggy.py'}", "--style", "cs231n",
               "-k", "test_conv2d_backward_float64 or test_relu_forward_float64", "--shrink-time", "5"]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "1 failed, 1 passed" in run.stdout and "conv_padding_cropped_at_end" in run.stdout


# --------------------------------------------------------------------------- the pieces


def _case(op, **kw) -> Case:
    return Case(op=op, shapes=kw.pop("shapes"), config=kw.pop("config"), dtype="float64", seed=0, **kw)


def test_expressible_space_of_cs231n_conv():
    shapes = {"x": (1, 1, 5, 5), "weight": (1, 1, 3, 3), "bias": None, "grad_output": (1, 1, 3, 3)}
    plain = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    assert reason("cs231n", "conv2d", plain, shapes) is None
    assert "one stride" in reason("cs231n", "conv2d", {**plain, "stride": (1, 2)}, shapes)
    assert "one pad" in reason("cs231n", "conv2d", {**plain, "padding": (0, 1)}, shapes)
    assert "dilation" in reason("cs231n", "conv2d", {**plain, "dilation": (2, 2)}, shapes)
    assert "tile" in reason("cs231n", "conv2d", {**plain, "stride": (2, 2)}, {**shapes, "x": (1, 1, 6, 6)})
    assert reason("dls", "conv2d", plain, {**shapes, "weight": (1, 1, 3, 2)}).startswith("a non-square window")
    with pytest.raises(ValueError, match="style must be one of"):
        reason("keras", "conv2d", plain, shapes)
    with pytest.raises(ValueError, match="--style must be one of"):
        course.activate("keras")


@pytest.mark.parametrize(("style", "op"), [("cs231n", "conv2d"), ("cs231n", "max_pool2d"), ("cs231n", "cross_entropy"),
                                         ("dls", "conv2d"), ("dls", "max_pool2d"), ("dls", "avg_pool2d")])
def test_steered_cases_are_expressible_and_valid(style, op):
    """Every steered case is inside the style's space and is a valid call (torch takes it, the shapes agree)."""
    from oracle import torch_oracle

    spec = SPECS[op]

    @settings(max_examples=40, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(case=spec.cases("float64"))
    def run(case):
        steered = course.steer(style, case)
        assert reason(style, op, steered.config, steered.shapes) is None
        arrays = steered.arrays()
        out, _ = torch_oracle.run(op, {n: arrays[n] for n in spec.inputs}, steered.config, spec.differentiable)
        assert out.shape == arrays["grad_output"].shape

    run()


def test_all_ties_rule_on_a_hand_computed_example():
    """x = [[1, 3], [3, 2]] in one 2x2 window, G = 5: both 3s get 5 (torch: only the first, at (0, 1))."""
    case = _case("max_pool2d", shapes={"x": (1, 1, 2, 2), "grad_output": (1, 1, 1, 1)},
                 config={"kernel_size": (2, 2), "stride": None, "padding": (0, 0), "dilation": (1, 1),
                         "ceil_mode": False})
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    dx = course.max_pool_all_ties(x, np.full((1, 1, 1, 1), 5.0), case)
    assert dx.tolist() == [[[[0.0, 5.0], [5.0, 0.0]]]]
    # overlapping windows (stride 1 over a row [3, 3, 1]): the middle 3 is a maximum of both windows
    case = _case("max_pool2d", shapes={"x": (1, 1, 1, 3), "grad_output": (1, 1, 1, 2)},
                 config={"kernel_size": (1, 2), "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
                         "ceil_mode": False})
    dx = course.max_pool_all_ties(np.array([[[[3.0, 3.0, 1.0]]]]), np.array([[[[2.0, 7.0]]]]), case)
    assert dx.tolist() == [[[[2.0, 9.0, 0.0]]]]


def test_the_worker_declines_what_the_api_cannot_express():
    impl = Implementation.load(f"cs231n:{STUDENTS / 'cs231n_layers.py'}")
    try:
        assert {"conv2d", "conv2d_backward", "max_pool2d", "cross_entropy"} <= set(impl.provided())
        x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2))
        with pytest.raises(NotImplementedForConfig, match="not expressible in the cs231n API: different strides"):
            impl.function("conv2d")(x, w, None, stride=(1, 2), padding=(0, 0), dilation=(1, 1), groups=1)
        out = impl.function("conv2d")(x, w, None, stride=(2, 2), padding=(0, 0), dilation=(1, 1), groups=1)
        assert out.tolist() == [[[[4.0, 4.0], [4.0, 4.0]]]]
    finally:
        impl.close()


# --------------------------------------------------------------------------- layer objects


def test_layer_objects_through_a_mapping_pass(tmp_path, capsys):
    mapping = STUDENTS / "dense_layers.toml"
    assert len(mapping.read_text().splitlines()) <= 10
    code, results, out = verify(tmp_path, capsys, "--style", "layers", str(mapping), "--ops", "linear,relu")
    assert code == 0, out
    assert {r["status"] for r in results} == {"pass"}


def test_a_dense_layer_that_accumulates_its_gradients_is_caught(tmp_path, capsys):
    code, results, out = verify(tmp_path, capsys, "--style", "layers", str(STUDENTS / "dense_layers_buggy.toml"),
                                "--ops", "linear")
    assert code == 1, out
    backward = next(r for r in results if r["check"] == "backward")
    assert backward["status"] == "FAIL"
    assert "accumulate across calls" in hints(results, "linear", "backward")


def test_init_writes_a_short_commented_template_and_never_overwrites(tmp_path, capsys):
    target = tmp_path / "bpcheck-layers.toml"
    assert main(["init", "--style", "layers", str(target)]) == 0
    lines = target.read_text().splitlines()
    assert len(lines) <= 10 and all("#" in line for line in lines[1:])  # every line says what it is for
    assert main(["init", "--style", "layers", str(target)]) == 2
    assert "not overwritten" in capsys.readouterr().err


def test_a_bad_mapping_is_a_load_error_naming_the_key(tmp_path, capsys):
    mapping = tmp_path / "bad.toml"
    mapping.write_text(f'module = "{STUDENTS / "dense_layers.py"}"\n[linear]\nnew = "Layer_Dense(1, 1)"\nweigth = "W"\n')
    code = main(["verify", "--style", "layers", str(mapping), "--ops", "linear"])
    assert code == 2 and "unknown key(s) weigth" in capsys.readouterr().err
