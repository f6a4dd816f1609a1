"""``neurosnap sweep``: grids in local processes and on a real Dask ``LocalCluster``; failures are
reported, never swallowed; rules and models pickle cleanly."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

import neurosnap as ns
from neurosnap import cli
from neurosnap.rules import RULES
from neurosnap.sweep import GridError, grid_points, parse_grid, point_config, sweep

CONFIG = {
    "model": {"cell": "EGRU", "n_hidden": 5, "density": 1.0},
    "task": {"name": "copy", "window": 4},
    "rule": {"name": "RTRL", "sparse": True},
    "optimizer": {"name": "Adam", "lr": 0.01},
    "train": {"steps": 60, "seed": 0},
}


def test_parse_grid_and_points():
    axes = parse_grid(["rule.name=RTRL,BPTT", "train.seed=0,1", "task.start_length=1"])
    assert axes == [
        ("rule.name", ["RTRL", "BPTT"]),
        ("train.seed", ["0", "1"]),
        ("task.start_length", ["1"]),
    ]
    points = grid_points(axes)
    assert len(points) == 4
    assert points[1] == [("rule.name", "RTRL"), ("train.seed", "1"), ("task.start_length", "1")]
    assert parse_grid({"model.density": [1.0, 0.5], "rule.name": "BPTT", "x.y": [[1, 2]]}) == [
        ("model.density", ["1.0", "0.5"]),
        ("rule.name", ['"BPTT"']),
        ("x.y", ["[1, 2]"]),
    ]
    assert parse_grid(["x.y=[1, 2],[3]"]) == [("x.y", ["[1, 2]", "[3]"])]


@pytest.mark.parametrize(
    "grid, message",
    [
        (["rule.name"], "must look like section.key=value1,value2"),
        (["seed=1,2"], "must look like section.key"),
        (["a.b=1,,2"], "empty value"),
        (["a.b=1", "a.b=2"], "given twice"),
        (["a.b=1.2.3"], "not a TOML value"),
        ([], "the grid is empty"),
    ],
)
def test_grid_errors(grid, message):
    with pytest.raises(GridError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_grid(grid)


def test_rule_name_replaces_the_rule_table():
    cfg = point_config(CONFIG, [("rule.name", "BPTT"), ("rule.truncation", "4")])
    assert cfg["rule"] == {"name": "BPTT", "truncation": 4}
    cfg = point_config(CONFIG, [("rule.name", "RTRL")])  # same rule: keeps its keys
    assert cfg["rule"] == {"name": "RTRL", "sparse": True}


def _config_file(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text(
        '[model]\ncell = "EGRU"\nn_hidden = 5\n[task]\nname = "copy"\nwindow = 4\n'
        '[rule]\nname = "RTRL"\nsparse = true\n[optimizer]\nname = "Adam"\nlr = 0.01\n'
        "[train]\nsteps = 60\nseed = 0\n"
    )
    return path


def test_local_sweep_two_workers_reports_failures(tmp_path, capsys):
    """A point that diverges (lr = 1e308) is a failed row with its error; the others run."""
    out = tmp_path / "out"
    rc = cli.main(
        [
            "sweep",
            str(_config_file(tmp_path)),
            "--grid",
            "rule.name=RTRL,BPTT",
            "optimizer.lr=0.01,1e308",
            "--workers",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 1  # a failed point fails the command
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "FloatingPointError: " in printed and "non-finite" in printed
    assert printed.count("[") >= 4 and "[4/4]" in printed  # a line per finished point
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rule.name"], r["optimizer.lr"], r["status"]) for r in rows] == [
        ("RTRL", "0.01", "ok"),
        ("RTRL", "1e+308", "failed"),
        ("BPTT", "0.01", "ok"),
        ("BPTT", "1e+308", "failed"),
    ]
    for r in rows:
        if r["status"] == "ok":
            assert r["error"] == "" and r["metric"] == "level" and float(r["final"]) >= 1
            assert 55 <= int(r["steps"]) <= 60 and float(r["wall_s"]) > 0
        else:
            assert r["error"].startswith("FloatingPointError: ") and "non-finite" in r["error"]
    data = json.loads((out / "sweep.json").read_text())
    assert data["grid"] == ["rule.name", "optimizer.lr"] and len(data["rows"]) == 4
    md = (out / "sweep.md").read_text()
    assert "4 grid points, 2 failed" in md and "| BPTT | 1e+308 | failed |" in md
    point = json.loads((out / "points" / "0001.json").read_text())
    assert "Traceback" in point["traceback"] and "FloatingPointError" in point["traceback"]


def test_every_point_is_validated_before_any_runs(tmp_path, monkeypatch):
    """An invalid value on one grid point stops the sweep before it starts, in one line (exit 2)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    for grid, needle in (
        (["model.density=1.0,1.5"], "grid point model.density=1.5: [model] density"),
        (["rule.name=RTRL,rtrl"], "Did you mean 'RTRL'?"),
        (["train.stepz=1,2"], "Did you mean 'steps'?"),
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "neurosnap",
                "sweep",
                str(_config_file(tmp_path)),
                "--grid",
                *grid,
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists()


def test_interrupted_sweep_keeps_finished_points_and_resumes(tmp_path, monkeypatch, capsys):
    import neurosnap.sweep as sw

    real, calls, pending = sw.run_point, [], [True]

    def interrupted(cfg, point, progress=False):
        calls.append(point)
        if len(calls) == 2 and pending:
            pending.clear()
            raise KeyboardInterrupt
        return real(cfg, point, progress)

    monkeypatch.setattr(sw, "run_point", interrupted)
    out = tmp_path / "out"
    args = [
        "sweep",
        str(_config_file(tmp_path)),
        "--grid",
        "train.seed=0,1,2",
        "--workers",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 130
    captured = capsys.readouterr()
    assert "[1/3] ok" in captured.out and "interrupted after 1 of 3 grid points" in captured.err
    assert "1 grid points, 0 failed" in (out / "sweep.md").read_text()
    calls.clear()
    assert cli.main(args + ["--resume"]) == 0
    assert [p[0][1] for p in calls] == ["1", "2"]
    assert "(finished earlier, reused)" in capsys.readouterr().out
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert [r["train.seed"] for r in rows] == [0, 1, 2] and all(r["status"] == "ok" for r in rows)


def test_local_sweep_matches_in_process_training():
    """A worker builds everything from the config: the same result as training here."""
    rows = sweep(CONFIG, {"train.seed": [1]}, workers=1)
    model, rule, opt, task, kw = ns.config.build(dict(CONFIG, train={"steps": 60, "seed": 1}))
    history = ns.train(model, rule, opt, task, **kw)
    assert rows[0]["status"] == "ok" and rows[0]["final_loss"] == history.final("loss")


# -------------------------------------------------------------------------------------------------
# a real Dask cluster
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        scheduler_port=0,
        silence_logs=50,
    )
    try:
        yield cluster
    finally:
        cluster.close()


def test_dask_sweep_reports_a_failing_point(dask_cluster, tmp_path):
    rows = sweep(
        CONFIG,
        ["rule.name=RTRL,BPTT", "optimizer.lr=0.01,1e308", "train.seed=3"],
        scheduler=dask_cluster.scheduler_address,
        out=tmp_path,
    )
    status = [(r["rule.name"], r["optimizer.lr"], r["train.seed"], r["status"]) for r in rows]
    assert status == [
        ("RTRL", 0.01, 3, "ok"),
        ("RTRL", 1e308, 3, "failed"),
        ("BPTT", 0.01, 3, "ok"),
        ("BPTT", 1e308, 3, "failed"),
    ]
    for r in rows:
        if r["status"] == "failed":
            assert r["error"].startswith("FloatingPointError: ") and "non-finite" in r["error"]
            assert r["final"] is None
        else:
            assert r["error"] == "" and np.isfinite(r["final_loss"]) and r["host"]
    # the cluster's result equals a local run of the same point
    local = sweep(CONFIG, ["rule.name=BPTT", "optimizer.lr=0.01", "train.seed=3"], workers=1)
    assert local[0]["final_loss"] == rows[2]["final_loss"]
    assert "2 failed" in (tmp_path / "sweep.md").read_text()


# -------------------------------------------------------------------------------------------------
# pickling
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(RULES))
def test_rules_pickle(name):
    rule = RULES[name]()
    clone = pickle.loads(pickle.dumps(rule))
    assert type(clone) is type(rule) and clone == rule and repr(clone) == repr(rule)


@pytest.mark.parametrize("cell", ["LeakyRNN", "EGRU", "LIF", "ALIF"])
def test_models_pickle(cell):
    model = ns.Model(getattr(ns.cells, cell)(n_in=3, n_hidden=5, density=0.5, seed=2), n_out=2)
    clone = pickle.loads(pickle.dumps(model))
    assert repr(clone) == repr(model)
    p, q = model.init(4), clone.init(4)
    assert all(np.array_equal(p[k], q[k]) for k in p)
    xs = np.random.default_rng(0).normal(size=(4, 2, 3))
    np.testing.assert_array_equal(model.run(p, xs).outputs, clone.run(q, xs).outputs)
