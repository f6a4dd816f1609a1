"""Benchmark: the compiled engine on sparse synapse storage (``storage="sparse"``).

Three measurements on LIF networks with a fixed in-degree (``density * n`` synapses per unit),
4 inputs, 4 outputs, cross-entropy, batch 1, float64:

- ``--mode rules``: time per step of ``ns.sequence_grad`` for the O(synapses) rules (e-prop,
  RFLO, SnAp-1, BPTT, UORO), compiled vs reference, at ``--n`` units (default 10,000 at 1 %,
  10^6 synapses);
- ``--mode storage``: the same rules compiled, dense ``(G, n, n)`` vs sparse ``(G, nnz)`` storage
  at ``--n`` units (default 2,000 at 5 %): both run the same compiled loops, the dense array
  gathered into synapse values per call;
- ``--mode train``: ``ns.train`` with e-prop and Adam on a sparse network of ``--n`` units (the
  Copy task, ``--steps`` time steps after a 20-step warm-up), wall time and the process's peak
  resident memory (``VmHWM``, Linux).

Times are CPU time of the process (``time.process_time``), best of two runs after a warm-up call
(compilation excluded). Run with one thread::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/engine_sparse.py --mode rules
    python benchmarks/engine_sparse.py --mode storage --n 2000 --density 0.05
    python benchmarks/engine_sparse.py --mode train --n 10000 --density 0.01
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 - after the thread settings above

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import neurosnap as ns  # noqa: E402
from neurosnap import engine as compiled_engine  # noqa: E402

RULES = {
    "EProp": lambda: ns.rules.EProp(),
    "RFLO": lambda: ns.rules.RFLO(),
    "SnAp-1": lambda: ns.rules.SnAp(1),
    "BPTT": lambda: ns.rules.BPTT(),
    "UORO": lambda: ns.rules.UORO(seed=0),
}


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        return int(status["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return float("nan")


def problem(n, density, storage, T, seed=0):
    cell = ns.cells.LIF(4, n, density, storage=storage, w_in_scale=30.0, w_rec_scale=1.0)
    model = ns.Model(cell, n_out=4)
    params = model.init(seed)
    rng = np.random.default_rng(seed)
    return model, params, rng.normal(size=(T, 1, 4)), rng.integers(0, 4, size=(T, 1))


def per_step_ms(model, params, xs, ys, rule, engine):
    """Best CPU time per step (ms) of ``sequence_grad`` over two runs, after a warm-up."""
    ns.sequence_grad(model, params, xs[:3], ys[:3], rule, engine=engine)
    best = np.inf
    for _ in range(2):
        t0 = time.process_time()
        ns.sequence_grad(model, params, xs, ys, rule, engine=engine)
        best = min(best, time.process_time() - t0)
    return best / len(xs) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["rules", "storage", "train"], default="rules")
    parser.add_argument("--n", type=int, default=None, help="units (default by mode)")
    parser.add_argument("--density", type=float, default=None, help="synapses per unit / n")
    parser.add_argument("--steps", type=int, default=100, help="time steps (compiled runs)")
    parser.add_argument("--ref-steps", type=int, default=5, help="time steps (reference runs)")
    parser.add_argument("--rules", nargs="+", default=list(RULES))
    args = parser.parse_args(argv)
    n = args.n or {"rules": 10_000, "storage": 2_000, "train": 10_000}[args.mode]
    density = args.density or {"rules": 0.01, "storage": 0.05, "train": 0.01}[args.mode]
    print(
        f"# neurosnap compiled engine, sparse storage, {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    if args.mode == "train":
        task = ns.tasks.Copy()
        cell = ns.cells.LIF(task.n_in, n, density, storage="sparse", w_in_scale=30.0)
        model = ns.Model(cell, n_out=task.n_out)
        rule, opt = ns.rules.EProp(), ns.optim.Adam(1e-3)
        assert compiled_engine.supports(model, rule, opt)
        ns.train(model, rule, opt, task, steps=20, seed=0)  # compile (or load the cache)
        t0 = time.perf_counter()
        run = ns.train(model, rule, opt, task, steps=args.steps, update_every=10, seed=0)
        print(
            f"e-prop + Adam, LIF n={n}, {cell.graph.nnz} synapses, {args.steps} steps: "
            f"{time.perf_counter() - t0:.2f} s wall, "
            f"{run.rows[-1]['updates']} updates, peak RSS {peak_rss_mib():.0f} MiB"
        )
        return
    print("# ms per step (CPU time), batch 1, float64\n")
    if args.mode == "rules":
        print(f"LIF n={n}, density {density}, sparse storage\n")
        print("| rule | compiled | reference | speed-up |")
        print("|---|---|---|---|")
    else:
        print(f"LIF n={n}, density {density}, compiled engine\n")
        print("| rule | dense storage | sparse storage | dense / sparse |")
        print("|---|---|---|---|")
    for name in args.rules:
        rule = RULES[name]()
        if args.mode == "rules":
            model, params, xs, ys = problem(n, density, "sparse", args.steps)
            a = per_step_ms(model, params, xs, ys, rule, "compiled")
            k = args.ref_steps
            b = per_step_ms(model, params, xs[:k], ys[:k], rule, "reference")
        else:
            model, params, xs, ys = problem(n, density, "dense", args.steps)
            a = per_step_ms(model, params, xs, ys, rule, "compiled")
            model, params, xs, ys = problem(n, density, "sparse", args.steps)
            b = per_step_ms(model, params, xs, ys, rule, "compiled")
        ratio = b / a if args.mode == "rules" else a / b
        print(f"| {name} | {a:.3f} | {b:.3f} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
