"""Exact real-time recurrent learning (``docs/theory/rtrl.md``).

The influence matrix ``M_t = ds_t/dtheta`` (rows: state variables of all units, columns: existing
parameters) follows

    M_t = J_t M_{t-1} + Mbar_t                                          (rtrl eq. 4)
    dL_t/dtheta = c_t^T M_t,   c_t = dL_t/ds_t                          (rtrl eq. 6)

``sparse=False`` builds the dense Jacobian and multiplies (the reference). ``sparse=True`` (default)
uses the structure of ``J_t`` (rtrl eq. 3): the per-unit block-diagonal part costs ``O(S^2 n P)`` and
the recurrent part touches only the influence rows of units inside the surrogate's support and
only the weights that exist, which is exact, not an approximation (rtrl eq. 7).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sparse import kernels
from .base import Rule


@dataclass
class InfluenceState:
    """The influence matrix ``M`` of shape ``(B, S, n, P)`` plus the parameter layout."""

    influence: np.ndarray
    layout: object
    graph: object


@dataclass(frozen=True)
class RTRL(Rule):
    """Exact RTRL.

    Args:
        sparse: exploit activity and weight sparsity without approximation (default True); False
            multiplies the dense ``(S n x S n)`` Jacobian, the reference implementation.

    Memory ``O(B S n P)``, constant in sequence length.
    """

    sparse: bool = True

    def __post_init__(self):
        if not isinstance(self.sparse, bool):
            raise TypeError(f"sparse must be a bool, got {self.sparse!r}")

    def init(self, model, params, batch):
        cell = model.cell
        layout = cell.layout
        M = np.zeros((batch, cell.n_state, cell.n_hidden, layout.size), dtype=model.dtype)
        return InfluenceState(influence=M, layout=layout, graph=kernels.RecurrentGraph(cell.mask))

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        M, layout = state.influence, state.layout
        B, S, n, P = M.shape
        if self.sparse:
            M = kernels.propagate_influence(M, record.jac_state, state.graph)
        else:
            J = record.jac_state.to_dense()                                     # (B, Sn, Sn)
            M = np.matmul(J, M.reshape(B, S * n, P)).reshape(B, S, n, P)
        M[:, :, layout.post, np.arange(P)] += layout.immediate(record.jac_params)   # + Mbar_t
        state.influence = M
        return state, np.einsum("ban,banp->p", credit, M)                      # eq. (6)
