"""The wire between the judge and the worker: JSON headers and raw array bytes, nothing else.

One message is one frame::

    8 bytes   length of the header (little-endian unsigned)
    header    UTF-8 JSON object; ``"arrays"`` lists ``{"dtype": "<f8", "shape": [2, 3]}`` per array
    payload   the arrays' bytes, C order, one after the other, each padded to a multiple of ``ALIGN``
              bytes (so that each array, a view of the payload on arrival, is aligned)

Values (a call's arguments, a function's result) travel as a JSON tree whose
leaves point into the frame's arrays::

    {"t": "nd", "i": 0}               the frame's array 0
    {"t": "none"}                     None
    {"t": "tuple", "items": [...]}    a tuple (lists: "list")
    {"t": "py", "v": 3}               a JSON scalar: int, float, bool, str
    {"t": "other", "type": "Tensor"}  anything else, by the name of its type only

There is no pickle in either direction: what the worker sends can only be
arrays of plain numeric dtypes, tuples, lists, None, scalars and type names.
``receive`` validates every frame on arrival (header size, JSON, dtype in
``DTYPES``, shape, the bytes that follow) and raises ``ProtocolError`` on
anything else, so a worker that writes garbage into the channel is a failed
call, not a judge that crashes or believes it.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import time
from typing import Any

import numpy as np

#: the numeric dtypes an array may have on the wire, both byte orders
DTYPES = frozenset(
    np.dtype(name).newbyteorder(order).str
    for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "complex64", "complex128")
    for order in "<>"
) | {np.dtype("bool").str, np.dtype("int8").str, np.dtype("uint8").str}
MAX_HEADER_BYTES = 1 << 20
MAX_NDIM = 32
#: the largest frame payload accepted (BPCHECK_MAX_RESULT_BYTES in the client)
DEFAULT_MAX_PAYLOAD = 8 << 30

_LENGTH = struct.Struct("<Q")
#: frames up to this size are sent with one write
SMALL_FRAME = 1 << 20
#: seconds a read past its deadline still waits: what has arrived by then counts as arrived in time
_GRACE = 1e-3
#: each array's bytes start at a multiple of this in a frame's payload
ALIGN = 16


class ProtocolError(Exception):
    """A frame that breaks the protocol: the peer is broken or lying."""


class Foreign:
    """Stands for a value of a type that cannot cross (a tensor, an object array, a float): its type's name only."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def type_name(value: Any) -> str:
    """The name a verdict shows for a value's type (``Foreign`` values keep the name they had in the worker)."""
    return value.type_name if isinstance(value, Foreign) else type(value).__name__


# --------------------------------------------------------------------------- values


def encode(value: Any, arrays: list[np.ndarray], sent: dict[int, int] | None = None) -> dict:
    """The JSON tree of ``value``; its arrays are appended to ``arrays``.

    ``sent`` (``id(array) -> index``, shared by the values of one frame) sends an array object that occurs
    in several values once: the unchanged inputs of a batch of calls cross once, not once per call.
    """
    if value is None:
        return {"t": "none"}
    if isinstance(value, np.ndarray):
        if value.dtype.str in DTYPES:
            if sent is not None and id(value) in sent:
                return {"t": "nd", "i": sent[id(value)]}
            arrays.append(value)
            if sent is not None:
                sent[id(value)] = len(arrays) - 1
            return {"t": "nd", "i": len(arrays) - 1}
        return {"t": "other", "type": f"ndarray of dtype {value.dtype}"}
    if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
        return {"t": type(value).__name__, "items": [encode(v, arrays, sent) for v in value]}
    if type(value) in (bool, int, str) or (type(value) is float and math.isfinite(value)):
        return {"t": "py", "v": value}
    return {"t": "other", "type": type(value).__name__}


def decode(tree: Any, arrays: list[np.ndarray], depth: int = 0, copy: bool = False) -> Any:
    """The value of a JSON tree made by ``encode``; ProtocolError on anything malformed.

    ``copy``: every array of the value is a copy of the frame's (a frame's array may be shared by several values).
    """
    if depth > 64 or not isinstance(tree, dict):
        raise ProtocolError("malformed value")
    kind = tree.get("t")
    if kind == "none":
        return None
    if kind == "nd":
        i = tree.get("i")
        if type(i) is not int or not 0 <= i < len(arrays):
            raise ProtocolError("array index out of range")
        return arrays[i].copy() if copy else arrays[i]
    if kind in ("tuple", "list"):
        items = tree.get("items")
        if not isinstance(items, list):
            raise ProtocolError("malformed sequence")
        decoded = [decode(item, arrays, depth + 1, copy) for item in items]
        return tuple(decoded) if kind == "tuple" else decoded
    if kind == "py":
        v = tree.get("v")
        if type(v) not in (bool, int, float, str):
            raise ProtocolError("malformed scalar")
        return v
    if kind == "other":
        name = tree.get("type")
        if not isinstance(name, str):
            raise ProtocolError("malformed type name")
        return Foreign(name[:200])
    raise ProtocolError(f"unknown value kind {str(kind)[:40]!r}")


# --------------------------------------------------------------------------- frames


def _padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def frame(header: dict, arrays: list[np.ndarray] = ()) -> list:
    """The buffers of one frame: ``header`` (a JSON object) and ``arrays``, in order."""
    contiguous = [a if a.flags.c_contiguous else a.copy(order="C") for a in arrays]  # (ascontiguousarray makes 0-d 1-d)
    header = {**header, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in contiguous]}
    body = json.dumps(header, allow_nan=False).encode()
    parts = [_LENGTH.pack(len(body)), body]
    for a in contiguous:
        if a.nbytes:
            parts.append(memoryview(a.reshape(-1).view(np.uint8)))
            if _padded(a.nbytes) > a.nbytes:
                parts.append(bytes(_padded(a.nbytes) - a.nbytes))
    return parts


def send_parts(sock: socket.socket, parts: list) -> None:
    """Send the buffers of one or more frames (``frame``)."""
    if sum(len(p) for p in parts) <= SMALL_FRAME:
        sock.sendall(b"".join(parts))  # one write, one wake-up of the reader
    else:
        for part in parts:  # large arrays straight from their buffers, no joined copy
            sock.sendall(part)


def send(sock: socket.socket, header: dict, arrays: list[np.ndarray] = ()) -> None:
    """Send one frame: ``header`` (a JSON object) and ``arrays``."""
    send_parts(sock, frame(header, arrays))


def _recv_into(sock: socket.socket, view: memoryview, deadline: float | None) -> int:
    """One ``recv_into`` of at most ``len(view)`` bytes, waiting until ``deadline``; the count (> 0)."""
    if deadline is not None:  # past the deadline, bytes that have already arrived are still read
        sock.settimeout(max(deadline - time.monotonic(), _GRACE))
    try:
        n = sock.recv_into(view)
    except socket.timeout:
        raise TimeoutError("the peer did not finish its message in time") from None
    if n == 0:
        raise EOFError("the peer closed the channel")
    return n


class Receiver:
    """The frames arriving on ``sock``, read in large chunks: a burst of small frames (the answers of a batch
    of calls) costs a few system calls, not four per frame. Large payloads are read straight into their
    own buffer."""

    CHUNK = 1 << 16

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.start = 0
        self._chunk = memoryview(bytearray())

    def buffered(self) -> bool:
        """Whether bytes of a frame have arrived and not been read yet (no need to wait for the socket)."""
        return len(self.buffer) > self.start

    def read(self, n: int, deadline: float | None) -> bytearray:
        """The next ``n`` bytes, in a buffer of their own."""
        have = len(self.buffer) - self.start
        if have < n and n > self.CHUNK:  # a large payload: what is buffered, then the rest read in place
            out = bytearray(n)
            out[:have] = self.buffer[self.start:]
            self.buffer, self.start = bytearray(), 0
            view = memoryview(out)
            while have < n:
                have += _recv_into(self.sock, view[have:], deadline)
            return out
        while len(self.buffer) - self.start < n:
            if self.start:
                del self.buffer[:self.start]
                self.start = 0
            if len(self._chunk) != self.CHUNK:
                self._chunk = memoryview(bytearray(self.CHUNK))  # reused: one allocation, not one per read
            got = _recv_into(self.sock, self._chunk, deadline)
            self.buffer += self._chunk[:got]
        out = self.buffer[self.start:self.start + n]
        self.start += n
        return out

    def receive(self, max_payload: int = DEFAULT_MAX_PAYLOAD, deadline: float | None = None) -> tuple[dict, list[np.ndarray]]:
        """One frame: ``(header, arrays)``, validated.

        EOFError at the end of the stream, ProtocolError if malformed, TimeoutError if the whole frame has not
        arrived by ``deadline`` (``time.monotonic()``; None: wait as long as it takes).
        """
        (size,) = _LENGTH.unpack(self.read(_LENGTH.size, deadline))
        if size > MAX_HEADER_BYTES:
            raise ProtocolError(f"header of {size} bytes (at most {MAX_HEADER_BYTES})")
        body = self.read(size, deadline)
        try:
            header = json.loads(body.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolError(f"header is not JSON: {exc}") from None
        if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
            raise ProtocolError("header is not an object with an 'arrays' list")
        shapes = []
        total = 0
        for desc in header["arrays"]:
            if not isinstance(desc, dict) or desc.get("dtype") not in DTYPES:
                raise ProtocolError(f"array of a dtype that may not cross: {str(desc)[:80]}")
            shape = desc.get("shape")
            if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                    or not all(type(n) is int and 0 <= n < 1 << 40 for n in shape)):
                raise ProtocolError(f"malformed shape: {str(shape)[:80]}")
            dtype = np.dtype(desc["dtype"])
            count = math.prod(shape)
            total += _padded(count * dtype.itemsize)
            if total > max_payload:
                raise ProtocolError(f"arrays of more than {max_payload} bytes in one message")
            shapes.append((dtype, tuple(shape), count))
        payload = self.read(total, deadline) if total else bytearray()
        arrays, offset = [], 0
        for dtype, shape, count in shapes:  # views of the frame's own buffer: writable, aligned, no copy
            arrays.append(np.frombuffer(payload, dtype=dtype, count=count, offset=offset).reshape(shape) if count
                          else np.empty(shape, dtype=dtype))
            offset += _padded(count * dtype.itemsize)
        return header, arrays


def receive(
    sock: socket.socket, max_payload: int = DEFAULT_MAX_PAYLOAD, deadline: float | None = None
) -> tuple[dict, list[np.ndarray]]:
    """One frame from ``sock``, reading no byte beyond it (see ``Receiver.receive``)."""
    receiver = Receiver(sock)
    receiver.CHUNK = 0  # every read exactly as long as asked: nothing of the next frame is taken
    return receiver.receive(max_payload, deadline)
