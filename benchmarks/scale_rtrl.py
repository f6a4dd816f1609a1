"""Exact RTRL at 512 units: train EGRU n=512, density 0.05, online on sequential digits.

    python benchmarks/scale_rtrl.py                       # the recorded run (docs/benchmarks.md)
    python benchmarks/scale_rtrl.py --steps 160 --time-sequences 2 --out runs/scale   # a quick look

The model is ``EGRU(n_in=8, n_hidden=512, density=0.05)`` in float32 with a linear readout over 10
classes; the task is ``ns.tasks.Digits`` (scikit-learn's 8 x 8 digits read row by row, label at the
last of 8 steps). The rule is exact RTRL, ``RTRL()`` (the sparse exact engine), batch 1, Adam,
one update per image (``update_every=8``): the influence matrix ``M`` (512 x 47,616 numbers) is
carried forward exactly at every step, no truncation and no approximation.

Before training, the same process times ``RTRL()`` and the dense reference ``RTRL(sparse=False)``
on the same digit sequences (CPU time of the calling thread, ``time.thread_time``, which is robust
to other jobs on a shared machine); the training loop reports wall and CPU time. After training,
the final parameters are scored on the task's whole validation and test splits.

Writes ``OUT/scale-rtrl.json`` and ``OUT/scale-rtrl-digits.png`` (the learning curve).
One thread for BLAS and numba (set below unless already set).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import neurosnap as ns  # noqa: E402
from neurosnap.rules import RTRL  # noqa: E402


def build(n, density, seed):
    cell = ns.cells.EGRU(n_in=8, n_hidden=n, density=density, seed=seed)
    model = ns.Model(cell, n_out=10, loss="cross_entropy", dtype=np.float32)
    return model, model.init(seed=seed)


def time_rule(model, params, rule, batches, counts=None):
    """CPU seconds per ``rule.step`` over the sequences of ``batches`` (fresh influence per
    sequence, as in training; the first sequence, which compiles, is not timed). ``counts``, a
    list, receives per timed step the event and support fractions and the counted MACs."""
    cell = model.cell
    cp = model.cell_params(params)
    spent, steps = 0.0, 0
    for i, batch in enumerate(batches):
        st = rule.init(model, params, 1)
        s = cell.initial_state(1, model.dtype)
        for t in range(batch.xs.shape[0]):
            s, _, rec = cell.step_record(cp, s, batch.xs[t].astype(model.dtype))
            t0 = time.thread_time()
            st, _ = rule.step(st, rec, rec.dout, params=params)
            dt = time.thread_time() - t0
            if i == 0:  # warm-up: compilation, first touch of the buffers
                continue
            spent += dt
            steps += 1
            if counts is not None:
                counts.append(
                    (
                        float(rec.events.mean()),
                        float(rec.support.mean()),
                        rule.cost(st, rec)["macs"],
                    )
                )
    return spent / max(steps, 1)


def moving(x, k):
    x = np.asarray(x, float)
    if len(x) < k:
        k = max(len(x), 1)
    c = np.cumsum(np.insert(x, 0, 0.0))
    return (c[k:] - c[:-k]) / k


def plot(result, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.arange(1, len(rows) + 1)
    acc = [r["accuracy"] for r in rows]
    loss = [r["loss"] for r in rows]
    k = result["smoothing"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(
        images[k - 1 :],
        moving(acc, k),
        color="C0",
        label=f"training accuracy (mean of last {k} images)",
    )
    ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance")
    ax.axhline(
        result["test_accuracy"],
        color="C3",
        ls="--",
        lw=1,
        label=f"test accuracy after training: {result['test_accuracy']:.3f}",
    )
    ax.set_xlabel("training images (8 online steps each)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax = axes[1]
    ax.plot(images[k - 1 :], moving(loss, k), color="C1")
    ax.set_xlabel("training images")
    ax.set_ylabel(f"cross-entropy at the last step (mean of last {k})")
    fig.suptitle(
        f"EGRU n={result['n']}, density {result['density']}, float32, exact sparse RTRL online: "
        f"{result['sparse_ms_per_step']:.1f} ms/step (dense RTRL {result['dense_ms_per_step']:.0f} ms), "
        f"influence {result['influence_mb']:.0f} MB",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=4000, help="online time steps (8 per image)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--time-sequences",
        type=int,
        default=4,
        help="digit sequences on which both rules are timed before training",
    )
    ap.add_argument("--smoothing", type=int, default=30, help="images per point of the curve")
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, params = build(args.n, args.density, args.seed)
    task = ns.tasks.Digits(seed=0)
    cell = model.cell
    S, n, P = cell.n_state, cell.n_hidden, cell.layout.size
    rng = np.random.default_rng(1234)
    batches = [task.sample(rng, 1) for _ in range(args.time_sequences)]
    counts, dense_counts = [], []
    sparse_s = time_rule(model, params, RTRL(), batches, counts)
    dense_s = time_rule(model, params, RTRL(sparse=False), batches, dense_counts)
    print(
        f"timing (CPU, same sequences): sparse {1e3 * sparse_s:.1f} ms/step, "
        f"dense {1e3 * dense_s:.1f} ms/step, ratio {dense_s / sparse_s:.1f}",
        flush=True,
    )
    before = task.evaluate(model, params)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    rows = []

    def callback(row, _params):
        rows.append(
            {
                "step": row["step"],
                "loss": float(row["loss"]),
                "accuracy": float(row["accuracy"]),
                "wall": time.perf_counter() - wall0,
                "cpu": time.process_time() - cpu0,
            }
        )
        if len(rows) % 25 == 0:
            r = rows[-1]
            print(
                f"step {r['step']}: acc(last 25) {np.mean([x['accuracy'] for x in rows[-25:]]):.2f}"
                f" wall {r['wall']:.0f} s cpu {r['cpu']:.0f} s",
                flush=True,
            )

    hist = ns.train(
        model,
        RTRL(),
        ns.optim.Adam(lr=args.lr),
        task,
        steps=args.steps,
        update_every=8,
        batch_size=1,
        seed=args.seed,
        params=params,
        callback=callback,
    )
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    after = task.evaluate(model, hist.params)
    itemsize = np.dtype(model.dtype).itemsize
    result = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "argv": sys.argv,
        "n": n,
        "density": args.density,
        "n_state": S,
        "parameters": int(P),
        "recurrent_weights": int(cell.mask.sum()) * cell.n_gates,
        "steps": args.steps,
        "images": len(rows),
        "lr": args.lr,
        "smoothing": args.smoothing,
        "sparse_ms_per_step": 1e3 * sparse_s,
        "dense_ms_per_step": 1e3 * dense_s,
        "speedup": dense_s / sparse_s,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "train_wall_ms_per_step": 1e3 * wall / args.steps,
        "train_cpu_ms_per_step": 1e3 * cpu / args.steps,
        "dense_projected_hours": dense_s * args.steps / 3600,
        "influence_numbers": S * n * P,
        "influence_mb": 2 * S * n * P * itemsize / 2**20,  # two buffers, swapped each step
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "timed_event_fraction": float(np.mean([c[0] for c in counts])),
        "timed_support_fraction": float(np.mean([c[1] for c in counts])),
        "timed_sparse_macs_per_step": float(np.mean([c[2] for c in counts])),
        "timed_dense_macs_per_step": float(np.mean([c[2] for c in dense_counts])),
        "train_accuracy_last": float(np.mean([r["accuracy"] for r in rows[-args.smoothing :]])),
        "before": before,
        **after,
    }
    with open(out / "scale-rtrl.json", "w") as fh:
        json.dump({"result": result, "rows": rows}, fh, indent=1)
    plot(result, rows, out / "scale-rtrl-digits.png")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
