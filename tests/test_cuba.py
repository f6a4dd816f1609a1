"""The CUBA benchmark (benchmarks/cuba.py, models/cuba.toml) at smoke size: the shipped config has
the constants of Brian2's CUBA example, neurosnap's spikes equal Brian2's (adapter, Euler) from
the same random initial potentials, and the benchmark's statistics are sane."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import neurosnap as ns

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("cuba_bench", ROOT / "benchmarks" / "cuba.py")
    mod = importlib.util.module_from_spec(spec)
    environ = dict(os.environ)
    try:
        spec.loader.exec_module(mod)
    finally:  # the benchmark sets NUMBA_NUM_THREADS etc. for its own process: not for this one
        os.environ.clear()
        os.environ.update(environ)
    return mod


def test_config_has_the_papers_constants():
    from neurosnap import config

    cell = config.build(config.load(ROOT / "models" / "cuba.toml"))[0].cell
    assert (cell.n_hidden, cell.density, cell.dt) == (4000, 0.02, 1e-4)
    assert (cell.tau_mem, cell.tau_syn, cell.tau_syn_inh) == (0.02, 0.005, 0.01)
    assert (cell.v_th, cell.v_reset, cell.v_leak, cell.refractory) == (-50.0, -60.0, -49.0, 0.005)
    bench = _bench()
    assert (bench.W_E, bench.W_I, bench.FRAC_EXC) == (pytest.approx(1.62), pytest.approx(-9.0), 0.8)


def test_smoke_neurosnap_equals_brian2():
    pytest.importorskip("brian2")
    bench = _bench()
    model, params, v0 = bench.build(300, 0)
    assert np.all((v0 >= -60.0) & (v0 < -50.0))
    exc = params["cell.w_rec"][0] != 0
    assert exc[:, :240].any() and not exc[:, 240:].any()  # Dale's law
    T = 500  # 50 ms
    st, un, _ = bench.run_neurosnap(model, params, v0, T)
    st2, un2, _ = bench.run_brian2_euler(model, params, v0, T)
    assert len(st) > 50
    np.testing.assert_array_equal(bench._sorted(st, un), bench._sorted(st2, un2))
    rates, cvs = bench.stats(st, un, 300, 0.05, model.cell.dt)
    assert rates.sum() * 0.05 == len(st) and np.all(cvs >= 0)
    # the same run through model.run (the NumPy reference)
    rec = ns.simulate(model, params, np.zeros((T, 1, 1)), engine="step", initial_state={"v": v0})
    np.testing.assert_array_equal(
        bench._sorted(rec.spike_steps.astype(np.int64), rec.spike_units.astype(np.int64)),
        bench._sorted(st, un),
    )
