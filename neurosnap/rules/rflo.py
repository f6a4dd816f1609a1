"""Random-feedback local online learning (Murray 2019; ``docs/theory/rflo.md``).

RFLO keeps one eligibility trace per parameter and per state variable of the unit the parameter
drives, decayed by that variable's own diagonal entry of the unit's local Jacobian:

    e_t[a, p] = local_t[a, a, post p] e_{t-1}[a, p] + Mbar_t[(a, post p), p]      (rflo eq. 2)

It drops every term of ``J_t`` that runs through the recurrent weights (autapses included) and, inside
a unit, every coupling between different state variables. The learning signal replaces the readout
by a fixed random feedback matrix ``B_fb`` of shape ``(n_out, n)``:

    L_t = dlogits_t B_fb                                                          (rflo eq. 3)
    dL_t/dtheta_p ~ sum_a L_t[post p] dout_t[a, post p] e_t[a, p]                 (rflo eq. 4)

For :class:`~neurosnap.cells.LeakyRNN` eq. (2) is Murray's ``B_t = (1 - alpha) B_{t-1} + alpha
phi'(u_t) h_{t-1}^T`` (rflo eq. 1). ``feedback="symmetric"`` uses the true readout (the credit
``c_t`` as given) instead of ``B_fb``.

A learned EGRU threshold keeps its local immediate influence in eq. (2) and drops the non-local one
through ``y_{t-1}`` (``docs/theory/cells.md`` eq. (24)-(25)); the training loop adds its direct
readout term (cells eq. (26)) with the true readout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import validate
from .base import Rule

FEEDBACKS = ("random", "symmetric")


def random_feedback(seed: int, n_out: int, n_hidden: int, dtype) -> np.ndarray:
    """The fixed feedback matrix ``B_fb`` of shape ``(n_out, n_hidden)`` for ``seed``.

    Entries are ``N(0, 1 / n_hidden)``, the distribution of the readout's initial weights, so that the
    random learning signal has the scale of the true one at initialisation.
    """
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_out, n_hidden)) / np.sqrt(n_hidden)).astype(dtype)


def learning_credit(feedback, credit, record, dlogits):
    """Credit ``(B, S, n)`` of one step: ``credit`` itself, or ``(dlogits B_fb) * dout`` (random).

    Args:
        feedback: ``None`` (symmetric) or ``B_fb`` of shape ``(n_out, n)``.
        credit: ``dL_t/ds_t`` of shape ``(B, S, n)`` from the true readout.
        record: the step's :class:`~neurosnap.core.record.StepRecord`.
        dlogits: ``dL_t/do_t`` of shape ``(B, n_out)``.
    """
    if feedback is None:
        return credit
    if dlogits is None:
        raise ValueError(
            "dlogits must be given to a rule with feedback='random' (dL_t/do_t, shape (B, n_out))"
        )
    return (dlogits @ feedback)[:, None, :] * record.dout


@dataclass
class TraceState:
    """Eligibility traces of RFLO and e-prop.

    Attributes:
        eligibility: shape ``(B, S, P)``; column ``p`` holds the state variables of unit ``post[p]``.
        layout: the cell's :class:`~neurosnap.core.layout.ParamLayout`.
        feedback: ``B_fb`` of shape ``(n_out, n)``, or ``None`` for symmetric feedback.
    """

    eligibility: np.ndarray
    layout: object
    feedback: np.ndarray | None


@dataclass(frozen=True)
class TraceRule(Rule):
    """Shared by RFLO and e-prop: one ``(B, S, P)`` trace per sequence and a feedback pathway."""

    feedback: str = "random"
    seed: int = 0

    def __post_init__(self):
        validate.choice("feedback", self.feedback, FEEDBACKS)
        validate.positive_int("seed", self.seed, minimum=0)

    def init(self, model, params, batch):
        cell = model.structure()
        layout = cell.layout
        fb = (
            random_feedback(self.seed, model.n_out, cell.n_hidden, model.dtype)
            if self.feedback == "random"
            else None
        )
        eps = np.zeros((batch, cell.n_state, layout.size), dtype=model.dtype)
        return TraceState(eligibility=eps, layout=layout, feedback=fb)


@dataclass(frozen=True)
class RFLO(TraceRule):
    """RFLO: per-parameter leaky traces and a random learning signal (``docs/theory/rflo.md``).

    Args:
        feedback: ``"random"`` (default; fixed Gaussian ``B_fb`` of shape ``(n_out, n)`` drawn from
            ``seed``) or ``"symmetric"`` (the true readout weights).
        seed: seed of ``B_fb`` (int >= 0).

    Memory ``O(B S P)``; time per step ``O(B S P)`` plus ``O(B n_out n)`` for the learning signal.
    For single-variable cells (LeakyRNN, EGRU) its trace is e-prop's; for LIF/ALIF it ignores the
    current-to-voltage and voltage-to-adaptation couplings that e-prop keeps.

    >>> import numpy as np, neurosnap as ns
    >>> model = ns.Model(ns.cells.LeakyRNN(n_in=2, n_hidden=3, alpha=0.5), n_out=2)
    >>> params = model.init(seed=0)
    >>> xs = np.ones((4, 1, 2)); ys = np.zeros((4, 1), dtype=int)
    >>> _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RFLO(feedback="symmetric"))
    >>> _, h = ns.sequence_grad(model, params, xs, ys, ns.rules.EProp())
    >>> bool(np.allclose(g["cell.w_rec"], h["cell.w_rec"], rtol=0, atol=1e-14))
    True

    References:
        Murray, J. M. (2019). Local online learning in recurrent networks with random feedback.
        eLife 8, e43299.
    """

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        layout, eps = state.layout, state.eligibility
        local = record.jac_state.local
        decay = np.diagonal(local, axis1=1, axis2=2).transpose(0, 2, 1)  # (B, S, n)
        eps = decay[:, :, layout.post] * eps + layout.immediate(record.jac_params)  # eq. (2)
        state.eligibility = eps
        signal = learning_credit(state.feedback, credit, record, dlogits)  # eq. (3)
        return state, np.einsum("bap,bap->p", signal[:, :, layout.post], eps)  # eq. (4)

    def cost(self, state, record) -> dict:
        """Trace entries and multiply-adds of one step, per sequence (``docs/theory/rflo.md``).

        ``influence_size = S P`` numbers stored (``influence_nnz`` of them non-zero, batch mean);
        ``macs = 3 S P`` (decay, ``Mbar_t``, projection) plus, with random feedback,
        ``n_out n + S n`` for the learning signal.
        """
        return trace_cost(state, 3 * state.eligibility.shape[1])


def trace_cost(state, macs_per_column) -> dict:
    """``cost`` of a :class:`TraceState` whose update spends ``macs_per_column`` per column."""
    B, S, P = state.eligibility.shape
    macs = macs_per_column * P
    if state.feedback is not None:
        n_out, n = state.feedback.shape
        macs += n_out * n + S * n
    return {
        "influence_nnz": np.count_nonzero(state.eligibility) / B,
        "influence_size": float(S * P),
        "macs": float(macs),
    }
