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
# # Your first spiking network
#
# **What you will learn**
#
# - what a leaky integrate-and-fire (LIF) neuron does with an input current: its membrane
#   potential, its threshold, its spikes and its reset;
# - how a population of neurons responds to random (Poisson) input spikes, seen as a spike raster
#   and as firing rates;
# - how an image becomes spikes (rate and latency coding) so that a spiking network can read it;
# - how to train a classifier on top of a fixed spiking network (a *readout*), and then how to train
#   the network's own weights *online*, while the data stream by.
#
# No knowledge of learning rules is assumed: this notebook is the entry point. The next ones open
# the machinery ([01: RTRL from scratch](01-rtrl-from-scratch.py)).
#
# **Run time.** About 1 minute at full size and about 20 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine.
#
# **Opening this file.** Notebooks are stored as plain Python files in the
# [jupytext](https://jupytext.readthedocs.io) "percent" format (`# %%` starts a cell). Open them
# directly in JupyterLab or VS Code with the jupytext extension, run them as scripts
# (`python notebooks/00-first-spiking-network.py`), or write `.ipynb` copies with `make notebooks`
# (into `notebooks/ipynb/`, which git ignores).

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"

# %% [markdown]
# ## 1. One neuron and a current
#
# The main variable of a LIF neuron is its membrane potential `v`. Without input, `v` leaks back to
# rest (0) with the membrane time constant `τ_mem`. Input arrives as a synaptic current `i` (the
# second variable), which itself decays with `τ_syn` and pushes `v` up. When `v` crosses the threshold `v_th = 1`, the neuron emits
# a spike (an *event*), and at the next step `v` is reset to 0. In discrete time, with a step
# `dt = 1 ms`:
#
#     i_t = (1 - dt/τ_syn) (i_{t-1} + w_in x_t)
#     v_t = v_{t-1} + dt/τ_mem (-v_{t-1} + i_{t-1} + w_in x_t),  spike if v_t > v_th, then reset
#
# (the exact order of operations is in [cells](../docs/theory/cells.md)). `ns.cells.LIF` with one
# neuron and one input is that neuron; `ns.Model` adds a readout we ignore for now. We switch the
# input on at 20 ms.

# %%
T = 200
neuron = ns.Model(ns.cells.LIF(n_in=1, n_hidden=1, dt=1e-3, tau_mem=20e-3, tau_syn=5e-3,
                               autapses=True), n_out=1, loss="mse")
params = neuron.init(seed=0)
params["cell.w_rec"][:] = 0.0          # no connection to itself
params["cell.w_in"][:] = 0.35          # the strength of the input current
x = np.zeros((T, 1, 1))                # inputs are always (time, batch, channels)
x[20:] = 1.0
run = neuron.run(params, x)
v, i = run.states[:, 0, 0, 0], run.states[:, 0, 1, 0]   # states: (time, batch, variable, neuron)
spikes = np.flatnonzero(run.events[:, 0, 0])

fig, (ax_v, ax_i) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1]})
ax_v.plot(v, label="membrane potential v")
ax_v.axhline(1.0, color="k", ls=":", label="threshold v_th")
ax_v.vlines(spikes, 1.1, 1.3, color="C3", label="spikes")
ax_v.set(ylim=(-0.1, 1.35), title="one LIF neuron, input switched on at 20 ms")
ax_v.legend(loc="upper left", fontsize=8)
ax_i.plot(i, color="C1")
ax_i.set(xlabel="time (ms)", ylabel="current i")
fig.tight_layout()
plt.show()
print(f"{len(spikes)} spikes, first at {spikes[0]} ms, then every {np.diff(spikes).mean():.1f} ms")

# %% [markdown]
# The membrane charges towards the level set by the current, crosses the threshold, spikes, is
# reset to 0 at the next step (the plot shows it just after that step's charging, hence slightly
# above 0) and charges again: a regular spike train. A stronger current charges it faster, so
# the neuron fires more often; a weak one never reaches the threshold. The firing rate as a
# function of the input strength is the neuron's *f-I curve*:

# %%
strengths = np.linspace(0.0, 1.0, 21 if SMOKE else 51)
many = ns.Model(ns.cells.LIF(n_in=1, n_hidden=len(strengths), dt=1e-3, tau_mem=20e-3,
                             tau_syn=5e-3), n_out=1, loss="mse")
p = many.init(seed=0)
p["cell.w_rec"][:] = 0.0                # independent neurons, one per strength
p["cell.w_in"][0, :, 0] = strengths
events = many.run(p, np.ones((1000, 1, 1))).events[:, 0]      # 1 s of constant input
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(strengths, events.sum(axis=0), "o-", ms=3)
ax.set(xlabel="input strength w_in", ylabel="spikes per second", title="f-I curve")
fig.tight_layout()
plt.show()

# %% [markdown]
# Up to `w_in = 0.2` the neuron is silent (with a constant input the membrane settles at
# `v = w_in τ_syn / dt = 5 w_in`, at or below the threshold); above, the rate grows with the input. This threshold nonlinearity is what
# makes a spiking neuron compute.
#
# ## 2. A population with random input spikes
#
# Real neurons receive spikes, not constant currents. Here 200 LIF neurons, sparsely connected to
# each other (10 % of the possible synapses), receive 50 input channels, each firing at random
# with probability 0.02 per millisecond (a Poisson train at 20 Hz). `ns.simulate` runs the network
# and records its spikes; `ns.plot` draws them.

# %%
n = 200
pop = ns.Model(ns.cells.LIF(n_in=50, n_hidden=n, density=0.1, dt=1e-3, tau_mem=20e-3,
                            tau_syn=5e-3, w_in_scale=6.0, w_rec_scale=2.0), n_out=1, loss="mse")
pop_params = pop.init(seed=0)
poisson = ns.simulation.PoissonSource(rate_hz=20.0, n=50, dt=1e-3, seed=0)
rec = ns.simulate(pop, pop_params, poisson, record=("events", "v"), steps=1000, units=[0, 1])

fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
ns.plot.raster(rec, ax=axes[0])
ns.plot.rate(rec, ax=axes[1])
fig.tight_layout()
plt.show()
counts = rec.spike_counts()
print(f"mean rate {counts.mean():.1f} Hz per neuron; {np.mean(counts == 0):.0%} of neurons silent; "
      f"busiest neuron {counts.max()} Hz")

# %% [markdown]
# Each dot of the raster is one spike (time, neuron). The activity is irregular and *sparse*: most
# neurons fire a few spikes per second, some not at all. That sparsity is what event-driven
# simulation and learning exploit: a silent neuron sends nothing and costs (almost) nothing.
#
# ## 3. An image as spikes
#
# A spiking network reads spikes, so data must be *encoded*. `ns.tasks.SpikingDigits` holds 5,000
# real handwritten digits (MNIST); `ns.encode` turns any intensities in `[0, 1]` into spike trains
# with time first:
#
# - **rate coding**: each pixel fires at random, more often when it is brighter;
# - **latency coding**: each pixel fires once, earlier when it is brighter; dark pixels stay silent.

# %%
digits = ns.tasks.SpikingDigits(downsample=2, encoding="analog", steps=1)   # 14 x 14 images
image = digits.images[0]
rate_spikes = ns.encode.rate(image.ravel(), steps=30, rng=0, gain=0.5)      # (30, 196)
latency_spikes = ns.encode.latency(image.ravel(), steps=30, threshold=0.1)

fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), gridspec_kw={"width_ratios": [1, 2, 2]})
axes[0].imshow(image, cmap="gray_r")
axes[0].set(title=f"label {digits.labels[0]}", xticks=[], yticks=[])
for ax, s, name in [(axes[1], rate_spikes, "rate code"), (axes[2], latency_spikes, "latency code")]:
    t_sp, pixel = np.nonzero(s)
    ax.scatter(t_sp, pixel, s=8, marker="|", color="k")
    ax.set(title=f"{name}: {int(s.sum())} spikes", xlabel="time step", ylabel="pixel",
           ylim=(196, -1))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Training a readout
#
# Take a spiking network with *random, fixed* weights, show it digits as rate-coded spikes, and
# count the spikes of each neuron: every image becomes a vector of `n` counts. A *readout* is a
# linear classifier on that vector. Training it is ordinary logistic regression: no spikes are
# involved in the learning, and the network itself does not change. (This is the idea of
# "reservoir computing" or a "liquid state machine".)

# %%
task = ns.tasks.SpikingDigits(downsample=4, steps=10, gain=0.5)       # 7 x 7 images, 10 steps
n_train, n_test = (400, 300) if SMOKE else (4000, 1000)
net = ns.Model(ns.cells.LIF(n_in=task.n_in, n_hidden=64, dt=1e-3, tau_mem=20e-3, tau_syn=5e-3,
                            w_in_scale=15.0), n_out=10)
net_params = net.init(seed=0)


def spike_counts(split, size):
    """Spike counts (size, 64) of the fixed network on the first images of a split."""
    batch = task.split(split, size)                  # xs: (10 steps, size, 49 inputs)
    return net.run(net_params, batch.xs).events.sum(axis=0).astype(float), batch.ys[-1]


X_train, y_train = spike_counts("train", n_train)
X_test, y_test = spike_counts("test", n_test)
scale = X_train.std() + 1e-9
W, b = np.zeros((64, 10)), np.zeros(10)
for epoch in range(300):                             # plain gradient descent on cross-entropy
    logits = X_train / scale @ W + b
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(n_train), y_train] -= 1.0         # d(loss)/d(logits)
    W -= 0.5 * (X_train / scale).T @ prob / n_train
    b -= 0.5 * prob.mean(axis=0)
readout_acc = np.mean((X_test / scale @ W + b).argmax(axis=1) == y_test)
print(f"mean spike count per neuron and image: {X_train.mean():.2f}")
print(f"readout on a fixed random network: test accuracy {readout_acc:.2f} (chance 0.10)")

# %% [markdown]
# Well above chance: the random network already separates the digits somewhat, and a linear
# readout exploits it. But the network was not shaped for the task.
#
# ## 5. Training the network's weights, online
#
# To train the input and recurrent weights as well, we need each weight's share of the error, through
# the spikes and through time. `ns.train` does this *online*: the sequence is processed step by step,
# each weight keeps a small running trace of how it influenced its neuron (an *eligibility trace*),
# and the readout's error at each step is projected onto these traces. Nothing of the past is
# stored. The rule here is e-prop ([Bellec et al. 2020](../docs/theory/eprop.md)); the spike's
# derivative, which does not exist, is replaced by a smooth *surrogate* near the threshold.
#
# The loss counts at every step of the 10-step image; the decision is the class with the largest
# summed readout. One update per batch of 16 images.

# %%
updates = 60 if SMOKE else 400
history = ns.train(net, ns.rules.EProp(), ns.optim.Adam(lr=0.03), task, steps=updates * task.T,
                   update_every=task.T, batch_size=16, seed=0, params=net_params)
trained = task.evaluate(net, history.params)

fig, ax = plt.subplots(figsize=(6.5, 3.2))
acc = history.column("accuracy")
smooth = np.convolve(acc, np.ones(10) / 10, mode="valid")
ax.plot(np.arange(len(smooth)) + 10, smooth, label="training batches (running mean)")
ax.axhline(trained["test_accuracy"], color="C1", ls="--",
           label=f"test, trained network: {trained['test_accuracy']:.2f}")
ax.axhline(readout_acc, color="C2", ls=":", label=f"test, readout only: {readout_acc:.2f}")
ax.axhline(0.1, color="k", lw=0.8, label="chance")
ax.set(xlabel="update (batch of 16 images)", ylabel="accuracy", ylim=(0, 1),
       title="LIF network, 64 neurons, trained online with e-prop")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# At full size both reach about the same test accuracy (0.66 each when this was written): with
# 7 × 7 images and 64 neurons, a random spiking network is already a good feature map, and the
# two are trained very differently. The readout was fitted offline, with 300 passes of gradient
# descent over 4,000 stored images; the network was trained online, each image seen once, from
# noisy spike trains, with nothing stored. The decision of the trained network is a readout of
# summed spikes too, so it can only win by making the spikes more informative, which takes more
# than 400 small updates here. How the online rules (exact RTRL, its approximations, e-prop, RFLO)
# compare with BPTT on the same data is measured in
# [results on real data](../docs/results/real-data.md).
#
# Where to go next: [01](01-rtrl-from-scratch.py) derives the exact online gradient (RTRL) that e-prop
# approximates; [04](04-spiking.py) compares rules on spiking networks; [06](06-simulate-record-export.py)
# simulates, records and exports networks.
#
# ## Exercises
#
# 1. In section 1, find the smallest `w_in` that makes the neuron fire. Compare with the value
#    predicted from the steady state `v = w_in τ_syn / dt` (why this formula?).
# 2. Double `tau_mem` of the population in section 2. What happens to the rate, and why?
# 3. Train the readout of section 4 on latency-coded digits (`encoding="latency"`). Which code
#    works better for a readout of spike *counts* here, and why is that surprising at first?
# 4. Replace `ns.rules.EProp()` by `ns.rules.RTRL()` in section 5. Is it better, and how much
#    slower is one update?
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. With constant input `x = 1` the current converges to `i = w_in (1 - k_s) / k_s` and the
#    membrane to `v = i + w_in = w_in / k_s` with `k_s = dt/τ_syn = 0.2`, i.e. `v = 5 w_in`.
#    The neuron fires when this exceeds `v_th = 1`: `w_in > 0.2`. Check with
#    `strengths[events.sum(axis=0) > 0].min()` on the f-I curve (the first strength above 0.2).
# 2. The rate drops (from about 9.5 to 3.6 Hz when this was written, and half of the neurons fall
#    silent). In this model the membrane's steady state for a constant current does not depend on
#    `τ_mem` (`v` relaxes towards the synaptic current), so the mean drive is unchanged; but the neurons sit below the threshold on
#    average and fire on *fluctuations* of their input. A longer `τ_mem` averages the random input
#    spikes over a longer window, which smooths these fluctuations away, and the membrane also
#    charges more slowly after each reset. Fewer threshold crossings follow.
# 3. `task = ns.tasks.SpikingDigits(downsample=4, steps=10, gain=0.5, encoding="latency")`.
#    Latency coding sends far fewer spikes (the fixed network fires about 0.3 spikes per neuron
#    and image instead of 1.0) but it is *deterministic*: an image always produces the same input
#    spikes, whereas the rate code adds Poisson noise to every presentation. With 2,000 training
#    images the readout reached about 0.77 on latency-coded digits and 0.64 on rate-coded ones
#    when this was written. A rate code needs longer presentations (`steps=50`) to average its
#    noise out; a latency code puts the information in spike *times*, and a readout of counts
#    still sees it because early spikes drive the network differently from late ones.
# 4. `ns.rules.RTRL()` computes the exact gradient. On this task it reaches about the same test
#    accuracy as e-prop (the study in [results on real data](../docs/results/real-data.md) finds
#    e-prop and exact RTRL within the seed-to-seed spread on these digits), but each step costs
#    `O(n^2 P)` operations for the influence matrix instead of e-prop's `O(P)`: with 64 neurons and
#    `P ≈ 7,000` weights, RTRL is two to three orders of magnitude slower per step. Time a few
#    updates of each (`time.perf_counter()` around `ns.train(..., steps=5 * task.T)`) rather than a
#    full run.
#
# </details>
