"""UORO: rank-1 influence with pre-drawn signs (``docs/theory/uoro.md``).

One compiled loop over a chunk of time steps; the argument tuples are described in
:mod:`neurosnap.engine.loops`."""

from __future__ import annotations

import numpy as np

from ...core.layout import REC
from .._step import pre_value
from ..codes import NO_OPT
from .parts import forward, jit, scratch, update


@jit
def _ratio(num, den):  # pragma: no cover - numba
    if num > 0 and den > 0:
        return np.sqrt(num / den)
    return 1.0


@jit
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


@jit
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
    sc = scratch(B, S, G, n, n_out, state)
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
        loss, ok = forward(t, data, cell, params, graph, outs, acc, sc, ctl)
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
            and not update(params, layout, acc, opt, ctl, batch_size, t + 1)
        ):
            return total
    return total
