"""Kernels of the sparse exact engine: ``J_t M`` without touching what is zero.

``J_t = blockdiag(local) + sum_g diag(drec_g) W_g diag(dout)`` (``docs/theory/rtrl.md`` eq. 3,
``docs/theory/snap.md`` eq. (1)). A new influence row ``(a, k)`` is

    M'[(a,k)] = sum_c local[a,c,k] M[(c,k)]
              + sum_{j -> k, j active} coef[a,k,j] sum_c dout[c,j] M[(c,j)]

with ``coef[a,k,j] = sum_g drec[a,g,k] W_g[k,j]``, so per stored column it costs the non-zeros of
unit ``k``'s local block plus, for each existing connection ``j -> k`` from a unit inside the
surrogate's support (``dout[:, j] != 0``), the non-zeros of ``dout[:, j]``. Silent units outside the
support and missing weights cost nothing (rtrl eq. 7, snap eq. (8)).

All kernels work on a *block plan* (:class:`BlockPlan`): the influence is stored as blocks, each
holding the rows of a set of units (a *row set*) for a range of columns. Exact RTRL is the plan with
one row set (all units) whose storage is ``M (B, S, n, P)`` itself, the columns processed in
cache-sized chunks; SnAp-n (``neurosnap.rules.snap``) is the plan with one block per postsynaptic
unit ``q`` whose rows are the units reachable from ``q`` within ``n - 1`` steps.

One kernel call (:func:`block_step`) does a whole rule step: ``M' = J_t M + Mbar_t`` written into a
second buffer of the same plan (the two buffers are swapped by the rule, so nothing is allocated
per step) and ``grad += c_t^T M'`` (rtrl eq. 4 and 6). :func:`propagate_influence` (``J_t M``
only) is checked by the test suite against a NumPy reference and against the dense product.

Implementation notes (measured on the 2-core benchmark machine, ``docs/benchmarks.md``): a row is
written in passes that each combine up to eight source rows (fewer passes over the destination), the
gradient fused into the last pass; all indexing is by *unsigned* offsets into flat buffers, since
with signed offsets numba's negative-index test keeps LLVM from vectorising, and array views would
cost a reference-count update per row.
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.graph import RecurrentGraph as RecurrentGraph  # re-exported: the kernels' graph type
from ..core.layout import BIAS, INP, REC

#: Columns per chunk of the exact RTRL plan: the rows of one chunk (``n x CHUNK`` numbers per state
#: variable) stay in the L2 cache while every row of the chunk is updated (256-1024 measured alike).
CHUNK = 512


# -------------------------------------------------------------------------------------------------
# block plans
# -------------------------------------------------------------------------------------------------
def _cat(parts) -> np.ndarray:
    """The int64 concatenation of ``parts`` (empty: an empty array)."""
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


class BlockPlan:
    """Storage layout of a (possibly pattern-restricted) influence matrix, plus kernel metadata.

    Entry ``(b, a, k, s)`` of block ``q`` -- batch ``b``, state variable ``a``, ``k``-th unit of the
    block's row set, ``s``-th column of the block -- lives at
    ``base[q] + (b * S + a) * bstride[q] + k * rstride[q] + s`` of a flat buffer, and belongs to the
    parameter ``perm[col0[q] + s]`` (storage column ``col0[q] + s``).

    Build with :meth:`dense` (exact RTRL, storage ``(B, S, n, P)``) or :meth:`from_rowsets` (one row
    set per postsynaptic unit, SnAp-n).
    """

    def __init__(
        self,
        *,
        layout,
        graph,
        n_state,
        batch,
        perm,
        blk_base,
        blk_bstride,
        blk_rstride,
        blk_ncol,
        blk_col0,
        blk_rowset,
        rowsets,
        size,
    ):
        self.n, self.S, self.B = layout.n, n_state, batch
        self.size = int(size)  # numbers stored, all blocks, whole batch
        self.perm = np.asarray(perm, dtype=np.int64)  # storage column -> parameter
        self.blk_base = np.asarray(blk_base, dtype=np.int64)
        self.blk_bstride = np.asarray(blk_bstride, dtype=np.int64)
        self.blk_rstride = np.asarray(blk_rstride, dtype=np.int64)
        self.blk_ncol = np.asarray(blk_ncol, dtype=np.int64)
        self.blk_col0 = np.asarray(blk_col0, dtype=np.int64)
        self.blk_rowset = np.asarray(blk_rowset, dtype=np.int64)
        self.rowsets = rowsets
        # row sets, concatenated: units and their in-edges from units of the same row set
        rs_rowptr, rs_units, rs_eptr, rs_ejj, rs_ee = [0], [], [0], [], []
        for units in rowsets:
            units = np.asarray(units, dtype=np.int64)
            local = np.full(layout.n, -1, dtype=np.int64)
            local[units] = np.arange(len(units))
            for k in units:
                edges = np.arange(graph.in_ptr[k], graph.in_ptr[k + 1])
                jj = local[graph.edge_pre[edges]]
                keep = jj >= 0
                rs_ejj.append(jj[keep])
                rs_ee.append(edges[keep])
                rs_eptr.append(rs_eptr[-1] + int(keep.sum()))
            rs_units.append(units)
            rs_rowptr.append(rs_rowptr[-1] + len(units))
        self.rs_rowptr = np.asarray(rs_rowptr, dtype=np.int64)
        self.rs_units = _cat(rs_units)
        self.rs_eptr = np.asarray(rs_eptr, dtype=np.int64)
        self.rs_ejj = _cat(rs_ejj)
        self.rs_ee = _cat(rs_ee)
        # per storage column: parameter metadata and the local row of its postsynaptic unit
        self.col_kind = layout.kind[self.perm].astype(np.int64)
        self.col_gate = layout.gate[self.perm]
        self.col_post = layout.post[self.perm]
        self.col_pre = layout.pre[self.perm]
        col_row = np.empty(len(self.perm), dtype=np.int64)
        for q in range(len(self.blk_base)):
            units = np.asarray(rowsets[self.blk_rowset[q]])
            sl = slice(self.blk_col0[q], self.blk_col0[q] + self.blk_ncol[q])
            pos = np.minimum(np.searchsorted(units, self.col_post[sl]), len(units) - 1)
            if np.any(units[pos] != self.col_post[sl]):
                raise ValueError(
                    "every block's row set must hold the postsynaptic units of its columns"
                )
            col_row[sl] = pos
        self.col_row = col_row

    @classmethod
    def dense(cls, layout, graph, n_state, batch, chunk=CHUNK, panels=False, perm=None):
        """Exact RTRL: all ``n`` rows for every column, columns processed ``chunk`` at a time.

        With ``panels=False`` (default) the storage is ``M`` itself, ``(B, S, n, P)`` in C order
        (so dense products can run on it too); with ``panels=True`` it is panel-major,
        ``[b, a, panel, unit, column in panel]``, rows of a chunk contiguous. ``perm`` (storage
        column -> parameter; default the parameter order) reorders the columns, e.g.
        :func:`presynaptic_order`.
        """
        n, P = layout.n, layout.size
        perm = np.arange(P) if perm is None else np.asarray(perm, dtype=np.int64)
        if perm.shape != (P,) or not np.array_equal(np.sort(perm), np.arange(P)):
            raise ValueError(f"perm must be a permutation of the {P} parameters")
        starts = np.arange(0, P, chunk)
        ncol = np.minimum(chunk, P - starts)
        if panels:
            base, rstride = starts * n, ncol
        else:
            base, rstride = starts, np.full(len(starts), P)
        return cls(
            layout=layout,
            graph=graph,
            n_state=n_state,
            batch=batch,
            perm=perm,
            blk_base=base,
            blk_bstride=np.full(len(starts), n * P),
            blk_rstride=rstride,
            blk_ncol=ncol,
            blk_col0=starts,
            blk_rowset=np.zeros(len(starts), dtype=np.int64),
            rowsets=[np.arange(n)],
            size=batch * n_state * n * P,
        )

    @classmethod
    def from_rowsets(cls, layout, graph, n_state, batch, rows_of_unit, chunk=CHUNK):
        """One block per postsynaptic unit ``q`` with rows ``rows_of_unit[q]`` (sorted units).

        Columns are grouped by postsynaptic unit (stable, so parameter order is kept within a
        block); blocks wider than ``chunk`` are processed in chunks. Identical row sets are shared.
        """
        n = layout.n
        perm = np.argsort(layout.post, kind="stable")
        counts = np.bincount(layout.post, minlength=n)
        col_start = np.concatenate([[0], np.cumsum(counts)])
        rowsets, key_to_id = [], {}
        blk_base, blk_bstride, blk_rstride, blk_ncol, blk_col0, blk_rowset = [], [], [], [], [], []
        offset = 0
        for q in range(n):
            units = np.asarray(rows_of_unit[q], dtype=np.int64)
            key = units.tobytes()
            if key not in key_to_id:
                key_to_id[key] = len(rowsets)
                rowsets.append(units)
            r, c = len(units), int(counts[q])
            for s0 in range(0, c, chunk):
                blk_base.append(offset + s0)
                blk_bstride.append(r * c)
                blk_rstride.append(c)
                blk_ncol.append(min(chunk, c - s0))
                blk_col0.append(col_start[q] + s0)
                blk_rowset.append(key_to_id[key])
            offset += batch * n_state * r * c
        return cls(
            layout=layout,
            graph=graph,
            n_state=n_state,
            batch=batch,
            perm=perm,
            blk_base=blk_base,
            blk_bstride=blk_bstride,
            blk_rstride=blk_rstride,
            blk_ncol=blk_ncol,
            blk_col0=blk_col0,
            blk_rowset=blk_rowset,
            rowsets=rowsets,
            size=offset,
        )

    def workspace(self, dtype, graph) -> dict:
        """Scratch arrays of :func:`block_step`, allocated once per plan and dtype."""
        key = np.dtype(dtype).str
        cache = self.__dict__.setdefault("_work", {})
        if key not in cache:
            S = self.S
            n_src = S * len(self.rs_units) * S + S * S * len(self.rs_ee)  # worst case
            cache[key] = {
                "coef": np.zeros((self.S, max(graph.nnz, 1)), dtype=dtype),
                "active": np.zeros(self.n, dtype=bool),
                "src_ptr": np.zeros(S * len(self.rs_units) + 1, dtype=np.int64),
                "src_f": np.zeros(max(n_src, 1), dtype=dtype),
                "src_c": np.zeros(max(n_src, 1), dtype=np.int64),
                "src_jj": np.zeros(max(n_src, 1), dtype=np.int64),
            }
        return cache[key]

    def stored_per_sequence(self) -> int:
        """Numbers stored for one batch element."""
        return self.size // self.B

    def _index(self, q):
        units = self.rowsets[self.blk_rowset[q]]
        B, S, r, nc = self.B, self.S, len(units), self.blk_ncol[q]
        idx = (
            self.blk_base[q]
            + (np.arange(B * S)[:, None, None] * self.blk_bstride[q])
            + np.arange(r)[None, :, None] * self.blk_rstride[q]
            + np.arange(nc)[None, None, :]
        )
        return units, idx

    def from_dense(self, M: np.ndarray) -> np.ndarray:
        """A flat buffer holding the entries of ``M (B, S, n, P)`` inside the pattern."""
        data = np.zeros(self.size, dtype=M.dtype)
        for q in range(len(self.blk_base)):
            units, idx = self._index(q)
            c0, nc = self.blk_col0[q], self.blk_ncol[q]
            data[idx] = M[:, :, units[:, None], self.perm[c0 : c0 + nc][None, :]].reshape(idx.shape)
        return data

    def to_dense(self, data: np.ndarray) -> np.ndarray:
        """The stored influence as a dense ``(B, S, n, P)`` array (zeros outside the pattern)."""
        B, S, n, P = self.B, self.S, self.n, len(self.perm)
        out = np.zeros((B, S, n, P), dtype=data.dtype)
        for q in range(len(self.blk_base)):
            units, idx = self._index(q)
            c0, nc = self.blk_col0[q], self.blk_ncol[q]
            out[:, :, units[:, None], self.perm[c0 : c0 + nc][None, :]] = data[idx].reshape(
                B, S, len(units), nc
            )
        return out


# -------------------------------------------------------------------------------------------------
# the fused rule step
# -------------------------------------------------------------------------------------------------
def block_step(old, new, plan, graph, jac_state, jac_params, credit, grad_store, *, immediate=True):
    """One exact step on a block plan: ``new = J_t old (+ Mbar_t)``, ``grad += c_t^T new``.

    Args:
        old, new: two flat influence buffers of ``plan`` (``new`` is overwritten; distinct arrays).
        plan: :class:`BlockPlan`.
        graph: :class:`RecurrentGraph` of the cell's mask.
        jac_state, jac_params: the step record's Jacobians.
        credit: ``dL_t/ds_t`` of shape ``(B, S, n)`` or None (no gradient).
        grad_store: shape ``(P,)`` accumulator in *storage* column order (``plan.perm``).
        immediate: add ``Mbar_t`` (False gives the plain product ``J_t M``).
    """
    if old is new:
        raise ValueError("block_step needs two distinct buffers")
    dt = old.dtype
    S, n = plan.S, plan.n
    if credit is None:
        credit = np.zeros((plan.B, S, n), dtype=dt)
    js, jp = jac_state, jac_params
    w = plan.workspace(dt, graph)
    block_step_arrays(
        old,
        new,
        plan.blk_base,
        plan.blk_bstride,
        plan.blk_rstride,
        plan.blk_ncol,
        plan.blk_col0,
        plan.blk_rowset,
        plan.rs_rowptr,
        plan.rs_units,
        plan.rs_eptr,
        plan.rs_ejj,
        plan.rs_ee,
        plan.col_kind,
        plan.col_gate,
        plan.col_post,
        plan.col_pre,
        plan.col_row,
        graph.indptr,
        graph.indices,
        graph.csc_edge,
        graph.edge_pre,
        _c(js.local, dt),
        _c(js.drec, dt),
        _c(js.dense_w_rec(), dt),
        _c(js.dout, dt),
        _c(jp.drec, dt),
        _c(jp.dinp, dt),
        _c(jp.y_prev, dt),
        _c(jp.x, dt),
        _c(credit, dt),
        grad_store,
        immediate,
        w["coef"],
        w["active"],
        w["src_ptr"],
        w["src_f"],
        w["src_c"],
        w["src_jj"],
    )


def _c(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


@numba.njit(cache=True, nogil=True)
def block_step_arrays(
    old,
    new,
    blk_base,
    blk_bstride,
    blk_rstride,
    blk_ncol,
    blk_col0,
    blk_rowset,
    rs_rowptr,
    rs_units,
    rs_eptr,
    rs_ejj,
    rs_ee,
    col_kind,
    col_gate,
    col_post,
    col_pre,
    col_row,
    indptr,
    indices,
    csc_edge,
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
    immediate,
    coef,
    active,
    src_ptr,
    src_f,
    src_c,
    src_jj,
):  # pragma: no cover - numba
    """The compiled body of :func:`block_step` on the plain arrays of a :class:`BlockPlan`, a
    :class:`~neurosnap.core.graph.RecurrentGraph` and a step record (called from other compiled
    loops, ``neurosnap.engine``); arguments as :func:`block_step` unpacks them."""
    B, S, _, n = local.shape
    G = w_rec.shape[0]
    zero = old.dtype.type(0.0)
    nrow_all = rs_rowptr[rs_rowptr.shape[0] - 1]
    o8 = np.zeros(8, dtype=np.uint64)
    f8 = np.zeros(8, dtype=old.dtype)
    gdone = False
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
        # per stored row (a, kk) of every row set: its sources (factor, state variable, local row)
        m = 0
        for rs in range(rs_rowptr.shape[0] - 1):
            for kk in range(rs_rowptr[rs], rs_rowptr[rs + 1]):
                k = rs_units[kk]
                for a in range(S):
                    src_ptr[kk * S + a] = m
                    for c in range(S):
                        f = local[b, a, c, k]
                        if f != 0:
                            src_f[m] = f
                            src_c[m] = c
                            src_jj[m] = kk - rs_rowptr[rs]
                            m += 1
                    for idx in range(rs_eptr[kk], rs_eptr[kk + 1]):
                        e = rs_ee[idx]
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
                                src_jj[m] = rs_ejj[idx]
                                m += 1
        src_ptr[nrow_all * S] = m
        for q in range(blk_base.shape[0]):
            rs = blk_rowset[q]
            r0 = rs_rowptr[rs]
            nr = rs_rowptr[rs + 1] - r0
            nc = blk_ncol[q]
            bs = blk_bstride[q]
            rst = blk_rstride[q]
            base = blk_base[q] + b * S * bs
            c0 = blk_col0[q]
            for kk in range(nr):
                k = rs_units[r0 + kk]
                for a in range(S):
                    od = _u(base + a * bs + kk * rst)
                    t = src_ptr[(r0 + kk) * S + a]
                    t1 = src_ptr[(r0 + kk) * S + a + 1]
                    if t == t1:
                        _fill(new, od, zero, nc)
                        continue
                    first = True
                    while t < t1:
                        # up to eight sources per pass over the row (1, 2, 4 or 8; a short group
                        # is padded by repeating its first source with factor 0, exact for
                        # finite values)
                        rem = t1 - t
                        w = 8 if rem >= 5 else (4 if rem >= 3 else rem)
                        o0 = _u(base + src_c[t] * bs + src_jj[t] * rst)
                        for u in range(w):
                            if t + u < t1:
                                o8[u] = _u(base + src_c[t + u] * bs + src_jj[t + u] * rst)
                                f8[u] = src_f[t + u]
                            else:
                                o8[u] = o0
                                f8[u] = zero
                        t += w
                        cf = zero
                        wg = False
                        if S == 1 and t >= t1 and credit[b, 0, k] != 0:
                            cf = credit[b, 0, k]
                            wg = True
                            gdone = True
                        if w == 8:
                            _comb8(new, od, old, o8, f8, nc, not first, grad, _u(c0), cf, wg)
                        elif w == 4:
                            _comb4(new, od, old, o8, f8, nc, not first, grad, _u(c0), cf, wg)
                        elif w == 2:
                            _comb2(new, od, old, o8, f8, nc, not first, grad, _u(c0), cf, wg)
                        else:
                            _comb1(new, od, old, o8, f8, nc, not first, grad, _u(c0), cf, wg)
                        first = False
                if S == 1 and gdone:
                    gdone = False
                    continue
                for a in range(S):
                    f = credit[b, a, k]
                    if f != 0:
                        _axpy(grad, _u(c0), new, _u(base + a * bs + kk * rst), f, nc)
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
                    off = base + col_row[col] * rst + s_
                    for a in range(S):
                        if kind == REC:
                            f = jp_drec[b, a, g, i] * v
                        else:
                            f = jp_dinp[b, a, g, i] * v
                        new[off + a * bs] += f
                        grad[col] += credit[b, a, i] * f


# Vector helpers on flat buffers with *unsigned* offsets: numba then emits no negative-index
# wraparound test and LLVM vectorises the loops; inlined at numba-IR level, so no array views
# (and no reference counting) are created per row.
_u = numba.uint64


@numba.njit(inline="always", fastmath={"contract"})
def _comb8(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    """``dst[od:] (+)= sum_u f8[u] * src[o8[u]:]`` (first ``8`` sources) over ``nc`` entries; then,
    if ``with_grad``, ``g[og:] += cf * dst[od:]`` in the same pass. ``_comb4``, ``_comb2`` and
    ``_comb1`` are the same with fewer sources."""
    o0, o1, o2, o3, o4, o5, o6, o7 = o8[0], o8[1], o8[2], o8[3], o8[4], o8[5], o8[6], o8[7]
    f0, f1, f2, f3, f4, f5, f6, f7 = f8[0], f8[1], f8[2], f8[3], f8[4], f8[5], f8[6], f8[7]
    if add:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = (
                    f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = (
                    f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def _comb4(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    o0, o1, o2, o3 = o8[0], o8[1], o8[2], o8[3]
    f0, f1, f2, f3 = f8[0], f8[1], f8[2], f8[3]
    if add:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                )
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                )
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us] + f2 * src[o2 + us] + f3 * src[o3 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us] + f2 * src[o2 + us] + f3 * src[o3 + us]
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def _comb2(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    o0, o1 = o8[0], o8[1]
    f0, f1 = f8[0], f8[1]
    if add:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = dst[od + us] + f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = dst[od + us] + f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def _comb1(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    o0 = o8[0]
    f0 = f8[0]
    if add:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = dst[od + us] + f0 * src[o0 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = dst[od + us] + f0 * src[o0 + us]
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = _u(s)
                v = f0 * src[o0 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = _u(s)
                v = f0 * src[o0 + us]
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def _axpy(dst, od, src, os_, f, nc):  # pragma: no cover - numba
    for s in range(nc):
        us = _u(s)
        dst[od + us] += f * src[os_ + us]


@numba.njit(inline="always")
def _fill(dst, od, v, nc):  # pragma: no cover - numba
    for s in range(nc):
        dst[od + _u(s)] = v


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
    return _exact_panels(
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
        _c(js.local, dt),
        _c(js.drec, dt),
        _c(js.dense_w_rec(), dt),
        _c(js.dout, dt),
        _c(jp.drec, dt),
        _c(jp.dinp, dt),
        _c(jp.y_prev, dt),
        _c(jp.x, dt),
        _c(credit, dt),
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
                        _fill(new, _u(base + a * bs), zero, n * rst)
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
                        od = _u(od0 + rs)
                        if runs[2, ru] == 0:
                            if not keep_silent:
                                _fill(new, od, zero, m_)
                            continue
                        if t0 == t1:
                            _fill(new, od, zero, m_)
                            continue
                        t = t0
                        first = True
                        while t < t1:
                            # up to eight sources per pass over the run (1, 2, 4 or 8; a short
                            # group is padded by repeating its first source with factor 0, exact
                            # for finite values); the gradient is fused into the last pass
                            rem = t1 - t
                            w = 8 if rem >= 5 else (4 if rem >= 3 else rem)
                            o0 = _u(base + src_c[t] * bs + src_j[t] * rst + rs)
                            for u in range(w):
                                if t + u < t1:
                                    o8[u] = _u(base + src_c[t + u] * bs + src_j[t + u] * rst + rs)
                                    f8[u] = src_f[t + u]
                                else:
                                    o8[u] = o0
                                    f8[u] = zero
                            t += w
                            wg = t >= t1 and cf != 0
                            og = _u(c0 + rs)
                            if w == 8:
                                _comb8(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            elif w == 4:
                                _comb4(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            elif w == 2:
                                _comb2(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
                            else:
                                _comb1(new, od, old, o8, f8, m_, not first, grad, og, cf, wg)
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


# -------------------------------------------------------------------------------------------------
# SnAp-1: diagonal blocks only
# -------------------------------------------------------------------------------------------------
def snap1_step(M, layout, graph, jac_state, jac_params, credit, grad):
    """SnAp-1 step in place on ``M`` of shape ``(B, S, P)``: ``M <- D_ii M + Mbar``, ``grad += c^T M``.

    ``D_ii`` is the ``S x S`` diagonal block of ``J_t`` of each parameter's postsynaptic unit ``i``,
    including the autapse term ``sum_g drec[a, g, i] W_g[i, i] dout[b, i]`` (snap eq. (7)).
    """
    dt = M.dtype
    js, jp = jac_state, jac_params
    _snap1_step(
        M,
        layout.kind.astype(np.int64),
        layout.gate,
        layout.post,
        layout.pre,
        graph.self_edge,
        _c(js.local, dt),
        _c(js.drec, dt),
        _c(js.dense_w_rec(), dt),
        _c(js.dout, dt),
        _c(jp.drec, dt),
        _c(jp.dinp, dt),
        _c(jp.y_prev, dt),
        _c(jp.x, dt),
        _c(credit, dt),
        grad,
    )


@numba.njit(cache=True, nogil=True)
def _snap1_step(
    M,
    kind,
    gate,
    post,
    pre,
    self_edge,
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
):  # pragma: no cover - numba
    B, S, P = M.shape
    G = w_rec.shape[0]
    n = local.shape[3]
    zero = M.dtype.type(0.0)
    D = np.empty((n, S, S), dtype=M.dtype)
    old = np.empty(S, dtype=M.dtype)
    for b in range(B):
        for i in range(n):
            for a in range(S):
                for c in range(S):
                    D[i, a, c] = local[b, a, c, i]
            if self_edge[i] >= 0:
                for a in range(S):
                    s = zero
                    for g in range(G):
                        s += drec[b, a, g, i] * w_rec[g, i, i]
                    if s != 0:
                        for c in range(S):
                            D[i, a, c] += s * dout[b, c, i]
        if S == 1:
            for p in range(P):
                i = post[p]
                kd = kind[p]
                g = gate[p]
                if kd == REC:
                    f = jp_drec[b, 0, g, i] * y_prev[b, pre[p]]
                elif kd == INP:
                    f = jp_dinp[b, 0, g, i] * x[b, pre[p]]
                else:
                    f = jp_dinp[b, 0, g, i]
                v = D[i, 0, 0] * M[b, 0, p] + f
                M[b, 0, p] = v
                grad[p] += credit[b, 0, i] * v
        else:
            for p in range(P):
                i = post[p]
                kd = kind[p]
                g = gate[p]
                if kd == REC:
                    pv = y_prev[b, pre[p]]
                elif kd == INP:
                    pv = x[b, pre[p]]
                else:
                    pv = M.dtype.type(1.0)
                for c in range(S):
                    old[c] = M[b, c, p]
                for a in range(S):
                    s = zero
                    for c in range(S):
                        s += D[i, a, c] * old[c]
                    if kd == REC:
                        s += jp_drec[b, a, g, i] * pv
                    else:
                        s += jp_dinp[b, a, g, i] * pv
                    M[b, a, p] = s
                    grad[p] += credit[b, a, i] * s


# -------------------------------------------------------------------------------------------------
# plain product (learned thresholds' non-local influence, neurosnap.rules._thresholds)
# -------------------------------------------------------------------------------------------------
def propagate_influence(M, jac_state, graph):
    """``J_t M`` for ``M`` of shape ``(B, S, n, P)``, exploiting activity and weight sparsity.

    Args:
        M: influence, shape ``(B, S, n, P)``.
        jac_state: :class:`~neurosnap.core.record.StateJacobian` of this step.
        graph: :class:`RecurrentGraph` of the cell's mask.

    Returns:
        New array of shape ``(B, S, n, P)``.
    """
    B, S, n, P = M.shape
    plan = _product_plan(graph, S, B, P)
    G = jac_state.w_rec.shape[0]
    dummy = _DummyParams(B, S, G, n, M.dtype)
    grad = np.zeros(P, dtype=M.dtype)
    old = plan.from_dense(np.asarray(M))
    new = np.empty_like(old)
    block_step(old, new, plan, graph, jac_state, dummy, None, grad, immediate=False)
    return plan.to_dense(new)


class _DummyParams:
    def __init__(self, B, S, G, n, dtype):
        self.drec = np.zeros((B, S, G, n), dtype)
        self.dinp = np.zeros((B, S, G, n), dtype)
        self.y_prev = np.zeros((B, n), dtype)
        self.x = np.zeros((B, 1), dtype)


class _ProductLayout:
    """Minimal layout for a plain ``(n, P)`` product: every column is a bias of unit 0."""

    def __init__(self, n, P):
        self.n, self.size = n, P
        self.kind = np.full(P, BIAS, dtype=np.int8)
        self.gate = np.zeros(P, dtype=np.int64)
        self.post = np.zeros(P, dtype=np.int64)
        self.pre = np.zeros(P, dtype=np.int64)


def _product_plan(graph, S, B, P):
    return BlockPlan.dense(_ProductLayout(graph.n, P), graph, S, B)
