"""Argument validation for every rule, in one place.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right
kind, impossible value) with a message that names the argument and the rule it
broke, so that bad input never reaches NumPy's indexing and never produces a
silently wrong answer.
"""

from __future__ import annotations

import numbers

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _tuple_name(rank: int) -> str:
    """What a spatial tuple of each rank is called in messages."""
    return {1: "(l,) 1-tuple", 2: "(h, w) pair", 3: "(d, h, w) triple"}.get(rank, f"{rank}-tuple")


def as_tuple(value, name: str, rank: int, *, minimum: int) -> tuple[int, ...]:
    """``value`` as a tuple of ``rank`` ints (one per spatial axis), each at least ``minimum``.

    Accepts an int (repeated on every axis) or a tuple/list of ``rank`` ints
    (NumPy integers included); rejects bools, floats and other lengths with a
    TypeError/ValueError naming ``name``.
    """
    if type(value) is int:  # the common case, without the slower abstract-class checks below
        if value >= minimum:
            return (value,) * rank
        out = (value,) * rank
    elif type(value) is tuple and len(value) == rank and all(type(v) is int for v in value):  # the harness's form
        out = value
    elif isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or an {_tuple_name(rank)} of ints, got bool {value!r}")
    elif isinstance(value, numbers.Integral):
        out = (int(value),) * rank
    elif isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(f"{name} must be an int or an {_tuple_name(rank)}, got {len(value)} values: {value!r}")
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value):
            raise TypeError(f"{name} must be an int or an {_tuple_name(rank)} of ints, got {value!r}")
        out = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or an {_tuple_name(rank)} of ints, got {type(value).__name__} {value!r}")
    if min(out) < minimum:
        axes = "on both axes" if rank == 2 else ("" if rank == 1 else "on every axis")
        raise ValueError(f"{name} must be >= {minimum}{' ' + axes if axes else ''}, got {value!r}")
    return out


def as_pair(value, name: str, *, minimum: int) -> tuple[int, int]:
    """``value`` as an ``(h, w)`` pair of ints, each at least ``minimum``: ``as_tuple`` of rank 2."""
    return as_tuple(value, name, 2, minimum=minimum)  # type: ignore[return-value]


def check_array(a, name: str, *, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """``a`` itself, after checking it is a float32/float64 ndarray of the given ndim."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if a.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name} must be {want}-dimensional, got shape {a.shape} ({a.ndim}-dimensional)")
    return a


def check_pool_input_not_empty(x: np.ndarray, what: str) -> None:
    """A ValueError unless every axis of the pooling input ``x`` but a 4-D batch axis is non-empty.

        (N, C, H, W): C >= 1, H >= 1, W >= 1 (N = 0 is allowed)        (C, H, W): C, H, W >= 1

    torch's rule, exactly (``max_pool2d``/``avg_pool2d``: "Expected 3D or 4D (batch
    mode) tensor with optional 0 dim batch size"): a CHW input with no channels is
    refused, an NCHW input with no images is not.
    """
    required = x.shape[1:] if x.ndim == 4 else x.shape
    if min(required) < 1:
        layout = "(N, C, H, W)" if x.ndim == 4 else "(C, H, W)"
        allowed = " (only the batch axis N may be 0)" if x.ndim == 4 else ""
        raise ValueError(
            f"{what}: x must not have an empty channel or spatial axis{allowed}, as in torch: "
            f"got shape {x.shape} for {layout}"
        )


def check_same_dtype(**arrays) -> np.dtype:
    """The common dtype of the named arrays (``None`` entries ignored); mixed dtypes are a TypeError."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in present.values()}
    if len(dtypes) > 1:
        described = ", ".join(f"{k}={v.dtype}" for k, v in present.items())
        raise TypeError(f"all arrays must share one dtype (no silent up- or down-cast), got {described}")
    return next(iter(dtypes))


def check_grad_output(grad_output, expected_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``grad_output`` after checking it has the forward output's shape and dtype."""
    check_array(grad_output, "grad_output")
    if grad_output.shape != tuple(expected_shape):
        raise ValueError(
            f"grad_output must have the forward output's shape {tuple(expected_shape)}, got {grad_output.shape}"
        )
    if grad_output.dtype != dtype:
        raise TypeError(f"grad_output must have the inputs' dtype {dtype}, got {grad_output.dtype}")
    return grad_output


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def window_count(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis, exactly as PyTorch sizes them.

        out = floor_or_ceil((size + 2p - d(k-1) - 1) / s) + 1

    With ``ceil_mode`` the division rounds up, but the last window must start
    inside the input or the left padding: if ``(out-1)*s >= size + p`` it is
    dropped. Convolution uses the floor form.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1  # floor division, as torch's div_rtn
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return max(out, 0)


def output_size(
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool = False,
    *,
    what: str,
) -> tuple[int, ...]:
    """Output size of a windowed op, one entry per spatial axis; a ValueError naming ``what`` if any is below 1."""
    axes = range(len(in_size))
    out = tuple(window_count(in_size[a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode) for a in axes)
    if min(out) < 1:
        by = "x".join
        raise ValueError(
            f"{what}: output size would be {by(str(o) for o in out)} (must be at least {by('1' for _ in axes)}): "
            f"input {by(str(i) for i in in_size)} with padding {padding} is smaller than the dilated kernel "
            f"{by(str(dilation[a] * (kernel[a] - 1) + 1) for a in axes)}"
        )
    return out


def output_hw(
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool = False,
    *,
    what: str,
) -> tuple[int, int]:
    """Output (H, W) of a windowed op; a ValueError naming ``what`` if either is below 1 (``output_size`` in 2-D)."""
    return output_size(in_hw, kernel, stride, padding, dilation, ceil_mode, what=what)  # type: ignore[return-value]


def span(count: int, stride: int, offset: int, size: int) -> tuple[slice, slice] | None:
    """Positions ``k < count`` whose coordinate ``k*stride + offset`` lies in ``[0, size)``.

    Returns ``(positions, coordinates)`` as slices, or None if there are none.
    """
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(count, (size - 1 - offset) // stride + 1)
    if hi <= lo:
        return None
    start = lo * stride + offset
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)


def check_positive_int(value, name: str) -> int:
    """``value`` as an int >= 1 (a count: epochs, a batch size); TypeError for a non-integer, bool included."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_positive_real(value, name: str) -> float:
    """``value`` as a finite float > 0 (a learning rate); TypeError for a non-number, bool included."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_real(value, name: str) -> float:
    """``value`` as a float, after checking it is a real number (int, float or a NumPy one; not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (int or float), got {type(value).__name__} {value!r}")
    return float(value)


def check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    """``value`` after checking it is one of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices} (a str), got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_dim(dim, ndim: int) -> int:
    """``dim`` as a non-negative axis of an array of ``ndim`` dimensions, torch's way.

    An int in ``[-ndim, ndim)``; negative values count from the end. A 0-d array
    has one usable dimension, as in torch: ``dim`` 0 or -1.
    """
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__} {dim!r}")
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise ValueError(f"dim must be in [{-rank}, {rank - 1}] for a {ndim}-dimensional x, got {dim}")
    return int(dim) % rank


def check_class_target(target, n: int, classes: int) -> np.ndarray:
    """``target`` after checking it holds one class index in ``[0, classes)`` per row: an integer array of shape (n,).

    A float array (class probabilities) is a TypeError, an index out of range a
    ValueError: torch's default ``ignore_index=-100`` is not supported, so -100 is out of range too.
    """
    if not isinstance(target, np.ndarray):
        raise TypeError(f"target must be a numpy.ndarray of class indices, got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"target must hold integer class indices (e.g. int64), got dtype {target.dtype} "
            "(class probabilities are not supported)"
        )
    if target.shape != (n,):
        raise ValueError(f"target must have shape (N,) = ({n},), one class index per row of input, got {target.shape}")
    if target.size and (target.min() < 0 or target.max() >= classes):
        bad = target[(target < 0) | (target >= classes)]
        raise ValueError(
            f"target must hold class indices in [0, {classes}) (C = {classes}; ignore_index is not supported): "
            f"{bad.size} out of range, e.g. {bad.flat[0]}"
        )
    return target


# --------------------------------------------------------------------------- forward mode (JVP) arguments


def unpack_jvp(primals, tangents, names: tuple[str, ...], required: int, *, what: str) -> tuple[tuple, tuple]:
    """``(primals, tangents)`` of a ``NAME_jvp`` call as full-length tuples (one entry per name of ``names``).

    Both are tuples (or lists) in the forward's positional argument order, as ``jax.jvp`` takes
    them, of one length: at least the ``required`` arguments, at most all of ``names``; the
    optional arguments left out are None (their defaults), with None tangents.
    """
    for value, label in ((primals, "primals"), (tangents, "tangents")):
        if not isinstance(value, (tuple, list)):
            raise TypeError(
                f"{what}: {label} must be a tuple ({', '.join(names)}) in the forward's argument order, "
                f"got {type(value).__name__}"
            )
    if not required <= len(primals) <= len(names):
        raise ValueError(
            f"{what}: primals must hold the forward's positional arguments ({', '.join(names)}; "
            f"{'the first ' + str(required) + ' at least' if required < len(names) else 'all of them'}), "
            f"got {len(primals)}"
        )
    if len(tangents) != len(primals):
        raise ValueError(
            f"{what}: tangents must have one entry per primal ({len(primals)}: {', '.join(names[: len(primals)])}; "
            f"None for a zero tangent), got {len(tangents)}"
        )
    pad = (None,) * (len(names) - len(primals))
    return tuple(primals) + pad, tuple(tangents) + pad


def check_tangents(primals: tuple, tangents: tuple, names: tuple[str, ...], *, constant: tuple[str, ...] = ()) -> None:
    """Each tangent after checking it fits its (already validated) primal.

    None is a zero tangent. A present tangent must be an ndarray of its primal's shape
    and dtype (ValueError / TypeError naming the argument); a None primal, and the
    arguments in ``constant`` (targets: not differentiated), take only a None tangent.
    """
    for primal, tangent, name in zip(primals, tangents, names):
        if tangent is None:
            continue
        if name in constant:
            raise ValueError(f"the tangent of {name} must be None: {name} is not differentiated (got {type(tangent).__name__})")
        if primal is None:
            raise ValueError(f"the tangent of {name} must be None where {name} is None, got {type(tangent).__name__}")
        if not isinstance(tangent, np.ndarray):
            raise TypeError(f"the tangent of {name} must be a numpy.ndarray, got {type(tangent).__name__}")
        if tangent.shape != primal.shape:
            raise ValueError(f"the tangent of {name} must have {name}'s shape {primal.shape}, got {tangent.shape}")
        if tangent.dtype != primal.dtype:
            raise TypeError(f"the tangent of {name} must have {name}'s dtype {primal.dtype}, got {tangent.dtype}")
