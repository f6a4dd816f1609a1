# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Simulate, record, look, save, export
#
# **What you will learn**
#
# - how to run a large spiking network for a long time with `ns.simulate`, streaming its spikes and
#   membrane potentials to disk so that memory stays bounded;
# - every picture `ns.plot` draws (raster, population rate, state traces, ISI histogram, the
#   summary figure and the per-panel PNGs of the command line);
# - how to save and reload a recording and a network's parameters, with plain numpy and JSON files;
# - how to export the network as a [NIR](https://neuroir.org) graph and read it back exactly;
# - how to run the *same* network in Norse and in Brian2 and check that the spikes agree.
#
# Background: [simulating and recording](../docs/guide/simulation.md), [adapters](../docs/adapters.md).
# Brian2, Norse and NIR are optional dependencies (`pip install -e ".[brian2,norse]"`; `make test`
# installs them).
#
# **Run time.** About 1.5 minutes at full size and about 30 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine. Open it with jupytext, or run
# `make notebooks` for an `.ipynb` copy (see [00](00-first-spiking-network.py)).

# %%
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns
from neurosnap.adapters import brian2 as b2a
from neurosnap.adapters import norse as na

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"
N = 200 if SMOKE else 1000              # neurons
STEPS = 3000 if SMOKE else 20_000       # 1 ms steps
workdir = Path(tempfile.mkdtemp(prefix="neurosnap-06-"))

# %% [markdown]
# ## The network
#
# The network of `models/lif-network.toml`: current-based LIF neurons (`τ_mem = 20 ms`,
# `τ_syn = 5 ms`, `dt = 1 ms`), each receiving 10 % of the others through random recurrent
# synapses, driven by 100 Poisson inputs at 20 Hz. The readout is unused here (`n_out=1`, mse).

# %%
model = ns.Model(ns.cells.LIF(n_in=100, n_hidden=N, density=0.1, dt=1e-3, tau_mem=20e-3,
                              tau_syn=5e-3, w_in_scale=6.0, w_rec_scale=4.0), n_out=1, loss="mse")
params = model.init(seed=0)
print(model)
print({k: v.shape for k, v in params.items()})

# %% [markdown]
# ## Simulating with streaming to disk
#
# `ns.simulate` steps the network chunk by chunk (an event-driven kernel for LIF: the cost of a
# step follows the spikes). With `out=DIR`, every chunk's spikes and states are written to disk as
# soon as they are made, so a run of millions of steps never holds its recording in memory. We
# record all spikes and the membrane `v` and current `i` of five neurons.

# %%
source = ns.simulation.PoissonSource(rate_hz=20.0, n=100, dt=1e-3, seed=0)
start = time.perf_counter()
rec = ns.simulate(model, params, source, record=("events", "v", "i"), steps=STEPS,
                  units=[0, 1, 2, 3, 4], out=workdir / "run", chunk_steps=1000)
wall = time.perf_counter() - start
print(f"{STEPS:,} steps of {N:,} neurons in {wall:.2f} s ({wall / STEPS * 1e6:.0f} µs per step), "
      f"{len(rec.spike_units):,} spikes")
print("files:", sorted(p.name for p in (workdir / "run").iterdir()))
print("recorded:", rec.meta["recorded"], "| network hash", rec.meta["network_hash"][:12])

# %% [markdown]
# ## Every picture
#
# Each `ns.plot` function draws into an `ax` you give it (or a new figure) and returns the Axes.

# %%
fig, axes = plt.subplots(2, 2, figsize=(12, 6.5))
ns.plot.raster(rec, ax=axes[0, 0], t_stop=1.0)                  # first second
ns.plot.rate(rec, ax=axes[0, 1])                                # population rate, whole run
ns.plot.traces(rec, ax=axes[1, 0], var="v", units=[0, 1], t_stop=0.5)   # threshold dashed
ns.plot.isi_histogram(rec, ax=axes[1, 1], log=True)             # pooled inter-spike intervals
fig.tight_layout()
plt.show()

# %% [markdown]
# The raster shows irregular, asynchronous firing; the rate fluctuates around its mean; the
# membranes of two neurons wander below the threshold, cross it, spike and reset; the ISI
# histogram (log-scaled intervals) is broad. A Poisson spike train has an ISI coefficient of
# variation (CV) of 1; above 1, as here, firing is burstier: short intervals inside bursts, long
# silences between them.

# %%
isi = rec.isi()
counts = rec.spike_counts()
print(f"mean rate {counts.mean() / (STEPS * 1e-3):.2f} Hz per neuron; "
      f"ISI CV {isi.std() / isi.mean():.2f}; silent neurons {np.mean(counts == 0):.0%}")

# %% [markdown]
# The command line (`neurosnap simulate models/lif-network.toml`) writes the same pictures as PNG
# files: `ns.plot.save_panels` does it, and `ns.plot.summary_figure` puts the four panels in one
# figure. Both work without a display.

# %%
written = ns.plot.save_panels(rec, workdir / "run")
print([p.name for p in written])
summary = ns.plot.summary_figure(rec, workdir / "run" / "summary.png", t_stop=0.5)
summary                                                          # a Figure: Jupyter shows it

# %% [markdown]
# ## Saving and loading
#
# A recording directory is two plain files: `recording.npz` (numpy arrays, no pickles) and
# `recording.json` (metadata: sizes, `dt`, the model configuration, a hash of the network). Read
# them with numpy and json alone, or reopen them with `Recording.load`, which maps the arrays
# lazily from disk. Parameters are a dict of arrays: save them with `np.savez` (as
# `neurosnap train` does) and load them with `ns.simulation.load_params`, which refuses pickles
# and checks every shape against the model.

# %%
import json

meta = json.loads((workdir / "run" / "recording.json").read_text())
with np.load(workdir / "run" / "recording.npz", allow_pickle=False) as f:
    first = f["spike_steps"][:5].tolist(), f["spike_units"][:5].tolist()
print("first spikes (step, unit):", list(zip(*first)), "| dt =", meta["dt"], "s")

again = ns.simulation.Recording.load(workdir / "run")
assert np.array_equal(again.spike_units, rec.spike_units)

np.savez(workdir / "params.npz", **params)
loaded = ns.simulation.load_params(model, workdir / "params.npz")
assert all(np.array_equal(loaded[k], params[k]) for k in params)
print("recording and parameters reloaded identically")

# %% [markdown]
# ## NIR export
#
# [NIR](https://neuroir.org) is an exchange format for spiking networks, read by simulators
# (Norse, snnTorch, Lava, ...) and neuromorphic toolchains. `ns.io.to_nir` writes the LIF network
# as a graph `input → w_in → lif ⇄ w_rec → readout → output`; `ns.io.from_nir` reads it back. The
# round trip is exact: same parameters, same spikes.

# %%
import nir

graph = ns.io.to_nir(model, params)
nir.write(workdir / "network.nir", graph)
print("nodes:", sorted(graph.nodes), "| edges:", len(graph.edges))
model2, params2 = ns.io.from_nir(nir.read(workdir / "network.nir"))
xs = (np.random.default_rng(1).random((300, 1, 100)) < 0.02).astype(float)   # (T, B, n_in)
same = np.array_equal(model.run(params, xs).events, model2.run(params2, xs).events)
print("same spikes after the NIR round trip:", same)

# %% [markdown]
# ## The same network in Norse and Brian2
#
# The adapters translate the network into a Norse `LIFRecurrentCell` (PyTorch, float64) and into
# an explicit Brian2 `Network` (numpy code generation), with neurosnap's update order. Both must
# produce exactly the spikes of `model.run`.

# %%
T_cmp = 300 if SMOKE else 1000
xs = (np.random.default_rng(2).random((T_cmp, 1, 100)) < 0.02).astype(float)
traj = model.run(params, xs)
start = time.perf_counter()
norse_events, _ = na.simulate(model, params, xs)
t_norse = time.perf_counter() - start
start = time.perf_counter()
b2_events, b2_v = b2a.simulate(model, params, xs)
t_b2 = time.perf_counter() - start

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharey=True)
for ax, (name, events) in zip(axes, [("neurosnap", traj.events), ("Norse", norse_events),
                                     ("Brian2", b2_events)]):
    t_sp, unit = np.nonzero(np.asarray(events)[:, 0])
    ax.plot(t_sp, unit, "|", ms=2, color="k")
    ax.set(title=f"{name}: {len(t_sp):,} spikes", xlabel="time step (1 ms)", xlim=(0, T_cmp))
axes[0].set_ylabel("neuron")
fig.tight_layout()
plt.show()
print(f"identical spikes: Norse {bool(np.array_equal(norse_events, traj.events))} "
      f"({t_norse:.1f} s), Brian2 {bool(np.array_equal(b2_events, traj.events))} ({t_b2:.1f} s); "
      f"max |v_Brian2 - v| = {np.abs(b2_v - traj.states[:, :, 0]).max():.1e}")

# %% [markdown]
# The spike trains are identical and the membranes agree to round-off. Norse can also import the
# NIR graph itself (`norse.torch.from_nir(graph, dt=1e-3)`), which integrates NIR's continuous-time
# `CubaLIF` with the same Euler step (details and the float32 caveat in the
# [simulation guide](../docs/guide/simulation.md#nir-moving-a-network-to-other-tools)).
#
# ## Exercises
#
# 1. Run the simulation again without `out=`. Compare the memory it needs for `STEPS = 10**6`
#    (estimate: the spike lists plus `T × 5 × 2` state values) with a dense raster `T × N` of booleans.
# 2. Record the membranes of *all* neurons for 1,000 steps (`units=None`) and draw
#    `ns.plot.traces(rec, units=range(20))`. What fraction of the time is a typical membrane
#    within 0.1 of the threshold?
# 3. Change the input rate to 40 Hz. How do the mean rate and the ISI CV change?
# 4. Export with `readout=False`: which node is the graph's output now?
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. In memory, a recording holds three int arrays per spike (step, unit, batch: 8 + 4 + 4 bytes)
#    plus the states, `10**6 × 5 × 2 × 8` bytes = 80 MB, while a dense boolean raster would take
#    `10**6 × N` bytes (1 GB for 1,000 neurons). With `out=`, memory is bounded by one chunk and the
#    arrays are streamed to `recording.npz`.
# 2. `rec = ns.simulate(model, params, source, record=("events", "v"), steps=1000, units=None)`,
#    then `v = rec.states["v"][:, 0]` and `np.mean(np.abs(v - 1.0) < 0.1)`. About 3 % of the
#    time (at 20 Hz input, when this was written): the membranes spend most of it well below the threshold, and a spike is a rare
#    excursion, which is why surrogate gradients (non-zero only near the threshold) are sparse.
# 3. `ns.simulation.PoissonSource(rate_hz=40.0, ...)`. When this was written (1,000 neurons, 5 s):
#    the mean rate went from 9.1 to 22.9 Hz, more than doubling because the neurons sit closer to
#    the threshold, and the ISI CV rose from 2.2 to 3.0. One might expect a stronger drive to make
#    firing more regular, as it does for a single neuron with a constant current; here the extra
#    recurrent excitation makes the network burstier (population events, visible as vertical
#    stripes in the raster), which lengthens the tail of the ISI distribution.
# 4. `g = ns.io.to_nir(model, params, readout=False)`; the `lif` node feeds `output` directly, so
#    the graph's output is the spikes: `[e for e in g.edges if e[1] == "output"]` is
#    `[("lif", "output")]`.
#
# </details>
