"""The Brian2 adapter reproduces neurosnap's LIF/ALIF step for step (real Brian2, numpy target).

For random networks (seeds, densities, input rates, resets, biases; 1,000 steps, float64, batch 2)
Brian2's spike trains equal ``model.run(...).events`` exactly and its membranes (recorded before the
reset, like neurosnap's state ``v``) agree to 1e-9; so do those of neurosnap's event-driven
``simulate_lif_events``.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.simulation.lif_events import simulate_lif_events

pytest.importorskip("brian2")
from neurosnap.adapters import brian2 as adapter  # noqa: E402

T, B, N_IN = 1000, 2, 6

# (kind, seed, n_hidden, density, input, cell overrides); input: Bernoulli spike rate or "graded".
CASES = [
    ("LIF", 0, 30, 0.1, 0.05, {}),
    ("LIF", 1, 40, 0.5, 0.02, dict(reset="subtract", autapses=True)),
    ("LIF", 2, 20, 1.0, "graded", dict(v_leak=0.2, v_reset=-0.3, bias=True)),
    ("ALIF", 3, 30, 0.2, 0.1, dict(beta=0.5, tau_adapt=0.05)),
    ("ALIF", 4, 25, 1.0, "graded", dict(reset="subtract", bias=True, v_reset=0.1)),
]


def _problem(kind, seed, n, density, rate, overrides, T=T):
    cls = getattr(ns.cells, kind)
    kwargs = dict(w_in_scale=25.0, w_rec_scale=4.0)
    kwargs.update(overrides)
    model = ns.Model(cls(N_IN, n, density, seed=seed, **kwargs), n_out=3)
    params = model.init(seed=seed)
    rng = np.random.default_rng(seed + 100)
    if model.cell.has_bias:
        params["cell.bias"] = rng.normal(0.0, 0.5, params["cell.bias"].shape)
    if rate == "graded":
        xs = rng.normal(0.0, 0.5, (T, B, N_IN))
    else:
        xs = (rng.random((T, B, N_IN)) < rate).astype(np.float64)
    return model, params, xs


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-seed{c[1]}-d{c[3]}-{c[4]}")
def test_spikes_identical_and_membranes_agree(case):
    model, params, xs = _problem(*case)
    traj = model.run(params, xs)
    events, v = adapter.simulate(model, params, xs)
    rate = traj.events.mean()
    assert 0.005 < rate < 0.5, rate  # a non-trivial, non-saturated network
    assert events.shape == traj.events.shape == (T, B, model.cell.n_hidden)
    np.testing.assert_array_equal(events, traj.events)
    np.testing.assert_allclose(v, traj.states[:, :, 0], rtol=0, atol=1e-9)
    # neurosnap's own event-driven simulator (used by benchmarks/simulate.py) as well
    events, v = simulate_lif_events(model, params, xs, record_v=True)
    np.testing.assert_array_equal(events, traj.events)
    np.testing.assert_allclose(v, traj.states[:, :, 0], rtol=0, atol=1e-9)


def test_single_sequence_network_and_weight_round_trip():
    model, params, xs = _problem("LIF", 5, 20, 0.3, 0.05, dict(bias=True), T=200)
    params["readout.bias"] = np.array([0.1, -0.2, 0.3])
    net = adapter.to_network(model, params, xs, batch_index=1)
    assert all(obj.name.startswith("neurosnap_") for obj in net.objects)
    back = adapter.from_network(net, model)
    assert set(back) == set(params)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k], err_msg=k)
    adapter.run(net, model, xs.shape[0])
    events, v = adapter.read_run(net, model, xs.shape[0], 1)
    traj = model.run(params, xs)
    np.testing.assert_array_equal(events[:, 0], traj.events[:, 1])
    np.testing.assert_allclose(v[:, 0], traj.states[:, 1, 0], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "cell, message",
    [
        (lambda: ns.cells.LIF(2, 4, gate=ns.gates.Smooth(3.0)), "Heaviside"),
        (lambda: ns.cells.EGRU(2, 4), "LIF and ALIF"),
        (lambda: ns.cells.LeakyRNN(2, 4), "LIF and ALIF"),
    ],
)
def test_inexpressible_cells_raise(cell, message):
    model = ns.Model(cell(), n_out=2)
    xs = np.zeros((3, 1, 2))
    with pytest.raises(ValueError, match=message):
        adapter.to_network(model, model.init(0), xs)


def test_bad_arguments_raise():
    model, params, xs = _problem("LIF", 0, 10, 1.0, 0.1, {}, T=5)
    with pytest.raises(ValueError, match="target"):
        adapter.simulate(model, params, xs, target="cpp_standalone")
    with pytest.raises(ValueError, match="batch_index"):
        adapter.to_network(model, params, xs, batch_index=B)
