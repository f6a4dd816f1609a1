"""``neurosnap compare``: rule specs, identical data streams per seed, tables and plots."""

from __future__ import annotations

import csv
import json

import pytest

from neurosnap import cli
from neurosnap.compare import (
    RuleSpecError,
    compare,
    markdown,
    parse_rule_spec,
    run_one,
    split_top,
)
from neurosnap.config import ConfigError

# threshold_bits far above any loss: the curriculum advances every `window` batches whatever the
# rule does, so all rules see the same batches for a seed and the levels move within 300 steps.
TINY = {
    "model": {"cell": "EGRU", "n_hidden": 6, "density": 1.0},
    "task": {"name": "copy", "window": 4, "threshold_bits": 100.0, "max_length": 20},
    "rule": {"name": "RTRL"},
    "optimizer": {"name": "Adam", "lr": 0.01},
    "train": {"steps": 300, "seed": 0},
}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text("""
[model]
cell = "EGRU"
n_hidden = 6
density = 1.0
[task]
name = "copy"
window = 4
threshold_bits = 100.0
max_length = 20
[rule]
name = "UORO"
seed = 3            # replaced by each rule spec
[optimizer]
name = "Adam"
lr = 0.01
[train]
steps = 5000
seed = 0
""")
    return path


@pytest.fixture(scope="module")
def cli_run(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    rc = cli.main(
        [
            "compare",
            str(tiny_config),
            "--rules",
            "RTRL",
            "BPTT:truncation=5",
            "--seeds",
            "0",
            "1",
            "--steps",
            "300",
            "--out",
            str(out),
        ]
    )
    return rc, out


def test_cli_writes_tables_and_plots(cli_run):
    rc, out = cli_run
    assert rc == 0
    for name in (
        "results.csv",
        "results.md",
        "results.json",
        "curves.json",
        "learning_curves.png",
        "loss_curves.png",
    ):
        assert (out / name).stat().st_size > 0, name
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rule"], r["seed"]) for r in rows] == [
        ("RTRL", "0"),
        ("RTRL", "1"),
        ("BPTT:truncation=5", "0"),
        ("BPTT:truncation=5", "1"),
    ]
    for r in rows:
        assert r["status"] == "ok" and r["error"] == ""
        assert r["metric"] == "level"
        assert 295 <= int(r["steps"]) <= 300  # the budget may end inside a sequence
        assert float(r["level"]) >= 3  # the curriculum moved
        for key in ("steps_per_s", "macs_per_step", "peak_mem_mib", "influence_nnz"):
            assert float(r[key]) >= 0, key
        assert float(r["macs_per_step"]) > 0 and float(r["peak_mem_mib"]) > 0
    # RTRL stores an influence, truncated BPTT none; RTRL costs more multiply-adds per step
    rtrl = [r for r in rows if r["rule"] == "RTRL"]
    bptt = [r for r in rows if r["rule"] != "RTRL"]
    assert float(rtrl[0]["influence_nnz"]) > 0 and float(bptt[0]["influence_nnz"]) == 0
    assert float(rtrl[0]["macs_per_step"]) > float(bptt[0]["macs_per_step"])
    md = (out / "results.md").read_text()
    assert "| `RTRL` | 2 |" in md and "±" in md and "multiply-adds/step" in md
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_identical_data_streams_per_seed(cli_run):
    _, out = cli_run
    curves = {(c["rule"], c["seed"]): c for c in json.loads((out / "curves.json").read_text())}
    for seed in (0, 1):
        a, b = curves[("RTRL", seed)], curves[("BPTT:truncation=5", seed)]
        # same seed: same batches (sequence lengths, hence the step counts at batch ends) and levels
        assert a["step"] == b["step"] and a["level"] == b["level"]
        assert a["loss"] != b["loss"]  # ... but different learning
    assert curves[("RTRL", 0)]["step"] != curves[("RTRL", 1)]["step"]


def test_same_rule_and_seed_is_reproducible_and_fresh(cli_run, tiny_config):
    """A rerun of one (rule, seed) on its own gives identical metrics: no curriculum or rule state
    leaked from the runs before it in the grid."""
    _, out = cli_run
    curves = {(c["rule"], c["seed"]): c for c in json.loads((out / "curves.json").read_text())}
    rows = {
        (r["rule"], r["seed"]): r for r in json.loads((out / "results.json").read_text())["rows"]
    }
    cfg = dict(TINY, train={"steps": 300, "seed": 0})
    again = run_one(cfg, "BPTT:truncation=5", 1)
    assert again["row"]["status"] == "ok"
    assert again["curve"]["loss"] == curves[("BPTT:truncation=5", 1)]["loss"]
    assert again["curve"]["level"] == curves[("BPTT:truncation=5", 1)]["level"]
    assert again["row"]["final_loss"] == rows[("BPTT:truncation=5", 1)]["final_loss"]


def test_compare_function_returns_rows_and_curves():
    res = compare(TINY, ["RFLO:feedback=symmetric"], seeds=[2], steps=40)
    assert len(res) == 1 and res[0]["status"] == "ok" and res[0]["seed"] == 2
    assert res.metric == "level" and ("RFLO:feedback=symmetric", 2) in res.curves
    assert "RFLO:feedback=symmetric" in markdown(res)


def test_a_diverged_run_is_a_failed_row_a_bad_config_raises():
    diverging = dict(TINY, optimizer={"name": "SGD", "lr": 1e308})
    res = run_one(diverging, "RTRL", 0)
    assert res["row"]["status"] == "failed" and "FloatingPointError" in res["row"]["error"]
    bad = dict(TINY, optimizer={"name": "Adam", "lr": float("nan")})
    with pytest.raises(ConfigError, match="lr must be finite"):
        run_one(bad, "RTRL", 0)


def test_a_bug_during_a_run_is_raised_not_relabelled(monkeypatch, tiny_config, tmp_path, capsys):
    """An error inside training keeps its type (the Python API raises it); the CLI prints one line
    that points to --traceback, and --traceback shows the traceback."""

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand in the training loop")

    monkeypatch.setattr("neurosnap.experiments.runs.train_built", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        compare(TINY, ["RTRL"], seeds=[0], steps=40)
    args = ["compare", str(tiny_config), "--rules", "RTRL", "--steps", "40", "--no-progress"]
    assert cli.main(args + ["--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TypeError: unsupported operand" in err[0]
    assert "--traceback" in err[0] and "config" not in err[0].lower()
    with pytest.raises(TypeError):
        cli.main(args + ["--out", str(tmp_path / "b"), "--traceback"])


def test_interrupted_compare_keeps_finished_runs_and_resumes(
    monkeypatch, tiny_config, tmp_path, capsys
):
    """Ctrl-C during the third run: the two finished runs are on disk, with a partial table, exit
    130; --resume runs only the missing ones and gives the same table as an uninterrupted run."""
    import neurosnap.compare as cmp

    real, calls, pending = cmp.run_one, [], [True]

    def interrupted(cfg, spec, seed, progress=False):
        calls.append((spec, seed))
        if len(calls) == 3 and pending:
            pending.clear()
            raise KeyboardInterrupt
        return real(cfg, spec, seed, progress)

    monkeypatch.setattr(cmp, "run_one", interrupted)
    out = tmp_path / "cmp"
    args = [
        "compare",
        str(tiny_config),
        "--rules",
        "RTRL",
        "BPTT:truncation=5",
        "--seeds",
        "0",
        "1",
        "--steps",
        "60",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 130
    captured = capsys.readouterr()
    assert captured.out.count("[1/4] ok") == 1 and "[2/4] ok" in captured.out
    assert "interrupted after 2 of 4 runs" in captured.err and "--resume" in captured.err
    assert len(list((out / "runs").glob("*.json"))) == 2
    assert "| `RTRL` | 2 |" in (out / "results.md").read_text()  # the partial table
    assert cli.main(args) == 2  # refuses to mix runs
    assert "not empty" in capsys.readouterr().err
    calls.clear()
    assert cli.main(args + ["--resume"]) == 0
    assert calls == [("BPTT:truncation=5", 0), ("BPTT:truncation=5", 1)]
    assert capsys.readouterr().out.count("(finished earlier, reused)") == 2
    resumed = json.loads((out / "results.json").read_text())["rows"]
    calls.clear()
    assert cli.main(args + ["--overwrite"]) == 0 and len(calls) == 4  # starts over
    fresh = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["rule"], r["seed"], r["final_loss"]) for r in resumed] == [
        (r["rule"], r["seed"], r["final_loss"]) for r in fresh
    ]


def test_resume_refuses_runs_of_another_configuration(tiny_config, tmp_path, capsys):
    out = tmp_path / "cmp"
    base = ["compare", str(tiny_config), "--rules", "RTRL", "--no-progress", "--out", str(out)]
    assert cli.main(base + ["--steps", "40"]) == 0
    assert cli.main(base + ["--steps", "50", "--resume"]) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_on_the_command_writes_a_partial_table(tiny_config, tmp_path):
    """A real SIGINT to `neurosnap compare` while it runs: exit 130, no traceback, the finished
    runs and the partial table on disk."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "cmp"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neurosnap",
            "compare",
            str(tiny_config),
            "--rules",
            "RTRL",
            "--seeds",
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
            "--steps",
            "300",
            "--no-progress",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert first.startswith("[1/6] ok"), first + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted after" in err
    assert (out / "results.md").is_file() and list((out / "runs").glob("*.json"))


def test_compare_rejects_bad_workers_and_steps_in_one_line(tiny_config, tmp_path):
    import subprocess
    import sys

    for extra, needle in (
        (["--workers", "0"], "--workers must be a positive integer"),
        (["--workers", "two"], "--workers must be a positive integer"),
        (["--steps", "0"], "steps must be"),
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "neurosnap",
                "compare",
                str(tiny_config),
                "--rules",
                "RTRL",
                "--out",
                str(tmp_path / "x"),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
        assert not (tmp_path / "x").exists()


def test_a_very_short_compare_still_writes_its_plots(tiny_config, tmp_path):
    """`--steps 3`: curves of one or two points (or none) must not break the plots."""
    out = tmp_path / "short"
    rc = cli.main(
        [
            "compare",
            str(tiny_config),
            "--rules",
            "RTRL",
            "UORO",
            "--steps",
            "3",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    for name in ("results.md", "learning_curves.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0
    assert (
        cli.main(
            [
                "compare",
                str(tiny_config),
                "--rules",
                "RTRL",
                "--steps",
                "1",
                "--no-progress",
                "--out",
                str(tmp_path / "one"),
            ]
        )
        == 2
    )


# -------------------------------------------------------------------------------------------------
# rule specs
# -------------------------------------------------------------------------------------------------
def test_parse_rule_spec_values():
    assert parse_rule_spec("RTRL") == ("RTRL", {})
    assert parse_rule_spec(" BPTT:truncation=10 ") == ("BPTT", {"truncation": 10})
    assert parse_rule_spec("RFLO:feedback=symmetric,seed=3") == (
        "RFLO",
        {"feedback": "symmetric", "seed": 3},
    )
    assert parse_rule_spec('RFLO:feedback="random"') == ("RFLO", {"feedback": "random"})
    assert parse_rule_spec("RTRL:sparse=false") == ("RTRL", {"sparse": False})
    assert split_top('a=[1, 2],b={x = 1, y = "p,q"},c=3') == [
        "a=[1, 2]",
        'b={x = 1, y = "p,q"}',
        "c=3",
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("Nope", "unknown rule 'Nope'"),
        ("", "missing rule name"),
        (":n=1", "missing rule name"),
        ("BPTT:", "nothing after ':'"),
        ("BPTT:truncation", "'truncation' must look like key=value"),
        ("BPTT:truncation=", "must look like key=value"),
        ("BPTT:foo=1", "unknown key(s) ['foo'] for BPTT"),
        ("BPTT:truncation=1,truncation=2", "'truncation' given twice"),
        ("BPTT:truncation=-3", "truncation"),
        ("BPTT:truncation=1.5.2", "is not a TOML value"),
        ("BPTT:truncation=[1,2", "unbalanced"),
        ("RTRL:sparse=maybe", "sparse"),
    ],
)
def test_parse_rule_spec_errors_name_the_spec(spec, message):
    with pytest.raises(RuleSpecError) as info:
        parse_rule_spec(spec)
    assert repr(spec) in str(info.value) or spec == ""
    assert message in str(info.value)


def test_bad_spec_fails_before_anything_runs(tiny_config, tmp_path, capsys):
    rc = cli.main(
        [
            "compare",
            str(tiny_config),
            "--rules",
            "RTRL",
            "BPTT:trunc=3",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2
    assert "rule spec 'BPTT:trunc=3'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(RuleSpecError, match="given twice"):
        compare(TINY, ["RTRL", "RTRL"], seeds=[0])
