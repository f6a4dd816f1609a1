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

``--large`` (issue 14, ``docs/benchmarks.md``, "Large networks"): a CUBA-like LIF network (Brette et
al. 2007, benchmark 2, with one 5 ms synaptic current: dt 0.1 ms, tau_mem 20 ms, threshold -50 mV,
reset -60 mV, rest -49 mV above threshold as the constant drive, refractory 5 ms; 80 % excitatory
units; weights 1.62 mV and -18 mV at in-degree 80, scaled by 80/K so the mean input and the regime
stay the same at every in-degree K; initial potentials uniform in [reset, threshold)) with
neurosnap's sparse storage (``storage="sparse"``, fixed in-degree K = density x N) and the same
synapses, weights and initial potentials in Brian2 (``Synapses.connect(i=pre, j=post)`` from
``cell.graph``, sorted by presynaptic unit; neurosnap's explicit update, as the Brian2 adapter
writes it). Each (simulator, network, threads) runs in its own process, one at a time, for its
peak RSS (``VmHWM``); measured: build time (neurosnap: drawing the synapses, ``model.init``, the
weights; Brian2: its objects, ``connect`` and weights from the drawn arrays), the time-step loop
(neurosnap: ``ns.simulate`` between its reads of input chunks 2 and m, i.e. kernel, per-chunk
checks and recording; Brian2: its profiler's sum over the code objects of a second
``Network.run``, after a 10-step first run that generates and loads the code; that second run's
wall clock is reported too), the whole run, peak RSS and RSS while the loop runs, rates and
synaptic events per second. The float64 spike trains of both are compared on the smallest network
first. ``--threads 1 2`` runs the event engine with each thread count (``NUMBA_NUM_THREADS`` set per
process) once ``ns.simulate`` takes ``threads=``; before that, one thread only. Results:
``docs/figures/simulate-large.json`` and ``.csv`` (``--out``).

Usage::

    python benchmarks/simulate.py                       # the table in docs/benchmarks.md
    python benchmarks/simulate.py --sizes 1000 --repeats 1 --check
    python benchmarks/simulate.py --large --sizes 10000 50000 100000 --density 0.01 \\
        --extra 100000:0.001 --steps 2000 --targets cython --threads 1 2   # "Large networks"
    python benchmarks/simulate.py --large --sizes 2000 --extra --steps 200   # smoke size
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


# -- large networks (issue 14): one process per simulator and size ------------------------------------
#: the large-network LIF (CUBA-like, Brette et al. 2007 benchmark 2 with one synaptic current): mV, s
LARGE_CELL = dict(
    dt=1e-4,
    tau_mem=0.02,
    tau_syn=0.005,
    v_th=-50.0,
    v_leak=-49.0,
    v_reset=-60.0,
    refractory=0.005,
    reset="zero",
)
#: CUBA's synaptic weights at its in-degree of 80 (mV): excitatory 1.62; inhibitory 2 x (-9), the
#: charge of CUBA's 10 ms inhibitory current carried by the one 5 ms current; scaled by 80 / K
LARGE_W_EXC, LARGE_W_INH, LARGE_K_REF, LARGE_FRAC_EXC = 1.62, -18.0, 80, 0.8
LARGE_SIMULATORS = ("neurosnap", "brian2")
#: Brian2 bytes per synapse assumed before one was measured (indices, weight, spike queue, connect)
BRIAN2_BYTES_PER_SYNAPSE = 40


def large_weights(n: int, k: int, dtype) -> tuple[float, float, int]:
    """``(w_exc, w_inh, n_exc)``: CUBA-like weights (``LARGE_W_*``) scaled by ``80 / k`` so that the
    mean recurrent input, and with it the firing regime, stays the same at every in-degree ``k``;
    presynaptic units ``< n_exc`` are excitatory. The values are rounded to ``dtype`` once, so
    that both simulators hold the same numbers."""
    scale = LARGE_K_REF / k
    t = np.dtype(dtype).type
    return float(t(LARGE_W_EXC * scale)), float(t(LARGE_W_INH * scale)), int(LARGE_FRAC_EXC * n)


def large_v0(n: int, seed: int) -> np.ndarray:
    """Initial membrane potentials, uniform in ``[v_reset, v_th)`` (float64, ``(n,)``); every unit
    starts below threshold, so no spike is in flight before step 0."""
    rng = np.random.default_rng(1000 + seed)
    return rng.uniform(LARGE_CELL["v_reset"], LARGE_CELL["v_th"], n)


def large_cell(n: int, density: float, seed: int):
    """The network's ``ns.cells.LIF`` (sparse storage; fixed in-degree ``round(density n)``, no
    autapses; one silent input channel: the drive is ``v_leak > v_th``, as in CUBA)."""
    return ns.cells.LIF(
        1,
        n,
        density,
        seed=seed,
        storage="sparse",
        gate=ns.gates.Heaviside(),
        **LARGE_CELL,
    )


def _rss_mb() -> dict[str, float]:
    """This process's peak (``VmHWM``) and current (``VmRSS``) resident memory, MiB."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(line.split()[1]) / 1024  # kB
    except OSError:  # not Linux: the peak only
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["VmHWM"] = peak / (1024 * 1024 if platform.system() == "Darwin" else 1024)
    return out


def simulate_accepts_threads() -> bool:
    """Whether ``ns.simulate`` takes ``threads=`` (the multi-threaded event engine)."""
    import inspect

    return "threads" in inspect.signature(ns.simulate).parameters


class _TimedSource(ns.simulation.ArraySource):
    """An input array that notes ``(perf_counter, step)`` at each chunk ``ns.simulate`` reads."""

    def __init__(self, xs):
        super().__init__(xs)
        self.reads: list[tuple[float, int]] = []

    def reset(self):
        super().reset()
        self.reads = []

    def read(self, steps):
        self.reads.append((time.perf_counter(), self._pos))
        if self._pos:  # the memory held while the loop runs (synapse tables built)
            self.loop_rss_mb = max(getattr(self, "loop_rss_mb", 0.0), _rss_mb().get("VmRSS", 0.0))
        return super().read(steps)


def _worker_neurosnap(spec):
    n, density, steps, seed = spec["n"], spec["density"], spec["steps"], spec["seed"]
    dtype = np.dtype(spec["dtype"])
    base = _rss_mb()
    t0 = time.perf_counter()
    cell = large_cell(n, density, seed)
    t1 = time.perf_counter()
    model = ns.Model(cell, n_out=1, loss="mse", dtype=dtype)
    params = model.init(seed=seed)
    t2 = time.perf_counter()
    k = int(cell.graph.fan_in.max())
    w_exc, w_inh, n_exc = large_weights(n, k, dtype)
    w = params["cell.w_rec"][0]  # (nnz,) in graph order, set in place
    w[:] = w_exc
    w[cell.graph.pre_index >= n_exc] = w_inh
    params["cell.w_in"][:] = 0
    v0 = large_v0(n, seed)
    t3 = time.perf_counter()
    kwargs = dict(record="events", engine="event", initial_state={"v": v0})
    kwargs["chunk_steps"] = spec["chunk_steps"]
    if simulate_accepts_threads():
        kwargs["threads"] = spec["threads"]
    elif spec["threads"] != 1:
        raise SystemExit("ns.simulate takes no threads= argument: one thread only")
    source = _TimedSource(np.zeros((steps, 1, 1)))
    start = time.perf_counter()
    rec = ns.simulate(model, params, source, **kwargs)
    end = time.perf_counter()
    # the time-step loop as ns.simulate runs it (kernel, per-chunk checks, recording), timed
    # between its reads of input chunks 2 and m: chunk 1 also loads numba's cached kernels
    (t_first, _), (t_second, s_second), (t_last, s_last) = source.reads[:2] + source.reads[-1:]
    units = np.asarray(rec.spike_units, np.int64)
    out = {
        "connectivity_s": t1 - t0,
        "init_s": t2 - t1,
        "weights_s": t3 - t2,
        "build_s": t3 - t0,
        "setup_s": t_first - start,
        "first_chunk_s": t_second - t_first,
        "run_s": end - start,
        "loop_s": t_last - t_second,
        "loop_steps": s_last - s_second,
        "whole_s": (t3 - t0) + (end - start),
        "loop_rss_mb": getattr(source, "loop_rss_mb", None),
        "spikes": int(len(units)),
        "synaptic_events": int(cell.graph.fan_out[units].sum()),
        "in_degree": k,
        "synapses": int(cell.graph.nnz),
        "baseline_rss_mb": base.get("VmRSS"),
        "threads_arg": "threads" in kwargs,
    }
    if spec.get("spikes_path"):
        np.savez(spec["spikes_path"], steps=np.asarray(rec.spike_steps, np.int64), units=units)
    return out


def _worker_brian2(spec):
    import brian2 as b2

    n, density, steps, seed = spec["n"], spec["density"], spec["steps"], spec["seed"]
    dtype = np.dtype(spec["dtype"])
    b2.prefs.codegen.target = spec["target"]
    if spec["target"] == "cython":
        os.makedirs(spec["cache_dir"], exist_ok=True)
        b2.prefs.codegen.runtime.cython.cache_dir = spec["cache_dir"]
    base = _rss_mb()
    # the same synapses as neurosnap's (its generator), sorted by presynaptic unit as Brian2
    # users build them (a spike's synapses contiguous); not part of Brian2's build time
    t0 = time.perf_counter()
    graph = large_cell(n, density, seed).graph
    k = int(graph.fan_in.max())
    out_ptr, order, post = graph.transpose_order(np.int32)
    nnz = graph.nnz
    del order, graph
    pre = np.repeat(np.arange(n, dtype=np.int32), np.diff(out_ptr))
    del out_ptr
    w_exc, w_inh, n_exc = large_weights(n, k, dtype)
    v0 = large_v0(n, seed)
    t1 = time.perf_counter()
    c = LARGE_CELL
    clock = b2.Clock(c["dt"] * b2.second)
    # neurosnap's explicit update (the adapter's code, neurosnap/adapters/brian2.py): Brian2 step s
    # is neurosnap's step s here, since every unit starts below threshold with no current
    eqs = """
    v : 1
    i_syn : 1
    k_m : 1 (shared, constant)
    k_s : 1 (shared, constant)
    v_th : 1 (shared, constant)
    v_leak : 1 (shared, constant)
    v_reset : 1 (shared, constant)
    """
    group = b2.NeuronGroup(
        n,
        eqs,
        threshold="v - v_th > 0",
        reset="v = v_reset",
        refractory=round(c["refractory"] / c["dt"]) * c["dt"] * b2.second,
        clock=clock,
        dtype=dtype,
        name="large_neurons",
    )
    group.k_m = c["dt"] / c["tau_mem"]
    group.k_s = c["dt"] / c["tau_syn"]
    group.v_th, group.v_leak, group.v_reset = c["v_th"], c["v_leak"], c["v_reset"]
    group.v = v0
    group.run_regularly(
        "v = v + int(not_refractory) * k_m * (v_leak - v + i_syn)\ni_syn = (1 - k_s) * i_syn",
        when="groups",
        order=1,  # after Brian2's not_refractory update
        name="large_update",
    )
    syn = b2.Synapses(
        group,
        group,
        "w : 1",
        on_pre="i_syn_post += w",
        delay=0 * b2.second,
        clock=clock,
        dtype={"w": dtype},
        name="large_synapses",
    )
    syn.connect(i=pre, j=post)
    del pre, post
    syn.w["i < n_exc"] = w_exc
    syn.w["i >= n_exc"] = w_inh
    mon = b2.SpikeMonitor(group, name="large_spikes")
    net = b2.Network(group, syn, mon)
    t2 = time.perf_counter()
    short = min(10, steps - 1)
    ns_ = {"n_exc": n_exc}
    # code generation, compilation (or Cython's cache), `short` steps
    net.run(short * clock.dt, namespace=ns_)
    t3 = time.perf_counter()
    net.run((steps - short) * clock.dt, namespace=ns_, profile=True)
    t4 = time.perf_counter()
    loop_rss = _rss_mb().get("VmRSS")  # the network still held
    loop = sum(float(t) for _, t in net.profiling_info)
    step = np.rint(np.asarray(mon.t_[:]) / c["dt"]).astype(np.int64)
    units = np.asarray(mon.i[:], np.int64)
    fan_out = np.bincount(np.asarray(syn.i[:]), minlength=n)
    out = {
        "connectivity_s": t1 - t0,
        "build_s": t2 - t1,
        "first_use_s": t3 - t2,
        "run_s": t4 - t3,
        "loop_s": loop,
        "loop_steps": steps - short,
        "whole_s": (t2 - t1) + (t4 - t2),
        "loop_rss_mb": loop_rss,
        "spikes": int(len(units)),
        "synaptic_events": int(fan_out[units].sum()),
        "in_degree": k,
        "synapses": int(nnz),
        "baseline_rss_mb": base.get("VmRSS"),
    }
    if spec.get("spikes_path"):
        np.savez(spec["spikes_path"], steps=step, units=units)
    return out


def large_worker(spec: dict) -> dict:
    """Run one simulator on one network in this process; the result with this process's memory."""
    fn = _worker_neurosnap if spec["sim"] == "neurosnap" else _worker_brian2
    out = fn(spec)
    rss = _rss_mb()
    out["peak_rss_mb"] = rss.get("VmHWM")
    out["final_rss_mb"] = rss.get("VmRSS")
    return out


def run_worker(spec: dict, timeout: float) -> dict:
    """``large_worker(spec)`` in a fresh Python process (its own peak RSS), ``NUMBA_NUM_THREADS``
    set to ``spec["threads"]``; raises ``RuntimeError`` with the worker's output if it fails."""
    import subprocess
    import sys

    env = dict(os.environ)
    env.update(
        NUMBA_NUM_THREADS=str(spec["threads"]), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"
    )
    cmd = [sys.executable, os.path.abspath(__file__), "--large-worker", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {spec['sim']} N={spec['n']} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def _mem_available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _large_row(sim, spec, res, dt):
    T = spec["steps"]
    row = {
        "simulator": sim,
        "N": spec["n"],
        "density": spec["density"],
        "K": res["in_degree"],
        "synapses": res["synapses"],
        "dtype": spec["dtype"],
        "threads": spec["threads"],
        "steps": T,
        **{k: v for k, v in res.items() if k not in ("in_degree", "synapses")},
    }
    row["s_per_1000_steps"] = res["loop_s"] / res["loop_steps"] * 1000
    if sim.startswith("brian2"):  # the second net.run's wall clock (loop + per-run overhead)
        row["run_s_per_1000_steps"] = res["run_s"] / res["loop_steps"] * 1000
    row["rate_hz"] = res["spikes"] / (spec["n"] * T * dt)
    # events delivered per second of the loop (spikes x fan-out over the whole run, scaled)
    row["events_per_s"] = res["synaptic_events"] * (res["loop_steps"] / T) / res["loop_s"]
    # memory above the process's footprint after its imports, per synapse: at the peak and while
    # the time-step loop runs
    for key, rss in (
        ("bytes_per_synapse", "peak_rss_mb"),
        ("loop_bytes_per_synapse", "loop_rss_mb"),
    ):
        if res.get(rss) is not None and res.get("baseline_rss_mb") is not None:
            row[key] = (res[rss] - res["baseline_rss_mb"]) * 2**20 / max(res["synapses"], 1)
    # the run's time outside the time-step loop (setup, first use, per-run overhead)
    row["overhead_s"] = res["run_s"] - res["loop_s"] / res["loop_steps"] * (
        T if sim == "neurosnap" else res["loop_steps"]
    )
    return row


def large(args) -> dict:
    """The ``--large`` benchmark: every (size, simulator, threads) in its own process, one at a
    time; the float64 spike-train check on the smallest network first."""
    import tempfile

    dt = LARGE_CELL["dt"]
    points = [(n, d) for n in args.sizes for d in args.densities]
    for extra in args.extra:
        n, d = extra.split(":")
        points.append((int(n), float(d)))
    threads = args.threads if simulate_accepts_threads() else [1]
    if threads != args.threads:
        print(
            f"ns.simulate takes no threads= argument yet: threads {args.threads} -> [1]", flush=True
        )
    sims = [("neurosnap", None)] + [("brian2-" + t, t) for t in args.targets]
    result = {
        "machine": machine(),
        "versions": versions(),
        "args": {**vars(args), "out": os.path.relpath(args.out, ROOT)},  # no machine paths
        "threads_supported": simulate_accepts_threads(),
        "network": {"cell": LARGE_CELL, "w_exc_at_K80": LARGE_W_EXC, "w_inh_at_K80": LARGE_W_INH},
        "rows": [],
    }
    base = dict(seed=args.seed, cache_dir=args.brian2_cache, chunk_steps=args.chunk_steps)
    if args.check_steps:  # float64, smallest network: identical spike trains
        n, d = min(points)
        with tempfile.TemporaryDirectory() as tmp:
            trains = {}
            for sim, target in sims:
                spec = dict(base, sim=sim.split("-")[0], n=n, density=d, steps=args.check_steps)
                spec.update(dtype="float64", threads=1, target=target)
                spec["spikes_path"] = os.path.join(tmp, f"{sim}.npz")
                res = run_worker(spec, args.timeout)
                with np.load(spec["spikes_path"], allow_pickle=False) as f:
                    trains[sim] = _sorted_train(f["steps"], f["units"])
                row = _large_row(sim, spec, res, dt)
                row["check"] = True
                result["rows"].append(row)
                print(_format_row(row), flush=True)
            ref = trains["neurosnap"]
            checks = {}
            for sim in trains:
                if sim != "neurosnap":
                    same = trains[sim].shape == ref.shape and np.array_equal(trains[sim], ref)
                    checks[sim] = bool(same)
                    print(
                        f"check float64 N={n} density={d} {args.check_steps} steps: {sim} "
                        f"identical spike trains: {same} ({trains[sim].shape[1]} vs "
                        f"{ref.shape[1]} spikes)",
                        flush=True,
                    )
            result["identical_spikes_float64"] = {"N": n, "density": d, **checks}
    brian2_bps = BRIAN2_BYTES_PER_SYNAPSE
    for n, d in points:
        k = max(1, int(round(d * n)))
        nnz = n * min(k, n - 1)
        for sim, target in sims:
            for t in threads if sim == "neurosnap" else [1]:
                if target is not None:
                    need_mb = nnz * brian2_bps / 2**20
                    avail = _mem_available_mb()
                    if args.skip_brian2_above is not None and nnz > args.skip_brian2_above:
                        print(
                            f"N={n} d={d}: {sim} skipped ({nnz} synapses > "
                            f"--skip-brian2-above {args.skip_brian2_above})",
                            flush=True,
                        )
                        result["rows"].append(
                            {"simulator": sim, "N": n, "density": d, "skipped": "limit"}
                        )
                        continue
                    if avail is not None and need_mb > 0.7 * avail:
                        print(
                            f"N={n} d={d}: {sim} skipped (needs ~{need_mb:.0f} MiB at "
                            f"{brian2_bps:.0f} B/synapse; {avail:.0f} MiB available)",
                            flush=True,
                        )
                        result["rows"].append(
                            {"simulator": sim, "N": n, "density": d, "skipped": "memory"}
                        )
                        continue
                spec = dict(base, sim=sim.split("-")[0], n=n, density=d, steps=args.steps)
                spec.update(dtype=args.dtype, threads=t, target=target)
                res = run_worker(spec, args.timeout)
                row = _large_row(sim, spec, res, dt)
                result["rows"].append(row)
                print(_format_row(row), flush=True)
                if target is not None and row.get("bytes_per_synapse"):
                    # later (larger) networks: Brian2's measured footprint, with a margin
                    brian2_bps = max(BRIAN2_BYTES_PER_SYNAPSE / 2, 1.2 * row["bytes_per_synapse"])
    write_large(result, args.out)
    return result


def _sorted_train(steps, units):
    order = np.lexsort((units, steps))
    return np.stack([np.asarray(steps)[order], np.asarray(units)[order]])


def _format_row(row):
    extra = ""
    if "run_s_per_1000_steps" in row:
        extra = f", 2nd run {row['run_s_per_1000_steps']:.3f} s/1000"
    return (
        f"N={row['N']:6d} d={row['density']:<6} {row['simulator']:13s} {row['dtype']} "
        f"threads={row['threads']}: build {row['build_s']:.2f} s, loop "
        f"{row['s_per_1000_steps']:.3f} s/1000 steps{extra}, whole {row['whole_s']:.2f} s, "
        f"peak RSS {row['peak_rss_mb']:.0f} MiB, rate {row['rate_hz']:.2f} Hz, "
        f"{row['events_per_s']:.3g} events/s"
    )


LARGE_CSV_COLUMNS = (
    "simulator", "N", "density", "K", "synapses", "dtype", "threads", "steps", "check",
    "connectivity_s", "init_s", "build_s", "first_use_s", "first_chunk_s", "setup_s", "run_s",
    "loop_s", "loop_steps", "s_per_1000_steps", "run_s_per_1000_steps", "overhead_s", "whole_s",
    "baseline_rss_mb", "peak_rss_mb", "loop_rss_mb", "bytes_per_synapse",
    "loop_bytes_per_synapse", "spikes", "rate_hz", "synaptic_events", "events_per_s", "skipped",
)  # fmt: skip


def write_large(result: dict, out: str) -> None:
    """``out + ".json"`` (everything) and ``out + ".csv"`` (one row per run)."""
    import csv

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LARGE_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in result["rows"]:
            writer.writerow(row)
    print(f"wrote {out}.json and {out}.csv", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="default 1000 10000 (--large: 10000 50000 100000)"
    )
    parser.add_argument(
        "--densities", "--density", type=float, nargs="+", help="default 0.01 0.1 (--large: 0.01)"
    )
    parser.add_argument("--steps", type=int, help="default 1000 (--large: 2000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=3, help="best of (Norse at N > 1000: once)")
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=SIMULATORS)
    parser.add_argument("--model-run-max-n", type=int, default=1000)
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1],
        help="torch / BLAS threads (--large: the event engine's threads, each "
        "count in its own run, if ns.simulate takes threads=)",
    )
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--json", help="write the results here")
    large_opts = parser.add_argument_group("large networks (--large, issue 14)")
    large_opts.add_argument(
        "--large",
        action="store_true",
        help="the large-network benchmark, each run in its own process",
    )
    large_opts.add_argument(
        "--extra",
        nargs="*",
        default=None,
        metavar="N:DENSITY",
        help="further networks (default 100000:0.001)",
    )
    large_opts.add_argument(
        "--targets",
        nargs="*",
        default=["cython"],
        choices=["cython", "numpy"],
        help="Brian2 code generation targets (none: neurosnap only)",
    )
    large_opts.add_argument(
        "--skip-brian2-above",
        type=int,
        default=None,
        metavar="SYNAPSES",
        help="no Brian2 run for networks with more synapses (Brian2 is also "
        "skipped where its estimated memory exceeds 70%% of MemAvailable)",
    )
    large_opts.add_argument(
        "--check-steps",
        type=int,
        default=None,
        help="steps of the float64 spike-train check on the smallest network "
        "(default --steps; 0: no check)",
    )
    large_opts.add_argument(
        "--chunk-steps",
        type=int,
        default=None,
        help="ns.simulate's chunk_steps; the loop is timed over chunks 2 to "
        "the last but one (default --steps / 10)",
    )
    large_opts.add_argument("--seed", type=int, default=0)
    large_opts.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    large_opts.add_argument(
        "--brian2-cache",
        default=os.path.join(".cache", "brian2"),
        help="Brian2's Cython cache directory",
    )
    large_opts.add_argument(
        "--out",
        default=os.path.join(ROOT, "docs", "figures", "simulate-large"),
        help="--large results: OUT.json and OUT.csv",
    )
    large_opts.add_argument("--large-worker", help=argparse.SUPPRESS)  # internal: one process
    args = parser.parse_args(argv)
    if args.large_worker:
        print("RESULT " + json.dumps(large_worker(json.loads(args.large_worker))), flush=True)
        return None
    if args.large:
        args.sizes = args.sizes or [10_000, 50_000, 100_000]
        args.densities = args.densities or [0.01]
        args.steps = args.steps or 2000
        args.extra = ["100000:0.001"] if args.extra is None else args.extra
        if args.check_steps is None:
            args.check_steps = args.steps
        args.chunk_steps = args.chunk_steps or max(1, args.steps // 10)
        if min(args.steps, args.check_steps or args.steps) < 3 * args.chunk_steps:
            parser.error("--steps and --check-steps must be at least 3 * --chunk-steps")
        return large(args)
    args.sizes = args.sizes or [1000, 10_000]
    args.densities = args.densities or [0.01, 0.1]
    args.steps = args.steps or 1000
    if len(args.threads) != 1:
        parser.error("--threads takes one count without --large")
    args.threads = args.threads[0]
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
