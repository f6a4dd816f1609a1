"""``benchmarks/simulate.py --large`` (issue 14) at a smoke size, so that the script cannot rot: every
run in its own process, results written as JSON and CSV, the float64 spike trains of neurosnap and
Brian2 (Cython, when Brian2 and a C compiler are there) identical."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import require_cython

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "simulate_bench", ROOT / "benchmarks" / "simulate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(result, sim):
    return [r for r in result["rows"] if r["simulator"] == sim and "skipped" not in r]


def test_large_mode_neurosnap_only(tmp_path):
    bench = _bench()
    out = tmp_path / "large"
    result = bench.main(
        ["--large", "--sizes", "2000", "--density", "0.01", "--extra", "3000:0.01",
         "--steps", "200", "--targets", "cython", "--skip-brian2-above", "0",
         "--check-steps", "0", "--out", str(out)]
    )  # fmt: skip
    # --skip-brian2-above: no Brian2 process at all (nor a C compiler) for these networks
    assert [r for r in result["rows"] if "skipped" in r] == [
        {"simulator": "brian2-cython", "N": n, "density": 0.01, "skipped": "limit"}
        for n in (2000, 3000)
    ]
    rows = _rows(result, "neurosnap")
    assert [(r["N"], r["K"], r["synapses"]) for r in rows] == [
        (2000, 20, 40_000),
        (3000, 30, 90_000),
    ]
    for r in rows:
        assert r["dtype"] == "float32" and r["threads"] == 1 and r["steps"] == 200
        assert 1.0 < r["rate_hz"] < 100.0, r  # the CUBA-like regime: a few to tens of Hz
        assert r["spikes"] > 0 and r["synaptic_events"] > r["spikes"]
        assert r["build_s"] > 0 and r["s_per_1000_steps"] > 0 and r["events_per_s"] > 0
        assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 10
        assert r["whole_s"] >= r["build_s"]
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    with open(out.with_suffix(".csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["simulator"], int(r["N"]), r["skipped"]) for r in table if r["N"] == "3000"] == [
        ("neurosnap", 3000, ""),
        ("brian2-cython", 3000, "limit"),
    ]
    first = next(r for r in table if r["simulator"] == "neurosnap")
    assert float(first["rate_hz"]) == pytest.approx(rows[0]["rate_hz"])


def test_large_mode_refuses_threads_without_large(capsys):
    bench = _bench()
    with pytest.raises(SystemExit):
        bench.main(["--threads", "1", "2"])
    assert "--threads takes one count without --large" in capsys.readouterr().err


def test_large_weights_keep_the_mean_input():
    bench = _bench()
    for n, k in [(2000, 20), (100_000, 1000)]:
        w_exc, w_inh, n_exc = bench.large_weights(n, k, "float64")
        assert n_exc == int(0.8 * n)
        # K (0.8 w_exc + 0.2 w_inh) is CUBA's at K = 80, whatever K
        assert k * (0.8 * w_exc + 0.2 * w_inh) == pytest.approx(80 * (0.8 * 1.62 - 0.2 * 18.0))


@pytest.mark.slow
def test_large_mode_identical_to_brian2_cython(tmp_path):
    require_cython()
    bench = _bench()
    # float64 for the check and the timed rows: one set of compiled Cython modules, cached under
    # .cache/brian2 like the adapter tests' (a cold cache costs about a minute of compilation)
    result = bench.main(
        ["--large", "--sizes", "2000", "--density", "0.01", "--extra", "--steps", "200",
         "--dtype", "float64", "--targets", "cython", "--out", str(tmp_path / "large"),
         "--brian2-cache", str(ROOT / ".cache" / "brian2")]
    )  # fmt: skip
    assert result["identical_spikes_float64"] == {"N": 2000, "density": 0.01, "brian2-cython": True}
    ours, theirs = _rows(result, "neurosnap"), _rows(result, "brian2-cython")
    assert len(ours) == len(theirs) == 2  # the check and the timed run
    for a, b in zip(ours, theirs, strict=True):
        assert a["spikes"] == b["spikes"] > 0
        assert a["synaptic_events"] == b["synaptic_events"]
        assert b["loop_s"] > 0 and b["whole_s"] > b["build_s"]


def test_worker_passes_threads_when_simulate_takes_them(monkeypatch):
    bench = _bench()
    spec = dict(sim="neurosnap", n=500, density=0.04, steps=60, seed=0, dtype="float32")
    spec.update(threads=2, chunk_steps=20)
    if not bench.simulate_accepts_threads():  # today's ns.simulate: one thread only
        with pytest.raises(SystemExit, match="no threads= argument"):
            bench.large_worker(spec)
    real, seen = bench.ns.simulate, []

    def simulate(model, params, inputs, record=("events",), *, threads=1, **kwargs):
        seen.append(threads)
        return real(model, params, inputs, record, **kwargs)

    monkeypatch.setattr(bench.ns, "simulate", simulate)
    assert bench.simulate_accepts_threads()
    out = bench.large_worker(spec)
    assert seen == [2] and out["threads_arg"] is True
    assert out["loop_steps"] == 20 and out["spikes"] > 0  # chunk 2 of 3 timed (reads 2 to 3)
