"""Sparsity study of arXiv 2303.05641 (Subramoney 2023) with neurosnap's exact sparse RTRL.

EGRU with 16 units on the two-class spiral task (``ns.tasks.Spiral``: L = 17, label at the last
step), Adam 3e-3, batch 32, weight sparsity 0 ... 0.9 (a fixed random mask, ``density = 1 - s``), with
and without activity sparsity; exact RTRL gradients (``ns.rules.RTRL()``), weights updated once per
sequence, as in the paper's code. Per iteration it records the loss, the activity sparsity (fraction
of zero unit outputs), and the influence sparsity for the recurrent weights (fraction of zeros in
``M`` restricted to the ``G n^2`` recurrent-weight columns, pruned weights included as in the
paper's code, which keeps the full ``W_hh``); the mean over the sequence's steps and the value at the
last step. "Compute-adjusted iterations" are the cumulative influence density, sum over iterations of
``1 - influence sparsity`` (per-step mean).

Without activity sparsity the event output is replaced by ``y = c`` (the paper's ``output_fn = 1``
ablation: the gate is always open and carries no surrogate).

The thresholds are learned per unit, ``theta = sigmoid(theta_raw)`` (``EGRU(learn_threshold=True)``),
initialised as in the paper's code, ``theta_raw ~ N(0, 1) - 1`` (``--threshold-init paper``);
``--no-learn-threshold`` gives the fixed threshold 0.3 of the earlier run. With
``--measure-every k`` the sparsities are measured (with RTRL) on every k-th iteration and the last
one; the other iterations take the same gradient from BPTT (equal to RTRL to round-off, tested)
and carry the last measured values, so the cumulative density is a step-function estimate.

    python benchmarks/sparsity_study.py                    # 10 levels x 5 seeds x 2 modes
    python benchmarks/sparsity_study.py --seeds 2 --iters 600 --sparsity 0 0.5 0.9   # quick
    python benchmarks/sparsity_study.py --engine dense --measure-every 10 --json study.json

Figures go to ``docs/figures/sparsity-*.png``, numbers to ``--json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass

for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import neurosnap as ns  # noqa: E402
from neurosnap.core.layout import REC  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@dataclass(frozen=True)
class AlwaysOn(ns.gates.Gate):
    """No activity sparsity: the output gate is always open (``y = c``), with no surrogate."""

    def forward(self, x):
        return np.ones_like(x)

    def grad(self, x):
        return np.zeros_like(x)


def make(
    sparsity,
    seed,
    activity,
    n=16,
    threshold=0.3,
    width=1.0,
    learn_threshold=True,
    threshold_init="paper",
):
    """Model and parameters; with ``learn_threshold`` the per-unit threshold sigmoid(theta_raw) is
    learned, initialised as in the paper's code (``theta_raw ~ N(0, 1) - 1``, "paper") or at
    ``logit(threshold)`` ("fixed", the library default)."""
    gate = ns.gates.Heaviside(ns.gates.Triangle(gamma=0.7, width=width)) if activity else AlwaysOn()
    cell = ns.cells.EGRU(
        n_in=2,
        n_hidden=n,
        density=max(1.0 - sparsity, 1.0 / n),
        seed=seed,
        gate=gate,
        threshold=threshold,
        learn_threshold=learn_threshold,
    )
    model = ns.Model(cell, n_out=2, loss="cross_entropy")
    params = model.init(seed=seed)
    if learn_threshold and threshold_init == "paper":
        rng = np.random.default_rng(10_000 + seed)
        params["cell.threshold"] = rng.standard_normal(n) - 1.0
    return model, params


def run_batch(model, params, batch, rule):
    """Loss (mean per sequence), gradients (batch mean) and the sparsity measures of one batch."""
    c = model.cell
    layout = c.layout
    cp = model.cell_params(params)
    xs, ys, mask = batch.xs, batch.ys, batch.mask
    T, B, _ = xs.shape
    rec_cols = np.flatnonzero(layout.kind == REC)
    n_rec = len(rec_cols)
    assert np.array_equal(rec_cols, np.arange(n_rec))  # recurrent columns come first
    full = B * c.n_state * c.n_hidden * c.n_gates * c.n_hidden**2  # all G n^2 W_hh entries
    existing = B * c.n_state * c.n_hidden * len(rec_cols)
    s = c.initial_state(B)
    rs = rule.init(model, params, B)
    core = np.zeros(layout.size)
    g_w = np.zeros_like(params["readout.weight"])
    g_b = np.zeros_like(params["readout.bias"])
    total = 0.0
    zeros_h, dens_full, dens_exist, support = [], [], [], []
    for t in range(T):
        s, y, rec = c.step_record(cp, s, xs[t])
        loss, _, dlogits, dy = model.step_loss(params, y, ys[t], mask[t])
        total += float(np.sum(loss))  # per-example (B,) or summed, by version
        g_w += dlogits.T @ y
        g_b += dlogits.sum(axis=0)
        rs, g = rule.step(rs, rec, dy[:, None, :] * rec.dout, params=params, dlogits=dlogits)
        core += g
        direct = layout.readout_direct(rec, dy)  # learned thresholds
        if direct is not None:
            core += direct
        nnz = np.count_nonzero(rs.influence[..., :n_rec])
        zeros_h.append(float(np.mean(y == 0)))
        dens_full.append(nnz / full)
        dens_exist.append(nnz / existing)
        support.append(float(np.mean(rec.support)))
    grads = {f"cell.{k}": v / B for k, v in layout.to_dict(core, model.dtype).items()}
    grads["readout.weight"] = g_w / B
    grads["readout.bias"] = g_b / B
    return (
        total / B,
        grads,
        {
            "activity_sparsity": float(np.mean(zeros_h)),
            "influence_sparsity": 1.0 - float(np.mean(dens_full)),
            "influence_sparsity_last": 1.0 - dens_full[-1],
            "influence_sparsity_existing": 1.0 - float(np.mean(dens_exist)),
            "support_fraction": float(np.mean(support)),
        },
    )


def train_run(sparsity, seed, activity, args):
    model, params = make(
        sparsity,
        seed,
        activity,
        width=args.width,
        learn_threshold=args.learn_threshold,
        threshold_init=args.threshold_init,
    )
    task = ns.tasks.Spiral(length=17, seed=0)
    rng = np.random.default_rng(1000 + seed)
    opt = ns.optim.Adam(lr=args.lr)
    ost = opt.init(params)
    rule = ns.rules.RTRL(sparse=args.engine == "sparse")
    hist = {
        k: []
        for k in (
            "loss",
            "activity_sparsity",
            "influence_sparsity",
            "influence_sparsity_last",
            "influence_sparsity_existing",
            "support_fraction",
        )
    }
    hist["measured"] = []
    meas = None
    for it in range(args.iters):
        batch = task.sample(rng, args.batch)
        if it % args.measure_every == 0 or it == args.iters - 1:
            loss, grads, meas = run_batch(model, params, batch, rule)
            hist["measured"].append(True)
        else:  # the same gradient by BPTT (RTRL == BPTT, tested), without the measures
            total, grads = ns.sequence_grad(
                model, params, batch.xs, batch.ys, ns.rules.BPTT(), mask=batch.mask
            )
            loss = total / batch.xs.shape[1]
            grads = {k: v / batch.xs.shape[1] for k, v in grads.items()}
            hist["measured"].append(False)
        params, ost = opt.update(grads, ost, params)
        hist["loss"].append(loss)
        for k, v in meas.items():  # unmeasured iterations carry the last measured value
            hist[k].append(v)
    acc = task.evaluate(model, params)
    if "cell.threshold" in params:
        th = 1.0 / (1.0 + np.exp(-params["cell.threshold"]))
        acc = {
            **acc,
            "threshold_mean": float(th.mean()),
            "threshold_min": float(th.min()),
            "threshold_max": float(th.max()),
        }
    return {
        "sparsity": sparsity,
        "density": float(model.cell.mask.mean()),
        "seed": seed,
        "activity": activity,
        **acc,
        **hist,
    }


def smooth(x, w=25):
    x = np.asarray(x, float)
    if len(x) < w:
        return x
    k = np.ones(w) / w
    return np.convolve(np.pad(x, (w - 1, 0), mode="edge"), k, mode="valid")


def summarise(runs, args):
    rows = []
    for activity in (True, False):
        for s in args.sparsity:
            rs = [r for r in runs if r["sparsity"] == s and r["activity"] == activity]
            if not rs:
                continue
            tail = max(1, args.iters // 10)

            def stat(key, rs=rs, tail=tail):
                return float(np.mean([np.mean(r[key][-tail:]) for r in rs]))

            def first(key, rs=rs):
                return float(np.mean([r[key][0] for r in rs]))

            cad = []  # compute-adjusted iterations to smoothed loss < 0.1
            its = []
            for r in rs:
                cum = np.cumsum(1.0 - np.asarray(r["influence_sparsity"]))
                sm = smooth(r["loss"])
                hit = np.flatnonzero(sm < args.solved)
                cad.append(float(cum[hit[0]]) if len(hit) else float("nan"))
                its.append(float(hit[0]) if len(hit) else float("nan"))
            rows.append(
                {
                    "activity": activity,
                    "sparsity": s,
                    "density": rs[0]["density"],
                    "runs": len(rs),
                    "activity_sparsity_first": first("activity_sparsity"),
                    "activity_sparsity_end": stat("activity_sparsity"),
                    "influence_sparsity_first": first("influence_sparsity"),
                    "influence_sparsity_end": stat("influence_sparsity"),
                    "influence_sparsity_last_end": stat("influence_sparsity_last"),
                    "influence_sparsity_existing_end": stat("influence_sparsity_existing"),
                    "support_fraction_end": stat("support_fraction"),
                    "loss_end": stat("loss"),
                    "test_accuracy": float(np.mean([r["test_accuracy"] for r in rs])),
                    "threshold_mean_end": (
                        float(np.mean([r["threshold_mean"] for r in rs]))
                        if "threshold_mean" in rs[0]
                        else None
                    ),
                    "threshold_min_end": (
                        float(np.min([r["threshold_min"] for r in rs]))
                        if "threshold_min" in rs[0]
                        else None
                    ),
                    "cum_density_total": float(
                        np.mean([np.sum(1 - np.asarray(r["influence_sparsity"])) for r in rs])
                    ),
                    "solved_runs": int(np.sum(np.isfinite(its))),
                    "iters_to_solve": float(np.nanmean(its)) if np.any(np.isfinite(its)) else None,
                    "compute_to_solve": float(np.nanmean(cad))
                    if np.any(np.isfinite(cad))
                    else None,
                }
            )
    return rows


def plot(runs, args, outdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = args.sparsity
    cmap = plt.get_cmap("viridis")
    colours = {s: cmap(i / max(1, len(levels) - 1)) for i, s in enumerate(levels)}

    def mean_curve(key, s, activity):
        rs = [r for r in runs if r["sparsity"] == s and r["activity"] == activity]
        return np.mean([smooth(r[key]) for r in rs], axis=0) if rs else None

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for s in levels:
        a = mean_curve("activity_sparsity", s, True)
        if a is not None:
            axes[0].plot(a, color=colours[s], label=f"{s:.1f}")
        m = mean_curve("influence_sparsity", s, True)
        if m is not None:
            axes[1].plot(m, color=colours[s], label=f"{s:.1f}")
    axes[0].set(
        title="activity sparsity (zeros in unit outputs)",
        xlabel="iteration",
        ylabel="fraction of zeros",
    )
    axes[1].set(title="influence sparsity (zeros in M for W_hh)", xlabel="iteration")
    axes[1].legend(title="weight sparsity", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "sparsity-activity-influence.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, activity in zip(axes, (True, False), strict=True):
        for s in levels:
            rs = [r for r in runs if r["sparsity"] == s and r["activity"] == activity]
            if not rs:
                continue
            xs = np.mean([np.cumsum(1 - np.asarray(r["influence_sparsity"])) for r in rs], axis=0)
            ys = np.mean([smooth(r["loss"]) for r in rs], axis=0)
            ax.plot(xs, ys, color=colours[s], label=f"{s:.1f}")
        ax.set(
            title=("with" if activity else "without") + " activity sparsity",
            xlabel="compute-adjusted iterations (cumulative influence density)",
            xscale="log",
        )
    axes[0].set_ylabel("training loss (smoothed)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="weight sparsity", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "sparsity-loss-vs-compute.png"), dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--sparsity", type=float, nargs="+", default=[round(0.1 * i, 1) for i in range(10)]
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=1700)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=float, default=1.0, help="surrogate width (paper: 1)")
    ap.add_argument("--solved", type=float, default=0.1, help="smoothed loss counted as solved")
    ap.add_argument(
        "--no-learn-threshold",
        dest="learn_threshold",
        action="store_false",
        help="fixed threshold 0.3 (the earlier reduced run)",
    )
    ap.add_argument(
        "--threshold-init",
        choices=["paper", "fixed"],
        default="paper",
        help="learned threshold init: theta_raw ~ N(0,1) - 1 (paper) or logit(0.3)",
    )
    ap.add_argument(
        "--measure-every",
        type=int,
        default=1,
        help="measure the sparsities (RTRL) every k-th iteration; the others take "
        "the same gradient by BPTT and carry the last measured values",
    )
    ap.add_argument(
        "--engine",
        choices=["sparse", "dense"],
        default="sparse",
        help="RTRL(sparse=True) or RTRL(sparse=False): same gradient (tested)",
    )
    ap.add_argument(
        "--modes", nargs="+", default=["activity", "dense"], choices=["activity", "dense"]
    )
    ap.add_argument("--figures", default=os.path.join(ROOT, "docs", "figures"))
    ap.add_argument("--json", default=None, help="results (rewritten after every run)")
    ap.add_argument(
        "--replot",
        default=None,
        metavar="JSON",
        help="summarise and plot the runs of an earlier --json file, train nothing",
    )
    args = ap.parse_args(argv)
    os.makedirs(args.figures, exist_ok=True)
    runs = []
    if args.replot:
        with open(args.replot) as fh:
            runs = json.load(fh)["runs"]
        args.sparsity = sorted({r["sparsity"] for r in runs})
        args.iters = min(len(r["loss"]) for r in runs)
    t0 = time.time()
    # seed-major: a run stopped early (timeout) holds the same seeds at every level and mode
    todo = (
        []
        if args.replot
        else [(m, s, seed) for seed in range(args.seeds) for s in args.sparsity for m in args.modes]
    )
    for mode, s, seed in todo:
        r = train_run(s, seed, mode == "activity", args)
        runs.append(r)
        if args.json:
            _dump(args, runs, summarise(runs, args))
        print(
            f"[{time.time() - t0:7.0f}s] {mode:8s} s={s:.1f} seed={seed} "
            f"loss_end={np.mean(r['loss'][-50:]):.3f} test_acc={r['test_accuracy']:.3f} "
            f"act_sp={np.mean(r['activity_sparsity'][-50:]):.3f} "
            f"infl_sp={np.mean(r['influence_sparsity'][-50:]):.3f}",
            flush=True,
        )
    rows = summarise(runs, args)
    for row in rows:
        print(json.dumps(row))
    plot(runs, args, args.figures)
    if args.json and not args.replot:
        _dump(args, runs, rows)
    return rows


def _dump(args, runs, rows):
    with open(args.json, "w") as fh:
        json.dump(
            {
                "date": datetime.date.today().isoformat(),
                "args": vars(args),
                "summary": rows,
                "runs": runs,
            },
            fh,
            default=lambda o: o.tolist() if hasattr(o, "tolist") else float(o),
        )


if __name__ == "__main__":
    main()
