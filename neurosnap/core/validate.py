"""Argument checks shared by every public entry point.

Each check raises ``ValueError`` or ``TypeError`` whose message starts with the argument's name,
so a user sees *which* argument was wrong and what was expected instead of a NumPy traceback.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, requiring an integer ``>= minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def real(name: str, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """Return ``value`` as a finite float inside the given (optionally open) interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
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
    """
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) or np.isscalar(value):
            value = np.asarray(value)
        else:
            raise TypeError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if integer:
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, got dtype {value.dtype}")
    elif not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
              or value.dtype == np.bool_):
        raise TypeError(f"{name} must be a real-valued array, got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if shape is not None:
        if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
            raise ValueError(f"{name} must have shape {_fmt(shape)}, got {value.shape}")
    if value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    if dtype is not None and not integer:
        value = value.astype(dtype, copy=False)
    if finite and not integer and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def _fmt(shape) -> str:
    if shape is None:
        return ""
    inner = ", ".join("*" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"
