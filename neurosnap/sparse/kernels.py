"""Kernels of the sparse exact engine: ``J_t M`` without touching what is zero.

``J_t = blockdiag(local) + sum_g diag(drec_g) W_g diag(dout)`` (``docs/theory/rtrl.md`` eq. 3).
The product with the influence ``M`` of shape ``(B, S, n, P)`` costs

- ``S^2 n P`` for the per-unit block-diagonal part, and
- for each unit ``j`` inside the surrogate's support (``dout[:, j] != 0``): ``S P`` to contract its
  influence rows, then ``S P`` per existing outgoing connection ``j -> i``.

Silent units outside the support and missing weights cost nothing (rtrl eq. 7). The numba kernel
:func:`propagate_influence` is checked against the NumPy reference
:func:`propagate_influence_reference` and against the dense product.
"""
from __future__ import annotations

import numba
import numpy as np


class RecurrentGraph:
    """Outgoing connections by presynaptic unit (CSC of the mask ``mask[post, pre]``).

    Attributes:
        indptr: shape ``(n + 1,)``; ``indices[indptr[j]:indptr[j+1]]`` are the targets of unit ``j``.
        indices: shape ``(nnz,)``, postsynaptic units.
    """

    def __init__(self, mask: np.ndarray):
        pre, post = np.nonzero(mask.T)            # sorted by presynaptic unit
        n = mask.shape[0]
        self.n = n
        self.indices = post.astype(np.int64)
        self.indptr = np.searchsorted(pre, np.arange(n + 1)).astype(np.int64)
        self.nnz = len(self.indices)


def propagate_influence_reference(M, jac_state, graph):
    """NumPy reference of :func:`propagate_influence`; shapes as there."""
    out = np.einsum("bacn,bcnp->banp", jac_state.local, M)
    B = M.shape[0]
    for b in range(B):
        active = np.flatnonzero(np.any(jac_state.dout[b] != 0, axis=0))
        if active.size == 0:
            continue
        Y = np.einsum("cj,cjp->jp", jac_state.dout[b][:, active], M[b][:, active])   # (|A|, P)
        W = jac_state.w_rec[:, :, active]                                          # (G, n, |A|)
        coef = np.einsum("agi,gij->aij", jac_state.drec[b], W)                      # (S, n, |A|)
        out[b] += coef @ Y
    return out


def propagate_influence(M, jac_state, graph):
    """``J_t M`` for ``M`` of shape ``(B, S, n, P)``, exploiting activity and weight sparsity.

    Args:
        M: influence, shape ``(B, S, n, P)``.
        jac_state: :class:`~neurosnap.core.record.StateJacobian` of this step.
        graph: :class:`RecurrentGraph` of the cell's mask.

    Returns:
        New array of shape ``(B, S, n, P)``.
    """
    out = np.empty_like(M)
    _propagate(M, jac_state.local, jac_state.drec, jac_state.w_rec, jac_state.dout,
               graph.indptr, graph.indices, out)
    return out


@numba.njit(cache=True, nogil=True)
def _propagate(M, local, drec, w_rec, dout, indptr, indices, out):  # pragma: no cover - numba
    B, S, n, P = M.shape
    G = w_rec.shape[0]
    Y = np.empty(P, dtype=M.dtype)
    coef = np.empty(S, dtype=M.dtype)
    for b in range(B):
        for i in range(n):                       # per-unit block-diagonal part
            for a in range(S):
                for p in range(P):
                    out[b, a, i, p] = local[b, a, 0, i] * M[b, 0, i, p]
                for c in range(1, S):
                    f = local[b, a, c, i]
                    if f != 0.0:
                        for p in range(P):
                            out[b, a, i, p] += f * M[b, c, i, p]
        for j in range(n):                       # recurrent part: active presynaptic units only
            active = False
            for c in range(S):
                if dout[b, c, j] != 0.0:
                    active = True
            if not active:
                continue
            for p in range(P):
                Y[p] = 0.0
            for c in range(S):
                f = dout[b, c, j]
                if f != 0.0:
                    for p in range(P):
                        Y[p] += f * M[b, c, j, p]
            for k in range(indptr[j], indptr[j + 1]):
                i = indices[k]
                for a in range(S):
                    s = 0.0
                    for g in range(G):
                        s += drec[b, a, g, i] * w_rec[g, i, j]
                    coef[a] = s
                for a in range(S):
                    f = coef[a]
                    if f != 0.0:
                        for p in range(P):
                            out[b, a, i, p] += f * Y[p]
