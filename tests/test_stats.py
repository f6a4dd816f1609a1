"""Cost accounting (issue 3, item 4): ``sequence_grad(..., stats=True)`` and ``step_stats``."""

from __future__ import annotations

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.rules import BPTT, RTRL, SnAp
from neurosnap.rules import rtrl as rtrl_module
from neurosnap.rules.base import Rule
from neurosnap.sparse import kernels, patterns
from neurosnap.sparse.stats import STAT_KEYS, StatsMeter, plan_macs, step_stats

CELLS = ["LeakyRNN", "EGRU", "LIF", "ALIF"]


def _problem(cell, n=12, density=0.3, B=2, T=8, seed=0, **kw):
    C = getattr(ns.cells, cell)
    c = C(n_in=3, n_hidden=n, density=density, seed=seed, **kw)
    model = ns.Model(c, n_out=2)
    params = model.init(seed=seed + 1)
    params["cell.w_rec"] = params["cell.w_rec"] * 3
    rng = np.random.default_rng(seed + 2)
    scale = 30.0 if cell in ("LIF", "ALIF") else 1.5
    xs = rng.normal(size=(T, B, 3)) * scale
    ys = rng.integers(0, 2, size=(T, B))
    return model, params, xs, ys


def _records(model, params, xs):
    cp = model.cell_params(params)
    s = model.cell.initial_state(xs.shape[1])
    out = []
    for t in range(len(xs)):
        s, y, rec = model.cell.step_record(cp, s, xs[t])
        out.append(rec)
    return out


def _brute_force_sparse_macs(rec, mask, layout, live=None):
    """Count the sparse exact step's multiply-adds from the dense arrays, one entry at a time;
    ``live`` ``(B, P)``: the columns multiplied (default all)."""
    js, jp = rec.jac_state, rec.jac_params
    B, S, _, n = js.local.shape
    P = layout.size
    total = 0
    for b in range(B):
        per_col = 0
        for k in range(n):
            for a in range(S):
                per_col += int(np.count_nonzero(js.local[b, a, :, k]))  # block-diagonal
                if rec.dout[b, a, k] != 0:
                    per_col += 1  # gradient
                if not np.any(js.drec[b, a, :, k] != 0):
                    continue
                for j in range(n):
                    if mask[k, j]:
                        per_col += int(np.count_nonzero(js.dout[b, :, j]))  # recurrent
        total += (P if live is None else int(live[b].sum())) * per_col
        for p in range(P):  # immediate
            if layout.kind[p] == 0:
                v = jp.y_prev[b, layout.pre[p]]
            elif layout.kind[p] == 1:
                v = jp.x[b, layout.pre[p]]
            else:
                v = 1.0
            total += S * (v != 0)
    return total / B


@pytest.mark.parametrize(
    "rule",
    [RTRL(), RTRL(sparse=False), SnAp(1), SnAp(2), BPTT()],
    ids=["rtrl", "rtrl-dense", "snap1", "snap2", "bptt"],
)
@pytest.mark.parametrize("cell", CELLS)
def test_sequence_grad_stats_keys_and_unchanged_gradient(cell, rule):
    model, params, xs, ys = _problem(cell)
    # stats run on the reference path (they need the per-step record): compare with that path
    loss, grads = ns.sequence_grad(model, params, xs, ys, rule, engine="reference")
    loss2, grads2, stats = ns.sequence_grad(model, params, xs, ys, rule, stats=True)
    assert loss2 == loss
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k])
    assert set(stats) == set(STAT_KEYS)
    assert 0.0 <= stats["event_fraction"] <= 1.0 and 0.0 <= stats["support_fraction"] <= 1.0
    assert stats["macs"] > 0
    assert 0 <= stats["influence_nnz"] <= stats["influence_size"]


def test_stats_flag_validated():
    model, params, xs, ys = _problem("EGRU")
    with pytest.raises(TypeError):
        ns.sequence_grad(model, params, xs, ys, RTRL(), stats=1)


@pytest.mark.parametrize("cell", CELLS)
def test_event_and_support_fractions(cell):
    model, params, xs, ys = _problem(cell, T=6)
    _, _, stats = ns.sequence_grad(model, params, xs, ys, BPTT(), stats=True)
    recs = _records(model, params, xs)
    traj = model.run(params, xs)
    assert stats["event_fraction"] == pytest.approx(traj.events.mean())
    support = np.mean([np.any(r.dout != 0, axis=1).mean() for r in recs])
    assert stats["support_fraction"] == pytest.approx(support)
    if cell == "LeakyRNN":
        assert stats["event_fraction"] == 1.0 and stats["support_fraction"] == 1.0


@pytest.mark.parametrize("cell", CELLS)
def test_sparse_rtrl_macs_counted_from_active_units_and_fan_out(cell, monkeypatch):
    monkeypatch.setattr(rtrl_module, "DENSE_SWITCH", 0.0)  # always the sparse kernel
    model, params, xs, ys = _problem(cell, density=0.4)
    c = model.cell
    rule = RTRL(dense_switch=0.0, kernel="gather")  # multiplies every column
    st = rule.init(model, params, xs.shape[1])
    graph = kernels.RecurrentGraph(c.mask)
    for rec in _records(model, params, xs):
        st, _ = rule.step(st, rec, np.ones_like(rec.dout) * rec.dout, params=params)
        cost = rule.cost(st, rec)
        assert cost["macs"] == pytest.approx(_brute_force_sparse_macs(rec, c.mask, c.layout))
        # the generic block-plan counter agrees with the direct formula
        assert plan_macs(rec, st.plan, graph, c.layout) == pytest.approx(cost["macs"])
        dense = RTRL(sparse=False).cost(RTRL(sparse=False).init(model, params, xs.shape[1]), rec)
        assert cost["macs"] <= dense["macs"]
        assert cost["influence_nnz"] == pytest.approx(np.count_nonzero(st.influence) / xs.shape[1])
        assert cost["influence_size"] == c.n_state * c.n_hidden * c.layout.size


def test_dense_rtrl_macs_formula():
    model, params, xs, ys = _problem("ALIF")
    c = model.cell
    S, n, P = c.n_state, c.n_hidden, c.layout.size
    rec = _records(model, params, xs)[0]
    rule = RTRL(sparse=False)
    cost = rule.cost(rule.init(model, params, 2), rec)
    assert cost["macs"] == (S * n) ** 2 * P + S * n * P + S * P


def test_activity_sparsity_reduces_counted_macs(monkeypatch):
    """Silent EGRU units (far below threshold) cost nothing in the recurrent part."""
    monkeypatch.setattr(rtrl_module, "DENSE_SWITCH", 0.0)
    model, params, xs, ys = _problem("EGRU", n=40, density=0.2, T=5)
    quiet = dict(params)
    quiet["cell.bias"] = params["cell.bias"].copy()
    quiet["cell.bias"][2] = -30.0  # candidate ~ -1: c far below threshold, no support
    _, _, loud = ns.sequence_grad(model, params, xs, ys, RTRL(dense_switch=0.0), stats=True)
    _, _, calm = ns.sequence_grad(model, quiet, xs, ys, RTRL(dense_switch=0.0), stats=True)
    assert calm["support_fraction"] < loud["support_fraction"]
    assert calm["macs"] < loud["macs"]
    P, n = model.cell.layout.size, 40
    assert calm["macs"] < 0.5 * n * n * P


@pytest.mark.parametrize("cell", CELLS)
def test_snap_costs(cell, monkeypatch):
    monkeypatch.setattr(rtrl_module, "DENSE_SWITCH", 0.0)
    model, params, xs, ys = _problem(cell, n=14, density=0.15)
    c = model.cell
    S, P = c.n_state, c.layout.size
    _, _, s1 = ns.sequence_grad(model, params, xs, ys, SnAp(1), stats=True)
    _, _, s2 = ns.sequence_grad(model, params, xs, ys, SnAp(2), stats=True)
    _, _, sr = ns.sequence_grad(
        model, params, xs, ys, RTRL(dense_switch=0.0, kernel="gather"), stats=True
    )  # every column, as SnAp
    assert s1["influence_size"] == S * P
    G = c.n_gates
    assert s1["macs"] == S * S * P + 2 * S * P + c.n_hidden * S * (G + S)
    assert s1["influence_size"] <= s2["influence_size"] <= sr["influence_size"]
    assert s2["macs"] <= sr["macs"]
    sat = patterns.saturation_order(c.mask)
    _, _, ss = ns.sequence_grad(model, params, xs, ys, SnAp(sat), stats=True)
    assert ss["influence_nnz"] == pytest.approx(sr["influence_nnz"])
    if patterns.reachability(c.mask, c.n_hidden).all():  # strongly connected: same storage
        assert ss["macs"] == pytest.approx(sr["macs"])
    else:  # SnAp never stores rows exact RTRL keeps at zero
        assert ss["macs"] < sr["macs"]


def test_bptt_default_cost():
    model, params, xs, ys = _problem("LIF")
    c = model.cell
    S, G, n, P = c.n_state, c.n_gates, c.n_hidden, c.layout.size
    _, _, stats = ns.sequence_grad(model, params, xs, ys, BPTT(), stats=True)
    assert stats["influence_nnz"] == 0 and stats["influence_size"] == 0
    assert stats["macs"] == S * S * n + S * G * n + G * n * n + S * n + 2 * S * P


class _Silent(Rule):
    """A rule that reports no costs."""

    def init(self, model, params, batch):
        return None

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        return state, None

    def cost(self, state, record):
        return {}


def test_step_stats_missing_counts_are_nan_and_meter_means():
    model, params, xs, ys = _problem("EGRU", T=3)
    recs = _records(model, params, xs)
    st = step_stats(recs[0], _Silent(), None)
    assert np.isnan(st["macs"]) and np.isnan(st["influence_nnz"])
    assert st["event_fraction"] == pytest.approx(recs[0].events.mean())
    meter = StatsMeter()
    assert np.isnan(meter.means()["macs"])
    meter.add(
        {
            "event_fraction": 0.2,
            "support_fraction": 0.4,
            "influence_nnz": 1.0,
            "influence_size": 2.0,
            "macs": 10.0,
        }
    )
    meter.add(
        {
            "event_fraction": 0.4,
            "support_fraction": 0.6,
            "influence_nnz": 3.0,
            "influence_size": 2.0,
            "macs": 30.0,
        }
    )
    means = meter.means()
    assert means["event_fraction"] == pytest.approx(0.3) and means["macs"] == pytest.approx(20.0)


@pytest.mark.parametrize("cell", CELLS)
def test_panel_kernel_counts_only_the_columns_it_multiplies(cell):
    """The panel kernel does not multiply the columns of presynaptic units and inputs that have
    been silent since the sequence started (still exactly zero): its count leaves them out."""
    model, params, xs, ys = _problem(cell, density=0.4)
    c = model.cell
    B, n = xs.shape[1], c.n_hidden
    rule = RTRL(dense_switch=0.0)
    st = rule.init(model, params, B)
    seen_y = np.zeros((B, n), bool)
    seen_x = np.zeros((B, c.n_in), bool)
    fewer = False
    for rec in _records(model, params, xs):
        st, _ = rule.step(st, rec, np.ones_like(rec.dout) * rec.dout, params=params)
        live = np.ones((B, c.layout.size), bool)
        rec_cols, inp_cols = c.layout.kind == 0, c.layout.kind == 1
        live[:, rec_cols] = seen_y[:, c.layout.pre[rec_cols]]
        live[:, inp_cols] = seen_x[:, c.layout.pre[inp_cols]]
        cost = rule.cost(st, rec)
        assert cost["macs"] == pytest.approx(_brute_force_sparse_macs(rec, c.mask, c.layout, live))
        fewer |= cost["macs"] < _brute_force_sparse_macs(rec, c.mask, c.layout)
        seen_y |= rec.jac_params.y_prev != 0
        seen_x |= rec.jac_params.x != 0
    assert fewer
