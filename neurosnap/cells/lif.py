"""Current-based leaky integrate-and-fire neurons in discrete time (Norse's ``lif_step`` order).

State ``(v, i)`` per neuron, where ``v`` is the membrane potential *before* this step's reset (the
reset is applied at the start of the next step, so the spike is a function of the state). Update
order of one step (``docs/theory/cells.md`` eq. (7)-(11)), ``k_m = dt/tau_mem``, ``k_s = dt/tau_syn``:

    z_{t-1} = H(v_{t-1} - v_th)                                   spike of the previous step
    v_r     = (1 - z_{t-1}) v_{t-1} + z_{t-1} v_reset            reset="zero"
            = v_{t-1} - z_{t-1} v_th                              reset="subtract"
    i_j     = i_{t-1} + W_rec z_{t-1} + W_in x_t (+ b)            current jump before the voltage update
    v_t     = v_r + k_m (v_leak - v_r + i_j)                      forward Euler
    i_t     = (1 - k_s) i_j
    z_t     = H(v_t - v_th)                                       the output seen by readout and network
"""
from __future__ import annotations

import numpy as np

from ..core import validate
from ..gates import Triangle, make_gate
from .base import Cell

RESETS = ("zero", "subtract")


class _Spiking(Cell):
    """Shared hyperparameters of LIF and ALIF (not public)."""

    def __init__(self, n_in, n_hidden, density=1.0, *, gate=None, dt=1e-3, tau_mem=1e-2,
                 tau_syn=5e-3, v_th=1.0, v_leak=0.0, v_reset=0.0, reset="zero",
                 detach_reset=True, autapses=False, bias=False, w_in_scale=1.0, w_rec_scale=1.0,
                 **kwargs):
        self.gate = make_gate(gate, Triangle(gamma=0.3, width=1.0))
        self.dt = validate.real("dt", dt, low=0.0, low_open=True)
        self.tau_mem = validate.real("tau_mem", tau_mem, low=self.dt, low_name=f"dt={self.dt}")
        self.tau_syn = validate.real("tau_syn", tau_syn, low=self.dt, low_name=f"dt={self.dt}")
        self.v_th = validate.real("v_th", v_th)
        self.v_leak = validate.real("v_leak", v_leak)
        self.v_reset = validate.real("v_reset", v_reset)
        self.reset = validate.choice("reset", reset, RESETS)
        if not isinstance(detach_reset, bool):
            raise TypeError(f"detach_reset must be a bool, got {detach_reset!r}")
        self.detach_reset = detach_reset
        super().__init__(n_in, n_hidden, density, autapses=autapses, bias=bias,
                         w_in_scale=w_in_scale, w_rec_scale=w_rec_scale, **kwargs)

    def initial_state(self, batch, dtype=np.float64):
        state = np.zeros((batch, self.n_state, self.n_hidden), dtype=dtype)
        state[:, 0] = self.v_leak
        return state

    def _reset(self, v, z, dz, jac):
        """``v_r`` and ``dv_r/dv``, ``dv_r/dthreshold_shift`` for spike ``z`` with pseudo-derivative ``dz``."""
        if self.reset == "zero":
            v_r = (1 - z) * v + z * self.v_reset
            if not jac:
                return v_r, None, None
            if self.detach_reset:
                return v_r, 1 - z, np.zeros_like(v)
            dvr_dz = self.v_reset - v
        else:
            v_r = v - z * self.v_th
            if not jac:
                return v_r, None, None
            if self.detach_reset:
                return v_r, np.ones_like(v), np.zeros_like(v)
            dvr_dz = -self.v_th * np.ones_like(v)
            dvr_dv = 1 + dvr_dz * dz
            return v_r, dvr_dv, dvr_dz * dz
        return v_r, (1 - z) + dvr_dz * dz, dvr_dz * dz

    def _spiking_spec(self, code):
        """``compiled_spec`` of LIF / ALIF: ``hyper = [k_m, k_s, v_th, v_leak, v_reset,
        reset == "subtract", detach_reset, rho, beta, detach_adaptation]``."""
        from ..engine import codes
        gate = self.gate.compiled_spec()
        if gate is None:
            return None
        hyper = np.zeros(10)
        hyper[:7] = [self.dt / self.tau_mem, self.dt / self.tau_syn, self.v_th, self.v_leak,
                     self.v_reset, float(self.reset == "subtract"), float(self.detach_reset)]
        if code == codes.ALIF:
            hyper[7:] = [1 - self.dt / self.tau_adapt, self.beta, float(self.detach_adaptation)]
        return code, gate[0], gate[1], hyper

    def _integrate(self, v_r, i, rec, inp):
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        i_j = i + rec[:, 0] + inp[:, 0]
        return v_r + k_m * (self.v_leak - v_r + i_j), (1 - k_s) * i_j


class LIF(_Spiking):
    """Leaky integrate-and-fire neurons with current synapses; update order in the module docstring.

    Args:
        n_in, n_hidden, density: see :class:`~neurosnap.cells.base.Cell`.
        gate: ``ns.gates.Heaviside(surrogate)`` (default: triangle ``0.3 * max(0, 1 - |v - v_th|)``,
            the e-prop pseudo-derivative) or ``ns.gates.Smooth(beta)``.
        dt, tau_mem, tau_syn: time step and time constants (same unit, e.g. seconds); tau >= dt.
        v_th, v_leak, v_reset: threshold, resting and reset potentials.
        reset: ``"zero"`` (to ``v_reset``) or ``"subtract"`` (subtract ``v_th``).
        detach_reset: if True (Norse's convention) no gradient flows through the reset.
        autapses: self-connections allowed (default False); bias: input bias (default False).

    State shape ``(B, 2, n)`` holding ``(v, i)``; output: spikes ``z`` of shape ``(B, n)``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> cell = ns.cells.LIF(n_in=3, n_hidden=6, density=0.5, tau_mem=0.01, w_in_scale=20.0)
        >>> xs = (np.random.default_rng(0).random((40, 2, 3)) < 0.2).astype(float)   # input spikes
        >>> model = ns.Model(cell, n_out=2)
        >>> params = model.init(seed=0)
        >>> {k: v.shape for k, v in params.items() if k.startswith("cell.")}
        {'cell.w_rec': (1, 6, 6), 'cell.w_in': (1, 6, 3)}
        >>> traj = model.run(params, xs)
        >>> traj.events.shape                # (T, B, n_hidden), which units emitted an event
        (40, 2, 6)
        >>> round(float(traj.events.mean()), 3)  # spikes per unit and step
        0.373
    """

    state_names = ("v", "i")
    gate_names = ("i",)

    def _local(self, state, rec, inp, jac):
        v, i = state[:, 0], state[:, 1]
        z = self.gate.forward(v - self.v_th)
        dz = self.gate.grad(v - self.v_th) if jac else None
        v_r, dvr_dv, _ = self._reset(v, z, dz, jac)
        v_new, i_new = self._integrate(v_r, i, rec, inp)
        new = np.stack([v_new, i_new], axis=1)
        if not jac:
            return new, None, None, None
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        B, n = v.shape
        local = np.zeros((B, 2, 2, n), dtype=state.dtype)
        local[:, 0, 0] = (1 - k_m) * dvr_dv
        local[:, 0, 1] = k_m
        local[:, 1, 1] = 1 - k_s
        d = np.empty((B, 2, 1, n), dtype=state.dtype)
        d[:, 0, 0] = k_m
        d[:, 1, 0] = 1 - k_s
        return new, local, d, d.copy()

    def _output(self, state, jac):
        x = state[:, 0] - self.v_th
        z = self.gate.forward(x)
        if not jac:
            return z, None, None
        dout = np.zeros_like(state)
        dout[:, 0] = self.gate.grad(x)
        return z, dout, x > 0

    def compiled_spec(self):
        """See :meth:`~neurosnap.cells.base.Cell.compiled_spec`."""
        from ..engine import codes
        return self._spiking_spec(codes.LIF) if type(self) is LIF else None
