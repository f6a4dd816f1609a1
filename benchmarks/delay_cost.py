"""Benchmark: what refractoriness and recurrent delays cost exact training (issue: spiking features).

A LIF cell with ``delay = D`` carries ``D - 1`` delayed gate arguments per unit as state (and, with
``refractory > 0``, a counter and ``D - 1`` delayed flags), so exact RTRL's influence has
``S = 2 + (D - 1) (+ 1 + (D - 1))`` rows per unit instead of 2 (``docs/theory/cells.md`` eq.
(15)-(20)). This script measures, for several ``D`` and with and without refractoriness, the CPU
time per step of ``ns.sequence_grad`` for dense exact RTRL, the sparse exact engine and BPTT on the
per-step reference path (the compiled engine does not cover these cells; the ``D = 1`` row without
refractoriness is also timed with the compiled engine for scale), as CPU time of the process
(``time.process_time``), best of ``--repeat`` after a warm-up call, and prints the state size and
the influence size. Ratios to ``D = 1`` in the same run are the numbers to read.

Run (one thread for BLAS and numba)::

    python benchmarks/delay_cost.py            # n = 32, T = 40, batch 1, float64
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

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import neurosnap as ns  # noqa: E402

RULES = {
    "RTRL-dense": lambda: ns.rules.RTRL(sparse=False),
    "RTRL": lambda: ns.rules.RTRL(),
    "BPTT": lambda: ns.rules.BPTT(),
}


def _time(model, params, xs, ys, rule, engine, repeat):
    ns.sequence_grad(model, params, xs[:3], ys[:3], rule(), engine=engine)  # warm-up
    best = np.inf
    for _ in range(repeat):
        t = time.process_time()
        ns.sequence_grad(model, params, xs, ys, rule(), engine=engine)
        best = min(best, time.process_time() - t)
    return best / len(xs) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--T", type=int, default=40)
    ap.add_argument("--delays", default="1,2,4,8")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    xs = (rng.random((args.T, 1, 4)) < 0.2).astype(np.float64)
    ys = rng.integers(0, 4, (args.T, 1))
    print(
        f"# {datetime.date.today()}  {platform.machine()}  Python {platform.python_version()}  "
        f"numpy {np.__version__}  n={args.n} T={args.T} batch 1 float64  "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        "| refractory | delay D | state S | influence entries | "
        + " | ".join(f"{r} ms/step (x D=1)" for r in RULES)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(RULES))
    for refractory in (0.0, 3e-3):
        base = {}
        for D in (int(d) for d in args.delays.split(",")):
            cell = ns.cells.LIF(
                4, args.n, w_in_scale=30.0, w_rec_scale=5.0, refractory=refractory, delay=D
            )
            model = ns.Model(cell, n_out=4)
            params = model.init(seed=0)
            cells = []
            for name, rule in RULES.items():
                ms = _time(model, params, xs, ys, rule, "reference", args.repeat)
                base.setdefault(name, ms)
                cells.append(f"{ms:.3f} ({ms / base[name]:.2f}x)")
            print(
                f"| {refractory * 1e3:g} ms | {D} | {cell.n_state} | "
                f"{cell.n_state * args.n * cell.layout.size:,} | " + " | ".join(cells) + " |"
            )
    model = ns.Model(ns.cells.LIF(4, args.n, w_in_scale=30.0, w_rec_scale=5.0), n_out=4)
    params = model.init(seed=0)
    comp = [
        f"{_time(model, params, xs, ys, r, 'compiled', args.repeat):.3f}" for r in RULES.values()
    ]
    print(
        "compiled engine, D = 1, no refractoriness: "
        + ", ".join(f"{name} {ms} ms/step" for name, ms in zip(RULES, comp, strict=True))
    )


if __name__ == "__main__":
    main()
