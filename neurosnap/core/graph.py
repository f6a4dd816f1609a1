"""The connectivity index of a cell: its mask ``mask[post, pre]`` as edge lists, built once.

Every user of the connectivity (the event-driven recurrent drive, the sparse exact engine, SnAp,
the cost counters, the compiled loops) takes it from ``cell.graph`` instead of rebuilding it.
"""

from __future__ import annotations

import numpy as np


class RecurrentGraph:
    """The connectivity mask ``mask[post, pre]`` as edge lists.

    Edges are numbered ``e = 0 .. nnz-1`` in the order of ``np.nonzero(mask)`` (row-major, by
    postsynaptic unit), which is also the order of the recurrent-weight columns of
    :class:`~neurosnap.core.layout.ParamLayout` within one gate.

    Attributes:
        n: number of units.
        nnz: number of existing connections.
        indptr, indices: CSC by presynaptic unit: ``indices[indptr[j]:indptr[j+1]]`` are the targets
            of unit ``j``.
        csc_edge: shape ``(nnz,)``, edge number of each CSC entry.
        in_ptr: shape ``(n + 1,)``, CSR by postsynaptic unit: edges ``in_ptr[i]:in_ptr[i+1]`` end in ``i``.
        edge_post, edge_pre: shape ``(nnz,)``, the two ends of every edge.
        self_edge: shape ``(n,)``, edge number of the autapse ``i -> i`` or -1.
        fan_out: shape ``(n,)``, outgoing connections per unit.
    """

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask, dtype=bool)
        n = mask.shape[0]
        self.n = n
        post, pre = np.nonzero(mask)
        self.nnz = len(post)
        self.edge_post = post.astype(np.int64)
        self.edge_pre = pre.astype(np.int64)
        self.in_ptr = np.searchsorted(post, np.arange(n + 1)).astype(np.int64)
        order = np.lexsort((post, pre))  # by presynaptic unit, then postsynaptic
        self.csc_edge = order.astype(np.int64)
        self.indices = post[order].astype(np.int64)
        self.indptr = np.searchsorted(pre[order], np.arange(n + 1)).astype(np.int64)
        self.fan_out = np.diff(self.indptr)
        self.self_edge = np.full(n, -1, dtype=np.int64)
        diag = post == pre
        self.self_edge[post[diag]] = np.flatnonzero(diag)
