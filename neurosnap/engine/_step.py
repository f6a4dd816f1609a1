"""Compiled building blocks shared by every chunk loop: gates, the four cells' step and step record,
the readout and loss credit, and the optimizer update.

Everything here is a numba function over whole arrays of one time step; the cell, gate and loss are
selected by small integer codes at run time (see :mod:`neurosnap.engine.codes`), so one compiled
function serves every cell and gate. The NumPy cells (``Cell._local`` / ``Cell._output``) are the
reference these functions are tested against (``tests/test_engine.py``).
"""

from __future__ import annotations

import numba
import numpy as np

from ..cells.lif_kernel import current_jump, membrane, threshold_gap
from ..core.layout import INP, REC
from .codes import (
    ADAM,
    ALIF,
    EGRU,
    FAST_SIGMOID,
    LEAKY,
    LIF,
    MSE,
    SGD,
    SMOOTH,
    TRIANGLE,
)

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


# -- gates ----------------------------------------------------------------------------------------
@numba.njit(cache=True, inline="always", error_model="numpy")
def gate_forward(gk, gp, x):  # pragma: no cover - numba
    """Event value of pre-threshold ``x``: Heaviside ``1[x > 0]`` or ``sigmoid(beta x)``."""
    if gk == SMOOTH:
        return 0.5 * (1.0 + np.tanh(0.5 * gp[0] * x))
    return 1.0 if x > 0 else 0.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def gate_grad(gk, gp, x):  # pragma: no cover - numba
    """Derivative used for credit: triangle, fast-sigmoid surrogate or the sigmoid's own."""
    if gk == TRIANGLE:
        v = 1.0 - abs(x) / gp[1]
        return gp[0] * v if v > 0 else 0.0
    if gk == FAST_SIGMOID:
        d = 1.0 + gp[1] * abs(x)
        return gp[0] / (d * d)
    s = 0.5 * (1.0 + np.tanh(0.5 * gp[0] * x))
    return gp[0] * s * (1.0 - s)


# -- cells ----------------------------------------------------------------------------------------
@_jit
def cell_output(ck, gk, gp, hp, state, y, dout):  # pragma: no cover - numba
    """Event output of ``state (B, S, n)``: writes ``y (B, n)`` and ``dout (B, S, n)``."""
    B, _S, n = state.shape
    for b in range(B):
        for i in range(n):
            if ck == LEAKY:
                y[b, i] = state[b, 0, i]
                dout[b, 0, i] = 1.0
            elif ck == EGRU:
                c = state[b, 0, i]
                xo = c - hp[0]
                o = gate_forward(gk, gp, xo)
                y[b, i] = o * c
                dout[b, 0, i] = o + c * gate_grad(gk, gp, xo)
            else:
                if ck == LIF:
                    x = state[b, 0, i] - hp[2]
                else:
                    x = state[b, 0, i] - hp[2] - hp[8] * state[b, 2, i]
                y[b, i] = gate_forward(gk, gp, x)
                g = gate_grad(gk, gp, x)
                dout[b, 0, i] = g
                dout[b, 1, i] = 0.0
                if ck == ALIF:
                    dout[b, 2, i] = -hp[8] * g


@_jit
def cell_step(
    ck, gk, gp, hp, state, x, w_rec, w_in, bias, graph, y_prev, rec, inp, new, local, drec, dinp
):  # pragma: no cover - numba
    """One cell step with its record for the whole batch.

    Args:
        state: ``(B, S, n)`` previous state; ``y_prev (B, n)`` its event output.
        x: ``(B, n_in)`` input; ``w_rec (G, nnz)`` the recurrent weights of the existing
            synapses in the graph's edge order, ``w_in (G, n, n_in)``, ``bias (G, n)``.
        graph: the connectivity as in :mod:`neurosnap.engine.loops` (CSC ``indptr, indices,
            csc_edge``; CSR ``in_ptr`` with ``edge_pre``).
        rec, inp: ``(G, n)`` scratch.
        new: ``(B, S, n)`` output state; ``local (B, S, S, n)``, ``drec``/``dinp (B, S, G, n)``
            output record (``docs/theory/rtrl.md`` eq. (1)-(3)).

    The recurrent drive ``W_rec y_{t-1}`` is gathered from the units with non-zero output when
    they are few (event-driven, column by column), else computed row by row over the existing
    weights (contiguous, vectorised); both equal the reference's product to round-off.
    """
    B, S, n = state.shape
    G = w_rec.shape[0]
    n_in = w_in.shape[2]
    indptr, indices, csc_edge, edge_pre, in_ptr = graph[0], graph[1], graph[2], graph[3], graph[6]
    nnz = edge_pre.shape[0]
    dense_mask = nnz == n * n
    for b in range(B):
        fan = 0  # multiply-adds of the event-driven gather
        for j in range(n):
            if y_prev[b, j] != 0:
                fan += indptr[j + 1] - indptr[j]
        if 4 * fan < nnz:
            for g in range(G):
                for i in range(n):
                    rec[g, i] = 0.0
            for j in range(n):
                yj = y_prev[b, j]
                if yj != 0:
                    if dense_mask:  # all-to-all: edge i -> j is number i n + j
                        for i in range(n):
                            for g in range(G):
                                rec[g, i] += w_rec[g, i * n + j] * yj
                    else:
                        for k in range(indptr[j], indptr[j + 1]):
                            i = indices[k]
                            e = csc_edge[k]
                            for g in range(G):
                                rec[g, i] += w_rec[g, e] * yj
        elif dense_mask:  # all-to-all: edge i -> j is number i n + j
            yb = y_prev[b]
            for g in range(G):
                for i in range(n):
                    w = w_rec[g, i * n : (i + 1) * n]
                    s = 0.0
                    for j in range(n):
                        s += w[j] * yb[j]
                    rec[g, i] = s
        else:
            for g in range(G):
                for i in range(n):
                    s = 0.0
                    for e in range(in_ptr[i], in_ptr[i + 1]):
                        s += w_rec[g, e] * y_prev[b, edge_pre[e]]
                    rec[g, i] = s
        for g in range(G):
            for i in range(n):
                s = 0.0
                for k in range(n_in):
                    s += w_in[g, i, k] * x[b, k]
                inp[g, i] = s + bias[g, i]
        for i in range(n):
            if ck == LEAKY:
                a = hp[0]
                phi = np.tanh(rec[0, i] + inp[0, i])
                new[b, 0, i] = (1 - a) * state[b, 0, i] + a * phi
                local[b, 0, 0, i] = 1 - a
                d = a * (1 - phi * phi)
                drec[b, 0, 0, i] = d
                dinp[b, 0, 0, i] = d
            elif ck == EGRU:
                theta = hp[0]
                c = state[b, 0, i]
                o = gate_forward(gk, gp, c - theta)
                c_r = c - o * theta
                u = 0.5 * (1.0 + np.tanh(0.5 * (rec[0, i] + inp[0, i])))
                r = 0.5 * (1.0 + np.tanh(0.5 * (rec[1, i] + inp[1, i])))
                z = np.tanh(r * rec[2, i] + inp[2, i])
                new[b, 0, i] = u * z + (1 - u) * c_r
                dc_r = 1.0 if hp[1] != 0 else 1.0 - theta * gate_grad(gk, gp, c - theta)
                local[b, 0, 0, i] = (1 - u) * dc_r
                d_u = (z - c_r) * u * (1 - u)
                d_zpre = u * (1 - z * z)
                d_r = d_zpre * rec[2, i] * r * (1 - r)
                drec[b, 0, 0, i] = d_u
                drec[b, 0, 1, i] = d_r
                drec[b, 0, 2, i] = d_zpre * r
                dinp[b, 0, 0, i] = d_u
                dinp[b, 0, 1, i] = d_r
                dinp[b, 0, 2, i] = d_zpre
            else:
                k_m, k_s, v_th, v_leak, v_reset = hp[0], hp[1], hp[2], hp[3], hp[4]
                subtract, detach = hp[5] != 0, hp[6] != 0
                v = state[b, 0, i]
                cur = state[b, 1, i]
                if ck == LIF:
                    xz = threshold_gap(v, 0.0, v_th, 0.0)
                else:
                    xz = threshold_gap(v, state[b, 2, i], v_th, hp[8])
                z = gate_forward(gk, gp, xz)
                dz = gate_grad(gk, gp, xz)
                if not subtract:
                    v_r = (1 - z) * v + z * v_reset
                    if detach:
                        dvr_dv = 1 - z
                        dvr_dx = 0.0
                    else:
                        dvr_dz = v_reset - v
                        dvr_dv = (1 - z) + dvr_dz * dz
                        dvr_dx = dvr_dz * dz
                else:
                    v_r = v - z * v_th
                    if detach:
                        dvr_dv = 1.0
                        dvr_dx = 0.0
                    else:
                        dvr_dz = -v_th
                        dvr_dv = 1 + dvr_dz * dz
                        dvr_dx = dvr_dz * dz
                i_j = current_jump(cur, rec[0, i], inp[0, i])  # inp holds the bias
                new[b, 0, i] = membrane(v_r, i_j, 0.0, k_m, v_leak, False)
                new[b, 1, i] = (1 - k_s) * i_j
                for a_ in range(S):
                    for c_ in range(S):
                        local[b, a_, c_, i] = 0.0
                    drec[b, a_, 0, i] = 0.0
                    dinp[b, a_, 0, i] = 0.0
                local[b, 0, 0, i] = (1 - k_m) * dvr_dv
                local[b, 0, 1, i] = k_m
                local[b, 1, 1, i] = 1 - k_s
                drec[b, 0, 0, i] = k_m
                drec[b, 1, 0, i] = 1 - k_s
                dinp[b, 0, 0, i] = k_m
                dinp[b, 1, 0, i] = 1 - k_s
                if ck == ALIF:
                    rho, beta = hp[7], hp[8]
                    new[b, 2, i] = rho * (state[b, 2, i] + z)
                    dza = 0.0 if hp[9] != 0 else dz
                    local[b, 0, 2, i] = (1 - k_m) * dvr_dx * (-beta)
                    local[b, 2, 0, i] = rho * dza
                    local[b, 2, 2, i] = rho * (1 - beta * dza)


# -- readout and loss -----------------------------------------------------------------------------
@_jit
def readout_loss(
    loss_code,
    y,
    dout,
    w_out,
    b_out,
    target_i,
    target_f,
    mask_t,
    logits,
    dlogits,
    losses,
    credit,
    g_wout,
    g_bout,
):  # pragma: no cover - numba
    """Readout, per-step loss, its credits and the readout gradient for one step.

    Writes ``logits (B, n_out)``, ``dlogits (B, n_out)`` (masked), ``losses (B,)`` (masked, float64)
    and the credit ``credit (B, S, n) = (dlogits W_out) * dout``; adds ``dlogits^T y`` to
    ``g_wout`` and ``sum_b dlogits`` to ``g_bout``. Returns the summed loss.
    """
    B, S, n = dout.shape
    n_out = w_out.shape[0]
    total = 0.0
    for b in range(B):
        for o in range(n_out):
            s = 0.0
            for j in range(n):
                s += y[b, j] * w_out[o, j]
            logits[b, o] = s + b_out[o]
        m = 1.0 if mask_t[b] else 0.0
        if loss_code == MSE:
            s = 0.0
            for o in range(n_out):
                d = logits[b, o] - target_f[b, o]
                s += d * d
                dlogits[b, o] = d * m
            loss = 0.5 * s
        else:
            mx = logits[b, 0]
            for o in range(1, n_out):
                mx = max(mx, logits[b, o])
            s = 0.0
            for o in range(n_out):
                s += np.exp(logits[b, o] - mx)
            lse = np.log(s)
            tgt = target_i[b]
            loss = 0.0
            for o in range(n_out):
                logp = (logits[b, o] - mx) - lse
                gval = np.exp(logp)
                if o == tgt:
                    gval -= 1.0
                    loss = -logp
                dlogits[b, o] = gval * m
        losses[b] = loss * m
        total += loss * m
        for j in range(n):
            s = 0.0
            for o in range(n_out):
                s += dlogits[b, o] * w_out[o, j]
            for a in range(S):
                credit[b, a, j] = s * dout[b, a, j]
        for o in range(n_out):
            d = dlogits[b, o]
            if d != 0:
                g_bout[o] += d
                for j in range(n):
                    g_wout[o, j] += d * y[b, j]
    return total


@_jit
def all_finite(a):  # pragma: no cover - numba
    """Whether every entry of ``a`` (any shape) is finite."""
    for v in a.ravel():
        if not np.isfinite(v):
            return False
    return True


# -- immediate influence --------------------------------------------------------------------------
@numba.njit(cache=True, inline="always", error_model="numpy")
def pre_value(kind, pre, b, y_prev, x):  # pragma: no cover - numba
    """Presynaptic factor of a parameter column: ``y_prev``, ``x`` or 1 (bias)."""
    if kind == REC:
        return y_prev[b, pre]
    if kind == INP:
        return x[b, pre]
    return 1.0


# -- optimizer ------------------------------------------------------------------------------------
@_jit
def _opt_entry(code, hp, c1, c2, p, m1, m2, g):  # pragma: no cover - numba
    """One scalar of SGD / Adam (``neurosnap.optim``): returns ``(p, m1, m2)``."""
    if code == SGD:
        v = hp[1] * m1 + g
        return p - hp[0] * v, v, m2
    mu = hp[1] * m1 + (1 - hp[1]) * g
    nu = hp[2] * m2 + (1 - hp[2]) * g**2
    return p - hp[0] * (mu / c1) / (np.sqrt(nu / c2) + hp[3]), mu, nu


@_jit
def apply_update(
    code, hp, count, params, m1, m2, core, g_wout, g_bout, kind, gate, post, pre, batch_size
):  # pragma: no cover - numba
    """``opt.update`` of :mod:`neurosnap.optim` in place on the existing parameters, with the
    gradients divided by ``batch_size``; zeroes the accumulators.

    ``params``, ``m1`` and ``m2`` hold ``w_rec`` and its optimizer state as ``(G, nnz)`` synapse
    values in edge order, whose flat index is the layout's recurrent column ``q`` (the layout's
    first ``G nnz`` columns, gate-major; checked by ``neurosnap.engine._check_structure``).
    """
    w_rec, w_in, bias, w_out, b_out = params
    a_rec, a_in, a_bias, a_out, a_bout = m1
    b_rec, b_in, b_bias, b_wout, b_bout = m2
    count[0] += 1
    c1 = 1.0
    c2 = 1.0
    if code == ADAM:
        c1 = 1 - hp[1] ** count[0]
        c2 = 1 - hp[2] ** count[0]
    nnz = w_rec.shape[1]
    for q in range(core.shape[0]):
        g = core[q] / batch_size
        k, gg, i, j = kind[q], gate[q], post[q], pre[q]
        if k == REC:
            e = q - gg * nnz
            w_rec[gg, e], a_rec[gg, e], b_rec[gg, e] = _opt_entry(
                code, hp, c1, c2, w_rec[gg, e], a_rec[gg, e], b_rec[gg, e], g
            )
        elif k == INP:
            w_in[gg, i, j], a_in[gg, i, j], b_in[gg, i, j] = _opt_entry(
                code, hp, c1, c2, w_in[gg, i, j], a_in[gg, i, j], b_in[gg, i, j], g
            )
        else:
            bias[gg, i], a_bias[gg, i], b_bias[gg, i] = _opt_entry(
                code, hp, c1, c2, bias[gg, i], a_bias[gg, i], b_bias[gg, i], g
            )
        core[q] = 0.0
    for o in range(w_out.shape[0]):
        for j in range(w_out.shape[1]):
            w_out[o, j], a_out[o, j], b_wout[o, j] = _opt_entry(
                code, hp, c1, c2, w_out[o, j], a_out[o, j], b_wout[o, j], g_wout[o, j] / batch_size
            )
            g_wout[o, j] = 0.0
        b_out[o], a_bout[o], b_bout[o] = _opt_entry(
            code, hp, c1, c2, b_out[o], a_bout[o], b_bout[o], g_bout[o] / batch_size
        )
        g_bout[o] = 0.0
