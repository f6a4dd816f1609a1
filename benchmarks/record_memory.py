"""Memory of long recording runs: ``ns.simulate(..., out=DIR)`` streams to disk, so memory must not
grow with the number of steps (``docs/benchmarks.md``, "Recording memory").

The network is ``models/lif-network.toml`` scaled up: N current-based LIF neurons (dt 1 ms,
tau_mem 20 ms, tau_syn 5 ms), fan-in 100 (density 100/N), w_in_scale 6, w_rec_scale 4, driven by
100 Poisson inputs at 20 Hz; events, the membrane potential of units 0-9 and the population rate are
recorded. Each run is a fresh process; it reports

- ``rss_before``: resident memory after building the model, its parameters and the input source
  (the dense ``(N, N)`` weight matrix that ``ns.Model`` keeps dominates it: 400 MB at N = 10,000 in
  float32);
- ``rss_peak``: the largest resident memory seen while ``simulate`` ran (``/proc/self/status``
  sampled every 20 ms), and ``rss_peak - rss_before``;
- ``tracemalloc_peak``: the peak of Python/numpy allocations during ``simulate``
  (``tracemalloc``; the numba kernel allocates nothing), also split into the setup (parameter
  checks, CSR) and the stepping loop (both ``rss`` and ``tracemalloc`` peaks are restarted when the
  first chunk is done);
- wall time, events, mean rate, and the sizes the recording would take otherwise: a dense boolean
  raster (``T x N`` bytes) and the spike lists (16 bytes per event).

Usage::

    python benchmarks/record_memory.py                      # 1,000,000 steps x 10,000 neurons
    python benchmarks/record_memory.py --steps 100000 1000000 --json results.json
    python benchmarks/record_memory.py --n 2000 --steps 20000     # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

import numpy as np


def _rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _Sampler(threading.Thread):
    def __init__(self, period=0.02):
        super().__init__(daemon=True)
        self.period, self.peak, self.stop = period, _rss(), threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.period)


def child(args):
    import neurosnap as ns
    from neurosnap import simulation as sim
    from neurosnap.simulation.recording import RateBinner

    dtype = getattr(np, args.dtype)
    cell = ns.cells.LIF(
        100,
        args.n,
        100 / args.n,
        dt=1e-3,
        tau_mem=0.02,
        tau_syn=0.005,
        w_in_scale=6.0,
        w_rec_scale=4.0,
        seed=0,
    )
    model = ns.Model(cell, 1, loss="mse", dtype=dtype)
    params = model.init(0)
    # warm the numba cache on a tiny run (not measured)
    ns.simulate(
        ns.Model(ns.cells.LIF(100, 10, dt=1e-3), 1, loss="mse", dtype=dtype),
        None,
        sim.PoissonSource(20.0, 100, 1e-3),
        steps=10,
        record="events,v",
        units=[0],
    )
    source = sim.PoissonSource(20.0, 100, 1e-3, seed=0)
    out = tempfile.mkdtemp(prefix="record_memory_", dir=args.dir)
    rss_before = _rss()
    sampler = _Sampler()
    sampler.start()
    # instrumentation only: when the first chunk's rates are binned (setup done, stepping under
    # way), note the peaks so far and restart them, to separate setup from the stepping loop
    loop = {}
    push = RateBinner.push

    def first_push(self, counts):
        if not loop:
            loop["setup_traced"] = tracemalloc.get_traced_memory()[1]
            loop["setup_rss"] = sampler.peak
            tracemalloc.reset_peak()
            sampler.peak = _rss()
        return push(self, counts)

    RateBinner.push = first_push
    tracemalloc.start()
    t0 = time.perf_counter()
    rec = ns.simulate(
        model,
        params,
        source,
        "events,v",
        steps=args.steps,
        units=list(range(10)),
        out=out,
        chunk_steps=args.chunk_steps,
    )
    wall = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sampler.stop.set()
    sampler.join()
    RateBinner.push = push
    size = os.path.getsize(os.path.join(out, "recording.npz"))
    shutil.rmtree(out)
    row = {
        "n": args.n,
        "steps": args.steps,
        "dtype": args.dtype,
        "chunk_steps": args.chunk_steps,
        "events": rec.n_events,
        "rate_hz": rec.n_events / (args.n * args.steps * 1e-3),
        "wall_s": wall,
        "us_per_step": 1e6 * wall / args.steps,
        "rss_before_mb": rss_before / 1e6,
        "rss_peak_mb": max(sampler.peak, loop["setup_rss"]) / 1e6,
        "rss_growth_mb": (max(sampler.peak, loop["setup_rss"]) - rss_before) / 1e6,
        "rss_peak_loop_mb": sampler.peak / 1e6,
        "rss_growth_loop_mb": (sampler.peak - rss_before) / 1e6,
        "tracemalloc_peak_mb": max(traced_peak, loop["setup_traced"]) / 1e6,
        "tracemalloc_peak_setup_mb": loop["setup_traced"] / 1e6,
        "tracemalloc_peak_loop_mb": traced_peak / 1e6,
        "recording_npz_mb": size / 1e6,
        "spike_lists_mb": rec.n_events * 16 / 1e6,
        "dense_raster_mb": args.steps * args.n / 1e6,
    }
    print(json.dumps(row))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--steps", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--chunk-steps", type=int, default=10_000)
    parser.add_argument("--dir", default=None, help="where the recording is written (then deleted)")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.steps = args.steps[0]
        return child(args)
    rows = []
    for steps in args.steps:  # a fresh process per run: clean RSS
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--n",
            str(args.n),
            "--steps",
            str(steps),
            "--dtype",
            args.dtype,
            "--chunk-steps",
            str(args.chunk_steps),
        ]
        if args.dir:
            cmd += ["--dir", args.dir]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"N={r['n']:,} T={r['steps']:,}: {r['events']:,} events ({r['rate_hz']:.2f} Hz), "
            f"wall {r['wall_s']:.1f} s ({r['us_per_step']:.1f} us/step); RSS before "
            f"{r['rss_before_mb']:.0f} MB, peak {r['rss_peak_mb']:.0f} MB (+{r['rss_growth_mb']:.0f}"
            f" MB; stepping loop +{r['rss_growth_loop_mb']:.0f} MB); tracemalloc peak "
            f"{r['tracemalloc_peak_mb']:.1f} MB (setup {r['tracemalloc_peak_setup_mb']:.1f} MB, "
            f"stepping loop {r['tracemalloc_peak_loop_mb']:.1f} MB); recording.npz "
            f"{r['recording_npz_mb']:.0f} MB; a dense raster would be {r['dense_raster_mb']:.0f} MB",
            flush=True,
        )
    if args.json:
        meta = {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
