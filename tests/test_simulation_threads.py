"""``ns.simulate(..., threads=)``: the event engine's parallel blocks change no bit.

The kernel (``neurosnap/simulation/kernels.py``) updates (sequence, block of units) tasks in
parallel and joins their spike lists in unit order; every ring-buffer entry receives its synaptic
additions in the serial order. Small networks run serially by default, so these tests lower the
size thresholds (or force a block split) to run the parallel code on smoke-size networks.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import neurosnap as ns
from neurosnap import cli
from neurosnap.simulation import engine, kernels
from neurosnap.simulation.lif_events import EventLIF

CASES = {
    "lif": ("LIF", dict(), False),
    "alif-refractory": ("ALIF", dict(beta=0.5, refractory=3e-3, reset="subtract"), False),
    "two-currents": ("LIF", dict(tau_syn_inh=0.01, refractory=2e-3, bias=True), False),
    "refractory-delay": ("LIF", dict(refractory=3e-3, delay=3, reset="subtract"), False),
    "per-synapse-delays": ("ALIF", dict(beta=0.3, refractory=2e-3), True),
}


def _case(name, B, n=40, T=80):
    kind, overrides, per_synapse = CASES[name]
    cell = getattr(ns.cells, kind)(5, n, 0.3, seed=1, w_in_scale=20.0, w_rec_scale=4.0, **overrides)
    model = ns.Model(cell, n_out=2)
    params = model.init(seed=2)
    if cell.tau_syn_inh is not None:  # excitatory and inhibitory synapses
        params["cell.w_rec"] = np.abs(params["cell.w_rec"]) * np.array([1.0, -1.5])[:, None, None]
    if cell.has_bias:
        params["cell.bias"] = np.random.default_rng(3).normal(0, 0.3, params["cell.bias"].shape)
    xs = (np.random.default_rng(4).random((T, B, 5)) < 0.15).astype(np.float64)
    delays = np.random.default_rng(5).integers(1, 6, (n, n)) if per_synapse else None
    names = [s for s in cell.state_names if s in engine.EVENT_STATE_VARS]
    return model, params, xs, delays, ["events"] + names


def _simulate(case, **kwargs):
    model, params, xs, delays, record = case
    return ns.simulate(
        model, params, xs, record, engine="event", chunk_steps=23, delays=delays, **kwargs
    )


def _assert_identical(a, b):
    for key in ("spike_steps", "spike_units", "spike_batch"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert set(a.states) == set(b.states)
    for name in a.states:  # bit for bit
        assert a.states[name].tobytes() == b.states[name].tobytes(), name


@pytest.fixture
def small_blocks(monkeypatch):
    """Parallel blocks from a few units on; records the plans the runner chose."""
    monkeypatch.setattr(kernels, "PARALLEL_MIN_UNITS", 1)
    monkeypatch.setattr(kernels, "WORKQUEUE_MIN_UNITS", 1)
    monkeypatch.setattr(kernels, "MIN_BLOCK", 8)
    plans = []

    def plan(n, batch):
        plans.append(kernels.plan(n, batch))
        return plans[-1]

    monkeypatch.setattr(engine, "plan", plan)
    return plans


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_and_two_threads_are_identical(small_blocks, name, B):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    case = _case(name, B)
    one = _simulate(case, threads=1)
    assert small_blocks and all(p == (False, 1) for p in small_blocks)
    small_blocks.clear()
    two = _simulate(case, threads=2)
    assert small_blocks and all(p == (True, 2) for p in small_blocks)  # B x 2 tasks
    assert 0.01 < one.n_events / (80 * B * 40) < 0.5
    _assert_identical(one, two)


@pytest.mark.parametrize("sorted_rows", [True, False])
def test_every_block_split_is_identical(monkeypatch, sorted_rows):
    """Any number of blocks (with bisected or scanned synapse rows) == the serial kernel, whatever
    the number of threads: the split is not the threads'."""
    case = _case("per-synapse-delays", 2)
    monkeypatch.setattr(engine, "plan", lambda n, batch: (False, 1))
    serial = _simulate(case)
    if not sorted_rows:
        monkeypatch.setattr(engine, "rows_sorted", lambda ptr, post: False)
    for blocks in (1, 3, 7, 40):
        monkeypatch.setattr(engine, "plan", lambda n, batch, k=blocks: (True, k))
        _assert_identical(serial, _simulate(case))


def test_plan(monkeypatch):
    assert kernels.plan(40, 3) == (False, 1)  # small: serial
    monkeypatch.setattr(kernels.numba, "get_num_threads", lambda: 4)
    monkeypatch.setattr(kernels.numba, "threading_layer", lambda: "omp")
    if kernels.numba.config.NUMBA_NUM_THREADS > 1:
        assert kernels.plan(20_000, 1) == (True, 4)
        assert kernels.plan(20_000, 2) == (True, 2)  # 2 sequences x 2 blocks
        assert kernels.plan(20_000, 3) == (True, 4)  # 12 tasks: 3 per thread
        assert kernels.plan(20_000, 8) == (True, 1)
        assert kernels.plan(2_500, 2) == (True, 2)  # blocks of >= MIN_BLOCK units
        monkeypatch.setattr(kernels.numba, "threading_layer", lambda: "workqueue")
        assert kernels.plan(20_000, 1) == (False, 1)  # its parallel regions cost more
        assert kernels.plan(kernels.WORKQUEUE_MIN_UNITS, 1) == (True, 4)


def test_event_lif_accepts_int32_synapse_indices():
    """The kernels take ``out_post`` of any integer type (int32 saves memory at large n)."""
    model, params, xs, _, _ = _case("lif", 2)
    sim = EventLIF(model, params)
    events, v = sim.run(xs, record_v=True)
    assert sim.out_post.dtype != np.int32
    sim.out_post = sim.out_post.astype(np.int32)
    events32, v32 = sim.run(xs, record_v=True)
    assert events.any() and np.array_equal(events, events32)
    assert v.tobytes() == v32.tobytes()
    np.testing.assert_array_equal(events, model.run(params, xs).events)


@pytest.mark.parametrize(
    "threads,error,match",
    [
        (0, ValueError, "threads must be None or an integer from 1 to"),
        (-2, ValueError, "threads must be None or an integer from 1 to"),
        (numba.config.NUMBA_NUM_THREADS + 1, ValueError, "NUMBA_NUM_THREADS"),
        (1.5, TypeError, "threads must be None or an integer"),
        ("2", TypeError, "threads must be None or an integer"),
        (True, TypeError, "threads must be None or an integer"),
    ],
)
def test_bad_threads_name_the_argument(threads, error, match):
    case = _case("lif", 1, T=5)
    with pytest.raises(error, match=match):
        _simulate(case, threads=threads)


def test_thread_count_is_restored():
    before = numba.get_num_threads()
    case = _case("lif", 1, T=5)
    _simulate(case, threads=1)
    assert numba.get_num_threads() == before
    model, params, xs, _, _ = case
    with pytest.raises(ValueError, match="inputs must have n_in"):
        ns.simulate(model, params, xs[:, :, :3], engine="event", threads=1)
    assert numba.get_num_threads() == before
    huge = {**params, "cell.w_in": np.full_like(params["cell.w_in"], 1e308)}
    with pytest.raises(FloatingPointError, match="simulate"):  # overflows in the loop
        ns.simulate(model, huge, np.ones_like(xs), engine="event", threads=1)
    assert numba.get_num_threads() == before


def test_cli_threads(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        '[model]\ncell = "LIF"\nn_hidden = 20\ndensity = 0.5\n[task]\nname = "pattern"\n'
        'n_inputs = 6\n[rule]\nname = "EProp"\n[optimizer]\nname = "Adam"\n[train]\nsteps = 10\n'
    )
    argv = ["simulate", str(cfg), "--steps", "40", "--no-plots", "--out", str(tmp_path / "r")]
    assert cli.main(argv + ["--threads", "1"]) == 0
    assert "engine event" in capsys.readouterr().out
    assert cli.main(argv + ["--threads", "0"]) == 2
    assert "threads must be None or an integer from 1" in capsys.readouterr().err
