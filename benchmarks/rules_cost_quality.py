"""Cost against gradient quality of every learning rule: the figure on the documentation's home page.

    NUMBA_NUM_THREADS=1 python benchmarks/rules_cost_quality.py          # ~1 minute

One EGRU (32 units, 20 % of the recurrent weights present, the surrogate of the default Heaviside
gate) at its initial parameters, 16 batches of the copy task (pattern length 5, batch 8). For every
rule, on every batch: the gradient of the sequence's loss (``ns.sequence_grad``), its cosine
similarity to the exact gradient (BPTT; recurrent-cell parameters only, since every rule's readout
gradient is exact), and the multiply-adds per step that the library counts for that rule
(``stats=True``). UORO is a random estimator: each batch uses another seed. Writes
``docs/figures/rules-cost-quality.json`` (the numbers) and ``rules-cost-quality.png`` (the figure,
re-drawn from the JSON with ``--plot-only``).

This is gradient *quality at initialisation* on one architecture, not learning performance: the
results pages (headline copy task, spiking rules) measure what each rule learns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neurosnap as ns  # noqa: E402

OUT = ROOT / "docs" / "figures"
RULES = {  # label: (rule factory, seeded)
    "RTRL (sparse exact)": (lambda s: ns.rules.RTRL(), False),
    "RTRL (dense)": (lambda s: ns.rules.RTRL(sparse=False), False),
    "SnAp-1": (lambda s: ns.rules.SnAp(n=1), False),
    "SnAp-2": (lambda s: ns.rules.SnAp(n=2), False),
    "SnAp-3": (lambda s: ns.rules.SnAp(n=3), False),
    "BPTT(5)": (lambda s: ns.rules.BPTT(truncation=5), False),
    "UORO": (lambda s: ns.rules.UORO(seed=s), True),
    "RFLO (symmetric)": (lambda s: ns.rules.RFLO(feedback="symmetric"), False),
    "e-prop": (lambda s: ns.rules.EProp(), False),
}


def measure(n_hidden=32, density=0.2, batches=16, batch_size=8, length=5):
    task = ns.tasks.Copy(start_length=length, max_length=length)
    model = ns.Model(
        ns.cells.EGRU(n_in=task.n_in, n_hidden=n_hidden, density=density), n_out=task.n_out
    )
    params = model.init(seed=0)
    keys = [k for k in params if k.startswith("cell.")]
    rng = np.random.default_rng(0)
    data = [task.sample(rng, batch_size) for _ in range(batches)]
    results = {label: {"cosine": [], "macs": []} for label in RULES}
    for b, batch in enumerate(data):
        _, exact = ns.sequence_grad(
            model, params, batch.xs, batch.ys, ns.rules.BPTT(), mask=batch.mask
        )
        e = np.concatenate([exact[k].ravel() for k in keys])
        for label, (make, _seeded) in RULES.items():
            _, g, stats = ns.sequence_grad(
                model, params, batch.xs, batch.ys, make(b), mask=batch.mask, stats=True
            )
            v = np.concatenate([g[k].ravel() for k in keys])
            results[label]["cosine"].append(float(v @ e / (np.linalg.norm(v) * np.linalg.norm(e))))
            results[label]["macs"].append(float(stats["macs"]))
    return {
        "setting": dict(
            cell="EGRU",
            n_hidden=n_hidden,
            density=density,
            batches=batches,
            batch_size=batch_size,
            task=f"Copy(length {length})",
            params=int(sum(params[k].size for k in keys)),
        ),
        "rules": results,
    }


def plot(data, path):
    """Gradient error ``1 - cosine`` (log) against multiply-adds per step (log): lower left is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-15  # round-off: an exact rule's error is plotted here
    markers = dict(zip(data["rules"], "o s D ^ v P X * h".split(), strict=False))
    fig, ax = plt.subplots(figsize=(8.0, 4.8), constrained_layout=True)
    for i, (label, r) in enumerate(data["rules"].items()):
        macs, err = np.mean(r["macs"]), np.maximum(1.0 - np.array(r["cosine"]), floor)
        lo, hi = np.percentile(err, [10, 90])
        mid = float(np.exp(np.mean(np.log(err))))  # geometric mean over batches
        hollow = label in ("RTRL (dense)", "e-prop")  # drawn over an identical point
        ax.errorbar(
            macs,
            mid,
            yerr=[[max(mid - lo, 0.0)], [max(hi - mid, 0.0)]],
            fmt=markers[label],
            ms=9 if hollow else 7,
            capsize=3,
            color=f"C{i}",
            label=label,
            mfc="none" if hollow else f"C{i}",
            mew=1.6,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(floor / 3, 3)
    ax.axhspan(floor / 3, floor * 10, color="0.92", zorder=0)
    ax.text(
        ax.get_xlim()[0] * 1.1,
        floor * 2,
        "exact (round-off)",
        fontsize=8,
        color="0.35",
        va="center",
    )
    ax.set_xlabel("multiply-adds per time step (counted by neurosnap)")
    ax.set_ylabel("gradient error: 1 - cosine(rule, exact)")
    s = data["setting"]
    ax.set_title(
        f"{s['cell']}, {s['n_hidden']} units, {int(s['density'] * 100)} % of recurrent weights, "
        f"{s['task']}, at initialisation:\ngeometric mean and 10-90 % over {s['batches']} "
        f"batches of {s['batch_size']}",
        fontsize=9,
    )
    ax.legend(
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
        title="lower left is better",
        title_fontsize=8,
    )
    ax.text(
        1.01,
        0.02,
        "RFLO (symmetric feedback) and\ne-prop coincide on this\nsingle-variable cell "
        "(theory: RFLO);\nthe two RTRL engines agree\nto round-off.",
        transform=ax.transAxes,
        fontsize=7,
        color="0.3",
        va="bottom",
    )
    ax.grid(alpha=0.3, which="major")
    fig.savefig(path, dpi=160)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plot-only", action="store_true", help="re-draw the figure from the JSON")
    args = parser.parse_args(argv)
    json_path = OUT / "rules-cost-quality.json"
    if args.plot_only:
        data = json.loads(json_path.read_text())
    else:
        data = measure()
        json_path.write_text(json.dumps(data, indent=1))
    plot(data, OUT / "rules-cost-quality.png")
    for label, r in data["rules"].items():
        print(
            f"{label:22s} cosine {np.mean(r['cosine']):.4f} (min {np.min(r['cosine']):.4f})  "
            f"MACs/step {np.mean(r['macs']):,.0f}"
        )


if __name__ == "__main__":
    main()
