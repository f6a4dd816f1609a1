"""Brian2 adapter: run a neurosnap LIF/ALIF model as an explicit ``brian2.Network``, step for step.

Brian2 (2.9) is imported lazily inside the functions. Every object gets an explicit name (so the
Cython cache is hit across builds) and every run passes ``namespace={}``. See ``docs/adapters.md``.

**How neurosnap's step maps onto Brian2's schedule.** Brian2 runs, within one time step, the slots
``groups`` (state update) -> ``thresholds`` -> ``synapses`` (``on_pre`` of this step's spikes) ->
``resets``. neurosnap's step t (``neurosnap/cells/lif.py``) is: reset by ``z_{t-1}``; current jump
``i + W_rec z_{t-1} + W_in x_t (+ b)``; forward-Euler voltage update; current decay; threshold. So the
current jump belongs to the *end* of the previous Brian2 step. The network therefore runs ``T + 1``
Brian2 steps, Brian2 step ``s`` holding neurosnap step ``s - 1``:

- step 0 starts from neurosnap's initial state (``v = v_leak``, ``i = 0``, ``a = 0``), on which the
  update code is the identity; its threshold gives ``z_{-1}``;
- in every step ``s`` the ``synapses`` slot adds ``W_rec z_{s-1}`` (recurrent ``on_pre``, no delay;
  with the cell's ``delay=D`` a Brian2 delay of ``D - 1`` steps brings ``W_rec z_{s-D}``)
  and ``W_in x_s`` (input synapses: a ``SpikeGeneratorGroup`` firing at step ``s`` when ``xs`` are
  0/1 spikes, otherwise a group reading ``xs`` from a ``TimedArray`` and emitting a custom event every
  step), the bias is added by a ``run_regularly`` in the same slot, and the ``resets`` slot applies
  the reset (and ALIF's ``a += 1``);
- the ``groups`` slot of step ``s + 1`` runs neurosnap's explicit update code
  ``v = v + k_m (v_leak - v + i); i = (1 - k_s) i; a = rho a``, and the membrane is recorded in the
  ``thresholds`` slot, i.e. before the reset, which is what neurosnap's state ``v`` holds.

A cell's ``refractory`` period becomes ``NeuronGroup(refractory=...)``: Brian2's ``not_refractory``
multiplies the explicit membrane update (``(unless refractory)``) and gates the threshold, which is
``docs/theory/cells.md`` eq. (15)-(17) step for step. A recurrent delay of ``D`` steps (the cell's
uniform ``delay`` or per-synapse ``delays=``) becomes a Brian2 synaptic delay of ``D - 1`` steps.

The recurrent ``Synapses`` are built from the cell's connectivity index (``cell.graph``), one Brian2
synapse per neurosnap synapse, with its weight read from ``w_rec`` in either storage (``(G, n, n)``
or, with ``storage="sparse"``, ``(G, nnz)``): no ``(n, n)`` array is built for a sparse cell, so a
network's memory follows its synapses in Brian2 as in neurosnap.

Events and membranes agree with ``model.run`` up to the summation order of the synaptic inputs
(round-off, ~1e-16 relative). The readout is stored as weight-only ``Synapses`` (no pathway, no cost)
so that :func:`from_network` returns a complete params dict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..cells.alif import ALIF
from ..cells.lif import LIF
from ..core import validate
from ..gates import Heaviside

#: Names of the Brian2 objects built by :func:`to_network` (``net[NAMES["neurons"]]`` etc.).
NAMES = {
    "clock": "neurosnap_clock",
    "neurons": "neurosnap_neurons",
    "update": "neurosnap_update",
    "bias": "neurosnap_bias",
    "input": "neurosnap_input",
    "input_synapses": "neurosnap_input_synapses",
    "recurrent_synapses": "neurosnap_recurrent_synapses",
    "readout": "neurosnap_readout",
    "readout_synapses": "neurosnap_readout_synapses",
    "spikes": "neurosnap_spikes",
    "membrane": "neurosnap_membrane",
    "xs": "neurosnap_xs",
    "init": "neurosnap_init",
    "bias_inh": "neurosnap_bias_inh",
    "input_synapses_inh": "neurosnap_input_synapses_inh",
    "recurrent_synapses_inh": "neurosnap_recurrent_synapses_inh",
    "init_clock": "neurosnap_init_clock",
}
TARGETS = ("numpy", "cython")
DEFAULT_CACHE_DIR = Path(".cache") / "brian2"

_STDP_VARS = """
dw : 1
dapre/dt = -apre / tau_pre : 1 (event-driven)
dapost/dt = -apost / tau_post : 1 (event-driven)
tpre : second
"""
# Pair-based STDP with neurosnap's (and Norse's) pairing: both traces include this step's spikes, so
# a pre arrival and a post spike in the same step count for potentiation *and* depression. The pre
# pathway runs before the post pathway (Brian2 orders them -1, +1): it sees the post trace without the
# current post spike, and the post pathway adds that missing term (tpre == t).
_STDP_ON_PRE = "apre += 1\ndw += -a_minus * apost\ntpre = t"
_STDP_ON_POST = "apost += 1\ndw += a_plus * apre - a_minus * int(tpre == t)"


def check_expressible(model) -> None:
    """Raise ``ValueError`` unless ``model``'s cell can be run in Brian2 by this adapter.

    Expressible: :class:`~neurosnap.cells.LIF` and :class:`~neurosnap.cells.ALIF` with a Heaviside gate
    (any surrogate, reset, density or user-given connectivity, storage, autapses, bias, refractory
    period, delay, LIF's second current ``tau_syn_inh``; a delay > 1 needs ``v_leak <= v_th``). Not: ``ns.gates.Smooth`` (graded, non-spike
    outputs), EGRU and LeakyRNN (no spiking dynamics).
    """
    cell = model.cell
    if not isinstance(cell, (LIF, ALIF)):
        raise ValueError(
            f"the Brian2 adapter runs LIF and ALIF cells only, got {type(cell).__name__}"
        )
    if not isinstance(cell.gate, Heaviside):
        raise ValueError(
            f"the Brian2 adapter needs a Heaviside gate (spikes); {cell.gate!r} emits "
            "graded outputs that Brian2 synapses cannot transmit"
        )
    if cell.delay > 1 and cell.v_leak > cell.v_th:
        raise ValueError(
            "delay > 1 with v_leak > v_th: neurosnap's network at rest before the first "
            "step emits spikes that would still be in flight, which Brian2 cannot hold"
        )


def to_network(
    model,
    params,
    xs,
    batch_index=0,
    target="numpy",
    cache_dir=None,
    stdp=None,
    delays=None,
    initial_state=None,
):
    """Build a ``brian2.Network`` reproducing ``model.run(params, xs)`` step for step.

    Args:
        model: a :class:`~neurosnap.model.Model` with an expressible cell (:func:`check_expressible`).
        params: its parameter dict (float64 for exact comparisons).
        xs: inputs, shape ``(T, B, n_in)``; 0/1 spikes are fed by a ``SpikeGeneratorGroup``, any other
            values by a ``TimedArray``.
        batch_index: which sequence to build (int), or ``None`` for all ``B`` of them as disjoint
            copies (neuron ``b * n + i`` is unit ``i`` of sequence ``b``).
        target: Brian2 code generation, ``"numpy"`` (no compilation) or ``"cython"``.
        cache_dir: Cython cache directory (``target="cython"`` only; a global Brian2 preference);
            default ``.cache/brian2`` under the working directory.
        stdp: optional :class:`~neurosnap.rules.STDP`: the recurrent and input synapses also
            accumulate its weight changes (Song/Abbott traces) in a variable ``dw`` with the weights
            held fixed, as ``ns.sequence_grad`` does; read them with :func:`stdp_updates`.
        delays: optional per-synapse recurrent delays in steps, integers ``>= 1``, as
            ``ns.simulate(..., delays=)`` takes them: shape ``(nnz,)``, one per synapse in the
            order of ``model.cell.graph`` (the order of a sparse ``w_rec``), or ``(n, n)`` indexed
            ``(post, pre)`` like a dense ``w_rec`` (read where a synapse exists); default: the
            cell's uniform ``delay``. A synapse with delay ``D`` gets Brian2's
            ``delay = (D - 1) dt``.
        initial_state: optional state at step 0 instead of the rest state, as
            ``ns.simulate(..., initial_state=)`` takes it: a dict ``"v"``, ``"i"``, ``"i_inh"``, ``"a"``
            to scalars, ``(n,)`` or ``(B, n)`` arrays (the refractory counter ``"r"`` is refused:
            Brian2 holds it as a last spike time). The values are written by a ``run_regularly``
            on a clock of its own that ticks once, at Brian2 step 0 right after the update code,
            so that step 0's threshold sees them (units above threshold give ``z_{-1}``) as
            neurosnap's does. With delays (``delay > 1`` or ``delays=``) every unit must start
            below threshold (Brian2 has no spikes in flight before its first step).

    Returns:
        The network; run it for ``T + 1`` steps (step 0 is the initial state), e.g.
        ``net.run((T + 1) * model.cell.dt * brian2.second, namespace={})``, or use :func:`simulate`.
    """
    b2 = _brian2()
    check_expressible(model)
    if stdp is not None and (model.cell.delay > 1 or delays is not None):
        raise ValueError("the Brian2 STDP formulation is written for delay=1")
    two = getattr(model.cell, "tau_syn_inh", None) is not None
    if stdp is not None and two:
        raise ValueError(
            "the Brian2 STDP formulation is written for one synaptic current (tau_syn_inh=None)"
        )
    if delays is not None:  # checked before any Brian2 object exists
        if model.cell.v_leak > model.cell.v_th:
            raise ValueError(
                "delays with v_leak > v_th: neurosnap's network at rest before the "
                "first step emits spikes that would still be in flight"
            )
        delays = model.cell.edge_delays(delays)  # (nnz,), graph order
    params = model.check_params(params)
    xs, _, _ = model.check_inputs(xs)
    validate.choice("target", target, TARGETS)
    init = {}
    if initial_state is not None:  # simulate's checks, before any Brian2
        from ..simulation.run import check_initial_state

        init = check_initial_state(initial_state, model.cell, xs.shape[1], model.dtype)
        if "r" in init:
            raise ValueError(
                "initial_state: the Brian2 adapter does not take the refractory "
                "counter 'r' (Brian2 holds a last spike time)"
            )
        c = model.cell
        x = init.get("v", c.v_leak) - c.v_th - (c.beta * init["a"] if "a" in init else 0.0)
        if (c.delay > 1 or delays is not None) and np.any(x > 0):
            raise ValueError(
                "initial_state: with delays every unit must start below threshold "
                "(Brian2 has no spikes in flight before its first step)"
            )
    if batch_index is not None:
        validate.positive_int("batch_index", batch_index, minimum=0)
        if batch_index >= xs.shape[1]:
            raise ValueError(f"batch_index must be < B={xs.shape[1]}, got {batch_index}")
        xs = xs[:, batch_index : batch_index + 1]
        init = {key: val[batch_index : batch_index + 1] for key, val in init.items()}
    codeobj = _codeobj_class(target, cache_dir)
    cell = model.cell
    T, B, k = xs.shape
    n = cell.n_hidden
    dt = cell.dt * b2.second
    clock = b2.Clock(dt, name=NAMES["clock"])
    common = dict(clock=clock, codeobj_class=codeobj)
    # the model's precision for the neurons and the weights (STDP traces and times stay float64)
    typed, weights = dict(common, dtype=model.dtype), dict(common, dtype={"w": model.dtype})

    names = {"v": "v", "i": "i_syn", "a": "a", "i_inh": "i_inh"}
    neurons = _neurons(b2, cell, B, typed, [names[key] for key in init])
    if init:
        for key, val in init.items():
            setattr(neurons, f"{names[key]}_init", np.asarray(val, model.dtype).ravel())
        # a clock that ticks once in the run: at Brian2 step 0, after the update code (order 2)
        once = b2.Clock((T + 2) * dt, name=NAMES["init_clock"])
        neurons.run_regularly(
            "\n".join(f"{names[key]} = {names[key]}_init" for key in init),
            clock=once,
            when="groups",
            order=2,
            name=NAMES["init"],
            codeobj_class=codeobj,
        )
    if cell.has_bias:  # part of the jump, like W_in x_t
        neurons.bias = np.tile(params["cell.bias"][0], B)
        neurons.run_regularly(
            "i_syn = i_syn + bias", when="synapses", name=NAMES["bias"], codeobj_class=codeobj
        )
        if two:
            neurons.bias_inh = np.tile(params["cell.bias"][1], B)
            neurons.run_regularly(
                "i_inh = i_inh + bias_inh",
                when="synapses",
                name=NAMES["bias_inh"],
                codeobj_class=codeobj,
            )
    objects = [neurons]  # its run_regularly objects come along

    plastic = _stdp_namespace(stdp, cell, xs, dt) if stdp is not None else None
    source, on_pre, on_event, namespace = _input_source(b2, xs, dt, common)
    objects.append(source)
    s_in = _synapses(
        b2,
        source,
        neurons,
        on_pre,
        on_event,
        namespace,
        plastic if plastic is not None and stdp.input_weights else None,
        NAMES["input_synapses"],
        weights,
    )
    pre, post = (a.ravel() for a in np.meshgrid(np.arange(k), np.arange(n), indexing="ij"))
    _connect(s_in, pre, post, params["cell.w_in"][0][post, pre], k, n, B)
    if two:  # gate 1's input weights jump i_inh
        s_in_inh = _synapses(
            b2,
            source,
            neurons,
            on_pre.replace("i_syn_post", "i_inh_post"),
            on_event,
            namespace,
            None,
            NAMES["input_synapses_inh"],
            weights,
        )
        _connect(s_in_inh, pre, post, params["cell.w_in"][1][post, pre], k, n, B)
        objects.append(s_in_inh)

    # neurosnap's delay D (steps, 1 = the next step) is a Brian2 transmission delay of D - 1 steps.
    # The synapses in CSC order (by presynaptic unit, then postsynaptic): edge order[q] is pre[q] ->
    # post[q]; their weights and delays are gathered in that order, never as (n, n) arrays.
    out_ptr, order, post = cell.graph.transpose_order()
    pre = np.repeat(np.arange(n, dtype=post.dtype), np.diff(out_ptr))
    values = cell.synapse_w_rec(params["cell.w_rec"])  # (G, nnz), graph order
    steps = None if delays is None else delays[order] - 1
    recurrent = []
    for g, (var, name) in enumerate(
        [("i_syn", "recurrent_synapses"), ("i_inh", "recurrent_synapses_inh")][: 2 if two else 1]
    ):
        w_rec = values[g][order]
        syn = _synapses(
            b2,
            neurons,
            neurons,
            f"{var}_post += w",
            "spike",
            {},
            plastic,
            NAMES[name],
            weights,
            delay=(cell.delay - 1) * dt if delays is None else "per synapse",
        )
        # two currents: each holds its nonzero weights only (Dale's law: a unit's spike jumps
        # one of them); adding zeros would change no sum
        keep = w_rec != 0 if two else slice(None)
        _connect(syn, pre[keep], post[keep], w_rec[keep], n, n, B)
        if steps is not None and len(syn):  # per synapse, in connection order
            syn.delay[:] = np.tile(steps[keep], B) * dt
        recurrent.append(syn)
    s_rec = recurrent[0]
    objects += recurrent[1:]
    for syn in (s_in, s_rec):
        if "tpre" in syn.variables:
            syn.tpre = -1 * b2.second  # no pre arrival yet

    readout = b2.NeuronGroup(model.n_out, "bias : 1 (constant)", name=NAMES["readout"], **common)
    readout.bias = params["readout.bias"]
    s_out = b2.Synapses(neurons, readout, "w : 1", name=NAMES["readout_synapses"], **common)
    post, pre = (
        a.ravel() for a in np.meshgrid(np.arange(model.n_out), np.arange(n), indexing="ij")
    )
    _connect(s_out, pre, post, params["readout.weight"][post, pre], n, model.n_out, 1)

    spikes = b2.SpikeMonitor(neurons, name=NAMES["spikes"], **_no_clock(common))
    membrane = b2.StateMonitor(
        neurons, "v", record=True, when="thresholds", name=NAMES["membrane"], **common
    )
    objects += [s_in, s_rec, readout, s_out, spikes, membrane]
    return b2.Network(*objects, name="neurosnap_network")


def simulate(model, params, xs, target="numpy", cache_dir=None, delays=None, initial_state=None):
    """Run ``model`` on ``xs`` in Brian2 (all ``B`` sequences in one network).

    Args:
        model, params, target, cache_dir, delays, initial_state: as in :func:`to_network`.
        xs: inputs, shape ``(T, B, n_in)``.

    Returns:
        ``(events, v)``: ``events`` shape ``(T, B, n)`` bool, comparable to ``model.run(...).events``;
        ``v`` shape ``(T, B, n)``, the membrane before the reset, comparable to
        ``model.run(...).states[:, :, 0]``.
    """
    xs, _, _ = model.check_inputs(xs)
    T, B, _ = xs.shape
    net = to_network(
        model,
        params,
        xs,
        batch_index=None,
        target=target,
        cache_dir=cache_dir,
        delays=delays,
        initial_state=initial_state,
    )
    run(net, model, T)
    return read_run(net, model, T, B)


def run(net, model, T: int) -> None:
    """Run a network from :func:`to_network` over its ``T`` input steps (``T + 1`` Brian2 steps)."""
    b2 = _brian2()
    net.run((T + 1) * model.cell.dt * b2.second, namespace={})


def read_run(net, model, T: int, B: int):
    """``(events (T, B, n) bool, v (T, B, n))`` from a network built for ``B`` sequences and run;
    ``v`` is ``None`` if the membrane monitor was removed (``net.remove(net[NAMES["membrane"]])``)."""
    n = model.cell.n_hidden
    spikes = net[NAMES["spikes"]]
    step = np.rint(np.asarray(spikes.t_[:]) / model.cell.dt).astype(np.int64)
    idx = np.asarray(spikes.i[:], dtype=np.int64)
    keep = step >= 1  # step 0 holds z_{-1}, the initial state's
    events = np.zeros((T, B * n), dtype=bool)
    events[step[keep] - 1, idx[keep]] = True
    try:
        membrane = net[NAMES["membrane"]]
    except KeyError:
        return events.reshape(T, B, n), None
    v = np.asarray(membrane.v[:]).T[1 : T + 1]  # (T, B*n), recorded before the reset
    return events.reshape(T, B, n), v.reshape(T, B, n)


def from_network(net, model) -> dict[str, np.ndarray]:
    """Read a params dict back from a network built by :func:`to_network` (its first copy).

    Weights come from the ``Synapses`` (``w`` by their stored indices), biases from the groups;
    ``cell.w_rec`` in the cell's storage (``(G, nnz)`` synapse values for ``storage="sparse"``,
    without an ``(n, n)`` array).
    """
    cell, n = model.cell, model.cell.n_hidden
    dtype = model.dtype
    params = {}
    two = getattr(cell, "tau_syn_inh", None) is not None
    suffixes = ["", "_inh"] if two else [""]
    w_in = np.zeros((len(suffixes), cell.n_in, n), dtype)
    w_rec = np.zeros((len(suffixes), cell.graph.nnz), dtype)  # graph order
    for g, suffix in enumerate(suffixes):
        _read(net[NAMES["input_synapses" + suffix]], w_in[g], cell.n_in, n)
        syn = net[NAMES["recurrent_synapses" + suffix]]
        post, pre, first = _first_copy(syn, n)
        w_rec[g, _edge_ids(cell.graph, post, pre)] = np.asarray(syn.w[:])[first]
    params["cell.w_in"] = w_in.transpose(0, 2, 1).copy()
    params["cell.w_rec"] = cell.dense_w_rec(w_rec) if cell.storage == "dense" else w_rec
    if cell.has_bias:
        params["cell.bias"] = np.stack(
            [
                np.asarray(net[NAMES["neurons"]].variables[f"bias{x}"].get_value()[:n], dtype)
                for x in suffixes
            ]
        )
    w_out = np.zeros((n, model.n_out), dtype)
    _read(net[NAMES["readout_synapses"]], w_out, n, model.n_out)
    params["readout.weight"] = w_out.T.copy()
    params["readout.bias"] = np.asarray(net[NAMES["readout"]].bias[:], dtype)
    return model.check_params(params)


def stdp_updates(net, model) -> dict[str, np.ndarray]:
    """Weight changes accumulated by a network built with ``stdp=``, summed over its copies.

    Returns:
        ``{"cell.w_rec": ..., "cell.w_in": (1, n, n_in)}``: ``+Δw``, i.e. minus the "gradient"
        that ``ns.sequence_grad(model, params, xs, ys, stdp)`` returns for the same keys;
        ``cell.w_rec`` in the cell's storage, ``(1, n, n)`` or ``(1, nnz)`` (graph order).
    """
    cell, n = model.cell, model.cell.n_hidden
    out = {}
    syn = net[NAMES["recurrent_synapses"]]
    dw_rec = np.zeros(cell.graph.nnz, model.dtype)
    if "dw" in syn.variables:
        pre = np.asarray(syn.i[:]) % n
        post = np.asarray(syn.j[:]) % n
        np.add.at(dw_rec, _edge_ids(cell.graph, post, pre), np.asarray(syn.dw[:]))
    out["cell.w_rec"] = cell.dense_w_rec(dw_rec[None]) if cell.storage == "dense" else dw_rec[None]
    syn = net[NAMES["input_synapses"]]
    dw = np.zeros((n, cell.n_in), model.dtype)
    if "dw" in syn.variables:  # input synapses are static without stdp.input_weights
        pre = np.asarray(syn.i[:]) % cell.n_in
        post = np.asarray(syn.j[:]) % n
        np.add.at(dw, (post, pre), np.asarray(syn.dw[:]))
    out["cell.w_in"] = dw[None]
    return out


# -- building blocks ---------------------------------------------------------------------------------
def _brian2():
    hook = sys.excepthook  # brian2 installs its own on import
    try:
        import brian2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the Brian2 adapter needs brian2 (pip install 'neurosnap[brian2]')"
        ) from exc
    finally:
        # importing brian2 replaces sys.excepthook, which would report every later uncaught error of
        # the user's program as "Brian 2 encountered an unexpected error": give the user's hook back
        sys.excepthook = hook
    return brian2


def _codeobj_class(target, cache_dir):
    if target == "numpy":
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

        return NumpyCodeObject
    from brian2 import prefs
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    path = Path(cache_dir) if cache_dir is not None else Path.cwd() / DEFAULT_CACHE_DIR
    path.mkdir(parents=True, exist_ok=True)
    prefs.codegen.runtime.cython.cache_dir = str(path)
    return CythonCodeObject


def _no_clock(common):
    return {"codeobj_class": common["codeobj_class"]}


def _neurons(b2, cell, B, common, init_vars=()):
    """The neuron group with neurosnap's explicit update, threshold and reset code (and a constant
    ``<var>_init`` for each of ``init_vars``)."""
    alif = isinstance(cell, ALIF)
    eqs = """
    v : 1
    i_syn : 1
    bias : 1 (constant)
    k_m : 1 (shared, constant)
    k_s : 1 (shared, constant)
    v_th : 1 (shared, constant)
    v_leak : 1 (shared, constant)
    v_reset : 1 (shared, constant)
    """
    eqs += "".join(f"{var}_init : 1 (constant)\n" for var in init_vars)
    two = getattr(cell, "tau_syn_inh", None) is not None
    drive = "i_syn + i_inh" if two else "i_syn"
    if two:
        eqs += "i_inh : 1\nk_si : 1 (shared, constant)\n"
        if cell.has_bias:
            eqs += "bias_inh : 1 (constant)\n"
    decay = "i_syn = (1 - k_s) * i_syn" + ("\ni_inh = (1 - k_si) * i_inh" if two else "")
    update = f"v = v + k_m * (v_leak - v + {drive})\n{decay}"
    refractory = {}
    if cell.refractory_steps:
        # Brian2 adds ``not_refractory`` (updated in the state updater, which runs before this code:
        # order=1 below) and appends ``and not_refractory`` to the threshold; the explicit update
        # clamps v like ``(unless refractory)`` would an ODE, and i_syn keeps integrating.
        update = f"v = v + int(not_refractory) * k_m * (v_leak - v + {drive})\n{decay}"
        refractory = dict(refractory=cell.refractory_steps * cell.dt * b2.second)
    threshold = "v - v_th > 0"
    reset = "v = v_reset" if cell.reset == "zero" else "v = v - v_th"
    if alif:
        eqs += "a : 1\nrho : 1 (shared, constant)\nbeta : 1 (shared, constant)\n"
        update += "\na = rho * a"
        threshold = "v - v_th - beta * a > 0"
        reset += "\na = a + 1"
    group = b2.NeuronGroup(
        B * cell.n_hidden,
        eqs,
        threshold=threshold,
        reset=reset,
        name=NAMES["neurons"],
        **refractory,
        **common,
    )
    group.k_m = cell.dt / cell.tau_mem
    group.k_s = cell.dt / cell.tau_syn
    if two:
        group.k_si = cell.dt / cell.tau_syn_inh
    group.v_th, group.v_leak, group.v_reset = cell.v_th, cell.v_leak, cell.v_reset
    group.v = cell.v_leak
    if alif:
        group.rho = 1 - cell.dt / cell.tau_adapt
        group.beta = cell.beta
    group.run_regularly(
        update,
        when="groups",
        order=1 if refractory else 0,
        name=NAMES["update"],
        codeobj_class=common["codeobj_class"],
    )
    return group


def _input_source(b2, xs, dt, common):
    """The presynaptic input group: ``(group, on_pre code, event name, namespace of the synapses)``."""
    T, B, k = xs.shape
    if np.all((xs == 0) | (xs == 1)):
        steps, batch, chan = np.nonzero(xs)
        gen = b2.SpikeGeneratorGroup(
            B * k, batch * k + chan, steps * dt, name=NAMES["input"], **common
        )
        return gen, "i_syn_post += w", "spike", {}
    values = np.zeros((T + 1, B * k))  # last row: nothing arrives after step T-1
    values[:T] = xs.reshape(T, B * k)
    table = b2.TimedArray(values, dt=dt, name=NAMES["xs"])
    group = b2.NeuronGroup(
        B * k,
        f"x = {NAMES['xs']}(t, i) : 1",
        events={"tick": "True"},
        namespace={NAMES["xs"]: table},
        name=NAMES["input"],
        **common,
    )
    return group, "i_syn_post += w * x_pre", "tick", {NAMES["xs"]: table}


def _synapses(b2, source, target, on_pre, on_event, namespace, plastic, name, common, delay=None):
    """Transmitting synapses ``w``; with ``plastic`` (:func:`_stdp_namespace`) also STDP pathways."""
    # Scalar delays: Brian2's spike queue is far faster than with per-synapse delay variables.
    if plastic is None:
        if isinstance(delay, str):  # per-synapse delays, set after connect()
            return b2.Synapses(
                source,
                target,
                "w : 1",
                on_pre=on_pre,
                on_event=on_event,
                namespace=namespace,
                name=name,
                **common,
            )
        return b2.Synapses(
            source,
            target,
            "w : 1",
            on_pre=on_pre,
            on_event=on_event,
            delay=0 * b2.second if delay is None else delay,
            namespace=namespace,
            name=name,
            **common,
        )
    return b2.Synapses(
        source,
        target,
        "w : 1" + _STDP_VARS,
        on_pre={"pre": on_pre, "stdp_pre": _STDP_ON_PRE},
        on_post=_STDP_ON_POST,
        on_event={"pre": on_event, "stdp_pre": "spike", "post": "spike"},
        delay={"pre": 0 * b2.second, "stdp_pre": common["clock"].dt, "post": 0 * b2.second},
        namespace={**namespace, **plastic},
        name=name,
        **common,
    )


def _connect(syn, pre, post, weights, n_pre, n_post, B):
    """Connect ``pre[s] -> post[s]`` in each of ``B`` copies and set ``w`` to ``weights[s]``.

    Synapses are stored in the order given (checked): pass them sorted by presynaptic unit, so that
    a spike's synapses are contiguous in memory (several times faster propagation at large ``n``).
    """
    offs = np.arange(B)[:, None]
    i, j = (offs * n_pre + pre).ravel(), (offs * n_post + post).ravel()
    syn.connect(i=i, j=j)
    if not (np.array_equal(syn.i[:], i) and np.array_equal(syn.j[:], j)):  # pragma: no cover
        raise RuntimeError(f"Brian2 reordered the synapses of {syn.name}")
    syn.w[:] = np.tile(weights, B)


def _read(syn, out_pre_post, n_pre, n_post):
    i, j = np.asarray(syn.i[:]), np.asarray(syn.j[:])
    first = (i < n_pre) & (j < n_post)  # copy 0
    out_pre_post[i[first], j[first]] = np.asarray(syn.w[:])[first]


def _first_copy(syn, n):
    """``(post, pre, mask)`` of a recurrent ``Synapses``' synapses in copy 0 (``mask`` selects them
    among all of the synapses)."""
    i, j = np.asarray(syn.i[:]), np.asarray(syn.j[:])
    first = (i < n) & (j < n)
    return j[first], i[first], first


def _edge_ids(graph, post, pre) -> np.ndarray:
    """Edge numbers (graph order) of the synapses ``pre -> post``; ``ValueError`` for a synapse the
    cell's connectivity does not have. ``O(nnz)`` memory (the edges' ``post * n + pre`` keys, which
    are sorted in graph order)."""
    n = graph.n
    keys = graph.edge_post * n + graph.pre_index
    query = np.asarray(post, dtype=np.int64) * n + np.asarray(pre, dtype=np.int64)
    ids = np.minimum(np.searchsorted(keys, query), max(graph.nnz - 1, 0))
    if graph.nnz == 0 or np.any(keys[ids] != query):
        raise ValueError("the network's recurrent synapses differ from the cell's connectivity")
    return ids


def _stdp_namespace(stdp, cell, xs, dt):
    """The constants of the STDP pathways for :class:`~neurosnap.rules.STDP` (checked here).

    neurosnap pairs the post spike of step t with the presynaptic value *arriving* at step t
    (``y_prev = z_{t-1}``, ``x_t``), which Brian2 emits one step earlier: the plasticity pathway
    ``stdp_pre`` is delayed by one step (:func:`_synapses`), transmission is not.
    """
    from ..rules.stdp import STDP

    if type(stdp) is not STDP:
        raise TypeError(f"stdp must be an ns.rules.STDP, got {type(stdp).__name__}")
    if stdp.w_min is not None or stdp.w_max is not None:
        raise ValueError(
            "the Brian2 STDP formulation accumulates unbounded weight changes with the "
            "weights held fixed; use an STDP without w_min/w_max"
        )
    if stdp.input_weights and not np.all((xs == 0) | (xs == 1)):
        raise ValueError(
            "Brian2 STDP on input weights needs 0/1 spike inputs (xs), got graded "
            "values (or use STDP(input_weights=False))"
        )
    decay_pre, decay_post = stdp.decays(cell.dt)
    if min(decay_pre, decay_post) <= 0:
        raise ValueError("Brian2 STDP needs tau_pre, tau_post > dt with decay='euler'")
    # A per-step decay d is an exponential with time constant -dt / log(d) (exact for "exp", and the
    # Euler factor 1 - dt/tau otherwise).
    return {
        "tau_pre": -dt / np.log(decay_pre),
        "tau_post": -dt / np.log(decay_post),
        "a_plus": stdp.a_plus,
        "a_minus": stdp.a_minus,
    }
