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
# # Your own cell and your own learning rule
#
# **What you will learn**
#
# - what a neurosnap cell is: one step of a unit's dynamics *plus its local derivatives*, from
#   which every learning rule builds its gradient;
# - how to write a new cell (here a leaky unit with an adaptation variable), and how to check its
#   hand-written Jacobians three ways: against finite differences of one step, against finite
#   differences of the whole loss, and RTRL against BPTT;
# - why RTRL == BPTT alone does *not* prove your Jacobians right (both use the same ones);
# - how to write a new online learning rule from the step record and use it next to the built-in
#   rules, in `ns.train` and in the rule registry the configuration files use.
#
# Background: [the step record and RTRL](../docs/theory/rtrl.md), [cells](../docs/theory/cells.md),
# [e-prop](../docs/theory/eprop.md); the interface is described in the docstring of
# `ns.cells.Cell` and of `ns.rules.Rule` ([API](../docs/api/cells.md)).
#
# **Run time.** About 30 s at full size and about 10 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine. Open it with jupytext, or run
# `make notebooks` for an `.ipynb` copy (see [00](00-first-spiking-network.py)).

# %%
import os
import time
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"

# %% [markdown]
# ## 1. What a cell provides
#
# Every cell has `S` state variables per unit, stored as `state (B, S, n)`, and `G` "gates", each
# receiving a recurrent drive `rec = W_rec y_{t-1}` and an input drive `inp = W_in x_t + b` of shape
# `(B, G, n)`. The base class `ns.cells.Cell` owns the weights, the connectivity mask and the step
# record; a concrete cell writes two methods:
#
# - `_local(state, rec, inp, jac)`: the new state, and (when `jac`) three derivatives, all per unit:
#   `local (B, S, S, n)` = ∂s_t[a]/∂s_{t-1}[c] (new variable `a`, old variable `c`),
#   `drec (B, S, G, n)` = ∂s_t[a]/∂rec[g] and `dinp (B, S, G, n)` = ∂s_t[a]/∂inp[g];
# - `_output(state, jac)`: what the unit sends to the others and to the readout, `y (B, n)`, with
#   `dout (B, S, n)` = ∂y/∂s and the boolean `events (B, n)` (which units emitted).
#
# From these, the base class assembles the full Jacobian `J_t` (local part plus the recurrent part
# through `W_rec` and `dout`) and the immediate influence `M̄_t` (rtrl eq. 1-3). Every rule (RTRL,
# SnAp, BPTT, e-prop, RFLO, ...) uses only that record.
#
# ## 2. A new cell: a leaky unit with adaptation
#
# Each unit has an activity `h` and a slow adaptation `a` that follows `h` and subtracts from the
# drive (a rate-model cousin of the ALIF neuron's adaptive threshold):
#
#     h_t = (1 - α) h_{t-1} + α tanh(rec_t + inp_t - a_{t-1})
#     a_t = ρ a_{t-1} + (1 - ρ) h_t
#
# With `φ' = 1 - tanh²(·)` and `d = α φ'`, the derivatives are
#
#     ∂h_t/∂h_{t-1} = 1 - α                 ∂h_t/∂a_{t-1} = -d
#     ∂a_t/∂h_{t-1} = (1 - ρ)(1 - α)        ∂a_t/∂a_{t-1} = ρ - (1 - ρ) d
#     ∂h_t/∂rec = ∂h_t/∂inp = d             ∂a_t/∂rec = ∂a_t/∂inp = (1 - ρ) d
#
# (`a_t` depends on `h_t`, hence the chain rule in its row). The output is `y = h`.

# %%
class AdaptiveLeaky(ns.cells.Cell):
    """Leaky tanh units with a subtractive adaptation variable; state ``(h, a)``, output ``h``."""

    state_names = ("h", "a")
    gate_names = ("h",)

    def __init__(self, n_in, n_hidden, density=1.0, *, alpha=0.5, rho=0.9, **kwargs):
        self.alpha, self.rho = float(alpha), float(rho)
        super().__init__(n_in, n_hidden, density, **kwargs)

    def _local(self, state, rec, inp, jac):
        al, rho = self.alpha, self.rho
        h, a = state[:, 0], state[:, 1]
        phi = np.tanh(rec[:, 0] + inp[:, 0] - a)
        h_new = (1 - al) * h + al * phi
        a_new = rho * a + (1 - rho) * h_new
        new = np.stack([h_new, a_new], axis=1)                   # (B, 2, n)
        if not jac:
            return new, None, None, None
        d = al * (1 - phi ** 2)
        local = np.empty((state.shape[0], 2, 2, state.shape[2]), dtype=state.dtype)
        local[:, 0, 0] = 1 - al
        local[:, 0, 1] = -d
        local[:, 1, 0] = (1 - rho) * (1 - al)
        local[:, 1, 1] = rho - (1 - rho) * d
        drive = np.stack([d, (1 - rho) * d], axis=1)[:, :, None, :]   # (B, 2, 1, n)
        return new, local, drive, drive.copy()

    def _output(self, state, jac):
        y = state[:, 0]
        if not jac:
            return y, None, None
        dout = np.zeros_like(state)
        dout[:, 0] = 1.0
        return y, dout, np.ones(y.shape, dtype=bool)             # every unit "emits" every step


one = ns.Model(AdaptiveLeaky(n_in=1, n_hidden=2, rho=0.95), n_out=2)
p1 = one.init(seed=0)
p1["cell.w_rec"][:] = 0.0                         # two independent units ...
p1["cell.w_in"][0, :, 0] = [1.0, 3.0]             # ... driven with two strengths
step_input = np.zeros((120, 1, 1))
step_input[20:80] = 1.0
states = one.run(p1, step_input).states[:, 0]     # (T, S, n)
fig, ax = plt.subplots(figsize=(8, 3))
for k, color in enumerate(("C0", "C1")):
    ax.plot(states[:, 0, k], color=color, label=f"h, w_in = {p1['cell.w_in'][0, k, 0]:g}")
    ax.plot(states[:, 1, k], color=color, ls="--", label="a (adaptation)")
ax.axvspan(20, 80, color="0.9", label="input on")
ax.set(xlabel="step", title="AdaptiveLeaky: the activity peaks, then adaptation pulls it back")
ax.legend(fontsize=8, ncol=3)
fig.tight_layout()
plt.show()

model = ns.Model(AdaptiveLeaky(n_in=3, n_hidden=5), n_out=2)
params = model.init(seed=0)
rng = np.random.default_rng(0)
xs = rng.normal(size=(12, 2, 3))                  # (T, B, n_in)
ys = rng.integers(0, 2, size=(12, 2))             # (T, B) class targets
traj = model.run(params, xs)
print(model, "| states", traj.states.shape, "| outputs", traj.outputs.shape)

# %% [markdown]
# ## 3. Check 1: one step against finite differences
#
# `cell.step_record` returns the new state, the output and the record; `record.jac_state.to_dense()`
# is the full `(B, S n, S n)` Jacobian `∂s_t/∂s_{t-1}`, including the recurrent part. Perturb each
# entry of the previous state by `±ε` and compare with the central difference of `cell.step`.


# %%
def step_jacobian_error(cell, params, state, x, eps=1e-6):
    """Largest |analytic - finite-difference| entry of ds_t/ds_{t-1} for one step."""
    cell_params = model.cell_params(params)
    _, _, record = cell.step_record(cell_params, state, x)
    J = record.jac_state.to_dense()                             # (B, S*n, S*n)
    B, S, n = state.shape
    fd = np.zeros_like(J)
    for k in range(S * n):
        dp, dm = state.copy(), state.copy()
        dp[:, k // n, k % n] += eps
        dm[:, k // n, k % n] -= eps
        fd[:, :, k] = (cell.step(cell_params, dp, x)[0] - cell.step(cell_params, dm, x)[0]
                       ).reshape(B, S * n) / (2 * eps)
    return np.abs(J - fd).max(), np.abs(J).max()


state = traj.states[5]                              # a state reached by the network, (B, S, n)
err, scale = step_jacobian_error(model.cell, params, state, xs[6])
print(f"one step: max |J - J_fd| = {err:.1e} (entries up to {scale:.2f})")

# %% [markdown]
# ## 4. Check 2: the whole gradient against finite differences of the loss
#
# `ns.sequence_grad(model, params, xs, ys, rule)` returns the summed loss and its gradient. With
# BPTT (built from the cell's Jacobians) the gradient must equal the central finite difference of
# the loss for every parameter (the loss itself is computed by the same call).


# %%
def loss_of(model, p):
    return ns.sequence_grad(model, p, xs, ys, ns.rules.BPTT())[0]


def gradient_check(model, params, n_checks=30, eps=1e-6):
    """Relative error between BPTT and central finite differences on random parameter entries."""
    _, grad = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
    picks = np.random.default_rng(1)
    fd, an = [], []
    for _ in range(n_checks):
        key = list(params)[picks.integers(len(params))]
        idx = tuple(picks.integers(s) for s in params[key].shape)
        p = {k: v.copy() for k, v in params.items()}
        p[key][idx] += eps
        up = loss_of(model, p)
        p[key][idx] -= 2 * eps
        fd.append((up - loss_of(model, p)) / (2 * eps))
        an.append(grad[key][idx])
    fd, an = np.array(fd), np.array(an)
    return np.linalg.norm(fd - an) / np.linalg.norm(fd)


print(f"BPTT vs finite differences: relative error {gradient_check(model, params):.1e}")

# %% [markdown]
# ## 5. Check 3: RTRL == BPTT, and what it does not prove
#
# RTRL (forward, online) and BPTT (backward) compute the same gradient from the same Jacobians, so
# they must agree to round-off: this checks that the record is *consistent* (shapes, layout, the
# recurrent part).

# %%
_, g_rtrl = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
_, g_bptt = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
print("max |RTRL - BPTT| =", max(np.abs(g_rtrl[k] - g_bptt[k]).max() for k in params))

# %% [markdown]
# Now break the cell: forget the chain rule in `∂a_t/∂a_{t-1}` (write `ρ` instead of
# `ρ - (1 - ρ) d`). RTRL and BPTT still agree, since both use the same wrong Jacobian, but the
# finite-difference checks catch it. Always run both kinds of check.


# %%
class BrokenAdaptiveLeaky(AdaptiveLeaky):
    def _local(self, state, rec, inp, jac):
        new, local, drec, dinp = super()._local(state, rec, inp, jac)
        if jac:
            local[:, 1, 1] = self.rho                       # the bug
        return new, local, drec, dinp


broken = ns.Model(BrokenAdaptiveLeaky(n_in=3, n_hidden=5), n_out=2)
_, b_rtrl = ns.sequence_grad(broken, params, xs, ys, ns.rules.RTRL())
_, b_bptt = ns.sequence_grad(broken, params, xs, ys, ns.rules.BPTT())
err_step, _ = step_jacobian_error(broken.cell, params, state, xs[6])
print("broken cell: max |RTRL - BPTT| =", max(np.abs(b_rtrl[k] - b_bptt[k]).max() for k in params))
print(f"broken cell: one step max |J - J_fd| = {err_step:.1e}; "
      f"gradient relative error {gradient_check(broken, params):.1e}")

# %% [markdown]
# ## 6. A new learning rule
#
# A rule follows the contract of `ns.rules.Rule`: a frozen dataclass with
#
# - `init(model, params, batch) -> state`;
# - `step(state, record, credit, *, params, dlogits=None, **extras) -> (state, grad)`, where
#   `credit (B, S, n)` is `∂L_t/∂s_t` through the readout at this step and `grad` is a flat vector
#   over the cell's parameters (or `None`);
# - optionally `flush(state, *, params)` at the end of a sequence.
#
# The simplest online rule keeps *no memory at all*: it credits each parameter only for its
# immediate influence on this step's state, `grad_t = credit_t · M̄_t`, ignoring every path through
# earlier states. (It is RTRL with the influence truncated to one step, or BPTT truncated to one
# step.) `model.cell.layout` knows how parameters map onto units: `layout.immediate(record.jac_params)`
# is `M̄_t` as `(B, S, P)` with column `p` on the unit `layout.post[p]` it drives.


# %%
@dataclass(frozen=True)
class Immediate(ns.rules.Rule):
    """One-step credit assignment: grad_t = credit_t . Mbar_t (no history, O(S P) per step)."""

    def init(self, model, params, batch):
        return model.cell.layout

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        layout = state
        mbar = layout.immediate(record.jac_params)                          # (B, S, P)
        return state, np.einsum("bap,bap->p", credit[:, :, layout.post], mbar)


ns.rules.RULES["Immediate"] = Immediate       # now configs can say [rule] name = "Immediate"


def cosine(g, h):
    a = np.concatenate([g[k].ravel() for k in sorted(g) if k.startswith("cell.")])
    b = np.concatenate([h[k].ravel() for k in sorted(h) if k.startswith("cell.")])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


for name in ("SnAp", "EProp", "RFLO", "Immediate"):
    _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RULES[name]())
    print(f"{name:10s} cosine with the exact gradient: {cosine(g, g_bptt):+.3f}")

# %% [markdown]
# The approximations keep more or less of the exact gradient's direction. SnAp-1 and e-prop keep
# each unit's own history (both `h` and `a`) and stay close; RFLO also drops the coupling between
# `h` and `a` and, by default, replaces the readout by *random* feedback, so its gradient is not
# meant to align with the exact one direction by direction (it learns through feedback alignment).
# Now train: the 8 × 8
# digits read row by row (`ns.tasks.Digits`), the new cell with 16 units, each rule from the same
# initial weights and data, one update per batch of 16 images.

# %%
task = ns.tasks.Digits()
updates = 60 if SMOKE else 400
results = {}
fig, ax = plt.subplots(figsize=(7, 3.6))
for name in ("RTRL", "EProp", "Immediate"):
    net = ns.Model(AdaptiveLeaky(n_in=8, n_hidden=16), n_out=10)
    start = time.perf_counter()
    history = ns.train(net, ns.rules.RULES[name](), ns.optim.Adam(lr=0.02), task, steps=8 * updates,
                       update_every=8, batch_size=16, seed=0)
    wall = time.perf_counter() - start
    results[name] = task.evaluate(net, history.params)["test_accuracy"]
    acc = np.convolve(history.column("accuracy"), np.ones(10) / 10, mode="valid")
    ax.plot(acc, label=f"{name}: test {results[name]:.2f} ({wall:.0f} s)")
ax.axhline(0.1, color="k", lw=0.8, ls=":", label="chance")
ax.set(xlabel="update (batch of 16 digits)", ylabel="training accuracy (running mean)",
       ylim=(0, 1), title="AdaptiveLeaky, 16 units, sequential 8x8 digits")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Exact RTRL learns fastest; e-prop (which keeps each unit's own history, `h` and `a`, but not the
# paths through other units) and the memoryless rule lag behind. On this task the label comes at
# the last row, so credit for the early rows must travel back through time: exactly what the
# one-step rule cannot do.
#
# To contribute a cell or rule to neurosnap itself: add a file under `neurosnap/cells/` or
# `neurosnap/rules/`, register it in `CELLS` / `RULES`, add its equations to `docs/theory/`, and
# add it to the identity tests (RTRL == BPTT, finite differences with a smooth gate); see
# [contributing](../docs/contributing.md).
#
# ## Exercises
#
# 1. Set `rho=0` in `AdaptiveLeaky`. What do the equations reduce to, and do the checks still pass?
# 2. Introduce a different bug: drop the `(1 - ρ)` factor in `∂a_t/∂rec`. Which checks fail?
# 3. Give `Immediate` an exponentially decaying memory: keep `e_t = λ e_{t-1} + M̄_t` (per
#    parameter, per state variable) and use `credit_t · e_t`. With the local Jacobian's diagonal
#    instead of `λ`, which built-in rule have you written?
# 4. Register `AdaptiveLeaky` in `ns.cells.CELLS` and train it from a configuration dict with
#    `neurosnap.config.build`.
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. With `ρ = 0`, `a_t = h_t`, so the unit becomes `h_t = (1 - α) h_{t-1} + α tanh(rec_t + inp_t
#    - h_{t-1})`: the adaptation is the previous activity itself, with no longer memory;
#    `∂a_t/∂a_{t-1} = -d` and `∂a_t/∂h_{t-1} = 1 - α` (the general formulas at `ρ = 0`). The cell
#    code needs no change and all three checks pass
#    (`ns.Model(AdaptiveLeaky(3, 5, rho=0.0), n_out=2)`).
# 2. In `_local`, `drive = np.stack([d, d], axis=1)[:, :, None, :]`. Both finite-difference checks
#    fail (when this was written: one-step error 0.44, gradient relative error 0.12), while
#    RTRL == BPTT still holds to 1e-16. The one-step check catches it too because the recurrent
#    part of `J_t` is built from `drec`: `∂s_t/∂s_{t-1}` contains `drec · W_rec · dout_{t-1}`. A bug
#    in `dinp` alone (`drive.copy()` edited separately) would escape the one-step check and only
#    the loss-level finite differences would see it.
# 3. `init` returns `np.zeros((batch, model.cell.n_state, model.cell.layout.size))` plus the layout;
#    `step` computes `e = lam * e + layout.immediate(record.jac_params)` and
#    `grad = np.einsum("bap,bap->p", credit[:, :, layout.post], e)`. With
#    `decay = np.diagonal(record.jac_state.local, axis1=1, axis2=2).transpose(0, 2, 1)` and
#    `e = decay[:, :, layout.post] * e + mbar`, it is RFLO with symmetric feedback
#    (`ns.rules.RFLO(feedback="symmetric")`, rflo eq. 2); keeping the off-diagonal local couplings
#    too gives e-prop (eprop eq. 2).
# 4. `ns.cells.CELLS["AdaptiveLeaky"] = AdaptiveLeaky`, then
#    `from neurosnap import config` and `config.build({"model": {"cell": "AdaptiveLeaky",
#    "n_hidden": 16}, "task": {"name": "digits"}, "rule": {"name": "Immediate"},
#    "optimizer": {"name": "Adam", "lr": 0.02}, "train": {"steps": 800, "update_every": 8,
#    "batch_size": 16}})` returns `(model, rule, opt, task, train_kwargs)` for `ns.train`.
#
# </details>
