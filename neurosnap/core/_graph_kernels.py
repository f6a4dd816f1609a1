"""Numba kernels of the connectivity index (:mod:`neurosnap.core.graph`) for networks too large
for NumPy's int64 temporaries."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def counting_transpose(n, in_ptr, pre, order, post):  # pragma: no cover - numba
    """CSC order of a CSR index by a counting sort: returns ``out_ptr (n + 1,) int64`` and fills
    ``order (nnz,)`` (edge of each CSC entry) and ``post (nnz,)`` (its postsynaptic unit);
    postsynaptic units ascend within each column because rows are visited in order."""
    nnz = pre.shape[0]
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(nnz):
        out_ptr[pre[e] + 1] += 1
    for j in range(n):
        out_ptr[j + 1] += out_ptr[j]
    fill = out_ptr[:-1].copy()
    for i in range(n):
        for e in range(in_ptr[i], in_ptr[i + 1]):
            j = pre[e]
            order[fill[j]] = e
            post[fill[j]] = i
            fill[j] += 1
    return out_ptr


@numba.njit(cache=True)
def rows_ascending(in_ptr, pre):  # pragma: no cover - numba
    """Whether ``pre`` is strictly ascending within every CSR row."""
    for i in range(in_ptr.shape[0] - 1):
        for e in range(in_ptr[i] + 1, in_ptr[i + 1]):
            if pre[e] <= pre[e - 1]:
                return False
    return True
