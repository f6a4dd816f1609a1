"""Numba kernels of the connectivity index (:mod:`neurosnap.core.graph`) for networks too large
for NumPy's int64 temporaries."""

from __future__ import annotations

import numba
import numpy as np

#: presynaptic units per pass of :func:`csc_scatter`: their write positions (up to four output
#: streams each) stay in the L2 cache; measured best from 8,192 to 16,384 at 10^5 neurons
TRANSPOSE_BLOCK = 8192


@numba.njit(cache=True)
def counting_transpose(n, in_ptr, pre, order, post, block):  # pragma: no cover - numba
    """CSC order of a CSR index by a counting sort: returns ``out_ptr (n + 1,) int64`` and fills
    ``order (nnz,)`` (edge of each CSC entry) and ``post (nnz,)`` (its postsynaptic unit);
    postsynaptic units ascend within each column because rows are visited in order."""
    none = np.zeros(0, np.float32)
    out_ptr = column_ptr(n, pre, none, False)
    csc_scatter(in_ptr, pre, out_ptr, block, none, False, order, post, none, none, none)
    return out_ptr


@numba.njit(cache=True)
def column_ptr(n, pre, w, skip_zeros):  # pragma: no cover - numba
    """CSC column pointer ``(n + 1,) int64`` of the synapses (with ``skip_zeros``: of those with
    ``w[e] != 0``)."""
    ptr = np.zeros(n + 1, np.int64)
    for e in range(pre.shape[0]):
        if not (skip_zeros and w[e] == 0):
            ptr[pre[e] + 1] += 1
    for j in range(n):
        ptr[j + 1] += ptr[j]
    return ptr


@numba.njit(cache=True)
def csc_scatter(
    in_ptr, pre, ptr, block, w, skip_zeros, order, post, w_out, d, d_out
):  # pragma: no cover - numba
    """Writes the synapses of a CSR index ``(in_ptr, pre)`` in CSC order (by presynaptic unit,
    postsynaptic units ascending within a column): the ``k``-th kept synapse onto column ``j``
    lands at ``q = ptr[j] + k`` and sets each output that is not empty: ``order[q] = e`` (its
    edge), ``post[q]`` (its postsynaptic unit), ``w_out[q] = w[e]``, ``d_out[q] = d[e]``.
    With ``skip_zeros``, synapses with ``w[e] == 0`` are left out (``ptr`` counts the others).

    Runs in passes over ``block`` presynaptic units: a row's synapses from one block are
    contiguous (presynaptic units ascend within a row, an invariant of the graph), so a cursor per
    row resumes where the previous pass stopped, every synapse is read once, and the writes of a
    pass go to ``block`` columns only, which stay in cache. One pass over all columns writes to
    ``n`` places at random, and reading the weights in CSC order reads them at random: at 10^8
    synapses the sort took 3.4-5.4 s that way against 1.2 s blocked, the weights' gather 1.1 s.
    """
    n = ptr.shape[0] - 1
    want_order, want_post = order.shape[0] > 0, post.shape[0] > 0
    want_w, want_d = w_out.shape[0] > 0, d_out.shape[0] > 0
    fill = ptr[:-1].copy()
    cursor = in_ptr[:-1].copy()
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        for i in range(n):
            e = cursor[i]
            end = in_ptr[i + 1]
            while e < end and pre[e] < j1:
                if not (skip_zeros and w[e] == 0):
                    j = pre[e]
                    q = fill[j]
                    if want_order:
                        order[q] = e
                    if want_post:
                        post[q] = i
                    if want_w:
                        w_out[q] = w[e]
                    if want_d:
                        d_out[q] = d[e]
                    fill[j] = q + 1
                e += 1
            cursor[i] = e


@numba.njit(cache=True)
def rows_ascending(in_ptr, pre):  # pragma: no cover - numba
    """Whether ``pre`` is strictly ascending within every CSR row."""
    for i in range(in_ptr.shape[0] - 1):
        for e in range(in_ptr[i] + 1, in_ptr[i + 1]):
            if pre[e] <= pre[e - 1]:
                return False
    return True
