"""The compiled chunk loops: a whole chunk of time steps (a sequence, or a training batch with its
optimizer updates) in one numba call, one loop per rule family, one module each: :mod:`.trace`
(SnAp-1, RFLO, e-prop), :mod:`.influence` (RTRL, SnAp-n), :mod:`.bptt`, :mod:`.uoro`; what they
share is in :mod:`.parts`.

Every loop runs, per time step: cell step and step record (:func:`~neurosnap.engine._step.cell_step`),
readout, loss and credit (:func:`~neurosnap.engine._step.readout_loss`), the rule's update and the
gradient accumulation, and, in training, the optimizer update every ``update_every`` steps
(:func:`~neurosnap.engine._step.apply_update`). Arguments are grouped in tuples:

- ``data = (xs (T, B, n_in), ys_i (T, B) int64, ys_f (T, B, n_out or 1), mask (T, B) bool, loss_code)``
- ``cell = (cell_kind, gate_code, gate_params (2,), hyper (10,), state (B, S, n))`` (state updated)
- ``params = (w_rec (G, nnz), w_in (G, n, n_in), bias (G, n), w_out (n_out, n), b_out (n_out,))``
  (updated in place by the optimizer); ``w_rec[g, e]`` is the weight of edge ``e`` of the graph
  (CSR order), for either storage of the cell (``neurosnap.engine`` gathers a dense array's
  synapse values), so memory and work follow the synapses
- ``graph = (indptr, indices, csc_edge, edge_pre, edge_post, self_edge, in_ptr)``
  (:class:`~neurosnap.core.graph.RecurrentGraph`)
- ``layout = (kind, gate, post, pre)`` (:class:`~neurosnap.core.layout.ParamLayout`, int64)
- ``acc = (core (P,), g_wout, g_bout)`` gradient accumulators (layout order)
- ``outs = (logits (T, B, n_out), losses (T, B) float64)``
- ``opt = (opt_code, opt_hyper (4,), count (1,) int64, m1 (5 arrays), m2 (5 arrays))``
- ``ctl`` int64: ``[T_run, update_every (0: never), since_update, updates, err_kind, err_t, t0,
  check]``; ``err_kind`` 1/2/3 = non-finite state / loss / gradient at time step ``err_t``.

Each returns the summed loss of the chunk.
"""

from .bptt import run_bptt
from .influence import run_influence, scatter_synapses, synapse_values
from .trace import run_trace
from .uoro import run_uoro

__all__ = [
    "run_trace",
    "run_influence",
    "run_bptt",
    "run_uoro",
    "synapse_values",
    "scatter_synapses",
]
