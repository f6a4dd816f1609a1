"""Exact real-time recurrent learning (``docs/theory/rtrl.md``).

The influence matrix ``M_t = ds_t/dtheta`` (rows: state variables of all units, columns: existing
parameters) follows

    M_t = J_t M_{t-1} + Mbar_t                                          (rtrl eq. 4)
    dL_t/dtheta = c_t^T M_t,   c_t = dL_t/ds_t                          (rtrl eq. 6)

``sparse=False`` builds the dense Jacobian and multiplies (the reference). ``sparse=True`` (default)
uses the structure of ``J_t`` (rtrl eq. 3): the per-unit block-diagonal part costs ``O(S^2 n P)`` and
the recurrent part touches only the influence rows of units inside the surrogate's support and
only the weights that exist, which is exact, not an approximation (rtrl eq. 7; counted in
``docs/theory/snap.md`` eq. (8)). The whole step (product, immediate influence, gradient) is one
numba kernel, :func:`neurosnap.sparse.kernels.block_step`, writing into a second buffer that is
then swapped in, so nothing influence-sized is allocated per step.

When a step's counted sparse work is more than ``1 / DENSE_SWITCH`` of the dense product's (dense
weights and most units inside the surrogate's support), the sparse engine multiplies by the dense
Jacobian with BLAS instead, on the same storage: both paths are exact, the choice only follows
speed (``DENSE_SWITCH`` measured in ``docs/benchmarks.md``: BLAS does 3-5x more multiply-adds per
second than the sparse kernel on the benchmark machine).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sparse import kernels
from ..sparse import stats as _stats
from .base import Rule

#: the sparse engine uses BLAS on the dense Jacobian when ``DENSE_SWITCH * sparse > dense``
#: multiply-adds for the step (0: never, ``inf``: always).
DENSE_SWITCH = 4.0


@dataclass
class InfluenceState:
    """The influence matrix ``M`` plus the parameter layout.

    Attributes:
        data: the stored influence ``M``, ``(B, S, n, P)`` in C order (columns in
            :class:`~neurosnap.core.layout.ParamLayout` order).
        layout: the cell's :class:`~neurosnap.core.layout.ParamLayout`.
        graph: :class:`~neurosnap.sparse.kernels.RecurrentGraph` of the cell's mask.
        plan: :class:`~neurosnap.sparse.kernels.BlockPlan` (sparse engine) or None (dense).
        grad: scratch gradient accumulator, shape ``(P,)``.
        spare: the sparse engine's second buffer (the next step is written there, then swapped).
        blas_steps: steps the sparse engine ran with BLAS (see ``DENSE_SWITCH``).
        last_blas: whether the last step ran with BLAS.
    """

    data: np.ndarray
    layout: object
    graph: object
    plan: object = None
    grad: np.ndarray | None = None
    spare: np.ndarray | None = None
    blas_steps: int = 0
    last_blas: bool = False

    @property
    def influence(self) -> np.ndarray:
        """``M`` as a ``(B, S, n, P)`` array (the stored array itself, not a copy)."""
        return self.data


@dataclass(frozen=True)
class RTRL(Rule):
    """Exact real-time recurrent learning: the influence recursion ``M_t = J_t M_{t-1} + Mbar_t``
    (``docs/theory/rtrl.md`` eq. (4)) carried forward online, gradient ``sum_t c_t^T M_t`` (eq. (6)).

    Args:
        sparse: exploit activity and weight sparsity without approximation (default True); False
            multiplies the dense ``(S n x S n)`` Jacobian, the reference implementation.

    Memory ``O(B S n P)`` (two buffers for the sparse engine), constant in sequence length. Both
    settings give the same gradient to round-off; per step and sequence ``sparse=True`` costs
    ``P`` times (local non-zeros + one per connection from a unit inside the surrogate's support +
    credit non-zeros), ``sparse=False`` costs ``(S n)^2 P`` (see :meth:`cost`).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> model = ns.Model(ns.cells.EGRU(n_in=3, n_hidden=6, density=0.5), n_out=2)
        >>> params = model.init(seed=0)
        >>> xs = np.random.default_rng(0).normal(size=(30, 2, 3)); ys = np.zeros((30, 2), dtype=int)
        >>> _, exact = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
        >>> _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())            # sparse engine
        >>> _, g_dense = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL(sparse=False))
        >>> max(float(abs(g[k] - exact[k]).max()) for k in params) < 1e-10          # == BPTT
        True
        >>> max(float(abs(g[k] - g_dense[k]).max()) for k in params) < 1e-10        # sparse == dense
        True
    """

    sparse: bool = True

    def __post_init__(self):
        if not isinstance(self.sparse, bool):
            raise TypeError(f"sparse must be a bool, got {self.sparse!r}")

    def init(self, model, params, batch):
        cell = model.cell
        layout = cell.layout
        shape = (batch, cell.n_state, cell.n_hidden, layout.size)
        graph = kernels.RecurrentGraph(cell.mask)
        grad = np.zeros(layout.size, dtype=model.dtype)
        if not self.sparse:
            return InfluenceState(data=np.zeros(shape, model.dtype), layout=layout, graph=graph,
                                  grad=grad)
        plan = kernels.BlockPlan.dense(layout, graph, cell.n_state, batch)
        return InfluenceState(data=np.zeros(shape, model.dtype), layout=layout, graph=graph,
                              plan=plan, grad=grad, spare=np.zeros(shape, model.dtype))

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        layout = state.layout
        if not self.sparse:
            M = state.data
            B, S, n, P = M.shape
            J = record.jac_state.to_dense()                                     # (B, Sn, Sn)
            M = np.matmul(J, M.reshape(B, S * n, P)).reshape(B, S, n, P)
            M[:, :, layout.post, np.arange(P)] += layout.immediate(record.jac_params)  # + Mbar_t
            state.data = M
            return state, np.einsum("ban,banp->p", credit, M)                  # eq. (6)
        return state, exact_step(state, record, credit)

    def cost(self, state, record):
        """Influence non-zeros stored, numbers stored and multiply-adds of the last step, per
        sequence: the sparse kernel's counted work (``docs/theory/snap.md`` eq. (8)), or the dense
        product's on steps the sparse engine handed to BLAS."""
        B, S, n, P = state.data.shape
        out = {"influence_nnz": np.count_nonzero(state.data) / B, "influence_size": float(S * n * P)}
        if self.sparse and not state.last_blas:
            out["macs"] = _stats.exact_sparse_macs(record, state.graph, state.layout)
        else:
            out["macs"] = _stats.dense_rtrl_macs(record, P)
        return out


def exact_step(state, record, credit) -> np.ndarray:
    """One step of the sparse exact engine on an :class:`InfluenceState` (with a plan and a spare
    buffer): the numba kernel, or BLAS on the dense Jacobian when the counted sparse work is more
    than ``1 / DENSE_SWITCH`` of the dense product's. Returns the gradient ``(P,)``."""
    layout = state.layout
    B, S, n, P = state.data.shape
    state.last_blas = DENSE_SWITCH > 0 and (
        DENSE_SWITCH * _stats.kernel_macs_per_column(record, state.graph) > B * (S * n) ** 2)
    if state.last_blas:
        new = state.spare.reshape(B, S * n, P)
        np.matmul(record.jac_state.to_dense(), state.data.reshape(B, S * n, P), out=new)
        new = state.spare
        new[:, :, layout.post, np.arange(P)] += layout.immediate(record.jac_params)
        grad = np.matmul(credit.reshape(B, 1, S * n), new.reshape(B, S * n, P)).sum(axis=(0, 1))
        state.blas_steps += 1
    else:
        grad = state.grad
        grad[:] = 0
        kernels.block_step(state.data.reshape(-1), state.spare.reshape(-1), state.plan,
                           state.graph, record.jac_state, record.jac_params, credit, grad)
        grad = grad.copy()
    state.data, state.spare = state.spare, state.data
    return grad
