"""Exact real-time recurrent learning (``docs/theory/rtrl.md``).

The influence matrix ``M_t = ds_t/dtheta`` (rows: state variables of all units, columns: existing
parameters) follows

    M_t = J_t M_{t-1} + Mbar_t                                          (rtrl eq. 4)
    dL_t/dtheta = c_t^T M_t,   c_t = dL_t/ds_t                          (rtrl eq. 6)

``sparse=False`` builds the dense Jacobian and multiplies (the reference). ``sparse=True`` (default)
uses the structure of ``J_t`` (rtrl eq. 3): the per-unit block-diagonal part costs ``O(S^2 n P)`` and
the recurrent part touches only the influence rows of units inside the surrogate's support and
only the weights that exist, which is exact, not an approximation (rtrl eq. 7; counted in
``docs/theory/snap.md`` eq. (8)). The influence is stored in *panels* (column tiles whose ``n`` rows
are contiguous, sized for the L2 cache by ``tile_bytes``) and the whole step (product, immediate
influence, gradient) is one numba kernel, :func:`neurosnap.sparse.kernels.exact_panel_step`, writing
into a second buffer that is then swapped in, so nothing influence-sized is allocated per step.
Panels of the old influence that are still exactly zero (parameters whose presynaptic unit or input
has not been active since the sequence started) are not multiplied.

When a step's counted sparse work is more than ``1 / dense_switch`` of the dense product's (dense
weights and most units inside the surrogate's support), the sparse engine multiplies by the dense
Jacobian with BLAS instead, panel by panel on the same storage: both paths are exact, the choice
only follows speed (``DENSE_SWITCH``, the default, measured in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..core.graph import RecurrentGraph
from ..core.layout import ParamLayout
from ..sparse import kernels
from ..sparse import stats as _stats
from . import _thresholds
from .base import Rule

#: default of ``RTRL.dense_switch``: the sparse engine uses BLAS on the dense Jacobian when
#: ``dense_switch * sparse > dense`` multiply-adds for the step (0: never, ``inf``: always).
DENSE_SWITCH = 4.0
#: the sparse engine's kernels: ``"panels"`` (:func:`~neurosnap.sparse.kernels.exact_panel_step`,
#: the default) and ``"gather"`` (:func:`~neurosnap.sparse.kernels.block_step`, the generic block
#: kernel SnAp-n uses); both run on the same panel storage and give the same numbers.
KERNELS = ("panels", "gather")


class _BufferPool:
    """Influence buffers of the sparse engine, handed back when their state is garbage-collected
    and reused by the next :meth:`RTRL.init` for the same cell, batch size and dtype.

    A training loop starts a fresh influence for every sequence; at hundreds of megabytes
    (n = 512) newly mapped memory costs page faults on every first touch, more than the
    sequence's first steps. A reused buffer is re-zeroed only on the panels its zero flags do not
    already vouch for. Pairs ``(buffer, flags)`` are kept together: the engine swaps them in sync.
    Entries are dropped with their cell.
    """

    def __init__(self):
        self.free: dict = {}

    def take(self, cell, dtype, plan):
        # the key fixes the panel geometry, so that flags mean the same panels on reuse
        batch, n_panels, size = plan.B, len(plan.blk_base), plan.S * plan.n * len(plan.perm)
        key = (
            id(cell),
            np.dtype(dtype).str,
            batch,
            plan.S,
            plan.n,
            len(plan.perm),
            int(plan.blk_ncol[0]),
        )
        pairs = self.free.get(key)
        if not pairs:
            if key not in self.free:
                self.free[key] = []
                weakref.finalize(cell, self.free.pop, key, None)
            return [
                (np.zeros((batch, size), dtype), np.ones((batch, n_panels), np.uint8))
                for _ in range(2)
            ], key
        out = [pairs.pop(), pairs.pop()]
        for buf, flags in out:
            _zero_panels(buf, flags, plan)
        return out, key

    def give(self, key, pairs):
        if key in self.free:
            self.free[key].extend(pairs)


def _zero_panels(buf, flags, plan):
    """Zero the panels of ``buf (B, S n P)`` not flagged as known zero, then flag them all."""
    S, n = plan.S, plan.n
    view = buf.reshape(plan.B, S, -1)
    for b, q in zip(*np.nonzero(flags == 0), strict=True):
        lo = plan.blk_col0[q] * n
        view[b, :, lo : lo + n * plan.blk_ncol[q]] = 0
    flags[:] = 1


_POOL = _BufferPool()


@dataclass
class InfluenceState:
    """The influence matrix ``M`` plus the parameter layout.

    Attributes:
        data: the stored influence ``M``: ``(B, S, n, P)`` in C order (columns in
            :class:`~neurosnap.core.layout.ParamLayout` order) for the dense reference; for the
            sparse engine ``(B, S n P)``, the flat panel storage of ``plan`` (read it back as
            ``(B, S, n, P)`` with :attr:`influence`). The sparse engine's two buffers go back to
            a pool when the state is garbage-collected and serve the next ``init`` of the same
            cell: copy ``data`` to keep it beyond the state's life.
        layout: the cell's :class:`~neurosnap.core.layout.ParamLayout`.
        graph: :class:`~neurosnap.core.graph.RecurrentGraph` of the cell's mask.
        plan: :class:`~neurosnap.sparse.kernels.BlockPlan` (sparse engine) or None (dense).
        grad: scratch gradient accumulator, shape ``(P,)``.
        spare: the sparse engine's second buffer (the next step is written there, then swapped).
        blas_steps: steps the sparse engine ran with BLAS (see ``DENSE_SWITCH``).
        last_blas: whether the last step ran with BLAS.
        work: the panel kernel's scratch arrays (:class:`~neurosnap.sparse.kernels.ExactWork`).
        zero_flags: ``[for data, for spare]``, ``uint8 (B, panels)``: 1 where that buffer's panel
            is known to be all zeros (kept by the panel kernel; see
            :func:`~neurosnap.sparse.kernels.exact_panel_step`).
        fired: ``uint8 (B, groups)``, presynaptic units and inputs active at some step of the
            sequence so far (columns of the others are still exactly zero and are not
            multiplied; see :func:`~neurosnap.sparse.kernels.exact_panel_step`).
        live_cols: ``(B,)`` columns the panel kernel multiplied at the last step (the others were
            still exactly zero), or None when all ``P`` were.
        skipped: (batch entry, panel) pairs skipped as exactly zero so far.
        dense_switch, kernel: the rule's settings the engine runs with.
        thr: learned thresholds with the sparse engine: the ``(B, S, n, n)`` block of their
            influence columns, kept apart from the panels (:mod:`neurosnap.rules._thresholds`);
            else None. ``layout`` is then the layout without them (``ParamLayout.base``) and
            ``thr_layout`` the full one.
    """

    data: np.ndarray
    layout: ParamLayout
    graph: RecurrentGraph
    plan: kernels.BlockPlan | None = None
    grad: np.ndarray | None = None
    spare: np.ndarray | None = None
    blas_steps: int = 0
    last_blas: bool = False
    work: object = None
    zero_flags: list | None = None
    fired: np.ndarray | None = None
    live_cols: np.ndarray | None = None
    skipped: int = 0
    dense_switch: float = DENSE_SWITCH
    kernel: str = "panels"
    _imm_off: np.ndarray | None = None
    thr: np.ndarray | None = None
    thr_layout: ParamLayout | None = None

    @property
    def influence(self) -> np.ndarray:
        """``M`` as a ``(B, S, n, P)`` array: the stored array itself for the dense reference, a
        copy read out of the panels for the sparse engine."""
        if self.plan is None:
            return self.data
        M = self.plan.to_dense(self.data.reshape(-1))
        return M if self.thr is None else np.concatenate([M, self.thr], axis=3)

    @property
    def shape(self) -> tuple:
        """``(B, S, n, P)`` of the influence."""
        if self.plan is None:
            return self.data.shape
        p = self.plan
        return (p.B, p.S, p.n, len(p.perm) + (0 if self.thr is None else self.thr.shape[3]))


@dataclass(frozen=True)
class RTRL(Rule):
    """Exact real-time recurrent learning: the influence recursion ``M_t = J_t M_{t-1} + Mbar_t``
    (``docs/theory/rtrl.md`` eq. (4)) carried forward online, gradient ``sum_t c_t^T M_t`` (eq. (6)).

    Args:
        sparse: exploit activity and weight sparsity without approximation (default True); False
            multiplies the dense ``(S n x S n)`` Jacobian, the reference implementation.
        dense_switch: the sparse engine multiplies by the dense Jacobian with BLAS on steps whose
            counted sparse work times ``dense_switch`` exceeds the dense product's (0: never,
            ``inf``: always; default :data:`DENSE_SWITCH`).
        kernel: the sparse engine's kernel, ``"panels"`` (default) or ``"gather"`` (see
            :data:`KERNELS`; same numbers, different speed).
        tile_bytes: size of one panel of the sparse engine's storage in bytes (``S n`` rows times
            its columns; default :data:`neurosnap.sparse.kernels.TILE_BYTES`).

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
    dense_switch: float = DENSE_SWITCH
    kernel: str = "panels"
    tile_bytes: int = kernels.TILE_BYTES

    def __post_init__(self):
        if not isinstance(self.sparse, bool):
            raise TypeError(f"sparse must be a bool, got {self.sparse!r}")
        ds = self.dense_switch
        if isinstance(ds, bool) or not isinstance(ds, (int, float, np.integer, np.floating)):
            raise TypeError(f"dense_switch must be a number, got {ds!r}")
        if not ds >= 0:
            raise ValueError(f"dense_switch must be >= 0 (or inf), got {ds!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        tb = self.tile_bytes
        if isinstance(tb, bool) or not isinstance(tb, (int, np.integer)):
            raise TypeError(f"tile_bytes must be an int, got {tb!r}")
        if tb <= 0:
            raise ValueError(f"tile_bytes must be positive, got {tb!r}")

    def init(self, model, params, batch):
        cell = model.structure()
        layout = cell.layout
        shape = (batch, cell.n_state, cell.n_hidden, layout.size)
        full, layout = layout, layout.base  # the sparse engine's panels: no thresholds
        graph = cell.graph
        grad = np.zeros(layout.size, dtype=model.dtype)
        if not self.sparse:
            return InfluenceState(
                data=np.zeros(shape, model.dtype),
                layout=full,
                graph=graph,
                grad=np.zeros(full.size, dtype=model.dtype),
            )
        S, n, P = cell.n_state, cell.n_hidden, layout.size
        tile = kernels.tile_columns(S, n, P, np.dtype(model.dtype).itemsize, self.tile_bytes)
        plan = kernels.BlockPlan.dense(
            layout, graph, S, batch, chunk=tile, panels=True, perm=kernels.presynaptic_order(layout)
        )
        pairs, key = _POOL.take(model.cell, model.dtype, plan)  # buffers live as long as the cell
        (data, f0), (spare, f1) = pairs
        work = kernels.ExactWork(layout, graph, plan, model.dtype)
        state = InfluenceState(
            data=data,
            layout=layout,
            graph=graph,
            plan=plan,
            grad=grad,
            spare=spare,
            work=work,
            zero_flags=[f0, f1],
            fired=work.new_fired(batch),
            dense_switch=float(self.dense_switch),
            kernel=self.kernel,
            thr=_thresholds.new_block(full, batch, S, model.dtype),
            thr_layout=full if full.n_thr else None,
        )
        weakref.finalize(state, _POOL.give, key, pairs)
        return state

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        layout = state.layout
        if not self.sparse:
            M = state.data
            B, S, n, P = M.shape
            J = record.jac_state.to_dense()  # (B, Sn, Sn)
            M = np.matmul(J, M.reshape(B, S * n, P)).reshape(B, S, n, P)
            M[:, :, layout.post, np.arange(P)] += layout.immediate(record.jac_params)  # + Mbar_t
            if layout.n_thr:  # learned thresholds: non-local part of Mbar_t
                M[:, :, :, layout.thr_cols] += layout.nonlocal_immediate(
                    record.jac_params, record.jac_state.w_rec
                )
            state.data = M
            return state, np.einsum("ban,banp->p", credit, M)  # eq. (6)
        return state, sparse_step(state, record, credit)

    def cost(self, state, record):
        """Influence non-zeros stored, numbers stored and multiply-adds of the last step, per
        sequence: the sparse kernel's counted work (``docs/theory/snap.md`` eq. (8); for the panel
        kernel only over the columns it multiplied, see ``InfluenceState.live_cols``), or the
        dense product's on steps the sparse engine handed to BLAS."""
        B, S, n, P = state.shape
        nnz = np.count_nonzero(state.data) + (
            0 if state.thr is None else np.count_nonzero(state.thr)
        )
        out = {"influence_nnz": nnz / B, "influence_size": float(S * n * P)}
        if self.sparse and not state.last_blas:
            out["macs"] = _stats.exact_sparse_macs(
                record, state.graph, state.layout, state.live_cols
            )
        else:
            out["macs"] = _stats.dense_rtrl_macs(record, P)
        return out


def sparse_step(state, record, credit) -> np.ndarray:
    """:func:`exact_step` plus, with learned thresholds, the exact step of their separate block
    (:func:`neurosnap.rules._thresholds.block_step`); the gradient ``(P,)`` in layout order."""
    g = exact_step(state, record, credit)
    if state.thr is None:
        return g
    state.thr, g_thr = _thresholds.block_step(
        state.thr, record, credit, state.graph, state.thr_layout
    )
    return np.concatenate([g, g_thr])


def exact_step(state, record, credit) -> np.ndarray:
    """One step of the sparse exact engine on an :class:`InfluenceState` (with a plan and a spare
    buffer): the numba kernel (``state.kernel``), or BLAS on the dense Jacobian when the counted
    sparse work is more than ``1 / state.dense_switch`` of the dense product's. Returns the
    gradient ``(P,)``."""
    B, S, n, _ = state.shape
    ds = state.dense_switch
    state.last_blas = ds > 0 and (
        ds * _stats.kernel_macs_per_column(record, state.graph) > B * (S * n) ** 2
    )
    grad = state.grad
    grad[:] = 0
    old, new = state.data.reshape(-1), state.spare.reshape(-1)
    zf = state.zero_flags
    if state.last_blas or state.kernel != "panels":
        if state.last_blas:
            _blas_panels(state, record, credit)
            state.blas_steps += 1
        else:
            kernels.block_step(
                old, new, state.plan, state.graph, record.jac_state, record.jac_params, credit, grad
            )
        zf[1][:] = 0  # the new buffer's content is not tracked
        state.live_cols = None
        jp = record.jac_params
        state.fired[:, :n] |= jp.y_prev != 0
        state.fired[:, n : n + jp.x.shape[1]] |= jp.x != 0
    else:
        state.live_cols = state.fired[:, state.work.col_group].sum(axis=1, dtype=np.int64)
        state.skipped += kernels.exact_panel_step(
            old,
            new,
            state.plan,
            state.work,
            state.graph,
            record.jac_state,
            record.jac_params,
            credit,
            grad,
            zero_flags=(zf[0], zf[1]),
            fired=state.fired,
            new_zero_where_silent=True,
        )
    state.data, state.spare = state.spare, state.data
    zf.reverse()
    out = np.empty_like(grad)
    out[state.plan.perm] = grad  # storage order -> parameter order
    return out


def _blas_panels(state, record, credit) -> None:
    """``spare = J_t data + Mbar_t`` with BLAS, panel by panel, and ``grad += c_t^T spare``
    (``grad`` in storage order)."""
    plan, layout = state.plan, state.layout
    B, S, n = plan.B, plan.S, plan.n
    P = len(plan.perm)
    dt = state.data.dtype
    J = record.jac_state.to_dense().astype(dt, copy=False).reshape(B, S, n, S, n)
    old = state.data.reshape(B, S, n * P)
    new = state.spare.reshape(B, S, n * P)
    if state._imm_off is None:  # storage column -> its entry in its unit's row
        block = np.repeat(np.arange(len(plan.blk_col0)), plan.blk_ncol)  # per storage column
        col0, ncol = plan.blk_col0[block], plan.blk_ncol[block]
        state._imm_off = col0 * n + plan.col_post * ncol + (np.arange(P) - col0)
    Jp = J[:, 0, :, 0, :] if S == 1 else J.transpose(0, 1, 3, 2, 4)  # (B,n,n)|(B,S,S,n,n)
    for q in range(len(plan.blk_col0)):
        lo, nc = plan.blk_col0[q] * n, plan.blk_ncol[q]
        src = old[:, :, lo : lo + n * nc].reshape(B, S, n, nc)
        dst = new[:, :, lo : lo + n * nc].reshape(B, S, n, nc)
        if S == 1:
            np.matmul(Jp, src[:, 0], out=dst[:, 0])
        else:
            dst[...] = np.matmul(Jp, src[:, None]).sum(axis=2)
    new[:, :, state._imm_off] += layout.immediate(record.jac_params)[:, :, plan.perm]  # + Mbar_t
    grad = state.grad
    cr = credit.astype(dt, copy=False)
    for q in range(len(plan.blk_col0)):
        lo, c0, nc = plan.blk_col0[q] * n, plan.blk_col0[q], plan.blk_ncol[q]
        grad[c0 : c0 + nc] += cr.reshape(-1) @ new[:, :, lo : lo + n * nc].reshape(B * S * n, nc)
