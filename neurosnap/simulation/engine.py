"""The two ways :func:`neurosnap.simulate` advances a network one chunk at a time, state carried:
:class:`StepRunner` (any cell, ``model.cell.step``) and :class:`EventRunner` (LIF/ALIF with a
Heaviside gate, the event-driven numba kernel :func:`lif_chunk`)."""
from __future__ import annotations

import numba
import numpy as np


# -- runners: one chunk at a time, state carried -----------------------------------------------
class StepRunner:
    """Any cell: ``model.cell.step``, as in ``model.run`` (bit-identical)."""

    def __init__(self, model, params, batch, var_idx, units, want_events):
        self.model, self.cell, self.B = model, model.cell, batch
        self.cp = model.cell_params(params)
        self.var_idx, self.units, self.want_events = var_idx, units, want_events
        self.reset()

    def reset(self):
        """Back to the cell's initial state (a new sequence)."""
        self.state = self.cell.initial_state(self.B, self.model.dtype)

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
                ev = self.cell.output(self.state)[1]
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


class EventRunner:
    """LIF/ALIF with a Heaviside gate: event-driven numba kernel on EventLIF's CSR."""

    def __init__(self, model, params, batch, var_idx, units, want_events):
        from .lif_events import EventLIF
        ev = EventLIF(model, params)
        self.model, self.B, self.n = model, batch, model.cell.n_hidden
        self.csr = (ev.out_ptr, ev.out_post, ev.out_w, ev.w_in_t, ev.bias)
        self.constants, self.subtract = ev.constants, ev.subtract
        self.v_leak = ev.constants[1]
        self.var_codes = np.asarray(var_idx, dtype=np.int64)   # 0 v, 1 i, 2 a (state order)
        self.units = np.asarray(units, dtype=np.int64)
        self.want_events = want_events
        cap = max(self.B * self.n, 1 << 17)
        self.buf = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int32))
        dtype = model.dtype
        self.v = np.empty((self.B, self.n), dtype)
        self.cur = np.empty((self.B, self.n), dtype)
        self.a = np.empty((self.B, self.n), dtype)
        self.rec = np.zeros(self.n, dtype)
        self.inp = np.zeros(self.n, dtype)
        self.prev = np.empty((self.B, self.n), np.int64)
        self.n_prev = np.zeros(self.B, np.int64)
        self.reset()

    def final_state(self):
        """The state after the last chunk, by name (for the non-finite guard)."""
        return {"v": self.v, "i": self.cur, "a": self.a}

    def reset(self):
        """Back to the initial state (rest potential, no current, no adaptation)."""
        self.v[:] = self.v_leak
        self.cur[:] = 0
        self.a[:] = 0
        v_th, beta = self.constants[0], self.constants[6]
        for b in range(self.B):                         # spikes z_{-1} of the initial state
            idx = np.nonzero(self.v[b] - v_th - beta * self.a[b] > 0)[0]
            self.prev[b, :len(idx)] = idx
            self.n_prev[b] = len(idx)

    def run(self, xs, t0, emit):
        """As :meth:`StepRunner.run`, event-driven."""
        xs = np.ascontiguousarray(xs, dtype=self.model.dtype)
        k = len(xs)
        counts = np.zeros((k, self.B), dtype=np.int64)
        st = np.empty((k, self.B, len(self.var_codes), len(self.units)), dtype=self.model.dtype)
        n_spk = np.zeros(1, np.int64)
        t = 0
        while t < k:
            t = lif_chunk(xs, t, t0, self.v, self.cur, self.a, self.rec, self.inp, self.prev,
                           self.n_prev, *self.csr, *self.constants, self.subtract,
                           self.want_events, *self.buf, n_spk, counts, self.units,
                           self.var_codes, st)
            m = int(n_spk[0])
            if m:
                emit(self.buf[0][:m], self.buf[1][:m], self.buf[2][:m])
            n_spk[0] = 0
        return counts, st


@numba.njit(cache=True)
def lif_chunk(xs, t_begin, t0, v, cur, a, rec, inp, prev, n_prev, out_ptr, out_post, out_w,
               w_in_t, bias, v_th, v_leak, v_reset, k_m, decay_syn, rho, beta, subtract,
               want_events, spk_step, spk_unit, spk_batch, n_spk_arr, counts, units, var_codes,
               st_out):
    """Steps ``t_begin..`` of a chunk in place on the carried state (same floating-point operations
    as ``neurosnap.simulation.lif_events._simulate``); returns the step it stopped at (the chunk's end,
    or earlier when the event buffer could overflow)."""
    k, B, n_in = xs.shape
    n = bias.shape[0]
    cap = spk_step.shape[0]
    n_spk = n_spk_arr[0]
    for t in range(t_begin, k):
        if want_events and n_spk + B * n > cap:
            n_spk_arr[0] = n_spk
            return t
        for b in range(B):
            for s in range(n_prev[b]):                      # W_rec z_{t-1}: the spikers' rows
                j = prev[b, s]
                for q in range(out_ptr[j], out_ptr[j + 1]):
                    rec[out_post[q]] += out_w[q]
            for c in range(n_in):                           # W_in x_t: the active channels
                x = xs[t, b, c]
                if x != 0:
                    for u in range(n):
                        inp[u] += w_in_t[c, u] * x
            cnt = 0
            for u in range(n):
                vu = v[b, u]
                au = a[b, u]
                v_r = vu
                if vu - v_th - beta * au > 0:
                    v_r = vu - v_th if subtract else v_reset
                    au = rho * (au + 1)
                else:
                    au = rho * au
                i_j = cur[b, u] + rec[u] + (inp[u] + bias[u])
                vn = v_r + k_m * (v_leak - v_r + i_j)
                v[b, u] = vn
                cur[b, u] = decay_syn * i_j
                a[b, u] = au
                rec[u] = 0
                inp[u] = 0
                if vn - v_th - beta * au > 0:
                    prev[b, cnt] = u
                    cnt += 1
                    if want_events:
                        spk_step[n_spk] = t0 + t
                        spk_unit[n_spk] = u
                        spk_batch[n_spk] = b
                        n_spk += 1
            n_prev[b] = cnt
            counts[t, b] = cnt
            for r in range(units.shape[0]):
                u = units[r]
                for c in range(var_codes.shape[0]):
                    code = var_codes[c]
                    if code == 0:
                        st_out[t, b, c, r] = v[b, u]
                    elif code == 1:
                        st_out[t, b, c, r] = cur[b, u]
                    else:
                        st_out[t, b, c, r] = a[b, u]
    n_spk_arr[0] = n_spk
    return k
