"""Exactness identities of the foundation (DESIGN.md, "Exactness is a feature"), float64:

- dense RTRL == BPTT (max abs diff <= 1e-10) for every cell, gate, loss, density, length;
- sparse RTRL == dense RTRL;
- with Smooth gates and the true (non-detached) reset derivative: BPTT == central finite differences.

Every configuration also checks that it is not vacuous: threshold cells emit events and have units
inside the surrogate's support, gradients are non-zero, and the recurrent weights get credit.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    ALL_KINDS,
    THRESHOLD_KINDS,
    cell_configs,
    make_batch,
    make_cell,
    max_abs_diff,
    random_params,
    sequence_loss,
)

import neurosnap as ns

TOL = 1e-10
B = 3
N_HIDDEN = 6


def _setup(kind, gate, density, loss, T, seed=0, **overrides):
    cell = make_cell(kind, gate, n_hidden=N_HIDDEN, density=density, seed=seed, **overrides)
    model = ns.Model(cell, n_out=3, loss=loss)
    params = random_params(model, seed=seed)
    xs, ys, mask = make_batch(model, T, B, seed=seed + 7)
    return model, params, xs, ys, mask


def _check_not_vacuous(model, params, xs, grads, T):
    """Events occur (threshold cells), units sit in the support, gradients are non-trivial."""
    cell = model.cell
    traj = model.run(params, xs)
    if not isinstance(cell, ns.cells.LeakyRNN):
        assert traj.events.any(), "threshold cell never emitted an event: the test would be vacuous"
        if T > 1:
            assert not traj.events.all(), "every unit fires every step: the test would be vacuous"
        # some unit inside the surrogate's support at some step (non-zero dout)
        state = cell.initial_state(xs.shape[1])
        cp = model.cell_params(params)
        support = False
        for t in range(xs.shape[0]):
            state, _, record = cell.step_record(cp, state, xs[t])
            support |= bool(record.support.any())
        assert support
    for name in ("cell.w_in", "readout.weight"):
        assert np.abs(grads[name]).max() > 1e-8, name
    if T >= 7:
        # credit through the recurrence (needs events before the last step)
        assert np.abs(grads["cell.w_rec"]).max() > 1e-8


def _check_grad_structure(model, params, grads):
    assert set(grads) == set(params)
    for k in params:
        assert grads[k].shape == params[k].shape, k
        assert grads[k].dtype == params[k].dtype, k
        assert np.all(np.isfinite(grads[k])), k
    missing = ~model.cell.mask
    assert np.all(grads["cell.w_rec"][:, missing] == 0.0), "gradient on a non-existent weight"


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("density", [1.0, 0.3])
@pytest.mark.parametrize("T", [1, 7, 40])
@pytest.mark.parametrize("kind,gate", cell_configs())
def test_rtrl_equals_bptt(kind, gate, T, density, loss):
    model, params, xs, ys, mask = _setup(kind, gate, density, loss, T)
    l_b, g_b = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    l_d, g_d = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False), mask=mask)
    l_s, g_s = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=True), mask=mask)
    for g in (g_b, g_d, g_s):
        _check_grad_structure(model, params, g)
    _check_not_vacuous(model, params, xs, g_b, T)
    assert l_b == pytest.approx(l_d, abs=1e-12) and l_b == pytest.approx(l_s, abs=1e-12)
    assert l_b == pytest.approx(sequence_loss(model, params, xs, ys, mask), rel=1e-12, abs=1e-12)
    assert max_abs_diff(g_d, g_b) <= TOL
    assert max_abs_diff(g_s, g_d) <= TOL


# variants of the reset / adaptation conventions and of the surrogate: identities hold for any
# consistent derivative convention
VARIANTS = [
    ("EGRU", "heaviside", dict(detach_reset=True)),
    ("EGRU", "fast_sigmoid", {}),
    ("LIF", "heaviside", dict(detach_reset=False)),
    ("LIF", "fast_sigmoid", dict(bias=True)),
    ("LIF-subtract", "heaviside", dict(detach_reset=False, autapses=True)),
    ("ALIF", "heaviside", dict(detach_reset=False, detach_adaptation=True)),
    ("ALIF-subtract", "fast_sigmoid", dict(detach_reset=False, bias=True)),
    ("LIF", "heaviside", dict(refractory=3e-3)),
    ("LIF-subtract", "fast_sigmoid", dict(refractory=4e-3, detach_reset=False)),
    ("ALIF", "heaviside", dict(refractory=2e-3, detach_reset=False)),
    ("LIF", "heaviside", dict(delay=3)),
    ("ALIF-subtract", "heaviside", dict(delay=2, refractory=3e-3, detach_reset=False)),
    ("LeakyRNN", "none", dict(alpha=1.0, bias=False)),
    ("LeakyRNN", "none", dict(autapses=False)),
]


@pytest.mark.parametrize(
    "kind,gate,overrides", VARIANTS, ids=[f"{k}-{g}-{'-'.join(o)}" for k, g, o in VARIANTS]
)
def test_rtrl_equals_bptt_variants(kind, gate, overrides):
    T = 25
    for density, loss in [(1.0, "cross_entropy"), (0.3, "mse")]:
        model, params, xs, ys, mask = _setup(kind, gate, density, loss, T, seed=3, **overrides)
        _, g_b = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
        _, g_d = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False), mask=mask)
        _, g_s = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask)
        _check_grad_structure(model, params, g_s)
        _check_not_vacuous(model, params, xs, g_b, T)
        assert max_abs_diff(g_d, g_b) <= TOL
        assert max_abs_diff(g_s, g_d) <= TOL


def test_mask_selects_steps():
    """A zero mask gives zero loss and zero gradients; the mask is honoured per (t, b)."""
    model, params, xs, ys, mask = _setup("EGRU", "heaviside", 1.0, "cross_entropy", 7)
    loss, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=np.zeros_like(mask))
    assert loss == 0.0
    assert all(np.all(v == 0) for v in g.values())
    # loss over a mask == sum of the losses of its single entries (gradients are linear too)
    _, g_full = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for t, b in zip(*np.nonzero(mask), strict=True):
        single = np.zeros_like(mask)
        single[t, b] = True
        _, g1 = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=single)
        for k in total:
            total[k] += g1[k]
    assert max_abs_diff(total, g_full) <= 1e-12


def test_batch_entries_independent():
    """The batch gradient is the sum of per-sequence gradients (no cross-talk between entries)."""
    model, params, xs, ys, mask = _setup("ALIF", "heaviside", 0.3, "mse", 12)
    _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for b in range(B):
        _, g1 = ns.sequence_grad(
            model,
            params,
            xs[:, b : b + 1],
            ys[:, b : b + 1],
            ns.rules.RTRL(),
            mask=mask[:, b : b + 1],
        )
        for k in total:
            total[k] += g1[k]
    assert max_abs_diff(total, g) <= 1e-12


# -- finite differences -----------------------------------------------------------------------------


def _random_direction(model, params, rng):
    d = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    d["cell.w_rec"] = d["cell.w_rec"] * model.cell.mask  # only existing weights move
    return d


def _directional_fd(model, params, xs, ys, mask, d, eps):
    plus = {k: params[k] + eps * d[k] for k in params}
    minus = {k: params[k] - eps * d[k] for k in params}
    return (
        sequence_loss(model, plus, xs, ys, mask) - sequence_loss(model, minus, xs, ys, mask)
    ) / (2 * eps)


FD_CONFIGS = [(kind, {} if kind == "LeakyRNN" else dict(detach_reset=False)) for kind in ALL_KINDS]


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("kind,overrides", FD_CONFIGS, ids=[k for k, _ in FD_CONFIGS])
def test_bptt_equals_finite_differences(kind, overrides, loss):
    """With Smooth gates the model is differentiable: BPTT is its exact gradient."""
    T = 12
    model, params, xs, ys, mask = _setup(kind, "smooth", 0.5, loss, T, seed=5, **overrides)
    loss_b, g = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    assert loss_b == pytest.approx(sequence_loss(model, params, xs, ys, mask), rel=1e-12)
    rng = np.random.default_rng(99)
    for _ in range(3):
        d = _random_direction(model, params, rng)
        exact = sum(float(np.sum(g[k] * d[k])) for k in params)
        fd = _directional_fd(model, params, xs, ys, mask, d, eps=1e-5)
        assert abs(fd - exact) <= 1e-6 * max(abs(exact), 1e-3), (fd, exact)
    # and per parameter group: a direction that moves only the recurrent weights
    d = {k: np.zeros_like(v) for k, v in params.items()}
    d["cell.w_rec"] = rng.standard_normal(params["cell.w_rec"].shape) * model.cell.mask
    exact = float(np.sum(g["cell.w_rec"] * d["cell.w_rec"]))
    fd = _directional_fd(model, params, xs, ys, mask, d, eps=1e-5)
    assert abs(exact) > 1e-6
    assert abs(fd - exact) <= 1e-6 * abs(exact), (fd, exact)


@pytest.mark.parametrize("kind", ["EGRU", "LIF"])
def test_detached_reset_differs_from_finite_differences(kind):
    """The detached (Norse-style) reset is not the true derivative: the FD check must see that."""
    T = 12
    model, params, xs, ys, mask = _setup(kind, "smooth", 1.0, "mse", T, seed=5, detach_reset=True)
    _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    rng = np.random.default_rng(99)
    d = _random_direction(model, params, rng)
    exact = sum(float(np.sum(g[k] * d[k])) for k in params)
    fd = _directional_fd(model, params, xs, ys, mask, d, eps=1e-5)
    assert abs(fd - exact) > 1e-4 * abs(fd)


@pytest.mark.parametrize("kind", THRESHOLD_KINDS)
def test_float32_same_code_path(kind):
    """float32 model runs the same code and agrees with float64 to single precision."""
    cell = make_cell(kind, "smooth", n_hidden=N_HIDDEN)
    m64 = ns.Model(cell, n_out=3, loss="mse")
    m32 = ns.Model(cell, n_out=3, loss="mse", dtype=np.float32)
    p64 = random_params(m64, seed=1)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    xs, ys, mask = make_batch(m64, 6, B, seed=2)
    l64, g64 = ns.sequence_grad(m64, p64, xs, ys, ns.rules.RTRL(), mask=mask)
    l32, g32 = ns.sequence_grad(m32, p32, xs, ys, ns.rules.RTRL(), mask=mask)
    assert all(g32[k].dtype == np.float32 for k in g32)
    scale = max(np.abs(v).max() for v in g64.values())
    assert max_abs_diff({k: v.astype(np.float64) for k, v in g32.items()}, g64) <= 1e-3 * scale
    assert l32 == pytest.approx(l64, rel=1e-4)


# -- edge sizes (property-based) --------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    kind=st.sampled_from(ALL_KINDS),
    n_hidden=st.integers(1, 6),
    n_in=st.integers(1, 3),
    batch=st.integers(1, 3),
    T=st.integers(1, 9),
    density=st.sampled_from([0.01, 0.5, 1.0]),
    loss=st.sampled_from(["cross_entropy", "mse"]),
    seed=st.integers(0, 50),
)
def test_rtrl_equals_bptt_edge_sizes(kind, n_hidden, n_in, batch, T, density, loss, seed):
    """Tiny and degenerate sizes (one unit, one input, batch 1, one connection per unit)."""
    overrides = {} if kind in ("LeakyRNN", "EGRU") else dict(autapses=True)
    cell = make_cell(
        kind, "heaviside", n_in=n_in, n_hidden=n_hidden, density=density, seed=seed, **overrides
    )
    model = ns.Model(cell, n_out=2, loss=loss)
    params = random_params(model, seed=seed)
    xs, ys, mask = make_batch(model, T, batch, seed=seed)
    _, g_b = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    _, g_d = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False), mask=mask)
    _, g_s = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask)
    _check_grad_structure(model, params, g_s)
    assert max_abs_diff(g_d, g_b) <= TOL
    assert max_abs_diff(g_s, g_d) <= TOL
