"""Shared helpers of the exactness suite: cell factory, random problems, gradient comparisons.

Every cell kind is built with weight scales large enough that threshold cells actually emit events
(and sit inside their surrogate's support) on Gaussian inputs, so that the identities compare
non-trivial gradients, not zeros with zeros.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurosnap as ns

# (kind, gate) pairs; LeakyRNN has no gate.
THRESHOLD_KINDS = ("EGRU", "LIF", "LIF-subtract", "ALIF", "ALIF-subtract")
ALL_KINDS = ("LeakyRNN",) + THRESHOLD_KINDS
GATES = ("heaviside", "smooth")

# Hyperparameters per kind. LeakyRNN uses alpha < 1 so that its per-unit part of J_t is non-trivial.
_KIND_KWARGS = {
    "LeakyRNN": (ns.cells.LeakyRNN, dict(alpha=0.7, w_rec_scale=1.5, w_in_scale=1.5)),
    "EGRU": (ns.cells.EGRU, dict(w_rec_scale=2.0, w_in_scale=3.0)),
    # learned per-unit thresholds (not in ALL_KINDS; the suites that cover it name it)
    "EGRU-thr": (ns.cells.EGRU, dict(w_rec_scale=2.0, w_in_scale=3.0, learn_threshold=True)),
    "LIF": (ns.cells.LIF, dict(w_in_scale=30.0, w_rec_scale=5.0)),
    "LIF-subtract": (ns.cells.LIF, dict(w_in_scale=30.0, w_rec_scale=5.0, reset="subtract")),
    "ALIF": (ns.cells.ALIF, dict(w_in_scale=30.0, w_rec_scale=5.0)),
    "ALIF-subtract": (ns.cells.ALIF, dict(w_in_scale=30.0, w_rec_scale=5.0, reset="subtract")),
}

SMOOTH_BETA = {
    "EGRU": 8.0,
    "EGRU-thr": 8.0,
    "LIF": 3.0,
    "LIF-subtract": 3.0,
    "ALIF": 3.0,
    "ALIF-subtract": 3.0,
}


def cell_configs(gates=GATES, kinds=ALL_KINDS):
    """``(kind, gate)`` pairs for parametrize: every threshold kind with every gate, LeakyRNN once."""
    out = []
    for kind in kinds:
        if kind == "LeakyRNN":
            out.append((kind, "none"))
        else:
            out.extend((kind, g) for g in gates)
    return out


def make_gate(kind: str, gate: str):
    """A gate object for ``kind`` from a short name: heaviside (default surrogate), fast_sigmoid, smooth."""
    if gate in ("none", "heaviside"):
        return None
    if gate == "fast_sigmoid":
        return ns.gates.Heaviside(ns.gates.FastSigmoid(gamma=0.5, slope=2.0))
    if gate == "smooth":
        return ns.gates.Smooth(SMOOTH_BETA[kind])
    raise ValueError(f"unknown gate {gate!r}")


def make_cell(
    kind: str,
    gate: str = "heaviside",
    *,
    n_in: int = 3,
    n_hidden: int = 6,
    density: float = 1.0,
    seed: int = 0,
    **overrides,
):
    """Build a cell of ``kind`` (see ``ALL_KINDS``) with ``gate`` and event-producing weight scales."""
    cls, kwargs = _KIND_KWARGS[kind]
    kwargs = dict(kwargs)
    if kind != "LeakyRNN":
        g = make_gate(kind, gate)
        if g is not None:
            kwargs["gate"] = g
    kwargs.update(overrides)
    return cls(n_in, n_hidden, density, seed=seed, **kwargs)


def random_params(model, seed: int = 0, bias_scale: float = 0.3):
    """``model.init(seed)`` with random (instead of zero) biases, and per-unit learned thresholds
    spread around their initial value, so that every term is exercised."""
    params = model.init(seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for name in params:
        if name.endswith("bias"):
            params[name] = (
                params[name] + bias_scale * rng.standard_normal(params[name].shape)
            ).astype(model.dtype)
    if "cell.threshold" in params:  # raw thresholds: theta = sigmoid(raw) around 0.3
        rng_t = np.random.default_rng(seed + 2000)
        params["cell.threshold"] = (
            params["cell.threshold"] + 0.5 * rng_t.standard_normal(params["cell.threshold"].shape)
        ).astype(model.dtype)
    return params


def make_batch(model, T: int, B: int, seed: int = 0, mask_p: float = 0.7):
    """Gaussian inputs ``xs (T, B, n_in)``, random targets for the model's loss and a random mask."""
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((T, B, model.cell.n_in))
    if model.loss == "cross_entropy":
        ys = rng.integers(0, model.n_out, size=(T, B))
    else:
        ys = rng.standard_normal((T, B, model.n_out))
    mask = rng.random((T, B)) < mask_p
    mask[-1, 0] = True  # at least one step counts
    return xs, ys, mask


def max_abs_diff(g1: dict, g2: dict) -> float:
    """Largest absolute difference between two dicts of arrays with the same keys and shapes."""
    assert set(g1) == set(g2), (sorted(g1), sorted(g2))
    out = 0.0
    for k in g1:
        a, b = np.asarray(g1[k]), np.asarray(g2[k])
        assert a.shape == b.shape, (k, a.shape, b.shape)
        if a.size:
            out = max(out, float(np.max(np.abs(a - b))))
    return out


def sequence_loss(model, params, xs, ys, mask) -> float:
    """Summed masked loss of a sequence, from ``model.run`` and losses written out here."""
    out = model.run(params, xs).outputs  # (T, B, n_out)
    m = np.asarray(mask, dtype=float)
    if model.loss == "mse":
        return float(0.5 * np.sum(m[..., None] * (out - ys) ** 2))
    mx = out.max(axis=-1, keepdims=True)
    logz = (mx + np.log(np.exp(out - mx).sum(axis=-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(out, ys[..., None], axis=-1)[..., 0]
    return float(np.sum(m * (logz - picked)))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def require_cython():
    """Skip unless Brian2's Cython target can compile here (a C compiler and Python's headers):
    Brian2 compiles a tiny test extension to find out (cached by Brian2 after the first call)."""
    pytest.importorskip("brian2")
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    if not CythonCodeObject.is_available():
        pytest.skip("Brian2's Cython target cannot compile here (no C compiler or Python headers)")
