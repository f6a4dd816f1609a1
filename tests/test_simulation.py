"""ns.simulate: inputs (array, file, Poisson, Bernoulli, task), records equal to model.run, rates,
streaming to disk (identical to in memory, bounded memory), the file format, bad arguments, the
`neurosnap simulate` command and the plots."""

from __future__ import annotations

import json
import pickle
import tracemalloc

import numpy as np
import pytest

import neurosnap as ns
from neurosnap import checkpoint, cli
from neurosnap import simulation as sim

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _model(kind, n=24, n_in=4, dtype=np.float64, **kw):
    cells = {
        "LIF": lambda: ns.cells.LIF(n_in, n, 0.3, w_in_scale=30.0, w_rec_scale=5.0, **kw),
        "ALIF": lambda: ns.cells.ALIF(
            n_in, n, 0.3, w_in_scale=30.0, w_rec_scale=5.0, reset="subtract", bias=True, **kw
        ),
        "LIF-smooth": lambda: ns.cells.LIF(
            n_in, n, 0.3, w_in_scale=30.0, w_rec_scale=5.0, gate=ns.gates.Smooth(3.0), **kw
        ),
        "EGRU": lambda: ns.cells.EGRU(n_in, n, 0.3, w_in_scale=3.0, w_rec_scale=2.0, **kw),
        "LeakyRNN": lambda: ns.cells.LeakyRNN(n_in, n, 0.5, alpha=0.5, **kw),
    }
    model = ns.Model(cells[kind](), 2, dtype=dtype)
    params = model.init(1)
    if kind == "ALIF":
        params["cell.bias"][:] = 0.05
    return model, params


def _xs(T=120, B=2, n_in=4, p=0.25, seed=0):
    return (np.random.default_rng(seed).random((T, B, n_in)) < p).astype(np.float64)


def _raster(rec, T, B, n):
    ev = np.zeros((T, B, n), dtype=bool)
    ev[rec.spike_steps, rec.spike_batch, rec.spike_units] = True
    return ev


# -- equality with model.run ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, engine",
    [("LIF", "event"), ("LIF", "step"), ("ALIF", "auto"), ("LIF-smooth", "auto"), ("EGRU", "auto")],
)
def test_events_and_states_equal_model_run(kind, engine):
    model, params = _model(kind)
    xs = _xs()
    traj = model.run(params, xs)
    names = model.cell.state_names
    rec = ns.simulate(
        model, params, xs, ("events",) + names, units=[5, 0, 17], chunk_steps=29, engine=engine
    )
    assert rec.meta["engine"] == (
        "event" if kind in ("LIF", "ALIF") and engine != "step" else "step"
    )
    T, B, n = traj.events.shape
    assert traj.events.sum() > 50, "the test network must fire"
    assert np.array_equal(_raster(rec, T, B, n), traj.events)
    assert rec.n_events == traj.events.sum() == len(rec.spike_units)
    key = rec.spike_steps * (B * n) + rec.spike_batch * n + rec.spike_units
    assert np.all(np.diff(key) > 0), "events are ordered by step, sequence, unit"
    for i, name in enumerate(names):
        # the event engine sums synaptic inputs in another order: equal to round-off
        np.testing.assert_allclose(
            rec.states[name], traj.states[:, :, i][:, :, [5, 0, 17]], rtol=0, atol=1e-12
        )
    np.testing.assert_array_equal(rec.units, [5, 0, 17])


def test_leaky_rnn_states_and_no_events():
    model, params = _model("LeakyRNN")
    xs = np.random.default_rng(0).normal(size=(50, 3, 4))
    rec = ns.simulate(model, params, xs, "h", chunk_steps=7)
    np.testing.assert_array_equal(rec.states["h"], model.run(params, xs).states[:, :, 0])
    with pytest.raises(ValueError, match="record: a LeakyRNN has no events"):
        ns.simulate(model, params, xs, "events")


def test_float32_model():
    model, params = _model("LIF", dtype=np.float32)
    xs = _xs().astype(np.float32)
    rec = ns.simulate(model, params, xs, "events,v", units=[1])
    traj = model.run(params, xs)
    assert rec.states["v"].dtype == np.float32
    assert np.array_equal(_raster(rec, *traj.events.shape), traj.events)


# -- inputs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: sim.PoissonSource(150.0, 4, 1e-3, seed=3, batch=2),
        lambda: sim.BernoulliSource([0.1, 0.2, 0.3, 0.4], 4, seed=3, batch=2),
    ],
)
def test_random_sources_do_not_depend_on_chunking(make):
    src = make()
    whole = src.take(5000)
    src.reset()
    parts = np.concatenate([src.read(k) for k in (1, 999, 17, 3983)])
    assert np.array_equal(whole, parts)
    model, params = _model("LIF")
    a = ns.simulate(model, params, src, "events,v", steps=700, chunk_steps=61, units=[2])
    b = ns.simulate(model, params, whole[:700], "events,v", units=[2])
    assert np.array_equal(a.spike_steps, b.spike_steps) and np.array_equal(
        a.spike_units, b.spike_units
    )
    assert np.array_equal(a.states["v"], b.states["v"])


def test_source_statistics():
    x = sim.PoissonSource(20.0, 50, 1e-3, seed=0).take(20000)
    assert abs(x.mean() - 0.02) < 0.002
    x = sim.BernoulliSource([0.0, 0.5], 2, seed=0).take(4000)
    assert x[:, :, 0].max() == 0 and abs(x[:, :, 1].mean() - 0.5) < 0.03


def test_task_input_resets_at_every_sequence():
    task = ns.tasks.Adding(length=10)
    model = ns.Model(
        ns.cells.LIF(task.n_in, 12, w_in_scale=40.0, w_rec_scale=5.0), task.n_out, loss=task.loss
    )
    params = model.init(0)
    src = sim.TaskSource(task, batch=2, seed=4)
    rec = ns.simulate(model, params, src, "events,v,i", steps=35, chunk_steps=8)
    xs = src.take(35)
    rng = np.random.default_rng(4)
    seqs = [task.sample(rng, 2).xs for _ in range(4)]
    assert np.array_equal(np.concatenate(seqs)[:35], xs)
    assert rec.meta["input"] == {
        "kind": "task",
        "task": "Adding",
        "batch": 2,
        "seed": 4,
        "reset": True,
    }
    expect_ev, expect_v = [], []
    for s in seqs:
        tr = model.run(params, s)
        expect_ev.append(tr.events)
        expect_v.append(tr.states[:, :, 0])
    expect_ev, expect_v = np.concatenate(expect_ev)[:35], np.concatenate(expect_v)[:35]
    assert expect_ev.sum() > 20
    assert np.array_equal(_raster(rec, 35, 2, 12), expect_ev)
    np.testing.assert_allclose(rec.states["v"], expect_v, atol=1e-12, rtol=0)
    # reset=False runs on continuously: as model.run over the concatenation
    cont = ns.simulate(
        model, params, sim.TaskSource(task, batch=2, seed=4, reset=False), "events", steps=35
    )
    assert np.array_equal(_raster(cont, 35, 2, 12), model.run(params, xs).events)
    # a task object directly (batch 1) and a Batch
    one = ns.simulate(model, params, task, "events", steps=20)
    assert one.batch == 1
    b = task.sample(np.random.default_rng(0), 3)
    assert ns.simulate(model, params, b, "events").n_steps == len(b.xs)


def test_file_inputs(tmp_path):
    model, params = _model("LIF")
    xs = _xs()
    ref = ns.simulate(model, params, xs, "events")
    np.save(tmp_path / "x.npy", xs)
    np.savez(tmp_path / "x.npz", xs=xs, other=np.zeros(3))
    np.savez(tmp_path / "single.npz", inputs=xs)
    np.save(tmp_path / "bool.npy", xs.astype(bool))
    np.save(tmp_path / "two_d.npy", xs[:, 0])
    for name in ("x.npy", "x.npz", "single.npz", "bool.npy"):
        rec = ns.simulate(model, params, tmp_path / name, "events")
        assert np.array_equal(rec.spike_steps, ref.spike_steps), name
        assert np.array_equal(rec.spike_units, ref.spike_units), name
    assert ns.simulate(model, params, str(tmp_path / "two_d.npy"), "events").batch == 1


def test_pickled_and_bad_files_are_refused(tmp_path):
    model, params = _model("LIF")
    obj = np.empty((3, 1, 4), dtype=object)
    obj[:] = 0.0
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(
        ValueError,
        match="not a valid neurosnap inputs file: the array is an object array .*never unpickles",
    ):
        ns.simulate(model, params, tmp_path / "obj.npy")
    with open(tmp_path / "pickle.npy", "wb") as f:
        pickle.dump({"xs": 1}, f)
    with pytest.raises(ValueError, match="inputs file"):
        ns.simulate(model, params, tmp_path / "pickle.npy")
    np.savez(tmp_path / "many.npz", a=np.zeros((2, 1, 4)), b=np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match="name the input array 'xs'"):
        ns.simulate(model, params, tmp_path / "many.npz")
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=".npy or .npz"):
        ns.simulate(model, params, tmp_path / "x.txt")
    with pytest.raises(ValueError, match="inputs file not found"):
        ns.simulate(model, params, tmp_path / "none.npy")


def test_params_from_files(tmp_path):
    model, params = _model("LIF")
    xs = _xs()
    ref = ns.simulate(model, params, xs, "events")
    np.savez(tmp_path / "params.npz", **params)
    checkpoint.save(
        tmp_path / "checkpoint.npz", {f"params/{k}": v for k, v in params.items()}, {"t": 0}
    )
    for name in ("params.npz", "checkpoint.npz"):
        rec = ns.simulate(model, tmp_path / name, xs, "events")
        assert np.array_equal(rec.spike_units, ref.spike_units)
        assert rec.network_hash == ref.network_hash
    np.savez(tmp_path / "wrong.npz", **{**params, "cell.w_in": np.zeros((1, 3, 3))})
    with pytest.raises(ValueError, match="params file .*wrong.npz does not fit the model"):
        ns.simulate(model, tmp_path / "wrong.npz", xs)
    obj = {k: v for k, v in params.items()}
    obj["cell.w_in"] = np.array([None, 1], dtype=object)
    np.savez(tmp_path / "obj.npz", **obj)
    with pytest.raises(ValueError, match="object array"):
        ns.simulate(model, tmp_path / "obj.npz", xs)
    assert (
        ns.simulate(model, None, xs).network_hash
        == ns.simulate(model, model.init(0), xs).network_hash
    )


# -- rates ------------------------------------------------------------------------------------------
def test_rate_is_consistent_with_spike_counts():
    model, params = _model("LIF")
    T, B, n, width = 123, 2, 24, 10  # the last bin holds 3 steps
    rec = ns.simulate(model, params, _xs(T, B), "events", rate_bin=width, chunk_steps=17)
    rate, dt = rec.rate, model.cell.dt
    assert rate.shape == (13, B)
    lengths = np.minimum(width, T - np.arange(13) * width)
    for b in range(B):
        counts = np.bincount(rec.spike_steps[rec.spike_batch == b] // width, minlength=13)
        np.testing.assert_allclose(rate[:, b], counts / (n * lengths * dt), rtol=1e-12)
    only = ns.simulate(model, params, _xs(T, B), "rate", rate_bin=width)
    np.testing.assert_array_equal(only.rate, rate)
    with pytest.raises(ValueError, match="events was not recorded"):
        only.spike_units
    np.testing.assert_allclose(rec.rate_times, np.arange(13) * width * dt)


def test_isi_and_counts():
    meta = {"dt": 0.5, "n_units": 3, "n_steps": 10, "batch": 2, "n_events": 6}
    rec = sim.Recording(
        {
            "spike_steps": np.array([0, 1, 2, 4, 7, 9]),
            "spike_units": np.array([0, 2, 0, 0, 2, 0], dtype=np.int32),
            "spike_batch": np.array([0, 0, 0, 1, 0, 1], dtype=np.int32),
        },
        meta,
    )
    np.testing.assert_array_equal(rec.spike_counts(), [4, 0, 2])
    np.testing.assert_array_equal(rec.spike_counts(batch=1), [2, 0, 0])
    np.testing.assert_allclose(np.sort(rec.isi()), [1.0, 2.5, 3.0])
    np.testing.assert_allclose(rec.isi(batch=0), [1.0, 3.0])
    np.testing.assert_allclose(rec.spike_times, [0, 0.5, 1, 2, 3.5, 4.5])


# -- streaming and the file format --------------------------------------------------------------
def test_streaming_to_disk_equals_in_memory(tmp_path, monkeypatch):
    model, params = _model("ALIF", n=40)
    src = sim.PoissonSource(200.0, 4, model.cell.dt, seed=1, batch=3)
    mem = ns.simulate(model, params, src, "events,v,a", steps=2000, units=[3, 39])
    monkeypatch.setattr(sim.recording, "FLUSH_BYTES", 512)  # many chunk files per key
    disk = ns.simulate(
        model,
        params,
        src,
        "events,v,a",
        steps=2000,
        units=[3, 39],
        chunk_steps=97,
        out=tmp_path / "rec",
    )
    assert mem.n_events > 1000
    for key in ("spike_steps", "spike_units", "spike_batch", "rate", "units"):
        a, b = getattr(mem, key), getattr(disk, key)
        assert a.dtype == b.dtype and np.array_equal(a, b), key
    for name in ("v", "a"):
        assert np.array_equal(mem.states[name], disk.states[name])
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [
        "recording.json",
        "recording.npz",
    ]
    assert disk.meta["network_hash"] == mem.meta["network_hash"]
    assert isinstance(disk.spike_steps, np.memmap)  # read lazily from recording.npz
    again = sim.Recording.load(tmp_path / "rec" / "recording.npz")
    assert np.array_equal(again.spike_steps, mem.spike_steps)
    saved = mem.save(tmp_path / "saved")
    assert np.array_equal(sim.Recording.load(saved).states["v"], mem.states["v"])


def test_files_are_readable_without_neurosnap(tmp_path):
    model, params = _model("LIF")
    ns.simulate(model, params, _xs(), "events,v,i", units=[0, 4], out=tmp_path)
    with open(tmp_path / "recording.json") as f:
        meta = json.load(f)
    with np.load(tmp_path / "recording.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert meta["format"] == "neurosnap-recording" and meta["format_version"] == 1
    assert meta["dt"] == 1e-3 and meta["units"] == [0, 4] and meta["n_steps"] == 120
    assert len(meta["network_hash"]) == 64
    assert meta["model"]["cell"] == "LIF" and meta["model"]["cell_options"]["tau_mem"] == 0.01
    assert (
        set(arrays)
        == {"spike_steps", "spike_units", "spike_batch", "rate", "units", "state_v", "state_i"}
        == set(meta["arrays"])
    )
    assert arrays["spike_steps"].dtype == np.int64 and arrays["spike_units"].dtype == np.int32
    assert arrays["state_v"].shape == (120, 2, 2) and arrays["rate"].shape == (12, 2)
    assert len(arrays["spike_steps"]) == meta["n_events"]
    obj = np.empty(3, dtype=object)
    np.savez(tmp_path / "recording.npz", **{**arrays, "spike_units": obj}, allow_pickle=True)
    with pytest.raises(ValueError, match="object array"):
        sim.Recording.load(tmp_path).spike_units
    (tmp_path / "recording.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="version 1"):
        sim.Recording.load(tmp_path)


def test_memory_stays_bounded_when_streaming(tmp_path):
    """200,000 steps x 2,000 neurons (~4 Hz): the raster would be 400 MB and the spike lists ~26 MB;
    the traced peak must not grow from 100,000 to 200,000 steps and stay below the data size."""
    n = 2000
    model = ns.Model(ns.cells.LIF(50, n, 0.05, w_in_scale=5.0, w_rec_scale=1.0), 2)
    params = model.init(0)
    ns.simulate(
        model, params, sim.PoissonSource(10.0, 50, 1e-3), steps=10, record="events,v", units=[0]
    )  # compile / load the kernel first
    peaks, events = [], []
    for steps in (100_000, 200_000):
        tracemalloc.start()
        rec = ns.simulate(
            model,
            params,
            sim.PoissonSource(10.0, 50, 1e-3, seed=0),
            steps=steps,
            record="events,v",
            units=[0, 1, 2],
            out=tmp_path / str(steps),
        )
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        events.append(rec.n_events)
    data = events[1] * (8 + 4 + 4)  # the recorded spike lists, in bytes
    assert events[1] > 1.9 * events[0] > 1_000_000
    assert peaks[1] < peaks[0] + (2 << 20), f"peak grew: {peaks}"
    assert peaks[1] < data, f"peak {peaks[1] / 1e6:.1f} MB, spike lists {data / 1e6:.1f} MB"


# -- bad arguments ----------------------------------------------------------------------------------
def test_bad_arguments_name_the_argument():
    model, params = _model("LIF")
    xs = _xs()
    cases = [
        (dict(inputs=xs[:, :, :3]), ValueError, "n_in=4"),
        (dict(inputs=xs[None]), ValueError, "inputs must have shape"),
        (dict(inputs=[[0.0] * 4]), TypeError, "inputs must be an array"),
        (dict(inputs=xs.astype(complex)), TypeError, "inputs must be a real-valued array"),
        (dict(inputs=np.full((3, 1, 4), np.nan)), ValueError, "inputs contains NaN"),
        (dict(record=("events", "voltage")), ValueError, "record: unknown name 'voltage'"),
        (dict(record=()), ValueError, "record must name"),
        (dict(record=(1,)), TypeError, "record entries"),
        (dict(record="states", state_vars=("w",)), ValueError, "state_vars: 'w'"),
        (dict(record="v", units=[0, 24]), ValueError, r"units must be in \[0, 24\)"),
        (dict(record="v", units=[-1]), ValueError, "units must be in"),
        (dict(record="v", units=[1, 1]), ValueError, "units must not repeat"),
        (dict(record="v", units=[0.5]), TypeError, "units must be"),
        (dict(steps=500), ValueError, "steps=500 exceeds the length of inputs"),
        (dict(steps=0), ValueError, "steps must be >= 1"),
        (dict(rate_bin=0), ValueError, "rate_bin must be >= 1"),
        (dict(chunk_steps=1.5), TypeError, "chunk_steps must be an integer"),
        (dict(engine="fast"), ValueError, "engine must be one of"),
        (dict(dt=-1.0), ValueError, "dt must be > 0"),
    ]
    for kwargs, exc, match in cases:
        kw = dict(inputs=xs)
        kw.update(kwargs)
        with pytest.raises(exc, match=match):
            ns.simulate(model, params, **kw)
    with pytest.raises(TypeError, match="model must be an ns.Model"):
        ns.simulate("LIF", params, xs)
    with pytest.raises(ValueError, match="steps must be given"):
        ns.simulate(model, params, sim.PoissonSource(10.0, 4, 1e-3))
    with pytest.raises(ValueError, match="engine='event' needs an LIF or ALIF"):
        ns.simulate(*_model("EGRU"), xs, engine="event")
    with pytest.raises(ValueError, match="params has the wrong keys"):
        ns.simulate(model, {"cell.w_in": params["cell.w_in"]}, xs)


def test_bad_sources():
    with pytest.raises(ValueError, match="rate_hz must be >= 0"):
        sim.PoissonSource(-5.0, 3, 1e-3)
    with pytest.raises(ValueError, match=r"rate_hz \* dt must be <= 1"):
        sim.PoissonSource(2000.0, 3, 1e-3)
    with pytest.raises(ValueError, match=r"rate_hz must be a number or an array of shape \(n=3,\)"):
        sim.PoissonSource([1.0, 2.0], 3, 1e-3)
    with pytest.raises(TypeError, match="rate_hz must be a number or an array of numbers"):
        sim.PoissonSource("fast", 3, 1e-3)
    with pytest.raises(ValueError, match="rate_hz must be finite"):
        sim.PoissonSource(np.nan, 3, 1e-3)
    with pytest.raises(ValueError, match="p must be in"):
        sim.BernoulliSource(1.5, 3)
    with pytest.raises(ValueError, match="n must be >= 1"):
        sim.BernoulliSource(0.5, 0)
    with pytest.raises(TypeError, match="task must be an ns.tasks task"):
        sim.TaskSource("adding")


# -- command line -----------------------------------------------------------------------------------
TINY = """
[model]
cell = "LIF"
n_hidden = 20
density = 0.5
[model.cell_options]
dt = 0.005
w_in_scale = 10.0
w_rec_scale = 3.0
[task]
name = "pattern"
n_inputs = 6
dt = 0.005
[rule]
name = "EProp"
[optimizer]
name = "Adam"
[train]
steps = 10
"""


def test_cli_simulate_end_to_end(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "simulate",
                str(cfg),
                "--steps",
                "300",
                "--out",
                str(out),
                "--record",
                "events,v,i",
                "--units",
                "0-2,7",
                "--input",
                "poisson:rate=40",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "LIF network (20 units, weight density 0.5) simulated for 300 steps" in text
    assert "events; mean rate" in text and "recording.npz" in text
    rec = sim.Recording.load(out)
    assert rec.meta["units"] == [0, 1, 2, 7] and rec.meta["recorded"]["states"] == ["v", "i"]
    for name in ("raster", "rate", "traces", "isi", "summary"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # trained parameters, Bernoulli, task and file inputs
    model, params = _cli_model(cfg)
    np.savez(tmp_path / "params.npz", **params)
    np.save(tmp_path / "x.npy", _xs(50, 1, 6))
    for spec in ("bernoulli:p=0.2", "task", f"file:{tmp_path / 'x.npy'}"):
        assert (
            cli.main(
                [
                    "simulate",
                    str(cfg),
                    "--steps",
                    "50",
                    "--out",
                    str(tmp_path / "r2"),
                    "--params",
                    str(tmp_path / "params.npz"),
                    "--input",
                    spec,
                    "--no-plots",
                ]
            )
            == 0
        ), spec
    assert "input file:" in capsys.readouterr().out
    for argv, message in (
        [["--input", "poisson:rate=-1"], "rate_hz must be >= 0"],
        [["--input", "gauss"], "expected poisson:rate=HZ"],
        [["--record", "events,x"], "record: unknown name 'x'"],
        [["--units", "0,99"], "--units 99: the network has 20 units"],
        [["--params", str(tmp_path / "none.npz")], "params file not found"],
    ):
        assert cli.main(["simulate", str(cfg), "--out", str(tmp_path / "bad")] + argv) == 2
        assert message in capsys.readouterr().err


def _cli_model(cfg):
    from neurosnap import config

    model, *_ = config.build(config.load(cfg))
    return model, model.init(3)


def test_lif_network_config_as_a_new_user_runs_it(tmp_path, capsys, monkeypatch):
    """`neurosnap simulate models/lif-network.toml`, from the repository root, with defaults."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "lif-network"
    assert cli.main(["simulate", "models/lif-network.toml", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LIF network (1,000 units, weight density 0.1) simulated for 1,000 steps (1 s" in text
    rec = sim.Recording.load(out)
    rate = rec.n_events / (1000 * 1.0)
    assert 3.0 < rate < 30.0, f"the documented network should fire at about 9 Hz, got {rate}"
    assert rec.meta["input"]["kind"] == "poisson" and rec.meta["units"] == [0, 1, 2, 3, 4]
    assert {p.name for p in out.iterdir()} >= {
        "recording.npz",
        "recording.json",
        "raster.png",
        "rate.png",
        "traces.png",
        "isi.png",
        "summary.png",
    }


# -- plots ------------------------------------------------------------------------------------------
def test_plot_functions_return_axes_and_write_pngs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    model, params = _model("LIF")
    rec = ns.simulate(model, params, _xs(300, 2), "events,v", units=[0, 3])
    fig = Figure()
    axes = fig.subplots(2, 2).ravel()
    assert isinstance(ns.plot.raster(rec, axes[0], t_start=0.01, t_stop=0.2, units=range(10)), Axes)
    assert isinstance(ns.plot.rate(rec, axes[1]), Axes)
    assert isinstance(ns.plot.traces(rec, axes[2], var="v", units=[3]), Axes)
    assert isinstance(ns.plot.isi_histogram(rec, axes[3], log=True), Axes)
    fig.savefig(tmp_path / "grid.png")
    assert isinstance(ns.plot.raster(rec), Axes)  # ax=None: a new pyplot figure
    import matplotlib.pyplot as plt

    plt.close("all")
    summary = ns.plot.summary_figure(rec, tmp_path / "summary.png")
    assert isinstance(summary, Figure) and (tmp_path / "summary.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="units \\[1\\] were not recorded"):
        ns.plot.traces(rec, axes[2], units=[1])
    rate_only = ns.simulate(model, params, _xs(), "rate")
    ns.plot.summary_figure(rate_only, tmp_path / "rate_only.png")  # missing panels say so
    with pytest.raises(ValueError, match="events was not recorded"):
        ns.plot.raster(rate_only, axes[0])
