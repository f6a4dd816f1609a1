"""Reductions between rules: where an approximate rule equals an exact one, or its own definition.

Each reduction is computed here independently of the rule under test (dense matrices built from the
step records, or the cell's equations written out), in float64, batch > 1:

- ``BPTT(truncation >= T) == BPTT()``;
- ``BPTT(truncation=k)`` == forward-mode (dense RTRL) restarted from zero influence at every window
  start, the cell state carried across windows (``docs/theory/bptt.md`` eq. (4));
- ``EProp()`` == BPTT whose backward pass keeps only the per-unit block of ``J_t``
  (``docs/theory/eprop.md`` eq. (5)), for any weights; hence ``EProp() == BPTT()`` when the
  recurrent weights are zero (recurrence only through each unit's own state, eq. (6)); e-prop's
  traces with the total learning signal ``dL/dy_t`` give the exact gradient (eq. (1));
- ``RFLO`` == its definition (diagonal decay, random feedback) with dense matrices, and for LeakyRNN
  == Murray's update written from the forward pass; ``RFLO(feedback="symmetric") == EProp()`` for
  single-variable cells;
- random feedback == symmetric feedback when the readout weights equal the feedback matrix;
- UORO is unbiased: its mean over many seeds converges to ``RTRL()`` (statistical).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_batch, make_cell, random_params

import neurosnap as ns
from neurosnap.rules.rflo import random_feedback

CELL_KINDS = ("LeakyRNN", "EGRU", "EGRU-thr", "LIF", "ALIF")
SINGLE_VARIABLE = ("LeakyRNN", "EGRU", "EGRU-thr")
TOL = 1e-12


def _problem(kind, *, T=8, B=3, n_hidden=5, n_in=3, seed=0, **overrides):
    model = ns.Model(make_cell(kind, n_in=n_in, n_hidden=n_hidden, seed=seed, **overrides), n_out=3)
    params = random_params(model, seed=seed)
    xs, ys, mask = make_batch(model, T, B, seed=seed + 5)
    return model, params, xs, ys, mask


def _grad(model, params, xs, ys, mask, rule):
    return ns.sequence_grad(model, params, xs, ys, rule, mask=mask)[1]


def _cell_vec(model, grads):
    """The cell part of a gradient dict as a flat ``(P,)`` vector in the layout's numbering."""
    return model.cell.layout.from_dict(
        {k[5:]: v for k, v in grads.items() if k.startswith("cell.")}
    )


def _steps(model, params, xs, ys, mask):
    """Per step: ``(record, credit (B, S, n), dlogits (B, n_out))``, as ``sequence_grad`` sees them."""
    cell = model.cell
    cp = model.cell_params(params)
    state = cell.initial_state(xs.shape[1])
    out = []
    for t in range(xs.shape[0]):
        state, y, record = cell.step_record(cp, state, xs[t])
        _, _, dlogits, dy = model.step_loss(params, y, ys[t], mask[t])
        out.append((record, dy[:, None, :] * record.dout, dlogits))
    return out


def _dense_immediate(layout, record, S, n, nonlocal_=True):
    """Mbar_t as a dense ``(B, S n, P)`` array, rows ordered ``(state variable, unit)``; with
    ``nonlocal_=False`` only the rows of each parameter's own unit (what RFLO keeps: for learned
    thresholds it drops the term through ``y_{t-1}``)."""
    imm = layout.immediate(record.jac_params)
    B, _, P = imm.shape
    out = np.zeros((B, S * n, P))
    for a in range(S):
        out[:, a * n + layout.post, np.arange(P)] = imm[:, a]
    if nonlocal_ and layout.n_thr:
        nl = layout.nonlocal_immediate(record.jac_params, record.jac_state.w_rec)  # (B,S,n,n)
        out[:, :, layout.thr_cols] += nl.reshape(B, S * n, -1)
    return out


def _direct(model, params, xs, ys, mask):
    """The readout's direct threshold term every training loop adds (zero without thresholds)."""
    layout = model.cell.layout
    out = np.zeros(layout.size)
    for record, _credit, dlogits in _steps(model, params, xs, ys, mask):
        d = layout.readout_direct(record, dlogits @ params["readout.weight"])
        if d is not None:
            out += d
    return out


def _dense_local(record):
    """The per-unit block-diagonal part of J_t as a dense ``(B, S n, S n)`` array."""
    local = record.jac_state.local
    B, S, _, n = local.shape
    out = np.zeros((B, S, n, S, n))
    for i in range(n):
        out[:, :, i, :, i] = local[..., i]
    return out.reshape(B, S * n, S * n)


def _max_diff(a, b):
    return float(np.max(np.abs(a - b)))


# -- BPTT -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("extra", [0, 3])
def test_bptt_truncation_at_least_T_is_full_bptt(kind, extra):
    model, params, xs, ys, mask = _problem(kind)
    full = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    cut = _grad(model, params, xs, ys, mask, ns.rules.BPTT(truncation=xs.shape[0] + extra))
    for k in full:
        np.testing.assert_allclose(cut[k], full[k], rtol=0, atol=TOL, err_msg=k)


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("k", [1, 3])
def test_truncated_bptt_is_windowed_forward_mode(kind, k):
    model, params, xs, ys, mask = _problem(kind, T=8)
    layout, S, n = model.cell.layout, model.cell.n_state, model.cell.n_hidden
    expected = _direct(model, params, xs, ys, mask)
    for t, (record, credit, _) in enumerate(_steps(model, params, xs, ys, mask)):
        if t % k == 0:
            M = np.zeros((xs.shape[1], S * n, layout.size))  # gradient cut at the window start
        M = record.jac_state.to_dense() @ M + _dense_immediate(layout, record, S, n)
        expected += np.einsum("bs,bsp->p", credit.reshape(len(credit), -1), M)
    got = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.BPTT(truncation=k)))
    assert _max_diff(got, expected) <= TOL
    full = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.BPTT()))
    assert _max_diff(got, full) > 1e-6, "vacuous: truncation changed nothing"


# -- e-prop ---------------------------------------------------------------------------------------
def _bptt_local_only(model, params, xs, ys, mask):
    """BPTT with a stop-gradient on recurrent events: lam_{t-1} = c_{t-1} + local_t^T lam_t."""
    layout = model.cell.layout
    steps = _steps(model, params, xs, ys, mask)
    grad = _direct(model, params, xs, ys, mask)
    lam = np.zeros_like(steps[0][1])
    for record, credit, _ in reversed(steps):
        lam = lam + credit
        grad += np.einsum("bap,bap->p", lam[:, :, layout.post], layout.immediate(record.jac_params))
        lam = np.einsum("bacn,ban->bcn", record.jac_state.local, lam)
    return grad


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_eprop_is_bptt_with_stop_gradient_on_recurrent_events(kind):
    model, params, xs, ys, mask = _problem(kind)
    got = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.EProp()))
    assert _max_diff(got, _bptt_local_only(model, params, xs, ys, mask)) <= TOL
    exact = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.BPTT()))
    assert _max_diff(got, exact) > 1e-8, "vacuous: the recurrent term never mattered"


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_eprop_traces_with_total_learning_signal_give_the_exact_gradient(kind):
    """eprop eq. (1): sum_t Lambda_t . e_t == BPTT, Lambda_t = dL/dy_t (total) from dense adjoints."""
    model, params, xs, ys, mask = _problem(kind)
    layout, rule = model.cell.layout, ns.rules.EProp()
    steps = _steps(model, params, xs, ys, mask)
    B, S, n = steps[0][1].shape
    lam = [None] * len(steps)  # BPTT adjoints, dense J_t^T
    nxt = np.zeros((B, S * n))
    for t in reversed(range(len(steps))):
        lam[t] = steps[t][1].reshape(B, -1) + nxt
        nxt = np.einsum("bij,bi->bj", steps[t][0].jac_state.to_dense(), lam[t])
    state = rule.init(model, params, B)
    grad = np.zeros(layout.size)
    for t, (record, credit, dlogits) in enumerate(steps):
        total = dlogits @ params["readout.weight"]  # Lambda_t, (B, n)
        if t + 1 < len(steps):
            drec = steps[t + 1][0].jac_state.drec
            delta = np.einsum("bagi,bai->bgi", drec, lam[t + 1].reshape(B, S, n))
            total = total + np.einsum("gij,bgi->bj", params["cell.w_rec"], delta)
        state, _ = rule.step(state, record, credit, params=params, dlogits=dlogits)
        trace = np.einsum("bap,bap->bp", record.dout[:, :, layout.post], state.eligibility)
        if layout.n_thr:  # a threshold also acts on y_t directly (cells eq. (22))
            trace[:, layout.thr_cols] += record.dy_thr[:, layout.post[layout.thr_cols]]
        grad += np.einsum("bp,bp->p", total[:, layout.post], trace)
    exact = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.BPTT()))
    assert _max_diff(grad, exact) <= TOL


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_eprop_equals_bptt_when_recurrence_is_only_through_own_state(kind):
    model, params, xs, ys, mask = _problem(kind, T=10)
    params["cell.w_rec"] = np.zeros_like(params["cell.w_rec"])
    eprop = _grad(model, params, xs, ys, mask, ns.rules.EProp())
    bptt = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    for k in bptt:
        np.testing.assert_allclose(eprop[k], bptt[k], rtol=0, atol=TOL, err_msg=k)
    assert np.abs(bptt["cell.w_rec"]).max() > 1e-8  # w_rec still gets credit via y_{t-1}
    if kind in SINGLE_VARIABLE:  # RFLO's diagonal decay is the whole block
        rflo = _grad(model, params, xs, ys, mask, ns.rules.RFLO(feedback="symmetric"))
        for k in bptt:
            np.testing.assert_allclose(rflo[k], bptt[k], rtol=0, atol=TOL, err_msg=k)


# -- RFLO -----------------------------------------------------------------------------------------
def _rflo_dense(model, params, xs, ys, mask, feedback):
    """RFLO by definition: E_t = diag(local_t) E_{t-1} + Mbar_t, grad = sum_t (L_t dout_t)^T E_t."""
    layout, S, n = model.cell.layout, model.cell.n_state, model.cell.n_hidden
    grad = _direct(model, params, xs, ys, mask)
    E = np.zeros((xs.shape[1], S * n, layout.size))
    for record, _, dlogits in _steps(model, params, xs, ys, mask):
        decay = np.diagonal(_dense_local(record), axis1=1, axis2=2)  # (B, S n)
        E = decay[:, :, None] * E + _dense_immediate(layout, record, S, n, nonlocal_=False)
        signal = (dlogits @ feedback)[:, None, :] * record.dout  # (B, S, n)
        grad += np.einsum("bs,bsp->p", signal.reshape(len(signal), -1), E)
    return grad


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_rflo_is_its_definition(kind):
    model, params, xs, ys, mask = _problem(kind)
    fb = random_feedback(4, model.n_out, model.cell.n_hidden, model.dtype)
    got = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.RFLO(seed=4)))
    assert _max_diff(got, _rflo_dense(model, params, xs, ys, mask, fb)) <= TOL
    sym = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.RFLO(feedback="symmetric")))
    expected = _rflo_dense(model, params, xs, ys, mask, params["readout.weight"])
    assert _max_diff(sym, expected) <= TOL


def test_rflo_on_leaky_rnn_is_murrays_update():
    """B_t = (1 - alpha) B_{t-1} + alpha phi'(u_t) [h_{t-1}; x_t; 1]^T, error fed back through B_fb."""
    model, params, xs, ys, mask = _problem("LeakyRNN", T=9, B=2)
    alpha = model.cell.alpha
    W, U, b = params["cell.w_rec"][0], params["cell.w_in"][0], params["cell.bias"][0]
    W_out, b_out = params["readout.weight"], params["readout.bias"]
    fb = random_feedback(0, model.n_out, model.cell.n_hidden, np.float64)
    T, B, n_in = xs.shape
    n = W.shape[0]
    h = np.zeros((B, n))
    trace_w, trace_u, trace_b = np.zeros((B, n, n)), np.zeros((B, n, n_in)), np.zeros((B, n))
    g_w, g_u, g_b = np.zeros((n, n)), np.zeros((n, n_in)), np.zeros(n)
    for t in range(T):
        u = h @ W.T + xs[t] @ U.T + b
        dphi = alpha * (1 - np.tanh(u) ** 2)
        trace_w = (1 - alpha) * trace_w + dphi[:, :, None] * h[:, None, :]
        trace_u = (1 - alpha) * trace_u + dphi[:, :, None] * xs[t][:, None, :]
        trace_b = (1 - alpha) * trace_b + dphi
        h = (1 - alpha) * h + alpha * np.tanh(u)
        logits = h @ W_out.T + b_out
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        err = (p - np.eye(model.n_out)[ys[t]]) * mask[t][:, None]
        signal = err @ fb  # (B, n)
        g_w += np.einsum("bi,bij->ij", signal, trace_w)
        g_u += np.einsum("bi,bij->ij", signal, trace_u)
        g_b += np.einsum("bi,bi->i", signal, trace_b)
    got = _grad(model, params, xs, ys, mask, ns.rules.RFLO())
    for name, ref in (("cell.w_rec", g_w), ("cell.w_in", g_u), ("cell.bias", g_b)):
        np.testing.assert_allclose(got[name][0], ref, rtol=0, atol=TOL, err_msg=name)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_symmetric_rflo_and_eprop(kind):
    """Same trace for single-variable cells; RFLO drops the within-unit couplings of LIF/ALIF."""
    model, params, xs, ys, mask = _problem(kind)
    rflo = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.RFLO(feedback="symmetric")))
    eprop = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.EProp()))
    if kind in SINGLE_VARIABLE:
        assert _max_diff(rflo, eprop) <= TOL
    else:
        assert _max_diff(rflo, eprop) > 1e-6


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("cls", [ns.rules.RFLO, ns.rules.EProp])
def test_random_feedback_is_symmetric_feedback_through_the_feedback_matrix(kind, cls):
    model, params, xs, ys, mask = _problem(kind)
    random_rule = cls(feedback="random", seed=7)
    got = _grad(model, params, xs, ys, mask, random_rule)
    params["readout.weight"] = random_feedback(7, model.n_out, model.cell.n_hidden, model.dtype)
    # dlogits depend on the readout weights: recompute them with B_fb as the readout
    same_logits = _grad(model, params, xs, ys, mask, random_rule)
    sym = _grad(model, params, xs, ys, mask, cls(feedback="symmetric"))
    for k in ("cell.w_rec", "cell.w_in"):
        np.testing.assert_allclose(same_logits[k], sym[k], rtol=0, atol=TOL, err_msg=k)
    assert np.abs(got["cell.w_in"] - same_logits["cell.w_in"]).max() > 1e-8


# -- UORO -----------------------------------------------------------------------------------------
UORO_SEEDS, UORO_COPIES = 100, 400


@pytest.mark.statistical
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_uoro_is_unbiased(kind):
    """Mean of 100 seeds x 400 independent examples (copies of one sequence, one sign row each).

    Each seed's batch gives one mean estimate; the standard error across seeds bounds the distance
    to RTRL elementwise (|mean - exact| <= 4.5 se). The bound is tight enough to reject a biased
    estimate: one-step truncated BPTT lies far outside it.
    """
    model, params, xs, ys, mask = _problem(kind, T=6, B=1, n_hidden=4, n_in=3)
    exact = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.RTRL()))
    copies = [np.repeat(a, UORO_COPIES, axis=1) for a in (xs, ys, mask)]
    estimates = np.array(
        [
            _cell_vec(model, _grad(model, params, *copies, ns.rules.UORO(seed=s))) / UORO_COPIES
            for s in range(UORO_SEEDS)
        ]
    )
    mean = estimates.mean(axis=0)
    se = estimates.std(axis=0, ddof=1) / np.sqrt(UORO_SEEDS)
    assert np.all(np.abs(mean - exact) <= 4.5 * se + 1e-12)
    biased = _cell_vec(model, _grad(model, params, xs, ys, mask, ns.rules.BPTT(truncation=1)))
    assert np.max(np.abs(mean - biased) / np.maximum(se, 1e-300)) > 10
