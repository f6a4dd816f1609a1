"""The CUBA benchmark (benchmarks/cuba.py, models/cuba.toml) at smoke size: the shipped config has
the constants of Brian2's CUBA example, neurosnap's spikes equal Brian2's (adapter, Euler) from
the same random initial potentials (Brian2's numpy and Cython targets), and the benchmark's statistics
are sane."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import require_cython

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


@pytest.fixture(autouse=True)
def _restore_brian2_prefs():
    """The benchmark sets Brian2's global code-generation target and Cython cache: undo it."""
    try:
        from brian2 import prefs
    except ImportError:
        yield
        return
    keys = ("codegen.target", "codegen.runtime.cython.cache_dir")
    saved = {key: prefs[key] for key in keys}
    yield
    for key, value in saved.items():
        prefs[key] = value


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
    st, un, _, _ = bench.run_neurosnap(model, params, v0, T)
    st2, un2, wall, loop = bench.run_brian2_euler(model, params, v0, T)
    assert 0 < loop <= wall  # Brian2's time-step loop is part of the timed run call
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


@pytest.mark.slow  # compiles Brian2's Cython extensions from an empty cache (about a minute here)
def test_smoke_brian2_cython_equals_numpy(tmp_path):
    """The adapter's network with Brian2's Cython target, compiled into an empty cache, gives the
    numpy target's spike trains, which are neurosnap's (400 neurons, 50 ms)."""
    require_cython()
    bench = _bench()
    model, params, v0 = bench.build(400, 0)
    T = 500
    st, un, _, _ = bench.run_neurosnap(model, params, v0, T)
    numpy_run = bench.run_brian2_euler(model, params, v0, T, target="numpy")
    cache = tmp_path / "cython"
    cython_run = bench.run_brian2_euler(model, params, v0, T, target="cython", cache_dir=cache)
    assert any(cache.iterdir())  # the extensions were compiled there
    assert len(st) > 100
    expected = bench._sorted(st, un)
    np.testing.assert_array_equal(bench._sorted(*numpy_run[:2]), expected)
    np.testing.assert_array_equal(bench._sorted(*cython_run[:2]), expected)
    with pytest.raises(ValueError, match="cache_dir"):
        bench.run_brian2_euler(model, params, v0, T, target="cython")
