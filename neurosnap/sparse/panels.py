"""Exact RTRL on column panels: the influence ``M (B, S, n, P)`` stored in cache-sized column
tiles grouped by presynaptic unit, zero panels and the columns of units silent since the sequence
began skipped (``docs/theory/rtrl.md`` eq. (3)-(7)); the storage of :class:`~neurosnap.rules.RTRL`
(``sparse=True``). Block plans (SnAp and the older dense-chunk storage) are in
:mod:`neurosnap.sparse.blocks`."""

from __future__ import annotations

import numba
import numpy as np

from ..core.layout import INP, REC
from .rowops import comb1, comb2, comb4, comb8, fill, record_arrays, u64

# -------------------------------------------------------------------------------------------------
# exact RTRL on panels: column tiles sized for the cache, zero panels skipped
# -------------------------------------------------------------------------------------------------
#: Bytes of one panel of the exact engine's storage (``S n`` rows times the panel's columns):
#: the panel's rows stay in the per-core L2 cache while every output row of the panel is written
#: (measured in ``docs/benchmarks.md``).
TILE_BYTES = 512 * 1024


def tile_columns(S, n, P, itemsize, tile_bytes=TILE_BYTES) -> int:
    """Columns per panel of the exact engine: ``tile_bytes / (S n itemsize)``, rounded down to a
    multiple of 16, at least 64 (shorter rows cost more per pass than the cache saves) and at
    most ``P``."""
    if not tile_bytes > 0:
        raise ValueError(f"tile_bytes must be positive, got {tile_bytes!r}")
    cols = int(tile_bytes // (S * n * itemsize)) // 16 * 16
    return int(max(1, min(P, max(64, cols))))


def presynaptic_order(layout) -> np.ndarray:
    """A storage order of the parameters grouped by what drives their immediate influence:
    recurrent weights by presynaptic unit, input weights by input channel, then the biases (each
    group by gate, then postsynaptic unit). Columns of a unit that has not emitted an event since
    the sequence started are then contiguous, and :func:`exact_panel_step` skips them as runs."""
    return np.lexsort((layout.post, layout.gate, layout.pre, layout.kind)).astype(np.int64)


class ExactWork:
    """Scratch arrays of :func:`exact_panel_step` for one plan and dtype (allocated once).

    Attributes:
        coef: ``(S, nnz)``, ``sum_g drec[a, g, post(e)] W_g[e]`` of every edge from an active unit.
        active: ``(n,)``, units inside the surrogate's support at ``t - 1``.
        src_ptr: ``(S n + 1,)``: the sources of output row ``a n + k`` are ``src_ptr[r]:src_ptr[r+1]``.
        src_f, src_c, src_j: factor, state variable and unit of every source.
        col_group: ``(P,)`` per storage column, the group whose activity makes its immediate
            influence non-zero: presynaptic unit ``j`` (recurrent weight), ``n + k`` (input
            channel ``k``) or ``n + n_in`` (bias, always active).
        runs: ``(3, max panel width + 1)``, the live and dead column runs of one panel.
    """

    def __init__(self, layout, graph, plan, dtype):
        S, n = plan.S, layout.n
        n_src = S * n * S + S * S * graph.nnz  # worst case: every local entry and edge
        self.coef = np.zeros((S, max(graph.nnz, 1)), dtype=dtype)
        self.active = np.zeros(n, dtype=np.bool_)
        self.src_ptr = np.zeros(S * n + 1, dtype=np.int64)
        self.src_f = np.zeros(max(n_src, 1), dtype=dtype)
        self.src_c = np.zeros(max(n_src, 1), dtype=np.int64)
        self.src_j = np.zeros(max(n_src, 1), dtype=np.int64)
        n_in = int(layout.n_in)
        group = np.where(
            plan.col_kind == REC,
            plan.col_pre,
            np.where(plan.col_kind == INP, n + plan.col_pre, n + n_in),
        )
        self.col_group = group.astype(np.int64)
        self.n_groups = n + n_in + 1
        self.runs = np.zeros((3, int(plan.blk_ncol.max()) + 1), dtype=np.int64)

    def new_fired(self, batch) -> np.ndarray:
        """``uint8 (B, groups)`` activity flags of a fresh sequence (only the bias group is on)."""
        fired = np.zeros((batch, self.n_groups), dtype=np.uint8)
        fired[:, -1] = 1
        return fired


def exact_panel_step(
    old,
    new,
    plan,
    work,
    graph,
    jac_state,
    jac_params,
    credit,
    grad,
    *,
    skip_zero=True,
    immediate=True,
    zero_flags=None,
    fired=None,
    new_zero_where_silent=False,
) -> int:
    """One exact RTRL step on panel storage: ``new = J_t old + Mbar_t``, ``grad += c_t^T new``
    (rtrl eq. 4, 6, evaluated as eq. 7).

    ``plan`` is :meth:`BlockPlan.dense` with ``panels=True``: the columns are cut into panels and
    the ``n`` rows of one panel (per batch entry and state variable) are contiguous. The panel is
    the unit of work: every output row of a panel is written, its source rows gathered with up to
    eight per pass, before the next panel is touched, so the source rows are read from the cache
    and the hardware prefetcher sees contiguous memory. The sums are those of :func:`block_step`
    on the same plan (same sources, same order), so both give the same numbers.

    With ``skip_zero`` a panel of ``old`` that is exactly zero for a batch entry (its parameters'
    presynaptic units and inputs have been silent since the sequence started, or the sequence has
    just started) is not multiplied: ``J_t 0 = 0``, so its new entries are ``Mbar_t`` alone.
    ``zero_flags`` lets the caller carry what is known across steps, so that known-zero panels
    are neither scanned nor rewritten (a fresh sequence then touches only the panels it fills).

    ``fired`` skips *columns*: a parameter's column of ``M`` stays exactly zero from ``M_0 = 0``
    as long as its immediate influence has been zero at every step, i.e. while its presynaptic
    unit has emitted no event (recurrent weights; ``y_{t-1}[j] = 0``) or its input channel has
    been zero (input weights) since the sequence started. Such columns are written as zeros
    without being multiplied (in runs, with :func:`presynaptic_order` storage); the kernel then
    marks the groups active at this step. With ``new_zero_where_silent`` those columns are not even
    written: the caller guarantees that ``new`` already holds zeros there (true when both buffers
    started the sequence at zero, since ``new`` holds ``M_{t-2}``).

    Args:
        old, new: two flat buffers of ``plan`` (``new`` is overwritten; distinct arrays).
        plan: :class:`BlockPlan` from ``BlockPlan.dense(..., panels=True)``.
        work: :class:`ExactWork` for the cell and dtype.
        graph: :class:`RecurrentGraph`.
        jac_state, jac_params: the step record's Jacobians.
        credit: ``(B, S, n)`` or None.
        grad: ``(P,)`` accumulator (``ParamLayout`` order).
        skip_zero: skip panels of ``old`` that are exactly zero.
        immediate: add ``Mbar_t``.
        zero_flags: None, or a pair ``(old_flags, new_flags)`` of ``uint8`` arrays of shape
            ``(B, panels)``: 1 where that buffer's panel is known to be all zeros (0: unknown).
            ``old_flags`` is read, ``new_flags`` is read and updated; swap them with the buffers.
        fired: None (every column may be non-zero), or ``uint8 (B, work.n_groups)`` from
            :meth:`ExactWork.new_fired` at the start of the sequence (``M_0 = 0``), carried from
            step to step: 1 for the groups active at some earlier step; updated in place.
        new_zero_where_silent: ``new`` is already zero in the columns of silent groups.

    Returns:
        The number of (batch entry, panel) pairs skipped as zero.
    """
    if old is new:
        raise ValueError("exact_panel_step needs two distinct buffers")
    if len(plan.rowsets) != 1 or len(plan.rowsets[0]) != plan.n:
        raise ValueError("exact_panel_step needs the exact plan (BlockPlan.dense)")
    dt = old.dtype
    B, S, n = plan.B, plan.S, plan.n
    if credit is None:
        credit = np.zeros((B, S, n), dtype=dt)
    js, jp = jac_state, jac_params
    w = work
    nq = len(plan.blk_base)
    if zero_flags is None:
        zold = znew = np.zeros((B, nq), dtype=np.uint8)
    else:
        zold, znew = zero_flags
        for z in (zold, znew):
            if not (isinstance(z, np.ndarray) and z.dtype == np.uint8 and z.shape == (B, nq)):
                raise ValueError(f"zero_flags must be two uint8 arrays of shape {(B, nq)}")
        if zold is znew:
            raise ValueError("zero_flags needs two distinct arrays")
    if fired is None:
        fired_ = np.ones((B, w.n_groups), dtype=np.uint8)
    else:
        if not (
            isinstance(fired, np.ndarray)
            and fired.dtype == np.uint8
            and fired.shape == (B, w.n_groups)
        ):
            raise ValueError(f"fired must be a uint8 array of shape {(B, w.n_groups)}")
        fired_ = fired
    return _exact_panels(  # type: ignore[call-arg]  # numba Dispatcher stub
        old,
        new,
        B,
        S,
        n,
        plan.blk_base,
        plan.blk_bstride,
        plan.blk_rstride,
        plan.blk_ncol,
        plan.blk_col0,
        bool(skip_zero),
        zold,
        znew,
        fired_,
        w.col_group,
        w.runs,
        bool(new_zero_where_silent and fired is not None),
        bool(immediate),
        plan.col_kind,
        plan.col_gate,
        plan.col_post,
        plan.col_pre,
        graph.indptr,
        graph.indices,
        graph.csc_edge,
        graph.in_ptr,
        graph.edge_pre,
        *record_arrays(js, jp, credit, dt),
        grad,
        w.coef,
        w.active,
        w.src_ptr,
        w.src_f,
        w.src_c,
        w.src_j,
    )


@numba.njit(cache=True, nogil=True)
def _exact_panels(
    old,
    new,
    B,
    S,
    n,
    blk_base,
    blk_bstride,
    blk_rstride,
    blk_ncol,
    blk_col0,
    skip_zero,
    zold,
    znew,
    fired,
    col_group,
    runs,
    keep_silent,
    immediate,
    col_kind,
    col_gate,
    col_post,
    col_pre,
    indptr,
    indices,
    csc_edge,
    in_ptr,
    edge_pre,
    local,
    drec,
    w_rec,
    dout,
    jp_drec,
    jp_dinp,
    y_prev,
    x,
    credit,
    grad,
    coef,
    active,
    src_ptr,
    src_f,
    src_c,
    src_j,
):  # pragma: no cover - numba
    G = w_rec.shape[0]
    zero = old.dtype.type(0.0)
    o8 = np.zeros(8, dtype=np.uint64)
    f8 = np.zeros(8, dtype=old.dtype)
    nrow = S * n
    skipped = 0
    for b in range(B):
        # units inside the surrogate's support at t-1 and the coefficients of their connections
        for j in range(n):
            act = False
            for c in range(S):
                if dout[b, c, j] != 0:
                    act = True
            active[j] = act
            if act:
                for k in range(indptr[j], indptr[j + 1]):
                    i = indices[k]
                    e = csc_edge[k]
                    for a in range(S):
                        s = zero
                        for g in range(G):
                            s += drec[b, a, g, i] * w_rec[g, i, j]
                        coef[a, e] = s
        # sources of every output row r = a n + k: (factor, source row c n + j), local block first
        m = 0
        for a in range(S):
            for k in range(n):
                src_ptr[a * n + k] = m
                for c in range(S):
                    f = local[b, a, c, k]
                    if f != 0:
                        src_f[m] = f
                        src_c[m] = c
                        src_j[m] = k
                        m += 1
                for e in range(in_ptr[k], in_ptr[k + 1]):
                    j = edge_pre[e]
                    if not active[j]:
                        continue
                    f = coef[a, e]
                    if f == 0:
                        continue
                    for c in range(S):
                        dv = dout[b, c, j]
                        if dv != 0:
                            src_f[m] = f * dv
                            src_c[m] = c
                            src_j[m] = j
                            m += 1
        src_ptr[nrow] = m
        for q in range(blk_base.shape[0]):
            nc = blk_ncol[q]
            bs = blk_bstride[q]
            rst = blk_rstride[q]
            base = blk_base[q] + b * S * bs
            c0 = blk_col0[q]
            live = True
            if skip_zero and zold[b, q] == 1:
                live = False
            elif skip_zero:
                live = False
                for a in range(S):
                    ob = base + a * bs
                    for s_ in range(n * rst):
                        if old[ob + s_] != 0:
                            live = True
                            break
                    if live:
                        break
            if not live:
                skipped += 1
                if znew[b, q] != 1:
                    for a in range(S):
                        fill(new, u64(base + a * bs), zero, n * rst)
                    znew[b, q] = 1
            else:
                znew[b, q] = 0
                # runs of columns whose group was active before this step (multiplied) and of
                # columns still exactly zero (written as zeros)
                nrun = 0
                s_ = 0
                while s_ < nc:
                    lv = fired[b, col_group[c0 + s_]] != 0
                    e_ = s_ + 1
                    while e_ < nc and (fired[b, col_group[c0 + e_]] != 0) == lv:
                        e_ += 1
                    runs[0, nrun] = s_
                    runs[1, nrun] = e_
                    runs[2, nrun] = 1 if lv else 0
                    nrun += 1
                    s_ = e_
                for r in range(nrow):
                    a = r // n
                    k = r - a * n
                    od0 = base + a * bs + k * rst
                    t0 = src_ptr[r]
                    t1 = src_ptr[r + 1]
                    cf = credit[b, a, k]
                    for ru in range(nrun):
                        rs = runs[0, ru]
                        m_ = runs[1, ru] - rs
                        od = u64(od0 + rs)
                        if runs[2, ru] == 0:
                            if not keep_silent:
                                fill(new, od, zero, m_)
                            continue
                        if t0 == t1:
                            fill(new, od, zero, m_)
                            continue
                        t = t0
                        first = True
                        while t < t1:
                            # up to eight sources per pass over the run (1, 2, 4 or 8; a short
                            # group is padded by repeating its first source with factor 0, exact
                            # for finite values); the gradient is fused into the last pass
                            rem = t1 - t
                            w = 8 if rem >= 5 else (4 if rem >= 3 else rem)
                            o0 = u64(base + src_c[t] * bs + src_j[t] * rst + rs)
                            for u in range(w):
                                if t + u < t1:
                                    o8[u] = u64(base + src_c[t + u] * bs + src_j[t + u] * rst + rs)
                                    f8[u] = src_f[t + u]
                                else:
                                    o8[u] = o0
                                    f8[u] = zero
                            t += w
                            wg = t >= t1 and cf != 0
                            og = u64(c0 + rs)
                            if w == 8:
                                comb8(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            elif w == 4:
                                comb4(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            elif w == 2:
                                comb2(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            else:
                                comb1(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            first = False
            if immediate:  # Mbar_t: column s sits in the rows of its unit
                for s_ in range(nc):
                    col = c0 + s_
                    kind = col_kind[col]
                    g = col_gate[col]
                    i = col_post[col]
                    if kind == REC:
                        v = y_prev[b, col_pre[col]]
                    elif kind == INP:
                        v = x[b, col_pre[col]]
                    else:
                        v = old.dtype.type(1.0)
                    if v == 0:
                        continue
                    off = base + i * rst + s_
                    for a in range(S):
                        if kind == REC:
                            f = jp_drec[b, a, g, i] * v
                        else:
                            f = jp_dinp[b, a, g, i] * v
                        if f != 0:
                            new[off + a * bs] += f
                            grad[col] += credit[b, a, i] * f
                            znew[b, q] = 0
        # groups active at this step: their columns may be non-zero from now on
        for j in range(n):
            if y_prev[b, j] != 0:
                fired[b, j] = 1
        for kk in range(x.shape[1]):
            if x[b, kk] != 0:
                fired[b, n + kk] = 1
    return skipped
