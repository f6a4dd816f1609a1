"""The CUBA benchmark network (Brette et al. 2007, benchmark 2; Brian2's CUBA example) in neurosnap
and in Brian2, from the same weights and initial potentials.

The network is ``models/cuba.toml`` (constants and their source there and in ``docs/cuba.md``):
4,000 current-based LIF neurons, 80 % excitatory, connection probability 0.02 (neurosnap's fixed
in-degree of 80), excitatory current ``i`` (tau 5 ms) and inhibitory current ``i_inh`` (tau 10
ms), refractory 5 ms, dt 0.1 ms, random initial potentials uniform in [Vr, Vt], no input.

Runs (each timed, wall clock, numba and Brian2 caches warm; one process, so ratios are fair):

- ``neurosnap``: ``ns.simulate`` (event-driven numba kernel), forward Euler in neurosnap's order
  (``docs/theory/cells.md``), for every seed; the wall clock includes ``ns.simulate``'s setup
  (argument checks, a hash of the weights, the synapse tables from the dense ``(2, n, n)``
  weights), which is also measured alone (the fastest of three 10-step calls) and reported
  separately; the loop alone is estimated as the difference; the faster of two identical calls
  is reported (each Brian2 run is made once);
- ``brian2-euler``: the Brian2 adapter's network (``neurosnap.adapters.brian2``), neurosnap's
  explicit Euler update: identical spike trains expected (seed 0);
- ``brian2-exact``: Brian2's own CUBA code (``dv/dt = (ge + gi - (v - El))/taum`` with
  ``(unless refractory)`` on all three variables, ``method='exact'``) on the same
  synapses and initial potentials, for every seed: a different integration scheme (exact
  integration of the linear ODEs; the currents also frozen while refractory, as in the example),
  so its spike trains diverge; rates and CV of ISI are compared with the seed-to-seed spread;
- ``brian2-exact-free``: the same with ``(unless refractory)`` on ``v`` only (the currents keep
  integrating while refractory, as in neurosnap): separates the integration scheme from the
  refractory semantics.

Every Brian2 run is made once per code-generation target of ``--targets`` (default ``numpy
cython``), and the spike trains of the targets are compared. For each Brian2 run two times are
reported: the whole ``Network.run`` call (Brian2's ``before_run``: code generation, and for Cython
loading the compiled extensions, plus the time-step loop) and the loop alone, as Brian2 times it
itself (``device._last_run_time``: from the end of ``before_run`` to the last time step). Cython
compiles each code object once; the compiled extensions go to a fresh temporary directory (removed
at exit) unless ``--cython-cache`` names one, so a run starts from an empty cache and the
compilation is paid by the untimed warm-up on a 200-neuron network, which is timed separately
(``first_use_s``: building and running it, per kind of run and target).

Usage::

    python benchmarks/cuba.py                       # docs/cuba.md: 4,000 neurons, 1 s, 3 seeds
    python benchmarks/cuba.py --n 400 --seconds 0.1 --seeds 1 --no-figure    # smoke size
    python benchmarks/cuba.py --targets numpy       # Brian2's numpy target only (no C compiler)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # this benchmark's process only
    os.environ.pop(_var, None)
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import neurosnap as ns  # noqa: E402
from neurosnap import config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Brian2's CUBA example: excitatory / inhibitory synaptic weights (mV), excitatory fraction
W_E, W_I, FRAC_EXC = 60 * 0.27 / 10, -20 * 4.5 / 10, 0.8
#: Brian2 code-generation targets this benchmark runs
TARGETS = ("numpy", "cython")


def c_compiler() -> str | None:
    """The C compiler Brian2's Cython target would use (``gcc`` or ``cc`` on the PATH), or None."""
    return shutil.which("gcc") or shutil.which("cc")


def _set_target(b2, target, cache_dir):
    """Brian2's global code-generation target (objects built without ``codeobj_class``) and, for
    Cython, its cache directory."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    b2.prefs.codegen.target = target
    if target == "cython":
        if cache_dir is None:
            raise ValueError("cache_dir: the Cython target needs a cache directory")
        b2.prefs.codegen.runtime.cython.cache_dir = str(cache_dir)


def _loop_time(b2):
    """Seconds of the last ``Network.run``'s time-step loop, as Brian2 measures it (after
    ``before_run``: code generation and compilation are excluded)."""
    return float(b2.get_device()._last_run_time)


#: above this many neurons the network is stored sparsely (one weight per synapse,
#: ``storage="sparse"``): a dense (2, n, n) float64 array is 2.6 GB at 40,000 neurons
SPARSE_ABOVE = 10_000


def build(n: int, seed: int, storage: str | None = None):
    """``(model, params, v0)``: ``models/cuba.toml`` at ``n`` neurons (cell seed ``seed``), Dale's
    law weights and initial potentials uniform in ``[v_reset, v_th)``. ``storage``: the cell's
    weight storage (default: ``"sparse"`` above :data:`SPARSE_ABOVE` neurons, else ``"dense"``;
    both give the same synapses, weights and spikes)."""
    storage = storage or ("sparse" if n > SPARSE_ABOVE else "dense")
    cfg = config.apply_overrides(
        config.load(ROOT / "models" / "cuba.toml"),
        [
            f"model.n_hidden={n}",
            f"model.cell_options.seed={seed}",
            f"model.cell_options.storage={storage}",
        ],
    )
    model = config.build(cfg)[0]
    cell = model.cell
    params = model.init(seed=seed)
    exc_pre = cell.graph.pre_index < int(round(FRAC_EXC * n))  # per synapse: from an E unit
    w = np.zeros((2, cell.graph.nnz))
    w[0][exc_pre] = W_E
    w[1][~exc_pre] = W_I
    params["cell.w_rec"] = cell.dense_w_rec(w) if storage == "dense" else w
    params["cell.w_in"] = np.zeros_like(params["cell.w_in"])
    v0 = np.random.default_rng(1000 + seed).uniform(cell.v_reset, cell.v_th, n)
    return model, params, v0


def stats(steps, units, n, seconds, dt):
    """Per-neuron rates (Hz) and CV of ISI (neurons with >= 3 spikes)."""
    order = np.lexsort((steps, units))
    steps, units = steps[order], units[order]
    counts = np.bincount(units, minlength=n)
    rates = counts / seconds
    cvs = []
    starts = np.concatenate([[0], np.cumsum(counts)])
    for u in np.nonzero(counts >= 3)[0]:
        isi = np.diff(steps[starts[u] : starts[u + 1]]) * dt
        cvs.append(isi.std() / isi.mean())
    return rates, np.asarray(cvs)


def run_neurosnap(model, params, v0, T):
    xs = np.zeros((T, 1, 1))
    start = time.perf_counter()
    rec = ns.simulate(model, params, xs, record="events", engine="event", initial_state={"v": v0})
    wall = time.perf_counter() - start
    steps, units = rec.spike_steps.astype(np.int64), rec.spike_units.astype(np.int64)
    return steps, units, wall, None


def run_brian2_euler(model, params, v0, T, target="numpy", cache_dir=None):
    """The adapter's network (neurosnap's update code), membrane monitor removed, with Brian2's
    code-generation ``target`` (``"numpy"`` or ``"cython"``; Cython caches in ``cache_dir``).

    Returns ``(steps, units, wall_s, loop_s)``: spike steps and units (neurosnap's step numbering),
    the ``Network.run`` call's wall clock and its time-step loop alone (Brian2's own timer)."""
    import brian2 as b2

    from neurosnap.adapters import brian2 as adapter

    _set_target(b2, target, cache_dir)
    xs = np.zeros((T, 1, 1))
    net = adapter.to_network(
        model, params, xs, initial_state={"v": v0}, target=target, cache_dir=cache_dir
    )
    net.remove(net[adapter.NAMES["membrane"]])
    start = time.perf_counter()
    adapter.run(net, model, T)
    wall = time.perf_counter() - start
    loop = _loop_time(b2)
    spikes = net[adapter.NAMES["spikes"]]
    step = np.rint(np.asarray(spikes.t_[:]) / model.cell.dt).astype(np.int64) - 1
    keep = step >= 0  # Brian2 step 0 holds z_{-1}
    return step[keep], np.asarray(spikes.i[:], np.int64)[keep], wall, loop


def run_brian2_exact(model, params, v0, T, frozen=True, target="numpy", cache_dir=None):
    """Brian2's CUBA example code on the same synapses and initial potentials; ``frozen=False``
    drops ``(unless refractory)`` from ge and gi (neurosnap's and the adapter's semantics: the
    currents keep integrating while the membrane is clamped). ``target``, ``cache_dir`` and the
    return value as in :func:`run_brian2_euler`."""
    import brian2 as b2

    _set_target(b2, target, cache_dir)
    cell, n = model.cell, model.cell.n_hidden
    ms, mV = b2.ms, b2.mV
    ns_ = dict(
        taum=cell.tau_mem * b2.second,
        taue=cell.tau_syn * b2.second,
        taui=cell.tau_syn_inh * b2.second,
        Vt=cell.v_th * mV,
        Vr=cell.v_reset * mV,
        El=cell.v_leak * mV,
        we=W_E * mV,
        wi=W_I * mV,
    )
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt (unless refractory)
    dgi/dt = -gi/taui : volt (unless refractory)
    """
    if not frozen:
        eqs = "\n".join(
            line.replace(" (unless refractory)", "") if "dg" in line else line
            for line in eqs.split("\n")
        )
    clock = b2.Clock(cell.dt * b2.second)
    group = b2.NeuronGroup(
        n,
        eqs,
        threshold="v>Vt",
        reset="v = Vr",
        refractory=cell.refractory * b2.second,
        method="exact",
        namespace=ns_,
        clock=clock,
    )
    group.v = v0 * mV
    syn = []
    w = cell.synapse_w_rec(params["cell.w_rec"])  # (2, nnz), either storage
    g_post, g_pre = cell.graph.edge_post, cell.graph.edge_pre
    for gate, on_pre in ((0, "ge += we"), (1, "gi += wi")):
        keep = w[gate] != 0  # Dale's law: the synapses of this current
        post, pre = g_post[keep], g_pre[keep]
        order = np.argsort(pre, kind="stable")
        group_syn = b2.Synapses(group, group, on_pre=on_pre, namespace=ns_, clock=clock)
        group_syn.connect(i=pre[order], j=post[order])
        syn.append(group_syn)
    mon = b2.SpikeMonitor(group)
    net = b2.Network(group, *syn, mon)
    start = time.perf_counter()
    net.run(T * cell.dt * b2.second, namespace={})
    wall = time.perf_counter() - start
    loop = _loop_time(b2)
    step = np.rint(np.asarray(mon.t_[:]) / cell.dt).astype(np.int64)
    del ms
    return step, np.asarray(mon.i[:], np.int64), wall, loop


def _wall(run):
    return run[2]


def _sorted(steps, units):
    order = np.lexsort((units, steps))
    return np.stack([steps[order], units[order]])


#: the Brian2 runs, each made once per target
BRIAN2_KINDS = ("brian2-euler", "brian2-exact", "brian2-exact-free")


def _brian2_run(kind, model, params, v0, T, target, cache_dir):
    if kind == "brian2-euler":
        return run_brian2_euler(model, params, v0, T, target, cache_dir)
    frozen = kind == "brian2-exact"
    return run_brian2_exact(model, params, v0, T, frozen, target, cache_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="neurons")
    parser.add_argument("--seconds", type=float, default=1.0, help="simulated seconds")
    parser.add_argument("--seeds", type=int, default=3, help="networks (connectivity, v0)")
    parser.add_argument("--no-brian2", action="store_true", help="neurosnap only")
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=TARGETS,
        default=list(TARGETS),
        help="Brian2 code-generation targets, each runs every Brian2 kind (default: numpy cython)",
    )
    parser.add_argument(
        "--cython-cache",
        default=None,
        help="directory for Brian2's compiled Cython extensions (kept); default: a fresh "
        "temporary directory, removed at exit",
    )
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "figures" / "cuba"),
        help="figure and JSON path without suffix",
    )
    args = parser.parse_args(argv)
    targets = [] if args.no_brian2 else list(dict.fromkeys(args.targets))
    if "cython" in targets and c_compiler() is None:
        parser.error(
            "--targets cython needs a C compiler (gcc or cc on the PATH); "
            "install one or pass --targets numpy"
        )
    temporary = None
    cache_dir = args.cython_cache
    if "cython" in targets and cache_dir is None:
        temporary = cache_dir = tempfile.mkdtemp(prefix="cuba-brian2-cython-")
    try:
        return _main(args, targets, cache_dir, temporary is not None)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _main(args, targets, cache_dir, temporary_cache):
    results = {
        "n": args.n,
        "seconds": args.seconds,
        "seeds": args.seeds,
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "targets": targets,
        "runs": {},
        "first_use_s": {},
        "identical_spikes": {},
    }
    if "cython" in targets:
        cache = Path(cache_dir)
        results["cython_cache"] = (
            "a fresh temporary directory"
            if temporary_cache
            else f"{cache.name}, {'empty' if not any(cache.glob('*')) else 'not empty'} at start"
        )
        results["c_compiler"] = Path(c_compiler()).name
    if targets:
        import brian2
        import Cython

        results["brian2"] = brian2.__version__
        results["cython"] = Cython.__version__ if "cython" in targets else None
    # warm the numba kernel and Brian2's code generation (Cython: compilation), not in the
    # timings below; the warm-up's own time is reported as the first use of each run and target
    model, params, v0 = build(min(args.n, 200), 0)
    run_neurosnap(model, params, v0, 20)
    for target in targets:
        for kind in BRIAN2_KINDS:
            start = time.perf_counter()
            _brian2_run(kind, model, params, v0, 20, target, cache_dir)
            first = time.perf_counter() - start
            results["first_use_s"][f"{kind}:{target}"] = first
            print(
                f"first use of {kind}:{target} (build and run a {model.cell.n_hidden}-neuron "
                f"network for 20 steps, code generation and compilation included): {first:.2f} s",
                flush=True,
            )
    # the figure shows the first target's Brian2 runs (the others are compared spike for spike)
    per_kind: dict[str, list] = {
        "neurosnap": [],
        "brian2-exact": [],
        "brian2-exact-free": [],
        "brian2-euler": [],
    }
    for seed in range(args.seeds):
        model, params, v0 = build(args.n, seed)
        T = int(round(args.seconds / model.cell.dt))
        dt = model.cell.dt
        # the faster of two identical calls (the machine is shared; the loop estimate below is a
        # difference of two timings and suffers most from a disturbed one)
        runs = {
            "neurosnap": min((run_neurosnap(model, params, v0, T) for _ in range(2)), key=_wall)
        }
        # ns.simulate's per-call setup (checks, weight hash, CSR build from the dense (2, n, n)
        # weights): the fastest of three 10-step calls; Brian2's network building is not timed
        setup = min(run_neurosnap(model, params, v0, 10)[2] for _ in range(3))
        results["runs"][f"neurosnap-setup/seed{seed}"] = {"wall_s": setup}
        for target in targets:
            for kind in BRIAN2_KINDS:
                if kind == "brian2-euler" and seed != 0:
                    continue
                runs[f"{kind}:{target}"] = _brian2_run(
                    kind, model, params, v0, T, target, cache_dir
                )
        for name, (st, un, wall, loop) in runs.items():
            kind = name.split(":")[0]
            rates, cvs = stats(st, un, args.n, args.seconds, dt)
            if kind == "neurosnap" or name == f"{kind}:{targets[0]}":
                per_kind[kind].append((rates, cvs))
            if loop is None:  # neurosnap: the whole call less the setup (10-step calls)
                loop = wall - setup
            entry = {
                "wall_s": wall,
                "s_per_sim_s": wall / args.seconds,
                "loop_s": loop,
                "loop_s_per_sim_s": loop / args.seconds,
                "spikes": int(len(st)),
                "mean_rate_hz": float(rates.mean()),
                "median_cv": float(np.median(cvs)) if len(cvs) else None,
                "n_cv": int(len(cvs)),
            }
            results["runs"][f"{name}/seed{seed}"] = entry
            print(
                f"seed {seed} {name:24s} {wall:7.2f} s wall ({wall / args.seconds:6.2f} s per "
                f"simulated s), loop {loop:6.2f} s ({loop / args.seconds:6.2f} s per simulated s)"
                f", {len(st)} spikes, rate {rates.mean():.2f} Hz, median CV {entry['median_cv']}",
                flush=True,
            )
        pairs = [("neurosnap", f"brian2-euler:{t}") for t in targets if seed == 0]
        pairs += [(f"{k}:{targets[0]}", f"{k}:{t}") for k in BRIAN2_KINDS for t in targets[1:]]
        for a, b in pairs:
            if a in runs and b in runs:
                x, y = (_sorted(*runs[key][:2]) for key in (a, b))
                same = x.shape == y.shape and np.array_equal(x, y)
                results["identical_spikes"][f"{a} == {b}/seed{seed}"] = bool(same)
                print(f"seed {seed} identical spike trains {a} == {b}: {same}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_figure:
        others = {
            key: same
            for key, same in results["identical_spikes"].items()
            if not key.startswith("neurosnap ==")
        }
        note = None
        if others:
            note = f"{', '.join(targets[1:])} target{'s' if len(targets) > 2 else ''}: " + (
                "identical spike trains, not drawn" if all(others.values()) else "not drawn"
            )
        figure(per_kind, out.with_suffix(".png"), args, targets[0] if targets else None, note)
    return results


def figure(per_kind, path, args, target=None, note=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    styles = {
        "neurosnap": dict(color="C0", lw=2.2),
        "brian2-euler": dict(color="C1", lw=1.2, ls="--"),
        "brian2-exact": dict(color="C2", lw=1.4),
        "brian2-exact-free": dict(color="C3", lw=1.0, ls=":"),
    }
    where = f", {target} target" if target else ""
    labels = {
        "neurosnap": "neurosnap (Euler)",
        "brian2-euler": f"Brian2, adapter (Euler{where})",
        "brian2-exact": f"Brian2, example code (exact{where})",
        "brian2-exact-free": f"Brian2, exact, currents not frozen{where}",
    }
    all_rates = np.concatenate([r for runs in per_kind.values() for r, _ in runs])
    # rates are spike counts / duration: one bin per count
    top = int(np.ceil(np.percentile(all_rates, 99.5) * args.seconds)) + 1
    rbins = (np.arange(top + 1) - 0.5) / args.seconds
    cbins = np.linspace(0, 2.0, 40)
    for kind, runs in per_kind.items():
        if not runs:
            continue
        for k, (rates, cvs) in enumerate(runs):
            lab = (
                labels[kind] + (f" ({len(runs)} seeds)" if len(runs) > 1 else "")
                if k == 0
                else None
            )
            axes[0].hist(
                rates,
                bins=rbins,
                histtype="step",
                density=True,
                label=lab,
                alpha=1.0 if k == 0 else 0.5,
                **styles[kind],
            )
            axes[1].hist(
                cvs,
                bins=cbins,
                histtype="step",
                density=True,
                alpha=1.0 if k == 0 else 0.5,
                **styles[kind],
            )
            axes[2].plot(
                rates.mean(),
                np.median(cvs),
                "o" if kind != "brian2-euler" else "x",
                color=styles[kind]["color"],
                ms=7 if kind == "neurosnap" else 5,
                label=labels[kind] if k == 0 else None,
            )
    axes[0].set_xlabel("firing rate (Hz)")
    axes[0].set_ylabel("density of neurons")
    axes[1].set_xlabel("CV of ISI (neurons with >= 3 spikes)")
    axes[0].legend(fontsize=8)
    axes[2].set_xlabel("mean rate (Hz)")
    axes[2].set_ylabel("median CV of ISI")
    axes[2].set_title("one point per network (seed)", fontsize=9)
    fig.suptitle(
        f"CUBA, {args.n} neurons, {args.seconds:g} s, dt 0.1 ms: neurosnap vs Brian2 "
        "(same weights and initial potentials; the Euler curves coincide)"
        + (f"; Brian2's {note}" if note else ""),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
