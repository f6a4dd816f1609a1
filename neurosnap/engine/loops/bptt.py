"""BPTT, whole sequence or truncated windows (``docs/theory/bptt.md``).

One compiled loop over a chunk of time steps; the argument tuples are described in
:mod:`neurosnap.engine.loops`."""

from __future__ import annotations

import numpy as np

from ..codes import NO_OPT
from .parts import forward, jit, scratch, update


@jit
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


@jit
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
    sc = scratch(B, S, G, n, n_out, state)
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
        loss, ok = forward(t, data, cell, params, graph, outs, acc, sc, ctl)
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
            if opt[0] != NO_OPT and not update(params, layout, acc, opt, ctl, batch_size, t + 1):
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
            update(params, layout, acc, opt, ctl, batch_size, ctl[0])
    return total
