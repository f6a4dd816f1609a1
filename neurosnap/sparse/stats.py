"""Cost accounting: events, surrogate support, influence non-zeros and multiply-adds per step.

:func:`step_stats` is the one function both :func:`neurosnap.sequence_grad` (``stats=True``) and
the training loop call after each rule step::

    stats = step_stats(record, rule, rule_state)
    # {"event_fraction", "support_fraction", "influence_nnz", "influence_size", "macs"}

Fractions are over units and batch entries. ``influence_nnz`` (non-zeros stored in the rule's
influence or trace after the step), ``influence_size`` (numbers stored, zeros included) and ``macs``
(multiply-adds the rule's update spent on the step, gradient contraction included) are per sequence,
i.e. averaged over the batch. They come from the rule's ``cost(state, record)`` method
(:meth:`neurosnap.rules.base.Rule.cost`); the counters below are shared by the rules.

Multiply-adds are counted from what the kernels actually touch: the rows of units inside the
surrogate's support (``dout != 0``), the non-zero entries of each unit's local block, and the
existing outgoing connections of active units (``docs/theory/snap.md`` eq. (8) and (12)). The
kernels' zero padding (at most three idle sources per row pass) is not counted.
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.layout import BIAS, INP, REC

STAT_KEYS = ("event_fraction", "support_fraction", "influence_nnz", "influence_size", "macs")


def step_stats(record, rule, rule_state) -> dict[str, float]:
    """Statistics of one step, after ``rule.step`` has consumed ``record``.

    Args:
        record: the :class:`~neurosnap.core.record.StepRecord` of the step.
        rule: the learning rule (any :class:`~neurosnap.rules.base.Rule`).
        rule_state: the rule's state returned by ``rule.step`` for this record.

    Returns:
        ``{"event_fraction", "support_fraction", "influence_nnz", "influence_size", "macs"}`` as
        floats (see the module docstring); ``nan`` for a count the rule does not report.
    """
    out = {
        "event_fraction": float(np.mean(record.events)),
        "support_fraction": float(np.mean(record.support)),
    }
    cost = rule.cost(rule_state, record)  # every Rule has one ({} by default)
    for key in ("influence_nnz", "influence_size", "macs"):
        value = cost.get(key)
        out[key] = float("nan") if value is None else float(value)
    return out


class StatsMeter:
    """Running per-step means of :func:`step_stats` dictionaries."""

    def __init__(self):
        self.count = 0
        self.sums = dict.fromkeys(STAT_KEYS, 0.0)

    def add(self, stats: dict) -> None:
        """Add one step's statistics."""
        self.count += 1
        for key in STAT_KEYS:
            self.sums[key] += stats.get(key, float("nan"))

    def means(self) -> dict[str, float]:
        """Per-step means (``nan`` before the first step)."""
        if self.count == 0:
            return dict.fromkeys(STAT_KEYS, float("nan"))
        return {key: value / self.count for key, value in self.sums.items()}


# -------------------------------------------------------------------------------------------------
# counters shared by the rules
# -------------------------------------------------------------------------------------------------
def _unit_counts(record):
    """Per batch entry and unit: non-zeros of the local block, of ``dout_{t-1}``, state variables
    driven by the recurrence (``drec``), non-zeros of the credit pattern (``dout_t``)."""
    js = record.jac_state
    local_nz = np.count_nonzero(js.local, axis=(1, 2)).astype(np.int64)  # (B, n)
    dout_nz = np.count_nonzero(js.dout, axis=1).astype(np.int64)  # (B, n)
    drec_nz = np.count_nonzero(np.any(js.drec != 0, axis=2), axis=1).astype(np.int64)
    cred_nz = np.count_nonzero(record.dout, axis=1).astype(np.int64)
    return local_nz, dout_nz, drec_nz, cred_nz


def _immediate_columns(record, layout) -> np.ndarray:
    """Per batch entry: columns whose presynaptic factor is non-zero (``Mbar_t`` entries added)."""
    jp = record.jac_params
    rec, inp = layout.kind == REC, layout.kind == INP
    n_rec = np.count_nonzero(jp.y_prev[:, layout.pre[rec]], axis=1)
    n_inp = np.count_nonzero(jp.x[:, layout.pre[inp]], axis=1)
    return n_rec + n_inp + np.count_nonzero(layout.kind == BIAS)


def plan_macs(record, plan, graph, layout=None) -> float:
    """Multiply-adds of one :func:`~neurosnap.sparse.kernels.block_step` on ``plan``, per sequence.

    Per block and stored column, for every stored row ``(a, k)``: one per non-zero entry of unit
    ``k``'s local block, and, for every connection ``j -> k`` from a stored unit inside the
    surrogate's support, one per non-zero ``dout[:, j]`` (state variables ``a`` not driven by the
    recurrence skip it); one per non-zero credit entry of every stored row (gradient); plus ``S``
    per column with a non-zero presynaptic factor (immediate influence, when ``layout`` is given).
    """
    local_nz, dout_nz, drec_nz, cred_nz = _unit_counts(record)
    total = _plan_macs(
        local_nz,
        dout_nz,
        drec_nz,
        cred_nz,
        plan.blk_ncol,
        plan.blk_rowset,
        plan.rs_rowptr,
        plan.rs_units,
        plan.rs_eptr,
        plan.rs_ee,
        graph.edge_pre,
        graph.edge_post,
    )
    if layout is not None:
        total += plan.S * int(_immediate_columns(record, layout).sum())
    return float(total) / local_nz.shape[0]


@numba.njit(cache=True)
def _plan_macs(
    local_nz,
    dout_nz,
    drec_nz,
    cred_nz,
    blk_ncol,
    blk_rowset,
    rs_rowptr,
    rs_units,
    rs_eptr,
    rs_ee,
    edge_pre,
    edge_post,
):  # pragma: no cover - numba
    B = local_nz.shape[0]
    nrs = rs_rowptr.shape[0] - 1
    total = 0
    per_rs = np.zeros(nrs, dtype=np.int64)
    for b in range(B):
        for rs in range(nrs):
            c = 0
            for kk in range(rs_rowptr[rs], rs_rowptr[rs + 1]):
                k = rs_units[kk]
                c += local_nz[b, k] + cred_nz[b, k]
                for idx in range(rs_eptr[kk], rs_eptr[kk + 1]):
                    e = rs_ee[idx]
                    c += drec_nz[b, edge_post[e]] * dout_nz[b, edge_pre[e]]
            per_rs[rs] = c
        for q in range(blk_ncol.shape[0]):
            total += blk_ncol[q] * per_rs[blk_rowset[q]]
    return total


def exact_sparse_macs(record, graph, layout, live_columns=None) -> float:
    """Multiply-adds of sparse exact RTRL (all ``n`` rows), per sequence.

    Equal to :func:`plan_macs` on :meth:`~neurosnap.sparse.kernels.BlockPlan.dense`, computed
    directly: ``P (sum_k local_nz_k + sum_{j -> k} drec_nz_k dout_nz_j + sum_k cred_nz_k)``
    ``+ S (columns with a non-zero presynaptic factor)`` (snap eq. (8)). With ``live_columns``
    (shape ``(B,)``, the columns the panel kernel multiplied for each batch entry; the others are
    still exactly zero) the ``P`` of each batch entry is replaced by its count.
    """
    B = record.events.shape[0]
    S = record.jac_state.local.shape[1]
    per_col = kernel_macs_per_column_by_batch(record, graph)
    cols = np.full(B, layout.size) if live_columns is None else np.asarray(live_columns)
    total = float(np.dot(per_col.astype(np.float64), cols.astype(np.float64)))
    return (total + S * float(_immediate_columns(record, layout).sum())) / B


def kernel_macs_per_column(record, graph) -> int:
    """Multiply-adds per stored column of one sparse exact step on all rows, summed over the batch
    (the ``P``-proportional part of :func:`exact_sparse_macs`; cheap: ``O(B (S^2 n + nnz))``)."""
    return int(kernel_macs_per_column_by_batch(record, graph).sum())


def kernel_macs_per_column_by_batch(record, graph) -> np.ndarray:
    """:func:`kernel_macs_per_column` for each batch entry, shape ``(B,)``."""
    js = record.jac_state
    return macs_per_column_arrays(
        js.local, js.drec, js.dout, record.dout, graph.edge_post, graph.edge_pre
    )


@numba.njit(cache=True)
def macs_per_column_arrays(local, drec, dout, dout_new, edge_post, edge_pre):  # pragma: no cover
    """The compiled body of :func:`kernel_macs_per_column_by_batch` on plain arrays (also called
    from the compiled loops, ``neurosnap.engine``): shape ``(B,)`` int64."""
    B, S, _, n = local.shape
    G = drec.shape[2]
    out = np.zeros(B, dtype=np.int64)
    dnz = np.zeros(n, dtype=np.int64)
    rnz = np.zeros(n, dtype=np.int64)
    for b in range(B):
        total = 0
        for k in range(n):
            c_local = 0
            c_dout = 0
            c_drec = 0
            c_cred = 0
            for a in range(S):
                for c in range(S):
                    if local[b, a, c, k] != 0:
                        c_local += 1
                if dout[b, a, k] != 0:
                    c_dout += 1
                if dout_new[b, a, k] != 0:
                    c_cred += 1
                for g in range(G):
                    if drec[b, a, g, k] != 0:
                        c_drec += 1
                        break
            dnz[k] = c_dout
            rnz[k] = c_drec
            total += c_local + c_cred
        for e in range(edge_post.shape[0]):
            total += rnz[edge_post[e]] * dnz[edge_pre[e]]
        out[b] = total
    return out


def dense_rtrl_macs(record, P) -> float:
    """Multiply-adds of dense RTRL, per sequence: ``(S n)^2 P`` (``J_t M``) + ``S n P``
    (gradient) + ``S P`` (immediate influence)."""
    S, n = record.jac_state.local.shape[1], record.jac_state.local.shape[3]
    return float((S * n) ** 2 * P + S * n * P + S * P)


def snap1_macs(record, P) -> float:
    """Multiply-adds of one SnAp-1 step, per sequence: ``S^2 P`` (diagonal block times the stored
    column) + ``2 S P`` (immediate influence and gradient), plus ``S (G + S)`` per unit to form the
    diagonal blocks (autapse term)."""
    _, S, G, n = record.jac_state.drec.shape
    return float(S * S * P + 2 * S * P + n * S * (G + S))


def backward_step_macs(record, P) -> float:
    """Multiply-adds of one BPTT backward step (``neurosnap.rules.bptt``), per sequence.

    ``J_t^T lambda``: ``S^2 n`` (local) + ``S G n`` (drec) + ``G n^2`` (dense ``W^T``, as implemented)
    + ``S n`` (dout); ``lambda^T Mbar_t``: ``2 S P`` (immediate influence and contraction).
    """
    js = record.jac_state
    _, S, G, n = js.drec.shape
    return float(S * S * n + S * G * n + G * n * n + S * n + 2 * S * P)
