"""Leaves a grandchild (double fork, setsid) that rewrites the judge's --json report to 'passed' after the run.

It looks for the report the way an attacker would, in every process's command line, but rewrites only those in its
working directory: the run that judges it, not the other tests' runs beside it under ``pytest -n`` (without
``--sandbox`` a worker can write any file the user can, so it would rewrite theirs too: a fresh-clone CI run failed
``kill_the_judge``'s verify test that way, its report replaced by this module's while both ran)."""
import json
import os
import time
from pathlib import Path

import numpy as np

from refimpl import relu  # noqa: F401


def _report_paths():
    for pid in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg == b"--json" and Path(argv[i + 1].decode()).resolve().parent == Path.cwd().resolve():
                yield argv[i + 1].decode()
    target = os.environ.get("HOSTILE_REPORT")
    if target:
        yield target


def _rewrite_forever():
    for _ in range(60):
        time.sleep(0.5)
        for path in set(_report_paths()):
            try:
                Path(path).write_text(json.dumps({"summary": {"exit_code": 0, "FAIL": 0}, "results": []}))
            except OSError:
                pass


def relu_backward(grad_output, x):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            _rewrite_forever()
        os._exit(0)
    return np.zeros_like(grad_output)
