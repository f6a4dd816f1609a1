"""neurosnap's hand-written Jacobians (through BPTT and RTRL) == torch autograd of an independent
implementation (``tests/reference/torch_cells.py``) with the same surrogate and detach conventions."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import cell_configs, make_batch, make_cell, max_abs_diff, random_params  # noqa: E402
from reference import torch_cells as ref  # noqa: E402

import neurosnap as ns  # noqa: E402
from neurosnap.core.layout import BIAS, INP, REC  # noqa: E402

TOL = 1e-10


def reference_gate(gate):
    if isinstance(gate, ns.gates.Smooth):
        return ref.Gate(kind="smooth", beta=gate.beta)
    assert isinstance(gate, ns.gates.Heaviside)
    s = gate.surrogate
    if isinstance(s, ns.gates.Triangle):
        return ref.Gate(kind="heaviside", surrogate="triangle", gamma=s.gamma, param=s.width)
    if isinstance(s, ns.gates.FastSigmoid):
        return ref.Gate(kind="heaviside", surrogate="fast_sigmoid", gamma=s.gamma, param=s.slope)
    raise TypeError(s)


def reference_cell(cell):
    """The torch twin of a neurosnap cell (hyperparameters copied, equations written again)."""
    if isinstance(cell, ns.cells.LeakyRNN):
        return ref.LeakyRNN(alpha=cell.alpha)
    gate = reference_gate(cell.gate)
    if isinstance(cell, ns.cells.EGRU):
        return ref.EGRU(
            gate=gate,
            threshold=cell.threshold,
            detach_reset=cell.detach_reset,
            learn_threshold=cell.learn_threshold,
        )
    common = dict(
        gate=gate,
        dt=cell.dt,
        tau_mem=cell.tau_mem,
        tau_syn=cell.tau_syn,
        v_th=cell.v_th,
        v_leak=cell.v_leak,
        v_reset=cell.v_reset,
        reset=cell.reset,
        detach_reset=cell.detach_reset,
        refractory_steps=cell.refractory_steps,
        delay=cell.delay,
    )
    if isinstance(cell, ns.cells.ALIF):
        return ref.ALIF(
            **common,
            tau_adapt=cell.tau_adapt,
            beta=cell.beta,
            detach_adaptation=cell.detach_adaptation,
        )
    if isinstance(cell, ns.cells.LIF) and cell.tau_syn_inh is not None:
        return ref.LIF2(**common, tau_syn_inh=cell.tau_syn_inh)
    if isinstance(cell, ns.cells.LIF):
        return ref.LIF(**common)
    raise TypeError(cell)


def _compare(model, params, xs, ys, mask, rules=(ns.rules.BPTT(), ns.rules.RTRL())):
    cell = model.cell
    loss_t, g_t = ref.bptt_grads(reference_cell(cell), params, xs, ys, mask, model.loss)
    # torch differentiates every entry of the dense w_rec; only existing weights are parameters
    g_t["cell.w_rec"] = g_t["cell.w_rec"] * cell.mask
    assert np.abs(g_t["cell.w_rec"]).max() > 1e-8, "no credit through the recurrence: vacuous"
    assert np.abs(g_t["cell.w_in"]).max() > 1e-8
    for rule in rules:
        loss, g = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
        assert loss == pytest.approx(loss_t, rel=1e-12, abs=1e-12)
        assert max_abs_diff(g, g_t) <= TOL, rule


def _events_happen(model, params, xs):
    if isinstance(model.cell, ns.cells.LeakyRNN):
        return
    ev = model.run(params, xs).events
    assert ev.any() and not ev.all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind,gate", cell_configs(gates=("heaviside", "fast_sigmoid")))
def test_torch_autograd_equals_bptt_and_rtrl(kind, gate, seed):
    loss = "cross_entropy" if seed % 2 == 0 else "mse"
    density = (1.0, 0.5, 0.3)[seed]
    cell = make_cell(kind, gate, n_in=3, n_hidden=6, density=density, seed=seed)
    model = ns.Model(cell, n_out=3, loss=loss)
    params = random_params(model, seed=seed)
    xs, ys, mask = make_batch(model, T=20, B=3, seed=seed + 11)
    _events_happen(model, params, xs)
    _compare(model, params, xs, ys, mask)


VARIANTS = [
    ("EGRU", "heaviside", dict(detach_reset=True)),
    ("EGRU", "smooth", dict(threshold=0.5)),
    ("EGRU-thr", "heaviside", {}),
    ("EGRU-thr", "fast_sigmoid", dict(autapses=False)),
    ("EGRU-thr", "smooth", dict(threshold=0.5)),
    ("EGRU-thr", "heaviside", dict(detach_reset=True)),
    ("LIF", "heaviside", dict(detach_reset=False, bias=True)),
    ("LIF-subtract", "fast_sigmoid", dict(detach_reset=False, v_leak=0.2, v_reset=-0.1)),
    ("LIF", "smooth", dict(v_reset=0.3, detach_reset=False, tau_syn=2e-3)),
    ("ALIF", "heaviside", dict(detach_reset=False, detach_adaptation=True)),
    ("ALIF-subtract", "heaviside", dict(detach_reset=False, beta=0.7, tau_adapt=0.05)),
    ("ALIF", "smooth", dict(detach_adaptation=True)),
    ("LIF", "heaviside", dict(refractory=3e-3, detach_reset=False)),
    ("LIF", "smooth", dict(refractory=2e-3)),
    ("ALIF-subtract", "fast_sigmoid", dict(refractory=4e-3, detach_reset=False)),
    ("LIF", "heaviside", dict(delay=3, detach_reset=False)),
    ("LIF", "smooth", dict(delay=2, refractory=3e-3)),
    ("ALIF", "fast_sigmoid", dict(delay=4, refractory=2e-3, bias=True)),
    ("LeakyRNN", "none", dict(alpha=0.3, autapses=False)),
]


@pytest.mark.parametrize(
    "kind,gate,overrides", VARIANTS, ids=[f"{k}-{g}-{'-'.join(o)}" for k, g, o in VARIANTS]
)
def test_torch_autograd_variants(kind, gate, overrides):
    cell = make_cell(kind, gate, n_in=2, n_hidden=5, density=0.6, seed=4, **overrides)
    for loss in ("cross_entropy", "mse"):
        model = ns.Model(cell, n_out=3, loss=loss)
        params = random_params(model, seed=4)
        xs, ys, mask = make_batch(model, T=15, B=2, seed=21)
        _events_happen(model, params, xs)
        _compare(model, params, xs, ys, mask)


@pytest.mark.parametrize("kind,gate", cell_configs(gates=("heaviside", "fast_sigmoid", "smooth")))
def test_step_jacobians_equal_torch(kind, gate):
    """One step, random state near threshold: J_t and Mbar_t column by column against autograd."""
    cell = make_cell(
        kind,
        gate,
        n_in=3,
        n_hidden=5,
        density=0.6,
        seed=7,
        **({} if kind in ("LeakyRNN", "EGRU") else dict(bias=True)),
    )
    model = ns.Model(cell, n_out=2)
    params = random_params(model, seed=7)
    cp = model.cell_params(params)
    rng = np.random.default_rng(3)
    B, S, n = 4, cell.n_state, cell.n_hidden
    # states straddling the threshold so that some units are in the support and some are not
    state = rng.standard_normal((B, S, n))
    if kind == "EGRU":
        state[:, 0] = cell.threshold + 0.6 * state[:, 0]
    elif kind != "LeakyRNN":
        state[:, 0] = cell.v_th + 1.5 * state[:, 0]
        state[:, 1] *= 5.0
        if S == 3:
            state[:, 2] = np.abs(state[:, 2]) * 0.3
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
    J_t, dparams = ref.step_jacobians(tcell, params, state, x)
    np.testing.assert_allclose(record.jac_state.to_dense(), J_t, rtol=0, atol=1e-12)
    layout = cell.layout
    imm = layout.immediate(record.jac_params)  # (B, S, P)
    b_ = np.arange(B)[:, None]
    a_ = np.arange(S)[None, :]
    expect = np.empty_like(imm)
    for p in range(layout.size):
        g, i, j = layout.gate[p], layout.post[p], layout.pre[p]
        if layout.kind[p] == REC:
            expect[:, :, p] = dparams["cell.w_rec"][b_, a_, i, g, i, j]
        elif layout.kind[p] == INP:
            expect[:, :, p] = dparams["cell.w_in"][b_, a_, i, g, i, j]
        else:
            assert layout.kind[p] == BIAS
            expect[:, :, p] = dparams["cell.bias"][b_, a_, i, g, i]
    np.testing.assert_allclose(imm, expect, rtol=0, atol=1e-12)
    # and the rows of other units are zero in autograd too (the factored form loses nothing)
    for name in ("cell.w_rec", "cell.w_in"):
        d = dparams[name]  # (B, S, n, G, n, k)
        for i in range(n):
            others = np.delete(d[:, :, :, :, i], i, axis=2)
            assert np.all(others == 0)


@pytest.mark.parametrize("truncation", [1, 4, 7])
@pytest.mark.parametrize("kind", ["LeakyRNN", "EGRU", "ALIF"])
def test_truncated_bptt_equals_torch_with_detach(kind, truncation):
    """BPTT(truncation=k) == autograd with the state detached every k steps."""
    cell = make_cell(kind, "heaviside", n_in=3, n_hidden=5, density=0.6, seed=5)
    model = ns.Model(cell, n_out=3, loss="mse")
    params = random_params(model, seed=5)
    xs, ys, mask = make_batch(model, T=17, B=2, seed=8)
    loss_t, g_t = ref.bptt_grads(
        reference_cell(cell), params, xs, ys, mask, model.loss, truncation=truncation
    )
    g_t["cell.w_rec"] = g_t["cell.w_rec"] * cell.mask
    loss, g = ns.sequence_grad(
        model, params, xs, ys, ns.rules.BPTT(truncation=truncation), mask=mask
    )
    assert loss == pytest.approx(loss_t, rel=1e-12)
    assert max_abs_diff(g, g_t) <= TOL
    # and a window at least as long as the sequence is full BPTT
    _, g_full = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    _, g_long = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(truncation=17), mask=mask)
    assert max_abs_diff(g_long, g_full) <= 1e-13
    if truncation < 17:
        assert max_abs_diff(g, g_full) > 1e-8  # truncation really cuts something
