"""Soak test: a very long online run with constant memory and stable step time.

Runs ``--steps`` (default 1,000,000) online SnAp-1 steps on a small EGRU on the copy task with
curriculum, sampling the process RSS and the time per step every ``--window`` steps, with
checkpoints on (as a real long run would have). Prints a Markdown table row set and writes a JSON
file and a PNG plot.

    NUMBA_NUM_THREADS=1 python benchmarks/soak.py --steps 1000000 --out docs/figures/soak
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

import neurosnap as ns


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=20_000)
    parser.add_argument("--n-hidden", type=int, default=16)
    parser.add_argument("--rule", default="SnAp1", choices=["SnAp1", "RTRL"])
    parser.add_argument("--out", default="docs/figures/soak")
    args = parser.parse_args()

    rule = ns.rules.SnAp(n=1) if args.rule == "SnAp1" else ns.rules.RTRL()
    model = ns.Model(ns.cells.EGRU(4, args.n_hidden), n_out=2)
    samples = []
    last = {"t": time.perf_counter(), "step": 0}

    def sample(row, params):
        if row["step"] - last["step"] >= args.window:
            now = time.perf_counter()
            samples.append(
                {
                    "step": row["step"],
                    "rss_mib": rss_mib(),
                    "level": row["level"],
                    "ms_per_step": 1e3 * (now - last["t"]) / (row["step"] - last["step"]),
                }
            )
            last.update(t=now, step=row["step"])

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as ckdir:
        history = ns.train(
            model,
            rule,
            ns.optim.Adam(1e-2),
            ns.tasks.Copy(),
            steps=args.steps,
            seed=0,
            log_every=args.window,
            checkpoint_dir=ckdir,
            checkpoint_every=100_000,
            callback=sample,
        )
    wall = time.perf_counter() - start
    rss = np.array([s["rss_mib"] for s in samples])
    ms = np.array([s["ms_per_step"] for s in samples])
    # memory growth after warm-up (first 10% of the run: numba compilation, first allocations)
    warm = max(1, len(samples) // 10)
    growth = (rss[-1] - rss[warm]) / rss[warm]
    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "rule": repr(rule),
        "n_hidden": args.n_hidden,
        "steps": args.steps,
        "wall_s": wall,
        "rss_mib_after_warmup": float(rss[warm]),
        "rss_mib_end": float(rss[-1]),
        "rss_growth": float(growth),
        "ms_per_step_median": float(np.median(ms)),
        "ms_per_step_p10": float(np.percentile(ms, 10)),
        "ms_per_step_p90": float(np.percentile(ms, 90)),
        "level_reached": history.final("level"),
        "history_rows": len(history.rows),
        "samples": samples,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s["step"] for s in samples]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot(steps, rss)
    axes[0].set(xlabel="time steps", ylabel="RSS (MiB)", ylim=(0, rss.max() * 1.2))
    axes[1].plot(steps, ms)
    axes[1].set(xlabel="time steps", ylabel="ms per step", ylim=(0, ms.max() * 1.2))
    fig.suptitle(f"soak: {args.steps:,} online {repr(rule)} steps, EGRU n={args.n_hidden}")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    print(
        f"| {args.steps:,} | {repr(rule)} | {wall:.0f} s | {rss[warm]:.1f} -> {rss[-1]:.1f} MiB "
        f"({100 * growth:+.2f}%) | {np.median(ms):.3f} ms (p10 {np.percentile(ms, 10):.3f}, "
        f"p90 {np.percentile(ms, 90):.3f}) | level {history.final('level'):.0f} |"
    )


if __name__ == "__main__":
    main()
