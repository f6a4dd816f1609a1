"""Event-based GRU (EGRU; Subramoney et al., ICLR 2023; arXiv 2303.05641).

Update order (``docs/theory/cells.md`` eq. (2)-(6)), state ``c`` (before its reset), threshold
``theta``, event output ``y = o * c`` with ``o = H(c - theta)``:

    o_{t-1} = H(c_{t-1} - theta),   y_{t-1} = o_{t-1} * c_{t-1}       only y enters the recurrence
    c_r     = c_{t-1} - o_{t-1} * theta                                  reset after an event
    u = sigmoid(W_u y_{t-1} + V_u x_t + b_u)                             update gate
    r = sigmoid(W_r y_{t-1} + V_r x_t + b_r)                             reset gate
    z = tanh(r * (W_c y_{t-1}) + V_c x_t + b_c)                          candidate
    c_t = u * z + (1 - u) * c_r
"""
from __future__ import annotations

import numpy as np

from ..core import validate
from ..gates import Triangle, make_gate
from .base import Cell


class EGRU(Cell):
    """Event-based GRU: one state variable ``c``, gates ``u``, ``r``, ``c``.

    Args:
        n_in, n_hidden, density: see :class:`~neurosnap.cells.base.Cell`.
        gate: ``ns.gates.Heaviside(...)`` (default: triangle pseudo-derivative
            ``gamma * max(0, 1 - |c - theta| / width)`` with ``gamma=0.7``, ``width=0.5``) or
            ``ns.gates.Smooth(beta)``.
        threshold: event threshold ``theta`` > 0 (a fixed hyperparameter).
        detach_reset: if True, no gradient flows through the reset term ``o * theta``.
        **kwargs: ``seed``, ``autapses``, ``bias``, ``w_in_scale``, ``w_rec_scale``.

    State shape ``(B, 1, n)``; output ``y`` of shape ``(B, n)``, zero for silent units.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> cell = ns.cells.EGRU(n_in=3, n_hidden=6, density=0.5, threshold=0.3)
        >>> xs = np.random.default_rng(0).normal(size=(40, 2, 3))
        >>> model = ns.Model(cell, n_out=2)
        >>> params = model.init(seed=0)
        >>> {k: v.shape for k, v in params.items() if k.startswith("cell.")}
        {'cell.w_rec': (3, 6, 6), 'cell.w_in': (3, 6, 3), 'cell.bias': (3, 6)}
        >>> traj = model.run(params, xs)
        >>> traj.events.shape                # (T, B, n_hidden), which units emitted an event
        (40, 2, 6)
        >>> round(float(traj.events.mean()), 3)  # fraction of units emitting an event per step
        0.24
    """

    state_names = ("c",)
    gate_names = ("u", "r", "c")

    def __init__(self, n_in: int, n_hidden: int, density: float = 1.0, *, gate=None,
                 threshold: float = 0.3, detach_reset: bool = False, **kwargs):
        self.gate = make_gate(gate, Triangle(gamma=0.7, width=0.5))
        self.threshold = validate.real("threshold", threshold, low=0.0, low_open=True)
        if not isinstance(detach_reset, bool):
            raise TypeError(f"detach_reset must be a bool, got {detach_reset!r}")
        self.detach_reset = detach_reset
        super().__init__(n_in, n_hidden, density, **kwargs)

    def _local(self, state, rec, inp, jac):
        theta = self.threshold
        c = state[:, 0]
        o = self.gate.forward(c - theta)
        c_r = c - o * theta
        u = _sigmoid(rec[:, 0] + inp[:, 0])
        r = _sigmoid(rec[:, 1] + inp[:, 1])
        z = np.tanh(r * rec[:, 2] + inp[:, 2])
        new = (u * z + (1 - u) * c_r)[:, None, :]
        if not jac:
            return new, None, None, None
        dc_r = 1.0 if self.detach_reset else 1.0 - theta * self.gate.grad(c - theta)
        local = ((1 - u) * dc_r)[:, None, None, :]
        d_u = (z - c_r) * u * (1 - u)                  # dc/d(pre-activation of u)
        d_zpre = u * (1 - z * z)                       # dc/d(pre-activation of z)
        d_r = d_zpre * rec[:, 2] * r * (1 - r)          # dc/d(pre-activation of r)
        drec = np.stack([d_u, d_r, d_zpre * r], axis=1)[:, None]
        dinp = np.stack([d_u, d_r, d_zpre], axis=1)[:, None]
        return new, local, drec, dinp

    def _output(self, state, jac):
        c = state[:, 0]
        o = self.gate.forward(c - self.threshold)
        y = o * c
        if not jac:
            return y, None, None
        dout = (o + c * self.gate.grad(c - self.threshold))[:, None, :]
        return y, dout, c > self.threshold

    def compiled_spec(self):
        """See :meth:`~neurosnap.cells.base.Cell.compiled_spec`; ``hyper = [threshold,
        detach_reset]``."""
        gate = self.gate.compiled_spec()
        if type(self) is not EGRU or gate is None:
            return None
        from ..engine import codes
        hyper = np.zeros(10)
        hyper[0], hyper[1] = self.threshold, float(self.detach_reset)
        return codes.EGRU, gate[0], gate[1], hyper


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))
