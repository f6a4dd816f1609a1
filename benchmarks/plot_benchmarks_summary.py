"""The summary figure of the benchmarks page, re-drawn from the recorded sparse-RTRL results.

    python benchmarks/plot_benchmarks_summary.py

Reads ``docs/figures/sparse-rtrl-results.json`` (written by ``benchmarks/sparse_rtrl.py --json``;
its ``meta`` says on which machine and when) and writes ``docs/figures/benchmarks-summary.png``:
time per step and peak memory of every engine against the number of units, at 10 % weight density
and the lowest event rate of the sweep, plus how the sparse engine's speed-up over dense RTRL
follows the weight density. Nothing is measured here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
LABELS = {
    "dense": "RTRL, dense",
    "sparse": "RTRL, sparse exact engine",
    "snap2": "SnAp-2",
    "snap1": "SnAp-1",
    "bptt": "BPTT",
}
STYLE = {
    "dense": ("C0", "s", "--"),
    "sparse": ("C1", "o", "-"),
    "snap2": ("C2", "^", "-"),
    "snap1": ("C3", "v", "-"),
    "bptt": ("C7", "D", ":"),
}


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    data = json.loads((FIG / "sparse-rtrl-results.json").read_text())
    rows = data["sweep"]
    act = min(r["target_activity"] for r in rows)
    density = 0.1

    def series(rule, key, d=density, a=act):
        pts = sorted(
            (r["n"], r[key])
            for r in rows
            if r["rule"] == rule and r["density"] == d and r["target_activity"] == a
        )
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    fig = plt.figure(figsize=(10, 7.6), constrained_layout=True)
    grid = fig.add_gridspec(2, 2)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    for rule, label in LABELS.items():
        color, marker, ls = STYLE[rule]
        for ax, key in zip(axes[:2], ("full_ms", "peak_mb"), strict=True):
            n, y = series(rule, key)
            ax.plot(n, y, ls, marker=marker, color=color, label=label)
    for ax, ylabel in zip(
        axes[:2], ("ms per time step (forward + update), batch 1", "peak memory (MB)"), strict=True
    ):
        ax.set(xscale="log", yscale="log", xlabel="units n", ylabel=ylabel)
        ax.set_xticks([32, 64, 128, 256], labels=["32", "64", "128", "256"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title(
        f"time, {int(density * 100)} % weight density, ~{int(act * 100)} % events", fontsize=10
    )
    axes[1].set_title(
        "memory: dense and sparse RTRL coincide (same influence);\n"
        "BPTT's grows with the sequence (here 20 steps)",
        fontsize=9,
    )
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for i, d in enumerate(sorted({r["density"] for r in rows})):
        n, dense = series("dense", "rule_ms", d=d)
        _, sparse = series("sparse", "rule_ms", d=d)
        ax.plot(n, dense / sparse, "-o", color=plt.cm.viridis(i / 3), label=f"density {d:g}")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set(xscale="log", xlabel="units n", ylabel="update time: dense / sparse RTRL")
    ax.set_title(f"sparse over dense RTRL (same gradient), ~{int(act * 100)} % events", fontsize=10)
    ax.set_xticks([32, 64, 128, 256], labels=["32", "64", "128", "256"])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    meta = data["meta"]
    fig.suptitle(
        f"EGRU, recorded {meta['date']} on a shared {meta['cpus']}-core {meta['machine']} "
        f"machine, one thread (benchmarks/sparse_rtrl.py)",
        fontsize=10,
    )
    fig.savefig(FIG / "benchmarks-summary.png", dpi=150)


if __name__ == "__main__":
    main()
