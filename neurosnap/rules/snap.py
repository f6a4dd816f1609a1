"""SnAp-n: RTRL restricted to the influence entries reachable within n steps (``docs/theory/snap.md``).

Menick et al., "Practical Real Time Recurrent Learning with a Sparse Approximation", ICLR 2021
(arXiv 2006.07232). With the one-step connectivity ``A[k, i] = mask[k, i]`` and its reachability
``R_h = nz(sum_{m <= h} A^m)`` (snap eq. (4)), SnAp-n keeps the entry of unit ``k`` (all its state
variables) and parameter ``p`` iff ``R_{n-1}[k, post[p]]`` (snap eq. (5)) and runs

    M_t = P_n * (J_t M_{t-1} + Mbar_t),    dL_t/dtheta = c_t^T M_t          (snap eq. (6), (3))

- ``n = 1`` keeps each parameter's own unit: ``M_t[:, p] = D_ii M_{t-1}[:, p] + Mbar_t[:, p]`` with
  ``D_ii`` the unit's own ``S x S`` block of ``J_t``, autapse term included (snap eq. (7)); storage
  ``(B, S, P)``, i.e. ``O(p)``, and a dedicated kernel.
- ``n >= 2`` stores, per postsynaptic unit ``q``, the block of rows ``R_{n-1}[:, q]`` times the
  columns of ``q``'s parameters, and updates it with the sparse exact kernel restricted to those rows
  (only connections from units inside the surrogate's support cost anything, snap eq. (8)).
- Once ``n - 1`` reaches the largest distance in the connectivity graph the pattern is full and
  SnAp-n *is* exact RTRL (snap eq. (9)); from a zero influence it is exact for the first ``n`` steps
  (snap eq. (10)).
- A learned EGRU threshold's immediate influence already reaches its unit's postsynaptic units, so
  SnAp-n keeps ``R_n`` for it, one hop more (snap eq. (13)); its columns are a separate
  ``(B, S, n, n)`` block (:mod:`neurosnap.rules._thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import validate
from ..core.graph import RecurrentGraph
from ..core.layout import ParamLayout
from ..sparse import kernels, patterns
from ..sparse import stats as _stats
from . import _thresholds
from . import rtrl as _rtrl
from .base import Rule


@dataclass
class SnApState:
    """SnAp influence storage.

    Attributes:
        data: ``(B, S, P)`` for SnAp-1; for ``n >= 2`` the flat buffer of ``plan``.
        layout: the cell's :class:`~neurosnap.core.layout.ParamLayout`.
        graph: :class:`~neurosnap.core.graph.RecurrentGraph` of the cell's mask.
        order: the SnAp order ``n``.
        plan: :class:`~neurosnap.sparse.kernels.BlockPlan` (``n >= 2``) or None.
        spare: second buffer of ``plan`` (``n >= 2``).
        grad: gradient accumulator in storage column order, shape ``(P,)``.
        exact: when the pattern is all of ``M`` (snap eq. (9), strongly connected graph), the
            state of the sparse exact RTRL engine the rule runs instead (same numbers, and it may
            use BLAS on dense steps), else None.
        thr, thr_keep, thr_layout: learned thresholds (else None): their ``(B, S, n, n)`` block,
            its pattern ``R_n`` (``docs/theory/snap.md`` eq. (13)) and the full layout; ``layout``
            is then the layout without them, which the kernels run on.
    """

    data: np.ndarray
    layout: ParamLayout
    graph: RecurrentGraph
    order: int
    plan: kernels.BlockPlan | None = None
    spare: np.ndarray | None = None
    grad: np.ndarray | None = None
    exact: _rtrl.InfluenceState | None = None
    thr: np.ndarray | None = None
    thr_keep: np.ndarray | None = None
    thr_layout: ParamLayout | None = None

    @property
    def influence(self) -> np.ndarray:
        """The kept influence as a dense ``(B, S, n, P)`` array, zeros outside the pattern."""
        if self.exact is not None:
            return self.exact.influence
        if self.plan is not None:
            out = self.plan.to_dense(self.data)
        else:
            B, S, P = self.data.shape
            out = np.zeros((B, S, self.graph.n, P), dtype=self.data.dtype)
            out[:, :, self.layout.post, np.arange(P)] = self.data
        return out if self.thr is None else np.concatenate([out, self.thr], axis=3)

    @property
    def stored(self) -> int:
        """Numbers stored per sequence (batch element)."""
        if self.exact is not None:
            return int(np.prod(self.exact.shape[1:]))
        thr = (
            0
            if self.thr is None or self.thr_keep is None  # thr_keep is set with thr
            else int(np.count_nonzero(self.thr_keep)) * self.thr.shape[1]
        )
        if self.plan is not None:
            return self.plan.stored_per_sequence() + thr
        return int(np.prod(self.data.shape[1:])) + thr


@dataclass(frozen=True)
class SnAp(Rule):
    """SnAp-n: RTRL's influence kept only where a parameter can reach within ``n`` steps
    (``docs/theory/snap.md`` eq. (5)-(6)); exact RTRL once ``n`` reaches the saturation order.

    Args:
        n: order ``>= 1``: keep influence entries reachable within ``n`` steps of the recurrent core.

    Memory per sequence: ``S P`` numbers for ``n = 1`` (snap eq. (11)); for ``n >= 2``,
    ``S sum_q |R_{n-1}(q)| P_q`` (``P_q`` parameters drive unit ``q``), which is ``S n P`` (exact RTRL)
    once the pattern saturates. Constant in sequence length.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> model = ns.Model(ns.cells.EGRU(n_in=3, n_hidden=6, density=0.5), n_out=2)
        >>> params = model.init(seed=0)
        >>> xs = np.random.default_rng(0).normal(size=(30, 2, 3)); ys = np.zeros((30, 2), dtype=int)
        >>> _, exact = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
        >>> def cosine(g):
        ...     a = np.concatenate([g[k].ravel() for k in params if k.startswith("cell.")])
        ...     b = np.concatenate([exact[k].ravel() for k in params if k.startswith("cell.")])
        ...     return round(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), 3)
        >>> [cosine(ns.sequence_grad(model, params, xs, ys, ns.rules.SnAp(n=n))[1]) for n in (1, 2, 3)]
        [0.998, 1.0, 1.0]
        >>> from neurosnap.sparse.patterns import saturation_order
        >>> n = saturation_order(model.cell.mask)    # SnAp-n is exact RTRL from this order on
        >>> _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.SnAp(n=n))
        >>> max(float(abs(g[k] - exact[k]).max()) for k in params) < 1e-10
        True
    """

    n: int = 1

    def __post_init__(self):
        validate.positive_int("n", self.n)

    def init(self, model, params, batch):
        cell = model.structure()
        full, S, dtype = cell.layout, cell.n_state, model.dtype
        layout = full.base  # the kernels' columns: thresholds kept apart
        graph = cell.graph
        grad = np.zeros(layout.size, dtype=dtype)
        rows = patterns.snap_rows(cell.mask, self.n)
        if self.n > 1 and all(len(r) == cell.n_hidden for r in rows):  # exact RTRL (eq. (9))
            exact = _rtrl.RTRL(dense_switch=_rtrl.DENSE_SWITCH).init(model, params, batch)
            return SnApState(
                data=exact.data, layout=layout, graph=graph, order=self.n, grad=grad, exact=exact
            )
        thr = {}
        if full.n_thr:  # threshold theta_j: rows reachable from j within n steps (eq. (13))
            keep = patterns.reachability(cell.mask, self.n)[:, full.post[full.thr_cols]]
            thr = {
                "thr": _thresholds.new_block(full, batch, S, dtype),
                "thr_keep": keep,
                "thr_layout": full,
            }
        if self.n == 1:
            return SnApState(
                data=np.zeros((batch, S, layout.size), dtype=dtype),
                layout=layout,
                graph=graph,
                order=1,
                grad=grad,
                **thr,
            )
        plan = kernels.BlockPlan.from_rowsets(layout, graph, S, batch, rows)
        return SnApState(
            data=np.zeros(plan.size, dtype=dtype),
            layout=layout,
            graph=graph,
            order=self.n,
            plan=plan,
            spare=np.zeros(plan.size, dtype=dtype),
            grad=grad,
            **thr,
        )

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        if state.exact is not None:  # snap eq. (9)
            g = _rtrl.sparse_step(state.exact, record, credit)
            state.data = state.exact.data
            return state, g
        grad = state.grad
        grad[:] = 0
        if state.plan is None:  # snap eq. (7)
            kernels.snap1_step(
                state.data,
                state.layout,
                state.graph,
                record.jac_state,
                record.jac_params,
                credit,
                grad,
            )
            out = grad.copy()
        else:
            kernels.block_step(
                state.data,
                state.spare,
                state.plan,
                state.graph,
                record.jac_state,
                record.jac_params,
                credit,
                grad,
            )  # eq. (6)
            state.data, state.spare = state.spare, state.data
            out = np.empty_like(grad)
            out[state.plan.perm] = grad
        if state.thr is None:
            return state, out
        state.thr, g_thr = _thresholds.block_step(
            state.thr, record, credit, state.graph, state.thr_layout, keep=state.thr_keep
        )
        return state, np.concatenate([out, g_thr])

    def cost(self, state, record):
        """Influence non-zeros stored, numbers stored and multiply-adds of the last step, per sequence."""
        if state.exact is not None:
            return _rtrl.RTRL().cost(state.exact, record)
        B = len(record.events)
        nnz = np.count_nonzero(state.data) + (
            0 if state.thr is None else np.count_nonzero(state.thr)
        )
        out = {"influence_nnz": nnz / B, "influence_size": float(state.stored)}
        if state.plan is None:
            out["macs"] = _stats.snap1_macs(record, state.layout.size)
        else:
            out["macs"] = _stats.plan_macs(record, state.plan, state.graph, state.layout)
        return out
