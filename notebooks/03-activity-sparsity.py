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
# # Activity sparsity: events make exact RTRL cheaper
#
# **What you will learn**
#
# - what an *event* is in a threshold-gated unit (EGRU), and how few units emit one per step;
# - what the surrogate (pseudo-)derivative is, and how its width `ε` decides which silent units
#   still carry gradient;
# - why a unit outside the surrogate's support contributes a *zero column* to the state Jacobian
#   `J_t` and zero entries to the immediate influence `M̄_t`;
# - how much the exact sparse RTRL engine (`ns.rules.RTRL(sparse=True)`) saves by skipping those
#   columns, measured live, and that it gives *the same* gradient as dense RTRL.
#
# Background: [gates](../docs/theory/gates.md), [cells](../docs/theory/cells.md) and
# [RTRL](../docs/theory/rtrl.md) eq. (3) and (7). Set `NEUROSNAP_SMOKE=1` for small sizes.
#
# **Run time.** About 20 s at full size and about 15 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine. Open it with jupytext, or run
# `make notebooks` for an `.ipynb` copy (see [00](00-first-spiking-network.py)).

# %%
import os
import time

# One BLAS thread, so that the timings below measure work rather than thread scheduling.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"
rng = np.random.default_rng(0)
N_HIDDEN = 32 if SMOKE else 64
T = 40 if SMOKE else 100

# %% [markdown]
# ## Events
#
# An EGRU unit has a state `c`; when `c` crosses the threshold `θ` the unit emits an event
# `y = c` and `c` is reset by `θ`. Otherwise its output is exactly zero and nothing propagates to
# the other units. `model.run` returns the events of every step.

# %%
cell = ns.cells.EGRU(n_in=4, n_hidden=N_HIDDEN, threshold=0.3)
model = ns.Model(cell, n_out=2)
params = model.init(seed=0)
xs = rng.normal(size=(T, 1, cell.n_in))
traj = model.run(params, xs)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [2, 1]})
t_ev, unit_ev = np.nonzero(traj.events[:, 0])
axes[0].scatter(t_ev, unit_ev, s=4, marker="s", color="k")
axes[0].set(xlabel="time step", ylabel="unit", title="events", xlim=(0, T), ylim=(-1, N_HIDDEN))
for unit in range(3):
    axes[1].plot(traj.states[:, 0, 0, unit], lw=1, label=f"unit {unit}")
axes[1].axhline(cell.threshold, color="k", ls="--", lw=1, label=r"threshold $\theta$")
axes[1].set(xlabel="time step", ylabel="state c", title="state before the reset")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
print(f"fraction of units with an event per step: {traj.events.mean():.2f}")

# %% [markdown]
# ## The surrogate derivative and its width `ε`
#
# The step function has derivative zero almost everywhere, so learning rules use a
# pseudo-derivative `ψ` instead. EGRU's default is a triangle `γ max(0, 1 - |c - θ| / ε)`: it is
# **exactly zero** for units further than `ε` from the threshold. Those units are *silent* for the
# backward pass too. Smooth surrogates such as the fast sigmoid never vanish, so they give no
# backward sparsity at all.

# %%
x = np.linspace(-2, 2, 401)
fig, ax = plt.subplots(figsize=(6, 3))
for width in (0.1, 0.5, 1.0):
    ax.plot(x, ns.gates.Triangle(gamma=0.7, width=width)(x), label=rf"triangle, $\varepsilon$ = {width}")
ax.plot(x, ns.gates.FastSigmoid(gamma=0.7)(x), "k--", lw=1, label="fast sigmoid (no support limit)")
ax.set(xlabel=r"distance to threshold $c - \theta$", ylabel=r"$\psi$")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Every step record says which units are inside the support (`record.support`: events plus the
# units within `ε` of the threshold). Sweep `ε` and count:

# %%
widths = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]


def egru(width, density=1.0, n_hidden=N_HIDDEN):
    """An EGRU whose triangle surrogate has half-width ``width``."""
    gate = ns.gates.Heaviside(ns.gates.Triangle(gamma=0.7, width=width))
    return ns.Model(ns.cells.EGRU(n_in=4, n_hidden=n_hidden, density=density, gate=gate), n_out=2)


def support_fraction(net, net_params, inputs):
    """Mean fraction of units inside the surrogate's support, over steps and batch."""
    cp, state, fractions = net.cell_params(net_params), net.cell.initial_state(inputs.shape[1]), []
    for x_t in inputs:
        state, _, record = net.cell.step_record(cp, state, x_t)
        fractions.append(record.support.mean())
    return float(np.mean(fractions))


support = [support_fraction(egru(w), params, xs) for w in widths]
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogx(widths, support, "o-", label="inside the support")
ax.axhline(traj.events.mean(), color="k", ls="--", lw=1, label="events only")
ax.set(xlabel=r"surrogate width $\varepsilon$", ylabel="fraction of units", ylim=(0, 1.05))
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The events themselves do not depend on `ε` (the forward pass is the same); only the backward
# support grows with it, from the event fraction to every unit.
#
# ## Silent units zero Jacobian columns
#
# The recurrent part of `J_t` is `∂s_t[i]/∂s_{t-1}[j] = Σ_g drec[g, i] W_g[i, j] dout[j]`
# ([RTRL](../docs/theory/rtrl.md) eq. 3). `dout[j] = ∂y_{t-1}[j]/∂s_{t-1}[j]` is zero for a unit `j`
# outside the support, so its whole column vanishes except for its own diagonal entry (its leak).
# Likewise the immediate influence of a recurrent weight `W[i, j]` is proportional to the
# presynaptic event `y_{t-1}[j]`: zero for silent `j`.

# %%
small = egru(0.2)
cp = small.cell_params(params)
state = small.cell.initial_state(1)
for x_t in xs[:20]:
    state, _, record = small.cell.step_record(cp, state, x_t)
J = record.jac_state.to_dense()[0]
outside = ~record.jac_state.dout[0, 0].astype(bool)          # previous step's units with dout == 0
off_diagonal = J - np.diag(np.diag(J))
print(f"{outside.sum()} of {N_HIDDEN} units are outside the support at step t-1;"
      f" max |J_t| in their columns (diagonal excluded): {np.abs(off_diagonal[:, outside]).max():.1f}")

order = np.argsort(outside, kind="stable")                     # support first, silent last
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
axes[0].spy(J, markersize=2)
axes[0].set_title(r"non-zeros of $J_t$ (unit order)")
axes[1].spy(J[np.ix_(order, order)], markersize=2)
axes[1].axvline((~outside).sum() - 0.5, color="C3", lw=1)
axes[1].set_title("columns sorted: support | silent")
for ax in axes:
    ax.set(xlabel="column j (from unit j at t-1)", ylabel="row i")
fig.tight_layout()
plt.show()

# %% [markdown]
# RTRL's product `J_t M_{t-1}` only needs the rows of `M_{t-1}` that belong to units inside the
# support, plus the diagonal. With weight sparsity (`density < 1`) each of those rows is also
# multiplied only into the units it actually connects to. Both savings are exact: the skipped
# terms are zeros.
#
# ## Exact sparse RTRL, measured live
#
# `ns.rules.RTRL(sparse=True)` (the default) exploits this structure; `RTRL(sparse=False)` multiplies
# the dense `(S n × S n)` Jacobian. Same gradient, different cost. We time both on the same
# sequences for several surrogate widths, i.e. several support fractions, for a dense network
# and for one with 10 % of the recurrent weights.

# %%
steps = 12 if SMOKE else 30
seq = rng.normal(size=(steps, 1, 4))
target = rng.integers(0, 2, size=(steps, 1))


def measure(net, net_params, rule):
    """Best-of-3 wall-clock per step, the counted multiply-adds per step, and the gradient."""
    best = np.inf
    for repeat in range(3):
        start = time.perf_counter()
        _, grads = ns.sequence_grad(net, net_params, seq, target, rule)
        best = min(best, time.perf_counter() - start)
    _, _, stats = ns.sequence_grad(net, net_params, seq, target, rule, stats=True)   # counting is not timed
    return 1e3 * best / steps, stats["macs"], grads


ns.sequence_grad(egru(0.1), params, seq[:2], target[:2], ns.rules.RTRL())   # compile the kernels once
results = {}
for density in (1.0, 0.1):
    rows = []
    for width in widths[1::2]:
        net = egru(width, density)
        net_params = net.init(seed=0)
        sparse_ms, sparse_macs, g_sparse = measure(net, net_params, ns.rules.RTRL(sparse=True))
        dense_ms, dense_macs, g_dense = measure(net, net_params, ns.rules.RTRL(sparse=False))
        diff = max(np.abs(g_sparse[k] - g_dense[k]).max() for k in g_dense)
        frac = support_fraction(net, net_params, seq)
        rows.append((frac, dense_macs / sparse_macs, dense_ms / sparse_ms))
        print(f"density {density:3.1f}, eps {width:4.2f}: support {frac:.2f} | multiply-adds: dense "
              f"{dense_macs:9.3g}, sparse {sparse_macs:9.3g} | ms/step: dense {dense_ms:6.2f}, "
              f"sparse {sparse_ms:6.2f} | max |sparse - dense| = {diff:.1e}")
    results[density] = np.array(rows)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for k, (density, rows) in enumerate(results.items()):
    ax.plot(rows[:, 0], rows[:, 1], "o--", color=f"C{k}", label=f"density {density:g}: counted work")
    ax.plot(rows[:, 0], rows[:, 2], "s-", color=f"C{k}", label=f"density {density:g}: wall-clock")
ax.axhline(1, color="k", lw=1, ls=":")
ax.set(xlabel="fraction of units inside the surrogate's support", yscale="log",
       ylabel="dense / sparse", title=f"exact RTRL, EGRU n = {N_HIDDEN}: speed-up of the sparse engine")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The gradients agree to round-off in every case: the sparse engine is exact RTRL, not an
# approximation. The work it saves, counted by the rule itself, grows as the support shrinks and as
# the weights get sparser. The wall-clock speed-up follows the counted one only partly: at this size
# the fixed costs of a step (the cell, the immediate influence, Python) weigh in, and the dense
# product runs at the machine's BLAS speed. How large the speed-up is depends on the network size
# and on the machine; the
# [benchmarks](../docs/benchmarks.md) page has careful measurements across sizes.
#
# ## Exercises
#
# 1. Replace the triangle by `ns.gates.FastSigmoid()` (`ns.gates.Heaviside(ns.gates.FastSigmoid())`).
#    What happens to the support fraction and to the speed-up? Why?
# 2. Raise the EGRU `threshold` to 0.6. How do the event fraction and the support fraction change?
# 3. A narrow surrogate is cheap, but is it still useful? Train `egru(0.02)` and `egru(0.5)` on
#    `ns.tasks.Copy()` with `ns.train` for a few thousand steps and compare the levels reached.
# 4. For an LIF network (`ns.cells.LIF`), which entries of `J_t` survive for a silent neuron?
#    (It has two state variables, `v` and `i`; see [cells](../docs/theory/cells.md).)
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. The fast sigmoid's derivative `γ / (1 + slope |x|)^2` is never exactly zero: every unit is inside
#    the support at every step, the support fraction is 1, and the sparse engine has no column to
#    skip, so the speed-up disappears (it can even be slower than dense, from the bookkeeping).
#    Exact sparsity needs a surrogate with compact support (triangle, rectangle).
# 2. With the same inputs, fewer units cross a higher threshold: the event fraction falls. The
#    support fraction (units within the surrogate's width of the threshold) also falls, because
#    most internal states sit well below 0.6; the network becomes sparser and RTRL cheaper.
# 3. `ns.train(ns.Model(egru(0.02), ...), ns.rules.RTRL(), ns.optim.Adam(lr=0.01), ns.tasks.Copy(),
#    steps=5000)` against `egru(0.5)`. What to expect (not measured here): with a width of 0.02 almost no
#    unit is ever in the support, so almost no gradient flows through the recurrence and learning
#    stalls at low levels, while 0.5 learns. The useful width is a trade-off between cost (support fraction) and gradient signal.
# 4. A silent LIF neuron (outside the support) has a zero spike derivative, so its `v` column
#    vanishes in every *other* unit's rows: it influences nobody. Its own diagonal block survives:
#    `∂v_t/∂v_{t-1} = 1 - k_m`, `∂v_t/∂i_{t-1} = k_m`, `∂i_t/∂i_{t-1} = 1 - k_s` (the membrane
#    still leaks and integrates its current).
#
# </details>
