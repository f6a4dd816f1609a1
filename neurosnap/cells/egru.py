"""Event-based GRU (EGRU; Subramoney et al., ICLR 2023; arXiv 2303.05641).

Update order (``docs/theory/cells.md`` eq. (2)-(6)), state ``c`` (before its reset), threshold
``theta``, event output ``y = o * c`` with ``o = H(c - theta)``:

    o_{t-1} = H(c_{t-1} - theta),   y_{t-1} = o_{t-1} * c_{t-1}       only y enters the recurrence
    c_r     = c_{t-1} - o_{t-1} * theta                                  reset after an event
    u = sigmoid(W_u y_{t-1} + V_u x_t + b_u)                             update gate
    r = sigmoid(W_r y_{t-1} + V_r x_t + b_r)                             reset gate
    z = tanh(r * (W_c y_{t-1}) + V_c x_t + b_c)                          candidate
    c_t = u * z + (1 - u) * c_r

With ``learn_threshold=True`` the threshold is a per-unit parameter ``theta = sigmoid(theta_raw)``
(as in arXiv 2303.05641), stored raw in ``params["threshold"]``; its Jacobian terms are
``docs/theory/cells.md`` eq. (21)-(26).
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
        threshold: event threshold ``theta`` > 0 (a fixed hyperparameter), or with
            ``learn_threshold`` the initial threshold of every unit (then in (0, 1)).
        detach_reset: if True, no gradient flows through the reset term ``o * theta``.
        learn_threshold: if True, a learned per-unit threshold: ``params["cell.threshold"]``,
            shape ``(n,)``, holds the *raw* value ``theta_raw`` and the threshold is
            ``theta = sigmoid(theta_raw)`` (the paper's parametrisation), initialised to
            ``logit(threshold)`` so that it starts at ``threshold``. Its gradient is exact
            (``docs/theory/cells.md`` eq. (21)-(26)), including the non-local term through the
            unit's previous output. False (default): a fixed threshold, no extra parameter.
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

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        density: float = 1.0,
        *,
        gate=None,
        threshold: float = 0.3,
        detach_reset: bool = False,
        learn_threshold: bool = False,
        **kwargs,
    ):
        self.gate = make_gate(gate, Triangle(gamma=0.7, width=0.5))
        self.threshold = validate.real("threshold", threshold, low=0.0, low_open=True)
        if not isinstance(detach_reset, bool):
            raise TypeError(f"detach_reset must be a bool, got {detach_reset!r}")
        if not isinstance(learn_threshold, bool):
            raise TypeError(f"learn_threshold must be a bool, got {learn_threshold!r}")
        if learn_threshold and not self.threshold < 1.0:
            raise ValueError(
                "threshold must be in (0, 1) with learn_threshold=True "
                f"(theta = sigmoid(theta_raw)), got {threshold!r}"
            )
        self.detach_reset = detach_reset
        self.learn_threshold = learn_threshold
        super().__init__(n_in, n_hidden, density, **kwargs)

    # -- learned threshold -------------------------------------------------------------------------
    def init_params(self, rng, dtype):
        params = super().init_params(rng, dtype)
        if self.learn_threshold:  # raw = logit(threshold): theta starts there
            raw = np.log(self.threshold) - np.log1p(-self.threshold)
            params["threshold"] = np.full(self.n_hidden, raw, dtype=dtype)
        return params

    def param_shapes(self):
        shapes = super().param_shapes()
        if self.learn_threshold:
            shapes["threshold"] = (self.n_hidden,)
        return shapes

    def _theta(self, params):
        """The threshold: ``sigmoid(params["threshold"])`` ``(n,)`` if learned, else the float."""
        if not self.learn_threshold:
            return self.threshold
        if params is None or "threshold" not in params:
            raise ValueError(
                "this EGRU learns its threshold (learn_threshold=True): pass the "
                "cell's params (with 'threshold') to compute its output"
            )
        return _sigmoid(params["threshold"])

    def _out(self, params, state, jac):
        return self._output(state, jac, self._theta(params))

    def _loc(self, params, state, rec, inp, jac):
        return self._local(state, rec, inp, jac, self._theta(params))

    def _threshold_terms(self, params, state, new, rec, inp):
        """Learned threshold terms, as derivatives by the raw parameter (cells eq. (21)-(26))."""
        if not self.learn_threshold:
            return None
        theta = self._theta(params)
        dsig = theta * (1.0 - theta)  # dtheta / dtheta_raw
        c = state[:, 0]
        u = _sigmoid(rec[:, 0] + inp[:, 0])
        o = self.gate.forward(c - theta)
        gp = self.gate.grad(c - theta)
        dc_r = 0.0 * c if self.detach_reset else -o + theta * gp  # d c_r / d theta   (eq. (23))
        dthr = ((1 - u) * dc_r * dsig)[:, None, :]  # local Mbar       (eq. (24))
        dy_thr_prev = -c * gp * dsig  # d y_{t-1}/dtheta (eq. (22))
        c_new = new[:, 0]
        dy_thr = -c_new * self.gate.grad(c_new - theta) * dsig
        return dthr, dy_thr_prev, dy_thr

    def _local(self, state, rec, inp, jac, theta=None):
        theta = self.threshold if theta is None else theta
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
        d_u = (z - c_r) * u * (1 - u)  # dc/d(pre-activation of u)
        d_zpre = u * (1 - z * z)  # dc/d(pre-activation of z)
        d_r = d_zpre * rec[:, 2] * r * (1 - r)  # dc/d(pre-activation of r)
        drec = np.stack([d_u, d_r, d_zpre * r], axis=1)[:, None]
        dinp = np.stack([d_u, d_r, d_zpre], axis=1)[:, None]
        return new, local, drec, dinp

    def _output(self, state, jac, theta=None):
        theta = self.threshold if theta is None else theta
        c = state[:, 0]
        o = self.gate.forward(c - theta)
        y = o * c
        if not jac:
            return y, None, None
        dout = (o + c * self.gate.grad(c - theta))[:, None, :]
        return y, dout, c > theta

    def compiled_spec(self):
        """See :meth:`~neurosnap.cells.base.Cell.compiled_spec`; ``hyper = [threshold,
        detach_reset]``."""
        gate = self.gate.compiled_spec()
        if type(self) is not EGRU or gate is None or self.learn_threshold:
            return None
        from ..engine import codes

        hyper = np.zeros(10)
        hyper[0], hyper[1] = self.threshold, float(self.detach_reset)
        return codes.EGRU, gate[0], gate[1], hyper


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))
