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
    return cli.main(["train", str(ROOT / "models" / "egru-copy.toml"), "--no-progress",
                     "--out", str(tmp_path), *extra])


def test_train_writes_metrics_curve_params_and_summary(tmp_path, capsys):
    assert _train(tmp_path, "--steps", "400") == 0
    out = capsys.readouterr().out
    assert "Curriculum level reached" in out and "ms/step over the whole run" in out
    assert "Trained an EGRU network" in out and "float64" in out and "batches of 1 sequence" in out
    for name in ("metrics.csv", "metrics.json", "learning_curve.png", "params.npz",
                 "checkpoint.npz"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "metrics.json").read_text())["summary"]
    assert summary["steps"] <= 400 and summary["cell"] == "EGRU"
    with np.load(tmp_path / "params.npz", allow_pickle=False) as params:
        assert params["cell.w_rec"].shape == (3, 16, 16)


def test_overrides_and_resume(tmp_path):
    assert _train(tmp_path, "--steps", "300", "--set", "model.n_hidden=6",
                  "--set", "rule.name='BPTT'") == 0
    meta = json.loads((tmp_path / "metrics.json").read_text())
    assert meta["config"]["model"]["n_hidden"] == 6 and meta["summary"]["rule"].startswith("BPTT")
    assert _train(tmp_path, "--steps", "600", "--set", "model.n_hidden=6",
                  "--set", "rule.name='BPTT'", "--resume") == 0
    rows = json.loads((tmp_path / "metrics.json").read_text())["rows"]
    assert rows[-1]["step"] > 300 and rows[0]["step"] < 300      # history carried over


@pytest.mark.parametrize("override,needle", [
    ("rule.name='Foo'", "[rule] name='Foo' is unknown"),
    ("train.stepz=3", "['stepz'] in [train]"),
    ("model.density=1.5", "density"),
    ("model.cell='GRU'", "cell='GRU'"),
    ("optimizer.lr=-1", "lr"),
    ("task.window=0", "window"),
    ("model.cell_options.gate={kind='heaviside', surrogate='boxcar'}", "surrogate='boxcar'"),
    ("model.cell_options.thresh=1", "thresh"),
])
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
    proc = subprocess.run([sys.executable, "-m", "neurosnap.cli", "train",
                           str(ROOT / "models" / "egru-spiral.toml"), "--steps", "340",
                           "--no-progress", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Test accuracy" in proc.stdout
