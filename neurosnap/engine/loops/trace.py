"""SnAp-1, RFLO and e-prop: one ``(B, S, P)`` trace per example (``docs/theory/snap.md``, ``rflo.md``, ``eprop.md``).

One compiled loop over a chunk of time steps; the argument tuples are described in
:mod:`neurosnap.engine.loops`."""

from __future__ import annotations

import numba
import numpy as np

from ..codes import NO_OPT, RFLO, SNAP1
from .parts import forward, jit, scratch, u64, update


@numba.njit(cache=True, inline="always", error_model="numpy")
def _trace_range(e2, core, q0, m, vbuf, Dm, f, sig, tmp, S):  # pragma: no cover - numba
    """Columns ``q0 .. q0+m-1`` of one example's trace ``e2 (S, P)`` whose presynaptic factors
    are ``vbuf[:m]``: ``e2[:, q] = f v_q + Dm e2[:, q]``, then ``core[q] += sig . e2[:, q]``
    (loops over the contiguous columns, vectorised; one pass for ``S`` = 2 and 3)."""
    if S == 2:
        d00, d01, d10, d11 = Dm[0, 0], Dm[0, 1], Dm[1, 0], Dm[1, 1]
        f0, f1, s0, s1 = f[0], f[1], sig[0], sig[1]
        for u in range(m):
            q = u64(q0 + u)
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
            q = u64(q0 + u)
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
                    tmp[a, u] += d * e2[c, u64(q0 + u)]
    for a in range(S):
        sa = sig[a]
        for u in range(m):
            v = tmp[a, u]
            e2[a, u64(q0 + u)] = v
            core[u64(q0 + u)] += sa * v


@jit
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
                    base = u64(g * nnz + r0)
                    if dense_mask:
                        for j in range(n):
                            q = base + u64(j)
                            v = d * e0[q] + f0 * yb[j]
                            e0[q] = v
                            core[q] += s0 * v
                    else:
                        for u in range(nr):
                            q = base + u64(u)
                            v = d * e0[q] + f0 * yb[u64(edge_pre[r0 + u])]
                            e0[q] = v
                            core[q] += s0 * v
                    f0 = fi[0]
                    base = u64(inp0 + (g * n + i) * n_in)
                    for k in range(n_in):
                        q = base + u64(k)
                        v = d * e0[q] + f0 * xb[k]
                        e0[q] = v
                        core[q] += s0 * v
                    if has_bias:
                        q = u64(bias0 + g * n + i)
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


@jit
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


@jit
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
    sc = scratch(B, S, G, n, n_out, state)
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
        loss, ok = forward(t, data, cell, params, graph, outs, acc, sc, ctl)
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
            and not update(params, layout, acc, opt, ctl, batch_size, t + 1)
        ):
            return total
    return total
