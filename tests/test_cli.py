"""`neurosnap train`: files written, summary printed, overrides, resume, errors pointing at keys."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurosnap import cli, config

ROOT = Path(__file__).resolve().parents[1]


def _train(tmp_path, *extra):
    return cli.main(
        [
            "train",
            str(ROOT / "models" / "egru-copy.toml"),
            "--no-progress",
            "--out",
            str(tmp_path),
            *extra,
        ]
    )


def test_train_writes_metrics_curve_params_and_summary(tmp_path, capsys):
    assert _train(tmp_path, "--steps", "400") == 0
    out = capsys.readouterr().out
    assert "Curriculum level reached" in out and "ms/step over the whole run" in out
    assert "Trained an EGRU network" in out and "float64" in out and "batches of 1 sequence" in out
    for name in (
        "metrics.csv",
        "metrics.json",
        "learning_curve.png",
        "params.npz",
        "checkpoint.npz",
    ):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "metrics.json").read_text())["summary"]
    assert summary["steps"] <= 400 and summary["cell"] == "EGRU"
    with np.load(tmp_path / "params.npz", allow_pickle=False) as params:
        assert params["cell.w_rec"].shape == (3, 16, 16)


def test_overrides_and_resume(tmp_path):
    assert (
        _train(tmp_path, "--steps", "300", "--set", "model.n_hidden=6", "--set", "rule.name='BPTT'")
        == 0
    )
    meta = json.loads((tmp_path / "metrics.json").read_text())
    assert meta["config"]["model"]["n_hidden"] == 6 and meta["summary"]["rule"].startswith("BPTT")
    assert (
        _train(
            tmp_path,
            "--steps",
            "600",
            "--set",
            "model.n_hidden=6",
            "--set",
            "rule.name='BPTT'",
            "--resume",
        )
        == 0
    )
    rows = json.loads((tmp_path / "metrics.json").read_text())["rows"]
    assert rows[-1]["step"] > 300 and rows[0]["step"] < 300  # history carried over


@pytest.mark.parametrize(
    "override,needle",
    [
        ("rule.name='Foo'", "[rule] name='Foo' is unknown"),
        ("train.stepz=3", "['stepz'] in [train]"),
        ("model.density=1.5", "density"),
        ("model.cell='GRU'", "cell='GRU'"),
        ("optimizer.lr=-1", "lr"),
        ("task.window=0", "window"),
        ("model.cell_options.gate={kind='heaviside', surrogate='boxcar'}", "surrogate='boxcar'"),
        ("model.cell_options.thresh=1", "thresh"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path, capsys, override, needle):
    assert _train(tmp_path, "--steps", "10", "--set", override) == 2
    assert needle in capsys.readouterr().err


def test_malformed_and_missing_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\ncell = 'EGRU'")
    assert cli.main(["train", str(bad), "--out", str(tmp_path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "none.toml"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    partial = tmp_path / "partial.toml"
    partial.write_text("[model]\ncell = 'EGRU'\nn_hidden = 4\n")
    assert cli.main(["train", str(partial), "--out", str(tmp_path)]) == 2
    assert "missing the [" in capsys.readouterr().err


def test_every_shipped_config_builds():
    for path in sorted((ROOT / "models").glob("*.toml")):
        model, rule, opt, task, kwargs = config.build(config.load(path))
        assert model.n_out == task.n_out, path.name


def test_console_entry_point(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "neurosnap.cli",
            "train",
            str(ROOT / "models" / "egru-spiral.toml"),
            "--steps",
            "340",
            "--no-progress",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Test accuracy" in proc.stdout


# -------------------------------------------------------------------------------------------------
# one-line errors (exit status 2, no traceback) for what a user can get wrong
# -------------------------------------------------------------------------------------------------
def _cli(*args, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "neurosnap", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _one_line_error(proc, needle, status=2):
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurosnap: error: "), proc.stderr
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "latin1.toml").write_bytes(b"[model]\ncell = '\xe9\xff'\n")
    (d / "nested.toml").write_text("v = " + "[" * 5000 + "]" * 5000 + "\n")
    (d / "xy.toml").write_text(
        '[model]\ncell = "EGRU"\nn_hidden = 4\ncell_options = "xy"\n'
        '[task]\nname = "copy"\n[rule]\nname = "RTRL"\n'
        '[optimizer]\nname = "Adam"\n[train]\nsteps = 10\n'
    )
    (d / "not-a-zip.npz").write_text("hello, I am text")
    (d / "a-file").write_text("x")
    return d


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "models"], "is a directory; give a TOML file"),
        (["train", "egru-copy", "--out", "/dev/null/x"], "cannot use --out /dev/null/x"),
        (["train", "egru-copy", "--set", "train.steps", "100"], "--set takes key=value"),
        (
            ["train", "egru-copy", "--set", "rule.name=rtrl"],
            "Did you mean 'RTRL'? (names are case-sensitive)",
        ),
        (["train", "egru-copy", "--set", "rule.name=RTLR"], "Did you mean 'RTRL'?"),
        (["train", "egru-copy", "--set", "train.stepz=3"], "Did you mean 'steps'?"),
        (["train", "egru-cpy"], "Did you mean 'egru-copy'?"),
        (["train", "{bad}/latin1.toml"], "is not UTF-8 text"),
        (["train", "{bad}/nested.toml"], "nested too deeply"),
        (["train", "{bad}/xy.toml"], "[model] cell_options must be a table"),
        (
            ["train", "egru-copy", "--set", "model.cell_options=7"],
            "[model] cell_options must be a table",
        ),
        (
            ["train", "egru-copy", "--set", "model.n_hidden.x=1"],
            "model.n_hidden is 16, not a table",
        ),
        (
            ["train", "egru-copy", "--set", "optimizer.lr=" + "9" * 401],
            "lr is an integer with 401 digits",
        ),
        (
            ["train", "egru-copy", "--set", "train.steps=2"],
            "ends before the first step that counts",
        ),
        (
            ["train", "egru-copy", "--set", "rule.name=STDP", "--steps", "30"],
            "EGRU counts time in steps",
        ),
        (["train", "egru-copy", "--out", "{bad}/a-file"], "exists and is not a directory"),
        (
            ["simulate", "lif-network", "--params", "{bad}/not-a-zip.npz"],
            "not a valid neurosnap params",
        ),
        (["simulate", "lif-network", "--units", "0-4000000000"], "0 <= a <= b < 1000"),
        (["simulate", "lif-network", "--units", "3,x"], "expected unit numbers"),
        (["compare", "egru-copy", "--rules", "rtrl"], "Did you mean 'RTRL'?"),
        (
            ["compare", "egru-copy", "--rules", "RTRL", "--workers", "0"],
            "--workers must be a positive",
        ),
        (["sweep", "egru-copy", "--grid", "train.seed=0,1", "--workers", "0"], "--workers must be"),
        (["sweep", "egru-copy", "--grid", "model.density=1.0,1.5"], "grid point model.density=1.5"),
        (
            ["train", "egru-copy", "--set", "model.n_hidden=10000000"],
            "n_hidden=10000000 needs about",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(args, needle, bad_files, tmp_path):
    args = [a.replace("{bad}", str(bad_files)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    proc = _cli(*args, cwd=ROOT)
    line = _one_line_error(proc, needle)
    assert "allow_pickle" not in line and "pickle.load" not in line


def test_checkpoint_that_is_a_directory_and_a_broken_checkpoint(tmp_path):
    (tmp_path / "checkpoint.npz").mkdir()
    _one_line_error(
        _cli("train", "egru-copy", "--steps", "50", "--out", tmp_path, "--resume"),
        "checkpoint.npz is a directory",
    )
    (tmp_path / "checkpoint.npz").rmdir()
    (tmp_path / "checkpoint.npz").write_text("not a zip")
    line = _one_line_error(
        _cli("train", "egru-copy", "--steps", "50", "--out", tmp_path, "--resume"),
        "is not a valid neurosnap checkpoint",
    )
    assert "pickle" not in line.replace("never unpickled", "")


def test_a_non_empty_run_directory_needs_resume_or_overwrite(tmp_path, capsys):
    assert _train(tmp_path, "--steps", "60") == 0
    first = json.loads((tmp_path / "metrics.json").read_text())
    assert _train(tmp_path, "--steps", "60", "--set", "rule.name=BPTT") == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--resume" in err and "--overwrite" in err
    assert json.loads((tmp_path / "metrics.json").read_text()) == first  # untouched
    assert _train(tmp_path, "--steps", "60", "--set", "rule.name=BPTT", "--overwrite") == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["summary"]["rule"].startswith("BPTT")
    assert _train(tmp_path, "--steps", "60", "--resume", "--overwrite") == 2
    assert "exclude each other" in capsys.readouterr().err


def test_resume_summaries_say_what_happened(tmp_path, capsys):
    """--resume without a checkpoint says it starts fresh; a resumed run reports the whole run's
    time per step; a budget already reached says that nothing was trained."""
    assert _train(tmp_path / "a", "--steps", "300", "--resume") == 0
    assert "no checkpoint" in capsys.readouterr().err
    first = json.loads((tmp_path / "a" / "metrics.json").read_text())["summary"]
    assert _train(tmp_path / "a", "--steps", "600", "--resume") == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "a" / "metrics.json").read_text())
    s = data["summary"]
    assert s["resumed_at"] >= 250 and f"resumed at step {s['resumed_at']:,}" in out
    assert s["wall_seconds"] == data["rows"][-1]["wall"] > first["wall_seconds"]
    assert s["ms_per_step"] == pytest.approx(1e3 * s["wall_seconds"] / s["steps"])
    assert _train(tmp_path / "a", "--steps", "200", "--resume") == 0
    err = capsys.readouterr().err
    assert "already at step" in err and "nothing to train" in err


def test_a_bug_during_training_is_one_line_pointing_to_traceback(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(cli.train_cmd, "train", broken)  # the training loop the command calls
    assert _train(tmp_path, "--steps", "50") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "KeyError" in err[0] and "run with --traceback" in err[0]
    assert "config" not in err[0].lower()
    with pytest.raises(KeyError):
        _train(tmp_path / "b", "--steps", "50", "--traceback")


def test_version_module_entry_point_and_shipped_names(tmp_path):
    from neurosnap import __version__

    proc = _cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"neurosnap {__version__}"
    proc = _cli("train", "egru-spiral", "--steps", "340", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "egru-spiral" / "metrics.json").is_file()  # named by the config
    assert config.resolve("egru-copy.toml").samefile(ROOT / "models" / "egru-copy.toml")


def test_shipped_configs_are_the_models_directory():
    """neurosnap/models is the top-level models/ directory (a link), and pyproject ships it."""
    import tomllib

    shipped = ROOT / "neurosnap" / "models"
    assert shipped.is_symlink() and shipped.resolve() == (ROOT / "models").resolve()
    assert config.shipped() == sorted(p.stem for p in (ROOT / "models").glob("*.toml"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "models/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["neurosnap"]


def test_every_help_shows_defaults_and_no_markup(capsys):
    import argparse

    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and ":func:" not in top and "egru-copy" in top
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"train", "compare", "sweep", "simulate"}
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        assert "``" not in text, name
        flags = {s for a in sub._actions for s in a.option_strings}
        assert {"--progress", "--no-progress", "--traceback", "--set", "--out"} <= flags, name
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.dest == "help":
                continue  # positionals and on/off flags
            shown = sub._get_formatter()._get_help_string(action) % vars(action)
            assert "default" in shown or action.required, (name, action.option_strings)
