"""STDP baselines: ``ns.rules.STDP`` against Norse's ``stdp_step_linear`` and a Brian2 Song/Abbott
formulation run through the adapter; ``ns.rules.RSTDP``'s reward modulation.

The rule returns ``-Δw``: one ``ns.optim.SGD(lr=1)`` step applies ``Δw``.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.core.layout import INP
from neurosnap.core.record import ParamJacobian, StepRecord

N_IN, N = 5, 20


def _spiking(seed=0, density=0.3, n=N, **kwargs):
    cell = ns.cells.LIF(N_IN, n, density, seed=seed, w_in_scale=30.0, w_rec_scale=5.0, **kwargs)
    model = ns.Model(cell, n_out=3)
    return model, model.init(seed=seed)


def _spike_inputs(T, B, rate=0.1, seed=0):
    return (np.random.default_rng(seed).random((T, B, N_IN)) < rate).astype(np.float64)


def _online(model, params, xs, rule, opt):
    """Run ``xs`` applying every step's update at once; return the per-step records and weights."""
    cp = model.cell_params
    state = model.cell.initial_state(xs.shape[1])
    rule_state = rule.init(model, params, xs.shape[1])
    opt_state = opt.init(params)
    records, weights = [], [params]
    for x in xs:
        state, _, record = model.cell.step_record(cp(params), state, x)
        rule_state, g = rule.step(rule_state, record, None, params=params)
        grads = {f"cell.{k}": v for k, v in model.cell.layout.to_dict(g, model.dtype).items()}
        grads.update({k: np.zeros_like(params[k]) for k in params if k.startswith("readout")})
        params, opt_state = opt.update(grads, opt_state, params)
        records.append(record)
        weights.append(params)
    return records, weights


@pytest.mark.parametrize("bounds", [(None, None), (-0.5, 0.8)], ids=["unbounded", "hardbound"])
def test_matches_norse_stdp_step_linear(bounds):
    torch = pytest.importorskip("torch")
    from norse.torch.functional.stdp import STDPParameters, STDPState, stdp_step_linear

    model, params = _spiking(seed=1)
    dt = model.cell.dt
    rule = ns.rules.STDP(
        tau_pre=0.01, tau_post=0.015, a_plus=0.02, a_minus=0.025, w_min=bounds[0], w_max=bounds[1]
    )
    xs = _spike_inputs(300, 2, seed=1)
    records, weights = _online(model, params, xs, rule, ns.optim.SGD(lr=1.0))
    assert sum(r.events.sum() for r in records) > 100  # plenty of pairs

    # Norse's trace jumps by dt/tau * a per spike, ours by 1: scale the learning rates.
    def f64(x):
        return torch.tensor(x, dtype=torch.float64)

    p = STDPParameters(
        a_pre=f64(1.0),
        a_post=f64(1.0),
        tau_pre_inv=f64(1 / rule.tau_pre),
        tau_post_inv=f64(1 / rule.tau_post),
        w_min=bounds[0] if bounds[0] is not None else 0.0,
        w_max=bounds[1] if bounds[1] is not None else 1.0,
        eta_plus=f64(rule.a_plus * rule.tau_pre / dt),
        eta_minus=f64(rule.a_minus * rule.tau_post / dt),
        stdp_algorithm="additive",
        hardbound=bounds[0] is not None,
    )
    w = {
        "cell.w_rec": torch.tensor(params["cell.w_rec"][0]),
        "cell.w_in": torch.tensor(params["cell.w_in"][0]),
    }
    # One state per weight matrix; stdp_step_linear mutates it in place, so never share them.
    st = {
        "cell.w_rec": STDPState(
            torch.zeros(2, N, dtype=torch.float64), torch.zeros(2, N, dtype=torch.float64)
        ),
        "cell.w_in": STDPState(
            torch.zeros(2, N_IN, dtype=torch.float64), torch.zeros(2, N, dtype=torch.float64)
        ),
    }
    mask = model.cell.mask
    for t, record in enumerate(records):
        z_post = torch.tensor(record.events, dtype=torch.float64)
        pre = {
            "cell.w_rec": torch.tensor(record.jac_params.y_prev),
            "cell.w_in": torch.tensor(record.jac_params.x),
        }
        for k in w:
            w[k], st[k] = stdp_step_linear(pre[k], z_post, w[k], st[k], p, dt=dt)
        ours = weights[t + 1]
        np.testing.assert_allclose(ours["cell.w_in"][0], w["cell.w_in"].numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(
            ours["cell.w_rec"][0][mask], w["cell.w_rec"].numpy()[mask], rtol=0, atol=1e-10
        )
    moved = np.abs(weights[-1]["cell.w_rec"] - params["cell.w_rec"]).max()
    assert moved > 0.05
    if bounds[0] is not None:
        w_final = weights[-1]["cell.w_rec"][0][mask]
        assert w_final.min() >= bounds[0] and w_final.max() <= bounds[1]


@pytest.mark.parametrize("decay, input_weights", [("euler", True), ("exp", False)])
def test_matches_brian2_song_abbott(decay, input_weights):
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    model, params = _spiking(seed=2, density=0.2, n=30)
    xs = _spike_inputs(1000, 2, rate=0.05, seed=2)
    ys = np.zeros((1000, 2), dtype=int)
    rule = ns.rules.STDP(
        tau_pre=0.01,
        tau_post=0.02,
        a_plus=0.01,
        a_minus=0.012,
        decay=decay,
        input_weights=input_weights,
    )
    _, grads = ns.sequence_grad(model, params, xs, ys, rule)
    net = adapter.to_network(model, params, xs, batch_index=None, stdp=rule)
    adapter.run(net, model, xs.shape[0])
    dw = adapter.stdp_updates(net, model)
    assert np.abs(grads["cell.w_rec"]).max() > 1.0
    np.testing.assert_allclose(dw["cell.w_rec"], -grads["cell.w_rec"], rtol=0, atol=1e-10)
    if input_weights:
        np.testing.assert_allclose(dw["cell.w_in"], -grads["cell.w_in"], rtol=0, atol=1e-10)
    else:
        assert np.all(grads["cell.w_in"] == 0)


def test_brian2_rejects_what_it_cannot_express():
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    model, params = _spiking()
    with pytest.raises(ValueError, match="w_min/w_max"):
        adapter.to_network(model, params, _spike_inputs(5, 1), stdp=ns.rules.STDP(w_max=1.0))
    with pytest.raises(ValueError, match="0/1 spike inputs"):
        adapter.to_network(model, params, np.full((5, 1, N_IN), 0.5), stdp=ns.rules.STDP())


def test_pairing_by_hand():
    """Input 3 -> unit 0: pre two steps before post potentiates by a_plus d_pre^2, post two steps
    before pre depresses by a_minus d_post^2, and an arrival with a spike in the same step does both."""
    model, params = _spiking(seed=0, density=1.0, n=2)
    rule = ns.rules.STDP(tau_pre=0.01, tau_post=0.02, a_plus=0.3, a_minus=0.2)
    d_pre, d_post = rule.decays(model.cell.dt)
    layout = model.cell.layout
    col = np.flatnonzero((layout.kind == INP) & (layout.post == 0) & (layout.pre == 3))[0]

    def delta_w(pairs):
        state, out = rule.init(model, params, 1), []
        for x3, z0 in pairs:
            x = np.zeros((1, N_IN))
            x[0, 3] = x3
            jac = ParamJacobian(drec=None, dinp=None, y_prev=np.zeros((1, 2)), x=x)
            record = StepRecord(
                events=np.array([[z0, False]]),
                support=None,
                dout=None,
                jac_state=None,
                jac_params=jac,
            )
            state, g = rule.step(state, record, None, params=params)
            out.append(-g[col])
        return out

    np.testing.assert_allclose(
        delta_w([(1, 0), (0, 0), (0, 1)]), [0, 0, 0.3 * d_pre**2], rtol=1e-14
    )
    np.testing.assert_allclose(
        delta_w([(0, 1), (0, 0), (1, 0)]), [0, 0, -0.2 * d_post**2], rtol=1e-14
    )
    np.testing.assert_allclose(delta_w([(1, 1)]), [0.3 - 0.2], rtol=1e-14)


def test_sgd_lr1_applies_delta_w_and_rule_is_frozen():
    model, params = _spiking(seed=3)
    rule = ns.rules.STDP(a_plus=0.05, a_minus=0.01)
    records, weights = _online(model, params, _spike_inputs(30, 1, seed=3), rule, ns.optim.SGD(1.0))
    grads = [weights[t]["cell.w_in"] - weights[t + 1]["cell.w_in"] for t in range(30)]
    assert any(np.any(g != 0) for g in grads)
    assert pickle.loads(pickle.dumps(rule)) == rule
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.a_plus = 1.0
    assert rule.cost(rule.init(model, params, 1), records[0])["influence_size"] == 2 * N + N_IN


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(w_min=1.0, w_max=0.0), "w_min must be <= w_max"),
        (dict(decay="linear"), "decay"),
        (dict(tau_pre=0.0), "tau_pre"),
        (dict(input_weights=1), "input_weights"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ns.rules.STDP(**kwargs)


def test_euler_trace_needs_tau_at_least_dt():
    model, params = _spiking()
    with pytest.raises(ValueError, match="tau_pre must be >= dt"):
        ns.rules.STDP(tau_pre=1e-4).init(model, params, 1)


# -- reward-modulated STDP --------------------------------------------------------------------------
def _records(model, params, xs):
    state = model.cell.initial_state(xs.shape[1])
    out = []
    for x in xs:
        state, y, record = model.cell.step_record(model.cell_params(params), state, x)
        out.append((y, record))
    return out


def test_rstdp_is_reward_times_eligibility_of_stdp_pairs():
    model, params = _spiking(seed=4)
    xs = _spike_inputs(100, 1, seed=4)
    kw = dict(tau_pre=0.01, tau_post=0.02, a_plus=0.01, a_minus=0.012)
    stdp, rstdp = ns.rules.STDP(**kw), ns.rules.RSTDP(tau_eligibility=0.05, lr=0.5, **kw)
    s1, s2 = stdp.init(model, params, 1), rstdp.init(model, params, 1)
    d_e = 1 - model.cell.dt / 0.05
    rng = np.random.default_rng(0)
    eligibility = 0.0
    for _, record in _records(model, params, xs):
        s1, g_pairs = stdp.step(s1, record, None, params=params)
        r = rng.normal()
        s2, g = rstdp.step(s2, record, None, params=params, reward=np.array([r]))
        eligibility = d_e * eligibility - g_pairs
        np.testing.assert_allclose(g, -0.5 * r * eligibility, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_rstdp_reward_is_minus_the_step_loss(loss):
    model = ns.Model(ns.cells.LIF(N_IN, N, 0.3, w_in_scale=30.0), n_out=3, loss=loss)
    params = model.init(seed=5)
    xs = _spike_inputs(40, 2, seed=5)
    rng = np.random.default_rng(5)
    ys = rng.integers(0, 3, (40, 2)) if loss == "cross_entropy" else rng.normal(size=(40, 2, 3))
    rule = ns.rules.RSTDP(tau_reward=0.01)
    sa, sb = rule.init(model, params, 2), rule.init(model, params, 2)
    for t, (y, record) in enumerate(_records(model, params, xs)):
        mask = np.array([True, t % 3 != 0])
        _, _, dlogits, _ = model.step_loss(params, y, ys[t], mask)
        logits = model.readout(params, y)
        if loss == "mse":
            step_loss = 0.5 * np.sum((logits - ys[t]) ** 2, axis=1)
        else:
            logz = np.log(np.exp(logits).sum(axis=1))
            step_loss = logz - logits[np.arange(2), ys[t]]
        # masked sequences carry no reward: the same as a reward equal to the baseline
        reward = np.where(mask, -step_loss, sb.baseline)
        sa, ga = rule.step(sa, record, None, params=params, dlogits=dlogits)
        sb, gb = rule.step(sb, record, None, params=params, reward=reward)
        np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(sa.baseline, sb.baseline, rtol=1e-10, atol=1e-14)
    assert np.any(sa.baseline != 0)


def test_rstdp_needs_a_reward():
    model, params = _spiking()
    rule = ns.rules.RSTDP()
    state = rule.init(model, params, 1)
    ((_, record),) = _records(model, params, _spike_inputs(1, 1))
    with pytest.raises(ValueError, match="needs a reward"):
        rule.step(state, record, None, params=params)


def test_rstdp_runs_in_sequence_grad():
    model, params = _spiking(seed=6)
    xs = _spike_inputs(50, 2, seed=6)
    _, g = ns.sequence_grad(model, params, xs, np.ones((50, 2), int), ns.rules.RSTDP(a_plus=0.1))
    assert np.any(g["cell.w_rec"] != 0) and np.all(g["cell.w_rec"][0][~model.cell.mask] == 0)
