"""The connectivity index of a cell: which recurrent synapses ``post <- pre`` exist, built once.

The index is stored as CSR by postsynaptic unit (``in_ptr``, ``pre_index``: the presynaptic units
of unit ``i`` are ``pre_index[in_ptr[i]:in_ptr[i + 1]]``, ascending), which costs ``8 (n + 1) +
4 nnz`` bytes (int32 indices while ``n < 2**31``) and never ``n**2``. Everything else (the edge
lists, the CSC by presynaptic unit, the self-connections, the dense mask) is derived from it on
first use, so a network that is only simulated never pays for what only training needs.

Every user of the connectivity (the event-driven recurrent drive, the sparse exact engine, SnAp,
the cost counters, the compiled loops, the simulator) takes it from ``cell.graph``.
"""

from __future__ import annotations

import functools

import numpy as np

from .arrays import kernel_array


def index_dtype(n: int) -> np.dtype:
    """The narrowest signed integer type that holds unit numbers ``0 .. n - 1``: int32 below
    ``2**31`` units, else int64."""
    return np.dtype(np.int32 if n < 2**31 else np.int64)


class RecurrentGraph:
    """The connectivity of ``n`` units as CSR by postsynaptic unit.

    Build it from a dense mask ``mask[post, pre]`` (``RecurrentGraph(mask)``) or from CSR arrays
    (:meth:`from_csr`, no ``n x n`` array anywhere). Edges are numbered ``e = 0 .. nnz-1`` in CSR
    order (by postsynaptic unit, then presynaptic unit: the order of ``np.nonzero(mask)``), which is
    also the order of a sparse cell's recurrent-weight values ``w_rec[g, e]`` and of the
    recurrent-weight columns of :class:`~neurosnap.core.layout.ParamLayout` within one gate.

    Attributes:
        n: number of units.
        nnz: number of existing connections.
        in_ptr: shape ``(n + 1,)`` int64: edges ``in_ptr[i]:in_ptr[i+1]`` end in unit ``i``.
        pre_index: shape ``(nnz,)``, int32 (int64 for ``n >= 2**31``): presynaptic unit of each
            edge, ascending within a row. The stored index; the attributes below are derived from
            it when first read and then kept.
        edge_post, edge_pre: shape ``(nnz,)`` int64, the two ends of every edge.
        indptr, indices: CSC by presynaptic unit (int64): ``indices[indptr[j]:indptr[j+1]]`` are
            the targets of unit ``j``.
        csc_edge: shape ``(nnz,)`` int64, edge number of each CSC entry.
        self_edge: shape ``(n,)`` int64, edge number of the autapse ``i -> i`` or -1.
        fan_out: shape ``(n,)``, outgoing connections per unit; ``fan_in`` incoming.
    """

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
            raise ValueError(f"mask must have shape (n, n), got {mask.shape}")
        n = mask.shape[0]
        post, pre = np.nonzero(mask)
        self._set(n, np.searchsorted(post, np.arange(n + 1)), pre)

    @classmethod
    def from_csr(cls, n: int, in_ptr, pre_index) -> RecurrentGraph:
        """The graph of CSR arrays: ``in_ptr (n + 1,)`` non-decreasing from 0 to ``nnz`` and
        ``pre_index (nnz,)`` with the presynaptic units of each row strictly ascending (no
        repeated synapse) and in ``[0, n)``. ``ValueError`` naming the array otherwise."""
        n = int(n)
        in_ptr = np.asarray(in_ptr)
        pre_index = np.asarray(pre_index)
        if in_ptr.shape != (n + 1,) or not np.issubdtype(in_ptr.dtype, np.integer):
            raise ValueError(f"in_ptr must be integers of shape ({n + 1},), got {in_ptr.shape}")
        if in_ptr[0] != 0 or np.any(np.diff(in_ptr) < 0) or in_ptr[-1] != len(pre_index):
            raise ValueError(
                "in_ptr must start at 0, never decrease and end at len(pre_index) "
                f"({len(pre_index)}), got {in_ptr[0]} .. {in_ptr[-1]}"
            )
        if pre_index.ndim != 1 or not np.issubdtype(pre_index.dtype, np.integer):
            raise ValueError(f"pre_index must be a 1-D integer array, got {pre_index.dtype}")
        if len(pre_index) and (pre_index.min() < 0 or pre_index.max() >= n):
            raise ValueError(
                f"pre_index must lie in [0, {n}), got {pre_index.min()} .. {pre_index.max()}"
            )
        if not _rows_ascending(in_ptr.astype(np.int64), pre_index):
            raise ValueError(
                "pre_index must be strictly ascending within each row (sorted presynaptic units, "
                "no synapse given twice)"
            )
        graph = cls.__new__(cls)
        graph._set(n, in_ptr, pre_index)
        return graph

    def _set(self, n, in_ptr, pre_index):
        self.n = int(n)
        self.in_ptr = kernel_array(in_ptr, np.int64)
        self.pre_index = kernel_array(pre_index, index_dtype(n))
        self.nnz = len(self.pre_index)

    # -- derived on first use ---------------------------------------------------------------------
    @functools.cached_property
    def edge_pre(self) -> np.ndarray:
        return self.pre_index.astype(np.int64)

    @functools.cached_property
    def edge_post(self) -> np.ndarray:
        return np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.in_ptr))

    @functools.cached_property
    def fan_in(self) -> np.ndarray:
        return np.diff(self.in_ptr)

    @functools.cached_property
    def csc_edge(self) -> np.ndarray:
        return np.argsort(self.pre_index, kind="stable").astype(np.int64)

    @functools.cached_property
    def indices(self) -> np.ndarray:
        return self.edge_post[self.csc_edge]

    @functools.cached_property
    def indptr(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(self.fan_out))).astype(np.int64)

    @functools.cached_property
    def fan_out(self) -> np.ndarray:
        return np.bincount(self.pre_index, minlength=self.n).astype(np.int64)

    @functools.cached_property
    def self_edge(self) -> np.ndarray:
        out = np.full(self.n, -1, dtype=np.int64)
        diag = np.flatnonzero(self.edge_post == self.edge_pre)
        out[self.edge_post[diag]] = diag
        return out

    def dense(self, values: np.ndarray) -> np.ndarray:
        """Synapse values ``(..., nnz)`` scattered into a dense ``(..., n, n)`` array (zero off the
        connectivity)."""
        out = np.zeros((*values.shape[:-1], self.n, self.n), dtype=values.dtype)
        out[..., self.edge_post, self.pre_index] = values
        return out

    def _csr(self, values: np.ndarray):
        import scipy.sparse

        return scipy.sparse.csr_array((values, self.pre_index, self.in_ptr), shape=(self.n, self.n))

    def matmul(self, w: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``out[b, g, i] = sum_j W[g][i, j] y[b, j]`` for synapse values ``w (G, nnz)`` and
        ``y (B, n)``; shape ``(B, G, n)``, cost ``O(G B nnz)`` (scipy's CSR product)."""
        dtype = np.result_type(w.dtype, y.dtype)
        out = np.empty((y.shape[0], w.shape[0], self.n), dtype=dtype)
        yt = np.ascontiguousarray(y.T, dtype=dtype)
        for g in range(w.shape[0]):
            out[:, g, :] = (self._csr(w[g].astype(dtype, copy=False)) @ yt).T
        return out

    def matmul_transpose(self, w: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``out[b, j] = sum_g sum_i delta[b, g, i] W[g][i, j]`` for synapse values ``w (G, nnz)``
        and ``delta (B, G, n)``; shape ``(B, n)``."""
        dtype = np.result_type(w.dtype, delta.dtype)
        out = np.zeros((delta.shape[0], self.n), dtype=dtype)
        for g in range(w.shape[0]):
            m = self._csr(w[g].astype(dtype, copy=False))
            out += (m.T @ np.ascontiguousarray(delta[:, g, :].T, dtype=dtype)).T
        return out

    def to_mask(self) -> np.ndarray:
        """The dense mask ``mask[post, pre]``, shape ``(n, n)`` bool (``n**2`` bytes)."""
        mask = np.zeros((self.n, self.n), dtype=bool)
        mask[self.edge_post, self.pre_index] = True
        return mask

    def transpose_order(
        self, post_dtype=None, order: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """CSC by presynaptic unit without int64 edge lists, by a counting sort in ``O(n + nnz)``
        time (the simulator's synapse tables of networks with 10^8 synapses).

        Args:
            post_dtype: integer type of ``post`` (default :func:`index_dtype`).
            order: also return the edge of each CSC entry (``False``: ``None`` in its place, and
                4 bytes per synapse less, as the simulator needs only ``out_ptr`` and ``post``).

        Returns:
            ``(out_ptr (n + 1,) int64, order (nnz,), post (nnz,))``: the ``q``-th CSC entry is edge
            ``order[q]`` (int32 while ``nnz < 2**31``) onto unit ``post[q]``, postsynaptic units
            ascending within a column. Kept on the graph (shared by every caller: do not modify;
            4 or 8 bytes per synapse) so that later calls are free; the sort of 10^8 synapses
            takes about a second, plus the first touch of its output memory.
        """
        from .graph_kernels import TRANSPOSE_BLOCK, counting_transpose  # numba, on first use

        post_dtype = np.dtype(post_dtype or index_dtype(self.n))
        cache = vars(self).setdefault("_transposed", {})
        kept = cache.get(post_dtype)
        if kept is None or (order and kept[1] is None):  # kept: a later call skips the sort
            edges = np.empty(self.nnz if order else 0, index_dtype(max(self.n, self.nnz)))
            post = np.empty(self.nnz, dtype=post_dtype)
            out_ptr = counting_transpose(
                self.n, self.in_ptr, self.pre_index, edges, post, TRANSPOSE_BLOCK
            )
            cache[post_dtype] = kept = (out_ptr, edges if order else None, post)
        return kept

    def __eq__(self, other):
        return (
            isinstance(other, RecurrentGraph)
            and self.n == other.n
            and np.array_equal(self.in_ptr, other.in_ptr)
            and np.array_equal(self.pre_index, other.pre_index)
        )

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self):  # pickle (sweep workers) the index only, not what derives from it
        return {"n": self.n, "in_ptr": self.in_ptr, "pre_index": self.pre_index}

    def __setstate__(self, state):
        self._set(state["n"], state["in_ptr"], state["pre_index"])


def _rows_ascending(in_ptr: np.ndarray, pre: np.ndarray) -> bool:
    from .graph_kernels import rows_ascending  # numba: no int64 temporaries of 10^8 entries

    return bool(rows_ascending(in_ptr, pre))
