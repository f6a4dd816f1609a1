"""Flat numbering of a cell's *existing* parameters, as used by influence matrices.

Column ``p`` of an influence matrix belongs to one scalar parameter: a recurrent weight
``w_rec[g, i, j]`` that exists under the cell's mask, an input weight ``w_in[g, i, k]`` or a bias
``bias[g, i]``. Every such parameter drives exactly one unit, ``post[p] == i``; its immediate
influence is ``post_factor * pre_value`` (see :class:`neurosnap.core.record.ParamJacobian`).
"""
from __future__ import annotations

import numpy as np

REC, INP, BIAS = 0, 1, 2


class ParamLayout:
    """Column numbering of the cell parameters ``w_rec`` (masked), ``w_in`` and ``bias``.

    Attributes:
        kind: shape ``(P,)``, REC, INP or BIAS.
        gate: shape ``(P,)``, gate index ``g``.
        post: shape ``(P,)``, the unit ``i`` the parameter drives.
        pre: shape ``(P,)``, presynaptic unit (REC), input channel (INP) or 0 (BIAS).
    """

    def __init__(self, mask: np.ndarray, n_gates: int, n_in: int, has_bias: bool):
        n = mask.shape[0]
        self.n, self.n_gates, self.n_in, self.has_bias = n, n_gates, n_in, has_bias
        post_r, pre_r = np.nonzero(mask)
        parts = []
        for g in range(n_gates):
            parts.append((REC, g, post_r, pre_r))
        ii, kk = np.meshgrid(np.arange(n), np.arange(n_in), indexing="ij")
        for g in range(n_gates):
            parts.append((INP, g, ii.ravel(), kk.ravel()))
        if has_bias:
            for g in range(n_gates):
                parts.append((BIAS, g, np.arange(n), np.zeros(n, dtype=np.int64)))
        self.kind = np.concatenate([np.full(len(p[2]), p[0]) for p in parts]).astype(np.int8)
        self.gate = np.concatenate([np.full(len(p[2]), p[1]) for p in parts]).astype(np.int64)
        self.post = np.concatenate([p[2] for p in parts]).astype(np.int64)
        self.pre = np.concatenate([p[3] for p in parts]).astype(np.int64)
        self.size = len(self.post)
        self._rec = self.kind == REC
        self._inp = self.kind == INP
        self._bias = self.kind == BIAS

    def pre_values(self, y_prev: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Presynaptic factor of every column, shape ``(B, P)``: y_prev, x or 1."""
        B = y_prev.shape[0]
        out = np.ones((B, self.size), dtype=y_prev.dtype)
        out[:, self._rec] = y_prev[:, self.pre[self._rec]]
        out[:, self._inp] = x[:, self.pre[self._inp]]
        return out

    def post_factors(self, drec: np.ndarray, dinp: np.ndarray) -> np.ndarray:
        """Postsynaptic factor of every column, shape ``(B, S, P)``, from ``(B, S, G, n)`` arrays."""
        out = dinp[:, :, self.gate, self.post]
        out[:, :, self._rec] = drec[:, :, self.gate[self._rec], self.post[self._rec]]
        return out

    def immediate(self, jac_params) -> np.ndarray:
        """Non-zero entries of Mbar_t, shape ``(B, S, P)``: column ``p`` sits in rows ``(a, post[p])``."""
        return (self.post_factors(jac_params.drec, jac_params.dinp)
                * self.pre_values(jac_params.y_prev, jac_params.x)[:, None, :])

    def to_dict(self, vec: np.ndarray, dtype) -> dict[str, np.ndarray]:
        """Scatter a ``(P,)`` gradient vector into ``{"w_rec", "w_in", "bias"}`` arrays (zeros elsewhere)."""
        G, n, k = self.n_gates, self.n, self.n_in
        out = {"w_rec": np.zeros((G, n, n), dtype), "w_in": np.zeros((G, n, k), dtype)}
        r, i_ = self._rec, self._inp
        out["w_rec"][self.gate[r], self.post[r], self.pre[r]] = vec[r]
        out["w_in"][self.gate[i_], self.post[i_], self.pre[i_]] = vec[i_]
        if self.has_bias:
            out["bias"] = np.zeros((G, n), dtype)
            b = self._bias
            out["bias"][self.gate[b], self.post[b]] = vec[b]
        return out

    def from_dict(self, d: dict[str, np.ndarray]) -> np.ndarray:
        """Gather ``{"w_rec", "w_in", "bias"}`` arrays into a ``(P,)`` vector."""
        vec = np.empty(self.size, dtype=d["w_in"].dtype)
        r, i_ = self._rec, self._inp
        vec[r] = d["w_rec"][self.gate[r], self.post[r], self.pre[r]]
        vec[i_] = d["w_in"][self.gate[i_], self.post[i_], self.pre[i_]]
        if self.has_bias:
            b = self._bias
            vec[b] = d["bias"][self.gate[b], self.post[b]]
        return vec
