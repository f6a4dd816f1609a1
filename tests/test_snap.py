"""SnAp-n (issue 3, item 3): patterns, exactness limits, an independent masked reference, memory."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.rules import RTRL, SnAp
from neurosnap.sparse import kernels, patterns

CELLS = ["LeakyRNN", "EGRU", "LIF", "ALIF"]


def _gates(cell):
    return [None] if cell == "LeakyRNN" else [None, ns.gates.Smooth(4.0)]


def _problem(cell, gate=None, n=9, density=0.25, B=2, T=10, seed=0, **kw):
    C = getattr(ns.cells, cell)
    if gate is not None:
        kw["gate"] = gate
    c = C(n_in=3, n_hidden=n, density=density, seed=seed, **kw)
    model = ns.Model(c, n_out=2)
    params = model.init(seed=seed + 1)
    params["cell.w_rec"] = params["cell.w_rec"] * 3
    rng = np.random.default_rng(seed + 2)
    scale = 30.0 if cell in ("LIF", "ALIF") else 1.5
    xs = rng.normal(size=(T, B, 3)) * scale
    ys = rng.integers(0, 2, size=(T, B))
    return model, params, xs, ys


def _maxdiff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def _bfs_within(mask, source, hops):
    """Units reachable from ``source`` in at most ``hops`` steps, by breadth-first search over the
    edges ``i -> k`` for ``mask[k, i]`` (independent of ``neurosnap.sparse.patterns``)."""
    n = mask.shape[0]
    dist = {source: 0}
    queue = deque([source])
    while queue:
        i = queue.popleft()
        if dist[i] == hops:
            continue
        for k in range(n):
            if mask[k, i] and k not in dist:
                dist[k] = dist[i] + 1
                queue.append(k)
    return set(dist)


def _random_masks():
    rng = np.random.default_rng(7)
    out = [rng.random((12, 12)) < d for d in (0.08, 0.15, 0.3)]
    chain = np.zeros((6, 6), bool)
    chain[np.arange(1, 6), np.arange(5)] = True  # 0 -> 1 -> ... -> 5
    out.append(chain)
    out.append(np.eye(5, dtype=bool))  # diagonal recurrence only
    return out


# -- patterns ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", _random_masks())
def test_masks_equal_breadth_first_search(mask):
    n = mask.shape[0]
    for order in range(1, 8):
        R = patterns.reachability(mask, order - 1)
        rows = patterns.snap_rows(mask, order)
        for q in range(n):
            expected = _bfs_within(mask, q, order - 1)
            assert set(np.flatnonzero(R[:, q])) == expected
            assert set(rows[q].tolist()) == expected


@pytest.mark.parametrize("mask", _random_masks())
def test_masks_grow_monotonically_and_saturate(mask):
    n = mask.shape[0]
    prev = None
    sat = patterns.saturation_order(mask)
    full = patterns.reachability(mask, n)
    for order in range(1, n + 3):
        R = patterns.reachability(mask, order - 1)
        if prev is not None:
            assert np.all(R >= prev)  # nested
        if order >= sat:
            np.testing.assert_array_equal(R, full)
        elif order == sat - 1:
            assert not np.array_equal(R, full)
        prev = R
    if not np.any(mask & ~np.eye(n, dtype=bool)):  # diagonal recurrence: all orders agree
        assert sat == 1


def test_chain_saturation_order():
    chain = _random_masks()[3]
    assert patterns.saturation_order(chain) == 6  # distances up to 5 hops


def test_snap_mask_shape_and_first_order_pattern():
    model, params, _, _ = _problem("ALIF")
    c = model.cell
    m1 = patterns.snap_mask(c.mask, c.layout, 1, c.n_state)
    assert m1.shape == (c.n_state, c.n_hidden, c.layout.size)
    expected = np.zeros((c.n_hidden, c.layout.size), bool)
    expected[c.layout.post, np.arange(c.layout.size)] = True
    for a in range(c.n_state):
        np.testing.assert_array_equal(m1[a], expected)


# -- SnAp against RTRL ---------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_snap_equals_rtrl_at_saturation(cell):
    for gate in _gates(cell):
        model, params, xs, ys = _problem(cell, gate, density=0.2, T=12)
        sat = patterns.saturation_order(model.cell.mask)
        _, g_rtrl = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False))
        for order in (sat, sat + 2):
            _, g = ns.sequence_grad(model, params, xs, ys, SnAp(order))
            assert _maxdiff(g, g_rtrl) <= 1e-10


@pytest.mark.parametrize("cell", CELLS)
def test_blocked_storage_with_full_rows_equals_rtrl(cell):
    """The per-postsynaptic-unit block layout (used below saturation) is exact with full rows."""
    model, params, xs, ys = _problem(cell, density=0.3, T=8)
    c = model.cell
    graph = kernels.RecurrentGraph(c.mask)
    B = xs.shape[1]
    full = [np.arange(c.n_hidden)] * c.n_hidden
    plans = [
        kernels.BlockPlan.from_rowsets(c.layout, graph, c.n_state, B, full),
        kernels.BlockPlan.from_rowsets(c.layout, graph, c.n_state, B, full, chunk=3),
    ]
    ref_rule = RTRL(sparse=False)
    ref = ref_rule.init(model, params, B)
    bufs = [(np.zeros(p.size), np.zeros(p.size)) for p in plans]
    cp = model.cell_params(params)
    s = c.initial_state(B)
    credit_rng = np.random.default_rng(0)
    for t in range(len(xs)):
        s, _, rec = c.step_record(cp, s, xs[t])
        credit = credit_rng.normal(size=rec.dout.shape) * rec.dout
        ref, g_ref = ref_rule.step(ref, rec, credit, params=params)
        for i, plan in enumerate(plans):
            grad = np.zeros(c.layout.size)
            old, new = bufs[i]
            kernels.block_step(old, new, plan, graph, rec.jac_state, rec.jac_params, credit, grad)
            bufs[i] = (new, old)
            g = np.empty_like(grad)
            g[plan.perm] = grad
            np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(plan.to_dense(new), ref.influence, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_snap_exact_for_first_n_steps(cell, order):
    for gate in _gates(cell):
        model, params, xs, ys = _problem(cell, gate, density=0.2, T=order)
        for T in range(1, order + 1):
            _, g = ns.sequence_grad(model, params, xs[:T], ys[:T], SnAp(order))
            _, g_ref = ns.sequence_grad(model, params, xs[:T], ys[:T], RTRL(sparse=False))
            assert _maxdiff(g, g_ref) <= 1e-10


def _masked_reference(model, params, xs, ys, order):
    """Independent SnAp-n: dense Jacobian product, then the BFS pattern (snap eq. (6))."""
    c = model.cell
    layout = c.layout
    B = xs.shape[1]
    S, n, P = c.n_state, c.n_hidden, layout.size
    keep = np.zeros((n, P), bool)
    for p in range(P):
        keep[list(_bfs_within(c.mask, int(layout.post[p]), order - 1)), p] = True
    M = np.zeros((B, S, n, P))
    grad = np.zeros(P)
    cp = model.cell_params(params)
    s = c.initial_state(B)
    for t in range(len(xs)):
        s, y, rec = c.step_record(cp, s, xs[t])
        _, _, _, dy = model.step_loss(params, y, ys[t], np.ones(B, bool))
        credit = dy[:, None, :] * rec.dout
        M = np.matmul(rec.jac_state.to_dense(), M.reshape(B, S * n, P)).reshape(B, S, n, P)
        M[:, :, layout.post, np.arange(P)] += layout.immediate(rec.jac_params)
        M = M * keep
        grad += np.einsum("ban,banp->p", credit, M)
    return grad, M


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_snap_equals_independent_masked_reference(cell, order):
    for gate in _gates(cell):
        model, params, xs, ys = _problem(cell, gate, n=10, density=0.15, T=9)
        grad_ref, M_ref = _masked_reference(model, params, xs, ys, order)
        _, g = ns.sequence_grad(model, params, xs, ys, SnAp(order))
        core = model.cell.layout.from_dict(
            {k[5:]: v for k, v in g.items() if k.startswith("cell.")}
        )
        np.testing.assert_allclose(core, grad_ref, rtol=1e-9, atol=1e-10)
        # the stored influence is the masked reference
        rule = SnAp(order)
        st = rule.init(model, params, xs.shape[1])
        cp = model.cell_params(params)
        s = model.cell.initial_state(xs.shape[1])
        for t in range(len(xs)):
            s, _, rec = model.cell.step_record(cp, s, xs[t])
            st, _ = rule.step(st, rec, np.zeros_like(rec.dout), params=params)
        np.testing.assert_allclose(st.influence, M_ref, rtol=1e-12, atol=1e-12)


def test_snap1_kernel_equals_block_kernel_of_order_one():
    model, params, xs, ys = _problem("ALIF", density=0.4, autapses=True, T=7)
    c = model.cell
    assert np.any(np.diag(c.mask))  # the autapse term is exercised
    graph = kernels.RecurrentGraph(c.mask)
    B = xs.shape[1]
    plan = kernels.BlockPlan.from_rowsets(
        c.layout, graph, c.n_state, B, patterns.snap_rows(c.mask, 1)
    )
    old, new = np.zeros(plan.size), np.zeros(plan.size)
    M1 = np.zeros((B, c.n_state, c.layout.size))
    cp = model.cell_params(params)
    s = c.initial_state(B)
    rng = np.random.default_rng(0)
    for t in range(len(xs)):
        s, _, rec = c.step_record(cp, s, xs[t])
        credit = rng.normal(size=rec.dout.shape)
        g1, g2 = np.zeros(c.layout.size), np.zeros(c.layout.size)
        kernels.snap1_step(M1, c.layout, graph, rec.jac_state, rec.jac_params, credit, g1)
        kernels.block_step(old, new, plan, graph, rec.jac_state, rec.jac_params, credit, g2)
        old, new = new, old
        g2p = np.empty_like(g2)
        g2p[plan.perm] = g2
        np.testing.assert_allclose(g1, g2p, rtol=1e-11, atol=1e-13)
    dense1 = np.zeros((B, c.n_state, c.n_hidden, c.layout.size))
    dense1[:, :, c.layout.post, np.arange(c.layout.size)] = M1
    np.testing.assert_allclose(plan.to_dense(old), dense1, rtol=1e-12, atol=1e-13)


# -- memory --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_snap1_memory_is_order_p(cell):
    model, params, xs, ys = _problem(cell, n=16, density=0.5, B=3)
    st = SnAp(1).init(model, params, 3)
    S, P = model.cell.n_state, model.cell.layout.size
    assert st.data.shape == (3, S, P)
    assert st.stored == S * P
    assert st.plan is None


def test_snap_memory_follows_the_pattern():
    model, params, xs, ys = _problem("EGRU", n=20, density=0.1)
    c = model.cell
    P = c.layout.size
    sizes = []
    sat = patterns.saturation_order(c.mask)
    for order in range(1, sat + 1):
        st = SnAp(order).init(model, params, 2)
        keep = patterns.snap_mask(c.mask, c.layout, order, c.n_state)
        assert st.stored == int(keep.sum())
        sizes.append(st.stored)
    assert sizes == sorted(sizes)
    assert sizes[0] == c.n_state * P
    full = patterns.reachability(c.mask, c.n_hidden)  # what exact RTRL can ever fill
    assert sizes[-1] == c.n_state * int(full[:, c.layout.post].sum()) <= c.n_state * c.n_hidden * P


def test_snap_validation_and_registration():
    with pytest.raises(ValueError):
        SnAp(0)
    with pytest.raises((TypeError, ValueError)):
        SnAp(1.5)
    assert ns.rules.RULES["SnAp"] is SnAp
    assert SnAp() == SnAp(1)
    hash(SnAp(2))


@pytest.mark.parametrize("order", [1, 2])
def test_snap_float32_close_to_float64(order):
    model64, params, xs, ys = _problem("ALIF", n=10, density=0.3, T=6)
    model32 = ns.Model(model64.cell, n_out=2, dtype=np.float32)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    _, g32 = ns.sequence_grad(model32, p32, xs.astype(np.float32), ys, SnAp(order))
    _, g64 = ns.sequence_grad(model64, params, xs, ys, SnAp(order))
    for k in g64:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-3, atol=2e-4)
