"""Tables of experiment results: cell formatting, CSV, JSON.

Shared by :mod:`neurosnap.compare` and :mod:`neurosnap.sweep`.
"""

from __future__ import annotations

import csv
import math

import numpy as np


def fmt_mean_sd(pair, digits=3) -> str:
    """``"m ± s"`` (``"m"`` for a single value, ``"—"`` for none)."""
    mean, sd = pair
    if mean is None:
        return "—"
    if sd is None:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {sd:.2g}"


def fmt(value, digits=4) -> str:
    """A table cell: ``"—"`` for none, ``"nan"``, floats to ``digits`` significant digits."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    return str(value)


def write_csv(rows, path, keys=None) -> None:
    """Rows as CSV (columns: ``keys`` or every key seen, in first-seen order)."""
    keys = keys or list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def json_default(value):
    """``json.dump(..., default=json_default)``: numpy scalars as Python numbers."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
