"""The step record: what a cell step hands to every learning rule.

Notation (``docs/theory/rtrl.md``): a cell has ``n`` units with ``S`` state variables each and ``G``
recurrent drives ("gates"). Unit ``i`` evolves by a local function

    s_t[:, i] = f(s_{t-1}[:, i], rec_t[:, i], inp_t[:, i])                        (rtrl eq. 1)
    rec_t[g] = W_rec[g] @ y_{t-1},   inp_t[g] = W_in[g] @ x_t + b[g],   y_t = out(s_t)

so the state Jacobian J_t = ds_t/ds_{t-1} is a per-unit block-diagonal part plus a part routed through
the recurrent weights and the event output (rtrl eq. 3):

    J_t[(a,i),(b,j)] = local[a,b,i] * delta_ij + sum_g drec[a,g,i] * W_rec[g][i,j] * dout[b,j]

A silent unit ``j`` outside the surrogate's support has ``dout[:, j] == 0`` and so contributes no
column to the second part: this is the activity sparsity the sparse engine exploits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import RecurrentGraph


@dataclass(frozen=True)
class StateJacobian:
    """J_t = ds_t/ds_{t-1} in structured form.

    Attributes:
        local: shape ``(B, S, S, n)``, ``ds_t[a, i] / ds_{t-1}[b, i]`` not through the recurrence.
        drec: shape ``(B, S, G, n)``, ``ds_t[a, i] / drec_t[g, i]``.
        w_rec: the recurrent weights ``W_rec[g][post, pre]``: shape ``(G, n, n)`` (zero off the
            connectivity) or ``(G, nnz)`` synapse values in the order of ``graph``'s edges.
        dout: shape ``(B, S, n)``, ``dy_{t-1}[j] / ds_{t-1}[b, j]`` (zero for silent units).
        graph: the connectivity (:class:`~neurosnap.core.graph.RecurrentGraph`); needed when
            ``w_rec`` holds synapse values.
    """

    local: np.ndarray
    drec: np.ndarray
    w_rec: np.ndarray
    dout: np.ndarray
    graph: RecurrentGraph | None = None

    def dense_w_rec(self) -> np.ndarray:
        """``w_rec`` as ``(G, n, n)`` (the array itself when it is dense)."""
        if self.w_rec.ndim == 3:
            return self.w_rec
        return self.graph.dense(self.w_rec)  # type: ignore[union-attr]

    def to_dense(self) -> np.ndarray:
        """The full Jacobian, shape ``(B, S*n, S*n)``, rows and columns ordered ``(state var, unit)``."""
        B, S, _, n = self.local.shape
        off = np.einsum("bagi,gij,bcj->baicj", self.drec, self.dense_w_rec(), self.dout)
        eye = np.eye(n, dtype=self.local.dtype)
        diag = np.einsum("bacn,nm->bancm", self.local, eye)
        return (off + diag).reshape(B, S * n, S * n)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``J_t v`` for ``v`` of shape ``(B, S, n)`` without forming the dense Jacobian (rtrl eq. 3);
        the UORO forward step (uoro eq. 2).

        Returns:
            Shape ``(B, S, n)``: ``local v`` per unit plus ``drec W_rec (dout . v)`` (the recurrence).
        """
        out = np.einsum("bacn,bcn->ban", self.local, v)
        y = np.einsum("bcj,bcj->bj", self.dout, v)  # change of the event output
        if self.w_rec.ndim == 3:
            rec = np.einsum("gij,bj->bgi", self.w_rec, y)  # change of the recurrent drive
        else:
            rec = self.graph.matmul(self.w_rec, y)  # type: ignore[union-attr]
        return out + np.einsum("bagi,bgi->bai", self.drec, rec)

    def matvec_transpose(self, lam: np.ndarray) -> np.ndarray:
        """``J_t^T lam`` for ``lam`` of shape ``(B, S, n)``; the BPTT step (bptt eq. 2)."""
        out = np.einsum("bacn,ban->bcn", self.local, lam)
        delta = np.einsum("ban,bagn->bgn", lam, self.drec)
        if self.w_rec.ndim == 3:
            back = np.einsum("bgi,gij->bj", delta, self.w_rec)
        else:
            back = self.graph.matmul_transpose(self.w_rec, delta)  # type: ignore[union-attr]
        return out + self.dout * back[:, None, :]


@dataclass(frozen=True)
class ParamJacobian:
    """The immediate influence Mbar_t = ds_t/dtheta in factored form (rtrl eq. 2).

    For a recurrent weight ``W_rec[g][i, j]`` the only non-zero rows are those of unit ``i``:
    ``Mbar[(a, i), W_rec[g][i, j]] = drec[a, g, i] * y_prev[j]``; for ``W_in[g][i, k]`` it is
    ``dinp[a, g, i] * x[k]`` and for ``b[g][i]`` it is ``dinp[a, g, i]``.

    With a learned threshold (EGRU ``learn_threshold=True``) the record also carries its terms
    (``docs/theory/cells.md`` eq. (24)-(25)): the local part ``Mbar[(a, i), theta_i] = dthr[a, i]``
    and the derivative of the previous output ``dy_thr_prev[j] = dy_{t-1}[j] / dtheta_j``, from
    which :meth:`~neurosnap.core.layout.ParamLayout.nonlocal_immediate` builds the non-local part.

    Attributes:
        drec: shape ``(B, S, G, n)``.
        dinp: shape ``(B, S, G, n)``.
        y_prev: shape ``(B, n)``, presynaptic event output of the previous step.
        x: shape ``(B, n_in)``, the input of this step.
        dthr: shape ``(B, S, n)`` or None (no learned threshold).
        dy_thr_prev: shape ``(B, n)`` or None.
    """

    drec: np.ndarray
    dinp: np.ndarray
    y_prev: np.ndarray
    x: np.ndarray
    dthr: np.ndarray | None = None
    dy_thr_prev: np.ndarray | None = None


@dataclass(frozen=True)
class StepRecord:
    """Everything a learning rule needs from one cell step.

    Attributes:
        events: shape ``(B, n)`` bool, units that emitted an event at this step.
        support: shape ``(B, n)`` bool, units whose output derivative ``dout`` is non-zero
            (events plus units inside the surrogate's support).
        dout: shape ``(B, S, n)``, ``dy_t / ds_t`` for the new state (used by the readout credit and
            by the next step's Jacobian).
        jac_state: :class:`StateJacobian`, J_t.
        jac_params: :class:`ParamJacobian`, Mbar_t.
        dy_thr: shape ``(B, n)``, ``dy_t / dtheta`` for the new state with a learned threshold
            (the readout's direct dependence, see
            :meth:`~neurosnap.core.layout.ParamLayout.readout_direct`), else None.
    """

    events: np.ndarray
    support: np.ndarray
    dout: np.ndarray
    jac_state: StateJacobian
    jac_params: ParamJacobian
    dy_thr: np.ndarray | None = None
