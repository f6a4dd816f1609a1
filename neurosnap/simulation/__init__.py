"""Run a network for a long time and record what it did: events, chosen states, population rates.

:func:`simulate` drives a model (any cell; trained or fresh parameters) with inputs from an array,
an array file, a Poisson or Bernoulli spike source or a task stream, in chunks of ``chunk_steps``
steps, carrying the state across chunks. It records

- **events** as lists, one entry per event: ``spike_steps`` (time step, from 0), ``spike_units`` and
  ``spike_batch`` (sequence index), ordered by time step, then sequence, then unit;
- **states**: chosen state variables (e.g. ``v``) of chosen ``units`` at every step, ``(T, B, U)``;
- the **population rate**: events per unit per second (``dt`` seconds per step) in bins of
  ``rate_bin`` steps, ``(n_bins, B)``; the last bin may be shorter and is normalised by its length.

LIF and ALIF cells with a Heaviside gate run event-driven (a numba kernel with the CSR of
:class:`neurosnap.simulation.lif_events.EventLIF`: per step ``O(n)`` for the membranes plus
``O(events x fan-out)``); their events equal ``model.run``'s, their states equal it up to the
summation order of the synaptic input (round-off). The kernel models the cells' refractoriness and
recurrent delays: spikes in flight wait in a ring buffer of synaptic input, with the cell's uniform
``delay`` or per-synapse ones (``simulate(..., delays=)``). Every other cell (EGRU, LeakyRNN, Smooth gates)
runs ``model.cell.step``, bit-identical to ``model.run``.

With ``out=DIR`` every chunk's records go to ``DIR/.chunks/`` as ``.npy`` files as soon as they are
made, and at the end they are copied, one chunk at a time, into ``DIR/recording.npz`` (uncompressed,
no pickles) next to ``DIR/recording.json``: memory stays bounded by one chunk, whatever the number
of steps. The format (``docs/guide/simulation.md``) is readable with numpy and json alone::

    import json, numpy as np
    meta = json.load(open("DIR/recording.json"))
    with np.load("DIR/recording.npz", allow_pickle=False) as f:
        t = f["spike_steps"] * meta["dt"]; i = f["spike_units"]

Arrays of ``recording.npz`` (``T`` steps, ``B`` sequences, ``U`` recorded units, ``K`` events):

- ``spike_steps`` ``(K,)`` int64: time step of each event (its time is ``spike_steps * dt``);
- ``spike_units`` ``(K,)`` int32: unit of each event;
- ``spike_batch`` ``(K,)`` int32: sequence (batch index) of each event;
- ``rate`` ``(n_bins, B)`` float64: population rate, events per unit per second (per step when
  ``time_unit`` is ``"step"``);
- ``units`` ``(U,)`` int64: the units whose states were recorded;
- ``state_<name>`` ``(T, B, U)``, the model's dtype: state variable ``<name>`` (e.g. ``state_v``).

The pieces: :mod:`neurosnap.simulation.sources` (input streams), :mod:`neurosnap.simulation.run`
(:func:`simulate`), :mod:`neurosnap.simulation.engine` (the step and event-driven runners),
:mod:`neurosnap.simulation.recording` (:class:`Recording`, its files, the chunked buffers).
"""

from .recording import FORMAT, FORMAT_VERSION, Recording
from .run import ENGINES, RECORD_KINDS, load_params, simulate
from .sources import ArraySource, BernoulliSource, PoissonSource, Source, TaskSource, load_inputs

__all__ = [
    "simulate",
    "Recording",
    "Source",
    "PoissonSource",
    "BernoulliSource",
    "ArraySource",
    "TaskSource",
    "load_inputs",
    "load_params",
    "FORMAT",
    "FORMAT_VERSION",
    "RECORD_KINDS",
    "ENGINES",
]
