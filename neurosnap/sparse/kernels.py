"""The sparse exact engine's entry points, gathered: block plans (:mod:`neurosnap.sparse.blocks`),
exact column panels (:mod:`neurosnap.sparse.panels`), the SnAp-1 step and the plain product
``J_t M`` (this module).

``J_t = blockdiag(local) + sum_g diag(drec_g) W_g diag(dout)`` (``docs/theory/rtrl.md`` eq. 3,
``docs/theory/snap.md`` eq. (1)): every kernel costs the non-zeros of the local blocks plus, per
existing connection from a unit inside the surrogate's support, the non-zeros of its ``dout``;
silent units and missing weights cost nothing (rtrl eq. 7, snap eq. (8)).
:func:`propagate_influence` (``J_t M`` only) is checked by the test suite against a NumPy
reference and against the dense product.
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.graph import RecurrentGraph as RecurrentGraph  # re-exported: the kernels' graph type
from ..core.layout import BIAS, INP, REC
from .blocks import CHUNK as CHUNK
from .blocks import BlockPlan as BlockPlan
from .blocks import block_step as block_step
from .blocks import block_step_arrays as block_step_arrays
from .panels import TILE_BYTES as TILE_BYTES
from .panels import ExactWork as ExactWork
from .panels import exact_panel_step as exact_panel_step
from .panels import presynaptic_order as presynaptic_order
from .panels import tile_columns as tile_columns
from .rowops import record_arrays


# -------------------------------------------------------------------------------------------------
# SnAp-1: diagonal blocks only
# -------------------------------------------------------------------------------------------------
def snap1_step(M, layout, graph, jac_state, jac_params, credit, grad):
    """SnAp-1 step in place on ``M`` of shape ``(B, S, P)``: ``M <- D_ii M + Mbar``, ``grad += c^T M``.

    ``D_ii`` is the ``S x S`` diagonal block of ``J_t`` of each parameter's postsynaptic unit ``i``,
    including the autapse term ``sum_g drec[a, g, i] W_g[i, i] dout[b, i]`` (snap eq. (7)).
    """
    dt = M.dtype
    js, jp = jac_state, jac_params
    _snap1_step(
        M,
        layout.kind.astype(np.int64),
        layout.gate,
        layout.post,
        layout.pre,
        graph.self_edge,
        *record_arrays(js, jp, credit, dt),
        grad,
    )


@numba.njit(cache=True, nogil=True)
def _snap1_step(
    M,
    kind,
    gate,
    post,
    pre,
    self_edge,
    local,
    drec,
    w_rec,
    dout,
    jp_drec,
    jp_dinp,
    y_prev,
    x,
    credit,
    grad,
):  # pragma: no cover - numba
    B, S, P = M.shape
    G = w_rec.shape[0]
    n = local.shape[3]
    zero = M.dtype.type(0.0)
    D = np.empty((n, S, S), dtype=M.dtype)
    old = np.empty(S, dtype=M.dtype)
    for b in range(B):
        for i in range(n):
            for a in range(S):
                for c in range(S):
                    D[i, a, c] = local[b, a, c, i]
            if self_edge[i] >= 0:
                for a in range(S):
                    s = zero
                    for g in range(G):
                        s += drec[b, a, g, i] * w_rec[g, i, i]
                    if s != 0:
                        for c in range(S):
                            D[i, a, c] += s * dout[b, c, i]
        if S == 1:
            for p in range(P):
                i = post[p]
                kd = kind[p]
                g = gate[p]
                if kd == REC:
                    f = jp_drec[b, 0, g, i] * y_prev[b, pre[p]]
                elif kd == INP:
                    f = jp_dinp[b, 0, g, i] * x[b, pre[p]]
                else:
                    f = jp_dinp[b, 0, g, i]
                v = D[i, 0, 0] * M[b, 0, p] + f
                M[b, 0, p] = v
                grad[p] += credit[b, 0, i] * v
        else:
            for p in range(P):
                i = post[p]
                kd = kind[p]
                g = gate[p]
                if kd == REC:
                    pv = y_prev[b, pre[p]]
                elif kd == INP:
                    pv = x[b, pre[p]]
                else:
                    pv = M.dtype.type(1.0)
                for c in range(S):
                    old[c] = M[b, c, p]
                for a in range(S):
                    s = zero
                    for c in range(S):
                        s += D[i, a, c] * old[c]
                    if kd == REC:
                        s += jp_drec[b, a, g, i] * pv
                    else:
                        s += jp_dinp[b, a, g, i] * pv
                    M[b, a, p] = s
                    grad[p] += credit[b, a, i] * s


# -------------------------------------------------------------------------------------------------
# plain product (learned thresholds' non-local influence, neurosnap.rules._thresholds)
# -------------------------------------------------------------------------------------------------
def propagate_influence(M, jac_state, graph):
    """``J_t M`` for ``M`` of shape ``(B, S, n, P)``, exploiting activity and weight sparsity.

    Args:
        M: influence, shape ``(B, S, n, P)``.
        jac_state: :class:`~neurosnap.core.record.StateJacobian` of this step.
        graph: :class:`RecurrentGraph` of the cell's mask.

    Returns:
        New array of shape ``(B, S, n, P)``.
    """
    B, S, n, P = M.shape
    plan = _product_plan(graph, S, B, P)
    G = jac_state.w_rec.shape[0]
    dummy = _DummyParams(B, S, G, n, M.dtype)
    grad = np.zeros(P, dtype=M.dtype)
    old = plan.from_dense(np.asarray(M))
    new = np.empty_like(old)
    block_step(old, new, plan, graph, jac_state, dummy, None, grad, immediate=False)
    return plan.to_dense(new)


class _DummyParams:
    def __init__(self, B, S, G, n, dtype):
        self.drec = np.zeros((B, S, G, n), dtype)
        self.dinp = np.zeros((B, S, G, n), dtype)
        self.y_prev = np.zeros((B, n), dtype)
        self.x = np.zeros((B, 1), dtype)


class _ProductLayout:
    """Minimal layout for a plain ``(n, P)`` product: every column is a bias of unit 0."""

    def __init__(self, n, P):
        self.n, self.size = n, P
        self.kind = np.full(P, BIAS, dtype=np.int8)
        self.gate = np.zeros(P, dtype=np.int64)
        self.post = np.zeros(P, dtype=np.int64)
        self.pre = np.zeros(P, dtype=np.int64)


def _product_plan(graph, S, B, P):
    return BlockPlan.dense(_ProductLayout(graph.n, P), graph, S, B)
