"""The sparse exact RTRL engine's panel kernel (issue 12, item 1): panels, zero-panel skipping,
the BLAS path on panels, and the rule's knobs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.rules import RTRL, SnAp
from neurosnap.rules import rtrl as rtrl_module
from neurosnap.sparse import kernels

CELLS = ["LeakyRNN", "EGRU", "LIF", "ALIF"]


def _problem(cell, n=10, density=0.35, B=3, T=6, seed=0, dtype=np.float64):
    c = getattr(ns.cells, cell)(n_in=3, n_hidden=n, density=density, seed=seed)
    model = ns.Model(c, n_out=2, dtype=dtype)
    params = model.init(seed=seed + 1)
    params["cell.w_rec"] = (params["cell.w_rec"] * 3).astype(dtype)
    rng = np.random.default_rng(seed + 2)
    scale = 30.0 if cell in ("LIF", "ALIF") else 1.5
    xs = (rng.normal(size=(T, B, 3)) * scale).astype(dtype)
    ys = rng.integers(0, 2, size=(T, B))
    return model, params, xs, ys


def _records(model, params, xs):
    cp = model.cell_params(params)
    s = model.cell.initial_state(xs.shape[1], model.dtype)
    out = []
    for t in range(len(xs)):
        s, _, rec = model.cell.step_record(cp, s, xs[t])
        out.append(rec)
    return out


def _reference(M, rec, layout):
    """``J_t M + Mbar_t`` with the dense Jacobian (NumPy)."""
    B, S, n, P = M.shape
    ref = np.matmul(rec.jac_state.to_dense(), M.reshape(B, S * n, P)).reshape(M.shape)
    ref[:, :, layout.post, np.arange(P)] += layout.immediate(rec.jac_params)
    return ref


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
@pytest.mark.parametrize("skip_zero", [True, False])
def test_panel_step_equals_dense_product_and_block_step(cell, chunk, skip_zero):
    model, params, xs, _ = _problem(cell)
    c = model.cell
    B, S, n, P = xs.shape[1], c.n_state, c.n_hidden, c.layout.size
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(c.layout, graph, S, B, chunk=chunk, panels=True)
    work = kernels.ExactWork(c.layout, graph, plan, np.float64)
    rng = np.random.default_rng(3)
    credit = rng.normal(size=(B, S, n))
    for rec in _records(model, params, xs)[2:]:
        M = rng.normal(size=(B, S, n, P))
        new = np.full(plan.size, np.nan)  # every entry must be written
        grad = np.zeros(P)
        skipped = kernels.exact_panel_step(
            plan.from_dense(M),
            new,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            credit,
            grad,
            skip_zero=skip_zero,
        )
        assert skipped == 0
        ref = _reference(M, rec, c.layout)
        np.testing.assert_allclose(plan.to_dense(new), ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            grad, np.einsum("ban,banp->p", credit, ref), rtol=1e-10, atol=1e-12
        )
        # the generic block kernel on the same plan gives the same influence
        new2 = np.empty(plan.size)
        kernels.block_step(
            plan.from_dense(M),
            new2,
            plan,
            graph,
            rec.jac_state,
            rec.jac_params,
            credit,
            np.zeros(P),
        )
        np.testing.assert_allclose(new, new2, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("cell", ["EGRU", "ALIF"])
def test_zero_panels_are_skipped_exactly(cell):
    """Panels of the old influence that are exactly zero are not multiplied: the result is the
    same as multiplying them, and the kernel reports how many it skipped."""
    model, params, xs, _ = _problem(cell, B=2)
    c = model.cell
    B, S, n, P = 2, c.n_state, c.n_hidden, c.layout.size
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(c.layout, graph, S, B, chunk=16, panels=True)
    n_panels = len(plan.blk_col0)
    assert n_panels >= 4
    work = kernels.ExactWork(c.layout, graph, plan, np.float64)
    rec = _records(model, params, xs)[3]
    rng = np.random.default_rng(0)
    M = rng.normal(size=(B, S, n, P))
    M[0, :, :, 16:48] = 0.0  # panels 1 and 2 of batch entry 0
    M[1, :, :, :16] = 0.0  # panel 0 of batch entry 1
    M[1, :, :, 16:32] = 0.0
    M[1, 0, 3, 20] = -0.0  # a signed zero is zero
    credit = rng.normal(size=(B, S, n))
    out = {}
    for skip in (True, False):
        new = np.full(plan.size, np.nan)
        grad = np.zeros(P)
        out[skip] = (
            kernels.exact_panel_step(
                plan.from_dense(M),
                new,
                plan,
                work,
                graph,
                rec.jac_state,
                rec.jac_params,
                credit,
                grad,
                skip_zero=skip,
            ),
            new,
            grad,
        )
    assert out[True][0] == 4 and out[False][0] == 0
    np.testing.assert_array_equal(out[True][1], out[False][1])
    np.testing.assert_array_equal(out[True][2], out[False][2])
    np.testing.assert_allclose(
        plan.to_dense(out[True][1]), _reference(M, rec, c.layout), rtol=1e-12, atol=1e-12
    )
    # a single non-zero entry keeps its panel live
    M[0, S - 1, n - 1, 47] = 1e-300
    skipped = kernels.exact_panel_step(
        plan.from_dense(M),
        np.empty(plan.size),
        plan,
        work,
        graph,
        rec.jac_state,
        rec.jac_params,
        credit,
        np.zeros(P),
    )
    assert skipped == 3


def test_rtrl_skips_the_zero_influence_of_a_fresh_sequence():
    """From M_0 = 0 the first step skips every panel; recurrent-weight panels stay zero while
    their presynaptic units have never emitted an event (y_0 = 0)."""
    model, params, xs, ys = _problem("EGRU", n=12, B=1)
    rule = RTRL(dense_switch=0.0, tile_bytes=1)  # 64-column panels
    st = rule.init(model, params, 1)
    n_panels = len(st.plan.blk_col0)
    recs = _records(model, params, xs)
    st, _ = rule.step(st, recs[0], recs[0].dout, params=params)
    assert st.skipped == n_panels
    st, _ = rule.step(st, recs[1], recs[1].dout, params=params)
    rec_panels = int(np.sum(st.plan.col_kind[st.plan.blk_col0 + st.plan.blk_ncol - 1] == 0))
    assert rec_panels > 0 and st.skipped == n_panels + rec_panels
    _, g1 = ns.sequence_grad(model, params, xs, ys, rule)
    _, g2 = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False))
    assert max(float(np.max(np.abs(g1[k] - g2[k]))) for k in g1) <= 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_panel_engine_influence_reads_back(dtype):
    model, params, xs, _ = _problem("LIF", dtype=dtype)
    params = {k: v.astype(dtype) for k, v in params.items()}
    xs = xs.astype(dtype)
    rules = [RTRL(dense_switch=0.0), RTRL(dense_switch=np.inf), RTRL(sparse=False)]
    states = [r.init(model, params, xs.shape[1]) for r in rules]
    for rec in _records(model, params, xs):
        for i, r in enumerate(rules):
            states[i], g = r.step(states[i], rec, rec.dout, params=params)
            assert g.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for st in states[:2]:
        assert st.influence.shape == states[2].influence.shape == st.shape
        assert st.influence.dtype == dtype
        np.testing.assert_allclose(st.influence, states[2].influence, rtol=tol, atol=tol)
    assert states[1].blas_steps == len(xs) and states[0].blas_steps == 0


def test_tile_columns():
    assert kernels.tile_columns(1, 128, 6912, 8, 512 * 1024) == 512
    assert kernels.tile_columns(1, 512, 47616, 4, 512 * 1024) == 256
    assert kernels.tile_columns(3, 100, 10_000, 8, 1) == 64  # at least 64 columns
    assert kernels.tile_columns(1, 10, 40, 8, 10**9) == 40  # at most P
    with pytest.raises(ValueError, match="tile_bytes"):
        kernels.tile_columns(1, 10, 40, 8, 0)


def test_rtrl_knobs_are_validated_and_pickled():
    rule = RTRL(dense_switch=2.5, kernel="gather", tile_bytes=4096)
    back = pickle.loads(pickle.dumps(rule))
    assert back == rule and back.dense_switch == 2.5 and back.kernel == "gather"
    assert RTRL().dense_switch == rtrl_module.DENSE_SWITCH
    assert RTRL().tile_bytes == kernels.TILE_BYTES and RTRL().kernel == "panels"
    assert RTRL(dense_switch=np.inf).dense_switch == np.inf
    with pytest.raises(ValueError, match="dense_switch"):
        RTRL(dense_switch=-1.0)
    with pytest.raises(ValueError, match="dense_switch"):
        RTRL(dense_switch=float("nan"))
    with pytest.raises(TypeError, match="dense_switch"):
        RTRL(dense_switch="4")
    with pytest.raises(ValueError, match="kernel"):
        RTRL(kernel="blas")
    with pytest.raises(TypeError, match="tile_bytes"):
        RTRL(tile_bytes=1.5)
    with pytest.raises(ValueError, match="tile_bytes"):
        RTRL(tile_bytes=0)


def test_panel_step_rejects_bad_buffers_and_plans():
    model, params, xs, _ = _problem("EGRU", B=1)
    c = model.cell
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(c.layout, graph, 1, 1, panels=True)
    work = kernels.ExactWork(c.layout, graph, plan, np.float64)
    rec = _records(model, params, xs)[0]
    buf = np.zeros(plan.size)
    with pytest.raises(ValueError, match="distinct"):
        kernels.exact_panel_step(
            buf,
            buf,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            None,
            np.zeros(c.layout.size),
        )
    rows = [np.array([q]) for q in range(c.n_hidden)]  # SnAp-1 row sets
    snap_plan = kernels.BlockPlan.from_rowsets(c.layout, graph, 1, 1, rows)
    with pytest.raises(ValueError, match="exact plan"):
        kernels.exact_panel_step(
            np.zeros(snap_plan.size),
            np.zeros(snap_plan.size),
            snap_plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            None,
            np.zeros(c.layout.size),
        )


def test_snap_full_pattern_runs_the_panel_engine():
    model, params, xs, ys = _problem("EGRU", n=8, density=1.0)
    _, g1 = ns.sequence_grad(model, params, xs, ys, SnAp(2))
    _, g2 = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False))
    assert max(float(np.max(np.abs(g1[k] - g2[k]))) for k in g1) <= 1e-10


def test_zero_flags_carry_known_zero_panels_across_steps():
    """Panels flagged as known zero are neither scanned nor rewritten; the flags follow what the
    kernel writes, and the rule's results do not depend on them."""
    model, params, xs, ys = _problem("EGRU", n=12, B=2)
    c = model.cell
    B, P = 2, c.layout.size
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(c.layout, graph, 1, B, chunk=16, panels=True)
    nq = len(plan.blk_base)
    work = kernels.ExactWork(c.layout, graph, plan, np.float64)
    recs = _records(model, params, xs)
    old = np.zeros(plan.size)
    new = np.full(plan.size, 7.0)
    zold, znew = np.ones((B, nq), np.uint8), np.ones((B, nq), np.uint8)  # a (false) promise
    rec = recs[0]  # y_0 = 0: recurrent columns get nothing
    skipped = kernels.exact_panel_step(
        old,
        new,
        plan,
        work,
        graph,
        rec.jac_state,
        rec.jac_params,
        None,
        np.zeros(P),
        zero_flags=(zold, znew),
    )
    assert skipped == B * nq
    dense = plan.to_dense(new)
    rec_cols = c.layout.kind == 0
    assert np.all(dense[:, :, :, rec_cols] == 7.0)  # trusted as zero: not rewritten
    imm = c.layout.immediate(rec.jac_params)  # (B, S, P)
    for q, (c0, nc) in enumerate(zip(plan.blk_col0, plan.blk_ncol, strict=True)):
        written = np.any(imm[:, :, c0 : c0 + nc] != 0, axis=(1, 2))
        np.testing.assert_array_equal(znew[:, q], np.where(written, 0, 1))
    assert znew.sum() > 0 and (znew == 0).sum() > 0
    with pytest.raises(ValueError, match="zero_flags"):
        kernels.exact_panel_step(
            old,
            new,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            None,
            np.zeros(P),
            zero_flags=(zold, zold),
        )
    with pytest.raises(ValueError, match="zero_flags"):
        kernels.exact_panel_step(
            old,
            new,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            None,
            np.zeros(P),
            zero_flags=(zold, np.ones((B, nq))),
        )
    # the rule keeps the flags right across steps and engines: same gradients as the reference
    for kw in ({"dense_switch": 0.0}, {"dense_switch": 0.0, "kernel": "gather"}, {}):
        rule = RTRL(tile_bytes=1, **kw)
        _, g1 = ns.sequence_grad(model, params, xs, ys, rule)
        _, g2 = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False))
        assert max(float(np.max(np.abs(g1[k] - g2[k]))) for k in g1) <= 1e-10


def test_rtrl_flags_survive_switching_between_kernel_and_blas():
    """Alternate BLAS and the panel kernel inside one sequence: the influence stays exact."""
    model, params, xs, ys = _problem("EGRU", n=12, B=2, T=8)
    recs = _records(model, params, xs)
    ref_rule = RTRL(sparse=False)
    ref = ref_rule.init(model, params, 2)
    rules = [RTRL(dense_switch=0.0, tile_bytes=1), RTRL(dense_switch=np.inf, tile_bytes=1)]
    st = rules[0].init(model, params, 2)
    for t, rec in enumerate(recs):
        st.dense_switch = rules[t % 2].dense_switch
        st, g = rules[t % 2].step(st, rec, rec.dout, params=params)
        ref, g_ref = ref_rule.step(ref, rec, rec.dout, params=params)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.influence, ref.influence, rtol=1e-12, atol=1e-12)


def test_influence_buffers_are_reused_and_rezeroed():
    """A dropped state's buffers serve the next init (no fresh pages per sequence) and start from
    an exact zero; two live states never share buffers."""
    model, params, xs, ys = _problem("EGRU", n=12, B=2)
    rule = RTRL(dense_switch=0.0, tile_bytes=1)
    recs = _records(model, params, xs)
    st = rule.init(model, params, 2)
    other = rule.init(model, params, 2)
    assert not np.shares_memory(st.data, other.data) and not np.shares_memory(st.data, st.spare)
    for rec in recs:
        st, _ = rule.step(st, rec, rec.dout, params=params)
    assert np.count_nonzero(st.data) > 0
    ids = {id(st.data), id(st.spare)}
    del st
    fresh = rule.init(model, params, 2)
    assert {id(fresh.data), id(fresh.spare)} == ids  # reused ...
    assert np.count_nonzero(fresh.data) == 0 and np.count_nonzero(fresh.spare) == 0  # ... zeroed
    assert np.all(fresh.zero_flags[0] == 1) and np.all(fresh.zero_flags[1] == 1)
    # and a whole sequence from the reused buffers is exact (BLAS steps included)
    for ds in (0.0, np.inf):
        _, g1 = ns.sequence_grad(model, params, xs, ys, RTRL(dense_switch=ds, tile_bytes=1))
        _, g2 = ns.sequence_grad(model, params, xs, ys, RTRL(sparse=False))
        assert max(float(np.max(np.abs(g1[k] - g2[k]))) for k in g1) <= 1e-10


def test_presynaptic_order_groups_columns():
    model, params, xs, _ = _problem("ALIF", n=9)
    layout = model.cell.layout
    perm = kernels.presynaptic_order(layout)
    assert np.array_equal(np.sort(perm), np.arange(layout.size))
    kind, pre = layout.kind[perm], layout.pre[perm]
    assert np.all(np.diff(kind) >= 0)
    rec = kind == 0
    assert np.all(np.diff(pre[rec]) >= 0) and np.all(np.diff(pre[kind == 1]) >= 0)
    graph = kernels.RecurrentGraph(model.cell.mask)
    with pytest.raises(ValueError, match="perm"):
        kernels.BlockPlan.dense(layout, graph, 3, 1, perm=np.zeros(layout.size, dtype=int))


@pytest.mark.parametrize("cell", ["EGRU", "LIF"])
def test_columns_of_silent_presynaptic_units_are_skipped_exactly(cell):
    """Columns whose group (presynaptic unit or input channel) has not been active are exactly
    zero from M_0 = 0 and are not multiplied; the flags are updated from the step's activity."""
    model, params, xs, _ = _problem(cell, n=12, B=2)
    c = model.cell
    B, S, n, P = 2, c.n_state, c.n_hidden, c.layout.size
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(
        c.layout, graph, S, B, chunk=40, panels=True, perm=kernels.presynaptic_order(c.layout)
    )
    work = kernels.ExactWork(c.layout, graph, plan, np.float64)
    rec = _records(model, params, xs)[3]
    rng = np.random.default_rng(1)
    M = rng.normal(size=(B, S, n, P))
    fired = work.new_fired(B)
    fired[:, :-1] = rng.random((B, work.n_groups - 1)) < 0.5  # some groups have been active
    dead = fired[np.arange(B)[:, None], work.col_group[None, :]] == 0  # (B, storage columns)
    dead_params = np.zeros((B, P), bool)
    dead_params[:, plan.perm] = dead
    assert dead_params.any() and not dead_params.all()
    M[np.nonzero(dead_params)[0], :, :, np.nonzero(dead_params)[1]] = 0.0  # what M_0 = 0 implies
    credit = rng.normal(size=(B, S, n))
    results = []
    for fl in (fired.copy(), None):
        new = np.full(plan.size, np.nan)
        grad = np.zeros(P)
        kernels.exact_panel_step(
            plan.from_dense(M),
            new,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            credit,
            grad,
            fired=fl,
        )
        results.append((new, grad, fl))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    ref = _reference(M, rec, c.layout)
    np.testing.assert_allclose(plan.to_dense(results[0][0]), ref, rtol=1e-12, atol=1e-12)
    after = results[0][2]
    jp = rec.jac_params
    np.testing.assert_array_equal(after[:, :n], fired[:, :n] | (jp.y_prev != 0))
    np.testing.assert_array_equal(after[:, n:-1], fired[:, n:-1] | (jp.x != 0))
    # the skip is real: claiming a group silent when its columns are not zero changes the result
    M2 = rng.normal(size=(B, S, n, P))
    new = np.empty(plan.size)
    kernels.exact_panel_step(
        plan.from_dense(M2),
        new,
        plan,
        work,
        graph,
        rec.jac_state,
        rec.jac_params,
        credit,
        np.zeros(P),
        fired=fired.copy(),
    )
    assert not np.allclose(plan.to_dense(new), _reference(M2, rec, c.layout))
    with pytest.raises(ValueError, match="fired"):
        kernels.exact_panel_step(
            plan.from_dense(M2),
            new,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            credit,
            np.zeros(P),
            fired=np.ones((B, 3)),
        )


def test_rtrl_tracks_fired_groups_over_a_sequence():
    model, params, xs, ys = _problem("EGRU", n=16, density=0.3, B=2, T=9)
    for kw in (
        {"dense_switch": 0.0},
        {"dense_switch": 0.0, "kernel": "gather"},
        {"dense_switch": np.inf},
    ):
        rule = RTRL(tile_bytes=1, **kw)
        st = rule.init(model, params, 2)
        n = model.cell.n_hidden
        seen = np.zeros((2, n), bool)
        for rec in _records(model, params, xs):
            st, _ = rule.step(st, rec, rec.dout, params=params)
            seen |= rec.jac_params.y_prev != 0
            np.testing.assert_array_equal(st.fired[:, :n] == 1, seen)
        assert st.fired[:, -1].all()


def test_silent_columns_are_not_rewritten_when_new_is_known_zero_there():
    model, params, xs, _ = _problem("EGRU", n=12, B=2)
    c = model.cell
    B, S, n, P = 2, 1, 12, c.layout.size
    graph = kernels.RecurrentGraph(c.mask)
    plan = kernels.BlockPlan.dense(
        c.layout, graph, S, B, chunk=40, panels=True, perm=kernels.presynaptic_order(c.layout)
    )
    work = kernels.ExactWork(c.layout, graph, plan, np.float64)
    rec = _records(model, params, xs)[3]
    rng = np.random.default_rng(4)
    fired = work.new_fired(B)
    fired[:, :-1] = rng.random((B, work.n_groups - 1)) < 0.5
    dead = np.zeros((B, P), bool)
    dead[:, plan.perm] = fired[np.arange(B)[:, None], work.col_group[None, :]] == 0
    M = rng.normal(size=(B, S, n, P))
    M[np.nonzero(dead)[0], :, :, np.nonzero(dead)[1]] = 0.0
    out = []
    for keep in (False, True):
        marker = np.zeros((B, S, n, P))
        marker[np.nonzero(dead)[0], :, :, np.nonzero(dead)[1]] = 5.0  # visible if untouched
        new = plan.from_dense(marker)
        kernels.exact_panel_step(
            plan.from_dense(M),
            new,
            plan,
            work,
            graph,
            rec.jac_state,
            rec.jac_params,
            None,
            np.zeros(P),
            fired=fired.copy(),
            new_zero_where_silent=keep,
        )
        out.append(plan.to_dense(new))
    ref = _reference(M, rec, c.layout)
    np.testing.assert_allclose(out[0], ref, rtol=1e-12, atol=1e-12)  # rewritten as zeros
    # dead columns of panels with a live column are not written at all (a panel that is all zero
    # in ``old`` takes the zero-panel path instead and is rewritten as zeros)
    panel_of = np.empty(P, dtype=int)
    for q, (c0, nc) in enumerate(zip(plan.blk_col0, plan.blk_ncol, strict=True)):
        panel_of[plan.perm[c0 : c0 + nc]] = q
    live_panel = np.zeros((B, len(plan.blk_col0)), bool)
    for b in range(B):
        np.logical_or.at(live_panel[b], panel_of, ~dead[b])
    kept = dead & live_panel[np.arange(B)[:, None], panel_of[None, :]]
    assert kept.any()
    mask = np.broadcast_to(kept[:, None, None, :], ref.shape) & (ref == 0)
    assert np.all(out[1][mask] == 5.0)  # not written at all
    live = ~np.broadcast_to(dead[:, None, None, :], ref.shape)
    np.testing.assert_allclose(out[1][live], ref[live], rtol=1e-12, atol=1e-12)
