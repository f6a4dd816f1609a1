"""The sparse exact engine: event-driven forward pass and sparse exact RTRL (issue 3, items 1-2)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from reference import sparse_products

import neurosnap as ns
from neurosnap.cells.events import EventDrive
from neurosnap.core.record import StateJacobian
from neurosnap.rules import BPTT, RTRL
from neurosnap.sparse import kernels

CELLS = ["LeakyRNN", "EGRU", "LIF", "ALIF"]


def _gates(cell):
    if cell == "LeakyRNN":
        return [None]
    return [None, ns.gates.Smooth(4.0)]


def _problem(cell, gate=None, n=9, density=0.35, B=3, T=10, dtype=np.float64, seed=0, **kw):
    """A small model whose units fire often enough to exercise events, support and silence."""
    C = getattr(ns.cells, cell)
    if gate is not None:
        kw["gate"] = gate
    c = C(n_in=3, n_hidden=n, density=density, seed=seed, **kw)
    model = ns.Model(c, n_out=2, dtype=dtype)
    params = model.init(seed=seed + 1)
    params["cell.w_rec"] = (params["cell.w_rec"] * 3).astype(dtype)
    rng = np.random.default_rng(seed + 2)
    scale = 30.0 if cell in ("LIF", "ALIF") else 1.5
    xs = (rng.normal(size=(T, B, 3)) * scale).astype(dtype)
    ys = rng.integers(0, 2, size=(T, B))
    return model, params, xs, ys


def _maxdiff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


# -- event-driven forward pass -------------------------------------------------------------------
@pytest.mark.parametrize(
    "n,density,act,B",
    [
        (70, 1.0, 0.3, 1),
        (80, 0.1, 0.1, 4),
        (96, 0.2, 0.05, 2),
        (64, 0.5, 1.0, 3),
        (12, 0.3, 0.5, 2),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_event_drive_equals_dense_matmul(n, density, act, B, dtype):
    rng = np.random.default_rng(n)
    mask = rng.random((n, n)) < density
    drive = EventDrive(mask)
    w = (rng.normal(size=(3, n, n)) * mask).astype(dtype)
    y = (rng.normal(size=(B, n)) * (rng.random((B, n)) < act)).astype(dtype)
    dense = np.matmul(w, y.T).transpose(2, 0, 1)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(drive.gather(w, y), dense, rtol=tol, atol=tol)
    np.testing.assert_allclose(drive(w, y), dense, rtol=tol, atol=tol)
    assert drive(w, y).dtype == dtype


def test_event_drive_choice_follows_counted_work():
    n = 128
    rng = np.random.default_rng(0)
    mask = rng.random((n, n)) < 0.1
    drive = EventDrive(mask)
    y_sparse = np.zeros((1, n))
    y_sparse[0, :3] = 1.0
    assert drive.use_events(y_sparse)
    assert not drive.use_events(np.ones((1, n)))
    assert not EventDrive(np.ones((8, 8), bool)).use_events(np.zeros((1, 8)))  # tiny: BLAS


def test_event_drive_knobs_travel_with_a_pickled_cell():
    cell = ns.cells.EGRU(4, 80, 0.2)
    assert cell.event_drive.crossover == EventDrive.crossover == 0.02
    cell.event_drive.crossover, cell.event_drive.min_units = 0.5, 8
    again = pickle.loads(pickle.dumps(cell))
    assert (again.event_drive.crossover, again.event_drive.min_units) == (0.5, 8)
    assert EventDrive.crossover == 0.02  # the class default is untouched
    y = np.zeros((1, 80))
    y[0, :12] = 1.0  # 12 events x ~16 targets: > 0.02 x 80 x 80, < 0.5 x 80 x 80
    assert again.event_drive.use_events(y) and not cell.event_drive.__class__(cell.mask).use_events(
        y
    )


@pytest.mark.parametrize("cell", CELLS)
def test_cell_forward_event_path_equals_dense(cell):
    model, params, xs, _ = _problem(cell, n=72, density=0.15, B=2, T=15)
    drive = model.cell.event_drive
    drive.crossover, drive.min_units = 10.0, 1  # always gather events
    events = model.run(params, xs)
    drive.crossover = -1.0  # always the dense product
    dense = model.run(params, xs)
    np.testing.assert_allclose(events.states, dense.states, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(events.events, dense.events)


# -- the sparse product J_t M ----------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_propagate_influence_matches_reference_and_dense(cell):
    model, params, xs, _ = _problem(cell, B=2)
    c = model.cell
    cp = model.cell_params(params)
    state = c.initial_state(2)
    graph = kernels.RecurrentGraph(c.mask)
    rng = np.random.default_rng(3)
    for t in range(6):
        state, _, rec = c.step_record(cp, state, xs[t])
        M = rng.normal(size=(2, c.n_state, c.n_hidden, 11))
        js = rec.jac_state
        dense = np.matmul(js.to_dense(), M.reshape(2, -1, 11)).reshape(M.shape)
        ref = sparse_products.propagate_influence_reference(M, js, graph)
        fast = kernels.propagate_influence(M, js, graph)
        np.testing.assert_allclose(ref, dense, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast, dense, rtol=1e-12, atol=1e-12)


def test_propagate_influence_skips_silent_units():
    """Columns of J_t vanish for silent units: their influence rows never reach other units."""
    rng = np.random.default_rng(0)
    B, S, G, n, P = 1, 1, 2, 6, 5
    mask = np.ones((n, n), bool)
    dout = np.zeros((B, S, n))
    dout[0, 0, 2] = 1.0
    js = StateJacobian(
        local=np.ones((B, S, S, n)) * 0.5,
        drec=rng.normal(size=(B, S, G, n)),
        w_rec=rng.normal(size=(G, n, n)),
        dout=dout,
    )
    M = rng.normal(size=(B, S, n, P))
    M[0, 0, 3] = np.nan  # a silent unit's row only meets its own local factor
    out = kernels.propagate_influence(M, js, kernels.RecurrentGraph(mask))
    assert np.all(np.isnan(out[0, 0, 3]))
    others = np.delete(np.arange(n), 3)
    assert np.all(np.isfinite(out[0, 0, others]))


@pytest.mark.parametrize("chunk", [1, 5, 7, 300])
def test_block_plan_dense_round_trip_and_chunks(chunk):
    model, params, xs, ys = _problem("ALIF", B=2)
    c = model.cell
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(c.layout, graph, c.n_state, 2, chunk=chunk)
    M = np.random.default_rng(0).normal(size=(2, c.n_state, c.n_hidden, c.layout.size))
    np.testing.assert_array_equal(plan.to_dense(plan.from_dense(M)), M)
    # one exact step with an arbitrary chunking equals the dense product plus Mbar
    cp = model.cell_params(params)
    state = c.initial_state(2)
    for t in range(4):
        state, _, rec = c.step_record(cp, state, xs[t])
    new = np.zeros(plan.size)
    grad = np.zeros(c.layout.size)
    credit = np.random.default_rng(1).normal(size=(2, c.n_state, c.n_hidden))
    kernels.block_step(
        plan.from_dense(M), new, plan, graph, rec.jac_state, rec.jac_params, credit, grad
    )
    B, S, n, P = M.shape
    ref = np.matmul(rec.jac_state.to_dense(), M.reshape(B, S * n, P)).reshape(M.shape)
    ref[:, :, c.layout.post, np.arange(P)] += c.layout.immediate(rec.jac_params)
    np.testing.assert_allclose(plan.to_dense(new), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, np.einsum("ban,banp->p", credit, ref), rtol=1e-10, atol=1e-12)


def test_block_step_needs_two_buffers():
    model, params, xs, _ = _problem("EGRU", B=1)
    c = model.cell
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(c.layout, graph, 1, 1)
    _, _, rec = c.step_record(model.cell_params(params), c.initial_state(1), xs[0])
    buf = np.zeros(plan.size)
    with pytest.raises(ValueError, match="distinct"):
        kernels.block_step(
            buf, buf, plan, graph, rec.jac_state, rec.jac_params, None, np.zeros(c.layout.size)
        )


# -- sparse exact RTRL == dense RTRL ----------------------------------------------------------------
ENGINES = {
    "panels": {"dense_switch": 0.0},  # the panel kernel, every step
    "gather": {"dense_switch": 0.0, "kernel": "gather"},  # the generic block kernel
    "small-panels": {"dense_switch": 0.0, "tile_bytes": 1},  # panels of 64 columns
    "blas": {"dense_switch": float("inf")},  # BLAS on the panels, every step
    "auto": {},  # the default choice
}


@pytest.fixture(params=list(ENGINES))
def engine(request):
    """A factory of sparse ``RTRL`` rules forcing one of the engine's paths."""
    return lambda: RTRL(**ENGINES[request.param])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("density", [1.0, 0.3])
@pytest.mark.parametrize("T", [1, 4, 13])
def test_sparse_rtrl_equals_dense_rtrl(cell, density, T, engine):
    for gate in _gates(cell):
        model, params, xs, ys = _problem(cell, gate, density=density, T=T, B=3)
        l1, g_sparse = ns.sequence_grad(model, params, xs, ys, engine())
        l2, g_dense = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False))
        assert l1 == pytest.approx(l2, rel=1e-12)
        assert _maxdiff(g_sparse, g_dense) <= 1e-10
        assert set(g_sparse) == set(params)


@pytest.mark.parametrize("cell", CELLS)
def test_sparse_rtrl_equals_bptt(cell, engine):
    for gate in _gates(cell):
        model, params, xs, ys = _problem(cell, gate, T=9)
        _, g1 = ns.sequence_grad(model, params, xs, ys, engine())
        _, g2 = ns.sequence_grad(model, params, xs, ys, BPTT())
        assert _maxdiff(g1, g2) <= 1e-10


def test_sparse_rtrl_influence_matches_dense_with_mask_and_loss_mask(engine):
    model, params, xs, ys = _problem("EGRU", n=11, density=0.2, T=8, autapses=False)
    mask = np.random.default_rng(5).random(ys.shape) < 0.6
    _, g1 = ns.sequence_grad(model, params, xs, ys, engine(), mask=mask)
    _, g2 = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False), mask=mask)
    assert _maxdiff(g1, g2) <= 1e-10
    # the stored influence, read back densely, is the same matrix
    rules = [engine(), RTRL(sparse=False)]
    states = [r.init(model, params, 3) for r in rules]
    cp = model.cell_params(params)
    s = model.cell.initial_state(3)
    for t in range(len(xs)):
        s, y, rec = model.cell.step_record(cp, s, xs[t])
        credit = np.ones_like(rec.dout)
        for i, r in enumerate(rules):
            states[i], _ = r.step(states[i], rec, credit, params=params)
    np.testing.assert_allclose(states[0].influence, states[1].influence, rtol=1e-12, atol=1e-12)


def test_sparse_rtrl_float32_close_to_float64(engine):
    model64, params, xs, ys = _problem("EGRU", n=10, T=6)
    model32 = ns.Model(model64.cell, n_out=2, dtype=np.float32)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    _, g32 = ns.sequence_grad(model32, p32, xs.astype(np.float32), ys, engine())
    _, g32d = ns.sequence_grad(model32, p32, xs.astype(np.float32), ys, RTRL(sparse=False))
    _, g64 = ns.sequence_grad(model64, params, xs, ys, engine())
    for k in g64:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(g32[k], g32d[k], rtol=1e-4, atol=1e-5)


def test_rtrl_rejects_bad_sparse_flag():
    with pytest.raises(TypeError):
        RTRL(sparse="yes")


def test_dense_switch_follows_counted_work(monkeypatch):
    """Dense weights with every unit in the support go to BLAS; sparse activity stays in numba."""
    model, params, xs, ys = _problem("LeakyRNN", n=20, density=1.0, T=3)
    rule = RTRL()
    st = rule.init(model, params, 3)
    cp = model.cell_params(params)
    s = model.cell.initial_state(3)
    for t in range(3):
        s, _, rec = model.cell.step_record(cp, s, xs[t])
        st, _ = rule.step(st, rec, rec.dout, params=params)
    assert st.blas_steps == 3 and st.last_blas
    assert rule.cost(st, rec)["macs"] == RTRL(sparse=False).cost(st, rec)["macs"]
    model, params, xs, ys = _problem("EGRU", n=60, density=0.1, T=3)
    params["cell.bias"][2] = -3.0  # mostly silent, far from threshold
    st = rule.init(model, params, 3)
    s = model.cell.initial_state(3)
    cp = model.cell_params(params)
    for t in range(3):
        s, _, rec = model.cell.step_record(cp, s, xs[t])
        st, _ = rule.step(st, rec, rec.dout, params=params)
    assert st.blas_steps == 0


def test_one_connectivity_index_per_cell():
    """The cell builds its graph once; the event drive, the rules and the engine share it."""
    from neurosnap import engine
    from neurosnap.core.graph import RecurrentGraph

    cell = ns.cells.EGRU(n_in=2, n_hidden=12, density=0.3, seed=4)
    model = ns.Model(cell, n_out=2, loss="mse")
    params = model.init(seed=0)
    g = cell.graph
    assert isinstance(g, RecurrentGraph)
    ref = RecurrentGraph(cell.mask)
    for name in ("indptr", "indices", "csc_edge", "in_ptr", "edge_post", "edge_pre", "self_edge"):
        np.testing.assert_array_equal(getattr(g, name), getattr(ref, name))
    assert cell.event_drive.indptr is g.indptr and cell.event_drive.indices is g.indices
    assert ns.rules.RTRL().init(model, params, 2).graph is g
    assert ns.rules.SnAp(n=1).init(model, params, 2).graph is g
    assert engine._graph(cell)[0] is g.indptr


def test_model_structure_is_what_rules_read():
    """Rules take sizes, layout, graph and dt from ``model.structure()``, not from the cell object."""
    lif = ns.Model(ns.cells.LIF(n_in=2, n_hidden=5, dt=5e-4), n_out=3, loss="mse")
    s = lif.structure()
    assert (s.cell, s.n_in, s.n_hidden, s.n_state, s.n_out, s.dt) == (
        "LIF",
        2,
        5,
        lif.cell.n_state,
        3,
        5e-4,
    )
    assert s.graph is lif.cell.graph and s.layout is lif.cell.layout
    assert ns.Model(ns.cells.EGRU(n_in=2, n_hidden=5), n_out=2).structure().dt is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n_out = 4
