"""Checkpoints: atomic, pickle-free, exact resume (also after kill -9 and SIGTERM)."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import neurosnap as ns
from neurosnap import checkpoint as ckpt


def _run(**kw):
    model = ns.Model(ns.cells.EGRU(4, 8), n_out=2)
    return ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), seed=3, **kw)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall"} for r in rows]


def _same(h1, h2):
    assert all(np.array_equal(h1.params[k], h2.params[k]) for k in h1.params)
    assert _strip(h1.rows) == _strip(h2.rows)


def test_resume_extends_a_finished_run_bit_identically(tmp_path):
    full = _run(steps=2000)
    _run(steps=900, checkpoint_dir=tmp_path, checkpoint_every=300)
    _same(full, _run(steps=2000, checkpoint_dir=tmp_path, resume=True))


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    _same(_run(steps=300), _run(steps=300, checkpoint_dir=tmp_path, resume=True))


def test_resume_refuses_other_settings(tmp_path):
    _run(steps=200, checkpoint_dir=tmp_path)
    model = ns.Model(ns.cells.EGRU(4, 8), n_out=2)
    with pytest.raises(ckpt.CheckpointError, match="rule"):
        ns.train(
            model,
            ns.rules.BPTT(),
            ns.optim.Adam(1e-2),
            ns.tasks.Copy(),
            seed=3,
            steps=400,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_checkpoint_file_is_plain_npz_with_json(tmp_path):
    _run(steps=200, checkpoint_dir=tmp_path)
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as data:
        meta = json.loads(data["__meta__.json"].tobytes())
        assert meta["format_version"] == ckpt.FORMAT_VERSION
        assert data["params/cell.w_rec"].dtype == np.float64


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ckpt.CheckpointError, match="object array"):
        ckpt.load(path)


def test_truncated_file_is_refused(tmp_path):
    _run(steps=200, checkpoint_dir=tmp_path)
    data = (tmp_path / "checkpoint.npz").read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="unreadable or truncated"):
        ckpt.load(bad)


def test_wrong_version_and_missing_metadata_are_refused(tmp_path):
    ckpt.save(tmp_path / "a.npz", {"x": np.zeros(2)}, {"format_version": 0})
    arrays, meta = ckpt.load(tmp_path / "a.npz")  # save() stamps the version
    assert meta["format_version"] == ckpt.FORMAT_VERSION
    path = tmp_path / "b.npz"
    np.savez(
        path,
        x=np.zeros(2),
        **{"__meta__.json": np.frombuffer(b'{"format_version": 99}', dtype=np.uint8)},
    )
    with pytest.raises(ckpt.CheckpointError, match="format_version 99"):
        ckpt.load(path)
    np.savez(tmp_path / "c.npz", x=np.zeros(2))
    with pytest.raises(ckpt.CheckpointError, match="no metadata"):
        ckpt.load(tmp_path / "c.npz")
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load(tmp_path / "missing.npz")


def test_divergence_leaves_last_checkpoint_intact(tmp_path):
    model = ns.Model(ns.cells.LeakyRNN(4, 6), n_out=2)

    def inject_nan(row, params):  # a fault in the weights after 300 good steps
        if row["step"] > 300:
            params["cell.w_in"][0, 0, 0] = np.nan

    with pytest.raises(FloatingPointError, match=r"time step (\d+)") as info:
        ns.train(
            model,
            ns.rules.RTRL(),
            ns.optim.SGD(0.1),
            ns.tasks.Copy(),
            steps=5000,
            checkpoint_dir=tmp_path,
            checkpoint_every=1,
            callback=inject_nan,
        )
    failed_at = int(re.search(r"time step (\d+)", str(info.value)).group(1))
    arrays, meta = ckpt.load(tmp_path / "checkpoint.npz")
    assert meta["t"] <= failed_at
    assert all(np.all(np.isfinite(v)) for v in arrays.values())


SCRIPT = textwrap.dedent("""
    import sys, neurosnap as ns
    steps, out = int(sys.argv[1]), sys.argv[2]
    model = ns.Model(ns.cells.EGRU(4, 8), n_out=2)
    h = ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), seed=3,
                 steps=steps, checkpoint_dir=out, checkpoint_every=200, resume=True,
                 callback=lambda row, p: print(row["step"], flush=True))
    print("interrupted" if h.interrupted else "done", flush=True)
""")


def _spawn(tmp_path, steps):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(steps), str(tmp_path / "ck")],
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoint(tmp_path, proc, timeout=120):
    deadline = time.time() + timeout
    while not (tmp_path / "ck" / "checkpoint.npz").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail("no checkpoint was written")
        time.sleep(0.05)
    time.sleep(0.3)


def test_kill_9_mid_run_then_resume_is_bit_identical(tmp_path):
    steps = 3000
    proc = _spawn(tmp_path, steps)
    _wait_for_checkpoint(tmp_path, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    _, meta = ckpt.load(tmp_path / "ck" / "checkpoint.npz")
    assert 0 < meta["t"] < steps  # really killed mid-run
    model = ns.Model(ns.cells.EGRU(4, 8), n_out=2)
    resumed = ns.train(
        model,
        ns.rules.RTRL(),
        ns.optim.Adam(1e-2),
        ns.tasks.Copy(),
        seed=3,
        steps=steps,
        checkpoint_dir=tmp_path / "ck",
        resume=True,
    )
    _same(_run(steps=steps), resumed)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    proc = _spawn(tmp_path, 10**6)
    _wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip().endswith("interrupted")
    last_step = int(out.split()[-2])
    _, meta = ckpt.load(tmp_path / "ck" / "checkpoint.npz")
    assert meta["t"] == last_step  # saved at the stop


def test_resume_with_log_every_is_bit_identical(tmp_path):
    full = _run(steps=2000, log_every=300)
    _run(steps=1100, checkpoint_dir=tmp_path, checkpoint_every=200, log_every=300)
    _same(full, _run(steps=2000, checkpoint_dir=tmp_path, resume=True, log_every=300))
