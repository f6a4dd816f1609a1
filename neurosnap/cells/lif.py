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

With ``refractory > 0`` (``docs/theory/cells.md`` eq. (15)-(18)) a counter ``c`` (steps left, state
name ``r``) follows the other state variables, ``R = refractory / dt``; Brian2's ``(unless refractory)`` semantics, the spike step
counting as the first of the ``R`` refractory steps:

    z_{t-1} = H(v_{t-1} - v_th) [c_{t-1} = 0]                    no spike while refractory
    c_t     = R - 1 if z_{t-1} = 1, else max(c_{t-1} - 1, 0)
    v_t     = v_r + [c_t = 0] k_m (v_leak - v_r + i_j)           membrane clamped while c_t > 0
    i_t     = (1 - k_s) i_j                                       the current keeps integrating

With ``delay = D > 1`` (eq. (19)-(20)) the jump adds ``W_rec z_{t-D}``, read from the delayed gate
arguments that the state carries.
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from ..gates import Triangle, make_gate
from .base import Cell

RESETS = ("zero", "subtract")


class SpikingCell(Cell):
    """The base of LIF and ALIF: their shared hyperparameters, the reset, refractory counter and
    delay buffers (``docs/theory/cells.md`` eq. (15)-(20)). Not constructed directly; subclass it
    for another spiking cell with the same membrane bookkeeping."""

    def __init__(
        self,
        n_in,
        n_hidden,
        density=1.0,
        *,
        gate=None,
        dt=1e-3,
        tau_mem=1e-2,
        tau_syn=5e-3,
        v_th=1.0,
        v_leak=0.0,
        v_reset=0.0,
        reset="zero",
        detach_reset=True,
        refractory=0.0,
        delay=1,
        autapses=False,
        bias=False,
        w_in_scale=1.0,
        w_rec_scale=1.0,
        tau_syn_inh=None,
        **kwargs,
    ):
        self.gate = make_gate(gate, Triangle(gamma=0.3, width=1.0))
        self.dt = validate.real("dt", dt, low=0.0, low_open=True)
        self.tau_mem = validate.real("tau_mem", tau_mem, low=self.dt, low_name=f"dt={self.dt}")
        self.tau_syn = validate.real("tau_syn", tau_syn, low=self.dt, low_name=f"dt={self.dt}")
        #: time constant of the second (inhibitory) synaptic current, or None (one current)
        self.tau_syn_inh = None
        if tau_syn_inh is not None:
            if type(self).state_names != ("v", "i"):
                raise ValueError(
                    f"tau_syn_inh: a second synaptic current is implemented for LIF "
                    f"only, not {type(self).__name__}"
                )
            self.tau_syn_inh = validate.real(
                "tau_syn_inh", tau_syn_inh, low=self.dt, low_name=f"dt={self.dt}"
            )
            self.gate_names = ("i", "i_inh")  # w_rec[1], w_in[1] (, bias[1]) drive i_inh
        self.v_th = validate.real("v_th", v_th)
        self.v_leak = validate.real("v_leak", v_leak)
        self.v_reset = validate.real("v_reset", v_reset)
        self.reset = validate.choice("reset", reset, RESETS)
        if not isinstance(detach_reset, bool):
            raise TypeError(f"detach_reset must be a bool, got {detach_reset!r}")
        self.detach_reset = detach_reset
        self.refractory = validate.real("refractory", refractory, low=0.0)
        steps = round(self.refractory / self.dt)
        if abs(steps * self.dt - self.refractory) > 1e-9 * self.dt:
            raise ValueError(
                f"refractory must be a whole number of steps dt={self.dt}, got {self.refractory!r}"
            )
        #: ``R``, the refractory period in steps (0: no refractoriness, no counter in the state)
        self.refractory_steps = steps
        #: recurrent transmission delay in steps (1: a spike reaches its targets at the next step)
        self.delay = validate.positive_int("delay", delay, minimum=1)
        # each delay step adds state variables, and a step's Jacobian is (S, S) per unit
        n_base = len(type(self).state_names) + (self.tau_syn_inh is not None)
        n_state = n_base + (1 if steps else 0) + (2 if steps else 1) * (self.delay - 1)
        validate.memory(
            "delay",
            delay,
            8 * n_state**2,
            f"the ({n_state}, {n_state}) per-unit state Jacobian of one step",
        )
        # state layout: base variables, the counter r (refractory > 0), the delayed gate arguments
        # q1..q{D-1} (delay > 1) and, with both, the delayed not-refractory flags f1..f{D-1}
        names = type(self).state_names
        if self.tau_syn_inh is not None:
            names += ("i_inh",)
        self._ir = len(names)
        if steps:
            names += ("r",)
        self._iq = len(names)
        names += tuple(f"q{k}" for k in range(1, self.delay))
        self._if = len(names)
        if steps:
            names += tuple(f"f{k}" for k in range(1, self.delay))
        if len(names) != len(type(self).state_names):
            self.state_names = names
        super().__init__(
            n_in,
            n_hidden,
            density,
            autapses=autapses,
            bias=bias,
            w_in_scale=w_in_scale,
            w_rec_scale=w_rec_scale,
            **kwargs,
        )

    def initial_state(self, batch, dtype=np.float64):
        state = np.zeros((batch, self.n_state, self.n_hidden), dtype=dtype)
        state[:, 0] = self.v_leak
        # before the first step the network was at rest: delayed gate arguments of that state
        state[:, self._iq : self._iq + self.delay - 1] = self.v_leak - self.v_th
        if self.refractory_steps:
            state[:, self._if : self._if + self.delay - 1] = 1.0
        return state

    def _drive_output(self, state, jac, params=None):
        """``z_{t-D}`` from the oldest delayed gate argument (eq. (19)-(20)); ``_output`` if D = 1."""
        if self.delay == 1:
            return self._output(state, jac)
        q = state[:, self._iq + self.delay - 2]
        z = self.gate.forward(q)
        free = state[:, self._if + self.delay - 2] if self.refractory_steps else None
        if free is not None:
            z = z * free
        if not jac:
            return z, None, None
        g = self.gate.grad(q)
        dout = np.zeros_like(state)
        dout[:, self._iq + self.delay - 2] = g if free is None else g * free
        return z, dout, (q > 0) if free is None else (q > 0) & (free > 0)

    def _tail(self, state, g_prev, free_prev, c_new):
        """The counter and the shifted delay buffers of the new state (eq. (16), (19))."""
        tail = [] if c_new is None else [c_new]
        D = self.delay
        if D > 1:
            tail += [g_prev] + [state[:, self._iq + k] for k in range(D - 2)]
            if free_prev is not None:
                tail += [free_prev] + [state[:, self._if + k] for k in range(D - 2)]
        return tail

    def _buffer_jac(self, local, beta=0.0):
        """``local`` entries of the delay buffer: ``q1 <- g = v - v_th - beta a``, ``q_k <- q_{k-1}``."""
        if self.delay == 1:
            return
        iq = self._iq
        local[:, iq, 0] = 1.0
        if beta:
            local[:, iq, 2] = -beta
        for k in range(1, self.delay - 1):
            local[:, iq + k, iq + k - 1] = 1.0

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

    def edge_delays(self, delays) -> np.ndarray:
        """Per-synapse recurrent delays in steps, ``(nnz,)`` int64 in the order of the cell's
        synapses (``cell.graph``), from ``delays`` of shape ``(nnz,)`` (that order) or ``(n, n)``
        (indexed ``(post, pre)`` like a dense ``w_rec``; read on the existing synapses only).
        Integers ``>= 1`` and ``<= 100000``; ``ValueError``/``TypeError`` naming ``delays``."""
        arr = np.asarray(delays)
        n, nnz = self.n_hidden, self.graph.nnz
        if arr.shape == (nnz,) and arr.ndim == 1:
            vals = arr
        elif arr.shape == (n, n):
            vals = arr[self.graph.edge_post, self.graph.pre_index]
        else:
            raise ValueError(
                f"delays must have shape (nnz,) = ({nnz},) (one per synapse, graph order) or "
                f"(n, n) = ({n}, {n}) (post, pre), got {arr.shape}"
            )
        if not (
            np.issubdtype(vals.dtype, np.integer)
            or (np.issubdtype(vals.dtype, np.floating) and np.all(vals == np.round(vals)))
        ):
            raise TypeError(f"delays must hold integers (steps), got dtype {arr.dtype}")
        if len(vals) and vals.min() < 1:
            raise ValueError(
                f"delays must be >= 1 step on every existing synapse, got {vals.min()}"
            )
        if len(vals) and vals.max() > 100_000:
            raise ValueError(f"delays must be <= 100000 steps, got {vals.max()}")
        return vals.astype(np.int64)

    def synapse_delays(self, delays=None) -> np.ndarray:
        """Per-synapse recurrent delays in steps as an int64 ``(n, n)`` array indexed ``(post, pre)``
        like ``w_rec``: ``delays`` checked (integers ``>= 1`` where ``mask`` is True; entries off the
        mask are ignored and set to 1), or the uniform ``delay`` when ``None``. The cell's own
        steps use the uniform ``delay``; the event-driven simulator (``ns.simulate(...,
        delays=)``) and the Brian2 adapter take per-synapse ones."""
        n = self.n_hidden
        if delays is None:
            return np.full((n, n), self.delay, dtype=np.int64)
        arr = np.asarray(delays)
        if arr.shape != (n, n):
            raise ValueError(
                f"delays must have shape (n, n) = ({n}, {n}) (post, pre), got {arr.shape}"
            )
        if not (
            np.issubdtype(arr.dtype, np.integer)
            or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))
        ):
            raise TypeError(f"delays must hold integers (steps), got dtype {arr.dtype}")
        arr = np.where(self.mask, arr, 1).astype(np.int64)
        if arr.min() < 1:
            raise ValueError(f"delays must be >= 1 step on every existing synapse, got {arr.min()}")
        if arr.max() > 100_000:
            raise ValueError(f"delays must be <= 100000 steps, got {arr.max()}")
        return arr

    def _free(self, state):
        """``[c = 0]`` of a state ``(B, S, n)`` as a float mask ``(B, n)``; ``None`` without refractoriness."""
        if not self.refractory_steps:
            return None
        return (state[:, self._ir] == 0).astype(state.dtype)

    def _spike(self, x, state, jac):
        """Spike ``z`` and pseudo-derivative ``dz`` of the gate argument ``x`` of ``state`` (0 while
        refractory; the counter itself is piecewise constant and carries no derivative)."""
        z = self.gate.forward(x)
        dz = self.gate.grad(x) if jac else None
        free = self._free(state)
        if free is not None:
            z = z * free
            dz = dz * free if jac else None
        return z, dz, free

    def _counter(self, state, x, free):
        """``(c_t (B, n), [c_t = 0] (B, n))`` after the previous state's spike (eq. (16))."""
        if free is None:
            return None, None
        event = (x > 0) & (free > 0)
        c = np.where(event, self.refractory_steps - 1, np.maximum(state[:, self._ir] - 1, 0))
        return c.astype(state.dtype), (c == 0).astype(state.dtype)

    def _spiking_spec(self, code):
        """``compiled_spec`` of LIF / ALIF: ``hyper = [k_m, k_s, v_th, v_leak, v_reset,
        reset == "subtract", detach_reset, rho, beta, detach_adaptation]``."""
        from ..engine import codes

        gate = self.gate.compiled_spec()
        if (
            gate is None or self.refractory_steps or self.delay > 1 or self.tau_syn_inh is not None
        ):  # reference path only
            return None
        hyper = np.zeros(10)
        hyper[:7] = [
            self.dt / self.tau_mem,
            self.dt / self.tau_syn,
            self.v_th,
            self.v_leak,
            self.v_reset,
            float(self.reset == "subtract"),
            float(self.detach_reset),
        ]
        if code == codes.ALIF:
            hyper[7:] = [1 - self.dt / self.tau_adapt, self.beta, float(self.detach_adaptation)]
        return code, gate[0], gate[1], hyper

    def _integrate(self, v_r, i, rec, inp, m=None):
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        i_j = i + rec[:, 0] + inp[:, 0]
        v_new = v_r + k_m * (self.v_leak - v_r + i_j)
        if m is not None:  # clamped while refractory
            v_new = np.where(m > 0, v_new, v_r)
        return v_new, (1 - k_s) * i_j

    def _integrate2(self, v_r, i, ih, rec, inp, m=None):
        """``_integrate`` with the second current: gate 1's drive jumps ``i_inh`` (eq. (28)-(29))."""
        k_m, k_s, k_si = self.dt / self.tau_mem, self.dt / self.tau_syn, self.dt / self.tau_syn_inh
        i_j = i + rec[:, 0] + inp[:, 0]
        ih_j = ih + rec[:, 1] + inp[:, 1]
        v_new = v_r + k_m * (self.v_leak - v_r + i_j + ih_j)
        if m is not None:
            v_new = np.where(m > 0, v_new, v_r)
        return v_new, (1 - k_s) * i_j, (1 - k_si) * ih_j

    def _stack(self, parts, state, g_prev, free_prev, c_new):
        return np.stack(parts + self._tail(state, g_prev, free_prev, c_new), axis=1)


class LIF(SpikingCell):
    """Leaky integrate-and-fire neurons with current synapses; update order in the module docstring.

    Args:
        n_in, n_hidden, density: see :class:`~neurosnap.cells.base.Cell`.
        gate: ``ns.gates.Heaviside(surrogate)`` (default: triangle ``0.3 * max(0, 1 - |v - v_th|)``,
            the e-prop pseudo-derivative) or ``ns.gates.Smooth(beta)``.
        dt, tau_mem, tau_syn: time step and time constants (same unit, e.g. seconds); tau >= dt.
        v_th, v_leak, v_reset: threshold, resting and reset potentials.
        reset: ``"zero"`` (to ``v_reset``) or ``"subtract"`` (subtract ``v_th``).
        detach_reset: if True (Norse's convention) no gradient flows through the reset.
        refractory: absolute refractory period, in the unit of ``dt`` and a whole number ``R`` of
            steps (default 0: none). As in Brian2, the spike step is the first of the ``R``
            refractory steps: the membrane stays clamped at its reset value during the ``R - 1``
            steps after a spike and the unit cannot spike then, while the current keeps integrating
            (``docs/theory/cells.md`` eq. (15)-(18)); ``refractory=dt`` therefore has no effect. The
            counter is piecewise constant: no gradient flows through it.
        delay: recurrent transmission delay in steps (default 1: a spike reaches its targets at the
            next step): the current jump adds ``W_rec z_{t-delay}`` (eq. (19)-(20)); the reset and
            the readout still see ``z_t``. For exact gradients the spikes in flight are state: the
            ``delay - 1`` delayed gate arguments ``q1, q2, ...`` (and, with refractoriness, the
            delayed not-refractory flags ``f1, f2, ...``) follow the other state variables.
        autapses: self-connections allowed (default False); bias: input bias (default False).
        tau_syn_inh: time constant of a second synaptic current ``i_inh`` (default None: one
            current, today's cell). When set the cell has two drives (``n_gates = 2``): the
            weights ``w_rec[0]``, ``w_in[0]`` (, ``bias[0]``) jump ``i`` (decay ``tau_syn``) and
            ``w_rec[1]``, ``w_in[1]`` (, ``bias[1]``) jump ``i_inh`` (decay ``tau_syn_inh``); the
            membrane integrates ``i + i_inh`` (``docs/theory/cells.md`` eq. (28)-(29)). Dale's law
            (CUBA: excitatory units project through ``w_rec[0]`` only, inhibitory ones through
            ``w_rec[1]`` only, with negative weights) is a choice of these weights, not a rule of
            the cell: a synapse may drive both currents. ``model.init`` draws both matrices.

    State shape ``(B, S, n)``: ``(v, i)`` (``(v, i, i_inh)`` with ``tau_syn_inh``), then the refractory counter ``r`` (steps left) when
    ``refractory > 0``, then the delay buffers when ``delay > 1`` (``cell.state_names`` lists them);
    ``S = 2`` by default. Output: spikes ``z`` of shape ``(B, n)``.

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
        z, dz, free = self._spike(v - self.v_th, state, jac)
        v_r, dvr_dv, _ = self._reset(v, z, dz, jac)
        c_new, m = self._counter(state, v - self.v_th, free)
        two = self.tau_syn_inh is not None
        if two:  # eq. (28)-(29): i and i_inh both drive v
            v_new, i_new, ih_new = self._integrate2(v_r, i, state[:, 2], rec, inp, m)
            base = [v_new, i_new, ih_new]
        else:
            v_new, i_new = self._integrate(v_r, i, rec, inp, m)
            base = [v_new, i_new]
        new = self._stack(base, state, v - self.v_th, free, c_new)
        if not jac:
            return new, None, None, None
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        km = k_m if m is None else k_m * m  # 0 while clamped
        B, S, n = state.shape
        local = np.zeros((B, S, S, n), dtype=state.dtype)  # the counter's rows and columns stay 0
        local[:, 0, 0] = (1 - km) * dvr_dv
        local[:, 0, 1] = km
        local[:, 1, 1] = 1 - k_s
        d = np.zeros((B, S, self.n_gates, n), dtype=state.dtype)
        d[:, 0, 0] = km
        d[:, 1, 0] = 1 - k_s
        if two:
            k_si = self.dt / self.tau_syn_inh
            local[:, 0, 2] = km
            local[:, 2, 2] = 1 - k_si
            d[:, 0, 1] = km
            d[:, 2, 1] = 1 - k_si
        self._buffer_jac(local)
        return new, local, d, d.copy()

    def _output(self, state, jac):
        x = state[:, 0] - self.v_th
        z, g, free = self._spike(x, state, jac)
        if not jac:
            return z, None, None
        dout = np.zeros_like(state)
        dout[:, 0] = g
        return z, dout, (x > 0) if free is None else (x > 0) & (free > 0)

    def compiled_spec(self):
        """See :meth:`~neurosnap.cells.base.Cell.compiled_spec`."""
        from ..engine import codes

        return self._spiking_spec(codes.LIF) if type(self) is LIF else None
