"""Spiking simulation speed: one LIF network in neurosnap, Brian2 (numpy, Cython) and Norse.

The network (``docs/benchmarks.md``, "Spiking simulation speed"): current-based LIF (Norse's
``lif_step`` order, forward Euler), dt 1 ms, tau_mem 20 ms, tau_syn 5 ms, threshold 1, reset to 0;
N units with a fixed in-degree ``density * N`` (neurosnap's connectivity mask), 80 % excitatory /
20 % inhibitory presynaptic units (balanced: inhibitory weights -4x), 100 Bernoulli input channels
projecting to every unit. All simulators get the *same* weights and input spikes, built from one
``ns.Model`` through the adapters.

Timed (wall clock, the network/CSR already built, compilation caches warm):
- ``neurosnap-events``: :class:`neurosnap.simulation.lif_events.EventLIF` (numba, event-driven);
- ``neurosnap-model.run``: the generic ``model.run`` (dense drive), up to ``--model-run-max-n``;
- ``brian2-numpy`` and ``brian2-cython``: ``Network.run`` of the adapter's network, its per-run code
  generation included (Cython's cache under ``.cache/brian2``, warmed by an untimed short run); the
  time-step loop alone (Brian2's profiler) is reported too;
- ``norse``: ``LIFRecurrentCell`` from the adapter, ``torch.no_grad()``, dense weights.

``--check`` first runs every simulator in float64 at N=1,000 and asserts identical spike trains.

Usage::

    python benchmarks/simulate.py                       # the table in docs/benchmarks.md
    python benchmarks/simulate.py --sizes 1000 --repeats 1 --check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import numpy as np

import neurosnap as ns
from neurosnap.simulation.lif_events import EventLIF

N_IN = 100
SIMULATORS = ("neurosnap-events", "neurosnap-model.run", "brian2-numpy", "brian2-cython", "norse")


def build(n, density, steps, dtype, seed=0, input_rate=0.02, w_in_mean=0.12, j_exc=2.0, g=4.0):
    """``(model, params, xs)``: the benchmark network and its input spikes ``(steps, 1, N_IN)``."""
    cell = ns.cells.LIF(N_IN, n, density, seed=seed, dt=1e-3, tau_mem=0.02, tau_syn=0.005)
    model = ns.Model(cell, n_out=1, loss="mse", dtype=dtype)
    rng = np.random.default_rng(seed)
    k = cell.mask.sum(axis=1).max()
    post, pre = np.nonzero(cell.mask)
    w_rec = np.zeros((1, n, n), dtype)
    w_rec[0, post, pre] = np.where(pre < int(0.8 * n), j_exc, -g * j_exc) / k
    params = {
        "cell.w_rec": w_rec,
        "cell.w_in": rng.uniform(0, 2 * w_in_mean, (1, n, N_IN)).astype(dtype),
        "readout.weight": np.zeros((1, n), dtype),
        "readout.bias": np.zeros(1, dtype),
    }
    xs = (rng.random((steps, 1, N_IN)) < input_rate).astype(dtype)
    return model, params, xs


# -- one function per simulator: (setup, run) so that only `run` is timed ------------------------------
def neurosnap_events(model, params, xs):
    sim = EventLIF(model, params)
    sim.run(xs[:2])  # numba compilation (cached on disk)
    return lambda: sim.run(xs)


def neurosnap_model_run(model, params, xs):
    return lambda: model.run(params, xs).events


def brian2_target(target):
    def setup(model, params, xs):
        from neurosnap.adapters import brian2 as adapter

        if target == "cython":  # warm the cache with the same code
            _brian2_network(adapter, model, params, xs[:2], target).run(
                3 * model.cell.dt * _second(), namespace={}
            )
        net = _brian2_network(adapter, model, params, xs, target)

        def run():
            net.run((xs.shape[0] + 1) * model.cell.dt * _second(), namespace={}, profile=True)
            # time spent in the time-step loop alone, without run()'s code generation
            run.loop = sum(float(t) for _, t in net.profiling_info)
            return adapter.read_run(net, model, xs.shape[0], xs.shape[1])[0]

        return run

    return setup


def _brian2_network(adapter, model, params, xs, target):
    net = adapter.to_network(
        model,
        params,
        xs,
        batch_index=None,
        target=target,
        cache_dir=os.path.join(".cache", "brian2"),
    )
    net.remove(net[adapter.NAMES["membrane"]])  # spikes only, like the other simulators
    return net


def _second():
    import brian2

    return brian2.second


def norse(model, params, xs):
    import torch

    from neurosnap.adapters import norse as adapter

    module = adapter.to_module(model, params)
    x = torch.from_numpy(xs)

    def run():
        state = adapter.initial_state(model, xs.shape[1])
        out = []
        with torch.no_grad():
            for t in range(xs.shape[0]):
                z, state = module(x[t], state)
                out.append(z)
        return torch.stack(out).numpy() > 0

    return run


SETUPS = {
    "neurosnap-events": neurosnap_events,
    "neurosnap-model.run": neurosnap_model_run,
    "brian2-numpy": brian2_target("numpy"),
    "brian2-cython": brian2_target("cython"),
    "norse": norse,
}


def measure(name, model, params, xs, repeats):
    """``(best seconds, best loop-only seconds or None, events (T, B, n))`` of ``repeats`` timed runs
    after an untimed setup (a fresh network per run for Brian2, whose networks run once)."""
    best, best_loop, events = np.inf, np.inf, None
    for _ in range(repeats):
        run = SETUPS[name](model, params, xs)
        start = time.perf_counter()
        events = run()
        best = min(best, time.perf_counter() - start)
        best_loop = min(best_loop, getattr(run, "loop", np.inf))
    return best, (best_loop if np.isfinite(best_loop) else None), np.asarray(events, dtype=bool)


def check_identical(steps, simulators):
    """float64, N=1,000, density 10 %: every simulator's spike train equals neurosnap's."""
    model, params, xs = build(1000, 0.1, steps, np.float64)
    ref = EventLIF(model, params).run(xs)
    for name in simulators:
        _, _, events = measure(name, model, params, xs, 1)
        same = np.array_equal(events, ref)
        print(
            f"check float64 N=1000 d=0.1: {name:20s} identical spikes: {same} "
            f"({int(events.sum())} vs {int(ref.sum())})",
            flush=True,
        )
        if not same:
            raise SystemExit(f"{name} does not reproduce neurosnap's spike train")


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }


def versions():
    out = {"neurosnap": ns.__version__, "numpy": np.__version__}
    for mod in ("numba", "brian2", "torch", "norse"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - report what is there
            out[mod] = None
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.1])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=3, help="best of (Norse at N > 1000: once)")
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=SIMULATORS)
    parser.add_argument("--model-run-max-n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps({"machine": machine(), "versions": versions(), "threads": args.threads}))
    if args.check:
        check_identical(args.steps, [s for s in args.simulators if s != "neurosnap-events"])

    rows = []
    for n in args.sizes:
        for density in args.densities:
            model, params, xs = build(n, density, args.steps, np.dtype(args.dtype))
            k = int(model.cell.mask.sum(axis=1).max())
            row = {"N": n, "density": density, "in_degree": k}
            for name in args.simulators:
                if name == "neurosnap-model.run" and n > args.model_run_max_n:
                    continue
                repeats = args.repeats if name != "norse" or n <= 1000 else 1
                seconds, loop, events = measure(name, model, params, xs, repeats)
                row[name] = seconds
                row[f"{name} spikes"] = int(events.sum())
                extra = ""
                if loop is not None:
                    row[f"{name} loop"] = loop
                    extra = f" (time-step loop alone {loop:.3f} s)"
                print(
                    f"N={n:6d} d={density:<5} {name:20s} {seconds:8.3f} s  "
                    f"rate {events.mean():.4f}/step{extra}",
                    flush=True,
                )
            spikes = row["neurosnap-events spikes"] if "neurosnap-events" in row else None
            if spikes is not None:
                # synaptic events: recurrent spikes x fan-out (= in-degree) + input spikes x N
                row["synaptic_events"] = spikes * k + int(xs.sum()) * n
            rows.append(row)
            del model, params, xs
    print(json.dumps(rows, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": machine(), "versions": versions(), "args": vars(args), "rows": rows},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
