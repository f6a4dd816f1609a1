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
# # SnAp: keeping only the influence that can arrive in n steps
#
# **What you will learn**
#
# - which entries of the influence matrix `M_t = ds_t/dθ` SnAp-n keeps: those of units that a
#   parameter can reach within `n` steps of the recurrent connectivity, drawn here for `n = 1, 2, 3`;
# - why SnAp-n is *exact* for the first `n` steps of a sequence, and exact for ever once `n` covers
#   the connectivity graph;
# - how gradient quality (cosine to exact RTRL) trades against cost (multiply-adds and stored
#   numbers per step), for SnAp-n and for the other online rules (UORO, RFLO, e-prop) and truncated
#   BPTT.
#
# Background: [RTRL from scratch](01-rtrl-from-scratch.py), and the theory pages
# [RTRL](../docs/theory/rtrl.md) and [SnAp](../docs/theory/snap.md). SnAp is Menick et al.,
# *Practical real time recurrent learning with a sparse approximation*, ICLR 2021. Set
# `NEUROSNAP_SMOKE=1` for small sizes.
#
# **Run time.** About 15 s at full size and about 15 s with `NEUROSNAP_SMOKE=1` (the size the
# test suite runs), measured on a busy 2-core machine. Open it with jupytext, or run
# `make notebooks` for an `.ipynb` copy (see [00](00-first-spiking-network.py)).

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib.pyplot as plt
import numpy as np

import neurosnap as ns

SMOKE = os.environ.get("NEUROSNAP_SMOKE") == "1"
rng = np.random.default_rng(0)

# %% [markdown]
# ## A sparsely connected network
#
# 16 leaky tanh units, each receiving 2 recurrent connections. `cell.mask[k, j]` says whether unit
# `j` feeds unit `k`. Every parameter drives exactly one unit (`cell.layout.post`): a recurrent
# weight `W[k, j]`, an input weight or a bias of unit `k`.

# %%
cell = ns.cells.LeakyRNN(n_in=2, n_hidden=16, density=0.15, seed=3, alpha=0.5)
model = ns.Model(cell, n_out=2, loss="mse")
params = model.init(seed=0)
layout = cell.layout
n, P = cell.n_hidden, layout.size
print(f"{n} units, {cell.mask.sum()} recurrent connections, P = {P} cell parameters")

# %% [markdown]
# ## The SnAp masks
#
# After one step, parameter `p` has influenced only its own unit `post[p]`. After two steps, also the
# units that `post[p]` feeds; after `h` steps, every unit within `h - 1` hops. SnAp-n keeps the
# entries reachable within `n - 1` hops and drops the rest at every step:
# `M_t = P_n ⊙ (J_t M_{t-1} + M̄_t)`. Exact RTRL keeps everything.
#
# Run each rule for a few steps and look at which entries of its influence are non-zero (the rule
# state's `influence` is the kept influence as a dense `(B, S, n, P)` array). Columns are sorted by
# the unit the parameter drives.

# %%
xs = rng.normal(size=(12, 1, cell.n_in))
cell_params = model.cell_params(params)
order = np.argsort(layout.post, kind="stable")


def kept_influence(rule, steps=12):
    """Non-zero pattern of the rule's influence after ``steps`` steps, shape (n, P)."""
    state = rule.init(model, params, 1)
    s = cell.initial_state(1)
    for x_t in xs[:steps]:
        s, _, record = cell.step_record(cell_params, s, x_t)
        state, _ = rule.step(state, record, np.zeros((1, 1, n)), params=params)
    return state.influence[0, 0] != 0


rules = {"SnAp-1": ns.rules.SnAp(n=1), "SnAp-2": ns.rules.SnAp(n=2), "SnAp-3": ns.rules.SnAp(n=3),
         "exact RTRL": ns.rules.RTRL()}
patterns = {name: kept_influence(rule) for name, rule in rules.items()}
fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), sharey=True)
for ax, (name, kept) in zip(axes, patterns.items()):
    ax.imshow(kept[:, order], aspect="auto", cmap="Greys", interpolation="nearest")
    ax.set(title=f"{name}: {kept.mean():.0%} kept", xlabel="parameter (sorted by its unit)")
axes[0].set_ylabel("unit k (row of M)")
fig.tight_layout()
plt.show()

# %% [markdown]
# (The blank columns of exact RTRL belong to a unit that feeds no other unit: its parameters can
# never influence anything but itself.)
#
# Summarised per pair of units: unit `k` keeps the influence of unit `q`'s parameters iff `q` reaches
# `k` within `n - 1` hops. That is the reachability `R_{n-1} = nz((I + A)^{n-1})` of the
# connectivity `A = mask`; check it against the rule's pattern:

# %%
A = cell.mask.astype(int)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for hops, ax in enumerate(axes):
    name = f"SnAp-{hops + 1}"
    reach = np.linalg.matrix_power(np.eye(n, dtype=int) + A, hops) > 0
    kept_pairs = np.zeros((n, n), dtype=bool)
    for q in range(n):
        kept_pairs[:, q] = patterns[name][:, layout.post == q].any(axis=1)
    ax.imshow(kept_pairs, cmap="Greys", interpolation="nearest")
    ax.set(title=f"{name}: unit k keeps unit q's parameters\nequals reachability in {hops} hops: "
                 f"{bool((kept_pairs == reach).all())}", xlabel="unit q", ylabel="unit k")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Exact for the first n steps
#
# From a zero influence, nothing has travelled further than `h - 1` hops after `h` steps, so SnAp-n
# drops nothing during the first `n` steps: its gradient over a sequence of length `T ≤ n` is exact.
# Longer sequences lose the dropped paths.

# %%
ys = rng.normal(size=(12, 1, 2))
lengths = range(1, 9)
fig, ax = plt.subplots(figsize=(6, 3.4))
for order_n in (1, 2, 3, 4):
    errors = []
    for T in lengths:
        _, exact = ns.sequence_grad(model, params, xs[:T], ys[:T], ns.rules.RTRL())
        _, snap = ns.sequence_grad(model, params, xs[:T], ys[:T], ns.rules.SnAp(n=order_n))
        errors.append(max(np.abs(snap[k] - exact[k]).max() for k in exact) + 1e-18)
    ax.semilogy(list(lengths), errors, "o-", label=f"SnAp-{order_n}")
ax.set(xlabel="sequence length T", ylabel="max |SnAp - RTRL|", ylim=(1e-19, 1))
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The error is zero (at the plot's floor) up to `T = n` and appears at `T = n + 1`.
#
# ## Gradient quality against cost
#
# Now a larger network: 32 leaky units with 10 % connectivity, sequences of 50 steps. For each rule,
# compare the gradient with exact RTRL (cosine over all cell parameters) and read its cost from
# `ns.sequence_grad(..., stats=True)`: multiply-adds per step and numbers stored per sequence,
# as counted by the rule itself.

# %%
net = ns.Model(ns.cells.LeakyRNN(n_in=4, n_hidden=32, density=0.1, alpha=0.5, w_rec_scale=1.5), n_out=2)
net_params = net.init(seed=0)
T = 20 if SMOKE else 50
seqs = [(rng.normal(size=(T, 4, 4)), rng.integers(0, 2, size=(T, 4))) for _ in range(1 if SMOKE else 3)]


def cosine(g, h):
    """Cosine similarity of two gradient dicts, over the cell's parameters."""
    a = np.concatenate([g[k].ravel() for k in g if k.startswith("cell.")])
    b = np.concatenate([h[k].ravel() for k in h if k.startswith("cell.")])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def evaluate(rule):
    """Mean cosine to exact RTRL, multiply-adds per step and stored numbers over the sequences."""
    cos, macs, size = [], [], []
    for x, y in seqs:
        _, exact = ns.sequence_grad(net, net_params, x, y, ns.rules.RTRL())
        _, g, stats = ns.sequence_grad(net, net_params, x, y, rule, stats=True)
        cos.append(cosine(g, exact))
        macs.append(stats["macs"])
        size.append(stats["influence_size"])
    return np.mean(cos), np.mean(macs), np.mean(size)


orders = [1, 2, 3, 4] if SMOKE else [1, 2, 3, 4, 5, 6, 8]
snap_results = np.array([evaluate(ns.rules.SnAp(n=k)) for k in orders])
others = {"exact RTRL (sparse)": ns.rules.RTRL(), "exact RTRL (dense)": ns.rules.RTRL(sparse=False),
          "UORO": ns.rules.UORO(seed=0), "RFLO": ns.rules.RFLO(feedback="symmetric"),
          "e-prop": ns.rules.EProp(), "BPTT, truncation 2": ns.rules.BPTT(truncation=2)}
other_results = {name: evaluate(rule) for name, rule in others.items()}
for k, (c, m, s) in zip(orders, snap_results):
    print(f"SnAp-{k:<18d} cosine {c:.4f}  {m:9.0f} multiply-adds/step  {s:7.0f} stored")
for name, (c, m, s) in other_results.items():
    print(f"{name:23s} cosine {c:.4f}  {m:9.0f} multiply-adds/step  {s:7.0f} stored")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, column, label in ((axes[0], 1, "multiply-adds per step"),
                          (axes[1], 2, "numbers stored per sequence")):
    ax.semilogx(snap_results[:, column], snap_results[:, 0], "o-", color="C0", label="SnAp-n")
    for k, row in zip(orders[:4], snap_results):
        ax.annotate(f" n={k}", (row[column], row[0]), fontsize=8, va="top")
    for i, (name, row) in enumerate(other_results.items()):
        if column == 2 and row[2] == 0:
            continue                     # truncated BPTT stores its window, not an influence
        ax.semilogx(row[column], row[0], "sDv^<>"[i], ms=7 if name == "e-prop" else 5,
                    color=f"C{i + 1}", label=name)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set(xlabel=label, ylabel="cosine to the exact gradient", ylim=(-0.1, 1.05))
axes[0].legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# SnAp-n climbs to the exact gradient as `n` grows and becomes exact RTRL once `n - 1` reaches the
# largest distance in the connectivity graph, while costing a fraction of dense RTRL on a sparse
# network. SnAp-1 costs about as much as e-prop and RFLO (for a single-variable cell its update is
# the same local trace, plus the unit's own autapse; e-prop and RFLO coincide for this cell, so their
# markers overlap). UORO's single-sample estimate is unbiased but
# noisy: its cosine for one sequence is low.
#
# ## Exercises
#
# 1. Make the network dense (`density=1.0`). What does SnAp-2 keep now, and what does it cost compared
#    with exact RTRL?
# 2. Average UORO's gradient over 20 seeds (`ns.rules.UORO(seed=s)`). How does the cosine to the exact
#    gradient grow with the number of seeds?
# 3. Replace the leaky RNN by an EGRU (`ns.cells.EGRU(..., density=0.1)`). Why is SnAp-1 already
#    so close to exact there? (Hint: count the units inside the surrogate's support, notebook 3.)
# 4. Train with `ns.train` on `ns.tasks.Copy()` using SnAp-1, SnAp-2 and RTRL with the same step budget
#    and compare the levels reached.
#
# <details><summary><b>Solutions</b> (click to open)</summary>
#
# 1. With `density=1.0` every unit reaches every other in one step, so the 2-step reachability
#    pattern is full: SnAp-2 keeps the whole influence matrix and equals exact RTRL, at exactly
#    RTRL's cost (`O(n P)` memory, `O(n^2 P)` time). SnAp-1 still keeps only the entries of the
#    unit each parameter drives. SnAp-n saves only when the connectivity is sparse.
# 2. `g = [ns.sequence_grad(model, params, xs, ys, ns.rules.UORO(seed=s))[1] for s in range(20)]`,
#    then the cosine of `np.mean` over the first `K` of them with the exact gradient, for
#    `K = 1..20`. UORO is unbiased, so the average converges to the exact gradient and the variance
#    falls like `1/K`: the cosine rises towards 1, slowly (roughly like `1/sqrt(1 + c/K)`).
# 3. In an EGRU only units near the threshold (inside the surrogate's support) pass gradient
#    through their output. Most units are outside it at any step, so most off-diagonal columns of
#    `J_t` are zero and the paths that SnAp-1 drops (through other units) carry little of the
#    gradient: its cosine with the exact gradient is close to 1.
# 4. `for rule in (ns.rules.SnAp(n=1), ns.rules.SnAp(n=2), ns.rules.RTRL()):` build a fresh
#    `model` and run `ns.train(model, rule, ns.optim.Adam(lr=0.01), ns.tasks.Copy(), steps=20_000)`,
#    then compare `history.final("level")`. What to expect (the SnAp paper's finding, not measured
#    in this notebook): with the same budget RTRL reaches the highest level, SnAp-1 the lowest and
#    SnAp-2 lies in between, close to RTRL on sparse networks. The library's own comparison on this
#    task is in [the headline copy results](../docs/headline-copy.md).
#
# </details>
