"""Event-driven recurrent drive: ``W_rec @ y`` gathered from the units that emitted an event.

Only non-zero outputs propagate (for threshold cells they are the events), so the drive
``rec[b, g, i] = sum_j W_rec[g, i, j] y[b, j]`` costs ``G x (events x fan-out)`` multiply-adds with
the outgoing connections of every unit stored once (CSC of the connectivity). Weights are read
in place from the dense ``(G, n, n)`` array at the mask's positions (or from the ``(G, nnz)``
synapse values of a cell with ``storage="sparse"``), so optimisers that update the
array in place are seen at once and no copy is kept; entries outside the mask are zero by
construction (they get no gradient) and are never read.

:class:`EventDrive` picks, per call, between this kernel and the dense BLAS product by the counted
work (see :attr:`EventDrive.crossover`); both give the same result to round-off.
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.arrays import kernel_array
from ..core.graph import RecurrentGraph


class EventDrive:
    """The recurrent drive of one cell, built once from its mask.

    Args:
        mask: ``(n, n)`` booleans, ``mask[post, pre]``, or the cell's connectivity index
            (:class:`~neurosnap.core.graph.RecurrentGraph`, whose CSC is used as it is).
        crossover: see the attribute (default: the class attribute, measured).
        min_units: see the attribute (default: the class attribute).

    Attributes:
        indptr, indices: CSC of the mask: the targets of unit ``j`` are
            ``indices[indptr[j]:indptr[j + 1]]``.
        mean_fan_out: mean number of outgoing connections per unit.
        crossover: the event-driven kernel is used when ``n >= min_units`` and
            ``events * mean_fan_out < crossover * B * n * n`` (multiply-adds of the gather vs the
            dense product, per gate). Measured on the benchmark machine (``docs/benchmarks.md``,
            2 cores, n = 16..256, density 1 and 0.1, 10-100% events, batch 1 and 16): reading
            weights column by column costs 20-50x more per multiply-add than BLAS's row-wise
            product, so the gather wins only below ~2-3% of the dense work, and below 64 units
            call overheads dominate either way.
        min_units: below this many units the dense product is always used.

    ``crossover`` and ``min_units`` are instance attributes, so a cell pickled to a sweep worker
    carries the values it was tuned with (``cell.event_drive.crossover = ...``); the class
    attributes hold the measured defaults.
    """

    crossover = 0.02
    min_units = 64

    def __init__(
        self,
        mask: np.ndarray | RecurrentGraph,
        crossover: float | None = None,
        min_units: int | None = None,
    ):
        self.crossover = float(EventDrive.crossover if crossover is None else crossover)
        self.min_units = int(EventDrive.min_units if min_units is None else min_units)
        graph = mask if isinstance(mask, RecurrentGraph) else RecurrentGraph(mask)
        n = graph.n
        self.n = n
        self.graph = graph  # its CSC (indptr, indices, csc_edge) is built on first use
        self.nnz = graph.nnz
        self.mean_fan_out = self.nnz / max(n, 1)

    @property
    def indptr(self) -> np.ndarray:
        return self.graph.indptr

    @property
    def indices(self) -> np.ndarray:
        return self.graph.indices

    def use_events(self, y: np.ndarray) -> bool:
        """Whether the event-driven kernel is cheaper for outputs ``y (B, n)``."""
        B, n = y.shape
        if n < self.min_units:
            return False
        events = np.count_nonzero(y)
        return events * self.mean_fan_out < self.crossover * B * n * n

    def __call__(self, w_rec: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``rec[b, g, i] = sum_j W_rec[g][i, j] y[b, j]``, shape ``(B, G, n)``, for ``w_rec``
        dense ``(G, n, n)`` or synapse values ``(G, nnz)`` (a cell's ``storage="sparse"``: the
        alternative to the event kernel is then the CSR product, ``O(nnz)``, never ``n**2``)."""
        if w_rec.ndim == 2:
            events = np.count_nonzero(y)
            if events * self.mean_fan_out < 0.5 * y.shape[0] * self.nnz:
                return self.gather(w_rec, y)
            return self.graph.matmul(w_rec, y)
        if not self.use_events(y):
            return np.matmul(w_rec, y.T).transpose(2, 0, 1)
        return self.gather(w_rec, y)

    def gather(self, w_rec: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The event-driven kernel (always), shape ``(B, G, n)``."""
        dtype = np.result_type(w_rec.dtype, y.dtype)
        out = np.zeros((y.shape[0], w_rec.shape[0], self.n), dtype=dtype)
        if w_rec.ndim == 2:
            _gather_edges(
                kernel_array(w_rec, dtype),
                kernel_array(y, dtype),
                self.indptr,
                self.indices,
                self.graph.csc_edge,
                out,
            )
            return out
        _gather(
            kernel_array(w_rec, dtype),
            kernel_array(y, dtype),
            self.indptr,
            self.indices,
            out,
        )
        return out


@numba.njit(cache=True, nogil=True)
def _gather(w_rec, y, indptr, indices, out):  # pragma: no cover - numba
    B, n = y.shape
    G = w_rec.shape[0]
    vals = np.empty(B, dtype=y.dtype)
    bs = np.empty(B, dtype=np.int64)
    for j in range(n):
        m = 0  # batch entries where unit j emitted an event
        for b in range(B):
            v = y[b, j]
            if v != 0:
                vals[m] = v
                bs[m] = b
                m += 1
        if m == 0:
            continue
        for k in range(indptr[j], indptr[j + 1]):
            i = indices[k]
            for g in range(G):
                w = w_rec[g, i, j]
                for t in range(m):
                    out[bs[t], g, i] += w * vals[t]


@numba.njit(cache=True, nogil=True)
def _gather_edges(w_rec, y, indptr, indices, csc_edge, out):  # pragma: no cover - numba
    """:func:`_gather` for synapse values ``w_rec (G, nnz)`` (edge ``csc_edge[k]`` of CSC entry
    ``k``)."""
    B, n = y.shape
    G = w_rec.shape[0]
    for j in range(n):
        for b in range(B):
            v = y[b, j]
            if v == 0:
                continue
            for k in range(indptr[j], indptr[j + 1]):
                i = indices[k]
                e = csc_edge[k]
                for g in range(G):
                    out[b, g, i] += w_rec[g, e] * v
