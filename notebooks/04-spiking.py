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
# # Spiking networks: LIF, ALIF, and e-prop vs RTRL vs BPTT
#
# **What you will learn**
#
# - how neurosnap's leaky integrate-and-fire neuron (`ns.cells.LIF`) and its adaptive version
#   (`ns.cells.ALIF`) integrate input, spike and reset, and what adaptation does to a spike train;
# - how to read a spiking task (evidence accumulation, from the e-prop paper) as input spike trains,
#   targets and a loss mask;
# - how e-prop's gradient compares with the exact one (RTRL = BPTT) on a spiking network, and why
#   it differs;
# - how the three rules compare when they train the same network online.
#
# Background: [cells](../docs/theory/cells.md) (LIF/ALIF equations), [e-prop](../docs/theory/eprop.md),
# [BPTT](../docs/theory/bptt.md), [RTRL](../docs/theory/rtrl.md). Set `NEUROSNAP_SMOKE=1` for small sizes.
#
# **Run time.** About 1 minute at full size and about 20 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine. Open it with jupytext, or run
# `make notebooks` for an `.ipynb` copy (see [00](00-first-spiking-network.py)).

# %%
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"
rng = np.random.default_rng(0)

# %% [markdown]
# ## One step of a LIF neuron
#
# Each LIF neuron has two state variables: the membrane potential `v` and the synaptic current
# `i`. One step (forward Euler, `k_m = dt/τ_mem`, `k_s = dt/τ_syn`) resets the neurons that spiked at
# the previous step, adds the input to the current, integrates the membrane and decays the current;
# a neuron spikes when `v` crosses `v_th`. Drive three neurons with a constant input of different
# strengths (the input weights are the strengths) and look at the membranes.

# %%
T = 150
lif = ns.Model(ns.cells.LIF(n_in=1, n_hidden=3, dt=1e-3, tau_mem=2e-2, tau_syn=5e-3), n_out=2)
lif_params = lif.init(seed=0)
lif_params["cell.w_rec"][:] = 0.0                      # isolated neurons
lif_params["cell.w_in"][0, :, 0] = [0.15, 0.3, 0.6]    # input strength per neuron
drive = np.zeros((T, 1, 1))
drive[20:] = 1.0
run = lif.run(lif_params, drive)

fig, axes = plt.subplots(3, 1, figsize=(9, 5), sharex=True)
for k, ax in enumerate(axes):
    ax.plot(run.states[:, 0, 0, k], lw=1, label="membrane v")
    ax.plot(run.states[:, 0, 1, k], lw=1, label="current i")
    spikes = np.flatnonzero(run.events[:, 0, k])
    ax.vlines(spikes, -0.6, -0.2, color="k", lw=1)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set_ylabel(f"w_in = {lif_params['cell.w_in'][0, k, 0]}")
axes[0].legend(loc="upper left", fontsize=8)
axes[-1].set_xlabel("time step (1 ms)")
fig.suptitle("LIF: constant input from step 20; ticks are spikes, dotted line the threshold")
fig.tight_layout()
plt.show()

# %% [markdown]
# The current settles where its decay balances the input, `i = w_in (1 - k_s) / k_s`, and the
# membrane at `v = i + w_in = w_in / k_s` (here `k_s = 0.2`): the weakest input (`v → 0.75`) never
# reaches the threshold, stronger inputs fire regularly, faster for a stronger drive.
#
# ## Adaptation
#
# An ALIF neuron adds a third state variable `a` that jumps at every spike and decays with
# `τ_adapt`; the effective threshold is `v_th + β a`. Under the same constant drive it fires fast at
# first and then slows down: spike-frequency adaptation, a memory that outlasts the membrane's
# 20 ms time constant.

# %%
alif = ns.Model(ns.cells.ALIF(n_in=1, n_hidden=2, dt=1e-3, tau_mem=2e-2, tau_syn=5e-3,
                              tau_adapt=0.2, beta=1.0), n_out=2)
alif_params = alif.init(seed=0)
alif_params["cell.w_rec"][:] = 0.0
alif_params["cell.w_in"][0, :, 0] = 2.0
run = alif.run(alif_params, drive)
v, a = run.states[:, 0, 0, 0], run.states[:, 0, 2, 0]

fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(v, lw=1, label="membrane v")
ax.plot(1.0 + alif.cell.beta * a, lw=1.5, label=r"threshold $v_{th} + \beta a$")
ax.vlines(np.flatnonzero(run.events[:, 0, 0]), -1.0, -0.3, color="k", lw=1)
ax.set(xlabel="time step (1 ms)", title="ALIF under constant drive")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()
isi = np.diff(np.flatnonzero(run.events[:, 0, 0]))
print("inter-spike intervals (steps):", isi)

# %% [markdown]
# ## A spiking task: evidence accumulation
#
# `ns.tasks.Evidence` is the cue-accumulation task of the e-prop paper: cues arrive from the left or
# the right (Poisson spikes of two input groups), then after a delay a recall cue asks which side
# had more cues. The loss mask is on only during the recall window. `Evidence.small()` is a short
# version (`dt` = 10 ms, 3 cues).

# %%
task = ns.tasks.Evidence.small()
batch = task.sample(np.random.default_rng(1), 1)
fig, ax = plt.subplots(figsize=(9, 3))
t_in, ch = np.nonzero(batch.xs[:, 0])
ax.scatter(t_in, ch, s=6, marker="|", color="k")
recall = np.flatnonzero(batch.mask[:, 0])
ax.axvspan(recall[0] - 0.5, recall[-1] + 0.5, color="C1", alpha=0.3, label="loss mask (recall)")
ax.set(xlabel="time step (10 ms)", ylabel="input channel",
       title=f"one trial; groups: left, right, recall cue, noise; target = {batch.ys[recall[0], 0]}"
             " (0 = left, 1 = right)")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Three gradients for the same network
#
# A recurrent ALIF network reads the task. At fixed weights, compute the gradient of the loss over
# a batch of trials with three rules:
#
# - `ns.rules.BPTT()`: backpropagation through time, exact;
# - `ns.rules.RTRL()`: real-time recurrent learning, exact and online;
# - `ns.rules.EProp()`: e-prop, online and local: each synapse keeps an eligibility trace that
#   follows its own postsynaptic neuron only, ignoring the paths through other neurons.
#
# All three use the same pseudo-derivative for the spikes (a triangle, see
# [gates](../docs/theory/gates.md)).

# %%
def network(cell_type, n_hidden=24, w_rec_scale=1.0):
    """A recurrent LIF/ALIF network for the evidence task, time constants in seconds."""
    kwargs = dict(n_in=task.n_in, n_hidden=n_hidden, dt=task.dt, tau_mem=0.02, tau_syn=0.02,
                  w_in_scale=3.0, w_rec_scale=w_rec_scale)
    if cell_type is ns.cells.ALIF:
        kwargs.update(tau_adapt=0.5, beta=0.5)
    return ns.Model(cell_type(**kwargs), n_out=2)


def cosine(g, h):
    """Cosine similarity of two gradient dicts, over the cell's parameters."""
    a = np.concatenate([g[k].ravel() for k in g if k.startswith("cell.")])
    b = np.concatenate([h[k].ravel() for k in h if k.startswith("cell.")])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


batch = task.sample(np.random.default_rng(2), 8)
net = network(ns.cells.ALIF)
net_params = net.init(seed=0)
grads = {name: ns.sequence_grad(net, net_params, batch.xs, batch.ys, rule, mask=batch.mask)[1]
         for name, rule in [("BPTT", ns.rules.BPTT()), ("RTRL", ns.rules.RTRL()),
                            ("e-prop", ns.rules.EProp()),
                            ("e-prop, random feedback", ns.rules.EProp(feedback="random"))]}
exact = grads["BPTT"]
print(f"max |RTRL - BPTT| = {max(np.abs(grads['RTRL'][k] - exact[k]).max() for k in exact):.1e}")
for name in ("e-prop", "e-prop, random feedback"):
    print(f"cosine({name}, BPTT) = {cosine(grads[name], exact):.3f}")

# %% [markdown]
# RTRL and BPTT agree to round-off. E-prop's gradient points in nearly the same direction but is not
# the same: it drops the terms of the exact gradient that travel through the recurrent weights
# ([e-prop](../docs/theory/eprop.md) eq. 5). With random feedback weights the learning signal is not
# the readout's own at all: at initialisation its direction is unrelated to the gradient, and
# learning works only because the readout comes to align with the feedback.
#
# How much do the dropped terms matter? They grow with the strength of the recurrence: scale the
# initial recurrent weights and watch the cosine between e-prop and the exact gradient.

# %%
scales = [0.5, 2.0, 8.0] if SMOKE else [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
fig, ax = plt.subplots(figsize=(6, 3.4))
for cell_type in (ns.cells.LIF, ns.cells.ALIF):
    cosines = []
    for scale in scales:
        net = network(cell_type, w_rec_scale=scale)
        net_params = net.init(seed=0)
        g = ns.sequence_grad(net, net_params, batch.xs, batch.ys, ns.rules.EProp(), mask=batch.mask)[1]
        h = ns.sequence_grad(net, net_params, batch.xs, batch.ys, ns.rules.BPTT(), mask=batch.mask)[1]
        cosines.append(cosine(g, h))
    ax.semilogx(scales, cosines, "o-", label=cell_type.__name__)
ax.set(xlabel="recurrent weight scale (w_rec_scale)", ylabel="cosine(e-prop, exact)",
       title="e-prop vs the exact gradient")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Training online with each rule
#
# Now train the same ALIF network with each rule, with Adam, weights updated once per trial
# (`update_every` = trial length; with that setting RTRL and BPTT produce identical weight
# trajectories, while e-prop follows its own).

# %%
batches = 30 if SMOKE else 200
batch_size = 4 if SMOKE else 8
T_trial = task.sample(np.random.default_rng(0), 1).xs.shape[0]
histories, walls = {}, {}
for name, rule in [("e-prop", ns.rules.EProp()), ("RTRL", ns.rules.RTRL()), ("BPTT", ns.rules.BPTT())]:
    net = network(ns.cells.ALIF)
    start = time.perf_counter()
    histories[name] = ns.train(net, rule, ns.optim.Adam(lr=0.01), task, steps=batches * T_trial,
                               update_every=T_trial, batch_size=batch_size, seed=0)
    walls[name] = time.perf_counter() - start
    held_out = task.evaluate(net, histories[name].params)
    print(f"{name:7s} {walls[name]:5.1f} s, held-out accuracy {held_out['test_accuracy']:.2f}")

# %%
def smooth(values, width=10):
    """Running mean, same length (shorter windows at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - width)
    return (c[idx] - c[lo]) / (idx - lo)


fig, ax = plt.subplots(figsize=(7, 3.6))
for k, (name, history) in enumerate(histories.items()):
    ax.plot(history.column("step") / T_trial, smooth(history.column("accuracy")), lw=2 - 0.5 * k,
            ls=["-", "-", "--"][k], label=f"{name} ({walls[name]:.0f} s)")
ax.axhline(0.5, color="k", lw=1, ls=":", label="chance")
ax.set(xlabel="trials (batches)", ylabel="accuracy (running mean)", ylim=(0.3, 1.02),
       title="ALIF network, evidence accumulation")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# RTRL and BPTT lie on top of each other (the dashed line hides the other one): same gradients,
# same updates. E-prop learns too, typically a bit more slowly. The costs differ: BPTT stores the
# whole trial and needs it before any update; RTRL is online but keeps an `S n × P` influence per
# sequence; e-prop is online and keeps only `S × P` eligibility values.
#
# ## Exercises
#
# 1. Set `update_every=1` for RTRL and e-prop: the weights then change at every step, fully online.
#    BPTT cannot do that (why?). How do the learning curves change?
# 2. Replace the ALIF network by LIF. Which rule suffers most on this task, and why does
#    adaptation help to carry evidence across the delay?
# 3. Set `params["cell.w_rec"][:] = 0` before computing the three gradients. What is
#    `cosine(e-prop, BPTT)` now? (See the reductions in [e-prop](../docs/theory/eprop.md).)
# 4. Try `ns.tasks.StoreRecall.small()` with the same network and rules.
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. With `update_every=1` RTRL and e-prop change the weights at every step of the trial; the
#    curves are similar per trial, a little noisier, and need a smaller learning rate to stay
#    stable. BPTT cannot: its gradient exists only after the backward pass over the trial (or a
#    truncation window), so it updates at those boundaries whatever `update_every` says.
# 2. `ns.cells.LIF(...)` (drop `tau_adapt`, `beta`). A LIF neuron forgets within `τ_mem` (tens of
#    ms), far shorter than the one-second delay: the evidence must be held by recurrent activity.
#    Expect e-prop to suffer most (not measured here), because it ignores the recurrent paths
#    that now carry the memory, which RTRL and BPTT use. Adaptation (`τ_a` of seconds) stores a trace of past spiking inside
#    each neuron, which every rule, including e-prop, can exploit.
# 3. With no recurrent weights the only path through time is each unit's own state, which e-prop
#    keeps exactly: its gradient equals BPTT's and the cosine is 1 up to round-off
#    ([e-prop](../docs/theory/eprop.md) eq. 6).
# 4. `task = ns.tasks.StoreRecall.small()`, the same `ns.Model(ns.cells.ALIF(task.n_in, ...),
#    task.n_out)` and the same three `ns.train` calls; report `history.final("accuracy")` and
#    `task.evaluate(model, history.params)["test_accuracy"]`. Store-recall needs a memory over
#    several periods, which again favours adaptation.
#
# </details>
