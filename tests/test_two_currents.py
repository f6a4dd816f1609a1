"""LIF with a second (inhibitory) synaptic current, ``tau_syn_inh``: the default is today's cell,
the equations (docs/theory/cells.md eq. (28)-(29)), exact gradients (RTRL == sparse RTRL == SnAp
== BPTT, BPTT == finite differences with a Smooth gate, the step Jacobians against finite
differences), the compiled engine's fallback, the event-driven simulator and Brian2."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_abs_diff, random_params, sequence_loss

import neurosnap as ns


def _model(n=12, seed=0, gate=None, **kwargs):
    kwargs.setdefault("w_in_scale", 10.0)
    kwargs.setdefault("w_rec_scale", 3.0)
    return ns.Model(
        ns.cells.LIF(4, n, 0.5, seed=seed, gate=gate, tau_syn_inh=1e-2, **kwargs), n_out=2
    )


def _spikes(T, B, seed, rate=0.3, k=4):
    return (np.random.default_rng(seed).random((T, B, k)) < rate).astype(np.float64)


def test_default_and_layout():
    one = ns.cells.LIF(3, 5, 0.5, seed=1)
    assert one.tau_syn_inh is None and one.n_gates == 1 and one.state_names == ("v", "i")
    two = ns.cells.LIF(3, 5, 0.5, seed=1, tau_syn_inh=1e-2, refractory=2e-3, delay=2)
    assert two.n_gates == 2 and two.state_names == ("v", "i", "i_inh", "r", "q1", "f1")
    assert two.compiled_spec() is None  # the compiled engine falls back
    from neurosnap.io.codec import build_model, model_config

    back = build_model(model_config(ns.Model(two, n_out=2)))
    assert back.cell.tau_syn_inh == 1e-2 and back.cell.state_names == two.state_names
    with pytest.raises(ValueError, match="tau_syn_inh"):
        ns.cells.LIF(3, 5, tau_syn_inh=1e-4)  # below dt
    with pytest.raises(ValueError, match="tau_syn_inh"):
        ns.cells.ALIF(3, 5, tau_syn_inh=1e-2)


def test_equations_one_step():
    """One step by hand: gate 0 jumps i, gate 1 jumps i_inh, v integrates both (forward Euler)."""
    model = _model(n=6, bias=True)
    cell = model.cell
    params = random_params(model, seed=3)
    cp = model.cell_params(params)
    rng = np.random.default_rng(0)
    state = cell.initial_state(2)
    state[:, 0] = rng.uniform(-0.5, 1.5, (2, 6))
    state[:, 1:3] = rng.normal(0, 1, (2, 2, 6))
    x = _spikes(1, 2, 1)[0]
    new, _ = cell.step(cp, state, x)
    v, i, ih = state[:, 0], state[:, 1], state[:, 2]
    z = (v > cell.v_th).astype(float)
    v_r = (1 - z) * v + z * cell.v_reset
    w_rec, w_in, b = cp["w_rec"], cp["w_in"], cp["bias"]
    i_j = i + z @ w_rec[0].T + x @ w_in[0].T + b[0]
    ih_j = ih + z @ w_rec[1].T + x @ w_in[1].T + b[1]
    k_m = cell.dt / cell.tau_mem
    np.testing.assert_allclose(new[:, 0], v_r + k_m * (cell.v_leak - v_r + i_j + ih_j), atol=1e-13)
    np.testing.assert_allclose(new[:, 1], (1 - cell.dt / cell.tau_syn) * i_j, atol=1e-13)
    np.testing.assert_allclose(new[:, 2], (1 - cell.dt / cell.tau_syn_inh) * ih_j, atol=1e-13)


@pytest.mark.parametrize("overrides", [{}, dict(refractory=3e-3), dict(delay=2, refractory=2e-3)])
def test_exact_rules_agree(overrides):
    """Dense RTRL == sparse RTRL == SnAp at full reach == BPTT (1e-10); the compiled engine's
    fallback (engine="auto") equals the reference path."""
    model = _model(**overrides)
    params = random_params(model, seed=1)
    xs = _spikes(20, 2, 5)
    ys = np.random.default_rng(0).integers(0, 2, (20, 2))
    _, g_r = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False))
    _, g_s = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
    _, g_n = ns.sequence_grad(model, params, xs, ys, ns.rules.SnAp(n=20))
    _, g_b = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
    assert max_abs_diff(g_s, g_r) <= 1e-10 and max_abs_diff(g_n, g_r) <= 1e-10
    assert max_abs_diff(g_b, g_r) <= 1e-10
    assert np.abs(g_r["cell.w_rec"][1]).max() > 1e-8  # the second current is trained
    _, g_ref = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), engine="reference")
    assert max_abs_diff(g_ref, g_b) == 0.0


def test_bptt_equals_finite_differences_smooth_gate():
    model = _model(
        n=6, gate=ns.gates.Smooth(0.5), detach_reset=False, w_in_scale=3.0, w_rec_scale=1.0
    )
    params = random_params(model, seed=2)
    T = 12
    xs = _spikes(T, 2, 7)
    ys = np.random.default_rng(1).integers(0, 2, (T, 2))
    mask = np.ones((T, 2))
    _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    rng = np.random.default_rng(9)
    for key in ("cell.w_rec", "cell.w_in"):
        d = {k: np.zeros_like(v) for k, v in params.items()}
        d[key][1] = rng.standard_normal(d[key][1].shape) * (
            model.cell.mask if key == "cell.w_rec" else 1.0
        )
        exact = float(np.sum(g[key] * d[key]))
        eps = 1e-5
        plus = {k: params[k] + eps * d[k] for k in params}
        minus = {k: params[k] - eps * d[k] for k in params}
        fd = (
            sequence_loss(model, plus, xs, ys, mask) - sequence_loss(model, minus, xs, ys, mask)
        ) / (2 * eps)
        assert abs(exact) > 1e-6
        assert abs(fd - exact) <= 1e-6 * abs(exact), (key, fd, exact)


def test_step_jacobian_matches_finite_differences():
    model = _model(n=5, gate=ns.gates.Smooth(0.5), detach_reset=False)
    cell = model.cell
    cp = model.cell_params(random_params(model, seed=4))
    rng = np.random.default_rng(2)
    state = cell.initial_state(2)
    state[:, 0] = rng.uniform(0, 1.5, (2, 5))
    state[:, 1:3] = rng.normal(0, 1, (2, 2, 5))
    x = _spikes(1, 2, 3)[0]
    _, _, record = cell.step_record(cp, state, x)
    S, n, eps = cell.n_state, cell.n_hidden, 1e-6
    dense = record.jac_state.to_dense()
    fd = np.empty_like(dense)
    for c in range(S):
        for j in range(n):
            sp, sm = state.copy(), state.copy()
            sp[:, c, j] += eps
            sm[:, c, j] -= eps
            fd[:, :, c * n + j] = (
                (cell.step(cp, sp, x)[0] - cell.step(cp, sm, x)[0]) / (2 * eps)
            ).reshape(2, S * n)
    np.testing.assert_allclose(dense, fd, rtol=1e-6, atol=1e-8)


def _dale_params(model, seed, frac_exc=0.75, w_e=2.0, w_i=-4.0):
    """Dale's law: excitatory units project through w_rec[0] only, inhibitory through w_rec[1]."""
    cell = model.cell
    params = model.init(seed=seed)
    n = cell.n_hidden
    exc = np.arange(n) < int(frac_exc * n)
    w = np.zeros((2, n, n))
    w[0][:, exc] = w_e
    w[1][:, ~exc] = w_i
    params["cell.w_rec"] = w * cell.mask
    rng = np.random.default_rng(seed)
    params["cell.w_in"] = np.stack(
        [np.abs(rng.normal(0, 12.0, (n, cell.n_in))), -np.abs(rng.normal(0, 2.0, (n, cell.n_in)))]
    )
    return params


def _dense(rec, T, B, n):
    ev = np.zeros((T, B, n), dtype=bool)
    ev[rec.spike_steps, rec.spike_batch, rec.spike_units] = True
    return ev


@pytest.mark.parametrize(
    "overrides",
    [
        dict(refractory=3e-3),
        dict(delay=3, reset="subtract"),
        dict(refractory=2e-3, delay=2, bias=True),
    ],
)
def test_event_engine_equals_model_run(overrides):
    """ns.simulate's two-current kernel == model.run (events exactly, v/i/i_inh to round-off), in
    small chunks; the second current changes the spikes."""
    model = _model(n=30, **overrides)
    params = _dale_params(model, seed=1)
    if model.cell.has_bias:
        params["cell.bias"] = np.random.default_rng(3).normal(0, 0.5, params["cell.bias"].shape)
    xs = _spikes(300, 2, 9, rate=0.1)
    traj = model.run(params, xs)
    names = [s for s in model.cell.state_names if s in ("v", "i", "i_inh", "r")]
    rec = ns.simulate(model, params, xs, record=["events"] + names, engine="event", chunk_steps=37)
    assert 0.01 < traj.events.mean() < 0.4
    np.testing.assert_array_equal(_dense(rec, 300, 2, 30), traj.events)
    for s in names:
        np.testing.assert_allclose(
            rec.states[s], traj.states[:, :, model.cell.state_names.index(s)], rtol=0, atol=1e-9
        )
    no_inh = {**params, "cell.w_rec": params["cell.w_rec"] * np.array([1.0, 0.0])[:, None, None]}
    assert (model.run(no_inh, xs).events != traj.events).any(), "inhibition changed nothing"
    # from an initial state, against the step engine
    rng = np.random.default_rng(4)
    init = {"v": rng.uniform(0, 0.99, (2, 30)), "i_inh": rng.normal(0, 0.3, 30)}
    a = ns.simulate(model, params, xs, engine="event", initial_state=init)
    b = ns.simulate(model, params, xs, engine="step", initial_state=init)
    np.testing.assert_array_equal(_dense(a, 300, 2, 30), _dense(b, 300, 2, 30))


def test_per_synapse_delays_equal_uniform_cell():
    model = _model(n=30, refractory=2e-3)
    params = _dale_params(model, seed=2)
    xs = _spikes(200, 1, 3, rate=0.1)
    uniform = _model(n=30, refractory=2e-3, delay=3)
    rec = ns.simulate(model, params, xs, engine="event", delays=np.full((30, 30), 3))
    np.testing.assert_array_equal(_dense(rec, 200, 1, 30), uniform.run(params, xs).events)


@pytest.mark.parametrize("overrides", [dict(refractory=3e-3), dict(delay=2, bias=True)])
def test_brian2_identical_spikes(overrides):
    """The Brian2 adapter (numpy target, float64) with two synaptic variables: spikes identical to
    model.run and to the event engine from a random initial state; params read back."""
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    model = _model(n=30, **overrides)
    params = _dale_params(model, seed=5)
    if model.cell.has_bias:
        params["cell.bias"] = np.random.default_rng(3).normal(0, 0.5, params["cell.bias"].shape)
    xs = _spikes(200, 2, 6, rate=0.1)
    traj = model.run(params, xs)
    events, v = adapter.simulate(model, params, xs)
    assert 0.01 < traj.events.mean() < 0.4
    np.testing.assert_array_equal(events, traj.events)
    np.testing.assert_allclose(v, traj.states[:, :, 0], rtol=0, atol=1e-9)
    init = {"v": np.random.default_rng(7).uniform(0, 0.99, (2, 30)), "i_inh": -0.2}
    rec = ns.simulate(model, params, xs, engine="event", initial_state=init)
    events, _ = adapter.simulate(model, params, xs, initial_state=init)
    np.testing.assert_array_equal(events, _dense(rec, 200, 2, 30))
    net = adapter.to_network(model, params, xs)
    back = adapter.from_network(net, model)
    for key in params:
        np.testing.assert_array_equal(back[key], params[key])


def test_param_jacobian_matches_finite_differences():
    """The immediate influence of every parameter of both drives (w_rec, w_in, bias of gates 0
    and 1) against central differences of one step."""
    model = _model(n=5, gate=ns.gates.Smooth(0.5), detach_reset=False, bias=True)
    cell = model.cell
    cp = model.cell_params(random_params(model, seed=6))
    rng = np.random.default_rng(8)
    state = cell.initial_state(2)
    state[:, 0] = rng.uniform(0, 1.5, (2, 5))
    state[:, 1:3] = rng.normal(0, 1, (2, 2, 5))
    x = _spikes(1, 2, 4, rate=0.6)[0]
    _, _, record = cell.step_record(cp, state, x)
    layout, eps = cell.layout, 1e-6
    imm = layout.immediate(record.jac_params)
    assert layout.size == 2 * (cell.mask.sum() + 5 * cell.n_in + 5)
    vec = layout.from_dict(cp)
    for p in range(layout.size):
        vp, vm = vec.copy(), vec.copy()
        vp[p] += eps
        vm[p] -= eps
        diff = (
            cell.step(layout.to_dict(vp, np.float64), state, x)[0]
            - cell.step(layout.to_dict(vm, np.float64), state, x)[0]
        ) / (2 * eps)
        np.testing.assert_allclose(imm[:, :, p], diff[:, :, layout.post[p]], rtol=1e-6, atol=1e-8)
    assert np.abs(imm[:, 2]).max() > 0.5  # gate 1 reaches i_inh


@pytest.mark.parametrize(
    "overrides", [dict(detach_reset=False), dict(refractory=3e-3, bias=True), dict(delay=3)]
)
def test_torch_autograd_equals_bptt_and_rtrl(overrides):
    """The torch twin (tests/reference/torch_cells.py, LIF2) differentiated by autograd == BPTT
    == RTRL over a whole sequence."""
    pytest.importorskip("torch")
    from test_reference_torch import _compare

    model = _model(**overrides)
    params = random_params(model, seed=3)
    xs = _spikes(20, 2, 5)
    ys = np.random.default_rng(0).integers(0, 2, (20, 2))
    _compare(model, params, xs, ys, np.ones((20, 2)))


def test_nir_and_norse_refuse_the_second_current():
    model = _model(n=6)
    params = model.init(seed=0)
    pytest.importorskip("nir")
    from neurosnap.io import nir as nir_io

    with pytest.raises(ValueError, match="tau_syn_inh"):
        nir_io.to_nir(model, params)
    pytest.importorskip("norse")
    from neurosnap.adapters import norse

    with pytest.raises(ValueError, match="tau_syn_inh"):
        norse.check_expressible(model)
