"""The compiled chunk loops: a whole chunk of time steps (a sequence, or a training batch with its
optimizer updates) in one numba call, one loop per rule family.

Every loop runs, per time step: cell step and step record (:func:`~neurosnap.engine._step.cell_step`),
readout, loss and credit (:func:`~neurosnap.engine._step.readout_loss`), the rule's update and the
gradient accumulation, and, in training, the optimizer update every ``update_every`` steps
(:func:`~neurosnap.engine._step.apply_update`). Arguments are grouped in tuples:

- ``data = (xs (T, B, n_in), ys_i (T, B) int64, ys_f (T, B, n_out or 1), mask (T, B) bool, loss_code)``
- ``cell = (cell_kind, gate_code, gate_params (2,), hyper (10,), state (B, S, n))`` (state updated)
- ``params = (w_rec (G, nnz), w_in (G, n, n_in), bias (G, n), w_out (n_out, n), b_out (n_out,))``
  (updated in place by the optimizer); ``w_rec[g, e]`` is the weight of edge ``e`` of the graph
  (CSR order), for either storage of the cell (``neurosnap.engine`` gathers a dense array's
  synapse values), so memory and work follow the synapses
- ``graph = (indptr, indices, csc_edge, edge_pre, edge_post, self_edge, in_ptr)``
  (:class:`~neurosnap.core.graph.RecurrentGraph`)
- ``layout = (kind, gate, post, pre)`` (:class:`~neurosnap.core.layout.ParamLayout`, int64)
- ``acc = (core (P,), g_wout, g_bout)`` gradient accumulators (layout order)
- ``outs = (logits (T, B, n_out), losses (T, B) float64)``
- ``opt = (opt_code, opt_hyper (4,), count (1,) int64, m1 (5 arrays), m2 (5 arrays))``
- ``ctl`` int64: ``[T_run, update_every (0: never), since_update, updates, err_kind, err_t, t0,
  check]``; ``err_kind`` 1/2/3 = non-finite state / loss / gradient at time step ``err_t``.

Each returns the summed loss of the chunk.
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.layout import REC
from ..sparse.kernels import block_step_arrays
from ..sparse.stats import macs_per_column_arrays
from ._step import (
    all_finite,
    apply_update,
    cell_output,
    cell_step,
    pre_value,
    readout_loss,
)
from .codes import BLOCK, NO_OPT, RFLO, SNAP1

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
#: unsigned indices: no negative-index test in the inner loops (see neurosnap.sparse.kernels)
_u = numba.uint64


@_jit
def _scratch(B, S, G, n, n_out, dtype_like):  # pragma: no cover - numba
    dt = dtype_like.dtype
    return (
        np.zeros((B, n), dt),
        np.zeros((B, S, n), dt),
        np.zeros((G, n), dt),
        np.zeros((G, n), dt),
        np.zeros((B, S, n), dt),
        np.zeros((B, S, S, n), dt),
        np.zeros((B, S, G, n), dt),
        np.zeros((B, S, G, n), dt),
        np.zeros((B, n), dt),
        np.zeros((B, S, n), dt),
        np.zeros((B, n_out), dt),
        np.zeros((B, S, n), dt),
    )


@_jit
def _forward(t, data, cell, params, graph, outs, acc, sc, ctl):  # pragma: no cover - numba
    """Cell step, record, readout and loss of step ``t``; returns ``(loss, ok)``."""
    xs, ys_i, ys_f, mask, loss_code = data
    ck, gk, gp, hp, state = cell
    w_rec, w_in, bias, w_out, b_out = params
    y_prev, dout_prev, rec, inp, new, local, drec, dinp, y, dout, dlogits, credit = sc
    cell_output(ck, gk, gp, hp, state, y_prev, dout_prev)
    cell_step(
        ck,
        gk,
        gp,
        hp,
        state,
        xs[t],
        w_rec,
        w_in,
        bias,
        graph,
        y_prev,
        rec,
        inp,
        new,
        local,
        drec,
        dinp,
    )
    cell_output(ck, gk, gp, hp, new, y, dout)
    loss = readout_loss(
        loss_code,
        y,
        dout,
        w_out,
        b_out,
        ys_i[t],
        ys_f[t],
        mask[t],
        outs[0][t],
        dlogits,
        outs[1][t],
        credit,
        acc[1],
        acc[2],
    )
    if ctl[7] != 0:
        if not all_finite(new):
            ctl[4], ctl[5] = 1, ctl[6] + t
            return loss, False
        if not np.isfinite(loss):
            ctl[4], ctl[5] = 2, ctl[6] + t
            return loss, False
    return loss, True


@_jit
def _update(params, layout, acc, opt, ctl, batch_size, t):  # pragma: no cover - numba
    """Optimizer step on the accumulated gradients; False (and ``err_kind = 3``) if not finite."""
    if ctl[7] != 0 and not all_finite(acc[0]):
        ctl[4], ctl[5] = 3, ctl[6] + t
        return False
    code, hp, count, m1, m2 = opt
    apply_update(
        code,
        hp,
        count,
        params,
        m1,
        m2,
        acc[0],
        acc[1],
        acc[2],
        layout[0],
        layout[1],
        layout[2],
        layout[3],
        batch_size,
    )
    ctl[3] += 1
    ctl[2] = 0
    return True


# -------------------------------------------------------------------------------------------------
# SnAp-1, RFLO, e-prop: one (B, S, P) trace
# -------------------------------------------------------------------------------------------------
@numba.njit(cache=True, inline="always", error_model="numpy")
def _trace_range(e2, core, q0, m, vbuf, Dm, f, sig, tmp, S):  # pragma: no cover - numba
    """Columns ``q0 .. q0+m-1`` of one example's trace ``e2 (S, P)`` whose presynaptic factors
    are ``vbuf[:m]``: ``e2[:, q] = f v_q + Dm e2[:, q]``, then ``core[q] += sig . e2[:, q]``
    (loops over the contiguous columns, vectorised; one pass for ``S`` = 2 and 3)."""
    if S == 2:
        d00, d01, d10, d11 = Dm[0, 0], Dm[0, 1], Dm[1, 0], Dm[1, 1]
        f0, f1, s0, s1 = f[0], f[1], sig[0], sig[1]
        for u in range(m):
            q = _u(q0 + u)
            v = vbuf[u]
            o0 = e2[0, q]
            o1 = e2[1, q]
            n0 = f0 * v + d00 * o0 + d01 * o1
            n1 = f1 * v + d10 * o0 + d11 * o1
            e2[0, q] = n0
            e2[1, q] = n1
            core[q] += s0 * n0 + s1 * n1
        return
    if S == 3:
        d00, d01, d02 = Dm[0, 0], Dm[0, 1], Dm[0, 2]
        d10, d11, d12 = Dm[1, 0], Dm[1, 1], Dm[1, 2]
        d20, d21, d22 = Dm[2, 0], Dm[2, 1], Dm[2, 2]
        f0, f1, f2, s0, s1, s2 = f[0], f[1], f[2], sig[0], sig[1], sig[2]
        for u in range(m):
            q = _u(q0 + u)
            v = vbuf[u]
            o0 = e2[0, q]
            o1 = e2[1, q]
            o2 = e2[2, q]
            n0 = f0 * v + d00 * o0 + d01 * o1 + d02 * o2
            n1 = f1 * v + d10 * o0 + d11 * o1 + d12 * o2
            n2 = f2 * v + d20 * o0 + d21 * o1 + d22 * o2
            e2[0, q] = n0
            e2[1, q] = n1
            e2[2, q] = n2
            core[q] += s0 * n0 + s1 * n1 + s2 * n2
        return
    for a in range(S):
        fa = f[a]
        for u in range(m):
            tmp[a, u] = fa * vbuf[u]
        for c in range(S):
            d = Dm[a, c]
            if d != 0:
                for u in range(m):
                    tmp[a, u] += d * e2[c, _u(q0 + u)]
    for a in range(S):
        sa = sig[a]
        for u in range(m):
            v = tmp[a, u]
            e2[a, _u(q0 + u)] = v
            core[_u(q0 + u)] += sa * v


@_jit
def trace_step(
    code,
    eps,
    Dm,
    fr,
    fi,
    sig,
    vbuf,
    tmp,
    graph,
    w_rec,
    local,
    drec,
    dinp,
    dout_prev,
    y_prev,
    x,
    signal,
    core,
):  # pragma: no cover - numba
    """One trace-rule step on ``eps (B, S, P)``; adds ``signal^T eps`` to ``core``.

    ``SNAP1``: ``eps = D_ii eps + Mbar`` with ``D_ii`` the unit's block of ``J_t``, autapse
    included (snap eq. (7)); ``RFLO``: the block's diagonal (rflo eq. (2)); ``EPROP``: the unit's
    local block (eprop eq. (2)). Columns are visited unit by unit in the
    :class:`~neurosnap.core.layout.ParamLayout` structure (recurrent weights by CSR row, input
    weights, biases), so every per-unit factor is read once and the column loops are contiguous.
    ``vbuf (max(n, n_in, 1),)`` and ``tmp (S, max(n, n_in, 1))`` are scratch.
    """
    B, S, P = eps.shape
    G = w_rec.shape[0]
    n = local.shape[3]
    n_in = x.shape[1]
    in_ptr, edge_pre, self_edge = graph[6], graph[3], graph[5]
    nnz = edge_pre.shape[0]
    dense_mask = nnz == n * n
    inp0 = G * nnz
    bias0 = inp0 + G * n * n_in
    has_bias = P > bias0
    for b in range(B):
        e2 = eps[b]
        e0 = eps[b, 0]
        yb = y_prev[b]
        xb = x[b]
        for i in range(n):
            for a in range(S):
                sig[a] = signal[b, a, i]
                for c in range(S):
                    Dm[a, c] = local[b, a, c, i] if (code != RFLO or a == c) else 0.0
            if code == SNAP1 and self_edge[i] >= 0:
                ee = self_edge[i]
                for a in range(S):
                    r = 0.0
                    for g in range(G):
                        r += drec[b, a, g, i] * w_rec[g, ee]
                    if r != 0:
                        for c in range(S):
                            Dm[a, c] += r * dout_prev[b, c, i]
            r0 = in_ptr[i]
            nr = in_ptr[i + 1] - r0
            for g in range(G):
                for a in range(S):
                    fr[a] = drec[b, a, g, i]
                    fi[a] = dinp[b, a, g, i]
                if S == 1:
                    d = Dm[0, 0]
                    f0 = fr[0]
                    s0 = sig[0]
                    base = _u(g * nnz + r0)
                    if dense_mask:
                        for j in range(n):
                            q = base + _u(j)
                            v = d * e0[q] + f0 * yb[j]
                            e0[q] = v
                            core[q] += s0 * v
                    else:
                        for u in range(nr):
                            q = base + _u(u)
                            v = d * e0[q] + f0 * yb[_u(edge_pre[r0 + u])]
                            e0[q] = v
                            core[q] += s0 * v
                    f0 = fi[0]
                    base = _u(inp0 + (g * n + i) * n_in)
                    for k in range(n_in):
                        q = base + _u(k)
                        v = d * e0[q] + f0 * xb[k]
                        e0[q] = v
                        core[q] += s0 * v
                    if has_bias:
                        q = _u(bias0 + g * n + i)
                        v = d * e0[q] + f0
                        e0[q] = v
                        core[q] += s0 * v
                else:
                    for u in range(nr):
                        vbuf[u] = yb[edge_pre[r0 + u]]
                    _trace_range(e2, core, g * nnz + r0, nr, vbuf, Dm, fr, sig, tmp, S)
                    for k in range(n_in):
                        vbuf[k] = xb[k]
                    _trace_range(
                        e2, core, inp0 + (g * n + i) * n_in, n_in, vbuf, Dm, fi, sig, tmp, S
                    )
                    if has_bias:
                        vbuf[0] = 1.0
                        _trace_range(e2, core, bias0 + g * n + i, 1, vbuf, Dm, fi, sig, tmp, S)


@_jit
def learning_signal(fb, dlogits, dout, signal):  # pragma: no cover - numba
    """Random-feedback learning signal ``(dlogits B_fb) * dout`` (rflo eq. (3))."""
    B, S, n = dout.shape
    n_out = fb.shape[0]
    for b in range(B):
        for j in range(n):
            s = 0.0
            for o in range(n_out):
                s += dlogits[b, o] * fb[o, j]
            for a in range(S):
                signal[b, a, j] = s * dout[b, a, j]


@_jit
def run_trace(
    code, fb, use_fb, data, cell, params, graph, layout, acc, outs, opt, ctl, batch_size
):  # pragma: no cover - numba
    """Chunk loop of SnAp-1, RFLO and e-prop (``code``: ``SNAP1``, ``RFLO``, ``EPROP``)."""
    state = cell[4]
    B, S, n = state.shape
    w_rec = params[0]
    G = w_rec.shape[0]
    n_out = params[3].shape[0]
    kind, _gate, _post, _pre = layout
    P = kind.shape[0]
    sc = _scratch(B, S, G, n, n_out, state)
    y_prev, dout_prev, _r, _i, new, local, drec, dinp, _y, dout, dlogits, credit = sc
    eps = np.zeros((B, S, P), state.dtype)
    Dm = np.zeros((S, S), np.float64)
    fr = np.zeros(S, np.float64)
    fi = np.zeros(S, np.float64)
    sig = np.zeros(S, np.float64)
    width = max(n, params[1].shape[2], 1)
    vbuf = np.zeros(width, state.dtype)
    tmp = np.zeros((S, width), np.float64)
    signal = np.zeros((B, S, n), state.dtype)
    xs = data[0]
    total = 0.0
    for t in range(ctl[0]):
        loss, ok = _forward(t, data, cell, params, graph, outs, acc, sc, ctl)
        if not ok:
            return total
        total += loss
        if use_fb:
            learning_signal(fb, dlogits, dout, signal)
        else:
            signal[:] = credit
        trace_step(
            code,
            eps,
            Dm,
            fr,
            fi,
            sig,
            vbuf,
            tmp,
            graph,
            params[0],
            local,
            drec,
            dinp,
            dout_prev,
            y_prev,
            xs[t],
            signal,
            acc[0],
        )
        state[:] = new
        ctl[2] += 1
        if (
            ctl[1] > 0
            and ctl[2] >= ctl[1]
            and opt[0] != NO_OPT
            and not _update(params, layout, acc, opt, ctl, batch_size, t + 1)
        ):
            return total
    return total


# -------------------------------------------------------------------------------------------------
# exact RTRL (sparse block kernel or dense BLAS) and SnAp-n >= 2 (block plan)
# -------------------------------------------------------------------------------------------------
@_jit
def _fold(grad_store, perm, core):  # pragma: no cover - numba
    for s in range(grad_store.shape[0]):
        core[perm[s]] += grad_store[s]
        grad_store[s] = 0.0


@_jit
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


@_jit
def _dense_weights(w_rec, edge_post, edge_pre, out):  # pragma: no cover - numba
    """Scatter the synapse values ``w_rec (G, nnz)`` into ``out (G, n, n)`` (entries off the
    connectivity are left as they are)."""
    for g in range(w_rec.shape[0]):
        for e in range(w_rec.shape[1]):
            out[g, edge_post[e], edge_pre[e]] = w_rec[g, e]


@_jit
def synapse_values(w, edge_post, edge_pre, out):  # pragma: no cover - numba
    """Gather the synapses of a dense ``w (G, n, n)`` into ``out (G, nnz)`` (edge order)."""
    for g in range(out.shape[0]):
        for e in range(out.shape[1]):
            out[g, e] = w[g, edge_post[e], edge_pre[e]]


scatter_synapses = _dense_weights


@_jit
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
    sc = _scratch(B, S, G, n, n_out, state)
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
        loss, ok = _forward(t, data, cell, params, graph, outs, acc, sc, ctl)
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
            if not _update(params, layout, acc, opt, ctl, batch_size, t + 1):
                return total
            if code == BLOCK:
                _dense_weights(w_rec, graph[4], edge_pre, w_dense)
    _fold(grad_store, perm, acc[0])
    return total


# -------------------------------------------------------------------------------------------------
# BPTT, whole sequence or truncated windows
# -------------------------------------------------------------------------------------------------
@_jit
def bptt_backward(
    m,
    lam,
    out,
    delta,
    w_rec,
    graph,
    layout,
    local_w,
    drec_w,
    dinp_w,
    doutp_w,
    yprev_w,
    x_w,
    cred_w,
    core,
):  # pragma: no cover - numba
    """Backward pass over the ``m`` stored steps of a window (bptt eq. (2)-(3)); adds to ``core``."""
    edge_pre, in_ptr = graph[3], graph[6]
    B, S, n = lam.shape
    G = w_rec.shape[0]
    P = layout[0].shape[0]
    n_in = x_w.shape[2]
    nnz = edge_pre.shape[0]
    inp0 = G * nnz
    bias0 = inp0 + G * n * n_in
    has_bias = P > bias0
    back = np.zeros(n, lam.dtype)
    lam[:] = 0.0
    for s in range(m - 1, -1, -1):
        for b in range(B):
            for a in range(S):
                for i in range(n):
                    lam[b, a, i] += cred_w[s, b, a, i]
            # lam^T Mbar_t (bptt eq. 3), unit by unit; delta = lam . drec is also J_t^T's
            for i in range(n):
                for c in range(S):
                    r = 0.0
                    for a in range(S):
                        r += local_w[s, b, a, c, i] * lam[b, a, i]
                    out[b, c, i] = r
                for g in range(G):
                    cr = 0.0
                    ci = 0.0
                    for a in range(S):
                        cr += lam[b, a, i] * drec_w[s, b, a, g, i]
                        ci += lam[b, a, i] * dinp_w[s, b, a, g, i]
                    delta[g, i] = cr
                    if cr != 0:
                        base = g * nnz
                        for e in range(in_ptr[i], in_ptr[i + 1]):
                            core[base + e] += cr * yprev_w[s, b, edge_pre[e]]
                    if ci != 0:
                        base = inp0 + (g * n + i) * n_in
                        for k in range(n_in):
                            core[base + k] += ci * x_w[s, b, k]
                        if has_bias:
                            core[bias0 + g * n + i] += ci
            # lam <- J_t^T lam: the recurrent part row by row over the existing weights
            for j in range(n):
                back[j] = 0.0
            for i in range(n):
                for g in range(G):
                    d = delta[g, i]
                    if d != 0:
                        for e in range(in_ptr[i], in_ptr[i + 1]):
                            back[edge_pre[e]] += d * w_rec[g, e]
            for j in range(n):
                for c in range(S):
                    out[b, c, j] += doutp_w[s, b, c, j] * back[j]
            for a in range(S):
                for i in range(n):
                    lam[b, a, i] = out[b, a, i]


@_jit
def run_bptt(
    window, data, cell, params, graph, layout, acc, outs, opt, ctl, batch_size
):  # pragma: no cover - numba
    """Chunk loop of BPTT: records of up to ``window`` steps, then the backward pass (and, in
    training, an optimizer update); the rest at the end of the chunk."""
    state = cell[4]
    B, S, n = state.shape
    w_rec = params[0]
    G = w_rec.shape[0]
    n_out = params[3].shape[0]
    n_in = params[1].shape[2]
    dt = state.dtype
    sc = _scratch(B, S, G, n, n_out, state)
    y_prev, dout_prev, _r, _i, new, local, drec, dinp, _y, _dout, _dlogits, credit = sc
    W = max(window, 1)
    local_w = np.zeros((W, B, S, S, n), dt)
    drec_w = np.zeros((W, B, S, G, n), dt)
    dinp_w = np.zeros((W, B, S, G, n), dt)
    doutp_w = np.zeros((W, B, S, n), dt)
    yprev_w = np.zeros((W, B, n), dt)
    x_w = np.zeros((W, B, n_in), dt)
    cred_w = np.zeros((W, B, S, n), dt)
    lam = np.zeros((B, S, n), dt)
    out = np.zeros((B, S, n), dt)
    delta = np.zeros((G, n), dt)
    xs = data[0]
    total = 0.0
    m = 0
    for t in range(ctl[0]):
        loss, ok = _forward(t, data, cell, params, graph, outs, acc, sc, ctl)
        if not ok:
            return total
        total += loss
        local_w[m] = local
        drec_w[m] = drec
        dinp_w[m] = dinp
        doutp_w[m] = dout_prev
        yprev_w[m] = y_prev
        x_w[m] = xs[t]
        cred_w[m] = credit
        m += 1
        state[:] = new
        ctl[2] += 1
        if m >= window:
            bptt_backward(
                m,
                lam,
                out,
                delta,
                params[0],
                graph,
                layout,
                local_w,
                drec_w,
                dinp_w,
                doutp_w,
                yprev_w,
                x_w,
                cred_w,
                acc[0],
            )
            m = 0
            if opt[0] != NO_OPT and not _update(params, layout, acc, opt, ctl, batch_size, t + 1):
                return total
    if m > 0:
        bptt_backward(
            m,
            lam,
            out,
            delta,
            params[0],
            graph,
            layout,
            local_w,
            drec_w,
            dinp_w,
            doutp_w,
            yprev_w,
            x_w,
            cred_w,
            acc[0],
        )
        if opt[0] != NO_OPT:
            _update(params, layout, acc, opt, ctl, batch_size, ctl[0])
    return total


# -------------------------------------------------------------------------------------------------
# UORO: rank-1 influence with pre-drawn signs
# -------------------------------------------------------------------------------------------------
@_jit
def _ratio(num, den):  # pragma: no cover - numba
    if num > 0 and den > 0:
        return np.sqrt(num / den)
    return 1.0


@_jit
def uoro_step(
    s_t,
    theta,
    js,
    yv,
    recv,
    nu_m,
    nu,
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
    """One UORO step (uoro eq. (2)-(5)) with the signs ``nu (B, S, n)`` of this step."""
    B, S, n = s_t.shape
    G = w_rec.shape[0]
    P = kind.shape[0]
    indptr, indices, csc_edge = graph[0], graph[1], graph[2]
    for b in range(B):
        # J_t s_tilde (StateJacobian.matvec)
        for i in range(n):
            for a in range(S):
                r = 0.0
                for c in range(S):
                    r += local[b, a, c, i] * s_t[b, c, i]
                js[a, i] = r
        for j in range(n):
            r = 0.0
            for c in range(S):
                r += dout_prev[b, c, j] * s_t[b, c, j]
            yv[j] = r
        recv[:] = 0.0
        for j in range(n):
            if yv[j] != 0:
                for q in range(indptr[j], indptr[j + 1]):
                    i = indices[q]
                    e = csc_edge[q]
                    for g in range(G):
                        recv[g, i] += w_rec[g, e] * yv[j]
        for i in range(n):
            for a in range(S):
                r = 0.0
                for g in range(G):
                    r += drec[b, a, g, i] * recv[g, i]
                js[a, i] += r
        # Mbar_t^T nu
        for p in range(P):
            i = post[p]
            k = kind[p]
            g = gate[p]
            v = pre_value(k, pre[p], b, y_prev, x)
            r = 0.0
            for a in range(S):
                r += nu[b, a, i] * ((drec[b, a, g, i] if k == REC else dinp[b, a, g, i]) * v)
            nu_m[p] = r
        n_theta = 0.0
        for p in range(P):
            n_theta += theta[b, p] * theta[b, p]
        n_js = 0.0
        for a in range(S):
            for i in range(n):
                n_js += js[a, i] * js[a, i]
        n_nm = 0.0
        for p in range(P):
            n_nm += nu_m[p] * nu_m[p]
        rho0 = _ratio(np.sqrt(n_theta), np.sqrt(n_js))
        rho1 = _ratio(np.sqrt(n_nm), np.sqrt(float(S * n)))
        cs = 0.0
        for a in range(S):
            for i in range(n):
                v = rho0 * js[a, i] + rho1 * nu[b, a, i]
                s_t[b, a, i] = v
                cs += credit[b, a, i] * v
        for p in range(P):
            v = theta[b, p] / rho0 + nu_m[p] / rho1
            theta[b, p] = v
            core[p] += cs * v


@_jit
def run_uoro(
    nus, data, cell, params, graph, layout, acc, outs, opt, ctl, batch_size
):  # pragma: no cover - numba
    """Chunk loop of UORO; ``nus (T, B, S, n)`` holds the signs of every step, drawn by the caller
    from the rule's stream (the same numbers the reference draws step by step)."""
    state = cell[4]
    B, S, n = state.shape
    w_rec = params[0]
    G = w_rec.shape[0]
    n_out = params[3].shape[0]
    kind, gate, post, pre = layout
    P = kind.shape[0]
    dt = state.dtype
    sc = _scratch(B, S, G, n, n_out, state)
    y_prev, dout_prev, _r, _i, new, local, drec, dinp, _y, _dout, _dlogits, credit = sc
    s_t = np.zeros((B, S, n), dt)
    theta = np.zeros((B, P), dt)
    js = np.zeros((S, n), dt)
    yv = np.zeros(n, dt)
    recv = np.zeros((G, n), dt)
    nu_m = np.zeros(P, dt)
    xs = data[0]
    total = 0.0
    for t in range(ctl[0]):
        loss, ok = _forward(t, data, cell, params, graph, outs, acc, sc, ctl)
        if not ok:
            return total
        total += loss
        uoro_step(
            s_t,
            theta,
            js,
            yv,
            recv,
            nu_m,
            nus[t],
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
        state[:] = new
        ctl[2] += 1
        if (
            ctl[1] > 0
            and ctl[2] >= ctl[1]
            and opt[0] != NO_OPT
            and not _update(params, layout, acc, opt, ctl, batch_size, t + 1)
        ):
            return total
    return total
