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
  weights), which is also measured alone (a 10-step call) and reported separately;
- ``brian2-euler``: the Brian2 adapter's network (``neurosnap.adapters.brian2``, numpy target),
  neurosnap's explicit Euler update: identical spike trains expected (seed 0);
- ``brian2-exact``: Brian2's own CUBA code (``dv/dt = (ge + gi - (v - El))/taum`` with
  ``(unless refractory)`` on all three variables, ``method='exact'``, numpy target) on the same
  synapses and initial potentials, for every seed: a different integration scheme (exact
  integration of the linear ODEs; the currents also frozen while refractory, as in the example),
  so its spike trains diverge; rates and CV of ISI are compared with the seed-to-seed spread;
- ``brian2-exact-free``: the same with ``(unless refractory)`` on ``v`` only (the currents keep
  integrating while refractory, as in neurosnap): separates the integration scheme from the
  refractory semantics.

Usage::

    python benchmarks/cuba.py                       # docs/cuba.md: 4,000 neurons, 1 s, 3 seeds
    python benchmarks/cuba.py --n 400 --seconds 0.1 --seeds 1 --no-figure    # smoke size
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
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


def build(n: int, seed: int):
    """``(model, params, v0)``: ``models/cuba.toml`` at ``n`` neurons (cell seed ``seed``), Dale's
    law weights and initial potentials uniform in ``[v_reset, v_th)``."""
    cfg = config.apply_overrides(
        config.load(ROOT / "models" / "cuba.toml"),
        [f"model.n_hidden={n}", f"model.cell_options.seed={seed}"],
    )
    model = config.build(cfg)[0]
    cell = model.cell
    params = model.init(seed=seed)
    exc = np.arange(n) < int(round(FRAC_EXC * n))
    w = np.zeros((2, n, n))
    w[0][:, exc] = W_E
    w[1][:, ~exc] = W_I
    params["cell.w_rec"] = w * cell.mask
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
    return rec.spike_steps.astype(np.int64), rec.spike_units.astype(np.int64), wall


def run_brian2_euler(model, params, v0, T):
    """The adapter's network (neurosnap's update code), membrane monitor removed."""
    import brian2 as b2

    from neurosnap.adapters import brian2 as adapter

    xs = np.zeros((T, 1, 1))
    net = adapter.to_network(model, params, xs, initial_state={"v": v0})
    net.remove(net[adapter.NAMES["membrane"]])
    start = time.perf_counter()
    adapter.run(net, model, T)
    wall = time.perf_counter() - start
    spikes = net[adapter.NAMES["spikes"]]
    step = np.rint(np.asarray(spikes.t_[:]) / model.cell.dt).astype(np.int64) - 1
    keep = step >= 0  # Brian2 step 0 holds z_{-1}
    del b2
    return step[keep], np.asarray(spikes.i[:], np.int64)[keep], wall


def run_brian2_exact(model, params, v0, T, frozen=True):
    """Brian2's CUBA example code on the same synapses and initial potentials; ``frozen=False``
    drops ``(unless refractory)`` from ge and gi (neurosnap's and the adapter's semantics: the
    currents keep integrating while the membrane is clamped)."""
    import brian2 as b2

    b2.prefs.codegen.target = "numpy"
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
    post, pre = np.nonzero(params["cell.w_rec"][0])
    ce = b2.Synapses(group, group, on_pre="ge += we", namespace=ns_, clock=clock)
    order = np.argsort(pre, kind="stable")
    ce.connect(i=pre[order], j=post[order])
    post, pre = np.nonzero(params["cell.w_rec"][1])
    ci = b2.Synapses(group, group, on_pre="gi += wi", namespace=ns_, clock=clock)
    order = np.argsort(pre, kind="stable")
    ci.connect(i=pre[order], j=post[order])
    syn += [ce, ci]
    mon = b2.SpikeMonitor(group)
    net = b2.Network(group, *syn, mon)
    start = time.perf_counter()
    net.run(T * cell.dt * b2.second, namespace={})
    wall = time.perf_counter() - start
    step = np.rint(np.asarray(mon.t_[:]) / cell.dt).astype(np.int64)
    del ms
    return step, np.asarray(mon.i[:], np.int64), wall


def _sorted(steps, units):
    order = np.lexsort((units, steps))
    return np.stack([steps[order], units[order]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="neurons")
    parser.add_argument("--seconds", type=float, default=1.0, help="simulated seconds")
    parser.add_argument("--seeds", type=int, default=3, help="networks (connectivity, v0)")
    parser.add_argument("--no-brian2", action="store_true", help="neurosnap only")
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "figures" / "cuba"),
        help="figure and JSON path without suffix",
    )
    args = parser.parse_args(argv)
    results = {
        "n": args.n,
        "seconds": args.seconds,
        "seeds": args.seeds,
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "runs": {},
    }
    # warm the numba kernel and Brian2's code generation (not timed)
    model, params, v0 = build(min(args.n, 200), 0)
    run_neurosnap(model, params, v0, 20)
    if not args.no_brian2:
        run_brian2_euler(model, params, v0, 20)
        run_brian2_exact(model, params, v0, 20)
        run_brian2_exact(model, params, v0, 20, frozen=False)
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
        runs = {"neurosnap": run_neurosnap(model, params, v0, T)}
        # ns.simulate's per-call setup (checks, weight hash, CSR build from the dense (2, n, n)
        # weights): a 10-step call; Brian2's network building is not timed either
        setup = min(run_neurosnap(model, params, v0, 10)[2] for _ in range(2))
        results["runs"][f"neurosnap-setup/seed{seed}"] = {"wall_s": setup}
        if not args.no_brian2:
            if seed == 0:
                runs["brian2-euler"] = run_brian2_euler(model, params, v0, T)
            runs["brian2-exact"] = run_brian2_exact(model, params, v0, T)
            runs["brian2-exact-free"] = run_brian2_exact(model, params, v0, T, frozen=False)
        for kind, (st, un, wall) in runs.items():
            rates, cvs = stats(st, un, args.n, args.seconds, dt)
            per_kind[kind].append((rates, cvs))
            entry = {
                "wall_s": wall,
                "s_per_sim_s": wall / args.seconds,
                "spikes": int(len(st)),
                "mean_rate_hz": float(rates.mean()),
                "median_cv": float(np.median(cvs)) if len(cvs) else None,
                "n_cv": int(len(cvs)),
            }
            if kind == "neurosnap":
                entry["loop_s_per_sim_s"] = (wall - setup) / args.seconds
            results["runs"][f"{kind}/seed{seed}"] = entry
            print(
                f"seed {seed} {kind:13s} {wall:8.2f} s wall ({wall / args.seconds:7.2f} s per "
                f"simulated s), {len(st)} spikes, rate {rates.mean():.2f} Hz, median CV "
                f"{entry['median_cv']}"
                + (
                    f"; without the setup ({setup:.2f} s): {entry['loop_s_per_sim_s']:.2f} s per "
                    "simulated s"
                    if kind == "neurosnap"
                    else ""
                ),
                flush=True,
            )
        if "brian2-euler" in runs:
            a, b = (_sorted(*runs[k][:2]) for k in ("neurosnap", "brian2-euler"))
            same = a.shape == b.shape and np.array_equal(a, b)
            results["identical_spikes_neurosnap_vs_brian2_euler"] = bool(same)
            print(f"identical spike trains neurosnap == brian2-euler: {same}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_figure:
        figure(per_kind, out.with_suffix(".png"), args)
    return results


def figure(per_kind, path, args):
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
    labels = {
        "neurosnap": "neurosnap (Euler)",
        "brian2-euler": "Brian2, adapter (Euler)",
        "brian2-exact": "Brian2, example code (exact)",
        "brian2-exact-free": "Brian2, exact, currents not frozen",
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
        "(same weights and initial potentials; the Euler curves coincide)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
