"""Benchmark: sparse exact RTRL, dense RTRL, SnAp-1, SnAp-2 and BPTT on EGRU networks.

Sweeps the number of units, the weight density and the activity (fraction of units emitting an
event, set through the candidate-gate bias at the library's default threshold and surrogate), and
measures, in one process:

- per-step time of the rule update (``rule.step``) and of the full step (cell step + update; for
  BPTT the forward step plus its share of the backward pass at the end of the window), as CPU time
  of the calling thread (``time.thread_time``: robust to the machine being shared);
- peak memory (``tracemalloc``) of the rule's state and the loop;
- counted multiply-adds (``rule.cost``, the counters of ``neurosnap.sparse.stats``), measured event
  and support fractions.

Combinations whose estimated time exceeds ``--budget`` seconds are skipped and reported with their
estimate. Extra checks: ``--memory`` (peak memory at T = 1,000 vs 100,000), ``--anchor`` (LeakyRNN,
float32, batch 1, dense, for the project's speed anchors),
``--target`` (the issue's target configurations, more steps).

``--dtype float32`` runs the sweep and the targets in single precision; ``--scale`` times EGRU
n = 512, density 0.05, ~15 % events in float32 (sparse and dense exact RTRL, same process) and
reports the influence memory; ``--no-peak`` skips the sweep's traced-memory pass (time only).

Run with one thread for BLAS and numba (fairness)::

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/sparse_rtrl.py --quick

The script removes ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` from its own environment before
numpy loads, so that OpenBLAS picks its kernel for this CPU (the dense reference is then as fast as
this machine's BLAS allows); the BLAS in use is recorded with ``threadpoolctl``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
import tracemalloc

for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
#: OpenBLAS settings this process removes before numpy loads (recorded in the results)
_REMOVED_BLAS_ENV = {
    v: os.environ.pop(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ
}

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import neurosnap as ns  # noqa: E402
from neurosnap.rules import BPTT, RTRL, SnAp  # noqa: E402
from neurosnap.rules import rtrl as rtrl_module  # noqa: E402
from neurosnap.sparse import kernels, patterns  # noqa: E402
from neurosnap.sparse import stats as nstats  # noqa: E402

RULES = {
    "dense": lambda: RTRL(sparse=False),
    "sparse": lambda: RTRL(),
    "gather": lambda: RTRL(kernel="gather"),  # the generic block kernel on the same storage
    "snap1": lambda: SnAp(1),
    "snap2": lambda: SnAp(2),
    "bptt": lambda: BPTT(),
}
#: multiply-adds per second assumed when estimating a run before deciding to skip it
ASSUMED_RATE = {
    "dense": 15e9,
    "sparse": 3e9,
    "gather": 3e9,
    "snap1": 1e9,
    "snap2": 2e9,
    "bptt": 1e9,
}
N_IN = 4


# -------------------------------------------------------------------------------------------------
def make_model(n, density, *, cell="EGRU", dtype=np.float64, seed=0, gate=None):
    kw = {} if gate is None else {"gate": gate}
    c = getattr(ns.cells, cell)(n_in=N_IN, n_hidden=n, density=density, seed=seed, **kw)
    model = ns.Model(c, n_out=2, dtype=dtype)
    return model, model.init(seed=seed)


def inputs(T, B=1, seed=0, dtype=np.float64):
    return np.random.default_rng(seed + 100).normal(size=(T, B, N_IN)).astype(dtype)


def run_cell(model, params, xs, state=None):
    cp = model.cell_params(params)
    s = model.cell.initial_state(xs.shape[1], model.dtype) if state is None else state
    ev, sup = [], []
    for t in range(len(xs)):
        s, _, rec = model.cell.step_record(cp, s, xs[t])
        ev.append(rec.events.mean())
        sup.append(rec.support.mean())
    return s, float(np.mean(ev)), float(np.mean(sup))


def calibrate_activity(model, params, target, *, burn=50, steps=150, seed=0):
    """Candidate-gate bias giving ``target`` mean event fraction (bisection, deterministic)."""
    xs = inputs(burn + steps, seed=seed, dtype=model.dtype)
    lo, hi = -4.0, 4.0

    def activity(bc):
        p = dict(params)
        p["cell.bias"] = params["cell.bias"].copy()
        p["cell.bias"][2] = bc
        s, _, _ = run_cell(model, p, xs[:burn])
        return run_cell(model, p, xs[burn:], s)[1], p

    for _ in range(14):
        mid = 0.5 * (lo + hi)
        a, _ = activity(mid)
        if a < target:
            lo = mid
        else:
            hi = mid
    return activity(0.5 * (lo + hi))[1]


def estimate_seconds_per_step(model, params, rule_name, xs):
    """Counted multiply-adds per step of a rule on a few steps (without running the rule) and the
    time they should take at ``ASSUMED_RATE`` (the sparse engine's BLAS fallback included)."""
    from neurosnap.rules import rtrl as rtrl_module

    cp = model.cell_params(params)
    c = model.cell
    s = c.initial_state(1, model.dtype)
    graph = kernels.RecurrentGraph(c.mask)
    P = c.layout.size
    plan = None
    name = rule_name
    if rule_name == "snap2":
        rows = patterns.snap_rows(c.mask, 2)
        if all(len(r) == c.n_hidden for r in rows):
            name = "sparse"  # full pattern: SnAp-2 runs the exact engine
        else:
            plan = kernels.BlockPlan.from_rowsets(c.layout, graph, c.n_state, 1, rows)
    secs, macs = [], []
    for t in range(len(xs)):
        s, _, rec = c.step_record(cp, s, xs[t])
        dense = nstats.dense_rtrl_macs(rec, P)
        if name == "dense":
            m, rate = dense, ASSUMED_RATE["dense"]
        elif name in ("sparse", "gather"):
            m, rate = nstats.exact_sparse_macs(rec, graph, c.layout), ASSUMED_RATE["sparse"]
            if rtrl_module.DENSE_SWITCH * m > dense:
                m, rate = dense, ASSUMED_RATE["dense"]
        elif name == "snap1":
            m, rate = nstats.snap1_macs(rec, P), ASSUMED_RATE["snap1"]
        elif name == "snap2":
            m, rate = nstats.plan_macs(rec, plan, graph, c.layout), ASSUMED_RATE["snap2"]
        else:
            m, rate = nstats.backward_step_macs(rec, P), ASSUMED_RATE["bptt"]
        macs.append(m)
        secs.append(m / rate)
    return float(np.mean(macs)), float(np.mean(secs))


def _loop(model, params, rule, xs, warmup, state, costs):
    c = model.cell
    cp = model.cell_params(params)
    B = xs.shape[1]
    rstate = rule.init(model, params, B)
    s = c.initial_state(B, model.dtype) if state is None else state
    rule_t = full_t = 0.0
    counted = []
    timed = 0
    for t in range(len(xs)):
        t0 = time.thread_time()
        s, y, rec = c.step_record(cp, s, xs[t])
        t1 = time.thread_time()
        credit = rec.dout  # dL/dy = 1 for every unit
        rstate, g = rule.step(rstate, rec, credit, params=params)
        t2 = time.thread_time()
        if t >= warmup:
            rule_t += t2 - t1
            full_t += t2 - t0
            timed += 1
            if costs:
                counted.append(nstats.step_stats(rec, rule, rstate))
    t0 = time.thread_time()
    rstate, g = rule.flush(rstate, params=params)
    flush_t = time.thread_time() - t0
    return rule_t + flush_t, full_t + flush_t, max(timed, 1), counted


def measure(model, params, rule, xs, *, warmup, state=None, costs=True, memory=True):
    """Time, memory and counted costs of ``rule`` over ``xs`` (after ``warmup`` untimed steps).

    Three passes: a two-step pass that compiles the kernels; a timed pass (no tracing, costs
    counted outside the timed intervals); a pass under ``tracemalloc`` for the peak memory
    (tracing slows allocation-heavy code, so it is never timed).
    """
    _loop(model, params, rule, xs[:2], 0, state, False)
    gc.collect()
    rule_t, full_t, timed, counted = _loop(model, params, rule, xs, warmup, state, costs)
    out = {"rule_ms": 1e3 * rule_t / timed, "full_ms": 1e3 * full_t / timed, "steps": timed}
    if memory:
        rtrl_module._POOL.free.clear()  # the sparse engine's buffers must be allocated anew
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        _loop(model, params, rule, xs, warmup, state, False)
        out["peak_mb"] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        tracemalloc.stop()
    if costs and counted:
        for key in nstats.STAT_KEYS:
            out[key] = float(np.mean([cnt[key] for cnt in counted]))
    return out


# -------------------------------------------------------------------------------------------------
def sweep(args, log):
    rows = []
    dt = np.dtype(args.dtype).type
    for n in args.n:
        for density in args.density:
            for act in args.activity:
                model, params = make_model(n, density, dtype=dt)
                params = calibrate_activity(model, params, act)
                burn = inputs(args.burn, seed=1, dtype=dt)
                state, _, _ = run_cell(model, params, burn)
                xs = inputs(args.warmup + args.steps, seed=2, dtype=dt)
                for name in args.rules:
                    macs, sec = estimate_seconds_per_step(model, params, name, xs[:3])
                    est = sec * (args.warmup + args.steps)
                    row = {
                        "n": n,
                        "density": density,
                        "target_activity": act,
                        "rule": name,
                        "est_s": est,
                        "est_macs": macs,
                        "est_steps": args.warmup + args.steps,
                    }
                    if est > args.budget:
                        row["skipped"] = True
                        log(
                            f"skip n={n} d={density} a={act} {name}: estimated {est:.0f} s "
                            f"({macs:.3g} MACs/step)"
                        )
                        rows.append(row)
                        continue
                    row.update(
                        measure(
                            model,
                            params,
                            RULES[name](),
                            xs,
                            warmup=args.warmup,
                            state=state,
                            memory=not args.no_peak,
                        )
                    )
                    rows.append(row)
                    log(
                        f"n={n} d={density} a={act} {name}: rule {row['rule_ms']:.3f} ms "
                        f"full {row['full_ms']:.3f} ms "
                        f"peak {row.get('peak_mb', float('nan')):.2f} MB "
                        f"macs {row.get('macs', float('nan')):.3g} ev {row.get('event_fraction', 0):.2f} "
                        f"sup {row.get('support_fraction', 0):.2f}"
                    )
    return rows


def stream_floor(model, steps):
    """Time of the cheapest possible influence update: ``new = f * old`` over two influence-sized
    buffers, swapped every step (any exact method rewrites every entry of ``M`` each step, since
    the leak term touches them all)."""
    c = model.cell
    size = c.n_state * c.n_hidden * c.layout.size
    old = np.ones(size, dtype=model.dtype)
    new = np.zeros(size, dtype=model.dtype)
    np.multiply(old, 0.5, out=new)
    t0 = time.thread_time()
    for _ in range(steps):
        np.multiply(old, 0.999, out=new)
        old, new = new, old
    dt = (time.thread_time() - t0) / steps
    return {
        "rule_ms": 1e3 * dt,
        "full_ms": 1e3 * dt,
        "steps": steps,
        "bytes_per_step": 3 * size * old.itemsize,
        "GB_per_s": 3 * size * old.itemsize / dt / 1e9,
    }


def targets(args, log):
    """The issue's target configurations, with more steps."""
    out = {}
    dt = np.dtype(args.dtype).type
    model, params = make_model(128, 0.1, dtype=dt)
    params = calibrate_activity(model, params, 0.2)
    state, _, _ = run_cell(model, params, inputs(args.burn, seed=1, dtype=dt))
    xs = inputs(args.target_warmup + args.target_steps, seed=3, dtype=dt)
    for name in ("dense", "sparse", "snap1", "snap2", "bptt"):
        out[f"n128_d0.1_a0.2_{name}"] = r = measure(
            model, params, RULES[name](), xs, warmup=args.target_warmup, state=state
        )
        log(f"target n=128 d=0.1 a=0.2 {name}: {r}")
    out["n128_d0.1_stream_floor"] = r = stream_floor(model, args.target_steps)
    log(f"streaming floor (rewrite M once per step): {r}")
    # sensitivity (not a target): the same network with a narrower surrogate support
    for width in (0.1,):
        gate = ns.gates.Heaviside(ns.gates.Triangle(gamma=0.7, width=width))
        model_w, params_w = make_model(128, 0.1, gate=gate, dtype=dt)
        params_w = calibrate_activity(model_w, params_w, 0.2)
        state_w, _, _ = run_cell(model_w, params_w, inputs(args.burn, seed=1, dtype=dt))
        for name in ("dense", "sparse"):
            out[f"n128_d0.1_a0.2_width{width}_{name}"] = r = measure(
                model_w, params_w, RULES[name](), xs, warmup=args.target_warmup, state=state_w
            )
            log(f"sensitivity width={width} {name}: {r}")
    for density in (1.0, 0.1):
        model, params = make_model(256, density, dtype=dt)
        params = calibrate_activity(model, params, 0.2)
        state, _, _ = run_cell(model, params, inputs(args.burn, seed=1, dtype=dt))
        xs = inputs(args.target_warmup + args.target_steps, seed=4, dtype=dt)
        for name in ("snap1", "bptt"):
            out[f"n256_d{density}_a0.2_{name}"] = r = measure(
                model, params, RULES[name](), xs, warmup=args.target_warmup, state=state
            )
            log(f"target n=256 d={density} a=0.2 {name}: {r}")
    return out


def scale(args, log):
    """EGRU n = 512, density 0.05, ~15 % events, float32: sparse and dense exact RTRL in one run,
    plus the influence memory (the sparse engine keeps two buffers, swapped every step)."""
    out = {}
    model, params = make_model(512, 0.05, dtype=np.float32)
    params = calibrate_activity(model, params, 0.15)
    state, _, _ = run_cell(model, params, inputs(args.burn, seed=1, dtype=np.float32))
    xs = inputs(args.scale_warmup + args.scale_steps, seed=7, dtype=np.float32)
    c = model.cell
    for name in ("sparse", "dense"):
        r = measure(
            model, params, RULES[name](), xs, warmup=args.scale_warmup, state=state, memory=False
        )
        buffers = 2 if name == "sparse" else 1
        r["influence_mb"] = buffers * c.n_state * c.n_hidden * c.layout.size * 4 / 2**20
        out[f"n512_d0.05_a0.15_f32_{name}"] = r
        log(f"scale n=512 d=0.05 a=0.15 float32 {name}: {r}")
    return out


def measure_memory(model, params, rule, xs):
    """Peak traced memory of the rule's state and the loop over ``xs`` (one traced pass)."""
    _loop(model, params, rule, xs[:2], 0, None, False)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    _loop(model, params, rule, xs, 0, None, False)
    wall = time.perf_counter() - t0
    peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    tracemalloc.stop()
    return {"peak_mb": peak, "full_ms": 1e3 * wall / len(xs), "steps": len(xs)}


def memory_check(args, log):
    """Peak memory of the rule state plus loop at two sequence lengths (EGRU n=32, d=0.2)."""
    out = {}
    model, params = make_model(32, 0.2)
    params = calibrate_activity(model, params, 0.2)
    for name, lengths in (
        ("sparse", args.mem_lengths),
        ("snap1", args.mem_lengths),
        ("snap2", args.mem_lengths),
        ("bptt", args.bptt_lengths),
    ):
        for T in lengths:
            xs = inputs(T, seed=5)
            r = measure_memory(model, params, RULES[name](), xs)
            out[f"{name}_T{T}"] = r
            log(f"memory {name} T={T}: peak {r['peak_mb']:.3f} MB, {r['full_ms']:.3f} ms/step")
    return out


def anchor(args, log):
    """LeakyRNN float32, batch 1, dense weights: the speed anchors' setting (full step)."""
    out = {}
    for n in (64, 128):
        model, params = make_model(n, 1.0, cell="LeakyRNN", dtype=np.float32)
        xs = inputs(args.anchor_warmup + args.anchor_steps, seed=6, dtype=np.float32)
        for name in ("dense", "sparse", "snap1", "bptt"):
            r = measure(model, params, RULES[name](), xs, warmup=args.anchor_warmup)
            out[f"leaky_f32_n{n}_{name}"] = r
            log(
                f"anchor LeakyRNN f32 n={n} {name}: full {r['full_ms']:.3f} ms rule {r['rule_ms']:.3f} ms"
            )
    return out


# -------------------------------------------------------------------------------------------------
def _fmt(v, spec=".3g"):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def args_steps(row) -> int:
    """Steps the skip estimate of a sweep row was made for (warm-up + timed)."""
    return row.get("est_steps", 25)


def render_compact(results) -> str:
    """The sweep as one row per configuration: full-step ms of every rule (forward + update; BPTT
    with its backward share), the sparse/dense speed-up of the update and the ratio of counted
    multiply-adds, and peak memory."""
    rows = results.get("sweep") or []
    keys = []
    for r in rows:
        k = (r["n"], r["density"], r["target_activity"])
        if k not in keys:
            keys.append(k)
    names = tuple(
        m
        for m in ("dense", "sparse", "snap1", "snap2", "bptt")
        if any(r["rule"] == m for r in rows)
    )
    out = [
        "| n | d | events | support | "
        + " | ".join(f"{m} ms" for m in names)
        + " | update speed-up sparse vs dense | MAC ratio dense/sparse | speed-up / MAC ratio"
        + " | peak MB "
        + "/".join(names)
        + " |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|---|---|",
    ]
    for k in keys:
        by = {r["rule"]: r for r in rows if (r["n"], r["density"], r["target_activity"]) == k}
        meas = [r for r in by.values() if not r.get("skipped")]
        ev = _fmt(meas[0].get("event_fraction"), ".2f") if meas else "-"
        sup = _fmt(meas[0].get("support_fraction"), ".2f") if meas else "-"
        cells = []
        for m in names:
            r = by.get(m)
            if r is None:
                cells.append("-")
            elif r.get("skipped"):
                cells.append(f"skipped (est. {r['est_s'] / (args_steps(r)) * 1e3:.0f} ms)")
            else:
                cells.append(_fmt(r["full_ms"], ".3f"))
        d, s = by.get("dense"), by.get("sparse")
        eff = "-"
        if d and s and not d.get("skipped") and not s.get("skipped"):
            speed = _fmt(d["rule_ms"] / s["rule_ms"], ".2f")
            ratio = _fmt(d["macs"] / s["macs"], ".1f")
            eff = _fmt((d["rule_ms"] / s["rule_ms"]) / (d["macs"] / s["macs"]), ".2f")
        elif s and not s.get("skipped") and d:
            speed = "-"
            ratio = _fmt(d["est_macs"] / s["macs"], ".1f")
        else:
            speed = ratio = "-"
        peaks = "/".join(
            _fmt(by[m].get("peak_mb"), ".2f") if m in by and not by[m].get("skipped") else "-"
            for m in names
        )
        out.append(
            f"| {k[0]} | {k[1]} | {ev} | {sup} | "
            + " | ".join(cells)
            + f" | {speed} | {ratio} | {eff} | {peaks} |"
        )
    return "\n".join(out) + "\n"


def render(results) -> str:
    """Markdown tables of a results dict (as written by ``--json``)."""
    out = [render_compact(results)] if results.get("sweep") else []
    sweep_rows = results.get("sweep") or [] if results.get("full_table") else []
    if sweep_rows:
        out.append(
            "| n | density | events | support | rule | rule ms/step | full ms/step | "
            "peak MB | MACs/step | influence nnz |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in sweep_rows:
            if r.get("skipped"):
                out.append(
                    f"| {r['n']} | {r['density']} | ~{r['target_activity']} | | "
                    f"{r['rule']} | skipped (est. {r['est_s']:.0f} s) | | | "
                    f"{_fmt(r['est_macs'])} | |"
                )
                continue
            out.append(
                f"| {r['n']} | {r['density']} | {_fmt(r.get('event_fraction'), '.2f')} | "
                f"{_fmt(r.get('support_fraction'), '.2f')} | {r['rule']} | "
                f"{_fmt(r['rule_ms'], '.3f')} | {_fmt(r['full_ms'], '.3f')} | "
                f"{_fmt(r['peak_mb'], '.2f')} | {_fmt(r.get('macs'))} | "
                f"{_fmt(r.get('influence_nnz'))} |"
            )
        out.append("")
    for key in ("target", "scale", "anchor"):
        block = results.get(key) or {}
        if block:
            out.append(
                "| configuration | rule ms/step | full ms/step | peak MB | MACs/step | "
                "events | support |"
            )
            out.append("|---|---|---|---|---|---|---|")
            for name, r in block.items():
                out.append(
                    f"| {name} | {_fmt(r['rule_ms'], '.3f')} | {_fmt(r['full_ms'], '.3f')} | "
                    f"{_fmt(r.get('peak_mb'), '.2f')} | {_fmt(r.get('macs'))} | "
                    f"{_fmt(r.get('event_fraction'), '.2f')} | "
                    f"{_fmt(r.get('support_fraction'), '.2f')} |"
                )
            out.append("")
    mem = results.get("memory") or {}
    if mem:
        out.append("| rule, T | peak MB | wall ms/step (traced) |")
        out.append("|---|---|---|")
        for name, r in mem.items():
            out.append(f"| {name} | {r['peak_mb']:.3f} | {r['full_ms']:.3f} |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--density", type=float, nargs="+", default=[1.0, 0.5, 0.2, 0.1])
    ap.add_argument("--activity", type=float, nargs="+", default=[0.1, 0.3, 0.6])
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    ap.add_argument("--burn", type=int, default=50, help="cell steps before the rule starts")
    ap.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="skip a measurement whose estimated time exceeds this (seconds)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small subset: n 32 128, density 1 0.1, activity 0.3, 10 steps",
    )
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--target", action="store_true", help="the issue's target configurations")
    ap.add_argument("--target-steps", type=int, default=60)
    ap.add_argument("--target-warmup", type=int, default=10)
    ap.add_argument("--memory", action="store_true", help="peak memory vs sequence length")
    ap.add_argument("--mem-lengths", type=int, nargs="+", default=[1_000, 100_000])
    ap.add_argument("--bptt-lengths", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument(
        "--dtype",
        default="float64",
        choices=["float64", "float32"],
        help="precision of the sweep and the target runs",
    )
    ap.add_argument(
        "--no-peak", action="store_true", help="sweep: skip the traced peak-memory pass (time only)"
    )
    ap.add_argument(
        "--scale",
        action="store_true",
        help="EGRU n=512, density 0.05, ~15%% events, float32: sparse vs dense",
    )
    ap.add_argument("--scale-steps", type=int, default=20)
    ap.add_argument("--scale-warmup", type=int, default=10)
    ap.add_argument("--anchor", action="store_true", help="LeakyRNN float32 dense anchors")
    ap.add_argument("--anchor-steps", type=int, default=100)
    ap.add_argument("--anchor-warmup", type=int, default=10)
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument(
        "--render",
        default=None,
        metavar="JSON",
        help="print the markdown tables of an earlier --json file and exit",
    )
    args = ap.parse_args(argv)
    if args.render:
        with open(args.render) as fh:
            print(render(json.load(fh)))
        return None
    if args.quick:
        args.n, args.density, args.activity, args.steps = [32, 128], [1.0, 0.1], [0.3], 10

    def log(msg):
        print(msg, flush=True)

    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()
        ]
    except ImportError:  # pragma: no cover - optional
        blas = "threadpoolctl not installed"
    meta = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "dtype": args.dtype,
        "blas": blas,
        "removed_env": _REMOVED_BLAS_ENV,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "argv": sys.argv,
        "threads": {v: os.environ.get(v) for v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
    log(json.dumps(meta))
    results = {"meta": meta}
    if not args.no_sweep:
        results["sweep"] = sweep(args, log)
    if args.target:
        results["target"] = targets(args, log)
    if args.scale:
        results["scale"] = scale(args, log)
    if args.memory:
        results["memory"] = memory_check(args, log)
    if args.anchor:
        results["anchor"] = anchor(args, log)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
