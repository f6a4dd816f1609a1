"""NumPy reference of the sparse kernels' plain ``J_t M`` product
(``neurosnap.sparse.kernels.propagate_influence``), used only by the tests."""

from __future__ import annotations

import numpy as np


def propagate_influence_reference(M, jac_state, graph):
    """NumPy reference of ``propagate_influence``: ``J_t M``, ``M`` of shape ``(B, S, n, P)``."""
    out = np.einsum("bacn,bcnp->banp", jac_state.local, M)
    B = M.shape[0]
    for b in range(B):
        active = np.flatnonzero(np.any(jac_state.dout[b] != 0, axis=0))
        if active.size == 0:
            continue
        Y = np.einsum("cj,cjp->jp", jac_state.dout[b][:, active], M[b][:, active])  # (|A|, P)
        W = jac_state.w_rec[:, :, active] * graph_mask(graph)[None, :, active]  # (G, n, |A|)
        coef = np.einsum("agi,gij->aij", jac_state.drec[b], W)  # (S, n, |A|)
        out[b] += coef @ Y
    return out


def graph_mask(graph) -> np.ndarray:
    """The boolean mask ``(n, n)`` of a ``RecurrentGraph``."""
    mask = np.zeros((graph.n, graph.n), dtype=bool)
    mask[graph.edge_post, graph.edge_pre] = True
    return mask
