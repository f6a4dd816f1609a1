"""STDP and reward-modulated STDP vs e-prop, SnAp-1 and exact RTRL on one spiking task.

The pattern-generation task of ``models/lif-pattern.toml`` (LIF network, 50 units, frozen Poisson
input, sum-of-sines target, metric nmse) is trained online with each rule from the same initial
weights and the same data, one update per pass over the pattern. Gradient rules use the config's
Adam; STDP and RSTDP return ``-dw`` and are applied with SGD (``lr`` times their ``a_plus``/
``a_minus`` is the effective learning rate; the readout gets the same SGD on its exact gradient).
Writes ``docs/spiking-rules.md``'s table (printed) and ``docs/figures/spiking-rules.png``.

    NUMBA_NUM_THREADS=1 python benchmarks/spiking_rules.py --passes 60
"""
from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    cfg = config.load(ROOT / "models" / "lif-pattern.toml")
    rules = {
        "RTRL": (ns.rules.RTRL(), None),
        "SnAp-1": (ns.rules.SnAp(n=1), None),
        "e-prop": (ns.rules.EProp(), None),
        "STDP": (ns.rules.STDP(a_plus=10.0, a_minus=10.0), ns.optim.SGD(lr=1e-4)),
        "RSTDP": (ns.rules.RSTDP(a_plus=10.0, a_minus=10.0), ns.optim.SGD(lr=1e-4)),
    }
    results = {}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, (rule, opt) in rules.items():
        finals, curves, times = [], [], []
        for seed in args.seeds:
            model, _, adam, task, kw = config.build(cfg)
            T = task.sample(np.random.default_rng(0), 1).xs.shape[0]
            start = time.perf_counter()
            h = ns.train(model, rule, opt or adam, task, steps=args.passes * T, update_every=T,
                         seed=seed)
            times.append((time.perf_counter() - start) / (args.passes * T) * 1e3)
            finals.append(h.final("nmse", last=5))
            curves.append(h.column("nmse"))
        results[name] = (np.mean(finals), np.std(finals), np.mean(times))
        ax.plot(np.mean(curves, axis=0), label=name)
    ax.set(xlabel="passes over the pattern (one update each)", ylabel="nmse", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "figures" / "spiking-rules.png", dpi=110)
    print("| rule | final nmse (mean ± sd over seeds, last 5 passes) | ms per step |")
    print("|---|---|---|")
    for name, (mean, sd, ms) in results.items():
        print(f"| {name} | {mean:.3f} ± {sd:.3f} | {ms:.3f} |")


if __name__ == "__main__":
    main()
