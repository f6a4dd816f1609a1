"""The two ways :func:`neurosnap.simulate` advances a network one chunk at a time, state carried:
:class:`StepRunner` (any cell, ``model.cell.step``) and :class:`EventRunner` (LIF/ALIF with a
Heaviside gate, the event-driven numba kernel :func:`lif_chunk`)."""

from __future__ import annotations

import numba
import numpy as np


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
        else:  # per synapse, in the CSC order of the synapse tables
            d = cell.edge_delays(delays)[ev.order]
            self.L = int(d.max()) if len(d) else 1
        #: a second synaptic current (LIF's ``tau_syn_inh``): kernel :func:`lif2_chunk`
        self.two = getattr(cell, "tau_syn_inh", None) is not None
        # one delay for all: a scalar (no per-synapse read in the scatter, which is bound by
        # memory traffic); otherwise the narrowest unsigned type
        self.uniform = self.L if d is None or len(d) == 0 or d.min() == self.L else 0
        self.out_d = (
            np.zeros(1, np.uint16)
            if self.uniform
            else d.astype(np.uint16 if self.L < 1 << 16 else np.uint32)
        )
        self.csr = (ev.out_ptr, ev.out_post, ev.out_w, self.out_d, ev.w_in_t, ev.bias)
        if self.two:
            # one table per current holding its nonzero weights only (Dale's law: each spike
            # scatters into one current; adding the zeros would change no sum)
            p = model.check_params(params)
            pre = np.repeat(np.arange(self.n), np.diff(ev.out_ptr))
            tables = []
            for g in (0, 1):
                w = ev.w_syn[g][ev.order]
                keep = w != 0
                ptr = np.searchsorted(pre[keep], np.arange(self.n + 1)).astype(np.int64)
                dg = self.out_d if self.uniform else self.out_d[keep]
                tables.append((ptr, ev.out_post[keep], np.ascontiguousarray(w[keep]), dg))
            w_in_t2 = np.ascontiguousarray(p["cell.w_in"][1].T)
            bias2 = p["cell.bias"][1].copy() if cell.has_bias else np.zeros(self.n, model.dtype)
            self.csr = (*tables[0], ev.w_in_t, ev.bias, *tables[1], w_in_t2, bias2)
            self.decay_inh = model.dtype.type(1 - cell.dt / cell.tau_syn_inh)
        del ev.order, ev.w_syn  # the tables hold what the kernel reads
        self.constants, self.subtract = ev.constants, ev.subtract
        self.refr = max(cell.refractory_steps - 1, 0)  # counter after a spike: R - 1
        self.v_leak = ev.constants[1]
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
        self.inp = np.zeros(self.n, dtype)
        self.cur2 = np.empty((self.B, self.n), dtype)  # the second current (self.two)
        self.ring2 = np.zeros((self.B, self.L, self.n) if self.two else (self.B, 1, 1), dtype)
        self.inp2 = np.zeros(self.n, dtype)
        self.now = np.empty(self.n, np.int64)
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
        """As :meth:`StepRunner.run`, event-driven."""
        xs = np.ascontiguousarray(xs, dtype=self.model.dtype)
        k = len(xs)
        counts = np.zeros((k, self.B), dtype=np.int64)
        st = np.empty((k, self.B, len(self.var_codes), len(self.units)), dtype=self.model.dtype)
        n_spk = np.zeros(1, np.int64)
        t = 0
        while t < k:
            if self.two:
                t = lif2_chunk(
                    xs,
                    t,
                    t0,
                    self.v,
                    self.cur,
                    self.cur2,
                    self.cnt,
                    self.ring,
                    self.ring2,
                    self.inp,
                    self.inp2,
                    self.now,
                    *self.csr,
                    *self.constants[:5],
                    self.decay_inh,
                    self.subtract,
                    self.refr,
                    self.uniform,
                    self.want_events,
                    *self.buf,
                    n_spk,
                    counts,
                    self.units,
                    self.var_codes,
                    st,
                )
            else:
                t = lif_chunk(
                    xs,
                    t,
                    t0,
                    self.v,
                    self.cur,
                    self.a,
                    self.cnt,
                    self.ring,
                    self.inp,
                    self.now,
                    *self.csr,
                    *self.constants,
                    self.subtract,
                    self.refr,
                    self.uniform,
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


@numba.njit(cache=True, inline="always")
def _deliver(ring, b, slot, L, uniform, j, out_ptr, out_post, out_w, out_d):
    """Add unit ``j``'s spike to the ring-buffer slots of its targets: slot ``slot + d`` (mod
    ``L``) for the synapse's delay ``d`` (``uniform`` when non-zero, else per synapse)."""
    if uniform:
        dst = slot + uniform
        row = ring[b, dst - L if dst >= L else dst]
        for q in range(out_ptr[j], out_ptr[j + 1]):
            row[out_post[q]] += out_w[q]
    else:
        for q in range(out_ptr[j], out_ptr[j + 1]):
            dst = slot + out_d[q]
            ring[b, dst - L if dst >= L else dst, out_post[q]] += out_w[q]


@numba.njit(cache=True)
def lif_chunk(
    xs,
    t_begin,
    t0,
    v,
    cur,
    a,
    cnt,
    ring,
    inp,
    now,
    out_ptr,
    out_post,
    out_w,
    out_d,
    w_in_t,
    bias,
    v_th,
    v_leak,
    v_reset,
    k_m,
    decay_syn,
    rho,
    beta,
    subtract,
    refr,
    uniform,
    want_events,
    spk_step,
    spk_unit,
    spk_batch,
    n_spk_arr,
    counts,
    units,
    var_codes,
    st_out,
):
    """Steps ``t_begin..`` of a chunk in place on the carried state (the cells' floating-point
    operations, ``neurosnap/cells/lif.py``); returns the step it stopped at (the chunk's end, or
    earlier when the event buffer could overflow). ``ring[b, (t0 + t) mod L]`` holds the synaptic
    input arriving at step ``t``; ``cnt`` the refractory counters; ``refr = max(R - 1, 0)``;
    ``uniform``: the delay of every synapse, or 0 to read ``out_d`` per synapse."""
    k, B, n_in = xs.shape
    n = bias.shape[0]
    L = ring.shape[1]
    cap = spk_step.shape[0]
    n_spk = n_spk_arr[0]
    for t in range(t_begin, k):
        if want_events and n_spk + B * n > cap:
            n_spk_arr[0] = n_spk
            return t
        slot = (t0 + t) % L
        for b in range(B):
            for c in range(n_in):  # W_in x_t: the active channels
                x = xs[t, b, c]
                if x != 0:
                    for u in range(n):
                        inp[u] += w_in_t[c, u] * x
            n_now = 0
            rec = ring[b, slot]
            for u in range(n):
                vu = v[b, u]
                au = a[b, u]
                v_r = vu
                if cnt[b, u] == 0 and vu - v_th - beta * au > 0:  # z_{t-1} (eq. (15))
                    v_r = vu - v_th if subtract else v_reset
                    au = rho * (au + 1)
                    cu = refr
                else:
                    au = rho * au
                    cu = cnt[b, u] - 1 if cnt[b, u] > 0 else 0
                i_j = cur[b, u] + rec[u] + (inp[u] + bias[u])
                if cu == 0:
                    vn = v_r + k_m * (v_leak - v_r + i_j)
                else:  # clamped while refractory
                    vn = v_r
                v[b, u] = vn
                cur[b, u] = decay_syn * i_j
                a[b, u] = au
                cnt[b, u] = cu
                rec[u] = 0
                inp[u] = 0
                if cu == 0 and vn - v_th - beta * au > 0:
                    now[n_now] = u
                    n_now += 1
                    if want_events:
                        spk_step[n_spk] = t0 + t
                        spk_unit[n_spk] = u
                        spk_batch[n_spk] = b
                        n_spk += 1
            for s in range(n_now):  # this step's spikes travel: slot of step t + d
                _deliver(ring, b, slot, L, uniform, now[s], out_ptr, out_post, out_w, out_d)
            counts[t, b] = n_now
            for r in range(units.shape[0]):
                u = units[r]
                for c in range(var_codes.shape[0]):
                    code = var_codes[c]
                    if code == 0:
                        st_out[t, b, c, r] = v[b, u]
                    elif code == 1:
                        st_out[t, b, c, r] = cur[b, u]
                    elif code == 2:
                        st_out[t, b, c, r] = a[b, u]
                    else:
                        st_out[t, b, c, r] = cnt[b, u]
    n_spk_arr[0] = n_spk
    return k


@numba.njit(cache=True)
def lif2_chunk(
    xs,
    t_begin,
    t0,
    v,
    cur,
    cur2,
    cnt,
    ring,
    ring2,
    inp,
    inp2,
    now,
    out_ptr,
    out_post,
    out_w,
    out_d,
    w_in_t,
    bias,
    out_ptr2,
    out_post2,
    out_w2,
    out_d2,
    w_in_t2,
    bias2,
    v_th,
    v_leak,
    v_reset,
    k_m,
    decay_syn,
    decay_inh,
    subtract,
    refr,
    uniform,
    want_events,
    spk_step,
    spk_unit,
    spk_batch,
    n_spk_arr,
    counts,
    units,
    var_codes,
    st_out,
):
    """:func:`lif_chunk` for LIF with two synaptic currents (``tau_syn_inh``,
    ``docs/theory/cells.md`` eq. (28)-(29)): ``cur`` jumps by the first synapse table, input
    weights and bias, ``cur2`` by the second ones, each with its ring buffer ``ring``, ``ring2``;
    the membrane integrates ``i_j + ih_j`` in the cell's order of operations."""
    k, B, n_in = xs.shape
    n = bias.shape[0]
    L = ring.shape[1]
    cap = spk_step.shape[0]
    n_spk = n_spk_arr[0]
    for t in range(t_begin, k):
        if want_events and n_spk + B * n > cap:
            n_spk_arr[0] = n_spk
            return t
        slot = (t0 + t) % L
        for b in range(B):
            for c in range(n_in):
                x = xs[t, b, c]
                if x != 0:
                    for u in range(n):
                        inp[u] += w_in_t[c, u] * x
                        inp2[u] += w_in_t2[c, u] * x
            n_now = 0
            rec = ring[b, slot]
            rec2 = ring2[b, slot]
            for u in range(n):
                vu = v[b, u]
                v_r = vu
                if cnt[b, u] == 0 and vu - v_th > 0:  # z_{t-1}
                    v_r = vu - v_th if subtract else v_reset
                    cu = refr
                else:
                    cu = cnt[b, u] - 1 if cnt[b, u] > 0 else 0
                i_j = cur[b, u] + rec[u] + (inp[u] + bias[u])
                ih_j = cur2[b, u] + rec2[u] + (inp2[u] + bias2[u])
                if cu == 0:
                    vn = v_r + k_m * (v_leak - v_r + i_j + ih_j)
                else:
                    vn = v_r
                v[b, u] = vn
                cur[b, u] = decay_syn * i_j
                cur2[b, u] = decay_inh * ih_j
                cnt[b, u] = cu
                rec[u] = 0
                rec2[u] = 0
                inp[u] = 0
                inp2[u] = 0
                if cu == 0 and vn - v_th > 0:
                    now[n_now] = u
                    n_now += 1
                    if want_events:
                        spk_step[n_spk] = t0 + t
                        spk_unit[n_spk] = u
                        spk_batch[n_spk] = b
                        n_spk += 1
            for s in range(n_now):  # each current has its own synapses and ring buffer
                _deliver(ring, b, slot, L, uniform, now[s], out_ptr, out_post, out_w, out_d)
                _deliver(ring2, b, slot, L, uniform, now[s], out_ptr2, out_post2, out_w2, out_d2)
            counts[t, b] = n_now
            for r in range(units.shape[0]):
                u = units[r]
                for c in range(var_codes.shape[0]):
                    code = var_codes[c]
                    if code == 0:
                        st_out[t, b, c, r] = v[b, u]
                    elif code == 1:
                        st_out[t, b, c, r] = cur[b, u]
                    elif code == 4:
                        st_out[t, b, c, r] = cur2[b, u]
                    else:
                        st_out[t, b, c, r] = cnt[b, u]
    n_spk_arr[0] = n_spk
    return k
