"""Benchmark: the compiled engine against the per-step reference path, every rule on every cell.

For each cell (LeakyRNN = tanh RNN, EGRU, LIF, ALIF; dense weights, 4 inputs, 4 outputs,
cross-entropy), rule (exact RTRL sparse engine and dense, SnAp-1, SnAp-2, UORO, RFLO, e-prop,
BPTT), number of units ``n``, dtype and batch size, it measures the time per step of a whole
``ns.sequence_grad`` call (cell step, record, readout, loss, rule update, gradient; for BPTT the
forward and backward passes) with ``engine="compiled"`` and with ``engine="reference"`` in the same
process, as CPU time of the process (``time.process_time``: robust to a shared machine), best of
``--repeat`` runs after a warm-up call (compilation excluded).

Combinations whose influence would need more than ``--max-mb`` MiB, or whose estimated reference
time exceeds ``--budget`` seconds, are skipped (shown as ``-``). Each measurement runs enough steps
to last about ``--target-s`` seconds (at least 3).

``--native-blas`` re-runs the script with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed
from its own environment (a machine may set them to slow down numpy's BLAS); the BLAS kernel that
ran is printed (threadpoolctl).

Run (one thread for BLAS and numba)::

    python benchmarks/engine.py --quick           # n = 16, 64; float32; batch 1 (about a minute)
    python benchmarks/engine.py                   # n = 16..256, float32 and float64, batch 1 and 16
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

RULES = {
    "RTRL": lambda: ns.rules.RTRL(),
    "RTRL-dense": lambda: ns.rules.RTRL(sparse=False),
    "SnAp-1": lambda: ns.rules.SnAp(1),
    "SnAp-2": lambda: ns.rules.SnAp(2),
    "UORO": lambda: ns.rules.UORO(seed=0),
    "RFLO": lambda: ns.rules.RFLO(),
    "EProp": lambda: ns.rules.EProp(),
    "BPTT": lambda: ns.rules.BPTT(),
}
CELLS = {
    "LeakyRNN": lambda n: ns.cells.LeakyRNN(4, n),
    "EGRU": lambda n: ns.cells.EGRU(4, n),
    "LIF": lambda n: ns.cells.LIF(4, n, w_in_scale=30.0, w_rec_scale=5.0),
    "ALIF": lambda n: ns.cells.ALIF(4, n, w_in_scale=30.0, w_rec_scale=5.0),
}
#: rules whose storage is the full influence ``B S n P`` (memory check, time estimate)
INFLUENCE = ("RTRL", "RTRL-dense", "SnAp-2")


def problem(cell_name, n, dtype, batch, T, seed=0):
    cell = CELLS[cell_name](n)
    model = ns.Model(cell, n_out=4, dtype=dtype)
    params = model.init(seed)
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, batch, 4)).astype(dtype)
    ys = rng.integers(0, 4, size=(T, batch))
    return model, params, xs, ys


def per_step(model, params, xs, ys, rule, engine, repeat):
    """Best CPU time per step (ms) of ``sequence_grad`` over ``repeat`` runs."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        ns.sequence_grad(model, params, xs, ys, rule, engine=engine)
        best = min(best, time.process_time() - t0)
    return best / len(xs) * 1e3


def measure(cell_name, rule_name, n, dtype, batch, args):
    model, params, xs, ys = problem(cell_name, n, dtype, batch, 3)
    S, P = model.cell.n_state, model.cell.layout.size
    if rule_name in INFLUENCE:
        mb = 2 * batch * S * n * P * np.dtype(dtype).itemsize / 2**20
        if mb > args.max_mb:
            return None
        macs = batch * (S * n) ** 2 * P
        if macs / 5e9 * 3 > args.budget:  # three reference steps
            return None
    rule = RULES[rule_name]()
    out = {}
    for engine in ("compiled", "reference"):
        ns.sequence_grad(model, params, xs, ys, rule, engine=engine)  # compile / warm up
        t0 = time.process_time()
        ns.sequence_grad(model, params, xs, ys, rule, engine=engine)
        guess = max((time.process_time() - t0) / 3, 1e-6)
        T = int(np.clip(args.target_s / guess, 3, args.max_steps))
        _, _, xs_t, ys_t = problem(cell_name, n, dtype, batch, T)
        out[engine] = per_step(model, params, xs_t, ys_t, rule, engine, args.repeat)
    return out


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')}"
        for d in threadpool_info()
        if d.get("user_api") == "blas"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 16, 64; float32; batch 1")
    parser.add_argument("--n", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--cells", nargs="+", default=list(CELLS))
    parser.add_argument("--rules", nargs="+", default=list(RULES))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--target-s", type=float, default=0.05)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--max-mb", type=float, default=512.0)
    parser.add_argument(
        "--native-blas",
        action="store_true",
        help="unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for this process",
    )
    args = parser.parse_args(argv)
    if args.native_blas and any(v in os.environ for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")):
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        }
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if args.quick:
        args.n, args.dtype, args.batch = [16, 64], ["float32"], [1]
    print(
        f"# neurosnap engine benchmark, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"# BLAS: {blas_info()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}"
    )
    print("# ms per step (CPU time), compiled / reference (speed-up)\n")
    for dtype in args.dtype:
        for batch in args.batch:
            print(f"\n### {dtype}, batch {batch}\n")
            print("| cell | rule | " + " | ".join(f"n={n}" for n in args.n) + " |")
            print("|---|---|" + "---|" * len(args.n))
            for cell_name in args.cells:
                for rule_name in args.rules:
                    cells = []
                    for n in args.n:
                        r = measure(cell_name, rule_name, n, np.dtype(dtype).type, batch, args)
                        if r is None:
                            cells.append("-")
                        else:
                            c, ref = r["compiled"], r["reference"]
                            cells.append(f"{c:.4g} / {ref:.4g} ({ref / c:.1f}x)")
                    print(f"| {cell_name} | {rule_name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
