"""Test accuracy of online rules vs BPTT on real data: spike-encoded MNIST digits and Japanese vowels.

Every (task, cell, rule, seed) trains a fresh network from the same initial weights (``seed``) on
the same data stream, with the same budget: ``--updates`` Adam updates of ``--batch`` sequences,
one update per batch (``update_every = T``), so every rule sees the same sequences. The test
accuracy on the task's held-out split and the wall-clock time per training step (one time step of
a batch) are recorded. Rules: exact RTRL, SnAp-1, SnAp-2, e-prop, RFLO, BPTT (full sequence).
Cells: LIF, ALIF, EGRU. Writes ``docs/figures/real-data-results.json`` and prints the Markdown
table of ``docs/results/real-data.md``. ``--tasks rows_digits`` runs the row-wise sequential
digits of ``models/lif-rows-digits.toml`` (a memory task: the label counts on the lower half of
the image only).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/real_data.py --seeds 0 1 2 --updates 150

``--density 0.25`` repeats the study on sparse recurrent weights (4 of 16 per unit), where SnAp-2
is no longer exact (on dense weights every unit reaches every other in one step, so SnAp-2 keeps
the whole influence and equals RTRL).

The configurations (network size, cell constants, learning rate) are those of
``models/lif-spiking-digits.toml``, ``models/alif-vowels.toml`` and ``models/lif-rows-digits.toml``,
with the cell and rule swapped.
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
CONFIGS = {
    "spiking_digits": "lif-spiking-digits.toml",
    "vowels": "alif-vowels.toml",
    "rows_digits": "lif-rows-digits.toml",
}
RULES = {
    "RTRL": lambda: ns.rules.RTRL(),
    "SnAp-1": lambda: ns.rules.SnAp(n=1),
    "SnAp-2": lambda: ns.rules.SnAp(n=2),
    "e-prop": lambda: ns.rules.EProp(),
    "RFLO": lambda: ns.rules.RFLO(),
    "BPTT": lambda: ns.rules.BPTT(),
}
CELLS = ("LIF", "ALIF", "EGRU")
# LIF and ALIF share the config's dt, time constants and input scale; ALIF adds adaptation
ADAPTATION = {"tau_adapt": 0.2, "beta": 0.1}
EGRU_OPTIONS = {"threshold": 0.3}


def build(task_name: str, cell: str, hidden: int, density: float = 1.0):
    """``(model, opt, task, batch_size)`` of the task's config with ``cell`` in place of its cell
    (``n_hidden = hidden`` units, recurrent weight density ``density``)."""
    cfg = config.load(ROOT / "models" / CONFIGS[task_name])
    spiking = {k: v for k, v in cfg["model"]["cell_options"].items() if k not in ADAPTATION}
    options = {"LIF": spiking, "ALIF": {**spiking, **ADAPTATION}, "EGRU": EGRU_OPTIONS}[cell]
    cfg["model"] = {"cell": cell, "n_hidden": hidden, "density": density, "cell_options": options}
    model, _, opt, task, kw = config.build(cfg)
    return model, opt, task, kw["batch_size"]


def run_one(task_name, cell, rule_name, seed, updates, hidden, density=1.0, stats=False):
    model, opt, task, batch = build(task_name, cell, hidden, density)
    T = task.sample(np.random.default_rng(0), 1).xs.shape[0]
    steps = updates * T
    start = time.perf_counter()
    history = ns.train(
        model,
        RULES[rule_name](),
        opt,
        task,
        steps=steps,
        update_every=T,
        batch_size=batch,
        seed=seed,
        stats=stats,
    )
    wall = time.perf_counter() - start
    counted = {}
    if stats:  # counted per-sequence costs, machine-independent (sparse/stats.py)
        counted = {
            k: float(np.mean(history.column(k)))
            for k in ("macs", "influence_size", "event_fraction", "support_fraction")
        }
    held = task.evaluate(model, history.params)
    return {
        "task": task_name,
        "cell": cell,
        "rule": rule_name,
        "seed": seed,
        "updates": updates,
        "batch": batch,
        "T": T,
        "hidden": hidden,
        "density": density,
        "test_accuracy": held["test_accuracy"],
        "train_accuracy": history.final("accuracy", last=10),
        "ms_per_step": wall / steps * 1e3,
        "wall_s": wall,
        **counted,
    }


def table(rows):
    """Markdown table: accuracy mean ± std over seeds and ms per step, one line per task/cell/rule."""
    keys = []
    for r in rows:
        k = (r["task"], r["cell"], r["rule"])
        if k not in keys:
            keys.append(k)
    lines = [
        "| task | cell | rule | test accuracy (mean ± std) | seeds | ms / step |",
        "|---|---|---|---|---|---|",
    ]
    for k in keys:
        sel = [r for r in rows if (r["task"], r["cell"], r["rule"]) == k]
        acc = np.array([r["test_accuracy"] for r in sel])
        ms = np.mean([r["ms_per_step"] for r in sel])
        lines.append(
            f"| {k[0]} | {k[1]} | {k[2]} | {acc.mean():.3f} ± {acc.std():.3f} | "
            f"{len(sel)} | {ms:.2f} |"
        )
    return "\n".join(lines)


def cost_table(rows):
    """Markdown table of the counted costs of a ``--stats`` run: per task, cell and density, the
    multiply-adds per step and sequence of each rule, with the influence numbers it stores."""
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    keys = list(dict.fromkeys((r["task"], r["cell"], r["density"]) for r in rows))
    lines = [
        "| task | cell | density | events | in support | "
        + " | ".join(f"{rule}: MACs (stored)" for rule in rules)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(rules),
    ]
    for key in keys:
        sel = {r["rule"]: r for r in rows if (r["task"], r["cell"], r["density"]) == key}
        first = next(iter(sel.values()))
        cells = [
            f"{sel[rule]['macs']:,.0f} ({sel[rule]['influence_size']:,.0f})" if rule in sel else ""
            for rule in rules
        ]
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]:g} | {first['event_fraction']:.2f} | "
            f"{first['support_fraction']:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def plot(rows, path):
    """Grouped bars: test accuracy (mean ± std over seeds) per cell and rule, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.6), squeeze=False)
    width = 0.8 / len(rules)
    for ax, task in zip(axes[0], tasks, strict=True):
        for j, rule in enumerate(rules):
            means, stds = [], []
            for cell in cells:
                acc = [
                    r["test_accuracy"]
                    for r in rows
                    if (r["task"], r["cell"], r["rule"]) == (task, cell, rule)
                ]
                means.append(np.mean(acc) if acc else np.nan)
                stds.append(np.std(acc) if acc else 0.0)
            ax.bar(
                np.arange(len(cells)) + (j - (len(rules) - 1) / 2) * width,
                means,
                width,
                yerr=stds,
                capsize=2,
                label=rule,
                color=f"C{j}",
            )
        lo = min(r["test_accuracy"] for r in rows if r["task"] == task)
        ax.set(
            xticks=np.arange(len(cells)),
            xticklabels=cells,
            ylim=(max(0.0, lo - 0.1), 1.0),
            ylabel="test accuracy",
            title=task,
        )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, title="rule")
    fig.suptitle("test accuracy, mean ± std over seeds (y axes do not start at 0)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", nargs="+", default=["spiking_digits", "vowels"], choices=list(CONFIGS)
    )
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=150, help="Adam updates (batches) per run")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument(
        "--density",
        type=float,
        default=1.0,
        help="recurrent weight density (SnAp-2 equals RTRL on dense networks)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "figures" / "real-data-results.json"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="train nothing: merge the rows of these result files into --out, "
        "print the table and draw --figure",
    )
    parser.add_argument("--figure", type=Path, default=None, help="PNG of the accuracies")
    parser.add_argument(
        "--stats",
        action="store_true",
        help="also count multiply-adds and stored influence numbers per step "
        "(a cost run: use few --updates)",
    )
    args = parser.parse_args()
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(path.read_text())["rows"]]
        args.out.write_text(json.dumps({"rows": rows}, indent=1))
        if "macs" in rows[0]:
            print(cost_table(rows))
        else:
            print(table(rows))
        if args.figure:
            plot(rows, args.figure)
        return
    rows = []
    start = time.perf_counter()
    for task_name in args.tasks:
        for cell in args.cells:
            for rule_name in args.rules:
                for seed in args.seeds:
                    row = run_one(
                        task_name,
                        cell,
                        rule_name,
                        seed,
                        args.updates,
                        args.hidden,
                        args.density,
                        args.stats,
                    )
                    rows.append(row)
                    print(
                        f"{task_name:15s} {cell:5s} {rule_name:7s} seed {seed}: "
                        f"test {row['test_accuracy']:.3f}  {row['ms_per_step']:.2f} ms/step  "
                        f"({row['wall_s']:.1f} s)",
                        flush=True,
                    )
                    args.out.write_text(
                        json.dumps(
                            {
                                "args": {
                                    k: (str(v) if isinstance(v, Path) else v)
                                    for k, v in vars(args).items()
                                },
                                "rows": rows,
                            },
                            indent=1,
                        )
                    )
    print(f"total {time.perf_counter() - start:.0f} s\n")
    print(cost_table(rows) if args.stats else table(rows))


if __name__ == "__main__":
    main()
