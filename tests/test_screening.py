"""The screen of `bpcheck verify` (``oracle.screening``): one draw per (op, dtype) serving every check.

A passing check's result comes from the screen; a failing one is run again alone, so its verdict is what it
was without the screen (the other verify tests hold that). Here: what only the screen sees. A failing case the
check's own draws miss is replayed and shrunk; a failure that does not happen again when the check runs alone
stays a FAIL, said so, never a pass.
"""

from __future__ import annotations

import json
import math
import textwrap

from oracle import screening, verify
from oracle.case import Case
from oracle.cli import main
from oracle.implementation import Implementation

# relu's backward is wrong on inputs of 40 elements or more: the first derandomized draws are smaller
LARGE_INPUTS_WRONG = """
    import numpy as np
    from refimpl import relu, relu_backward as _right

    def relu_backward(grad_output, x):
        g = _right(grad_output, x)
        return 2 * g if x.size >= 40 else g
"""

# relu's backward is wrong on its 30th call only (state kept between calls): wrong in whatever ran 30th
THIRTIETH_CALL_WRONG = """
    import numpy as np
    from refimpl import relu, relu_backward as _right
    calls = [0]

    def relu_backward(grad_output, x):
        calls[0] += 1
        g = _right(grad_output, x)
        return g + 1 if calls[0] == 30 else g
"""


def _config(examples: int) -> dict:
    return {"profile": "ci", "max_examples": examples, "derandomize": True, "seed": None, "timeout": 20.0,
            "shrink_time": 20.0, "budget": 600.0, "jobs": 1, "sandbox": False, "database": None,
            "require_full": False, "strict": False, "style": None, "conventions": "course"}


def test_a_failing_case_its_own_draws_miss_is_replayed_and_shrunk(tmp_path):
    path = tmp_path / "large_wrong.py"
    path.write_text(textwrap.dedent(LARGE_INPUTS_WRONG))
    with Implementation.load(str(path)) as impl:
        screened = screening.run_screen(impl, screening.unit("relu", "float64", ["forward", "backward"]),
                                        _config(100), lambda _: None)
        assert list(screened["recheck"]) == ["backward"], screened["recheck"]  # the forward passed: final
        [forward] = screened["results"][:1]
        assert forward["check"] == "forward" and forward["status"] == "pass" and forward["examples"] >= 100
        choices = tuple(screened["recheck"]["backward"])

        alone = verify.run_unit(impl, ("relu", "backward", "float64"), _config(1), lambda _: None)
        assert alone["status"] == "pass"  # one draw of its own: too small to fail
        replayed = verify.run_unit(impl, ("relu", "backward", "float64", choices), _config(1), lambda _: None)
    assert replayed["status"] == "FAIL", replayed["message"]
    screen_verdict = next(r for r in screened["results"] if r["check"] == "backward")["verdict"]
    shrunk, unshrunk = (eval(v["case"], {"Case": Case}) for v in (replayed["verdict"], screen_verdict))  # noqa: S307
    assert 40 <= math.prod(shrunk.shapes["x"]) <= math.prod(unshrunk.shapes["x"]), (shrunk, unshrunk)


def test_a_screen_failure_that_does_not_happen_again_alone_stays_a_failure(tmp_path, capsys):
    path = tmp_path / "thirtieth_call_wrong.py"
    path.write_text(textwrap.dedent(THIRTIETH_CALL_WRONG))
    json_path = tmp_path / "out.json"
    code = main(["verify", str(path), "--ops", "relu", "--dtype", "float64", "--profile", "ci", "--examples", "20",
                 "--jobs", "1", "--json", str(json_path)])
    out, _ = capsys.readouterr()
    assert code == 1, out
    failed = [r for r in json.loads(json_path.read_text())["results"] if r["status"] == "FAIL"]
    assert len(failed) == 1, [(r["check"], r["status"]) for r in failed]
    assert "not when this check ran alone" in failed[0]["rendered"]
    assert "not when this check ran alone" in " ".join(failed[0]["verdict"]["hints"])
