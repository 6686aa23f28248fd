"""The boundary itself: the wire format, and a worker that crashes, hangs, lies or leaves processes behind.

The end-to-end trials of hostile implementations through every entry point are in tests/test_hostile.py;
these are the pieces they rest on, each checked directly.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from oracle.implementation import Implementation, ImplementationFailure, NotImplementedForConfig, call
from oracle.untrusted import protocol
from oracle.untrusted.client import containment


def _pair():
    a, b = socket.socketpair()
    return a, b


def test_values_cross_exactly_with_their_dtype_shape_and_structure():
    values = (np.arange(6, dtype=np.complex128).reshape(2, 3), np.array([True, False]), np.ones((2, 2), np.float16),
              np.array(3.0), np.zeros((0, 3)), np.arange(4, dtype=">f8"), np.ones((3, 4))[:, ::2],
              np.array([np.nan, np.inf, -0.0]))
    a, b = _pair()
    arrays: list = []
    protocol.send(a, {"value": protocol.encode(values + (None, [1, "s"], 2.5), arrays)}, arrays)
    header, received = protocol.receive(b)
    got = protocol.decode(header["value"], received)
    assert isinstance(got, tuple) and len(got) == len(values) + 3
    for want, have in zip(values, got):
        assert have.dtype == want.dtype and have.shape == want.shape
        assert have.tobytes() == want.tobytes()  # bit for bit: NaN, inf and -0.0 included
    assert got[-3:] == (None, [1, "s"], 2.5)


def test_what_cannot_cross_keeps_only_its_type_name():
    import fractions

    arrays: list = []
    tree = protocol.encode([np.array([object()]), fractions.Fraction(1, 3), float("nan")], arrays)
    got = protocol.decode(tree, arrays)
    assert [protocol.type_name(v) for v in got] == ["ndarray of dtype object", "Fraction", "float"]
    assert arrays == []


@pytest.mark.parametrize(("header", "reason"), [
    ({"arrays": [{"dtype": "|O", "shape": [1]}]}, "dtype that may not cross"),
    ({"arrays": [{"dtype": "<f8", "shape": [-1]}]}, "malformed shape"),
    ({"arrays": [{"dtype": "<f8", "shape": [1 << 20, 1 << 20]}]}, "more than"),
    ({"arrays": "x"}, "'arrays' list"),
    ([1, 2], "'arrays' list"),
])
def test_malformed_frames_are_refused(header, reason):
    a, b = _pair()
    body = json.dumps(header).encode()
    a.sendall(struct.pack("<Q", len(body)) + body)
    with pytest.raises(protocol.ProtocolError, match=reason):
        protocol.receive(b, max_payload=1 << 30)


def test_a_frame_that_never_finishes_times_out():
    a, b = _pair()
    a.sendall(struct.pack("<Q", 100) + b"{")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        protocol.receive(b, deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 5


def _module(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return str(path)


def test_the_judge_never_imports_the_implementation(tmp_path):
    marker = "bpcheck_impl_imported_here"
    path = _module(tmp_path, "loud", f"import builtins\nbuiltins.{marker} = True\nfrom refimpl import relu, relu_backward\n")
    with Implementation.load(path) as impl:
        assert impl.provided() == ["relu", "relu_backward"]
        out = call(impl.function("relu"), "relu", [np.array([-1.0, 2.0])], {})
    import builtins

    assert not hasattr(builtins, marker)
    assert np.array_equal(out, [0.0, 2.0])


def test_a_crash_fails_the_call_and_a_fresh_worker_takes_the_next(tmp_path):
    path = _module(tmp_path, "crashy", (
        "import os\nfrom refimpl import relu_backward\n"
        "def relu(x):\n    if x.size == 3:\n        os.abort()\n    return x.clip(0)\n"))
    with Implementation.load(path) as impl:
        with pytest.raises(ImplementationFailure, match=r"crashed \(signal SIGABRT\) during relu") as failure:
            call(impl.function("relu"), "relu", [np.ones(3)], {})
        assert "crashy.py\", line 5 in relu" in failure.value.message
        assert np.array_equal(call(impl.function("relu"), "relu", [np.array([-1.0, 1.0])], {}), [0.0, 1.0])
        assert impl.workers_started == 2


def test_a_hang_is_cut_from_outside(tmp_path):
    path = _module(tmp_path, "stuck", (
        "import signal, time\nfrom refimpl import relu_backward\n"
        "def relu(x):\n    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n    time.sleep(1000)\n"))
    with Implementation.load(path, timeout=1.0) as impl:
        started = time.monotonic()
        with pytest.raises(ImplementationFailure, match="did not return within 1 s"):
            call(impl.function("relu"), "relu", [np.ones(3)], {})
        assert time.monotonic() - started < 15


def test_raised_declined_and_mutated(tmp_path):
    path = _module(tmp_path, "odd", (
        "import numpy as np\n"
        "def relu(x):\n    raise SystemExit(0)\n"
        "def relu_backward(g, x):\n    if x.ndim > 1:\n        raise NotImplementedError('no 2-D')\n"
        "    x[0] = 7\n    return g\n"))
    with Implementation.load(path) as impl:
        with pytest.raises(ImplementationFailure, match="relu raised SystemExit"):
            call(impl.function("relu"), "relu", [np.ones(3)], {})
        with pytest.raises(NotImplementedForConfig, match="no 2-D"):
            call(impl.function("relu_backward"), "relu_backward", [np.ones((2, 2)), np.ones((2, 2))], {})
        x = np.ones(3)
        with pytest.raises(ImplementationFailure, match=r"modified its argument #1 in place \(1 elements changed\)"):
            call(impl.function("relu_backward"), "relu_backward", [np.ones(3), x], {})
        assert np.array_equal(x, np.ones(3))  # the judge's own array was never exposed


def test_global_state_stays_in_the_worker(tmp_path):
    path = _module(tmp_path, "stateful", (
        "import os, numpy as np\nnp.seterr(all='raise')\nos.chdir('/')\nos.environ['BPCHECK_LEAK'] = '1'\n"
        "from refimpl import relu, relu_backward\n"))
    before = (np.geterr(), os.getcwd())
    with Implementation.load(path) as impl:
        call(impl.function("relu"), "relu", [np.array([np.nan, 1.0])], {})
        assert (np.geterr(), os.getcwd()) == before and "BPCHECK_LEAK" not in os.environ
        with np.errstate(all="ignore"):
            np.array([0.0]) / 0.0  # the judge's own arithmetic is untouched


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["default", "process-group"])
def test_everything_the_worker_started_ends_with_it(tmp_path, monkeypatch, mode):
    """A grandchild that calls setsid and forks again is gone once the worker is closed (PID namespace or fallback)."""
    if mode == "process-group":
        monkeypatch.setenv("BPCHECK_CONTAINMENT", "process-group")
    pid_file = tmp_path / "pid"
    path = _module(tmp_path, "spawner", (
        "import os, time\nfrom refimpl import relu_backward\n"
        "def relu(x):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
        f"            open({str(pid_file)!r}, 'w').write(open('/proc/self/stat').read().split()[0])\n"
        "            time.sleep(1000)\n        os._exit(0)\n    return x\n"))
    impl = Implementation.load(path)
    call(impl.function("relu"), "relu", [np.ones(2)], {})
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    assert pid_file.read_text(), "the grandchild did not start"
    survivors = _grandchildren_of(path)  # the worker's init, the worker, the grandchild (same command line)
    assert len(survivors) >= 3, survivors
    impl.close()
    time.sleep(0.5)
    assert not [pid for pid in survivors if _alive(pid)], f"left behind: {survivors} (containment: {containment(False)})"
    assert (containment(False) == "process group") is (mode == "process-group")


def _grandchildren_of(path: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"oracle.untrusted.worker" in cmdline and path.encode() in cmdline:
                found.append(int(entry))
    return found


def test_load_failures_are_one_line(tmp_path):
    from oracle.implementation import LoadError

    with pytest.raises(LoadError, match="cannot import 'no_such_module_for_bpcheck'"):
        Implementation.load("no_such_module_for_bpcheck")
    exits = _module(tmp_path, "exits", "import os\nos._exit(0)\n")
    with pytest.raises(LoadError, match="exited with code 0"):
        Implementation.load(exits)
    nothing = _module(tmp_path, "nothing", "x = 1\n")
    with pytest.raises(LoadError, match="implements none of the contract"):
        Implementation.load(nothing)


def test_a_batch_of_calls_streams_back_and_stops_at_the_first_failure(tmp_path):
    path = _module(tmp_path, "batchy", (
        "import os\nfrom refimpl import relu_backward\n"
        "def relu(x):\n    if x[0] == 3:\n        raise ValueError('three')\n    return x * 2\n"))
    from oracle.implementation import call_many

    with Implementation.load(path) as impl:
        fn = impl.function("relu")
        got = call_many(fn, "relu", [[np.array([float(i)])] for i in range(3)], {})
        assert [float(g[0]) for g in got] == [0.0, 2.0, 4.0]
        before = impl.calls
        with pytest.raises(ImplementationFailure, match="relu raised ValueError: three"):
            call_many(fn, "relu", [[np.array([float(i)])] for i in range(6)], {})
        assert impl.calls == before + 1  # one request for the whole batch
        assert float(call(fn, "relu", [np.array([5.0])], {})[0]) == 10.0  # the calls after the failure were not run


def test_submitted_calls_run_while_the_judge_works_and_keep_their_own_time_limits(tmp_path):
    """A request of several functions runs in the worker while the judge does something else; a judge that reads
    late does not turn a slow call into a hang; a raise fails that call and those after it, not those before."""
    from oracle.implementation import submit

    path = _module(tmp_path, "slowish", (
        "import time\nimport numpy as np\n"
        "def relu(x):\n    time.sleep(0.6)\n    if x[0] == 3:\n        raise ValueError('three')\n    return x.clip(0)\n"
        "def relu_backward(g, x):\n    return g * (x > 0)\n"))
    with Implementation.load(path, timeout=1.0) as impl:
        x = np.array([-1.0, 2.0])
        running = submit(impl, [("relu", [x], {}), ("relu_backward", [np.ones(2), x], {}), ("relu", [x], {})])
        started = time.monotonic()
        time.sleep(2.5)  # longer than the limit, and than the worker needs for all three
        assert np.array_equal(running.result(0), [0.0, 2.0])
        assert np.array_equal(running.result(1), [0.0, 1.0])
        assert np.array_equal(running.result(2), [0.0, 2.0])
        assert time.monotonic() - started < 3.5  # they ran meanwhile: reading them cost no more sleeps
        running = submit(impl, [("relu", [x], {}), ("relu", [np.array([3.0])], {}), ("relu_backward", [x, x], {})])
        assert np.array_equal(running.result(0), [0.0, 2.0])
        for index in (1, 2):
            with pytest.raises(ImplementationFailure, match="relu raised ValueError: three"):
                running.result(index)
        assert impl.workers_started == 1


def test_an_array_shared_by_the_calls_of_a_request_crosses_once_and_each_call_gets_its_own_copy(tmp_path):
    path = _module(tmp_path, "scribbles", (
        "from refimpl import relu_backward\n"
        "def relu(x):\n    out = x.clip(0)\n    x[...] = -7.0\n    return out\n"))
    from oracle.implementation import submit

    with Implementation.load(path) as impl:
        x = np.array([-1.0, 2.0, 3.0])
        running = submit(impl, [("relu", [x], {})] * 3)
        for index in range(3):  # each call saw the original values, not the scribbles of the one before
            with pytest.raises(ImplementationFailure, match=r"modified its argument #0 in place \(3 elements changed\)"):
                running.result(index)
        assert np.array_equal(x, [-1.0, 2.0, 3.0])
    arrays: list = []
    sent: dict = {}
    trees = [protocol.encode([x, y], arrays, sent) for y in (np.ones(2), np.zeros(2))]
    assert len(arrays) == 3 and trees[0]["items"][0] == trees[1]["items"][0]


def test_replies_held_back_keep_their_values_and_shared_keywords_stay_each_calls_own(tmp_path):
    """Quick calls' replies go out together, later: a function that returns its own buffer and refills it on the
    next call still gets each result judged as it was; a configuration shared by a request's calls is decoded
    once only when nothing in it can be changed (a list given as a keyword is each call's own)."""
    path = _module(tmp_path, "reuser", (
        "import numpy as np\nfrom refimpl import relu_backward\n_buffer = np.zeros(2)\n"
        "def relu(x, *, seen=None):\n"
        "    if seen is not None:\n        seen.append(1)\n        _buffer[...] = len(seen)\n        return _buffer\n"
        "    _buffer[...] = x.clip(0)\n    return _buffer\n"))
    from oracle.implementation import submit

    with Implementation.load(path) as impl:
        points = [np.array([float(i), -1.0]) for i in range(5)]
        running = submit(impl, [("relu", [x], {}) for x in points])
        assert [running.result(i).tolist() for i in range(5)] == [[float(i), 0.0] for i in range(5)]
        config = {"seen": []}
        running = submit(impl, [("relu", [points[0]], config)] * 3)
        assert [running.result(i).tolist() for i in range(3)] == [[1.0, 1.0]] * 3  # a fresh list for each call
        assert impl.calls == 2 and impl.workers_started == 1


def test_a_burst_of_frames_is_read_in_chunks_and_every_array_arrives_whole_and_aligned():
    a, b = _pair()
    frames = [[np.arange(n, dtype=np.float32) * n, np.full((n % 4, 3), n, np.int16)] for n in range(50)]
    frames.append([np.arange(300_000, dtype=np.float64)])  # larger than a chunk: read in place
    import threading

    def send_all():
        for arrays in frames:
            protocol.send(a, {"n": len(arrays)}, arrays)

    sender = threading.Thread(target=send_all)  # the socket's buffer holds less than the frames
    sender.start()
    receiver = protocol.Receiver(b)
    for arrays in frames:
        header, received = receiver.receive(deadline=time.monotonic() + 10)
        assert header["n"] == len(arrays)
        for want, have in zip(arrays, received):
            assert have.dtype == want.dtype and have.shape == want.shape and np.array_equal(have, want)
            assert have.flags.writeable and (have.size == 0 or have.ctypes.data % protocol.ALIGN == 0 or
                                              have.ctypes.data % have.itemsize == 0)
    sender.join()
    assert not receiver.buffered()
