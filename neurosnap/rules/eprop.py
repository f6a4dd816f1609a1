"""Eligibility propagation (Bellec et al. 2020; ``docs/theory/eprop.md``).

Each parameter ``p`` carries an eligibility vector over the state variables of the unit it drives,
propagated by that unit's local block of ``J_t`` only (no term through the recurrent weights, not even
through an autapse):

    eps_t[:, p] = local_t[:, :, post p] eps_{t-1}[:, p] + Mbar_t[(:, post p), p]      (eprop eq. 2)
    e_t[p] = dout_t[:, post p] . eps_t[:, p]                                          (eprop eq. 3)
    dL/dtheta_p ~ sum_t L_t[post p] e_t[p]                                            (eprop eq. 4)

With the total learning signal ``dL/dy_t`` this factorisation is exact (eprop eq. 1); e-prop uses the
partial one, ``L_t = W_out^T dL_t/do_t`` (symmetric feedback, ``L_t dout_t`` is the credit ``c_t``) or
``B_fb^T dL_t/do_t`` (random feedback, :func:`neurosnap.rules.rflo.random_feedback`). With symmetric
feedback the gradient equals BPTT with the recurrent part of ``J_t`` removed from the backward pass
(eprop eq. 5), and exact BPTT when that part vanishes, e.g. zero recurrent weights (eprop eq. 6).

A learned EGRU threshold keeps its local immediate influence in eq. (2) and, like every term through
the recurrent weights, loses the non-local one through ``y_{t-1}`` (``docs/theory/cells.md``
eq. (24)-(25)); the training loop adds its direct readout term (cells eq. (26)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rflo import TraceRule, learning_credit, trace_cost


@dataclass(frozen=True)
class EProp(TraceRule):
    """E-prop with symmetric or random feedback (``docs/theory/eprop.md``).

    Args:
        feedback: ``"symmetric"`` (default; the true readout weights) or ``"random"`` (a fixed Gaussian
            ``B_fb`` of shape ``(n_out, n)`` drawn from ``seed``).
        seed: seed of ``B_fb`` (int >= 0).

    For LIF the eligibility vector has two entries per synapse (membrane ``v`` and synaptic current
    ``i``), for ALIF three (``v``, ``i`` and the adaptation ``a``: Bellec's adaptive eligibility);
    for LeakyRNN and EGRU one ("natural" e-prop). Memory ``O(B S P)``; time per step ``O(B S^2 P)``.

    >>> import numpy as np, neurosnap as ns
    >>> model = ns.Model(ns.cells.ALIF(n_in=2, n_hidden=3, w_in_scale=30.0), n_out=2)
    >>> params = model.init(seed=0)
    >>> params["cell.w_rec"][:] = 0          # recurrence only through each unit's own state
    >>> xs = np.ones((6, 1, 2)); ys = np.zeros((6, 1), dtype=int)
    >>> _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.EProp())
    >>> _, h = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
    >>> bool(max(abs(g[k] - h[k]).max() for k in g) < 1e-12)
    True

    References:
        Bellec, G. et al. (2020). A solution to the learning dilemma for recurrent networks of spiking
        neurons. Nature Communications 11, 3625.
    """

    feedback: str = "symmetric"
    seed: int = 0

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        layout, eps = state.layout, state.eligibility
        local = record.jac_state.local
        new = layout.immediate(record.jac_params)  # Mbar_t
        for a, c in _couplings(local):  # eq. (2)
            new[:, a] += local[:, a, c][:, layout.post] * eps[:, c]
        state.eligibility = new
        signal = learning_credit(state.feedback, credit, record, dlogits)  # L_t dout_t
        return state, np.einsum("bap,bap->p", signal[:, :, layout.post], new)  # eq. (3)-(4)

    def cost(self, state, record) -> dict:
        """Trace entries and multiply-adds of one step, per sequence (``docs/theory/eprop.md``).

        ``influence_size = S P`` numbers stored (``influence_nnz`` of them non-zero, batch mean);
        ``macs = P (K + 2 S)`` where ``K <= S^2`` counts the couplings ``(a, c)`` with a non-zero
        ``local[:, a, c]`` at this step, plus, with random feedback, ``n_out n + S n`` for the
        learning signal.
        """
        S = state.eligibility.shape[1]
        return trace_cost(state, len(_couplings(record.jac_state.local)) + 2 * S)


def _couplings(local):
    """Pairs ``(a, c)`` whose entry ``local[:, a, c]`` is non-zero somewhere in the batch."""
    S = local.shape[1]
    return [(a, c) for a in range(S) for c in range(S) if np.any(local[:, a, c] != 0)]
