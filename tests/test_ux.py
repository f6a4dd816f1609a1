"""What a user sees from the Python API: messages that say what to do, progress bars that stay quiet
in logs, figures a reader understands (checked on the figure objects, not only that a PNG exists)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import neurosnap as ns


def _egru():
    model = ns.Model(ns.cells.EGRU(n_in=2, n_hidden=4), n_out=2)
    return model, model.init(0), np.zeros((3, 1, 2)), np.zeros((3, 1), dtype=int)


# -- messages ---------------------------------------------------------------------------------------
def test_a_rule_class_instead_of_an_instance_says_so():
    model, params, xs, ys = _egru()
    with pytest.raises(TypeError, match=r"pass ns.rules.RTRL\(\) \(an instance\)"):
        ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL)
    with pytest.raises(TypeError, match=r"pass ns.rules.SnAp\(\) \(an instance\)"):
        ns.train(model, ns.rules.SnAp, ns.optim.Adam(), ns.tasks.Copy(), steps=10)
    with pytest.raises(TypeError, match=r"ns.rules.RTRL\(\)"):
        ns.sequence_grad(model, params, xs, ys, "RTRL")
    from neurosnap.compare import compare

    cfg = {
        "model": {"cell": "EGRU", "n_hidden": 4},
        "task": {"name": "copy"},
        "rule": {"name": "RTRL"},
        "optimizer": {"name": "Adam"},
        "train": {"steps": 20},
    }
    with pytest.raises(ValueError, match="rule spec must be a string.*pass the name 'RTRL'"):
        compare(cfg, [ns.rules.RTRL], seeds=[0])
    with pytest.raises(ValueError, match="pass the name 'SnAp'"):
        compare(cfg, [ns.rules.SnAp(n=2)], seeds=[0])


def test_stdp_on_a_cell_without_dt_explains_steps():
    model, params, xs, ys = _egru()
    with pytest.raises(
        ValueError,
        match=r"EGRU counts time in steps \(dt = 1\), so tau_pre is a "
        r"number of steps, e.g. tau_pre=20",
    ):
        ns.sequence_grad(model, params, xs, ys, ns.rules.STDP())
    loss, _ = ns.sequence_grad(model, params, xs, ys, ns.rules.STDP(tau_pre=20.0, tau_post=20.0))
    assert np.isfinite(loss)


def test_brian2_adapter_gives_the_users_excepthook_back():
    """Importing Brian2 replaces sys.excepthook; after the adapter ran, an uncaught error of the
    user's program must be printed by the user's hook, not as "Brian 2 encountered an ..."."""
    pytest.importorskip("brian2")
    code = (
        "import sys\n"
        "def mine(*a): print('MY HOOK', a[0].__name__, file=sys.stderr)\n"
        "sys.excepthook = mine\n"
        "from neurosnap.adapters import brian2 as adapter\n"
        "adapter._brian2()\n"
        "assert sys.excepthook is mine, sys.excepthook\n"
        "raise KeyError('user bug')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "MY HOOK KeyError" in proc.stderr, proc.stderr
    assert "Brian 2 encountered" not in proc.stderr


# -- progress bars ----------------------------------------------------------------------------------
def test_progress_bar_in_a_log_redraws_at_most_every_few_seconds():
    from neurosnap.core.progress import LOG_INTERVAL, progress_bar

    log = io.StringIO()  # not a terminal
    bar = progress_bar(2000, file=log)
    assert bar.mininterval == LOG_INTERVAL >= 2
    for _ in range(2000):
        bar.update(1)
        bar.set_postfix({"loss": "0.5"})  # never forces a redraw
    bar.close()
    assert log.getvalue().count("\r") <= 3, log.getvalue()  # start, (maybe one), close
    assert len(log.getvalue()) < 1000


def test_training_progress_into_a_pipe_stays_small(tmp_path):
    """2,000 steps with the progress bar on and stderr a pipe: a few lines, not one per sequence."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "neurosnap",
            "train",
            "egru-copy",
            "--steps",
            "2000",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr) < 2000, len(proc.stderr)


# -- figures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recording():
    cell = ns.cells.LIF(4, 24, 0.3, w_in_scale=30.0, w_rec_scale=5.0)
    model = ns.Model(cell, n_out=2, loss="mse")
    xs = (np.random.default_rng(0).random((1500, 1, 4)) < 0.25).astype(float)
    return ns.simulate(model, model.init(0), xs, "events,v,rate", units=list(range(10)))


def test_ns_plot_figures_use_a_constrained_layout(recording):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    for fn in (ns.plot.raster, ns.plot.rate, ns.plot.traces, ns.plot.isi_histogram):
        ax = fn(recording)
        assert isinstance(ax.figure.get_layout_engine(), ConstrainedLayoutEngine), fn.__name__
        plt.close(ax.figure)


def test_simulate_summary_reads_at_a_glance(recording, tmp_path):
    fig = ns.plot.summary_figure(recording, tmp_path / "summary.png")
    fig.canvas.draw()
    axes = {ax.get_title(): ax for ax in fig.axes}
    raster = next(ax for t, ax in axes.items() if "events in" in t)
    rate = next(ax for t, ax in axes.items() if "bins of" in t)
    traces = next(ax for t, ax in axes.items() if t.startswith("v of"))
    isi = next(ax for t, ax in axes.items() if "intervals" in t)
    # one time window for raster, rate and traces, stated in the title
    assert raster.get_xlim() == rate.get_xlim() == traces.get_xlim()
    a, b = 0, 1000
    shown = int(np.count_nonzero((recording.spike_steps >= a) & (recording.spike_steps < b)))
    assert raster.get_title().startswith(f"{shown:,} events in 0 to 1 s")
    assert "0 to 1 s of 1.5 s" in fig.get_suptitle()
    # every recorded unit has its trace, and the legend sits outside the data
    drawn = len([ln for ln in traces.get_lines() if ln.get_label().startswith("unit")])
    assert drawn == ns.plot.MAX_TRACES == 8  # 10 recorded: the title says which
    assert f"{drawn} units of the 10 recorded" in traces.get_title()
    legend = traces.get_legend().get_window_extent()
    assert legend.x0 >= traces.get_window_extent().x1 - 1
    # intervals with their unit
    assert " ms, CV" in isi.get_title() or " s, CV" in isi.get_title()
    assert "(s)" in isi.get_xlabel() and "whole recording" in isi.get_title()


def test_learning_curve_level_ticks_are_integers_and_log_labels_readable(tmp_path):
    rows = [
        {
            "step": 10 * i,
            "updates": i,
            "wall": 0.1 * i,
            "loss": 0.690 + 0.002 * np.sin(i),
            "level": 1 + i // 30,
        }
        for i in range(100)
    ]
    fig = ns.History(rows=rows, metric="level").plot(tmp_path / "curve.png", title="t")
    fig.canvas.draw()
    loss_ax, level_ax = fig.axes
    levels = [
        t for t in level_ax.get_yticks() if level_ax.get_ylim()[0] <= t <= level_ax.get_ylim()[1]
    ]
    assert levels and all(float(t).is_integer() for t in levels)
    labels = [
        t.get_text()
        for t in loss_ax.get_yticklabels(minor=True) + loss_ax.get_yticklabels()
        if t.get_text()
    ]
    assert len(labels) >= 2, labels  # a narrow log range is still labelled
    assert not any("10^" in s or "times" in s for s in labels)
    assert "mean of 25 rows" in loss_ax.get_ylabel()


def test_compare_plot_has_one_legend_with_seed_counts(tmp_path):
    from neurosnap.compare import Results, plot

    curve = {
        "step": [10, 20, 30],
        "level": [1, 2, 2],
        "loss": [0.7, 0.5, 0.4],
        "macs": [100, 200, 300],
    }
    res = Results(
        [],
        metric="level",
        curves={("SnAp:n=1", 0): curve, ("SnAp:n=1", 1): curve, ("RTRL", 0): curve},
    )
    fig = plot(res, tmp_path / "curves.png")
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["SnAp:n=1 (2 seeds)", "RTRL (1 seed), = SnAp:n=1"]  # identical curves say so
    assert "(n=" not in " ".join(labels)
