"""A real third-party library wrapped to the contract must pass where it is right: torch itself, through bpcheck verify."""

from pathlib import Path

from oracle.cli import main

WRAPPER = Path(__file__).resolve().parent.parent / "examples" / "torch_contract.py"


def test_torch_wrapped_to_the_contract_passes_every_check(capsys):
    assert main(["verify", str(WRAPPER), "--profile", "ci", "--examples", "10"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "188 pass" in out
