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
# # One network, three simulators: neurosnap, Brian2 and Norse
#
# **What you will learn**
#
# - how to run the same LIF network in neurosnap, in [Brian2](https://brian2.readthedocs.io) and
#   in [Norse](https://norse.github.io/norse/) through `neurosnap.adapters`, and check that the
#   three produce the same spikes;
# - that the exact gradient from neurosnap's RTRL equals Norse's autograd through its own LIF step;
# - how spike-timing-dependent plasticity (STDP) computed by neurosnap matches Brian2's
#   Song/Abbott synapses, and how an STDP weight change differs from a gradient step.
#
# The adapters and what each simulator can express are described in [Adapters](../docs/adapters.md).
# Brian2 and Norse are optional dependencies (`pip install -e ".[brian2,norse]"`; `make test`
# installs both). Set `NEUROSNAP_SMOKE=1` for small sizes.
#
# **Run time.** About 30 s at full size and about 20 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine. Open it with jupytext, or run
# `make notebooks` for an `.ipynb` copy (see [00](00-first-spiking-network.py)).

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns
from neurosnap.adapters import brian2 as b2a
from neurosnap.adapters import norse as na

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"
T = 200 if SMOKE else 1000

# %% [markdown]
# ## The network
#
# 30 current-based LIF neurons, 20 % recurrent connectivity, 6 Poisson input channels (5 % spike
# probability per 1 ms step) and a 3-way readout. The defaults of `ns.cells.LIF` (reset to zero,
# no gradient through the reset, no bias, triangle surrogate) are expressible in both simulators.

# %%
model = ns.Model(ns.cells.LIF(n_in=6, n_hidden=30, density=0.2, w_in_scale=25.0), n_out=3)
params = model.init(seed=0)
xs = (np.random.default_rng(0).random((T, 1, 6)) < 0.05).astype(float)   # (time, batch, inputs)

# %% [markdown]
# ## Three simulations
#
# - neurosnap: `model.run(params, xs)`;
# - Brian2: `b2a.simulate(model, params, xs)` builds an explicit `brian2.Network` (numpy code
#   generation, nothing to compile), runs it and returns spikes and membranes;
# - Norse: `na.simulate(model, params, xs)` runs a `norse.torch.LIFRecurrentCell` with the same
#   float64 weights.

# %%
traj = model.run(params, xs)
b2_events, b2_v = b2a.simulate(model, params, xs)
norse_events, _ = na.simulate(model, params, xs)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, (name, events) in zip(axes, [("neurosnap", traj.events), ("Brian2", b2_events),
                                     ("Norse", norse_events)]):
    t_sp, unit = np.nonzero(np.asarray(events)[:, 0])
    ax.scatter(t_sp, unit, s=3, marker="|", color="k")
    ax.set(title=f"{name}: {len(t_sp)} spikes", xlabel="time step (1 ms)", xlim=(0, T))
axes[0].set_ylabel("neuron")
fig.tight_layout()
plt.show()

print("identical spike trains, Brian2:", bool((b2_events == traj.events).all()),
      " Norse:", bool((np.asarray(norse_events) == traj.events).all()))
print(f"max |v_Brian2 - v_neurosnap| = {np.abs(b2_v - traj.states[:, :, 0]).max():.1e}")

# %% [markdown]
# The spikes are identical, and the membranes agree to round-off (Brian2 sums synaptic inputs one
# synapse at a time, neurosnap with a matrix product). This is not a coincidence of parameters:
# the adapters map neurosnap's update order onto Brian2's schedule and Norse's `lif_step` exactly,
# and refuse configurations that a simulator cannot express, for example:

# %%
for bad in (ns.cells.LIF(n_in=6, n_hidden=30, reset="subtract"), ns.cells.ALIF(n_in=6, n_hidden=30)):
    try:
        na.check_expressible(ns.Model(bad, n_out=3))
    except ValueError as error:
        print("Norse:", error)

# %% [markdown]
# ## Gradients: RTRL against Norse's autograd
#
# Norse differentiates its LIF step with PyTorch's autograd (BPTT), using the same triangle
# surrogate. neurosnap's RTRL computes the gradient forwards, online, from the cells' own
# Jacobians. They are the same number:

# %%
T_grad = 100 if SMOKE else 300
ys = np.random.default_rng(1).integers(0, 3, size=(T_grad, 1))
mask = np.ones((T_grad, 1), dtype=bool)
_, g_norse = na.sequence_grad(model, params, xs[:T_grad], ys, mask)
_, g_rtrl = ns.sequence_grad(model, params, xs[:T_grad], ys, ns.rules.RTRL(), mask=mask)
for key in g_rtrl:
    print(f"{key:15s} max |Norse autograd - neurosnap RTRL| = {np.abs(g_norse[key] - g_rtrl[key]).max():.1e}")

# %% [markdown]
# ## STDP in neurosnap and in Brian2
#
# `ns.rules.STDP` is pair-based, additive STDP with exponential traces. It follows the same
# contract as the gradient rules and returns `-Δw` as its "gradient", so that
# `-ns.sequence_grad(...)` is the weight change accumulated over a sequence with fixed weights.
# Brian2 computes the same change with classic Song/Abbott synapses
# (`b2a.to_network(..., stdp=rule)`).

# %%
stdp = ns.rules.STDP(tau_pre=0.02, tau_post=0.02, a_plus=0.01, a_minus=0.0105, decay="exp")
_, minus_dw = ns.sequence_grad(model, params, xs, np.zeros((T, 1), dtype=int), stdp)
net = b2a.to_network(model, params, xs, stdp=stdp)
b2a.run(net, model, T)
brian_dw = b2a.stdp_updates(net, model)
for key in ("cell.w_rec", "cell.w_in"):
    print(f"{key:11s} max |Δw Brian2 - Δw neurosnap| = {np.abs(brian_dw[key] + minus_dw[key]).max():.1e}")

# %% [markdown]
# ### The STDP window
#
# Pair one presynaptic spike with one postsynaptic spike at a controlled lag: input channel 0 is
# the presynaptic neuron (its weight is what we measure), input channel 1 forces the postsynaptic
# neuron to fire exactly once, in the same step (its synaptic current lasts one step:
# `tau_syn = dt`). Sweep the lag `t_post - t_pre`.

# %%
probe = ns.Model(ns.cells.LIF(n_in=2, n_hidden=2, tau_mem=0.02, tau_syn=1e-3), n_out=2)
probe_params = probe.init(seed=0)
probe_params["cell.w_rec"][:] = 0.0
probe_params["cell.w_in"][0] = [[0.0, 50.0], [0.0, 0.0]]  # channel 1 makes neuron 0 fire, once
lags = np.arange(-40, 41, 4 if SMOKE else 1)
window = []
for lag in lags:
    x = np.zeros((120, 1, 2))
    x[60, 0, 0] = 1.0                                       # presynaptic spike
    x[60 + lag, 0, 1] = 1.0                                 # drives the postsynaptic spike
    _, g = ns.sequence_grad(probe, probe_params, x, np.zeros((120, 1), dtype=int), stdp)
    window.append(-g["cell.w_in"][0, 0, 0])

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(lags, window, "o-", ms=3)
ax.axhline(0, color="k", lw=1)
ax.axvline(0, color="k", lw=1, ls=":")
ax.set(xlabel=r"$t_{post} - t_{pre}$ (ms)", ylabel=r"$\Delta w$", title="pair-based STDP window")
fig.tight_layout()
plt.show()

# %% [markdown]
# Pre before post potentiates, post before pre depresses, both fading with the trace time constant
# (20 ms). At lag 0 both terms count and nearly cancel (`a_minus` is slightly larger).
#
# ## STDP vs gradient rules
#
# STDP changes a weight from the spike timing of its two neurons only; it does not know the task.
# A gradient rule changes it to reduce a loss. Compare, on the Poisson-driven network and a random
# classification target, the STDP change with the negative loss gradient (exact, from RTRL) and with
# e-prop's online approximation of it.

# %%
_, g_eprop = ns.sequence_grad(model, params, xs[:T_grad], ys, ns.rules.EProp(), mask=mask)
_, g_stdp = ns.sequence_grad(model, params, xs[:T_grad], ys, stdp, mask=mask)
exact = -g_rtrl["cell.w_rec"][0]
candidates = {"exact: -gradient (RTRL)": exact, "e-prop: -gradient estimate": -g_eprop["cell.w_rec"][0],
              "STDP: Δw": -g_stdp["cell.w_rec"][0]}


def cosine(a, b):
    """Cosine similarity of two weight-change matrices."""
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, (name, change) in zip(axes, candidates.items()):
    limit = np.abs(change).max()
    image = ax.imshow(np.where(model.cell.mask, change, np.nan), cmap="RdBu_r", vmin=-limit,
                      vmax=limit)
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight change")
    ax.set(title=f"{name}\ncosine to exact: {cosine(change, exact):.2f}",
           xlabel="presynaptic neuron", ylabel="postsynaptic neuron")
fig.tight_layout()
plt.show()

# %% [markdown]
# E-prop's update points almost where the exact gradient points; STDP's is unrelated to this loss
# (its cosine to the gradient is near zero and can have either sign). Reward-modulated STDP
# (`ns.rules.RSTDP`) gates the same pair term with a reward signal: it follows the loss only on
# average, with a much noisier estimate.
#
# ## Exercises
#
# 1. Make the network bigger (`n_hidden=200`) and use `target="cython"` in `b2a.simulate`. How long
#    does the first run take, and the second? (Brian2 caches compiled code.)
# 2. Change `reset="subtract"` in the LIF cell. Which simulators can still run it?
# 3. Make STDP symmetric (`a_minus = a_plus`) or depression-dominated (`a_minus = 1.5 a_plus`):
#    how does the STDP window change, and what happens to the total weight of the network under a
#    long Poisson drive?
# 4. Compute the R-STDP update (`ns.rules.RSTDP(...)`) for many random input draws and average:
#    does its cosine with the exact gradient improve with the number of draws?
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. `b2a.simulate(big, big_params, xs, target="cython")`: the first run generates and compiles C++
#    code for every Brian2 object (tens of seconds on a busy machine); the second reuses the
#    compiled objects from Brian2's cache (well under a second). The numpy target needs no
#    compiler and is used in the tests.
# 2. `ns.cells.LIF(..., reset="subtract")`: Brian2 still runs it (its reset statement becomes
#    `v -= v_th`; the adapter expresses any reset), Norse refuses it (`na.check_expressible` names
#    the reset: Norse's LIF resets to `v_reset`), and neurosnap itself runs and trains it.
# 3. The window is `A+ exp(-Δt/τ+)` for pre-before-post and `-A- exp(Δt/τ-)` for post-before-pre.
#    Symmetric amplitudes give equal lobes; with `a_minus = 1.5 a_plus` the depression lobe is
#    larger and the window's integral negative. Under uncorrelated Poisson drive the expected
#    change is proportional to that integral: symmetric STDP lets the total weight drift, the
#    depression-dominated window pulls it down and keeps it bounded (Song, Miller & Abbott 2000).
# 4. Average the R-STDP update over many input draws and compare with the exact gradient. The
#    noise of a single draw averages out, but R-STDP is not an unbiased estimator of the
#    gradient, so expect the cosine to rise at first and then level off below 1 (not measured
#    here).
#
# </details>
