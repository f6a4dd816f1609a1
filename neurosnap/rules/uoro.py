"""Unbiased online recurrent optimisation (Tallec & Ollivier 2018; ``docs/theory/uoro.md``).

UORO keeps, per example, a rank-1 estimate of the influence ``M_t = ds_t/dtheta``:

    M_t ~ s_tilde_t theta_tilde_t^T,   s_tilde (S n,),   theta_tilde (P,)        (uoro eq. 1)

advanced with fresh random signs ``nu_t`` in {-1, +1}^(S n) and two positive rescalings:

    s_tilde_t     = rho0 J_t s_tilde_{t-1} + rho1 nu_t                          (uoro eq. 2)
    theta_tilde_t = theta_tilde_{t-1} / rho0 + Mbar_t^T nu_t / rho1             (uoro eq. 3)
    rho0 = sqrt(|theta_tilde_{t-1}| / |J_t s_tilde_{t-1}|),
    rho1 = sqrt(|Mbar_t^T nu_t| / |nu_t|)                                      (uoro eq. 4)
    dL_t/dtheta ~ (c_t . s_tilde_t) theta_tilde_t                              (uoro eq. 5)

so that ``E_nu[s_tilde_t theta_tilde_t^T] = M_t`` given the past (uoro eq. 6): the gradient is an
unbiased estimate of RTRL's. ``J_t s_tilde`` is one Jacobian-vector product through the step record
(:meth:`~neurosnap.core.record.StateJacobian.matvec`), ``Mbar_t^T nu`` one contraction of the immediate influence; for a learned
EGRU threshold it includes the non-local part (``docs/theory/cells.md`` eq. (25), contracted as in
eq. (27)), so the estimate stays unbiased.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..core import validate
from ..core.layout import REC
from .base import Rule


@dataclass
class UOROState:
    """Per-example rank-1 influence and the sign stream.

    Attributes:
        s_tilde: shape ``(B, S, n)`` (the ``S n`` state factor of each example).
        theta_tilde: shape ``(B, P)``.
        rng: the ``numpy.random.Generator`` drawing the signs ``nu``.
        layout: the cell's :class:`~neurosnap.core.layout.ParamLayout`.
        n_rec: number of existing recurrent weights, all gates (for :meth:`UORO.cost`).
    """

    s_tilde: np.ndarray
    theta_tilde: np.ndarray
    rng: np.random.Generator
    layout: object
    n_rec: int


@dataclass(frozen=True)
class UORO(Rule):
    """UORO: unbiased rank-1 online estimate of the RTRL gradient (``docs/theory/uoro.md``).

    Args:
        seed: seed of the random signs (int >= 0).

    One stream of signs serves the whole batch: at every step one array ``nu`` of shape
    ``(B, S, n)`` is drawn, example ``b`` using row ``b``. Examples therefore never share signs and the
    batch gradient is the sum of the examples' UORO gradients *with those signs*; it equals the sum of
    separate batch-1 runs in expectation only (a batch-1 run draws other signs).

    The stream is seeded by ``seed`` together with a digest of ``params`` passed to :meth:`init`:
    the same call is deterministic, while online training (which re-initialises the rule state every
    sequence, with parameters that have changed) does not replay the same signs on every sequence,
    which would bias the estimate.

    Memory ``O(B (S n + P))``; time per step one Jacobian-vector product plus ``O(B S P)``.

    >>> import numpy as np, neurosnap as ns
    >>> model = ns.Model(ns.cells.LeakyRNN(n_in=2, n_hidden=3), n_out=2)
    >>> params = model.init(seed=0)
    >>> xs = np.ones((4, 1, 2)); ys = np.zeros((4, 1), dtype=int)
    >>> _, g1 = ns.sequence_grad(model, params, xs, ys, ns.rules.UORO(seed=1))
    >>> _, g2 = ns.sequence_grad(model, params, xs, ys, ns.rules.UORO(seed=1))
    >>> bool(np.array_equal(g1["cell.w_rec"], g2["cell.w_rec"]))
    True

    References:
        Tallec, C. & Ollivier, Y. (2018). Unbiased online recurrent optimization. ICLR.
    """

    seed: int = 0

    def __post_init__(self):
        validate.positive_int("seed", self.seed, minimum=0)

    def init(self, model, params, batch):
        cell = model.structure()
        layout = cell.layout
        return UOROState(
            s_tilde=np.zeros((batch, cell.n_state, cell.n_hidden), dtype=model.dtype),
            theta_tilde=np.zeros((batch, layout.size), dtype=model.dtype),
            rng=np.random.default_rng([self.seed, params_digest(params)]),
            layout=layout,
            n_rec=int(np.count_nonzero(layout.kind == REC)),
        )

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        layout = state.layout
        s, theta = state.s_tilde, state.theta_tilde
        B = s.shape[0]
        js = record.jac_state.matvec(s)
        nu = (2 * state.rng.integers(0, 2, size=s.shape) - 1).astype(s.dtype)
        imm = layout.immediate(record.jac_params)  # (B, S, P)
        nu_m = np.einsum("bap,bap->bp", nu[:, :, layout.post], imm)  # Mbar_t^T nu
        if layout.n_thr:  # learned thresholds: the non-local part of Mbar_t^T nu too
            nu_m[:, layout.thr_cols] += layout.nonlocal_vjp(
                nu, record.jac_params, record.jac_state.w_rec
            )
        rho0 = _ratio(_norm(theta), _norm(js))  # eq. (4)
        rho1 = _ratio(_norm(nu_m), np.full(B, np.sqrt(nu[0].size), dtype=s.dtype))
        s = rho0[:, None, None] * js + rho1[:, None, None] * nu  # eq. (2)
        theta = theta / rho0[:, None] + nu_m / rho1[:, None]  # eq. (3)
        state.s_tilde, state.theta_tilde = s, theta
        return state, np.einsum("ban,ban->b", credit, s) @ theta  # eq. (5)

    def cost(self, state, record) -> dict:
        """Trace entries and multiply-adds of one step, per sequence (``docs/theory/uoro.md``).

        ``influence_size = S n + P`` numbers stored (``influence_nnz`` of them non-zero, batch mean);
        ``macs = (S^2 n + S n + N_rec + S G n)`` for ``J_t s_tilde`` plus ``2 S P`` for ``Mbar_t`` and
        ``Mbar_t^T nu`` plus ``3 (S n + P)`` for norms and rescaled updates plus ``S n + P`` for the
        gradient, where ``N_rec`` counts the existing recurrent weights of all gates.
        """
        B, S, n = state.s_tilde.shape
        P = state.theta_tilde.shape[1]
        G = record.jac_state.drec.shape[2]
        jvp = S * S * n + S * n + state.n_rec + S * G * n
        nnz = np.count_nonzero(state.s_tilde) + np.count_nonzero(state.theta_tilde)
        return {
            "influence_nnz": nnz / B,
            "influence_size": float(S * n + P),
            "macs": float(jvp + 2 * S * P + 3 * (S * n + P) + S * n + P),
        }


def _norm(x):
    return np.sqrt(np.sum(x.reshape(x.shape[0], -1) ** 2, axis=1))


def _ratio(num, den):
    """``sqrt(num / den)`` per example; 1 where either is zero (any positive value keeps eq. (6))."""
    ok = (num > 0) & (den > 0)
    return np.where(ok, np.sqrt(num / np.where(ok, den, 1)), 1).astype(num.dtype)


def params_digest(params) -> int:
    """A 64-bit digest of ``params`` (names and bytes): the second word of UORO's seed."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(params):
        h.update(name.encode())
        h.update(np.ascontiguousarray(params[name]).tobytes())
    return int.from_bytes(h.digest(), "little")
