"""The Norse adapter: same spikes as neurosnap, and Norse's autograd equals neurosnap's exact RTRL.

For every LIF configuration Norse can express (both of Norse's surrogates that neurosnap has,
autapses on and off, sparse and dense connectivity, non-zero v_leak / v_reset, both losses, a loss
mask, batch 2) the events of Norse's ``lif_step`` equal ``model.run`` and the gradient of BPTT
through Norse equals ``ns.sequence_grad(..., ns.rules.RTRL())`` to 1e-8 (float64). Configurations
Norse cannot express raise a ``ValueError`` naming what is not expressible.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurosnap as ns

torch = pytest.importorskip("torch")
pytest.importorskip("norse")
from neurosnap.adapters import norse as adapter  # noqa: E402

T, B, N_IN = 80, 2, 4
TRIANGLE = ns.gates.Heaviside(ns.gates.Triangle(gamma=0.7, width=1.0))
SUPER = ns.gates.Heaviside(ns.gates.FastSigmoid(gamma=1.0, slope=1.0))

# (id, cell kwargs, n_hidden, density, loss)
CONFIGS = [
    ("default-triangle", dict(), 20, 1.0, "cross_entropy"),
    ("triangle-sparse-autapses", dict(gate=TRIANGLE, autapses=True), 24, 0.3, "mse"),
    ("super-leak-reset", dict(gate=SUPER, v_leak=0.1, v_reset=-0.2), 20, 0.5, "cross_entropy"),
    (
        "super-taus",
        dict(gate=SUPER, tau_mem=0.02, tau_syn=0.002, v_th=0.8, dt=5e-4),
        16,
        1.0,
        "mse",
    ),
]


def _problem(kwargs, n, density, loss, seed=0):
    cell_kwargs = dict(w_in_scale=30.0, w_rec_scale=5.0)
    cell_kwargs.update(kwargs)
    model = ns.Model(ns.cells.LIF(N_IN, n, density, seed=seed, **cell_kwargs), n_out=3, loss=loss)
    params = model.init(seed=seed)
    rng = np.random.default_rng(seed + 7)
    xs = rng.normal(0.0, 1.0, (T, B, N_IN))
    ys = rng.integers(0, 3, (T, B)) if loss == "cross_entropy" else rng.normal(size=(T, B, 3))
    mask = rng.random((T, B)) < 0.7
    return model, params, xs, ys, mask


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c[0])
def test_events_and_gradients_equal_rtrl(config):
    _, kwargs, n, density, loss = config
    model, params, xs, ys, mask = _problem(kwargs, n, density, loss)
    traj = model.run(params, xs)
    events, v = adapter.simulate(model, params, xs)
    assert 0.01 < traj.events.mean() < 0.5
    np.testing.assert_array_equal(events, traj.events)
    quiet = ~traj.events  # Norse's v is after the reset
    np.testing.assert_allclose(v[quiet], traj.states[:, :, 0][quiet], rtol=0, atol=1e-12)

    loss_norse, g_norse = adapter.sequence_grad(model, params, xs, ys, mask)
    loss_ns, g_ns = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(), mask=mask)
    assert loss_norse == pytest.approx(loss_ns, rel=1e-12)
    assert set(g_norse) == set(g_ns)
    for k in g_ns:
        assert g_norse[k].shape == g_ns[k].shape and g_norse[k].dtype == np.float64
        np.testing.assert_allclose(g_norse[k], g_ns[k], rtol=0, atol=1e-8, err_msg=k)
    assert np.abs(g_ns["cell.w_rec"]).max() > 1e-3  # the recurrent credit is not trivial
    assert np.all(g_norse["cell.w_rec"][0][~model.cell.mask] == 0)


def test_module_is_float64_copy_and_round_trips():
    model, params, *_ = _problem(dict(gate=TRIANGLE), 12, 0.5, "cross_entropy")
    before = {k: v.copy() for k, v in params.items()}
    module = adapter.to_module(model, params)
    from norse.torch import LIFRecurrentCell

    assert isinstance(module, LIFRecurrentCell)
    assert module.p.method == "triangle" and float(module.p.alpha) == 0.7
    for t in (module.input_weights, module.recurrent_weights, module.p.tau_mem_inv, module.p.alpha):
        assert t.dtype == torch.float64
    assert isinstance(module.recurrent_weights, torch.nn.Parameter)
    with torch.no_grad():
        module.recurrent_weights.mul_(2.0)  # the module owns its weights
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    back = adapter.from_module(module, model)
    np.testing.assert_array_equal(back["cell.w_rec"], 2.0 * params["cell.w_rec"])
    for k in ("cell.w_in", "readout.weight", "readout.bias"):
        np.testing.assert_array_equal(back[k], params[k])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ns.cells.LIF(2, 4, reset="subtract"), "reset='subtract'"),
        (lambda: ns.cells.LIF(2, 4, detach_reset=False), "detach_reset=False"),
        (lambda: ns.cells.LIF(2, 4, bias=True), "bias=True"),
        (lambda: ns.cells.LIF(2, 4, gate=ns.gates.Smooth(3.0)), "Smooth"),
        (
            lambda: ns.cells.LIF(2, 4, gate=ns.gates.Heaviside(ns.gates.Triangle(0.3, 0.5))),
            "Triangle",
        ),
        (
            lambda: ns.cells.LIF(2, 4, gate=ns.gates.Heaviside(ns.gates.FastSigmoid(0.5, 2.0))),
            "FastSigmoid",
        ),
        (lambda: ns.cells.ALIF(2, 4), "LSNN applies the input and recurrent current jump after"),
        (lambda: ns.cells.EGRU(2, 4), "LIF only"),
        (lambda: ns.cells.LeakyRNN(2, 4), "LIF only"),
    ],
)
def test_inexpressible_configurations_raise(make, message):
    model = ns.Model(make(), n_out=2)
    params = model.init(0)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        adapter.to_module(model, params)
    with pytest.raises(ValueError, match="Norse"):
        adapter.sequence_grad(model, params, np.zeros((2, 1, 2)), np.zeros((2, 1), int))
