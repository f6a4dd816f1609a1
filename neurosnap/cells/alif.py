"""Adaptive leaky integrate-and-fire neurons (ALIF; Bellec et al. 2018, 2020).

As :mod:`neurosnap.cells.lif` with an adaptation variable ``a`` raising the threshold to
``v_th + beta * a`` (``docs/theory/cells.md`` eq. (12)-(14)), ``rho = 1 - dt/tau_adapt``:

    z_{t-1} = H(v_{t-1} - v_th - beta a_{t-1})
    v_r     = reset of v_{t-1} as in LIF (reset="subtract" subtracts v_th)
    a_t     = rho (a_{t-1} + z_{t-1})                        (Norse's LSNN adaptation)
    i_j, v_t, i_t as in LIF
    z_t     = H(v_t - v_th - beta a_t)

``refractory > 0`` adds the counter ``r`` as a fourth state variable, as in LIF (eq. (15)-(18)): no
spike while refractory, the membrane clamped, ``i`` and ``a`` keep integrating.
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from .lif import SpikingCell


class ALIF(SpikingCell):
    """Adaptive LIF: state ``(v, i, a)``; all LIF arguments plus:

    Args:
        tau_adapt: adaptation time constant (>= dt).
        beta: threshold increase per unit of adaptation (>= 0; ``beta=0`` behaves as LIF).
        detach_adaptation: if True, no gradient flows through the spike that increments ``a``.

    State shape ``(B, 3, n)``, ``(B, 4, n)`` with the refractory counter ``r`` when
    ``refractory > 0``; output: spikes ``z`` of shape ``(B, n)``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> cell = ns.cells.ALIF(n_in=3, n_hidden=6, density=0.5, beta=1.8, w_in_scale=20.0)
        >>> xs = (np.random.default_rng(0).random((40, 2, 3)) < 0.2).astype(float)   # input spikes
        >>> model = ns.Model(cell, n_out=2)
        >>> params = model.init(seed=0)
        >>> {k: v.shape for k, v in params.items() if k.startswith("cell.")}
        {'cell.w_rec': (1, 6, 6), 'cell.w_in': (1, 6, 3)}
        >>> traj = model.run(params, xs)
        >>> traj.events.shape                # (T, B, n_hidden), which units emitted an event
        (40, 2, 6)
        >>> traj.states.shape               # (T, B, S, n_hidden): v, i and the adaptation a
        (40, 2, 3, 6)
    """

    state_names = ("v", "i", "a")
    gate_names = ("i",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        density: float = 1.0,
        *,
        tau_adapt: float = 0.2,
        beta: float = 1.8,
        detach_adaptation: bool = False,
        **kwargs,
    ):
        super().__init__(n_in, n_hidden, density, **kwargs)  # validates dt
        self.tau_adapt = validate.real(
            "tau_adapt", tau_adapt, low=self.dt, low_name=f"dt={self.dt}"
        )
        self.beta = validate.real("beta", beta, low=0.0)
        if not isinstance(detach_adaptation, bool):
            raise TypeError(f"detach_adaptation must be a bool, got {detach_adaptation!r}")
        self.detach_adaptation = detach_adaptation

    def _local(self, state, rec, inp, jac):
        v, i, a = state[:, 0], state[:, 1], state[:, 2]
        x = v - self.v_th - self.beta * a
        z, dz, free = self._spike(x, state, jac)
        v_r, dvr_dv, dvr_dx = self._reset(v, z, dz, jac)
        c_new, m = self._counter(state, x, free)
        v_new, i_new = self._integrate(v_r, i, rec, inp, m)
        rho = 1 - self.dt / self.tau_adapt
        new = self._stack([v_new, i_new, rho * (a + z)], state, x, free, c_new)
        if not jac:
            return new, None, None, None
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        km = k_m if m is None else k_m * m  # 0 while clamped
        B, S, n = state.shape
        dza = np.zeros_like(v) if self.detach_adaptation else dz
        local = np.zeros((B, S, S, n), dtype=state.dtype)  # the counter's rows and columns stay 0
        local[:, 0, 0] = (1 - km) * dvr_dv
        local[:, 0, 1] = km
        local[:, 0, 2] = (1 - km) * dvr_dx * (-self.beta)
        local[:, 1, 1] = 1 - k_s
        local[:, 2, 0] = rho * dza
        local[:, 2, 2] = rho * (1 - self.beta * dza)
        d = np.zeros((B, S, 1, n), dtype=state.dtype)
        d[:, 0, 0] = km
        d[:, 1, 0] = 1 - k_s
        self._buffer_jac(local, self.beta)
        return new, local, d, d.copy()

    def _output(self, state, jac):
        x = state[:, 0] - self.v_th - self.beta * state[:, 2]
        z, g, free = self._spike(x, state, jac)
        if not jac:
            return z, None, None
        dout = np.zeros_like(state)
        dout[:, 0] = g
        dout[:, 2] = -self.beta * g
        return z, dout, (x > 0) if free is None else (x > 0) & (free > 0)

    def compiled_spec(self):
        """See :meth:`~neurosnap.cells.base.Cell.compiled_spec`."""
        from ..engine import codes

        return self._spiking_spec(codes.ALIF) if type(self) is ALIF else None
