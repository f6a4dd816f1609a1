"""Robustness under adversarial input (issue 18): one test group per class of failure.

Numbers beyond float range and sizes beyond memory, non-finite results, validated checkpoints and
recordings, the safe ``.npz`` reader against crafted malicious files, ``from_nir`` validation,
garbage arguments and memory-layout normalisation.
"""

import copy
import io
import json
import resource
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import neurosnap as ns
from neurosnap import checkpoint as ckpt
from neurosnap import config
from neurosnap.core import npz, validate
from neurosnap.simulation import Recording, load_inputs, load_params
from neurosnap.tasks.store_recall import StoreRecall, valid_probability


# -- 3. values that pass validation and then fail deep inside --------------------------------------
@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: ns.cells.LIF(2, 4, tau_mem=10**400), "tau_mem"),
        (lambda: ns.cells.EGRU(2, 4, w_in_scale=-(10**400)), "w_in_scale"),
        (lambda: ns.optim.Adam(lr=10**401), "lr"),
        (lambda: ns.tasks.Pattern(duration=10**400), "duration"),
        (lambda: ns.gates.Triangle(gamma=10**309), "gamma"),
    ],
)
def test_python_ints_beyond_float_range_are_value_errors(make, arg):
    with pytest.raises(ValueError, match=f"^{arg} must be a finite real number"):
        make()


def test_huge_sizes_are_refused_with_a_memory_estimate():
    with pytest.raises(ValueError, match=r"n_hidden=10000000 needs about .* PiB .*memory"):
        ns.cells.EGRU(2, 10**7)
    with pytest.raises(ValueError, match=r"n_in=.* needs about"):
        ns.cells.LIF(10**12, 4)
    model = ns.Model(ns.cells.LeakyRNN(2, 3), n_out=2)
    task = ns.tasks.Adding(length=5)
    for batch in (10**20, 2**40):
        with pytest.raises(ValueError, match="batch_size"):
            ns.train(model, ns.rules.RTRL(), ns.optim.SGD(0.1), task, steps=5, batch_size=batch)
        with pytest.raises(ValueError, match="batch_size"):
            task.sample(np.random.default_rng(0), batch)


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: ns.tasks.Pattern(duration=1e308), "duration"),
        (lambda: ns.tasks.Pattern(dt=5e-324), "duration"),
        (lambda: ns.tasks.Evidence(delay=1e308), "delay"),
        (lambda: ns.tasks.Evidence(dt=1e-300), "cue_duration"),
    ],
)
def test_durations_that_overflow_step_counting(make, arg):
    with pytest.raises(ValueError, match=f"^{arg}=.* steps of dt"):
        make()


def test_store_recall_settings_are_checked_at_construction():
    for delay in (1e-9, 1e9):
        with pytest.raises(ValueError, match="seq_delay=.* too rare"):
            StoreRecall(seq_delay=delay)
    with pytest.raises(ValueError, match="seq_delay"):
        StoreRecall(seq_len=10**15, tau_char=1)
    task = StoreRecall.small(eval_size=0)  # accepted settings sample
    assert task.sample(np.random.default_rng(0), 3).xs.shape == (60, 3, 20)


def test_store_recall_valid_probability_matches_sampling():
    rng = np.random.default_rng(1)
    task = StoreRecall(n_inputs=4, seq_len=6, tau_char=1, seq_delay=2.0, eval_size=0)
    draws, valid = 4000, 0
    for _ in range(draws):  # the same rule as _events
        events, last = np.full(6, -1), 3
        for t, u in enumerate(rng.random(6)):
            if u < task.p_event:
                last = 2 if last == 3 else 3
                events[t] = last
        stores = np.flatnonzero(events == 2)
        valid += bool(
            len(stores) and last == 3 and stores[-1] < 5 and np.all(events[stores + 1] == -1)
        )
    p = valid_probability(6, task.p_event)
    assert abs(valid / draws - p) < 4 * np.sqrt(p * (1 - p) / draws)
    assert valid_probability(3, 0.5) == pytest.approx(0.125, abs=1e-15)  # by hand: S, -, R


def test_curriculum_level_is_bounded_on_load():
    task = ns.tasks.Copy(max_length=20)
    for state in (
        {"level": 10**12, "recent": []},
        {"level": 0, "recent": []},
        {"level": 3, "recent": [1.0] * 100},
        {"level": 3},
        [3],
    ):
        with pytest.raises((ValueError, TypeError), match="level|recent|state"):
            task.load_state_dict(state)
    task.load_state_dict({"level": 7, "recent": [0.5]})
    assert task.level == 7


# -- 4. non-finite results ------------------------------------------------------------------------
def test_non_finite_results_raise_floating_point_error():
    model = ns.Model(ns.cells.LeakyRNN(2, 3), n_out=2)
    params = model.init(0)
    params["readout.weight"] = np.full((2, 3), 1e308)
    xs, ys = np.ones((3, 1, 2)), np.array([[0], [1], [0]])
    with pytest.raises(FloatingPointError, match="sequence_grad: non-finite loss"):
        ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
    tri = ns.Model(ns.cells.EGRU(2, 3, gate=ns.gates.Heaviside(ns.gates.Triangle(gamma=1e300))), 2)
    with pytest.raises(FloatingPointError, match=r"sequence_grad: non-finite grads\['cell"):
        ns.sequence_grad(
            tri, tri.init(0), np.ones((5, 1, 2)), np.zeros((5, 1), int), ns.rules.RTRL()
        )
    with pytest.raises(FloatingPointError, match="Model.init: non-finite cell.w_in"):
        ns.Model(ns.cells.LIF(2, 3, w_in_scale=1.79e308), n_out=2).init(0)
    lif = ns.Model(ns.cells.LIF(2, 3), n_out=2)
    hot = lif.init(0)
    hot["cell.w_in"] = np.full_like(hot["cell.w_in"], 1e308)
    with pytest.raises(FloatingPointError, match="Model.run: non-finite states"):
        lif.run(hot, np.ones((4, 1, 2)) * 10)
    with pytest.raises(FloatingPointError, match="simulate: non-finite rate.*dt=5e-324"):
        ns.simulate(lif, lif.init(0), np.ones((5, 1, 2)), "events", dt=5e-324)
    for engine in ("step", "event"):
        with pytest.raises(FloatingPointError, match=r"simulate \(steps 0\.\.3\): non-finite"):
            ns.simulate(lif, hot, np.ones((4, 1, 2)) * 10, "events", engine=engine)


# -- 8. garbage accepted ------------------------------------------------------------------------
def _tiny():
    return ns.Model(ns.cells.LeakyRNN(2, 3), n_out=1, loss="mse"), ns.tasks.Adding(length=4)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"stats": "no"}, "stats"),
        ({"stats": 1}, "stats"),
        ({"callback": "print"}, "callback"),
        ({"progress": "yes"}, "progress"),
        ({"resume": "false"}, "resume"),
    ],
)
def test_train_refuses_garbage_before_running(kwargs, arg):
    model, task = _tiny()
    with pytest.raises(TypeError, match=f"^{arg} must be"):
        ns.train(model, ns.rules.RTRL(), ns.optim.SGD(0.1), task, steps=4, **kwargs)


def test_toml_stats_string_is_refused():
    cfg = {
        "model": {"cell": "EGRU", "n_hidden": 4},
        "task": {"name": "copy"},
        "rule": {"name": "RTRL"},
        "optimizer": {"name": "Adam"},
        "train": {"steps": 10, "stats": "false"},
    }
    with pytest.raises(config.ConfigError, match=r"\[train\] stats must be true or false"):
        config.build(cfg)


@pytest.mark.parametrize(
    "override", ["model.cell_options=7", 'model.cell_options="xy"', "model.cell_options=[1]"]
)
def test_config_cell_options_must_be_a_table(override):
    cfg = {
        "model": {"cell": "EGRU", "n_hidden": 4},
        "task": {"name": "copy"},
        "rule": {"name": "RTRL"},
        "optimizer": {"name": "Adam"},
        "train": {"steps": 10},
    }
    with pytest.raises(config.ConfigError, match=r"cell_options must be a table"):
        config.build(config.apply_overrides(cfg, [override]))
    with pytest.raises(config.ConfigError, match="nested too deeply"):
        config.apply_overrides(cfg, ["model.x=" + "[" * 5000 + "]" * 5000])


def test_config_load_refuses_bad_bytes_and_nesting(tmp_path):
    (tmp_path / "bad.toml").write_bytes(b'[model]\ncell = "\xff\xfe"\n')
    with pytest.raises(config.ConfigError, match="not valid TOML|not UTF-8 text"):
        config.load(tmp_path / "bad.toml")
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(config.ConfigError, match="nested too deeply"):
        config.load(tmp_path / "deep.toml")
    with pytest.raises(config.ConfigError, match="is a directory"):
        config.load(tmp_path)


def test_to_nir_readout_must_be_a_bool():
    pytest.importorskip("nir")
    from neurosnap.io.nir import to_nir

    model = ns.Model(ns.cells.LIF(2, 3), n_out=2)
    with pytest.raises(TypeError, match="^readout must be a bool"):
        to_nir(model, model.init(0), readout=None)


def test_matrix_and_masked_arrays_name_the_argument():
    model = ns.Model(ns.cells.EGRU(2, 3), n_out=2)
    params, xs, ys = model.init(0), np.ones((3, 1, 2)), np.zeros((3, 1), int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.matrix(params["readout.weight"])
    with pytest.raises(TypeError, match=r"^params\['readout.weight'\] must be a plain numpy array"):
        model.run({**params, "readout.weight": matrix}, xs)
    masked = np.ma.masked_array(xs, mask=np.zeros_like(xs, bool))
    for kw, arg in (
        ({"xs": masked}, "xs"),
        ({"ys": np.ma.masked_array(ys)}, "ys"),
        ({"mask": np.ma.masked_array(np.ones((3, 1), bool))}, "mask"),
    ):
        args = {"xs": xs, "ys": ys, **kw}
        with pytest.raises(TypeError, match=f"^{arg} must be a plain numpy array"):
            ns.sequence_grad(
                model, params, args["xs"], args["ys"], ns.rules.RTRL(), mask=kw.get("mask")
            )


# -- 9. memory layout -----------------------------------------------------------------------------
def _layouts(a):
    """The same numbers in Fortran order and as a strided view."""
    big = np.zeros(a.shape + (2,), a.dtype)
    big[..., 0] = a
    return [np.asfortranarray(a), big[..., 0]]


@pytest.mark.parametrize("cell", ["EGRU", "LIF", "ALIF", "LeakyRNN"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layout_does_not_change_a_single_bit(cell, dtype):
    model = ns.Model(ns.cells.CELLS[cell](3, 5, 0.6, seed=1), n_out=2, dtype=dtype)
    params = model.init(2)
    rng = np.random.default_rng(0)
    xs = (rng.random((6, 3, 3)) < 0.5).astype(dtype) * 2.0
    ys = rng.integers(0, 2, (6, 3))
    ref_run = model.run(params, xs)
    ref_loss, ref_grads = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
    for i in range(2):
        odd = {k: _layouts(v)[i] for k, v in params.items()}
        odd_xs = _layouts(xs)[i]
        assert not odd_xs.flags.c_contiguous
        run = model.run(odd, odd_xs)
        assert np.array_equal(run.outputs, ref_run.outputs)
        assert np.array_equal(run.states, ref_run.states)
        loss, grads = ns.sequence_grad(model, odd, odd_xs, _layouts(ys)[i], ns.rules.RTRL())
        assert loss == ref_loss
        assert all(np.array_equal(grads[k], ref_grads[k]) for k in grads)


def test_check_params_does_not_copy_contiguous_arrays():
    model = ns.Model(ns.cells.EGRU(2, 3), n_out=2)
    params = model.init(0)
    checked = model.check_params(params)
    assert all(checked[k] is params[k] for k in params)


# -- 2. checkpoint and recording schema -----------------------------------------------------------
def _checkpoint(tmp_path):
    model = ns.Model(ns.cells.EGRU(4, 6), n_out=2)
    args = (model, ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy())
    ns.train(*args, steps=60, seed=1, checkpoint_dir=tmp_path, checkpoint_every=20)
    path = tmp_path / "checkpoint.npz"
    with zipfile.ZipFile(path) as zf:
        members = {n[:-4]: np.lib.format.read_array(zf.open(n)) for n in zf.namelist()}
    meta = json.loads(members.pop(ckpt.META_KEY).tobytes())
    return args, path, members, meta


def _write(path, members, meta):
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    np.savez(path, **members, **{ckpt.META_KEY: np.frombuffer(raw, np.uint8)})


def _deep(depth):
    tree = 0
    for _ in range(depth):
        tree = {"x": tree}
    return tree


META_MUTATIONS = {
    "a list": lambda m: [m],
    "missing t": lambda m: {k: v for k, v in m.items() if k != "t"},
    "missing rng": lambda m: {k: v for k, v in m.items() if k != "rng"},
    "t NaN": lambda m: {**m, "t": float("nan")},
    "t negative": lambda m: {**m, "t": -1},
    "t 1e308": lambda m: {**m, "t": 1e308},
    "t huge int": lambda m: {**m, "t": 10**30},
    "t bool": lambda m: {**m, "t": True},
    "updates > t": lambda m: {**m, "updates": m["t"] + 1},
    "wall inf": lambda m: {**m, "wall": float("inf")},
    "wall string": lambda m: {**m, "wall": "1"},
    "deep nesting": lambda m: {**m, "task": _deep(40)},
    "very deep nesting": lambda m: (
        json.dumps({**m, "task": "@"})
        .replace('"@"', '{"x": ' * 100_000 + "0" + "}" * 100_000)
        .encode()
    ),
    "signature a list": lambda m: {**m, "signature": [1]},
    "rows not a list": lambda m: {**m, "rows": {"a": 1}},
    "row with a string": lambda m: {**m, "rows": [{"loss": "x"}]},
    "more rows than steps": lambda m: {**m, "rows": [{}] * (m["t"] + 1)},
    "scalars missing count": lambda m: {**m, "scalars": {}},
    "scalars count negative": lambda m: {**m, "scalars": {"opt/count": -3}},
    "rng garbage": lambda m: {**m, "rng": {"bit_generator": "PCG64", "state": "x"}},
    "rng other generator": lambda m: {**m, "rng": {**m["rng"], "bit_generator": "MT19937"}},
    "curriculum level 1e12": lambda m: {**m, "task": {"level": 10**12, "recent": []}},
    "curriculum level string": lambda m: {**m, "task": {"level": "3", "recent": []}},
}


@pytest.mark.parametrize("mutation", sorted(META_MUTATIONS))
def test_corrupt_checkpoint_metadata_is_a_checkpoint_error(tmp_path, mutation):
    args, path, members, meta = _checkpoint(tmp_path)
    _write(path, members, META_MUTATIONS[mutation](meta))
    with pytest.raises((ckpt.CheckpointError, ValueError)) as info:
        ns.train(*args, steps=120, seed=1, checkpoint_dir=tmp_path, resume=True)
    assert "checkpoint" in str(info.value) or "level" in str(info.value)


ARRAY_MUTATIONS = {
    "optimizer moment of the wrong shape": lambda a: {**a, "opt/mu/readout.bias": np.zeros(1)},
    "optimizer moment as a scalar": lambda a: {**a, "opt/nu/readout.bias": np.float64(0.0)},
    "missing pending core": lambda a: {k: v for k, v in a.items() if k != "pending/core"},
    "missing pending bias": lambda a: {k: v for k, v in a.items() if k != "pending/readout.bias"},
    "extra member": lambda a: {**a, "params/extra": np.zeros(3)},
    "float32 params": lambda a: {**a, "params/readout.bias": np.zeros(2, np.float32)},
    "NaN in the parameters": lambda a: {**a, "params/readout.bias": np.array([np.nan, 0.0])},
    "integer pending": lambda a: {**a, "pending/core": a["pending/core"].astype(np.int64)},
}


@pytest.mark.parametrize("mutation", sorted(ARRAY_MUTATIONS))
def test_corrupt_checkpoint_arrays_are_a_checkpoint_error(tmp_path, mutation):
    args, path, members, meta = _checkpoint(tmp_path)
    _write(path, ARRAY_MUTATIONS[mutation](members), meta)
    with pytest.raises(ckpt.CheckpointError, match="checkpoint"):
        ns.train(*args, steps=120, seed=1, checkpoint_dir=tmp_path, resume=True)


def test_valid_checkpoint_still_resumes(tmp_path):
    args, path, members, meta = _checkpoint(tmp_path)
    _write(path, members, meta)  # rewritten unchanged
    resumed = ns.train(*args, steps=120, seed=1, checkpoint_dir=tmp_path, resume=True)
    full = ns.train(*args[:3], ns.tasks.Copy(), steps=120, seed=1)
    assert all(np.array_equal(resumed.params[k], full.params[k]) for k in full.params)


def _recording(tmp_path):
    model = ns.Model(ns.cells.LIF(3, 5), n_out=2)
    ns.simulate(
        model, model.init(0), np.ones((7, 2, 3)), "events,v", units=[0, 2], out=tmp_path / "rec"
    )
    meta = json.loads((tmp_path / "rec" / "recording.json").read_text())
    return tmp_path / "rec", meta


RECORDING_MUTATIONS = {
    "a list": lambda m: [m],
    "n_steps negative": lambda m: {**m, "n_steps": -1},
    "n_steps string": lambda m: {**m, "n_steps": "7"},
    "n_events wrong": lambda m: {**m, "n_events": m["n_events"] + 1},
    "dt zero": lambda m: {**m, "dt": 0},
    "dt NaN": lambda m: {**m, "dt": float("nan")},
    "recorded missing": lambda m: {k: v for k, v in m.items() if k != "recorded"},
    "recorded states garbage": lambda m: {**m, "recorded": {**m["recorded"], "states": [1]}},
    "unit out of range": lambda m: {**m, "units": [0, 99]},
    "batch wrong": lambda m: {**m, "batch": 3},
    "deep nesting": lambda m: m,  # written as raw text below
    "state dtype bogus": lambda m: {**m, "arrays": {**m["arrays"], "state_v": {"dtype": "object"}}},
}


@pytest.mark.parametrize("mutation", sorted(RECORDING_MUTATIONS))
def test_corrupt_recording_metadata_is_a_value_error(tmp_path, mutation):
    directory, meta = _recording(tmp_path)
    new = RECORDING_MUTATIONS[mutation](meta)
    (directory / "recording.json").write_text(
        json.dumps(new) if mutation != "deep nesting" else '{"x": ' * 100_000 + "1" + "}" * 100_000
    )
    with pytest.raises(ValueError, match="recording"):
        Recording.load(directory)


def test_valid_recording_loads(tmp_path):
    directory, _ = _recording(tmp_path)
    rec = Recording.load(directory)
    assert rec.states["v"].shape == (7, 2, 2) and rec.rate.shape == (1, 2)


# -- 5. the safe npz reader against crafted files -------------------------------------------------
def _npy_header(shape, dtype="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _bomb(path, good: dict, size=256 << 20):
    """``good`` members plus an unused deflated member of ``size`` zero bytes (a "deflate bomb")."""
    np.savez(path, **good)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("junk.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((size // 8,)))
            block = bytes(1 << 22)
            for _ in range(size // len(block)):
                f.write(block)


def _huge_header(path, key):
    """An .npz whose member ``key`` declares 2**40 float64 in a tiny file."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{key}.npy", _npy_header((2**40,)) + bytes(1024))


def _loaders(tmp_path):
    model = ns.Model(ns.cells.LIF(3, 4), n_out=2)
    params = model.init(0)
    directory, _ = _recording(tmp_path)
    return {
        "params": (lambda p: load_params(model, p), {**params}, "params"),
        "checkpoint": (
            ckpt.load,
            {
                "params/x": np.zeros(3),
                ckpt.META_KEY: np.frombuffer(b'{"format_version": 1}', np.uint8),
            },
            "checkpoint",
        ),
        "inputs": (load_inputs, {"xs": np.ones((4, 1, 3))}, "inputs"),
        "simulate": (lambda p: ns.simulate(model, params, p), {"xs": np.ones((4, 1, 3))}, "inputs"),
        "recording": (lambda p: Recording.load(directory), None, "recording"),
    }


@pytest.mark.parametrize("loader", ["params", "checkpoint", "inputs", "simulate", "recording"])
@pytest.mark.parametrize(
    "kind", ["truncated", "random bytes", "huge header", "directory", "empty", "text"]
)
def test_malicious_files(tmp_path, loader, kind):
    load, good, what = _loaders(tmp_path)[loader]
    path = tmp_path / "rec" / "recording.npz" if loader == "recording" else tmp_path / "f.npz"
    if good is not None:
        np.savez(path, **good)
    data = path.read_bytes()
    if kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif kind == "huge header":
        _huge_header(
            path,
            "xs"
            if what == "inputs"
            else "spike_steps"
            if loader == "recording"
            else "params/x"
            if loader == "checkpoint"
            else "cell.w_in",
        )
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("not an archive\n")
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert "pickle" not in message.replace("never unpickles", "")
    assert "object array" not in message
    if kind == "directory":
        assert "is a directory" in message or "not a recording" in message
    else:
        assert f"not a valid neurosnap {what} file" in message, message


@pytest.mark.parametrize("loader", ["params", "inputs", "recording"])
def test_deflate_bomb_member_is_never_decompressed(tmp_path, loader):
    """An unused 256 MiB deflated member costs neither memory nor time (tracemalloc: < 8 MiB)."""
    model = ns.Model(ns.cells.LIF(3, 4), n_out=2)
    params = model.init(0)
    if loader == "recording":
        directory, _ = _recording(tmp_path)
        with zipfile.ZipFile(directory / "recording.npz") as zf:
            good = {n[:-4]: np.lib.format.read_array(zf.open(n)) for n in zf.namelist()}
        path, load = directory / "recording.npz", lambda p: Recording.load(directory)
    elif loader == "params":
        good, path, load = params, tmp_path / "p.npz", lambda p: load_params(model, p)
    else:
        good, path = {"xs": np.ones((4, 1, 3))}, tmp_path / "x.npz"
        load = load_inputs
    _bomb(path, good)
    assert path.stat().st_size < (4 << 20)
    tracemalloc.start()
    try:
        if loader == "params":  # an unexpected member: refused from the names
            with pytest.raises(ValueError, match="unexpected \\['junk'\\]"):
                load(path)
        else:
            result = load(path)
            if loader == "recording":
                assert result.spike_units.shape == (result.n_events,)
            else:
                assert result.shape == (4, 1, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_safe_reader_reads_only_selected_members(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    np.savez(path, a=np.arange(3), b=np.ones((2, 2)))
    assert set(npz.headers(path, "test")) == {"a", "b"}
    read = []
    original = npz._data
    monkeypatch.setattr(npz, "_data", lambda f, head: read.append(head.name) or original(f, head))
    arrays = npz.read(path, "test", lambda found: ["b"])
    assert read == ["b"] and np.array_equal(arrays["b"], np.ones((2, 2)))
    np.savez(tmp_path / "f.npz", a=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    a = npz.read(tmp_path / "f.npz", "test")["a"]
    assert a.flags.c_contiguous and np.array_equal(a, np.arange(6.0).reshape(2, 3))


def test_loading_stays_within_memory(tmp_path):
    """Crafted files never make a loader allocate what their headers claim."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _huge_header(tmp_path / "h.npz", "xs")
    for _ in range(3):
        with pytest.raises(ValueError, match="more than this machine's memory"):
            load_inputs(tmp_path / "h.npz")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 200_000  # kB


# -- 6. from_nir ----------------------------------------------------------------------------------
def _graph():
    pytest.importorskip("nir")
    from neurosnap.io.nir import to_nir

    model = ns.Model(ns.cells.LIF(2, 3), n_out=2)
    return to_nir(model, model.init(0))


def _meta_config(graph, change):
    cfg = json.loads(graph.metadata["neurosnap_model"])
    change(cfg)
    graph.metadata["neurosnap_model"] = json.dumps(cfg)


NIR_MUTATIONS = {
    "dt 0": (lambda g: g.metadata.update(dt=0.0), "dt must be > 0"),
    "dt string": (lambda g: g.metadata.update(dt="x"), "metadata\\['dt'\\]"),
    "tau_syn 0": (lambda g: setattr(g.nodes["lif"], "tau_syn", np.zeros(3)), "tau_syn must be > 0"),
    "tau_mem negative": (lambda g: setattr(g.nodes["lif"], "tau_mem", -np.ones(3)), "tau_mem"),
    "empty neuron arrays": (lambda g: setattr(g.nodes["lif"], "v_leak", np.zeros(0)), "v_leak"),
    "NaN threshold": (
        lambda g: setattr(g.nodes["lif"], "v_threshold", np.full(3, np.nan)),
        "v_threshold",
    ),
    "w_in of the wrong length": (lambda g: setattr(g.nodes["lif"], "w_in", np.ones(7)), "w_in"),
    "empty input weights": (
        lambda g: setattr(g.nodes["w_in"], "weight", np.zeros((0, 2))),
        "weight",
    ),
    "no n_out": (lambda g: _meta_config(g, lambda c: c.pop("n_out")), "n_out"),
    "bogus dtype": (lambda g: _meta_config(g, lambda c: c.update(dtype="float16")), "dtype"),
    "bogus surrogate": (
        lambda g: _meta_config(g, lambda c: c["cell_options"]["gate"].update(surrogate="bogus")),
        "surrogate",
    ),
    "config a list": (lambda g: g.metadata.update(neurosnap_model="[1, 2]"), "neurosnap_model"),
    "config not JSON": (lambda g: g.metadata.update(neurosnap_model="{"), "neurosnap_model"),
}


@pytest.mark.parametrize("mutation", sorted(NIR_MUTATIONS))
def test_from_nir_validates(mutation):
    from neurosnap.io.nir import from_nir

    graph = copy.deepcopy(_graph())
    change, pattern = NIR_MUTATIONS[mutation]
    change(graph)
    with pytest.raises(ValueError, match=pattern):
        from_nir(graph)


def test_from_nir_files(tmp_path):
    pytest.importorskip("nir")
    from neurosnap.io.nir import from_nir

    (tmp_path / "x.nir").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a valid NIR file"):
        from_nir(tmp_path / "x.nir")
    with pytest.raises(ValueError, match="NIR file not found"):
        from_nir(tmp_path / "missing.nir")
    with pytest.raises(ValueError, match="is a directory"):
        from_nir(tmp_path)
    with pytest.raises(ValueError, match="dt must be > 0"):
        from_nir(_graph(), dt=0.0)


def test_validate_helpers():
    assert validate.steps("d", 1.0, 0.25) == 4
    with pytest.raises(ValueError, match="^d=1e\\+308 is more than"):
        validate.steps("d", 1e308, 1e-3)
    with pytest.raises(TypeError, match="^flag must be a bool"):
        validate.boolean("flag", "false")
    with pytest.raises(ValueError, match="^n must be <= 9007199254740992"):
        validate.positive_int("n", 10**20)
    with pytest.raises(FloatingPointError, match="^here: non-finite b"):
        validate.finite("here", a=np.zeros(2), b=np.array([np.inf]))
    with pytest.raises(TypeError, match="^xs must be a numeric array"):
        validate.array("xs", [[1, 2], [3]])
