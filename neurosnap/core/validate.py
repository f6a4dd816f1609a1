"""Argument checks shared by every public entry point.

Each check raises ``ValueError`` or ``TypeError`` whose message starts with the argument's name,
so a user sees *which* argument was wrong and what was expected instead of a NumPy traceback.
"""

from __future__ import annotations

import functools
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)

#: Largest count (steps, sizes, batch) any argument may take: beyond it step counters, sizes and
#: index arithmetic would leave exact int64/float64 territory.
MAX_COUNT = 2**53


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return 1 << 40


#: Largest allocation (bytes) a size argument may imply: the machine's physical memory. Sizes whose
#: estimated memory exceeds it are refused up front by :func:`memory` (instead of a MemoryError or
#: swapping deep inside). Tests may lower it.
MAX_BYTES = _physical_memory()


def positive_int(name: str, value, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """Return ``value`` as an int, requiring an integer in ``[minimum, maximum]``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:  # type: ignore[operator]  # an Integral compares with an int
        raise ValueError(f"{name} must be <= {maximum}, got {_short(value)}")
    return int(value)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:12]}...({len(text)} digits)"


def memory(name: str, value, nbytes, what: str) -> None:
    """Refuse a size argument whose estimated memory ``nbytes`` exceeds :data:`MAX_BYTES`.

    Args:
        name: the argument (e.g. ``"n_hidden"``).
        value: its value (for the message).
        nbytes: estimated bytes (a Python int: no overflow).
        what: what needs the memory (e.g. ``"the (G, n, n) recurrent weights"``).
    """
    nbytes = int(nbytes)
    if nbytes > MAX_BYTES:
        raise ValueError(
            f"{name}={_short(value)} needs about {_bytes(nbytes)} for {what}, more "
            f"than this machine's {_bytes(MAX_BYTES)} of memory"
        )


def _bytes(n: int) -> str:
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n < 2**60 * 1000 else f"2^{n.bit_length() - 1} bytes"
    return f"{n} bytes"


def steps(
    name: str, duration: float, dt: float, *, minimum: int = 1, maximum: int = 2**31 - 1
) -> int:
    """``duration / dt`` rounded to whole steps, in ``[minimum, maximum]`` (no overflow).

    ``duration`` and ``dt`` are already validated finite floats (``dt > 0``).
    """
    with np.errstate(over="ignore"):
        ratio = duration / dt
    if not np.isfinite(ratio) or ratio > maximum + 0.5:
        raise ValueError(f"{name}={duration} is more than {maximum} steps of dt={dt}")
    count = int(round(ratio))
    if count < minimum:
        raise ValueError(f"{name} must last at least {minimum} step(s) of dt={dt}, got {duration}")
    return count


def finite(where: str, _hint: str | None = None, **arrays) -> None:
    """Raise ``FloatingPointError`` naming the first of ``arrays`` (name=value) holding NaN/inf.

    The one non-finite guard of the public entry points (``sequence_grad``, ``Model.run``,
    ``Model.init``, ``simulate``, ``train``): results are never returned with NaN or inf in them.
    ``_hint`` replaces the default advice at the end of the message.
    """
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            hint = _hint or (
                "weights, inputs or hyperparameters are too large for the model's dtype"
            )
            raise FloatingPointError(f"{where}: non-finite {name} (NaN or inf); {hint}")


def guarded(func):
    """Decorator: run ``func`` with NumPy's overflow/invalid/divide warnings silenced, because its
    results pass through :func:`finite`, which turns NaN/inf into one ``FloatingPointError`` that
    names what overflowed (instead of a RuntimeWarning and a silently non-finite result)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return func(*args, **kwargs)

    return wrapper


def boolean(name: str, value) -> bool:
    """A bool (``np.bool_`` accepted); strings such as ``"no"`` or ``"false"`` are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}"
        )
    return bool(value)


def real(
    name: str,
    value,
    *,
    low=None,
    high=None,
    low_open=False,
    high_open=False,
    low_name: str | None = None,
) -> float:
    """Return ``value`` as a finite float inside the given (optionally open) interval
    (``low_name``: how the message names the lower bound, e.g. ``"dt=0.001"``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {_short(value)}")
    try:
        value = float(value)
    except OverflowError:  # a Python int beyond float range
        raise ValueError(
            f"{name} must be a finite real number (within float range), got {_short(value)}"
        ) from None
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(
            f"{name} must be {'>' if low_open else '>='} {low_name or low}, got {value}"
        )
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def density(name: str, value) -> float:
    """A fraction in (0, 1]."""
    return real(name, value, low=0.0, high=1.0, low_open=True)


def choice(name: str, value, options) -> str:
    """A string that must be one of ``options``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(options)}, got {value!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def dtype(name: str, value) -> np.dtype:
    """float32 or float64."""
    try:
        dt = np.dtype(value)
    except TypeError as exc:
        raise TypeError(f"{name} must be np.float32 or np.float64, got {value!r}") from exc
    if dt.type not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be np.float32 or np.float64, got {dt}")
    return dt


def array(name: str, value, *, ndim=None, shape=None, dtype=None, finite=True, integer=False):
    """Check an array argument and return it as an ndarray.

    ``shape`` may contain ``None`` for free axes. With ``integer=True`` the array must hold integers;
    otherwise it must be real floating point or boolean/integer data convertible to ``dtype``.
    ``np.matrix`` and masked arrays are refused (their operators and missing values change
    results). The result is C-contiguous, so that the same numbers always give the same bits
    whatever the memory layout of the argument.
    """
    if isinstance(value, (np.matrix, np.ma.MaskedArray)):
        raise TypeError(
            f"{name} must be a plain numpy array (np.asarray), got "
            f"{type(value).__module__}.{type(value).__name__}"
        )
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) or np.isscalar(value):
            try:
                value = np.asarray(value)
            except (ValueError, TypeError, OverflowError):
                raise TypeError(
                    f"{name} must be a numeric array, got a ragged or non-numeric "
                    f"{type(value).__name__}"
                ) from None
        else:
            raise TypeError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if integer:
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, got dtype {value.dtype}")
    elif not (
        np.issubdtype(value.dtype, np.floating)
        or np.issubdtype(value.dtype, np.integer)
        or value.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a real-valued array, got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if shape is not None:
        if value.ndim != len(shape) or any(
            s is not None and s != v for s, v in zip(shape, value.shape, strict=True)
        ):
            raise ValueError(f"{name} must have shape {_fmt(shape)}, got {value.shape}")
    if value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    if dtype is not None and not integer:
        value = value.astype(dtype, copy=False)
    if not value.flags.c_contiguous:  # (0-d arrays are; ascontiguousarray makes them 1-d)
        value = np.ascontiguousarray(value)
    if finite and not integer and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def _fmt(shape) -> str:
    if shape is None:
        return ""
    inner = ", ".join("*" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def training_finite(t: int, **arrays) -> None:
    """:func:`finite` for the training loop at time step ``t``: the message says that training
    stopped and that the last checkpoint (if any) is intact."""
    finite(
        f"train at time step {t}",
        _hint="training stopped, the last checkpoint (if any) is intact",
        **arrays,
    )
