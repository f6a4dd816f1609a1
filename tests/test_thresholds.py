"""Learned EGRU thresholds (``EGRU(learn_threshold=True)``, ``docs/theory/cells.md`` eq. (21)-(27)).

theta = sigmoid(theta_raw), one per unit, stored raw in ``params["cell.threshold"]``. Its influence
has a local immediate part, a non-local part through the unit's previous output (rows of its
postsynaptic units) and a direct part on the readout; every rule must carry them as documented.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_batch, make_cell, random_params

import neurosnap as ns
from neurosnap import engine as ns_engine
from neurosnap.sparse.patterns import reachability, saturation_order

TOL = 1e-10


def _problem(
    gate="heaviside", *, n_hidden=6, density=0.5, T=9, B=3, seed=0, autapses=True, **overrides
):
    cell = make_cell(
        "EGRU-thr",
        gate,
        n_in=3,
        n_hidden=n_hidden,
        density=density,
        seed=seed,
        autapses=autapses,
        **overrides,
    )
    model = ns.Model(cell, n_out=3)
    params = random_params(model, seed=seed)
    xs, ys, mask = make_batch(model, T, B, seed=seed + 7)
    return model, params, xs, ys, mask


def _grad(model, params, xs, ys, mask, rule, **kw):
    return ns.sequence_grad(model, params, xs, ys, rule, mask=mask, **kw)[1]


def _max_diff(g1, g2):
    return max(float(np.abs(g1[k] - g2[k]).max()) for k in g1)


def test_parameter_shape_init_and_docstring():
    cell = ns.cells.EGRU(3, 5, learn_threshold=True, threshold=0.3)
    params = ns.Model(cell, n_out=2).init(seed=0)
    raw = params["cell.threshold"]
    assert raw.shape == (5,)
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), 0.3, rtol=0, atol=1e-15)  # sigmoid(raw)
    assert "sigmoid" in ns.cells.EGRU.__doc__ and "raw" in ns.cells.EGRU.__doc__
    assert cell.config()["learn_threshold"] is True
    assert cell.compiled_spec() is None  # the reference path runs it


def test_default_keeps_todays_parameters_and_numbers():
    fixed = ns.Model(make_cell("EGRU", n_in=3, n_hidden=6, density=0.5), n_out=3)
    learned = ns.Model(make_cell("EGRU-thr", n_in=3, n_hidden=6, density=0.5), n_out=3)
    pf = random_params(fixed)
    assert "cell.threshold" not in pf and fixed.cell.compiled_spec() is not None
    pl = dict(pf, **{"cell.threshold": learned.init(seed=0)["cell.threshold"]})  # theta = 0.3
    xs, ys, mask = make_batch(fixed, 9, 3, seed=2)
    lf, gf = ns.sequence_grad(fixed, pf, xs, ys, ns.rules.BPTT(), mask=mask)
    ll, gl = ns.sequence_grad(learned, pl, xs, ys, ns.rules.BPTT(), mask=mask)
    assert abs(lf - ll) <= 1e-12
    assert max(float(np.abs(gf[k] - gl[k]).max()) for k in gf) <= 1e-12
    assert np.abs(gl["cell.threshold"]).max() > 1e-6  # and the threshold gets a gradient


def test_bad_learn_threshold_arguments_are_named():
    with pytest.raises(TypeError, match="learn_threshold"):
        ns.cells.EGRU(2, 3, learn_threshold=1)
    with pytest.raises(ValueError, match="threshold"):
        ns.cells.EGRU(2, 3, learn_threshold=True, threshold=1.5)
    model = ns.Model(ns.cells.EGRU(2, 3, learn_threshold=True), n_out=2)
    with pytest.raises(ValueError, match="threshold"):
        model.cell.output(np.zeros((1, 1, 3)))  # the output needs the thresholds


RTRL_VARIANTS = {
    "dense": ns.rules.RTRL(sparse=False),
    "sparse": ns.rules.RTRL(),
    "sparse-gather": ns.rules.RTRL(kernel="gather"),
    "sparse-blas": ns.rules.RTRL(dense_switch=float("inf")),
    "sparse-noblas": ns.rules.RTRL(dense_switch=0.0),
}


@pytest.mark.parametrize("gate", ["heaviside", "smooth"])
@pytest.mark.parametrize("density, autapses", [(0.5, True), (1.0, False), (0.34, True)])
@pytest.mark.parametrize("variant", sorted(RTRL_VARIANTS))
def test_rtrl_equals_bptt(gate, density, autapses, variant):
    model, params, xs, ys, mask = _problem(gate, density=density, autapses=autapses)
    exact = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    got = _grad(model, params, xs, ys, mask, RTRL_VARIANTS[variant])
    assert _max_diff(got, exact) <= TOL
    assert np.abs(exact["cell.threshold"]).max() > 1e-6


def test_the_non_local_term_matters():
    """Dropping the term through y_{t-1} (what e-prop and RFLO do) changes the gradient."""
    model, params, xs, ys, mask = _problem()
    exact = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    layout = model.cell.layout
    steps, cp = [], model.cell_params(params)
    state = model.cell.initial_state(xs.shape[1])
    for t in range(xs.shape[0]):
        state, y, record = model.cell.step_record(cp, state, xs[t])
        _, _, _, dy = model.step_loss(params, y, ys[t], mask[t])
        steps.append((record, dy))
    # RTRL by hand without the non-local part, dense J_t
    B, S, n = xs.shape[1], 1, model.cell.n_hidden
    M = np.zeros((B, S * n, layout.size))
    grad = np.zeros(layout.size)
    for record, dy in steps:
        imm = np.zeros_like(M)
        imm[:, layout.post, np.arange(layout.size)] = layout.immediate(record.jac_params)[:, 0]
        M = record.jac_state.to_dense() @ M + imm
        grad += np.einsum("bs,bsp->p", dy * record.dout[:, 0], M) + layout.readout_direct(
            record, dy
        )
    thr = layout.to_dict(grad, np.float64)["threshold"]
    assert np.abs(thr - exact["cell.threshold"]).max() > 1e-6


@pytest.mark.parametrize("T", [5, 12])
def test_bptt_equals_finite_differences_with_smooth_gate(T):
    model, params, xs, ys, mask = _problem("smooth", T=T)
    _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)

    def loss(p):
        return ns.sequence_grad(model, p, xs, ys, ns.rules.BPTT(), mask=mask)[0]

    h = 1e-6
    fd = np.zeros_like(params["cell.threshold"])
    for i in range(len(fd)):
        for sign in (1, -1):
            p = {k: v.copy() for k, v in params.items()}
            p["cell.threshold"][i] += sign * h
            fd[i] += sign * loss(p) / (2 * h)
    rel = np.abs(fd - g["cell.threshold"]).max() / np.abs(fd).max()
    assert rel <= 1e-6


def test_detach_reset_drops_only_the_reset_term():
    model, params, xs, ys, mask = _problem(detach_reset=True)
    exact = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    for rule in (ns.rules.RTRL(), ns.rules.RTRL(sparse=False)):
        assert _max_diff(_grad(model, params, xs, ys, mask, rule), exact) <= TOL


# -- SnAp ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3])
def test_snap_keeps_the_entries_reachable_within_n_steps(order):
    """theta_j's immediate influence spans j and its postsynaptic units (R_1[:, j]); SnAp-n keeps
    R_n[:, j] for it (snap eq. (13)), one hop more than for a weight of unit j."""
    model, params, xs, _, _ = _problem(density=0.34, n_hidden=8, T=6)
    rule = ns.rules.SnAp(n=order)
    state = rule.init(model, params, xs.shape[1])
    cp, s = model.cell_params(params), model.cell.initial_state(xs.shape[1])
    for t in range(xs.shape[0]):
        s, _, record = model.cell.step_record(cp, s, xs[t])
        state, _ = rule.step(state, record, np.zeros_like(record.dout), params=params)
    layout = model.cell.layout
    M = state.influence[..., layout.thr_cols]  # (B, S, n, n)
    keep = reachability(model.cell.mask, order)
    assert not np.any(M[:, :, ~keep])
    assert np.any(M[:, :, keep] != 0)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_snap_is_exact_for_its_first_n_steps(order):
    model, params, xs, ys, mask = _problem(density=0.34, n_hidden=8, T=order)
    mask[:] = True
    exact = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    assert _max_diff(_grad(model, params, xs, ys, mask, ns.rules.SnAp(n=order)), exact) <= TOL


def test_snap_at_saturation_is_rtrl():
    model, params, xs, ys, mask = _problem(density=0.34, n_hidden=8)
    n = saturation_order(model.cell.mask)
    exact = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    assert n >= 3
    assert _max_diff(_grad(model, params, xs, ys, mask, ns.rules.SnAp(n=n)), exact) <= TOL
    # one order less: the weights' pattern R_{n-2} is still truncated, the thresholds' R_{n-1}
    # is already full, so their gradient is exact
    g = _grad(model, params, xs, ys, mask, ns.rules.SnAp(n=n - 1))
    assert float(np.abs(g["cell.threshold"] - exact["cell.threshold"]).max()) <= TOL
    assert float(np.abs(g["cell.w_rec"] - exact["cell.w_rec"]).max()) > 1e-8


# -- the approximate rules ---------------------------------------------------------------------------
def test_eprop_equals_bptt_without_recurrent_weights():
    model, params, xs, ys, mask = _problem(T=10)
    params["cell.w_rec"] = np.zeros_like(params["cell.w_rec"])
    exact = _grad(model, params, xs, ys, mask, ns.rules.BPTT())
    for rule in (ns.rules.EProp(), ns.rules.RFLO(feedback="symmetric")):
        assert _max_diff(_grad(model, params, xs, ys, mask, rule), exact) <= 1e-12
    assert np.abs(exact["cell.threshold"]).max() > 1e-6


@pytest.mark.parametrize(
    "rule",
    [
        ns.rules.UORO(seed=1),
        ns.rules.RFLO(),
        ns.rules.EProp(),
        ns.rules.BPTT(truncation=3),
        ns.rules.SnAp(n=2),
    ],
)
def test_every_rule_gives_a_threshold_gradient(rule):
    model, params, xs, ys, mask = _problem()
    g = _grad(model, params, xs, ys, mask, rule)
    assert g["cell.threshold"].shape == (6,) and np.all(np.isfinite(g["cell.threshold"]))
    assert np.abs(g["cell.threshold"]).max() > 1e-8


def test_compiled_engine_falls_back_to_the_reference():
    model, params, xs, ys, mask = _problem()
    assert not ns_engine.supports(model, ns.rules.RTRL(), params=params)
    a = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask)
    b = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask, engine="reference")
    assert a[0] == b[0] and _max_diff(a[1], b[1]) == 0.0


def test_stats_count_the_threshold_block():
    model, params, xs, ys, mask = _problem()
    _, _, stats = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask, stats=True)
    _, _, dense = ns.sequence_grad(
        model, params, xs, ys, ns.rules.RTRL(sparse=False), mask=mask, stats=True
    )
    assert stats["influence_size"] == dense["influence_size"]
    assert stats["influence_nnz"] == pytest.approx(dense["influence_nnz"])


def test_model_run_events_use_the_learned_thresholds():
    model, params, xs, _, _ = _problem()
    traj = model.run(params, xs)
    theta = 1 / (1 + np.exp(-params["cell.threshold"]))
    np.testing.assert_array_equal(traj.events, traj.states[:, :, 0] > theta)


def test_training_learns_the_thresholds_and_checkpoints_round_trip(tmp_path):
    model = ns.Model(ns.cells.EGRU(4, 8, learn_threshold=True), n_out=2)
    kw = {"seed": 3, "steps": 300}
    h = ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), **kw)
    assert np.abs(h.params["cell.threshold"] - model.init(seed=3)["cell.threshold"]).max() > 0
    ns.train(
        model,
        ns.rules.RTRL(),
        ns.optim.Adam(1e-2),
        ns.tasks.Copy(),
        seed=3,
        steps=150,
        checkpoint_dir=tmp_path,
        checkpoint_every=50,
    )
    resumed = ns.train(
        model,
        ns.rules.RTRL(),
        ns.optim.Adam(1e-2),
        ns.tasks.Copy(),
        seed=3,
        steps=300,
        checkpoint_dir=tmp_path,
        resume=True,
    )
    for k in h.params:
        np.testing.assert_array_equal(resumed.params[k], h.params[k])


def test_config_cell_options(tmp_path):
    from neurosnap import config as cfg

    path = tmp_path / "thr.toml"
    path.write_text(
        '[model]\ncell = "EGRU"\nn_hidden = 5\n'
        "cell_options = { learn_threshold = true, threshold = 0.25 }\n"
        '[task]\nname = "copy"\n[rule]\nname = "RTRL"\n'
        '[optimizer]\nname = "Adam"\nlr = 0.01\n[train]\nsteps = 20\n'
    )
    model = cfg.build(cfg.load(path))[0]
    assert model.cell.learn_threshold is True
    params = model.init(seed=0)
    np.testing.assert_allclose(1 / (1 + np.exp(-params["cell.threshold"])), 0.25, atol=1e-15)


def test_model_description_round_trip():
    from neurosnap.io.codec import build_model, model_config

    model = ns.Model(ns.cells.EGRU(3, 5, density=0.6, learn_threshold=True, threshold=0.2), n_out=2)
    again = build_model(model_config(model))
    assert again.cell.learn_threshold is True and again.cell.threshold == 0.2
    assert again.param_shapes() == model.param_shapes()
    assert again.cell.config() == model.cell.config()
