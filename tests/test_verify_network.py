"""``bpcheck verify-network`` on the example CS231n-style models (``examples/students/``), through the CLI.

Three tiny models (1 x 4 x 4 images, two filters, a batch of 2): the correct ``TwoConvNet``; the same model on a
``layers.py`` whose conv backward keeps the padding (both convs broken: the second is the first in backward order);
and one whose only broken layer is the later max-pool, so that both convs' parameter gradients are wrong end to end
while their own backward passes are right. The unit tests below pin the conversion of recorded calls and the
notebooks' relative error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from oracle import course
from oracle.cli import main
from oracle.network.end_to_end import rel_error
from oracle.network.records import layer_calls

STUDENTS = Path(__file__).resolve().parent.parent / "examples" / "students"


@pytest.fixture(autouse=True)
def contract_style():
    course.activate(None)
    yield
    course.activate(None)


def verify_network(tmp_path: Path, capsys, *args: str) -> tuple[int, dict, str]:
    report = tmp_path / "network.json"
    code = main(["verify-network", *args, "--seed", "1", "--json", str(report)])
    out, err = capsys.readouterr()
    return code, (json.loads(report.read_text()) if report.exists() else {}), out + err


def statuses(doc: dict) -> dict[str, str]:
    return {p["name"]: p["status"] for p in doc["parameters"]}


def test_the_correct_model_passes_every_layer_and_parameter(tmp_path, capsys):
    code, doc, out = verify_network(tmp_path, capsys, str(STUDENTS / "cs231n_convnet.py"), "--model", "TwoConvNet")
    assert code == 0, out
    assert doc["first_broken"] is None
    assert [layer["backward"]["status"] for layer in doc["layers"]] == ["pass"] * 8
    assert [layer["op"] for layer in doc["layers"]] == ["conv2d", "relu", "max_pool2d"] * 2 + ["linear", "cross_entropy"]
    assert set(statuses(doc).values()) == {"pass"} and set(statuses(doc)) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert "rel_error" in out and not (tmp_path / "network-heatmap.png").exists()  # the header may wrap: "(notebook)" below
    assert not [m for m in sys.modules if "cs231n_convnet" in m or "cs231n_layers" in m]  # only the worker imported it


def test_a_broken_conv_backward_names_the_second_conv_first(tmp_path, capsys):
    code, doc, out = verify_network(tmp_path, capsys, str(STUDENTS / "cs231n_convnet_buggy.py"), "--factory", "make_model")
    assert code == 1, out
    layers = {layer["position"]: layer for layer in doc["layers"]}
    assert doc["first_broken"] == 4 and layers[4]["backward_function"] == "conv_backward_naive"
    assert layers[4]["params"] == {"weight": "W2", "bias": "b2"}
    assert layers[4]["gradients"] == {"grad_x": "FAIL", "grad_weight": "pass", "grad_bias": "pass"}
    assert layers[1]["backward"]["status"] == "FAIL"  # the same function, whose dx nothing uses
    assert {k: v for k, v in statuses(doc).items()} == {"W1": "FAIL", "b1": "FAIL", "W2": "pass", "b2": "pass",
                                                       "W3": "pass", "b3": "pass"}
    assert "first broken layer, in backward order: layer 4, conv_backward_naive" in out
    assert "their parameter gradients (W1, b1) come out wrong end to end" in out
    iso = doc["isolation"]
    assert iso["verdict"]["status"] == "FAIL"
    assert any("conv_padding_cropped_at_end" in hint for hint in iso["verdict"]["hints"])
    assert "'x': (1, 1, 1, 1)" in iso["case"]  # shrunk to one pixel, one channel, one filter; the padding kept
    assert iso["command"].endswith("cs231n_buggy.py --ops conv2d")
    pytest.importorskip("matplotlib")
    assert (tmp_path / "network-heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_later_layer_is_named_though_the_earlier_parameters_are_the_ones_wrong(tmp_path, capsys):
    code, doc, out = verify_network(tmp_path, capsys, str(STUDENTS / "cs231n_convnet_late_bug.py"), "--factory",
                                    "make_model", "--no-heatmap")
    assert code == 1, out
    layers = {layer["position"]: layer for layer in doc["layers"]}
    assert doc["first_broken"] == 5 and layers[5]["op"] == "max_pool2d"
    assert [layers[i]["backward"]["status"] for i in (1, 2, 3, 4, 6, 7)] == ["pass"] * 6
    assert statuses(doc) == {"W1": "FAIL", "b1": "FAIL", "W2": "FAIL", "b2": "FAIL", "W3": "pass", "b3": "pass"}
    assert "come out wrong end to end although their own backward is right" in out
    assert doc["isolation"]["verdict"]["status"] == "FAIL" and "'x': (1, 1, 2, 2)" in doc["isolation"]["case"]
    assert not (tmp_path / "network-heatmap.png").exists()


@pytest.mark.parametrize("args, message", [
    ([], "--model CLASS [--kwargs JSON] or --factory FUNCTION"),
    (["--model", "TwoConvNet", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
    (["--factory", "make_model", "--kwargs", '{"reg": 1}'], "--kwargs goes with --model"),
    (["--model", "NoSuchNet"], "has no class 'NoSuchNet'"),
    (["--model", "TwoConvNet", "--input-shape", "1,x"], "--input-shape must be integers"),
])
def test_usage_errors_exit_2_and_say_what_is_wrong(tmp_path, capsys, args, message):
    code, _, out = verify_network(tmp_path, capsys, str(STUDENTS / "cs231n_convnet.py"), *args)
    assert code == 2 and message in out


# --------------------------------------------------------------------------- units


def test_recorded_affine_and_conv_calls_become_the_contract_ops():
    rng = np.random.default_rng(0)
    x, w, b, dout = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((12, 5)), rng.standard_normal(5), rng.standard_normal((2, 5))
    dx, dw, db = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((12, 5)), rng.standard_normal(5)
    cw = rng.standard_normal((4, 3, 3, 3))
    records = [
        ("forward", "conv_forward_naive", "/s/layers.py", -1, (x, cw, b[:4], ("dict", [("stride", 2), ("pad", 1)])),
         [None, "W1", "b1", None], x),
        ("forward", "affine_forward", "/s/layers.py", -1, (x, w, b), [None, "W2", "b2"], dout),
        ("backward", "affine_backward", "/s/buggy.py", 1, (dout,), [], (dx, dw, db)),
    ]
    conv, affine = layer_calls(records, ["W1", "b1", "W2", "b2"])
    assert conv.config == {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    assert conv.params == {"weight": "W1", "bias": "b1"} and conv.not_checked == "its backward was not called in this pass"
    assert affine.op == "linear" and affine.source == "/s/buggy.py" and affine.backward_order == 0
    assert affine.arrays["x"].shape == (2, 12) and np.array_equal(affine.arrays["weight"], w.T)
    assert np.array_equal(affine.grads[0], dx.reshape(2, 12)) and np.array_equal(affine.grads[1], dw.T)


def test_rel_error_is_the_course_notebooks():
    assert rel_error(np.array([1.0, 0.0]), np.array([1.0 + 2e-7, 0.0])) == pytest.approx(1e-7, rel=1e-6)
    assert rel_error(np.array([1e-9]), np.array([-1e-9])) == pytest.approx(2e-9 / 1e-8)  # the 1e-8 floor


# --------------------------------------------------------------------------- a list of layer objects (--style layers)


def verify_layers(tmp_path: Path, capsys, model: str, mapping: str = "dense_layers.toml", *args: str):
    return verify_network(tmp_path, capsys, str(STUDENTS / model), "--style", "layers", "--factory", "make_network",
                          "--mapping", str(STUDENTS / mapping), "--no-heatmap", *args)


def test_a_correct_list_of_layer_objects_passes_with_its_own_loss_judged(tmp_path, capsys):
    code, doc, out = verify_layers(tmp_path, capsys, "dense_network.py", "dense_layers.toml", "--loss",
                                   "softmax_cross_entropy")
    assert code == 0, out
    assert [(layer["function"], layer["op"]) for layer in doc["layers"]] == [
        ("Layer_Dense", "linear"), ("ReLU", "relu"), ("Layer_Dense", "linear"), ("softmax_cross_entropy", "cross_entropy")]
    assert [layer["backward"]["status"] for layer in doc["layers"]] == ["pass"] * 4
    assert statuses(doc) == {"1.weights": "pass", "1.biases": "pass", "3.weights": "pass", "3.biases": "pass"}
    assert not [m for m in sys.modules if m.startswith("dense_")]  # only the worker imported the student's files


def test_a_dense_dx_with_the_weight_untransposed_is_named_though_the_first_layers_parameters_are_wrong(tmp_path, capsys):
    code, doc, out = verify_layers(tmp_path, capsys, "dense_network_buggy.py", "dense_layers.toml", "--loss",
                                   "softmax_cross_entropy")
    assert code == 1, out
    layers = {layer["position"]: layer for layer in doc["layers"]}
    assert doc["first_broken"] == 3 and layers[3]["function"] == "Output_Dense"
    assert layers[3]["gradients"] == {"grad_x": "FAIL", "grad_weight": "pass", "grad_bias": "pass"}
    assert [layers[i]["backward"]["status"] for i in (1, 2, 4)] == ["pass"] * 3
    assert statuses(doc) == {"1.weights": "FAIL", "1.biases": "FAIL", "3.weights": "pass", "3.biases": "pass"}
    assert "first broken layer, in backward order: layer 3, Output_Dense.backward" in out
    assert "come out wrong end to end although their own backward is right" in out
    assert "not checked alone: its class Output_Dense is not the mapping's Layer_Dense" in out


def test_dense_layers_that_accumulate_their_gradients_fail_on_a_training_loops_second_step(tmp_path, capsys):
    code, doc, out = verify_layers(tmp_path, capsys, "dense_network_accumulating.py", "dense_layers_buggy.toml")
    assert code == 1, out
    layers = {layer["position"]: layer for layer in doc["layers"]}
    assert len(layers) == 3  # bpcheck's own loss is no layer of the student's
    assert doc["first_broken"] == 3 and layers[1]["backward"]["status"] == "FAIL"
    assert layers[3]["gradients"] == {"grad_x": "pass", "grad_weight": "FAIL", "grad_bias": "FAIL"}
    assert set(statuses(doc).values()) == {"FAIL"}
    assert any("accumulate" in hint for hint in doc["isolation"]["verdict"]["hints"])
    assert doc["isolation"]["command"].endswith("dense_layers_buggy.toml --ops linear")


@pytest.mark.parametrize("args, message", [
    (["--style", "layers", "--factory", "make_network"], "--style layers needs --factory FUNCTION"),
    (["--factory", "make_network", "--mapping", str(STUDENTS / "dense_layers.toml")], "go with --style layers"),
    (["--style", "layers", "--factory", "make_network", "--mapping", str(STUDENTS / "dense_layers.toml"), "--loss",
      "no_such_loss"], "has no function 'no_such_loss'"),
    (["--style", "layers", "--factory", "make_network", "--mapping", "{tmp}/relu_only.toml"],
     "layer 1 is a Layer_Dense, a class the mapping does not name (it names ReLU)"),
])
def test_layer_object_usage_errors_exit_2_and_say_what_is_wrong(tmp_path, capsys, args, message):
    (tmp_path / "relu_only.toml").write_text(f'module = "{STUDENTS / "dense_layers.py"}"\nrelu = {{ new = "ReLU()" }}\n')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, out = verify_network(tmp_path, capsys, str(STUDENTS / "dense_network.py"), *args)
    assert code == 2 and message in out, out
