"""Refractoriness of LIF/ALIF (``refractory=``): semantics, Jacobians, defaults, Brian2.

The discrete-time rule is ``docs/theory/cells.md`` eq. (15)-(18) (Brian2's ``(unless refractory)``
convention: the spike step is the first of the ``R`` refractory steps). The exactness identities with
refractoriness (RTRL == BPTT, torch autograd) are variants in ``tests/test_identities.py`` and
``tests/test_reference_torch.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_abs_diff, random_params

import neurosnap as ns
from neurosnap.core.layout import INP, REC


def _model(cls=ns.cells.LIF, n=12, seed=0, **kwargs):
    kwargs.setdefault("w_in_scale", 30.0)
    kwargs.setdefault("w_rec_scale", 3.0)
    return ns.Model(cls(4, n, 0.5, seed=seed, **kwargs), n_out=2)


def _spike_inputs(T, B, seed, rate=0.3):
    return (np.random.default_rng(seed).random((T, B, 4)) < rate).astype(np.float64)


@pytest.mark.parametrize("cls", [ns.cells.LIF, ns.cells.ALIF])
def test_default_is_todays_cell(cls):
    """refractory=0 (the default): no counter, same state shape, identical numbers."""
    plain, zero = _model(cls), _model(cls, refractory=0.0)
    assert plain.cell.n_state == zero.cell.n_state == (2 if cls is ns.cells.LIF else 3)
    assert plain.cell.compiled_spec() is not None
    params = plain.init(seed=1)
    xs = _spike_inputs(50, 2, 1)
    a, b = plain.run(params, xs), zero.run(params, xs)
    np.testing.assert_array_equal(a.states, b.states)
    assert "refractory=0.0" in repr(plain.cell) and plain.cell.config()["refractory"] == 0.0


@pytest.mark.parametrize("cls", [ns.cells.LIF, ns.cells.ALIF])
@pytest.mark.parametrize("R", [2, 4])
def test_refractory_semantics(cls, R):
    """After a spike at step t: no spike at t+1..t+R-1, v clamped (unchanged) there, i integrating;
    the counter is the last state variable."""
    model = _model(cls, refractory=R * 1e-3, seed=R)
    cell = model.cell
    assert cell.state_names[-1] == "r" and cell.n_state == (3 if cls is ns.cells.LIF else 4)
    assert cell.compiled_spec() is None  # reference path only
    params = model.init(seed=2)
    traj = model.run(params, _spike_inputs(200, 2, 3))
    ev, v, c = traj.events, traj.states[:, :, 0], traj.states[:, :, -1]
    T = ev.shape[0]
    clamped = 0
    for t, b, j in zip(*np.nonzero(ev), strict=True):
        for k in range(1, R):
            if t + k < T:
                assert not ev[t + k, b, j]
                assert c[t + k, b, j] == R - k
                if k >= 2:  # v_{t+1} holds the reset value
                    assert v[t + k, b, j] == v[t + 1, b, j]
                clamped += 1
        if t + R < T:
            assert c[t + R, b, j] == 0
    assert clamped > 20, "no refractory steps: vacuous"
    # without refractoriness the same network spikes more (some spikes fall in refractory windows)
    free = _model(cls, seed=R).run(params, _spike_inputs(200, 2, 3)).events
    assert free.sum() > ev.sum()


def test_refractory_one_step_changes_nothing():
    """As in Brian2, refractory=dt (R=1) clamps no step: events equal those without it."""
    model, one = _model(), _model(refractory=1e-3)
    params = model.init(seed=0)
    xs = _spike_inputs(100, 2, 0)
    np.testing.assert_array_equal(model.run(params, xs).events, one.run(params, xs).events)


@pytest.mark.parametrize("cls", [ns.cells.LIF, ns.cells.ALIF])
def test_refractory_jacobians_equal_torch(cls):
    """One step from states with counters 0, 1, 2 near threshold: J_t, M̄_t == torch autograd."""
    torch = pytest.importorskip("torch")
    from reference import torch_cells as ref
    from test_reference_torch import reference_cell

    model = _model(cls, n=5, refractory=3e-3, bias=True, detach_reset=False)
    cell = model.cell
    params = random_params(model, seed=7)
    cp = model.cell_params(params)
    rng = np.random.default_rng(3)
    B, S, n = 4, cell.n_state, cell.n_hidden
    state = rng.standard_normal((B, S, n))
    state[:, 0] = cell.v_th + 1.5 * state[:, 0]
    state[:, 1] *= 5.0
    if cls is ns.cells.ALIF:
        state[:, 2] = np.abs(state[:, 2]) * 0.3
    state[:, -1] = rng.integers(0, 3, (B, n))
    x = rng.standard_normal((B, cell.n_in))
    new, _, record = cell.step_record(cp, state, x)
    tcell = reference_cell(cell)
    with torch.no_grad():
        t_new = ref.step_stacked(
            tcell,
            {k: torch.tensor(v) for k, v in params.items()},
            torch.tensor(state),
            torch.tensor(x),
        ).numpy()
    np.testing.assert_allclose(new, t_new, rtol=0, atol=1e-12)
    J, dparams = ref.step_jacobians(tcell, params, state, x)
    ours = record.jac_state.to_dense()
    assert np.abs(J).max() > 0
    np.testing.assert_allclose(ours, J, rtol=0, atol=1e-12)
    assert np.all(J.reshape(B, S, n, S, n)[:, -1] == 0)  # the counter carries no derivative
    layout = cell.layout
    imm = layout.immediate(record.jac_params)  # (B, S, P)
    b_, a_ = np.arange(B)[:, None], np.arange(S)[None, :]
    expect = np.empty_like(imm)
    for p in range(layout.size):
        g, i, j = layout.gate[p], layout.post[p], layout.pre[p]
        if layout.kind[p] == REC:
            expect[:, :, p] = dparams["cell.w_rec"][b_, a_, i, g, i, j]
        elif layout.kind[p] == INP:
            expect[:, :, p] = dparams["cell.w_in"][b_, a_, i, g, i, j]
        else:
            expect[:, :, p] = dparams["cell.bias"][b_, a_, i, g, i]
    np.testing.assert_allclose(imm, expect, rtol=0, atol=1e-12)
    assert np.abs(imm).max() > 0


def test_bad_refractory_raises():
    with pytest.raises(ValueError, match="refractory"):
        ns.cells.LIF(2, 3, refractory=1.5e-3)
    with pytest.raises(ValueError, match="refractory"):
        ns.cells.ALIF(2, 3, refractory=-1e-3)


def test_refractory_training_rules_agree():
    """SnAp at full reach and the sparse engine equal dense RTRL with refractoriness."""
    model = _model(ns.cells.ALIF, n=6, refractory=3e-3)
    params = random_params(model, seed=1)
    xs = _spike_inputs(20, 2, 5)
    ys = np.random.default_rng(0).integers(0, 2, (20, 2))
    _, g_r = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False))
    _, g_s = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
    _, g_n = ns.sequence_grad(model, params, xs, ys, ns.rules.SnAp(n=6))
    _, g_ref = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), engine="reference")
    assert max_abs_diff(g_s, g_r) <= 1e-10 and max_abs_diff(g_n, g_r) <= 1e-10
    assert max_abs_diff(g_ref, g_r) <= 1e-10
    assert np.abs(g_r["cell.w_rec"]).max() > 1e-8


# -- Brian2 (numpy target): refractory= maps to NeuronGroup(refractory=...) ----------------------
BRIAN2_CASES = [
    ("LIF", 0, dict(refractory=3e-3)),
    ("LIF", 1, dict(refractory=5e-3, reset="subtract", autapses=True)),
    ("ALIF", 2, dict(refractory=2e-3, beta=0.5, tau_adapt=0.05, bias=True)),
]


@pytest.mark.parametrize("case", BRIAN2_CASES, ids=lambda c: f"{c[0]}-seed{c[1]}")
def test_brian2_identical_spikes_with_refractoriness(case):
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    kind, seed, overrides = case
    cls = getattr(ns.cells, kind)
    model = ns.Model(
        cls(4, 25, 0.3, seed=seed, w_in_scale=25.0, w_rec_scale=4.0, **overrides), n_out=2
    )
    params = model.init(seed=seed)
    rng = np.random.default_rng(seed + 100)
    if model.cell.has_bias:
        params["cell.bias"] = rng.normal(0.0, 0.5, params["cell.bias"].shape)
    xs = (rng.random((400, 2, 4)) < 0.1).astype(np.float64)
    traj = model.run(params, xs)
    events, v = adapter.simulate(model, params, xs)
    assert 0.01 < traj.events.mean() < 0.4
    free = ns.Model(
        cls(
            4,
            25,
            0.3,
            seed=seed,
            w_in_scale=25.0,
            w_rec_scale=4.0,
            **{k: w for k, w in overrides.items() if k != "refractory"},
        ),
        n_out=2,
    )
    assert (free.run(params, xs).events != traj.events).any(), "refractoriness changed nothing"
    np.testing.assert_array_equal(events, traj.events)
    np.testing.assert_allclose(v, traj.states[:, :, 0], rtol=0, atol=1e-9)


def test_norse_lif_refrac_forward_matches_and_adapter_refuses():
    """Norse's lif_refrac_step with rho_reset = R - 1 gives neurosnap's spikes (forward only: Norse
    differentiates its refractory mask, so the Norse adapter refuses refractory cells)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("norse")
    from norse.torch.functional.lif import LIFParameters, LIFState
    from norse.torch.functional.lif_refrac import (
        LIFRefracParameters,
        LIFRefracState,
        lif_refrac_step,
    )

    from neurosnap.adapters import norse as na

    R = 4
    model = _model(n=20, refractory=R * 1e-3, seed=5)
    cell = model.cell
    params = model.init(seed=5)
    xs = _spike_inputs(300, 2, 6, rate=0.2)
    with pytest.raises(ValueError, match="refractory"):
        na.check_expressible(model)
    f64 = dict(dtype=torch.float64)
    p = LIFRefracParameters(
        lif=LIFParameters(
            tau_syn_inv=torch.tensor(1 / cell.tau_syn, **f64),
            tau_mem_inv=torch.tensor(1 / cell.tau_mem, **f64),
            v_leak=torch.tensor(cell.v_leak, **f64),
            v_th=torch.tensor(cell.v_th, **f64),
            v_reset=torch.tensor(cell.v_reset, **f64),
            method="triangle",
            alpha=torch.tensor(0.3, **f64),
        ),
        rho_reset=torch.tensor(float(R - 1), **f64),
    )
    shape = (2, cell.n_hidden)
    state = LIFRefracState(
        lif=LIFState(
            z=torch.zeros(shape, **f64), v=torch.zeros(shape, **f64), i=torch.zeros(shape, **f64)
        ),
        rho=torch.zeros(shape, **f64),
    )
    w_in = torch.tensor(params["cell.w_in"][0])
    w_rec = torch.tensor(params["cell.w_rec"][0])
    events = np.zeros((300, 2, cell.n_hidden), dtype=bool)
    with torch.no_grad():
        for t in range(300):
            z, state = lif_refrac_step(torch.tensor(xs[t]), state, w_in, w_rec, p, dt=cell.dt)
            events[t] = z.numpy() > 0
    traj = model.run(params, xs)
    assert traj.events.mean() > 0.02
    np.testing.assert_array_equal(events, traj.events)


# -- uniform recurrent delay (delay=D steps): the recurrence sees z_{t-D} ---------------------------
def _loop_lif(cell, params, xs):
    """A plain NumPy loop of LIF with delay D (reset "zero", no refractoriness): the spikes as history."""
    W, V = params["cell.w_rec"][0], params["cell.w_in"][0]
    T, B, _ = xs.shape
    n, D = cell.n_hidden, cell.delay
    k_m, k_s = cell.dt / cell.tau_mem, cell.dt / cell.tau_syn
    v, i = np.full((B, n), cell.v_leak), np.zeros((B, n))
    past = [np.zeros((B, n))] * D  # z_{t-1}, ..., z_{t-D}; at rest before t=0
    out = np.zeros((T, B, n), dtype=bool)
    for t in range(T):
        z = (v - cell.v_th > 0).astype(float)
        past = [z] + past[:-1]
        v = (1 - z) * v + z * cell.v_reset
        i = i + past[D - 1] @ W.T + xs[t] @ V.T
        v = v + k_m * (cell.v_leak - v + i)
        i = (1 - k_s) * i
        out[t] = v - cell.v_th > 0
    return out


@pytest.mark.parametrize("D", [2, 5])
def test_delay_semantics(D):
    model = _model(n=15, delay=D, seed=D, w_rec_scale=6.0)
    cell = model.cell
    assert cell.n_state == 2 + D - 1 and cell.compiled_spec() is None
    params = model.init(seed=3)
    xs = _spike_inputs(150, 2, 4, rate=0.2)
    ev = model.run(params, xs).events
    np.testing.assert_array_equal(ev, _loop_lif(cell, params, xs))
    assert (ev != _model(n=15, seed=D, w_rec_scale=6.0).run(params, xs).events).any()
    assert _model(n=15, delay=1, seed=D).cell.n_state == 2


def test_bad_delay_raises():
    with pytest.raises(ValueError, match="delay"):
        ns.cells.LIF(2, 3, delay=0)
    with pytest.raises(TypeError, match="delay"):
        ns.cells.ALIF(2, 3, delay=1.5)


@pytest.mark.parametrize("overrides", [dict(delay=3), dict(delay=2, refractory=3e-3)])
def test_delay_training_rules_agree(overrides):
    """Sparse RTRL, SnAp at full reach, e-prop's inputs all run; exact rules agree to 1e-10."""
    model = _model(ns.cells.ALIF, n=6, **overrides)
    params = random_params(model, seed=1)
    xs = _spike_inputs(20, 2, 5)
    ys = np.random.default_rng(0).integers(0, 2, (20, 2))
    _, g_r = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False))
    _, g_s = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
    _, g_n = ns.sequence_grad(model, params, xs, ys, ns.rules.SnAp(n=20))
    _, g_b = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
    assert max_abs_diff(g_s, g_r) <= 1e-10 and max_abs_diff(g_n, g_r) <= 1e-10
    assert max_abs_diff(g_b, g_r) <= 1e-10
    assert np.abs(g_r["cell.w_rec"]).max() > 1e-8


@pytest.mark.parametrize(
    "kind,overrides",
    [
        ("LIF", dict(delay=3)),
        ("ALIF", dict(delay=2, refractory=3e-3, beta=0.5)),
        ("LIF", dict(delay=4, reset="subtract", bias=True)),
    ],
)
def test_brian2_identical_spikes_with_delay(kind, overrides):
    """delay=D maps to Synapses(delay=(D - 1) * dt) (Brian2 step s holds neurosnap step s - 1)."""
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    cls = getattr(ns.cells, kind)
    model = ns.Model(
        cls(4, 25, 0.3, seed=3, w_in_scale=25.0, w_rec_scale=6.0, **overrides), n_out=2
    )
    params = model.init(seed=3)
    rng = np.random.default_rng(7)
    if model.cell.has_bias:
        params["cell.bias"] = rng.normal(0.0, 0.5, params["cell.bias"].shape)
    xs = (rng.random((400, 2, 4)) < 0.1).astype(np.float64)
    traj = model.run(params, xs)
    events, v = adapter.simulate(model, params, xs)
    assert 0.01 < traj.events.mean() < 0.4
    np.testing.assert_array_equal(events, traj.events)
    np.testing.assert_allclose(v, traj.states[:, :, 0], rtol=0, atol=1e-9)
    undelayed = dict(overrides, delay=1)
    other = ns.Model(
        cls(4, 25, 0.3, seed=3, w_in_scale=25.0, w_rec_scale=6.0, **undelayed), n_out=2
    )
    assert (other.run(params, xs).events != traj.events).any(), "the delay changed nothing"


@pytest.mark.parametrize(
    "rule",
    [ns.rules.UORO(seed=0), ns.rules.RFLO(), ns.rules.EProp(), ns.rules.STDP(), ns.rules.SnAp(n=1)],
    ids=lambda r: type(r).__name__,
)
def test_every_rule_runs_with_refractoriness_and_delay(rule):
    """The approximate rules consume the same records (finite gradients of the right shapes), and
    online training runs through the reference path (the compiled engine does not cover these)."""
    model = _model(ns.cells.ALIF, n=6, refractory=3e-3, delay=3)
    params = random_params(model, seed=2)
    xs = _spike_inputs(15, 2, 8)
    ys = np.random.default_rng(1).integers(0, 2, (15, 2))
    _, g = ns.sequence_grad(model, params, xs, ys, rule)
    assert set(g) == set(params) and all(np.all(np.isfinite(v)) for v in g.values())
    assert any(np.abs(v).max() > 0 for v in g.values())


# -- the event-driven simulator (ns.simulate): refractoriness, uniform and per-synapse delays -----
def _dense_events(rec, T, B, n):
    ev = np.zeros((T, B, n), dtype=bool)
    ev[rec.spike_steps, rec.spike_batch, rec.spike_units] = True
    return ev


@pytest.mark.parametrize(
    "kind,overrides",
    [
        ("LIF", dict(refractory=3e-3)),
        ("ALIF", dict(refractory=4e-3, beta=0.5, delay=3)),
        ("LIF", dict(delay=2, reset="subtract", bias=True)),
    ],
)
def test_simulate_event_engine_equals_cells(kind, overrides):
    """ns.simulate's event kernel == model.run (events exactly; v, i, a, r to round-off), in small
    chunks so that the ring buffer and the counters carry across chunk boundaries."""
    cls = getattr(ns.cells, kind)
    model = ns.Model(
        cls(4, 30, 0.3, seed=2, w_in_scale=25.0, w_rec_scale=5.0, **overrides), n_out=2
    )
    params = model.init(seed=2)
    if model.cell.has_bias:
        params["cell.bias"] = np.random.default_rng(0).normal(0, 0.5, params["cell.bias"].shape)
    xs = _spike_inputs(300, 2, 9, rate=0.1)
    traj = model.run(params, xs)
    names = [s for s in model.cell.state_names if s in ("v", "i", "a", "r")]
    rec = ns.simulate(model, params, xs, record=["events"] + names, engine="event", chunk_steps=37)
    assert 0.01 < traj.events.mean() < 0.4
    np.testing.assert_array_equal(_dense_events(rec, 300, 2, 30), traj.events)
    for s in names:
        np.testing.assert_allclose(
            rec.states[s], traj.states[:, :, model.cell.state_names.index(s)], rtol=0, atol=1e-9
        )


def test_simulate_per_synapse_delays_equal_brian2_and_uniform_cell():
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    model = ns.Model(
        ns.cells.LIF(4, 30, 0.3, seed=4, w_in_scale=25.0, w_rec_scale=6.0, refractory=2e-3), n_out=2
    )
    params = model.init(seed=4)
    xs = _spike_inputs(400, 2, 10, rate=0.1)
    # a uniform array is the cell's uniform delay
    uniform = ns.Model(
        ns.cells.LIF(
            4, 30, 0.3, seed=4, w_in_scale=25.0, w_rec_scale=6.0, refractory=2e-3, delay=3
        ),
        n_out=2,
    )
    rec = ns.simulate(model, params, xs, engine="event", delays=np.full((30, 30), 3))
    np.testing.assert_array_equal(_dense_events(rec, 400, 2, 30), uniform.run(params, xs).events)
    # random per-synapse delays 1..6: neurosnap's ring buffer == Brian2's per-synapse delays
    delays = np.random.default_rng(0).integers(1, 7, (30, 30))
    rec = ns.simulate(model, params, xs, engine="event", delays=delays, chunk_steps=50)
    ours = _dense_events(rec, 400, 2, 30)
    events, _ = adapter.simulate(model, params, xs, delays=delays)
    assert 0.01 < ours.mean() < 0.4
    np.testing.assert_array_equal(ours, events)
    assert (ours != model.run(params, xs).events).any(), "the delays changed nothing"


def test_simulate_delays_bad_input():
    model = ns.Model(ns.cells.LIF(2, 5, 1.0), n_out=2)
    xs = np.zeros((5, 1, 2))
    with pytest.raises(ValueError, match="delays"):
        ns.simulate(model, None, xs, delays=np.zeros((5, 5), int))
    with pytest.raises(ValueError, match="delays"):
        ns.simulate(model, None, xs, delays=np.ones((4, 5), int))
    with pytest.raises(ValueError, match="delays"):
        ns.simulate(model, None, xs, delays=np.ones((5, 5), int), engine="step")
    with pytest.raises(ValueError, match="q1"):
        ns.simulate(ns.Model(ns.cells.LIF(2, 5, 1.0, delay=2), n_out=2), None, xs, record="q1")


def test_config_round_trip_and_nir_refuses():
    """refractory/delay travel in model configs (params.npz, checkpoints); NIR export refuses them."""
    from neurosnap.io.codec import build_model, model_config

    model = _model(ns.cells.ALIF, refractory=3e-3, delay=2)
    back = build_model(model_config(model))
    assert back.cell.refractory == 3e-3 and back.cell.delay == 2
    assert back.cell.state_names == model.cell.state_names
    pytest.importorskip("nir")
    from neurosnap.io import nir as nir_io

    for kw in (dict(refractory=2e-3), dict(delay=3)):
        with pytest.raises(ValueError, match=next(iter(kw))):
            nir_io.to_nir(_model(w_in_scale=1.0, **kw), _model().init(seed=0))


@pytest.mark.parametrize("rule", [ns.rules.RTRL(), ns.rules.EProp()], ids=["RTRL", "EProp"])
def test_online_training_with_refractoriness_and_delay(rule):
    """ns.train (default engine: falls back to the reference path) on a spiking cell with both;
    deterministic, and the reference engine gives the same history."""

    def model():
        return ns.Model(ns.cells.LIF(4, 8, 0.5, w_in_scale=20.0, refractory=3e-3, delay=2), n_out=2)

    runs = [
        ns.train(
            model(), rule, ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=150, seed=0, engine=engine
        )
        for engine in ("compiled", "reference")
    ]
    a, b = runs
    assert np.all(np.isfinite(a.column("loss")))
    assert max_abs_diff(a.params, b.params) <= 1e-12


def test_norse_lif_refrac_gradient_with_detached_mask_equals_rtrl(monkeypatch):
    """Norse's LIFRefrac autograd == neurosnap's exact RTRL once Norse's refractory mask and counter
    are treated as piecewise constant (detached), which is neurosnap's convention; Norse itself
    differentiates the mask with its surrogate, and its gradient then differs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("norse")
    import norse.torch.functional.lif_refrac as lr
    from norse.torch.functional.lif import LIFParameters, LIFState

    R, T, B, n = 4, 60, 2, 20
    cell = ns.cells.LIF(4, n, 0.5, seed=5, w_in_scale=30.0, w_rec_scale=3.0, refractory=R * 1e-3)
    model = ns.Model(cell, n_out=2, loss="mse")
    params = model.init(seed=5)
    xs = _spike_inputs(T, B, 6, rate=0.2)
    ys = np.random.default_rng(1).normal(size=(T, B, 2))
    _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
    f64 = dict(dtype=torch.float64)

    def norse_grads():
        p = lr.LIFRefracParameters(
            lif=LIFParameters(
                tau_syn_inv=torch.tensor(1 / cell.tau_syn, **f64),
                tau_mem_inv=torch.tensor(1 / cell.tau_mem, **f64),
                v_leak=torch.tensor(0.0, **f64),
                v_th=torch.tensor(1.0, **f64),
                v_reset=torch.tensor(0.0, **f64),
                method="triangle",
                alpha=torch.tensor(0.3, **f64),
            ),
            rho_reset=torch.tensor(float(R - 1), **f64),
        )
        z0 = torch.zeros(B, n, **f64)
        state = lr.LIFRefracState(lif=LIFState(z=z0, v=z0.clone(), i=z0.clone()), rho=z0.clone())
        w_in = torch.tensor(params["cell.w_in"][0], requires_grad=True)
        w_rec = torch.tensor(params["cell.w_rec"][0], requires_grad=True)
        w_out, b_out = torch.tensor(params["readout.weight"]), torch.tensor(params["readout.bias"])
        loss = 0.0
        for t in range(T):
            z, state = lr.lif_refrac_step(torch.tensor(xs[t]), state, w_in, w_rec, p, dt=cell.dt)
            loss = loss + 0.5 * ((z @ w_out.T + b_out - torch.tensor(ys[t])) ** 2).sum()
        g_in, g_rec = torch.autograd.grad(loss, [w_in, w_rec])
        return {"cell.w_in": g_in.numpy()[None], "cell.w_rec": (g_rec.numpy() * cell.mask)[None]}

    ours = {k: g[k] for k in ("cell.w_in", "cell.w_rec")}
    assert max_abs_diff(norse_grads(), ours) > 1e-2  # Norse's own surrogate through the mask

    def detached(state, z_new, v_new, p):
        mask = (state.rho > 0).to(v_new.dtype)
        v_new = (1 - mask) * v_new + mask * state.lif.v
        z_new = (1 - mask) * z_new
        zd = z_new.detach()
        return v_new, z_new, (1 - zd) * torch.relu(state.rho - mask) + zd * p.rho_reset

    monkeypatch.setattr(lr, "compute_refractory_update", detached)
    assert max_abs_diff(norse_grads(), ours) <= 1e-10


def test_brian2_refuses_what_it_cannot_hold():
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    xs = np.zeros((5, 1, 4))
    hot = ns.Model(ns.cells.LIF(4, 5, delay=2, v_leak=1.5), n_out=2)
    with pytest.raises(ValueError, match="v_leak"):
        adapter.check_expressible(hot)
    delayed = ns.Model(ns.cells.LIF(4, 5, delay=2), n_out=2)
    with pytest.raises(ValueError, match="delay=1"):
        adapter.to_network(delayed, delayed.init(seed=0), xs, stdp=ns.rules.STDP())
    plain = ns.Model(ns.cells.LIF(4, 5), n_out=2)
    with pytest.raises(ValueError, match="delays"):
        adapter.to_network(plain, plain.init(seed=0), xs, delays=np.zeros((5, 5), int))


# -- ns.simulate from a given initial state (CUBA's random membrane potentials) -----------------
@pytest.mark.parametrize(
    "kind,overrides",
    [
        ("LIF", dict(refractory=3e-3)),
        ("ALIF", dict(refractory=4e-3, beta=0.5, delay=3)),
        ("LIF", dict(delay=2, reset="subtract")),
    ],
)
def test_simulate_initial_state_event_equals_step(kind, overrides):
    """initial_state: the event kernel == the step engine (events exactly, states to round-off),
    some units above threshold at step 0 (spikes in flight) and some refractory; the state
    changes the spikes, and a rest-valued initial state changes nothing."""
    cls = getattr(ns.cells, kind)
    model = ns.Model(
        cls(4, 30, 0.3, seed=2, w_in_scale=25.0, w_rec_scale=5.0, **overrides), n_out=2
    )
    cell, params = model.cell, model.init(seed=2)
    xs = _spike_inputs(200, 2, 9, rate=0.1)
    rng = np.random.default_rng(1)
    init = {
        "v": rng.uniform(cell.v_leak, cell.v_th + 0.3 * (cell.v_th - cell.v_leak), (2, 30)),
        "i": rng.normal(0, 0.2, 30),
    }
    if "r" in cell.state_names:
        init["r"] = rng.integers(0, cell.refractory_steps, (2, 30))
        init["r"][init["v"] > cell.v_th] = 0
    names = [s for s in cell.state_names if s in ("v", "i", "a", "r")]
    ev = ns.simulate(
        model,
        params,
        xs,
        record=["events"] + names,
        engine="event",
        chunk_steps=37,
        initial_state=init,
    )
    st = ns.simulate(
        model, params, xs, record=["events"] + names, engine="step", initial_state=init
    )
    a = _dense_events(ev, 200, 2, 30)
    np.testing.assert_array_equal(a, _dense_events(st, 200, 2, 30))
    for s in names:
        np.testing.assert_allclose(ev.states[s], st.states[s], rtol=0, atol=1e-9)
    assert (a != model.run(params, xs).events).any(), "the initial state changed nothing"
    rest = ns.simulate(model, params, xs, engine="event", initial_state={"v": cell.v_leak})
    np.testing.assert_array_equal(_dense_events(rest, 200, 2, 30), model.run(params, xs).events)


def test_simulate_initial_state_bad_input():
    model = ns.Model(ns.cells.LIF(2, 5, 1.0, refractory=3e-3, delay=2), n_out=2)
    xs = np.zeros((5, 1, 2))
    for bad, match in [
        ([1.0], "dict"),
        ({"q1": np.zeros(5)}, "q1"),
        ({"v": np.zeros(4)}, r"\(5,\)"),
        ({"v": np.full(5, np.nan)}, "finite"),
        ({"r": np.full(5, 7)}, "integers"),
        ({"r": np.ones(5), "v": np.full(5, 2.0)}, "below threshold"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            ns.simulate(model, None, xs, initial_state=bad)


@pytest.mark.parametrize(
    "kind,overrides",
    [
        ("LIF", dict(refractory=3e-3)),
        ("ALIF", dict(beta=0.5)),
        ("LIF", dict(delay=3, refractory=2e-3)),
    ],
)
def test_brian2_identical_spikes_from_initial_state(kind, overrides):
    """The Brian2 adapter's initial_state: spikes identical to ns.simulate's from the same random
    state (above threshold at step 0 where there are no delays), membranes to round-off."""
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    cls = getattr(ns.cells, kind)
    model = ns.Model(
        cls(4, 25, 0.3, seed=3, w_in_scale=25.0, w_rec_scale=4.0, **overrides), n_out=2
    )
    cell, params = model.cell, model.init(seed=3)
    xs = _spike_inputs(200, 2, 4, rate=0.1)
    rng = np.random.default_rng(5)
    top = cell.v_th + (0.3 if cell.delay == 1 else -0.01) * (cell.v_th - cell.v_leak)
    init = {"v": rng.uniform(cell.v_leak, top, (2, 25)), "i": rng.normal(0, 0.2, 25)}
    if kind == "ALIF":
        init["a"] = rng.uniform(0, 0.5, 25)
    rec = ns.simulate(model, params, xs, record="events,v", engine="event", initial_state=init)
    events, v = adapter.simulate(model, params, xs, initial_state=init)
    ours = _dense_events(rec, 200, 2, 25)
    assert 0.01 < ours.mean() < 0.4
    assert (ours != model.run(params, xs).events).any(), "the initial state changed nothing"
    np.testing.assert_array_equal(events, ours)
    np.testing.assert_allclose(v, rec.states["v"], rtol=0, atol=1e-9)
    if cell.delay > 1:
        with pytest.raises(ValueError, match="below threshold"):
            adapter.simulate(model, params, xs, initial_state={"v": cell.v_th + 1.0})
    with pytest.raises(ValueError, match="'r'"):
        adapter.to_network(model, params, xs, initial_state={"r": 0})
