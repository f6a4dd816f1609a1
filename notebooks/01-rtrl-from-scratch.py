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
# # RTRL from scratch
#
# **What you will learn**
#
# - what the *influence matrix* `M_t = ds_t/dθ` of a recurrent network is, and how it is laid out
#   in neurosnap (rows: state variables of the units, columns: existing parameters);
# - how one step of real-time recurrent learning, `M_t = J_t M_{t-1} + M̄_t`, is computed by hand
#   from the step record every neurosnap cell reports;
# - why exact RTRL gives *the same gradient* as backpropagation through time (to round-off);
# - why dense RTRL is expensive: its cost per step grows as `n⁴` with the number of units `n`.
#
# The equations are numbered as in the theory page [RTRL](../docs/theory/rtrl.md). Everything below uses
# the public API of `neurosnap`; set `NEUROSNAP_SMOKE=1` to run it with small sizes.
#
# **Run time.** About 15 s at full size and about 15 s with `NEUROSNAP_SMOKE=1` (the size the
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

# %% [markdown]
# ## A tiny network and its parameters
#
# A leaky tanh RNN with `n = 4` units and 2 inputs. Its learnable cell parameters are the
# recurrent weights `w_rec (G, n, n)`, the input weights `w_in (G, n, n_in)` and the biases
# `bias (G, n)` (`G = 1` drive here). A linear readout turns the unit outputs into 2 numbers and a
# squared error is the loss.

# %%
cell = ns.cells.LeakyRNN(n_in=2, n_hidden=4, alpha=0.5)
model = ns.Model(cell, n_out=2, loss="mse")
params = model.init(seed=0)
for name, value in params.items():
    print(f"{name:15s} shape {value.shape}")

# %% [markdown]
# The influence matrix has one column per *scalar* cell parameter. `cell.layout` numbers them:
# column `p` is a recurrent weight, an input weight or a bias (`layout.kind`), and it drives exactly
# one unit, `layout.post[p]`. That is why the immediate influence `M̄_t = ∂s_t/∂θ` (eq. 2) has a
# single non-zero row block per column.

# %%
layout = cell.layout
kinds = np.array(["w_rec", "w_in", "bias"])[layout.kind]
print(f"P = {layout.size} cell parameters; S = {cell.n_state} state variable(s) per unit")
for p in [0, 1, 5, 16, 17, 24]:
    print(f"column {p:2d}: {kinds[p]:5s} drives unit {layout.post[p]}, presynaptic index {layout.pre[p]}")

# %% [markdown]
# ## One step by hand
#
# A cell step returns the new state, the output and a **step record** with everything a learning
# rule needs: the state Jacobian `J_t = ∂s_t/∂s_{t-1}` (`record.jac_state`, eq. 3) and the
# immediate influence in factored form (`record.jac_params`). `to_dense()` expands `J_t` into an
# `(S n, S n)` matrix per example, and `layout.immediate(record.jac_params)` gives the non-zero
# entries of `M̄_t` (one per state variable and column).
#
# RTRL then keeps `M_t = J_t M_{t-1} + M̄_t` (eq. 4), starting from `M_0 = 0`.

# %%
T, B = 6, 1
xs = rng.normal(size=(T, B, cell.n_in))
cell_params = model.cell_params(params)
n, S, P = cell.n_hidden, cell.n_state, layout.size


def immediate_dense(record):
    """M̄_t as a dense (B, S n, P) array: column p lives in the rows of unit post[p]."""
    values = layout.immediate(record.jac_params)                     # (B, S, P)
    out = np.zeros((B, S * n, P))
    for a in range(S):
        out[:, a * n + layout.post, np.arange(P)] = values[:, a]
    return out


state = cell.initial_state(B)
M = np.zeros((B, S * n, P))
influences, jacobians = [], []
for t in range(T):
    state, y, record = cell.step_record(cell_params, state, xs[t])
    J = record.jac_state.to_dense()                                   # (B, S n, S n)
    M = J @ M + immediate_dense(record)                               # eq. (4)
    influences.append(M.copy())
    jacobians.append(J)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1, 5, 5]})
axes[0].imshow(jacobians[-1][0], cmap="RdBu_r", vmin=-1, vmax=1)
axes[0].set_title("$J_t$")
axes[1].imshow(immediate_dense(record)[0], cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
axes[1].set_title(r"$\bar M_t$: one unit per column")
image = axes[2].imshow(influences[-1][0], cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
axes[2].set_title(f"$M_t$ after {T} steps: dense")
fig.colorbar(image, ax=axes[2], label="entry (all three panels)")
for ax in axes[1:]:
    ax.set_xlabel("parameter column p")
axes[0].set_ylabel("unit")
fig.tight_layout()
plt.show()

# %% [markdown]
# The immediate influence is block-sparse (each parameter touches its own unit), but after a few
# steps the recurrence `J_t M_{t-1}` has spread every parameter's influence to every unit: `M_t` is
# dense. Storing it costs `S n × P` numbers, about `n³`.
#
# ### Is it really `ds_t/dθ`?
#
# Check one direction `v` in parameter space with central finite differences of the states returned
# by `model.run`: `(s_t(θ + h v) - s_t(θ - h v)) / 2h ≈ M_t v`.

# %%
v = rng.normal(size=P)
h = 1e-6


def shifted(sign):
    """params with the cell parameters moved by sign * h * v."""
    delta = layout.to_dict(sign * h * v, np.float64)
    return {k: params[k] + delta[k[5:]] if k.startswith("cell.") else params[k] for k in params}


s_plus = model.run(shifted(+1), xs).states.reshape(T, B, S * n)
s_minus = model.run(shifted(-1), xs).states.reshape(T, B, S * n)
fd = (s_plus - s_minus) / (2 * h)
rtrl = np.stack(influences) @ v
print("max |finite difference - M_t v| over all steps:", np.abs(fd - rtrl).max())

# %% [markdown]
# ## From the influence to the gradient, and equality with BPTT
#
# With the credit `c_t = ∂L_t/∂s_t` (how the loss of step `t` depends on the state), the gradient
# is `dL/dθ = Σ_t c_t M_t` (eq. 6). The model gives `∂L_t/∂y_t` and the record gives `∂y_t/∂s_t`
# (`record.dout`), so `c_t` is their product. Accumulate by hand and compare with
# `ns.sequence_grad` using the RTRL rule and BPTT.

# %%
ys = rng.normal(size=(T, B, model.n_out))
mask = np.ones((T, B), dtype=bool)
state = cell.initial_state(B)
M = np.zeros((B, S * n, P))
grad = np.zeros(P)
for t in range(T):
    state, y, record = cell.step_record(cell_params, state, xs[t])
    M = record.jac_state.to_dense() @ M + immediate_dense(record)
    _, _, _, dy = model.step_loss(params, y, ys[t], mask[t])          # dL_t/dy_t, shape (B, n)
    credit = (dy[:, None, :] * record.dout).reshape(B, S * n)       # c_t, eq. (5)
    grad += np.einsum("bk,bkp->p", credit, M)                         # eq. (6)

by_hand = layout.to_dict(grad, np.float64)
_, g_rtrl = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
_, g_bptt = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
for name in ("w_rec", "w_in", "bias"):
    print(f"cell.{name:6s} |by hand - RTRL| = {np.abs(by_hand[name] - g_rtrl['cell.' + name]).max():.1e}"
          f"   |RTRL - BPTT| = {np.abs(g_rtrl['cell.' + name] - g_bptt['cell.' + name]).max():.1e}")

# %% [markdown]
# BPTT computes the same sum backwards: `λ_{t-1} = c_{t-1} + J_tᵀ λ_t` and `dL/dθ = Σ_t λ_tᵀ M̄_t`
# ([BPTT](../docs/theory/bptt.md)). Both expand to the same products of Jacobians, only in a different
# order, so they agree to round-off, for every cell, including event-based cells with a
# Heaviside threshold and a surrogate derivative. Here is the same check on an EGRU, for a batch
# and several sequence lengths:

# %%
egru = ns.Model(ns.cells.EGRU(n_in=3, n_hidden=8, density=0.5), n_out=3)
egru_params = egru.init(seed=1)
for length in (1, 5, 20, 50):
    x = rng.normal(size=(length, 4, 3))
    target = rng.integers(0, 3, size=(length, 4))
    _, a = ns.sequence_grad(egru, egru_params, x, target, ns.rules.RTRL())
    _, b = ns.sequence_grad(egru, egru_params, x, target, ns.rules.BPTT())
    diff = max(np.abs(a[k] - b[k]).max() for k in a)
    scale = max(np.abs(b[k]).max() for k in b)
    print(f"T = {length:3d}: max |RTRL - BPTT| = {diff:.1e}  (largest gradient entry {scale:.2f})")

# %% [markdown]
# ## The price: `n⁴` per step
#
# BPTT needs the whole history before it can give a gradient; RTRL gives it online, at every step,
# with constant memory in the sequence length. The price is the product `J_t M_{t-1}`: an
# `(S n × S n)` matrix times an `(S n × P)` matrix with `P ≈ G n²` parameters, i.e. about
# `S² G n⁴` multiply-adds per step, and `S G n³` numbers of memory.
#
# Measure it: time one step of dense RTRL (`RTRL(sparse=False)`) for growing `n`, and read the
# multiply-adds the rule reports through its `cost` method.

# %%
sizes = [8, 16, 24, 32] if SMOKE else [8, 16, 32, 48, 64, 96]
steps = 5 if SMOKE else 10
rule = ns.rules.RTRL(sparse=False)
ms_per_step, macs = [], []
for size in sizes:
    net = ns.Model(ns.cells.LeakyRNN(n_in=2, n_hidden=size), n_out=2, loss="mse")
    p = net.init(seed=0)
    cp = net.cell_params(p)
    x = rng.normal(size=(steps, 1, 2))
    best = np.inf
    for repeat in range(3):                     # the minimum over repeats is the least noisy
        rule_state = rule.init(net, p, 1)
        s = net.cell.initial_state(1)
        credit = np.zeros((1, 1, size))
        start = time.perf_counter()
        for t in range(steps):
            s, _, record = net.cell.step_record(cp, s, x[t])
            rule_state, _ = rule.step(rule_state, record, credit, params=p)
        best = min(best, (time.perf_counter() - start) / steps)
    ms_per_step.append(1e3 * best)
    macs.append(rule.cost(rule_state, record)["macs"])
    print(f"n = {size:3d}: P = {net.cell.layout.size:6d}, {macs[-1]:.2e} multiply-adds, "
          f"{ms_per_step[-1]:.3f} ms per step")

# %%
sizes_a = np.array(sizes, dtype=float)
slope_macs = np.polyfit(np.log(sizes_a), np.log(macs), 1)[0]
slope_time = np.polyfit(np.log(sizes_a[-3:]), np.log(ms_per_step[-3:]), 1)[0]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].loglog(sizes, macs, "o-", label=f"counted (slope {slope_macs:.2f})")
axes[0].loglog(sizes, macs[-1] * (sizes_a / sizes_a[-1]) ** 4, "k--", lw=1, label=r"$\propto n^4$")
axes[0].set(xlabel="units n", ylabel="multiply-adds per step", title="dense RTRL: work")
axes[1].loglog(sizes, ms_per_step, "o-", color="C1",
               label=f"measured (slope of the last 3: {slope_time:.2f})")
axes[1].loglog(sizes, ms_per_step[-1] * (sizes_a / sizes_a[-1]) ** 4, "k--", lw=1, label=r"$\propto n^4$")
axes[1].set(xlabel="units n", ylabel="ms per step", title="dense RTRL: wall-clock")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The counted work follows `n⁴` (the fitted slope is a little below 4 because the input weights and
# biases add `O(n)` columns to the `n²` recurrent ones); wall-clock approaches the same slope once the
# matrices are large enough for the multiplication to dominate the Python overhead of small sizes. Doubling the
# network costs 16× per step: this is the reason for the approximations (SnAp, UORO, RFLO,
# e-prop) and for the sparse exact engine that the next notebooks explore.
#
# ## Exercises
#
# 1. Repeat the hand-made step for an `ns.cells.LIF` cell (`S = 2` state variables per unit). Which
#    blocks of `J_t` are zero, and why? (Hint: [cells](../docs/theory/cells.md).)
# 2. Replace `h = 1e-6` by `1e-3` and `1e-9` in the finite-difference check. Explain the two ways
#    the error grows.
# 3. Truncated BPTT (`ns.rules.BPTT(truncation=k)`) is cheaper than RTRL. For the EGRU above,
#    plot `max |BPTT(truncation=k) - RTRL|` against `k`: when does it become exact?
# 4. Count memory instead of time: plot `S n P` against `n` on log-log axes. Which slope do you
#    expect, and how does it compare with the memory of BPTT over `T` steps?
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. For LIF the state of a unit is `(v, i)`. Inside a unit, `∂i_t/∂v_{t-1} = 0` (the current does
#    not depend on the membrane), while `∂v_t/∂v_{t-1}` (leak, reset) and `∂v_t/∂i_{t-1} = k_m` and
#    `∂i_t/∂i_{t-1} = 1 - k_s` are not. Between units, the coupling runs through the spike
#    `z_{t-1} = H(v_{t-1} - v_th)`, which depends on `v` only: the columns of `J_t` that belong to
#    `i` are zero off the diagonal blocks, and the columns of `v` are non-zero only for units
#    inside the surrogate's support. Check with `record.jac_state.to_dense()` on
#    `ns.Model(ns.cells.LIF(n_in=4, n_hidden=5), n_out=2)`.
# 2. Central differences have a truncation error `O(h^2)` (third derivative of the loss), which
#    dominates at `h = 1e-3`, and a round-off error of about `ε_machine |L| / h` (the loss is
#    computed to ~1e-16 relative and divided by `2h`), which dominates at `h = 1e-9`. `h = 1e-6`
#    balances the two (about `ε^(1/3)`).
# 3. `diff = [max(np.abs(ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(truncation=k))[1][key]
#    - g_rtrl[key]).max() for key in params) for k in range(1, T + 1)]`. The error tends to
#    shrink as `k` grows, though not monotonically (what is cut depends on where the window
#    boundaries fall in the sequence), and it is round-off once `k >= T`: with the truncation at
#    or beyond the sequence length nothing is cut.
# 4. `S n P` with `P ≈ G n^2` (dense weights) grows as `n^3`: slope 3 on log-log axes, independent
#    of `T`. BPTT stores the `T` states and step records instead, `O(T S n)` numbers (plus the
#    weights): linear in `n` but growing with the sequence length, which RTRL's memory does not.
#
# </details>
