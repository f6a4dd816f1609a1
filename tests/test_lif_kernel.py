"""The compiled LIF/ALIF unit update (``neurosnap/cells/lif_kernel.py``) against the NumPy cells.

The event simulator and the compiled engine call these functions; here one step of
:func:`~neurosnap.cells.lif_kernel.unit_step` must equal the cells' own step exactly (float64),
with spiking, refractory and silent units, adaptation, both reset modes and two currents.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.cells.lif_kernel import fires, unit_step


def _state(cell, n, rng):
    """A state ``(1, S, n)`` with units above threshold, some of them refractory."""
    state = cell.initial_state(1)
    state[0, 0] = rng.uniform(-0.5, 2.0, n)  # v: about half above v_th = 1
    state[0, 1] = rng.normal(0, 1, n)
    names = cell.state_names
    if "a" in names:
        state[0, names.index("a")] = rng.uniform(0, 1, n)
    if "i_inh" in names:
        state[0, names.index("i_inh")] = rng.normal(0, 1, n)
    if "r" in names:
        state[0, names.index("r")] = rng.integers(0, cell.refractory_steps, n)
    return state


def _kernel_step(cell, state, rec, inp):
    """``unit_step`` for every unit of ``state (1, S, n)``: the new ``(v, i, i_inh, a, r)`` and
    whether each new state fires."""
    names = cell.state_names
    n = state.shape[2]
    alif = "a" in names
    two = cell.tau_syn_inh is not None
    get = lambda name: state[0, names.index(name)] if name in names else np.zeros(n)  # noqa: E731
    v, i, ih, a, c = get("v"), get("i"), get("i_inh"), get("a"), get("r").astype(np.int64)
    out = np.zeros((5, n))
    spikes = np.zeros(n, bool)
    for u in range(n):
        new = unit_step(
            v[u],
            i[u],
            ih[u],
            a[u],
            c[u],
            rec[0, 0, u],
            inp[0, 0, u],
            rec[0, -1, u],
            inp[0, -1, u],
            cell.v_th,
            cell.v_leak,
            cell.v_reset,
            cell.dt / cell.tau_mem,
            1 - cell.dt / cell.tau_syn,
            1 - cell.dt / cell.tau_syn_inh if two else 0.0,
            1 - cell.dt / cell.tau_adapt if alif else 0.0,
            cell.beta if alif else 0.0,
            cell.reset == "subtract",
            max(cell.refractory_steps - 1, 0),
            two,
        )
        out[:, u] = new
        spikes[u] = fires(new[0], new[3], new[4], cell.v_th, cell.beta if alif else 0.0)
    return out, spikes


@pytest.mark.parametrize(
    "kind,overrides",
    [
        ("ALIF", dict(reset="zero", refractory=3e-3, beta=0.7, v_reset=-0.2)),
        ("ALIF", dict(reset="subtract", refractory=4e-3, beta=0.7)),
        ("LIF", dict(reset="zero", refractory=2e-3, v_leak=0.1)),
        ("LIF", dict(reset="subtract")),
        ("LIF", dict(reset="zero", refractory=3e-3, tau_syn_inh=0.01)),
        ("LIF", dict(reset="subtract", tau_syn_inh=0.008)),
    ],
)
def test_unit_step_equals_the_cell(kind, overrides):
    n = 64
    cell = getattr(ns.cells, kind)(3, n, 0.5, seed=0, **overrides)
    rng = np.random.default_rng(1)
    state = _state(cell, n, rng)
    G = cell.n_gates
    rec, inp = rng.normal(0, 1, (1, G, n)), rng.normal(0, 1, (1, G, n))
    new = cell._local(state, rec, inp, jac=False)[0]
    out, spikes = _kernel_step(cell, state, rec, inp)
    names = cell.state_names
    gap = state[0, 0] - cell.v_th - (cell.beta * state[0, 2] if kind == "ALIF" else 0)
    fired = gap > 0
    if "r" in names:
        fired &= state[0, names.index("r")] == 0
        assert ((gap > 0) & ~fired).any(), "no unit above threshold is refractory"
    assert fired.any() and (~fired).any()
    for row, name in enumerate(("v", "i", "i_inh", "a", "r")):
        if name in names:
            np.testing.assert_array_equal(out[row], new[0, names.index(name)], err_msg=name)
    # the new state's spikes: the cell's output
    z = cell._output(new, jac=False)[0][0]
    np.testing.assert_array_equal(spikes, z > 0)
