"""Influence of learned thresholds for the sparse engines (``docs/theory/cells.md`` eq. (25)).

A threshold column ``theta_j`` of ``M`` is not confined to its own unit: its immediate influence
has a local part (unit ``j``'s rows, ``dthr``) and a non-local part through ``y_{t-1}[j]`` on ``j``'s
postsynaptic units (``ParamLayout.nonlocal_immediate``). The numba kernels of the sparse engines
run on the layout without these ``n`` columns (``ParamLayout.base``); the threshold columns are
kept here as a separate ``(B, S, n, n)`` block, propagated by the same sparse exact product
(:func:`neurosnap.sparse.kernels.propagate_influence`: only units inside the surrogate's support
and existing weights cost anything) and given their immediate influence on the existing
connections only (fan-out per threshold). Exact, not an approximation; ``keep`` restricts the
block to a SnAp pattern.
"""

from __future__ import annotations

import numpy as np

from ..sparse import kernels


def new_block(layout, batch: int, n_state: int, dtype):
    """Zero threshold block ``(B, S, n, n_thr)``, or None when the layout has no thresholds."""
    if not layout.n_thr:
        return None
    return np.zeros((batch, n_state, layout.n, layout.n_thr), dtype=dtype)


def block_step(M, record, credit, graph, layout, keep=None):
    """``M <- keep * (J_t M + Mbar_t)`` on the threshold columns, and their gradient.

    Args:
        M: ``(B, S, n, n)`` threshold block (column ``j`` is ``theta_j``), replaced.
        record: the step record (with ``jac_params.dthr`` and ``dy_thr_prev``).
        credit: ``(B, S, n)``, ``dL_t/ds_t``.
        graph: :class:`~neurosnap.core.graph.RecurrentGraph` of the cell's mask.
        layout: the cell's layout (with thresholds).
        keep: None (exact) or a boolean ``(n, n)`` pattern ``keep[i, j]`` (SnAp).

    Returns:
        ``(M_new (B, S, n, n), grad (n,))``.
    """
    js, jp = record.jac_state, record.jac_params
    dt = M.dtype
    if np.any(M):
        new = kernels.propagate_influence(M, js, graph)
    else:
        new = np.zeros_like(M)
    j = layout.post[layout.thr_cols]
    new[:, :, j, np.arange(layout.n_thr)] += jp.dthr[:, :, j].astype(dt, copy=False)  # local
    if graph.nnz:
        vals = layout.nonlocal_edges(jp, js.w_rec, graph.edge_post, graph.edge_pre)  # (B, S, E)
        new[:, :, graph.edge_post, graph.edge_pre] += vals.astype(dt, copy=False)  # non-local
    if keep is not None:
        new *= keep
    return new, np.einsum("ban,banj->j", credit.astype(dt, copy=False), new)
