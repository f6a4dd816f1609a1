"""Block plans of the sparse exact engine: ``J_t M`` without touching what is zero.

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
per step) and ``grad += c_t^T M'`` (rtrl eq. 4 and 6). The exact engine's column panels are in
:mod:`neurosnap.sparse.panels`, the row operations both use in :mod:`neurosnap.sparse.rowops`.
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.layout import INP, REC
from .rowops import axpy, comb1, comb2, comb4, comb8, fill, record_arrays, u64

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
        *record_arrays(js, jp, credit, dt),
        grad_store,
        immediate,
        w["coef"],
        w["active"],
        w["src_ptr"],
        w["src_f"],
        w["src_c"],
        w["src_jj"],
    )


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
                    od = u64(base + a * bs + kk * rst)
                    t = src_ptr[(r0 + kk) * S + a]
                    t1 = src_ptr[(r0 + kk) * S + a + 1]
                    if t == t1:
                        fill(new, od, zero, nc)
                        continue
                    first = True
                    while t < t1:
                        # up to eight sources per pass over the row (1, 2, 4 or 8; a short group
                        # is padded by repeating its first source with factor 0, exact for
                        # finite values)
                        rem = t1 - t
                        w = 8 if rem >= 5 else (4 if rem >= 3 else rem)
                        o0 = u64(base + src_c[t] * bs + src_jj[t] * rst)
                        for u in range(w):
                            if t + u < t1:
                                o8[u] = u64(base + src_c[t + u] * bs + src_jj[t + u] * rst)
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
                            comb8(new, od, old, o8, f8, nc, not first, grad, u64(c0), cf, wg)
                        elif w == 4:
                            comb4(new, od, old, o8, f8, nc, not first, grad, u64(c0), cf, wg)
                        elif w == 2:
                            comb2(new, od, old, o8, f8, nc, not first, grad, u64(c0), cf, wg)
                        else:
                            comb1(new, od, old, o8, f8, nc, not first, grad, u64(c0), cf, wg)
                        first = False
                if S == 1 and gdone:
                    gdone = False
                    continue
                for a in range(S):
                    f = credit[b, a, k]
                    if f != 0:
                        axpy(grad, u64(c0), new, u64(base + a * bs + kk * rst), f, nc)
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
