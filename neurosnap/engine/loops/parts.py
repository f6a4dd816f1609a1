"""What every compiled chunk loop shares: the per-step scratch arrays, the forward part of a step
(cell step, record, readout, loss and credit) and the optimizer update every ``update_every`` steps.
The argument tuples are described in :mod:`neurosnap.engine.loops`."""

from __future__ import annotations

import numba
import numpy as np

from .._step import all_finite, apply_update, cell_output, cell_step, readout_loss

#: the decorator of every loop function (cached, no GIL, NumPy's floating-point error model)
jit = numba.njit(cache=True, nogil=True, error_model="numpy")
#: unsigned indices: no negative-index test in the inner loops (see neurosnap.sparse.rowops)
u64 = numba.uint64


@jit
def scratch(B, S, G, n, n_out, dtype_like):  # pragma: no cover - numba
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


@jit
def forward(t, data, cell, params, graph, outs, acc, sc, ctl):  # pragma: no cover - numba
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


@jit
def update(params, layout, acc, opt, ctl, batch_size, t):  # pragma: no cover - numba
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
