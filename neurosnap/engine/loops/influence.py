"""Exact RTRL (sparse block kernel or dense BLAS) and SnAp-n >= 2 (block plan) (``docs/theory/rtrl.md``, ``snap.md``).

One compiled loop over a chunk of time steps; the argument tuples are described in
:mod:`neurosnap.engine.loops`."""

from __future__ import annotations

import numpy as np

from ...core.layout import REC
from ...sparse.kernels import block_step_arrays
from ...sparse.stats import macs_per_column_arrays
from .._step import pre_value
from ..codes import BLOCK, NO_OPT
from .parts import forward, jit, scratch, update


@jit
def _fold(grad_store, perm, core):  # pragma: no cover - numba
    for s in range(grad_store.shape[0]):
        core[perm[s]] += grad_store[s]
        grad_store[s] = 0.0


@jit
def dense_step(
    M,
    M2,
    J,
    cred,
    gtmp,
    graph,
    kind,
    gate,
    post,
    pre,
    w_rec,
    local,
    drec,
    dinp,
    dout_prev,
    y_prev,
    x,
    credit,
    core,
):  # pragma: no cover - numba
    """``M2 = J_t M + Mbar_t`` with the dense Jacobian (BLAS), ``core += c_t^T M2`` (rtrl eq. 4, 6)."""
    B, S, n = dout_prev.shape
    G = w_rec.shape[0]
    P = kind.shape[0]
    edge_pre, edge_post = graph[3], graph[4]
    for b in range(B):
        J[:] = 0.0
        for i in range(n):
            for a in range(S):
                for c in range(S):
                    J[a * n + i, c * n + i] = local[b, a, c, i]
        for e in range(edge_pre.shape[0]):
            i = edge_post[e]
            j = edge_pre[e]
            for a in range(S):
                s = 0.0
                for g in range(G):
                    s += drec[b, a, g, i] * w_rec[g, e]
                if s != 0:
                    for c in range(S):
                        J[a * n + i, c * n + j] += s * dout_prev[b, c, j]
        np.dot(J, M[b], M2[b])
        for p in range(P):
            i = post[p]
            k = kind[p]
            g = gate[p]
            v = pre_value(k, pre[p], b, y_prev, x)
            for a in range(S):
                M2[b, a * n + i, p] += (drec[b, a, g, i] if k == REC else dinp[b, a, g, i]) * v
        for a in range(S):
            for j in range(n):
                cred[a * n + j] = credit[b, a, j]
        np.dot(cred, M2[b], gtmp)
        for p in range(P):
            core[p] += gtmp[p]


@jit
def _dense_weights(w_rec, edge_post, edge_pre, out):  # pragma: no cover - numba
    """Scatter the synapse values ``w_rec (G, nnz)`` into ``out (G, n, n)`` (entries off the
    connectivity are left as they are)."""
    for g in range(w_rec.shape[0]):
        for e in range(w_rec.shape[1]):
            out[g, edge_post[e], edge_pre[e]] = w_rec[g, e]


@jit
def synapse_values(w, edge_post, edge_pre, out):  # pragma: no cover - numba
    """Gather the synapses of a dense ``w (G, n, n)`` into ``out (G, nnz)`` (edge order)."""
    for g in range(out.shape[0]):
        for e in range(out.shape[1]):
            out[g, e] = w[g, edge_post[e], edge_pre[e]]


scatter_synapses = _dense_weights


@jit
def run_influence(
    code,
    plan,
    work,
    bufs,
    perm,
    switch,
    data,
    cell,
    params,
    graph,
    layout,
    acc,
    outs,
    opt,
    ctl,
    batch_size,
):  # pragma: no cover - numba
    """Chunk loop of exact RTRL and SnAp-n >= 2.

    ``code == BLOCK``: the sparse exact kernel
    :func:`neurosnap.sparse.kernels.block_step_arrays` on the
    block ``plan`` (a tuple of its index arrays; exact RTRL or a SnAp-n pattern); ``perm`` maps its
    storage columns to parameters. ``code == DENSE``: the dense Jacobian times ``M (B, S n, P)``.
    ``work``: the kernel's scratch arrays ``(coef, active, src_ptr, src_f, src_c, src_jj)``;
    ``bufs = (old, new, M, M2, J, cred)``: the two flat buffers of the plan, the two dense
    ``(B, S n, P)`` influences, the dense Jacobian ``(S n, S n)`` and a credit row ``(S n,)``, all
    zero, allocated by the caller (``np.zeros`` maps zero pages lazily; unused ones are tiny).
    ``switch``: for the exact plan, a step whose counted sparse work times ``switch`` exceeds the
    dense product's runs with BLAS on the dense Jacobian instead (``neurosnap.rules.rtrl``'s
    ``DENSE_SWITCH``; 0 for SnAp patterns, whose storage is not ``M``).

    The block kernel reads the recurrent weights as a dense ``(G, n, n)`` array: ``code == BLOCK``
    scatters the synapse values into one here (and again after each optimizer update). Exact
    RTRL's influence (``S n x P``, ``P >= G nnz``) is larger; a SnAp-n pattern's may be smaller.
    """
    state = cell[4]
    B, S, n = state.shape
    w_rec = params[0]
    G = w_rec.shape[0]
    n_out = params[3].shape[0]
    kind, gate, post, pre = layout
    P = kind.shape[0]
    dt = state.dtype
    sc = scratch(B, S, G, n, n_out, state)
    y_prev, dout_prev, _r, _i, new, local, drec, dinp, _y, dout, _dlogits, credit = sc
    indptr, indices, csc_edge, edge_pre = graph[0], graph[1], graph[2], graph[3]
    (
        blk_base,
        blk_bstride,
        blk_rstride,
        blk_ncol,
        blk_col0,
        blk_rowset,
        rs_rowptr,
        rs_units,
        rs_eptr,
        rs_ejj,
        rs_ee,
        col_kind,
        col_gate,
        col_post,
        col_pre,
        col_row,
        _size,
    ) = plan
    coef, active, src_ptr, src_f, src_c, src_jj = work
    old, nxt, M, M2, J, cred = bufs
    gtmp = np.zeros(P, dt)
    grad_store = np.zeros(P, dt)
    w_dense = np.zeros((G, n, n) if code == BLOCK else (1, 1, 1), dt)
    if code == BLOCK:
        _dense_weights(w_rec, graph[4], edge_pre, w_dense)
    xs = data[0]
    total = 0.0
    for t in range(ctl[0]):
        loss, ok = forward(t, data, cell, params, graph, outs, acc, sc, ctl)
        if not ok:
            return total
        total += loss
        use_blas = False
        if code == BLOCK and switch > 0:
            use_blas = (
                switch
                * macs_per_column_arrays(local, drec, dout_prev, dout, graph[4], edge_pre).sum()
                > B * (S * n) ** 2
            )
        if use_blas:  # dense steps of the exact plan: BLAS on the same storage
            dense_step(
                old.reshape((B, S * n, P)),
                nxt.reshape((B, S * n, P)),
                J,
                cred,
                gtmp,
                graph,
                kind,
                gate,
                post,
                pre,
                params[0],
                local,
                drec,
                dinp,
                dout_prev,
                y_prev,
                xs[t],
                credit,
                acc[0],
            )
            old, nxt = nxt, old
        elif code == BLOCK:
            block_step_arrays(
                old,
                nxt,
                blk_base,
                blk_bstride,
                blk_rstride,
                blk_ncol,
                blk_col0,
                blk_rowset,
                rs_rowptr,
                rs_units,
                rs_eptr,
                rs_ejj,
                rs_ee,
                col_kind,
                col_gate,
                col_post,
                col_pre,
                col_row,
                indptr,
                indices,
                csc_edge,
                edge_pre,
                local,
                drec,
                w_dense,
                dout_prev,
                drec,
                dinp,
                y_prev,
                xs[t],
                credit,
                grad_store,
                True,
                coef,
                active,
                src_ptr,
                src_f,
                src_c,
                src_jj,
            )
            old, nxt = nxt, old
        else:
            dense_step(
                M,
                M2,
                J,
                cred,
                gtmp,
                graph,
                kind,
                gate,
                post,
                pre,
                params[0],
                local,
                drec,
                dinp,
                dout_prev,
                y_prev,
                xs[t],
                credit,
                acc[0],
            )
            M, M2 = M2, M
        state[:] = new
        ctl[2] += 1
        if ctl[1] > 0 and ctl[2] >= ctl[1] and opt[0] != NO_OPT:
            _fold(grad_store, perm, acc[0])
            if not update(params, layout, acc, opt, ctl, batch_size, t + 1):
                return total
            if code == BLOCK:
                _dense_weights(w_rec, graph[4], edge_pre, w_dense)
    _fold(grad_store, perm, acc[0])
    return total
