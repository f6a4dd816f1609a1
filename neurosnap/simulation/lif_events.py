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

import numpy as np

from ..cells.alif import ALIF
from ..cells.lif import LIF
from ..core.arrays import kernel_array
from ..gates import Heaviside
from .kernels import lif_chunk, plan, rows_sorted, synapse_table


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
        self.transposed = cell.graph.transpose_order(
            np.uint16 if cell.n_hidden <= 1 << 16 else np.uint32, order=False
        )
        self.out_ptr, _, self.out_post = self.transposed
        self.w_syn = cell.synapse_w_rec(params["cell.w_rec"])  # (G, nnz), graph order
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

    @property
    def out_w(self) -> np.ndarray:
        """The first current's weights in the order of the synapse table ``(nnz,)`` (gathered on
        first use; ``ns.simulate``'s runner builds its own tables)."""
        if getattr(self, "_out_w", None) is None:
            self._out_w = synapse_table(self.model.cell.graph, self.transposed, self.w_syn[0])[2]
        return self._out_w

    def run(self, xs, record_v: bool = False):
        """Simulate ``xs`` of shape ``(T, B, n_in)`` from the initial state, with
        :func:`~neurosnap.simulation.kernels.lif_chunk` (``ns.simulate``'s event kernel) on
        numba's current number of threads (the results do not depend on it).

        Returns:
            ``events`` shape ``(T, B, n)`` bool; with ``record_v`` also ``v`` shape ``(T, B, n)``,
            the membrane before the reset (neurosnap's state ``v``).
        """
        xs, _, _ = self.model.check_inputs(xs)
        dtype = self.model.dtype
        xs = kernel_array(xs, dtype)
        T, B, _ = xs.shape
        n = len(self.bias)
        v_th, v_leak, v_reset, k_m, decay_syn, rho, beta = self.constants
        v = np.full((B, n), v_leak, dtype=dtype)
        cur = np.zeros((B, n), dtype=dtype)
        a = np.zeros((B, n), dtype=dtype)
        cnt = np.zeros((B, n), dtype=np.int64)
        ring = np.zeros((B, 1, n), dtype=dtype)  # every delay is one step
        if v_leak - v_th > 0:  # the rest state fires: its spikes z_{-1} arrive at step 0
            for b in range(B):
                np.add.at(ring[b, 0], self.out_post, self.out_w)  # in synapse order
        tables = (self.out_ptr, self.out_post, self.out_w, np.zeros(1, np.uint16))
        constants = (v_th, v_leak, v_reset, k_m, decay_syn, dtype.type(0.0), rho, beta)
        units = np.arange(n if record_v else 0, dtype=np.int64)
        st = np.empty((T, B, 1, len(units)), dtype=dtype)
        events = np.zeros((T, B, n), dtype=np.bool_)
        cap = max(B * n, 1 << 17)
        buf = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int32))
        n_spk = np.zeros(1, np.int64)
        parallel, n_blocks = plan(n, B)
        sorted_rows = n_blocks > 1 and rows_sorted(self.out_ptr, self.out_post)
        t = 0
        while t < T:
            t = lif_chunk(
                xs,
                t,
                0,
                v,
                cur,
                cur,  # no second current: read, never written
                a,
                cnt,
                ring,
                ring,
                tables,
                self.w_in_t,
                self.bias,
                tables,
                self.w_in_t,
                self.bias,
                constants,
                self.subtract,
                0,
                1,
                False,
                sorted_rows,
                True if parallel else None,
                n_blocks,
                True,
                *buf,
                n_spk,
                np.zeros((T, B), dtype=np.int64),
                units,
                np.zeros(1, dtype=np.int64),
                st,
            )
            m = int(n_spk[0])
            events[buf[0][:m], buf[2][:m], buf[1][:m]] = True
            n_spk[0] = 0
        return (events, st[:, :, 0]) if record_v else events


def simulate_lif_events(model, params, xs, record_v: bool = False):
    """Event-driven ``model.run`` for LIF/ALIF cells: ``events (T, B, n)`` (and ``v``, see
    :meth:`EventLIF.run`). Prepare once with :class:`EventLIF` to run many inputs."""
    return EventLIF(model, params).run(xs, record_v=record_v)
