"""Backpropagation through time from the cells' own Jacobians (``docs/theory/bptt.md``).

Backward recursion (bptt eq. (1)-(3)), with ``c_t = dL_t/ds_t`` the per-step credit:

    lambda_T = c_T,   lambda_{t-1} = c_{t-1} + J_t^T lambda_t           (bptt eq. 2)
    dL/dtheta = sum_t lambda_t^T Mbar_t                                  (bptt eq. 3)

With ``truncation=k`` the history is cut every ``k`` steps: the gradient of each window's losses
flows back only to the window's start and is returned at the window's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core import validate
from .base import Rule


@dataclass
class BPTTState:
    """History of the current window: step records and credits."""

    layout: object
    records: list = field(default_factory=list)
    credits: list = field(default_factory=list)


@dataclass(frozen=True)
class BPTT(Rule):
    """Backpropagation through time, optionally truncated (``docs/theory/bptt.md`` eq. (2)-(4)).

    Args:
        truncation: ``None`` (whole sequence, gradient at its end) or a window length ``k >= 1``.

    Memory grows linearly with the window length (it stores every step record).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> model = ns.Model(ns.cells.EGRU(n_in=3, n_hidden=6, density=0.5), n_out=2)
        >>> params = model.init(seed=0)
        >>> xs = np.random.default_rng(0).normal(size=(30, 2, 3)); ys = np.zeros((30, 2), dtype=int)
        >>> _, exact = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
        >>> _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(truncation=30))  # k >= T: full
        >>> max(float(abs(g[k] - exact[k]).max()) for k in params)
        0.0
        >>> _, g5 = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(truncation=5))  # windows of 5
        >>> bool(np.allclose(g5["readout.weight"], exact["readout.weight"]))    # the readout stays exact
        True
    """

    truncation: int | None = None
    online = False

    def __post_init__(self):
        if self.truncation is not None:
            validate.positive_int("truncation", self.truncation)

    def init(self, model, params, batch):
        return BPTTState(layout=model.structure().layout)

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        state.records.append(record)
        state.credits.append(credit)
        if self.truncation is not None and len(state.records) >= self.truncation:
            return self.flush(state, params=params)
        return state, None

    def flush(self, state, *, params, **extras):
        if not state.records:
            return state, None
        layout = state.layout
        grad = np.zeros(layout.size, dtype=state.credits[0].dtype)
        lam = np.zeros_like(state.credits[0])
        for record, credit in zip(reversed(state.records), reversed(state.credits), strict=True):
            lam = lam + credit
            imm = layout.immediate(record.jac_params)  # (B, S, P)
            grad += np.einsum("bap,bap->p", lam[:, :, layout.post], imm)  # eq. (3)
            if layout.n_thr:  # learned thresholds: non-local Mbar (cells eq. (25), (27))
                grad[layout.thr_cols] += layout.nonlocal_vjp(
                    lam, record.jac_params, record.jac_state.w_rec
                ).sum(axis=0)
            lam = record.jac_state.matvec_transpose(lam)  # eq. (2)
        state.records.clear()
        state.credits.clear()
        return state, grad
