"""Event-driven forward simulation of LIF/ALIF networks (numba), for long runs and large ``n``.

``model.run`` multiplies the whole recurrent weight matrix every step. Here only the synapses of the
units that spiked are touched: per step and sequence the cost is ``O(n)`` for the membranes plus
``O(events x fan-out)`` for the recurrent input plus ``O(active inputs x n)``, and the recurrent weights
are stored by presynaptic unit (CSR), built once from ``params``.

The update is neurosnap's LIF/ALIF step (``neurosnap/cells/lif.py``, ``alif.py``) in the same
floating-point operations, so the events equal ``model.run(params, xs).events`` (and ``v`` its
``states[:, :, 0]``) up to the summation order of the synaptic inputs (round-off).
"""

from __future__ import annotations

import numba
import numpy as np

from ..cells.alif import ALIF
from ..cells.lif import LIF
from ..gates import Heaviside


class EventLIF:
    """A LIF/ALIF model prepared for :meth:`run`: outgoing synapses by presynaptic unit.

    Args:
        model: a :class:`~neurosnap.model.Model` whose cell is ``ns.cells.LIF`` or ``ns.cells.ALIF``
            with a Heaviside gate.
        params: its parameter dict; computation runs in ``model.dtype``.
        check: refuse cells with ``refractory > 0`` or ``delay > 1``, which :meth:`run` does not
            model (``ns.simulate``'s event engine does, on this class's synapse tables).
    """

    def __init__(self, model, params, check=True):
        cell = model.cell
        if not isinstance(cell, (LIF, ALIF)) or not isinstance(cell.gate, Heaviside):
            raise ValueError(
                "simulate_lif_events needs an ns.cells.LIF or ns.cells.ALIF with a "
                f"Heaviside gate, got {cell!r} with gate {cell.gate!r}"
            )
        if getattr(cell, "tau_syn_inh", None) is not None and check:
            raise ValueError(
                "simulate_lif_events runs cells with one synaptic current; use "
                "ns.simulate (event engine) for tau_syn_inh="
            )
        if check and (cell.refractory_steps or cell.delay > 1):
            raise ValueError(
                "simulate_lif_events runs cells without refractoriness and with "
                "delay=1; use ns.simulate (event engine) for refractory= and delay="
            )
        params = model.check_params(params)
        self.model, dtype = model, model.dtype
        # synapse tables by presynaptic unit (CSC) from the cell's CSR index, no (n, n) array.
        # The scatter of a spike's synapses is bound by memory traffic: the narrowest unsigned
        # index type (unsigned also spares numba's negative-index check) ran 1.5x faster than int32.
        self.out_ptr, self.order, self.out_post = cell.graph.transpose_order(
            np.uint16 if cell.n_hidden <= 1 << 16 else np.uint32
        )
        self.w_syn = cell.synapse_w_rec(params["cell.w_rec"])  # (G, nnz), graph order
        self.out_w = np.ascontiguousarray(self.w_syn[0][self.order])
        self.w_in_t = np.ascontiguousarray(params["cell.w_in"][0].T)  # (n_in, n)
        self.bias = (
            params["cell.bias"][0].copy() if cell.has_bias else np.zeros(cell.n_hidden, dtype)
        )
        alif = isinstance(cell, ALIF)
        c = dtype.type
        self.constants = (
            c(cell.v_th),
            c(cell.v_leak),
            c(cell.v_reset),
            c(cell.dt / cell.tau_mem),
            c(1 - cell.dt / cell.tau_syn),
            c(1 - cell.dt / cell.tau_adapt) if alif else c(0.0),
            c(cell.beta) if alif else c(0.0),
        )
        self.subtract = cell.reset == "subtract"

    def run(self, xs, record_v: bool = False):
        """Simulate ``xs`` of shape ``(T, B, n_in)`` from the initial state.

        Returns:
            ``events`` shape ``(T, B, n)`` bool; with ``record_v`` also ``v`` shape ``(T, B, n)``,
            the membrane before the reset (neurosnap's state ``v``).
        """
        xs, _, _ = self.model.check_inputs(xs)
        T, B, _ = xs.shape
        n = len(self.bias)
        events = np.zeros((T, B, n), dtype=np.bool_)
        v_out = np.zeros((T if record_v else 0, B, n), dtype=self.model.dtype)
        # mypy reads numba's Dispatcher.__call__ stub, not the jitted signature
        _simulate(
            xs,
            self.out_ptr,
            self.out_post,
            self.out_w,
            self.w_in_t,
            self.bias,  # type: ignore[call-arg]
            *self.constants,
            self.subtract,
            record_v,
            events,
            v_out,
        )
        return (events, v_out) if record_v else events


def simulate_lif_events(model, params, xs, record_v: bool = False):
    """Event-driven ``model.run`` for LIF/ALIF cells: ``events (T, B, n)`` (and ``v``, see
    :meth:`EventLIF.run`). Prepare once with :class:`EventLIF` to run many inputs."""
    return EventLIF(model, params).run(xs, record_v=record_v)


@numba.njit(cache=True)
def _simulate(
    xs,
    out_ptr,
    out_post,
    out_w,
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
    record_v,
    events,
    v_out,
):
    T, B, n_in = xs.shape
    n = bias.shape[0]
    dtype = bias.dtype
    spikes = np.empty(n, dtype=np.int64)
    for b in range(B):
        v = np.full(n, v_leak, dtype=dtype)
        cur = np.zeros(n, dtype=dtype)
        a = np.zeros(n, dtype=dtype)
        rec = np.zeros(n, dtype=dtype)
        inp = np.zeros(n, dtype=dtype)
        n_spk = 0
        for u in range(n):  # z_{-1} of the initial state
            if v[u] - v_th - beta * a[u] > 0:
                spikes[n_spk] = u
                n_spk += 1
        for t in range(T):
            for s in range(n_spk):  # W_rec z_{t-1}: only the spikers' rows
                j = spikes[s]
                for q in range(out_ptr[j], out_ptr[j + 1]):
                    rec[out_post[q]] += out_w[q]
            for k in range(n_in):  # W_in x_t: only the active channels
                x = xs[t, b, k]
                if x != 0:
                    for u in range(n):
                        inp[u] += w_in_t[k, u] * x
            n_spk = 0
            for u in range(n):
                z = v[u] - v_th - beta * a[u] > 0
                v_r = v[u]
                if z:
                    v_r = v_r - v_th if subtract else v_reset
                    a[u] = rho * (a[u] + 1)
                else:
                    a[u] = rho * a[u]
                i_j = cur[u] + rec[u] + (inp[u] + bias[u])
                v[u] = v_r + k_m * (v_leak - v_r + i_j)
                cur[u] = decay_syn * i_j
                rec[u] = 0
                inp[u] = 0
                if v[u] - v_th - beta * a[u] > 0:
                    spikes[n_spk] = u
                    n_spk += 1
                    events[t, b, u] = True
            if record_v:
                v_out[t, b] = v
