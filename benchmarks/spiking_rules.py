"""STDP and reward-modulated STDP vs e-prop, SnAp-1 and exact RTRL on one spiking task.

The pattern-generation task of ``models/lif-pattern.toml`` (LIF network, 50 units, frozen Poisson
input, sum-of-sines target, metric nmse) is trained online with each rule from the same initial
weights and the same data, one update per pass over the pattern. Gradient rules use the config's
Adam; STDP and RSTDP return ``-dw`` and are applied with SGD (``lr`` times their ``a_plus``/
``a_minus`` is the effective learning rate; the readout gets the same SGD on its exact gradient).
Writes ``docs/spiking-rules.md``'s table (printed), ``docs/figures/spiking-rules.json`` (every
run's nmse per pass, and the table) and ``docs/figures/spiking-rules.png``, which ``--plot-only``
re-draws from the JSON.

    NUMBA_NUM_THREADS=1 python benchmarks/spiking_rules.py --passes 100 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import neurosnap as ns
from neurosnap import config

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passes", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--plot-only", action="store_true", help="re-draw the figure from the JSON")
    args = parser.parse_args()
    json_path = ROOT / "docs" / "figures" / "spiking-rules.json"
    if args.plot_only:
        plot(json.loads(json_path.read_text()))
        return
    cfg = config.load(ROOT / "models" / "lif-pattern.toml")
    rules = {
        "RTRL": (ns.rules.RTRL(), None),
        "SnAp-1": (ns.rules.SnAp(n=1), None),
        "e-prop": (ns.rules.EProp(), None),
        "STDP": (ns.rules.STDP(a_plus=10.0, a_minus=10.0), ns.optim.SGD(lr=1e-4)),
        "RSTDP": (ns.rules.RSTDP(a_plus=10.0, a_minus=10.0), ns.optim.SGD(lr=1e-4)),
    }
    results, runs = {}, {}
    for name, (rule, opt) in rules.items():
        finals, curves, times = [], [], []
        for seed in args.seeds:
            model, _, adam, task, kw = config.build(cfg)
            T = task.sample(np.random.default_rng(0), 1).xs.shape[0]
            start = time.perf_counter()
            h = ns.train(
                model, rule, opt or adam, task, steps=args.passes * T, update_every=T, seed=seed
            )
            times.append((time.perf_counter() - start) / (args.passes * T) * 1e3)
            finals.append(h.final("nmse", last=5))
            curves.append([float(v) for v in h.column("nmse")])
        results[name] = (np.mean(finals), np.std(finals), np.mean(times))
        runs[name] = curves
    data = {
        "passes": args.passes,
        "seeds": args.seeds,
        "nmse": runs,
        "table": {k: {"mean": v[0], "sd": v[1], "ms_per_step": v[2]} for k, v in results.items()},
    }
    json_path.write_text(json.dumps(data, indent=1))
    plot(data)
    print("| rule | final nmse (mean ± sd over seeds, last 5 passes) | ms per step |")
    print("|---|---|---|")
    for name, (mean, sd, ms) in results.items():
        print(f"| {name} | {mean:.3f} ± {sd:.3f} | {ms:.3f} |")


def plot(data):
    """nmse per pass: mean over seeds, the seeds' range shaded; identical curves drawn so that both
    show (distinct dashes and markers) and named as identical in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2), constrained_layout=True)
    drawn, dashes = (
        [],
        [(None, None), (3, 3), (1, 2)],
    )  # an identical curve: thinner, dashed, on top
    for i, (name, curves) in enumerate(data["nmse"].items()):
        runs = np.array(curves, dtype=float)
        mean, x = runs.mean(axis=0), np.arange(1, runs.shape[1] + 1)
        same = [other for other, m in drawn if m.shape == mean.shape and np.array_equal(m, mean)]
        label = name + (f" (identical to {same[0]})" if same else "")
        ax.plot(
            x,
            mean,
            color=f"C{i}",
            lw=1.3 if same else 2.2,
            dashes=dashes[len(same) % 3],
            marker="osD^v"[i % 5],
            markevery=(0.05 * (len(same) + 1), 0.1),
            ms=5,
            label=label,
            zorder=3 + len(same),
        )
        if len(runs) > 1:
            ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
        drawn.append((name, mean))
    ax.set(xlabel="passes over the pattern (one update each)", ylabel="nmse", yscale="log")
    ax.set_title(
        f"LIF pattern task (models/lif-pattern.toml): mean over seeds {data['seeds']}, "
        "shaded: their range",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3, which="both")
    fig.savefig(ROOT / "docs" / "figures" / "spiking-rules.png", dpi=150)


if __name__ == "__main__":
    main()
