"""Each cell's step record against finite differences of one step (float64, Smooth gates).

- ``record.jac_state.to_dense()`` (B, S*n, S*n) == d step(params, s, x) / d s, where J_t uses the
  output derivative of the PREVIOUS state (the output of s_{t-1} feeds the recurrence);
- ``layout.immediate(record.jac_params)`` (B, S, P) == d step / d theta, column p in rows (a, post[p])
  and exactly zero in the rows of every other unit;
- ``record.dout`` == d out(s_t) / d s_t and ``record.jac_state.dout`` == d out(s_{t-1}) / d s_{t-1};
- ``matvec(v) == to_dense() @ v``, ``matvec_transpose(lam) == to_dense().T @ lam`` and the sparse influence kernel == dense product,
  for Heaviside (surrogate) gates too.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_KINDS, cell_configs, make_cell, random_params
from reference import sparse_products

import neurosnap as ns
from neurosnap.sparse import kernels

B = 3
EPS = 1e-6


def _smooth_cell(kind, **kw):
    overrides = {} if kind == "LeakyRNN" else dict(detach_reset=False)
    overrides.update(kw)
    return make_cell(kind, "smooth", n_in=3, n_hidden=5, density=0.6, seed=1, **overrides)


def random_state(cell, rng, batch=B):
    """A state away from rest: near threshold for threshold cells, both sides of it."""
    S, n = cell.n_state, cell.n_hidden
    s = np.empty((batch, S, n))
    if isinstance(cell, ns.cells.LeakyRNN):
        s[:, 0] = 0.8 * rng.standard_normal((batch, n))
    elif isinstance(cell, ns.cells.EGRU):
        s[:, 0] = cell.threshold + 0.4 * rng.standard_normal((batch, n))
    else:
        s[:, 0] = cell.v_th + 0.7 * rng.standard_normal((batch, n))
        s[:, 1] = 5.0 * rng.standard_normal((batch, n))
        if S == 3:
            s[:, 2] = np.abs(0.3 * rng.standard_normal((batch, n)))
    return s


def _setup(cell, seed=0):
    model = ns.Model(cell, n_out=2)
    cp = model.cell_params(random_params(model, seed=seed))
    if not cell.has_bias:
        assert "bias" not in cp
    rng = np.random.default_rng(seed + 1)
    state = random_state(cell, rng)
    x = rng.standard_normal((B, cell.n_in))
    return cp, state, x


def _close(a, b, rtol=1e-6, atol=1e-8):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_jac_state_matches_finite_differences(kind):
    cell = _smooth_cell(kind)
    cp, state, x = _setup(cell)
    _, _, record = cell.step_record(cp, state, x)
    S, n = cell.n_state, cell.n_hidden
    dense = record.jac_state.to_dense()
    assert dense.shape == (B, S * n, S * n)
    fd = np.empty_like(dense)
    for c in range(S):
        for j in range(n):
            sp, sm = state.copy(), state.copy()
            sp[:, c, j] += EPS
            sm[:, c, j] -= EPS
            diff = (cell.step(cp, sp, x)[0] - cell.step(cp, sm, x)[0]) / (2 * EPS)  # (B, S, n)
            fd[:, :, c * n + j] = diff.reshape(B, S * n)
    _close(dense, fd)
    # the recurrent part is really exercised: off-diagonal blocks are non-zero
    off = dense.reshape(B, S, n, S, n).copy()
    for i in range(n):
        off[:, :, i, :, i] = 0
    assert np.abs(off).max() > 1e-3


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_jac_params_matches_finite_differences(kind):
    cell = _smooth_cell(kind, bias=True)
    cp, state, x = _setup(cell)
    _, _, record = cell.step_record(cp, state, x)
    layout = cell.layout
    S, n = cell.n_state, cell.n_hidden
    imm = layout.immediate(record.jac_params)
    assert imm.shape == (B, S, layout.size)
    # layout bookkeeping: every existing parameter once, round trip exact
    assert layout.size == cell.n_gates * (cell.mask.sum() + n * cell.n_in + n)
    vec = layout.from_dict(cp)
    back = layout.to_dict(vec, np.float64)
    for k in cp:
        np.testing.assert_array_equal(back[k], cp[k])
    for p in range(layout.size):
        vp, vm = vec.copy(), vec.copy()
        vp[p] += EPS
        vm[p] -= EPS
        diff = (
            cell.step(layout.to_dict(vp, np.float64), state, x)[0]
            - cell.step(layout.to_dict(vm, np.float64), state, x)[0]
        ) / (2 * EPS)
        i = layout.post[p]
        _close(imm[:, :, p], diff[:, :, i])
        others = np.delete(diff, i, axis=2)
        assert np.all(others == 0.0), f"parameter {p} changes units other than post[p]={i}"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_dout_matches_finite_differences(kind):
    cell = _smooth_cell(kind)
    cp, state, x = _setup(cell)
    new, y, record = cell.step_record(cp, state, x)
    S, n = cell.n_state, cell.n_hidden
    for s, dout in ((new, record.dout), (state, record.jac_state.dout)):
        assert dout.shape == (B, S, n)
        y0 = cell.output(s)[0]
        for c in range(S):
            for j in range(n):
                sp, sm = s.copy(), s.copy()
                sp[:, c, j] += EPS
                sm[:, c, j] -= EPS
                diff = (cell.output(sp)[0] - cell.output(sm)[0]) / (2 * EPS)  # (B, n)
                _close(dout[:, c, j], diff[:, j])
                assert np.all(np.delete(diff, j, axis=1) == 0.0)
        assert y0.shape == (B, n)
    np.testing.assert_array_equal(y, cell.output(new)[0])
    np.testing.assert_array_equal(record.jac_params.y_prev, cell.output(state)[0])
    np.testing.assert_array_equal(record.jac_params.x, x)


@pytest.mark.parametrize("kind,gate", cell_configs(gates=("heaviside", "fast_sigmoid", "smooth")))
def test_record_consistency(kind, gate):
    """step == step_record; matvec and matvec_transpose == the dense Jacobian and its transpose;
    events/support bookkeeping."""
    cell = make_cell(kind, gate, n_hidden=6, density=0.5, seed=2)
    cp, state, x = _setup(cell, seed=4)
    new, y, record = cell.step_record(cp, state, x)
    new2, y2 = cell.step(cp, state, x)
    np.testing.assert_array_equal(new, new2)
    np.testing.assert_array_equal(y, y2)
    S, n = cell.n_state, cell.n_hidden
    rng = np.random.default_rng(0)
    lam = rng.standard_normal((B, S, n))
    dense = record.jac_state.to_dense()
    expect = np.einsum("bij,bi->bj", dense, lam.reshape(B, S * n)).reshape(B, S, n)
    np.testing.assert_allclose(record.jac_state.matvec_transpose(lam), expect, rtol=0, atol=1e-12)
    v = rng.standard_normal((B, S, n))
    expect = np.einsum("bij,bj->bi", dense, v.reshape(B, S * n)).reshape(B, S, n)
    np.testing.assert_allclose(record.jac_state.matvec(v), expect, rtol=0, atol=1e-12)
    # events and support
    assert record.events.dtype == np.bool_ and record.events.shape == (B, n)
    np.testing.assert_array_equal(record.support, np.any(record.dout != 0, axis=1))
    _, events = cell.output(new)
    np.testing.assert_array_equal(events, record.events)
    if kind != "LeakyRNN" and gate != "smooth":
        # Heaviside: events are exactly the non-zero outputs; silent units outside the support
        # contribute no column to the recurrent part of J_{t+1}
        np.testing.assert_array_equal(record.events, y != 0)
        assert np.all(np.isin(y, [0.0, 1.0])) or kind == "EGRU"
        prev_support = np.any(record.jac_state.dout != 0, axis=1)  # (B, n)
        if gate == "heaviside":
            assert not prev_support.all(), "state should put some units outside the support"
        J = dense.reshape(B, S, n, S, n)
        for b in range(B):
            for j in np.flatnonzero(~prev_support[b]):
                col = J[b, :, :, :, j].copy()
                col[:, j] = 0  # drop the local block
                assert np.all(col == 0)


@pytest.mark.parametrize("kind,gate", cell_configs(gates=("heaviside", "smooth")))
def test_sparse_kernel_equals_dense_product(kind, gate):
    cell = make_cell(kind, gate, n_hidden=6, density=0.5, seed=3)
    cp, state, x = _setup(cell, seed=6)
    _, _, record = cell.step_record(cp, state, x)
    S, n, P = cell.n_state, cell.n_hidden, cell.layout.size
    M = np.random.default_rng(1).standard_normal((B, S, n, P))
    dense = np.matmul(record.jac_state.to_dense(), M.reshape(B, S * n, P)).reshape(B, S, n, P)
    graph = kernels.RecurrentGraph(cell.mask)
    np.testing.assert_allclose(
        kernels.propagate_influence(M, record.jac_state, graph), dense, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        sparse_products.propagate_influence_reference(M, record.jac_state, graph),
        dense,
        rtol=0,
        atol=1e-12,
    )
