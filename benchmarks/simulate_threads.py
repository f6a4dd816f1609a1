"""Event-driven LIF simulation on 1 vs more cores (``ns.simulate(..., threads=)``).

The network is ``benchmarks/simulate.py``'s (current-based LIF, dt 1 ms, fixed in-degree
``density * N``, 80 % excitatory / 20 % inhibitory presynaptic units, 100 input channels), driven by
Poisson input (:class:`neurosnap.simulation.PoissonSource`, 20 Hz per channel). Timed: the event
engine's time-step loop (:class:`neurosnap.simulation.engine.EventRunner`, network and synapse
tables already built, compilation cached), for each thread count in turn, best of ``--repeats``;
the spike trains of every thread count are checked to be identical.

Usage::

    NUMBA_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 python benchmarks/simulate_threads.py \\
        --n 20000 --density 0.01 --steps 1000 --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from simulate import N_IN, build

import neurosnap as ns
from neurosnap.simulation.engine import EventRunner
from neurosnap.simulation.kernels import check_threads, set_threads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=20.0, help="Poisson input rate per channel, Hz"
    )
    args = parser.parse_args(argv)
    threads = [check_threads(k) for k in args.threads]

    start = time.perf_counter()
    model, params, _ = build(args.n, args.density, 1, "float64")
    source = ns.simulation.PoissonSource(args.rate, N_IN, model.cell.dt, seed=0, batch=args.batch)
    xs, _ = source.next_chunk(args.steps)
    xs = np.ascontiguousarray(xs)
    no_units = np.zeros(0, np.int64)
    runner = EventRunner(model, params, args.batch, [], no_units, True)
    print(f"build {time.perf_counter() - start:.1f} s (dense parameters, synapse tables)")

    spikes = {}

    def emit(st, un, ba):
        spikes.setdefault("now", []).append((st.copy(), un.copy(), ba.copy()))

    runner.run(xs[:2], 0, emit)  # compile or load the kernel
    results = {}
    for k in threads:
        before = set_threads(k)
        try:
            best = np.inf
            for _ in range(args.repeats):
                runner.reset()
                spikes.clear()
                tic = time.perf_counter()
                runner.run(xs, 0, emit)
                best = min(best, time.perf_counter() - tic)
        finally:
            set_threads(before)
        got = spikes.get("now", [])
        results[k] = tuple(np.concatenate([p[i] for p in got]) for i in range(3))
        n_events = len(results[k][0])
        per_1000 = best * 1000 / args.steps
        print(
            f"threads={k}: {per_1000:.3f} s per 1,000 steps, {n_events:,} events "
            f"({n_events / (args.n * args.batch * args.steps):.4f} per unit and step), "
            f"{n_events / best / 1e6:.1f} M events/s"
        )
    first = results[threads[0]]
    for k in threads[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(first, results[k], strict=True)), k
    print(
        f"identical spike trains for threads {threads}; n={args.n}, density={args.density}, "
        f"batch={args.batch}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores visible"
    )


if __name__ == "__main__":
    main()
