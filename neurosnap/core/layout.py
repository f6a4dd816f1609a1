"""Flat numbering of a cell's *existing* parameters, as used by influence matrices.

Column ``p`` of an influence matrix belongs to one scalar parameter: a recurrent weight
``w_rec[g, i, j]`` that exists under the cell's mask, an input weight ``w_in[g, i, k]`` or a bias
``bias[g, i]``. Every such parameter drives exactly one unit, ``post[p] == i``; its immediate
influence is ``post_factor * pre_value`` (see :class:`neurosnap.core.record.ParamJacobian`).

A learned per-unit threshold ``threshold[i]`` (kind THR, EGRU with ``learn_threshold=True``) is the
one exception: besides its local immediate influence on unit ``i`` (rows of ``post[p] == i``), it
changes unit ``i``'s output ``y_{t-1}[i]``, which reaches ``i``'s postsynaptic units through
``W_rec`` at step ``t``. That non-local part is :meth:`ParamLayout.nonlocal_immediate`
(``docs/theory/cells.md`` eq. (25)). Threshold columns come last, after the columns of
:attr:`ParamLayout.base`, the layout without them that the numba kernels run on.
"""

from __future__ import annotations

import numpy as np

from .graph import RecurrentGraph

REC, INP, BIAS, THR = 0, 1, 2, 3


class ParamLayout:
    """Column numbering of the cell parameters ``w_rec`` (masked), ``w_in``, ``bias`` and, with
    ``has_threshold``, ``threshold`` (one per unit, last).

    Attributes:
        kind: shape ``(P,)``, REC, INP, BIAS or THR.
        gate: shape ``(P,)``, gate index ``g`` (0 for THR).
        post: shape ``(P,)``, the unit ``i`` the parameter drives (THR: the unit it belongs to).
        pre: shape ``(P,)``, presynaptic unit (REC), input channel (INP), 0 (BIAS) or the unit
            itself (THR: the unit whose output ``y_{t-1}`` it changes).
        base: the layout without threshold columns (``self`` when there are none); its columns
            are the first ``base.size`` of this one.
        n_thr: number of threshold columns (0 or ``n``), ``thr_cols`` their positions.
    """

    def __init__(
        self,
        mask,
        n_gates: int,
        n_in: int,
        has_bias: bool,
        has_threshold: bool = False,
        sparse_rec: bool = False,
    ):
        graph = mask if isinstance(mask, RecurrentGraph) else RecurrentGraph(mask)
        n = graph.n
        self.n, self.n_gates, self.n_in, self.has_bias = n, n_gates, n_in, has_bias
        self.has_threshold = bool(has_threshold)
        #: ``w_rec`` stored as ``(G, nnz)`` synapse values (a cell's ``storage="sparse"``)
        self.sparse_rec = bool(sparse_rec)
        self.nnz = graph.nnz
        post_r, pre_r = graph.edge_post, graph.edge_pre
        parts = []
        for g in range(n_gates):
            parts.append((REC, g, post_r, pre_r))
        ii, kk = np.meshgrid(np.arange(n), np.arange(n_in), indexing="ij")
        for g in range(n_gates):
            parts.append((INP, g, ii.ravel(), kk.ravel()))
        if has_bias:
            for g in range(n_gates):
                parts.append((BIAS, g, np.arange(n), np.zeros(n, dtype=np.int64)))
        if self.has_threshold:
            parts.append((THR, 0, np.arange(n), np.arange(n)))
        self.kind = np.concatenate([np.full(len(p[2]), p[0]) for p in parts]).astype(np.int8)
        self.gate = np.concatenate([np.full(len(p[2]), p[1]) for p in parts]).astype(np.int64)
        self.post = np.concatenate([p[2] for p in parts]).astype(np.int64)
        self.pre = np.concatenate([p[3] for p in parts]).astype(np.int64)
        self.size = len(self.post)
        self._rec = self.kind == REC
        self._inp = self.kind == INP
        self._bias = self.kind == BIAS
        self._thr = self.kind == THR
        self.n_thr = int(self._thr.sum())
        self.thr_cols = np.flatnonzero(self._thr)
        self.base = (
            ParamLayout(graph, n_gates, n_in, has_bias, sparse_rec=sparse_rec)
            if self.has_threshold
            else self
        )

    def pre_values(self, y_prev: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Presynaptic factor of every column, shape ``(B, P)``: y_prev, x or 1."""
        B = y_prev.shape[0]
        out = np.ones((B, self.size), dtype=y_prev.dtype)
        out[:, self._rec] = y_prev[:, self.pre[self._rec]]
        out[:, self._inp] = x[:, self.pre[self._inp]]
        return out

    def post_factors(self, drec: np.ndarray, dinp: np.ndarray, dthr=None) -> np.ndarray:
        """Postsynaptic factor of every column, shape ``(B, S, P)``, from ``(B, S, G, n)`` arrays
        (and the threshold's local immediate influence ``dthr (B, S, n)`` if the layout has one)."""
        out = dinp[:, :, self.gate, self.post]
        out[:, :, self._rec] = drec[:, :, self.gate[self._rec], self.post[self._rec]]
        if self.n_thr:
            out[:, :, self._thr] = dthr[:, :, self.post[self._thr]]
        return out

    def immediate(self, jac_params) -> np.ndarray:
        """Entries of Mbar_t in the rows ``(a, post[p])`` of each column ``p``, shape ``(B, S, P)``.

        This is all of Mbar_t except, for threshold columns, the non-local part
        :meth:`nonlocal_immediate` (rows of the unit's postsynaptic units)."""
        return (
            self.post_factors(jac_params.drec, jac_params.dinp, getattr(jac_params, "dthr", None))
            * self.pre_values(jac_params.y_prev, jac_params.x)[:, None, :]
        )

    def nonlocal_immediate(self, jac_params, w_rec: np.ndarray):
        """The threshold columns' non-local immediate influence, ``(B, S, n, n_thr)`` or None.

        ``theta_j`` changes ``y_{t-1}[j]`` by ``dy_thr_prev[j]``, which reaches unit ``i`` through
        ``W_rec[g][i, j]`` (``docs/theory/cells.md`` eq. (25)):
        ``Mbar_nl[b, a, i, j] = sum_g drec[b, a, g, i] W_rec[g][i, j] dy_thr_prev[b, j]``. Dense
        reference form (``O(S G n^2)``); the sparse engines use :func:`nonlocal_edges`."""
        if not self.n_thr:
            return None
        w_rec = self.dense_rec(w_rec)
        return np.einsum("bagi,gij,bj->baij", jac_params.drec, w_rec, jac_params.dy_thr_prev)

    def nonlocal_vjp(self, lam: np.ndarray, jac_params, w_rec: np.ndarray) -> np.ndarray:
        """``lam^T Mbar_nl`` per example, ``(B, n_thr)``, for ``lam (B, S, n)``: the back-projection
        ``W_rec^T (lam . drec)`` at unit ``j`` times ``dy_thr_prev[j]`` (``docs/theory/cells.md``
        eq. (27)); cost of one transposed recurrent product."""
        delta = np.einsum("ban,bagn->bgn", lam, jac_params.drec)
        back = np.einsum("bgi,gij->bj", delta, self.dense_rec(w_rec))
        return (back * jac_params.dy_thr_prev)[:, self.pre[self._thr]]

    def nonlocal_edges(self, jac_params, w_rec: np.ndarray, edge_post, edge_pre):
        """The same non-local term on the existing connections only: ``(B, S, E)`` values for the
        entries ``(post[e], pre[e])`` (cost ``O(B S G E)``, i.e. fan-out per threshold)."""
        vals = w_rec if w_rec.ndim == 2 else w_rec[:, edge_post, edge_pre]
        coef = np.einsum("bage,ge->bae", jac_params.drec[:, :, :, edge_post], vals)
        return coef * jac_params.dy_thr_prev[:, None, edge_pre]

    def dense_rec(self, w_rec: np.ndarray) -> np.ndarray:
        """``w_rec`` as ``(G, n, n)``: as it is when dense, scattered from ``(G, nnz)`` synapse
        values (edge order) otherwise."""
        if w_rec.ndim == 3:
            return w_rec
        G, n = self.n_gates, self.n
        r = np.flatnonzero(self._rec)[: self.nnz]  # gate 0's columns: the edges in order
        out = np.zeros((G, n, n), w_rec.dtype)
        out[:, self.post[r], self.pre[r]] = w_rec
        return out

    def to_dict(self, vec: np.ndarray, dtype) -> dict[str, np.ndarray]:
        """Scatter a ``(P,)`` gradient vector into ``{"w_rec", "w_in", "bias"}`` arrays (zeros elsewhere)."""
        G, n, k = self.n_gates, self.n, self.n_in
        r, i_ = self._rec, self._inp
        if self.sparse_rec:  # REC columns are gate-major in edge order: (G, nnz) as they are
            w_rec = np.ascontiguousarray(vec[r].reshape(G, self.nnz), dtype=dtype)
        else:
            w_rec = np.zeros((G, n, n), dtype)
            w_rec[self.gate[r], self.post[r], self.pre[r]] = vec[r]
        out = {"w_rec": w_rec, "w_in": np.zeros((G, n, k), dtype)}
        out["w_in"][self.gate[i_], self.post[i_], self.pre[i_]] = vec[i_]
        if self.has_bias:
            out["bias"] = np.zeros((G, n), dtype)
            b = self._bias
            out["bias"][self.gate[b], self.post[b]] = vec[b]
        if self.n_thr:
            out["threshold"] = np.zeros(n, dtype)
            out["threshold"][self.post[self._thr]] = vec[self._thr]
        return out

    def from_dict(self, d: dict[str, np.ndarray]) -> np.ndarray:
        """Gather ``{"w_rec", "w_in", "bias"(, "threshold")}`` arrays into a ``(P,)`` vector."""
        vec = np.empty(self.size, dtype=d["w_in"].dtype)
        r, i_ = self._rec, self._inp
        if self.sparse_rec:
            vec[r] = d["w_rec"].reshape(-1)
        else:
            vec[r] = d["w_rec"][self.gate[r], self.post[r], self.pre[r]]
        vec[i_] = d["w_in"][self.gate[i_], self.post[i_], self.pre[i_]]
        if self.has_bias:
            b = self._bias
            vec[b] = d["bias"][self.gate[b], self.post[b]]
        if self.n_thr:
            vec[self._thr] = d["threshold"][self.post[self._thr]]
        return vec

    def readout_direct(self, record, dy: np.ndarray):
        """``dL_t/dtheta`` through the event output ``y_t`` with the state held fixed, ``(P,)``, or
        None when the layout has no threshold: ``sum_b dy[b, i] dy_thr[b, i]`` in the threshold
        columns (``docs/theory/cells.md`` eq. (26)). The training loops add it to every rule's
        gradient, like the readout's own gradient; ``dy (B, n)`` is ``dL_t/dy_t``."""
        if not self.n_thr:
            return None
        out = np.zeros(self.size, dtype=dy.dtype)
        out[self._thr] = np.einsum("bi,bi->i", dy, record.dy_thr)[self.post[self._thr]]
        return out
