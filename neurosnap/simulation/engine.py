"""The two ways :func:`neurosnap.simulate` advances a network one chunk at a time, state carried:
:class:`StepRunner` (any cell, ``model.cell.step``) and :class:`EventRunner` (LIF/ALIF with a
Heaviside gate, the event-driven numba kernel :func:`~neurosnap.simulation.kernels.lif_chunk`)."""

from __future__ import annotations

import numpy as np

from ..core.arrays import kernel_array
from .kernels import lif_chunk, plan, rows_sorted, synapse_table


# -- runners: one chunk at a time, state carried -----------------------------------------------
class StepRunner:
    """Any cell: ``model.cell.step``, as in ``model.run`` (bit-identical)."""

    def __init__(self, model, params, batch, var_idx, units, want_events, init=None):
        self.model, self.cell, self.B = model, model.cell, batch
        self.init = init or {}
        self.cp = model.cell_params(params)
        self.var_idx, self.units, self.want_events = var_idx, units, want_events
        self.reset()

    def reset(self):
        """Back to the initial state (a new sequence): the cell's, with the variables of ``init``
        (name -> ``(B, n)``) set; the delayed gate arguments then hold that state's, as the
        event engine's in-flight spikes do (the network held in it before step 0)."""
        cell = self.cell
        self.state = cell.initial_state(self.B, self.model.dtype)
        for name, val in self.init.items():
            self.state[:, cell.state_names.index(name)] = val
        if self.init and getattr(cell, "delay", 1) > 1:
            q = (
                self.state[:, 0]
                - cell.v_th
                - getattr(cell, "beta", 0.0)
                * (self.state[:, 2] if "a" in cell.state_names else 0.0)
            )
            self.state[:, cell._iq : cell._iq + cell.delay - 1] = q[:, None]

    def run(self, xs, t0, emit):
        """Steps ``xs (k, B, n_in)`` from time step ``t0``: ``emit(steps, units, batch)`` gets the
        events; returns per-step event counts ``(k, B)`` and recorded states ``(k, B, V, U)``."""
        k = len(xs)
        counts = np.zeros((k, self.B), dtype=np.int64)
        st = np.empty((k, self.B, len(self.var_idx), len(self.units)), dtype=self.model.dtype)
        steps, units, batch = [], [], []
        for j in range(k):
            self.state, _ = self.cell.step(self.cp, self.state, xs[j])
            if self.want_events:
                ev = self.cell.output(self.state, self.cp)[1]
                counts[j] = ev.sum(axis=1)
                b, u = np.nonzero(ev)
                if len(u):
                    steps.append(np.full(len(u), t0 + j, dtype=np.int64))
                    units.append(u)
                    batch.append(b)
            if len(self.units):
                st[j] = self.state[:, self.var_idx][:, :, self.units]
        if steps:
            emit(np.concatenate(steps), np.concatenate(units), np.concatenate(batch))
        return counts, st

    def final_state(self):
        """The state after the last chunk, by name (for the non-finite guard)."""
        return {"state": self.state}


#: state variables the event kernel holds, by name (a cell's delay buffers are its ring instead)
EVENT_STATE_VARS = {"v": 0, "i": 1, "a": 2, "r": 3, "i_inh": 4}


class EventRunner:
    """LIF/ALIF with a Heaviside gate: event-driven numba kernel on EventLIF's CSR.

    Refractoriness (the cell's ``refractory``) and recurrent delays are part of the kernel: a spike
    of step ``t`` on a synapse with delay ``d`` steps is added to a ring buffer of ``L = max(d)``
    slots per sequence at slot ``(t + d) mod L`` and enters the current jump of step ``t + d``
    (``docs/theory/cells.md`` eq. (15)-(20)). ``delays``: per-synapse delays, ``(nnz,)`` in the
    cell's synapse order or ``(n, n)`` (post, pre), or ``None`` for the cell's uniform ``delay``.
    """

    def __init__(self, model, params, batch, var_idx, units, want_events, delays=None, init=None):
        from .lif_events import EventLIF

        self.init = init or {}
        cell = model.cell
        ev = EventLIF(model, params, check=False)
        self.model, self.B, self.n = model, batch, cell.n_hidden
        if delays is None:  # the cell's uniform delay: no per-synapse array at all
            d = None
            self.L = int(cell.delay)
        else:  # per synapse, in the graph's edge order
            d = cell.edge_delays(delays)
            self.L = int(d.max()) if len(d) else 1
        #: a second synaptic current (LIF's ``tau_syn_inh``)
        self.two = getattr(cell, "tau_syn_inh", None) is not None
        # one delay for all: a scalar (no per-synapse read in the scatter, which is bound by
        # memory traffic); otherwise the narrowest unsigned type
        self.uniform = self.L if d is None or len(d) == 0 or d.min() == self.L else 0
        if not self.uniform:
            d = d.astype(np.uint16 if self.L < 1 << 16 else np.uint32)
        index = (cell.graph, ev.transposed)
        # the second current keeps the nonzero weights of each table only (Dale's law: each
        # spike scatters into one current; adding the zeros would change no sum)
        tables = [
            synapse_table(*index, ev.w_syn[g], None if self.uniform else d, drop_zeros=self.two)
            for g in ((0, 1) if self.two else (0,))
        ]
        self.csr = (*tables[0], ev.w_in_t, ev.bias)
        if self.two:
            p = model.check_params(params)
            w_in_t2 = kernel_array(p["cell.w_in"][1].T)
            bias2 = p["cell.bias"][1].copy() if cell.has_bias else np.zeros(self.n, model.dtype)
            self.csr = (*tables[0], ev.w_in_t, ev.bias, *tables[1], w_in_t2, bias2)
            self.decay_inh = model.dtype.type(1 - cell.dt / cell.tau_syn_inh)
        self.constants, self.subtract = ev.constants, ev.subtract
        self.v_leak = ev.constants[1]
        del ev, index, d  # the tables hold what the kernel reads
        self.refr = max(cell.refractory_steps - 1, 0)  # counter after a spike: R - 1
        codes = []
        for idx in var_idx:
            name = cell.state_names[idx]
            if name not in EVENT_STATE_VARS:
                raise ValueError(
                    f"the event engine does not hold state variable {name!r} (the "
                    "delay buffer is a ring of synaptic input there); record it with "
                    "engine='step'"
                )
            codes.append(EVENT_STATE_VARS[name])
        self.var_codes = np.asarray(codes, dtype=np.int64)
        self.units = np.asarray(units, dtype=np.int64)
        self.want_events = want_events
        cap = max(self.B * self.n, 1 << 17)
        self.buf = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int32))
        dtype = model.dtype
        self.v = np.empty((self.B, self.n), dtype)
        self.cur = np.empty((self.B, self.n), dtype)
        self.a = np.empty((self.B, self.n), dtype)
        self.cnt = np.zeros((self.B, self.n), np.int64)
        self.ring = np.zeros((self.B, self.L, self.n), dtype)
        self.cur2 = np.empty((self.B, self.n), dtype)  # the second current (self.two)
        self.ring2 = np.zeros((self.B, self.L, self.n) if self.two else (self.B, 1, 1), dtype)
        self.reset()

    def final_state(self):
        """The state after the last chunk, by name (for the non-finite guard)."""
        return {"v": self.v, "i": self.cur, "a": self.a, "i_inh": self.cur2}

    def reset(self):
        """Back to the initial state (rest potential, no current, no adaptation, not refractory;
        or the values of ``init``, name -> ``(B, n)``)."""
        self.v[:] = self.v_leak
        self.cur[:] = 0
        self.a[:] = 0
        self.cnt[:] = 0
        self.cur2[:] = 0
        for name, val in self.init.items():  # given initial values, (B, n)
            {"v": self.v, "i": self.cur, "a": self.a, "r": self.cnt, "i_inh": self.cur2}[name][
                :
            ] = val
        self.ring[:] = 0
        self.ring2[:] = 0
        v_th, beta = self.constants[0], self.constants[6]
        tables = [(self.ring, self.csr[:4])]
        if self.two:
            tables.append((self.ring2, self.csr[6:10]))
        for ring, (out_ptr, out_post, out_w, out_d) in tables:
            for b in range(self.B):
                # the network held in its initial state before step 0: its spikes z_{-1},
                # z_{-2}, ... are in flight; those on a synapse of delay d arrive at steps 0..d-1
                for j in np.nonzero(self.v[b] - v_th - beta * self.a[b] > 0)[0]:
                    for q in range(out_ptr[j], out_ptr[j + 1]):
                        for s in range(self.uniform or out_d[q]):
                            ring[b, s % self.L, out_post[q]] += out_w[q]

    def run(self, xs, t0, emit):
        """As :meth:`StepRunner.run`, event-driven: :func:`~neurosnap.simulation.kernels.lif_chunk`
        on numba's current number of threads (``ns.simulate(..., threads=)``); the results do
        not depend on it."""
        dtype = self.model.dtype
        xs = kernel_array(xs, dtype)
        k = len(xs)
        counts = np.zeros((k, self.B), dtype=np.int64)
        st = np.empty((k, self.B, len(self.var_codes), len(self.units)), dtype=dtype)
        n_spk = np.zeros(1, np.int64)
        tables, (w_in_t, bias) = self.csr[:4], self.csr[4:6]
        tables2, w_in_t2, bias2 = tables, w_in_t, bias  # same types; read only with `two`
        if self.two:
            tables2, (w_in_t2, bias2) = self.csr[6:10], self.csr[10:12]
        v_th, v_leak, v_reset, k_m, decay_syn, rho, beta = self.constants
        decay_inh = self.decay_inh if self.two else dtype.type(0.0)
        constants = (v_th, v_leak, v_reset, k_m, decay_syn, decay_inh, rho, beta)
        parallel, n_blocks = plan(self.n, self.B)
        sorted_rows = n_blocks > 1 and self._rows_sorted()
        t = 0
        while t < k:
            t = lif_chunk(
                xs,
                t,
                t0,
                self.v,
                self.cur,
                self.cur2,
                self.a,
                self.cnt,
                self.ring,
                self.ring2,
                tables,
                w_in_t,
                bias,
                tables2,
                w_in_t2,
                bias2,
                constants,
                self.subtract,
                self.refr,
                self.uniform,
                self.two,
                sorted_rows,
                True if parallel else None,
                n_blocks,
                self.want_events,
                *self.buf,
                n_spk,
                counts,
                self.units,
                self.var_codes,
                st,
            )
            m = int(n_spk[0])
            if m:
                emit(self.buf[0][:m], self.buf[1][:m], self.buf[2][:m])
            n_spk[0] = 0
        return counts, st

    def _rows_sorted(self) -> bool:
        """Whether the synapse tables' rows ascend (checked once; blocks then bisect them)."""
        if getattr(self, "_sorted", None) is None:
            tables = [self.csr[:2]] + ([self.csr[6:8]] if self.two else [])
            self._sorted = all(rows_sorted(ptr, post) for ptr, post in tables)
        return self._sorted
