"""NIR (Neuromorphic Intermediate Representation) export and import of LIF networks.

``to_nir(model, params)`` writes a neurosnap LIF network as a ``nir.NIRGraph``; ``from_nir(graph)``
reads one back (exactly: same parameters, same model configuration, same events). The ``nir``
package is imported lazily (it comes with ``pip install neurosnap[norse]``).

**The graph.** ::

    input --> w_in --> lif --> readout --> output
                        ^  |
                        +--w_rec  (recurrence: lif -> w_rec -> lif)

- ``w_in``: ``nir.Linear(W_in)`` (``nir.Affine(W_in, b)`` when the cell has a bias), ``(n, n_in)``;
- ``lif``: ``nir.CubaLIF`` with per-neuron arrays ``tau_syn``, ``tau_mem``, ``r = 1``, ``v_leak``,
  ``v_threshold = v_th``, ``v_reset`` and ``w_in = tau_syn / dt`` (see below);
- ``w_rec``: ``nir.Linear(W_rec)``, dense ``(n, n)`` with zeros where no synapse exists (NIR 1.0
  has no sparse weights: a cell with ``storage="sparse"`` is written dense too, after a memory
  check, since the ``(n, n)`` array must fit in memory);
- ``readout``: ``nir.Affine(W_out, b_out)`` (left out with ``readout=False``: the graph then outputs
  the spikes).

``graph.metadata`` holds ``dt`` and the full neurosnap model configuration (JSON), so that
:func:`from_nir` rebuilds the same cell (density, connectivity seed, surrogate, storage, ...). A
cell built from a user-given ``connectivity`` also gets its synapses as two integer arrays,
``metadata["neurosnap_post"]`` and ``metadata["neurosnap_pre"]`` (graph order), so that the
synapses come back exactly, including any whose weight is zero.

**Continuous time vs neurosnap's step.** NIR's CubaLIF is an ODE,
``tau_syn dI/dt = -I + w_in S`` and ``tau_mem dv/dt = (v_leak - v) + R I``, with
``z = H(v - v_threshold)`` and reset to ``v_reset``. A simulator discretises it; Norse's NIR import
(``norse.torch.from_nir(graph, dt=dt)``, and nirtorch-based importers alike) uses forward Euler with
the input ``S_t`` held over the step, the synapse first, then the membrane, then threshold and reset::

    I_t = I_{t-1} + (dt/tau_syn) (-I_{t-1} + w_in S_t)
    v_t = v_{t-1} + (dt/tau_mem) (v_leak - v_{t-1} + R I_t),   z_t = H(v_t - v_th),  reset

with ``S_t = W_in x_t (+ b) + W_rec z_{t-1}`` (the recurrent edge delivers the previous step's
spikes). neurosnap's LIF step (``neurosnap/cells/lif.py``) is ``i_j = i_{t-1} + S_t``,
``v_t = v_r + (dt/tau_mem)(v_leak - v_r + i_j)``, ``i_t = (1 - dt/tau_syn) i_j``. With
``k = dt/tau_syn`` the Euler synapse is ``I_t = (1 - k) I_{t-1} + k w_in S_t``, so ``w_in = 1/k =
tau_syn/dt`` and ``R = 1`` make ``I_t = i_j`` exactly (in exact arithmetic; in floating point the
product ``k * w_in`` rounds, so the two agree to round-off, ~1e-16 relative in float64): the same
``tau_syn``, ``tau_mem``, ``v_leak``, ``v_th`` and weights, and the same spikes. In words: NIR's
``w_in S`` is a current *rate* held over the step; one step of it must add neurosnap's jump ``S``.
A simulator that instead treats spikes as Dirac impulses (jump ``w_in S / tau_syn``) would see jumps
of ``S / dt``: such an importer needs ``w_in = tau_syn``; this module documents and emits the Euler
convention that Norse uses.

**Expressible** (:func:`check_expressible`): ``ns.cells.LIF`` with ``reset="zero"`` (any
``v_reset``), a Heaviside gate (the surrogate only matters for gradients; it is kept in the
metadata), any ``dt``, ``tau_mem``, ``tau_syn``, ``v_th``, ``v_leak``, ``density``, ``autapses``,
``bias``, and ``v_leak <= v_th``.

**Not expressible** (``ValueError`` naming what is missing): ``ALIF`` (NIR 1.0 has no
adaptive-threshold neuron), ``EGRU`` (no gated units: sigmoid/tanh gates and products),
``LeakyRNN`` (no tanh node), ``reset="subtract"`` (NIR neurons reset to ``v_reset``),
``ns.gates.Smooth`` (NIR neurons emit Heaviside spikes) and ``v_leak > v_th`` (neurosnap's initial
state would already be a spike, which a NIR graph cannot start with).

**Known limits of Norse 1.1.0's NIR import** (neurosnap's export is faithful to NIR; these are
Norse's): it casts every array to float32 (for a float64 run, replace
``norse.torch.utils.import_nir._to_tensor`` by a float64 version, as ``tests/test_nir.py`` does);
it ignores ``v_reset`` (resets to 0); its synapse decays towards ``v_leak`` rather than 0. So
Norse reproduces neurosnap's spikes exactly when ``v_reset == 0`` and ``v_leak == 0``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..cells.lif import LIF
from ..core import npz, validate
from ..gates import Heaviside
from ..model import Model
from .codec import build_model, model_config

METADATA_VERSION = 1


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "neurosnap.io.nir needs the 'nir' package: pip install nir (or neurosnap[norse])"
        ) from exc
    return nir


def check_expressible(model) -> None:
    """Raise ``ValueError`` naming everything in ``model`` that NIR cannot express."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be an ns.Model, got {type(model).__name__}")
    cell = model.cell
    name = type(cell).__name__
    if name == "ALIF":
        raise ValueError(
            "NIR cannot express ALIF: its threshold adaptation (threshold "
            "v_th + beta * a, a_t = rho (a_{t-1} + z_{t-1})) has no NIR node (NIR 1.0 "
            "neurons have fixed thresholds); use ns.cells.LIF"
        )
    if name == "EGRU":
        raise ValueError(
            "NIR cannot express EGRU: its sigmoid/tanh gates and gate products have "
            "no NIR nodes (NIR 1.0 has linear maps and LIF/LI/IF neurons)"
        )
    if name == "LeakyRNN":
        raise ValueError("NIR cannot express LeakyRNN: NIR 1.0 has no tanh nonlinearity node")
    if type(cell) is not LIF:
        raise ValueError(f"NIR export supports ns.cells.LIF only, got {name}")
    problems = []
    if cell.reset != "zero":
        problems.append(f"reset={cell.reset!r} (NIR's CubaLIF resets to v_reset; use reset='zero')")
    if not isinstance(cell.gate, Heaviside):
        problems.append(
            f"gate {cell.gate!r} (NIR neurons emit Heaviside spikes; ns.gates.Smooth "
            "has no NIR equivalent)"
        )
    if cell.v_leak > cell.v_th:
        problems.append(
            f"v_leak={cell.v_leak} > v_th={cell.v_th} (neurosnap's initial state "
            "would be a spike, which a NIR graph cannot start with)"
        )
    if getattr(cell, "refractory_steps", 0):
        problems.append(f"refractory={cell.refractory} (NIR's CubaLIF has no refractory period)")
    if getattr(cell, "delay", 1) > 1:
        problems.append(f"delay={cell.delay} (this export writes undelayed recurrent weights)")
    if getattr(cell, "tau_syn_inh", None) is not None:
        problems.append(f"tau_syn_inh={cell.tau_syn_inh} (NIR's CubaLIF has one synaptic current)")
    if problems:
        raise ValueError("NIR cannot express this LIF configuration: " + "; ".join(problems))


def to_nir(model, params, *, readout: bool = True):
    """Export an LIF network as a ``nir.NIRGraph`` (module docstring: graph, ``tau``/``dt`` mapping).

    Args:
        model: an ``ns.Model`` with an expressible ``ns.cells.LIF`` (:func:`check_expressible`).
        params: its parameters (copied into the graph, in ``model.dtype``); ``cell.w_rec`` in
            the cell's storage, ``(1, n, n)`` or ``(1, nnz)`` (written as the dense ``(n, n)``
            matrix NIR's ``Linear`` holds: ``ValueError`` if that cannot fit in memory).
        readout: include the readout as an ``Affine`` node (the graph's output); if False the graph
            outputs the spikes.

    Returns:
        ``nir.NIRGraph`` with nodes ``input``, ``w_in``, ``lif``, ``w_rec``, ``readout`` (optional),
        ``output``; ``graph.metadata`` holds ``dt`` and the neurosnap model configuration.
    """
    nir = _nir()
    check_expressible(model)
    readout = validate.boolean("readout", readout)
    params = model.check_params(params)
    cell = model.cell
    n, n_in = cell.n_hidden, cell.n_in

    def full(value):  # hyperparameters exactly, in float64
        return np.full(n, value, dtype=np.float64)

    def copy(name):
        return np.array(params[name], dtype=model.dtype, copy=True)

    w_in = copy("cell.w_in")[0]
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    nodes["w_in"] = (
        nir.Affine(weight=w_in, bias=copy("cell.bias")[0])
        if cell.has_bias
        else nir.Linear(weight=w_in)
    )
    nodes["lif"] = nir.CubaLIF(
        tau_syn=full(cell.tau_syn),
        tau_mem=full(cell.tau_mem),
        r=full(1.0),
        v_leak=full(cell.v_leak),
        v_threshold=full(cell.v_th),
        v_reset=full(cell.v_reset),
        w_in=full(cell.tau_syn / cell.dt),
    )
    nodes["w_rec"] = nir.Linear(weight=_dense_recurrent(cell, params["cell.w_rec"], model.dtype))
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif")]
    if readout:
        nodes["readout"] = nir.Affine(weight=copy("readout.weight"), bias=copy("readout.bias"))
        edges += [("lif", "readout"), ("readout", "output")]
        n_output = model.n_out
    else:
        edges += [("lif", "output")]
        n_output = n
    nodes["output"] = nir.Output(output_type={"output": np.array([n_output])})
    metadata = {
        "neurosnap_version": METADATA_VERSION,
        "dt": float(cell.dt),
        "time_unit": "s",
        "neurosnap_model": json.dumps(model_config(model)),
    }
    if cell.connectivity is not None:  # user-given synapses: the description cannot rebuild them
        index = cell.graph.pre_index.dtype
        metadata["neurosnap_post"] = cell.graph.edge_post.astype(index)
        metadata["neurosnap_pre"] = cell.graph.pre_index.copy()
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _dense_recurrent(cell, w_rec, dtype) -> np.ndarray:
    """Gate 0's recurrent weights as a new dense ``(n, n)`` array ``[post, pre]`` in ``dtype``
    (zero off the connectivity), from either storage; ``ValueError`` when it cannot fit in memory
    (NIR's ``Linear`` weights are dense)."""
    n = cell.n_hidden
    if cell.storage == "dense":
        return np.array(w_rec[0], dtype=dtype, copy=True)
    validate.memory(
        "n_hidden",
        n,
        n * n * np.dtype(dtype).itemsize,
        f"the dense ({n}, {n}) recurrent weight matrix of NIR's Linear node (NIR 1.0 has no "
        "sparse weights; the cell's storage='sparse' holds only its synapses)",
    )
    return cell.graph.dense(np.asarray(w_rec[0], dtype=dtype))


def _node_array(node_name, field, values, ndim=None, shape=None):
    """A node's array as finite float64 (``ValueError`` naming node and field otherwise)."""
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"NIR node {node_name!r}: {field} must be an array of numbers, got {str(values)[:60]}"
        ) from None
    if values.ndim == 0:
        values = values.reshape(1)
    if (
        values.size == 0
        or (ndim is not None and values.ndim != ndim)
        or (shape is not None and values.shape != shape)
    ):
        expected = f"shape {shape}" if shape else f"{ndim or 1}-D"
        raise ValueError(
            f"NIR node {node_name!r}: {field} must be a non-empty {expected} array, "
            f"got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"NIR node {node_name!r}: {field} contains NaN or inf")
    return values


def _uniform(node_name, field, values):
    values = np.asarray(values, dtype=np.float64)
    if values.size and not np.all(values == values.flat[0]):
        raise ValueError(
            f"NIR node {node_name!r}: {field} differs between neurons "
            f"(range [{values.min()}, {values.max()}]); neurosnap's LIF has one "
            f"{field} for all units"
        )
    return float(values.flat[0])


def _text(value):
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    return value.decode() if isinstance(value, bytes) else value


def _number(value):
    value = _text(value)
    return None if value is None else float(value)


@validate.guarded
def from_nir(graph, *, dt: float | None = None, storage: str | None = None):
    """Import a NIR graph of the shape :func:`to_nir` writes as ``(model, params)``.

    Args:
        graph: a ``nir.NIRGraph`` or a path to a NIR (HDF5) file (``nir.read``).
        dt: the time step. Default: the graph's ``metadata["dt"]`` (written by :func:`to_nir`);
            required for graphs from other tools, since NIR is continuous-time.
        storage: the cell's recurrent-weight storage, ``"dense"`` (``cell.w_rec`` of shape
            ``(1, n, n)``) or ``"sparse"`` (``(1, nnz)``, one value per synapse in the order of
            ``cell.graph``). Default: the exported model's storage for graphs from
            :func:`to_nir`, else ``"dense"``. For graphs from other tools ``"sparse"`` takes the
            non-zeros of the recurrent weight matrix as the connectivity (``"dense"``: all-to-all,
            ``density=1``); graphs from :func:`to_nir` keep their connectivity in either storage.

    Accepted structure: ``Input -> Linear|Affine -> CubaLIF|LIF [-> Linear -> back to the neuron]
    [-> Linear|Affine readout] -> Output``. A NIR ``LIF`` (no synapse) becomes a neurosnap LIF with
    ``tau_syn = dt`` (its current decays within one step). The neuron's ``w_in`` and ``r`` are folded
    into the weights (row scale ``(dt/tau_syn) w_in r``; exactly 1 for graphs from :func:`to_nir`,
    which are then imported bit for bit). Graphs from :func:`to_nir` come back with the exported
    model configuration; other graphs get an all-to-all LIF (``density=1``, autapses if ``W_rec``
    has a non-zero diagonal; with ``storage="sparse"`` the synapses are ``W_rec``'s non-zeros) with
    a ``"mse"`` readout, zero if the graph has none.

    Raises:
        ValueError: naming the node or parameter neurosnap cannot represent (e.g. an ``LI`` leaky
            readout, per-neuron time constants, several neuron layers), or what is invalid
            (``dt`` or a time constant ``<= 0``, empty or non-finite arrays, arrays of the wrong
            length, metadata that is not a neurosnap model description, a file that is missing or
            not NIR/HDF5).
    """
    nir = _nir()
    if storage is not None:
        validate.choice("storage", storage, ("dense", "sparse"))
    if isinstance(graph, (str, os.PathLike)):
        path = npz.check_file(graph, "NIR")
        try:
            graph = nir.read(path)
        except Exception as exc:  # noqa: BLE001 - h5py/nir raise many types for a foreign file
            raise ValueError(
                f"{path} is not a valid NIR file: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph or a path, got {type(graph).__name__}")
    nodes, edges = graph.nodes, list(graph.edges)
    supported = (nir.Input, nir.Output, nir.Linear, nir.Affine, nir.CubaLIF, nir.LIF)
    for name, node in nodes.items():
        if not isinstance(node, supported):
            what = {
                "LI": "a leaky integrator (e.g. a leaky readout): neurosnap's readout is "
                "instantaneous, o_t = W_out z_t + b",
                "CubaLI": "a current-based leaky integrator (e.g. a leaky readout): "
                "neurosnap's readout is instantaneous",
                "NIRGraph": "a subgraph: flatten it first",
            }.get(type(node).__name__, "not an LIF-network node")
            raise ValueError(
                f"NIR node {name!r} ({type(node).__name__}) cannot be imported: "
                f"{what}. neurosnap imports Input -> Linear/Affine -> CubaLIF/LIF "
                "(+ recurrent Linear) -> [Linear/Affine readout] -> Output"
            )
    neurons = [k for k, v in nodes.items() if isinstance(v, (nir.CubaLIF, nir.LIF))]
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(neurons) != 1 or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"neurosnap imports graphs with one input, one neuron layer (CubaLIF or "
            f"LIF) and one output; got inputs {inputs}, neuron layers {neurons}, "
            f"outputs {outputs}"
        )
    lif_name, in_name, out_name = neurons[0], inputs[0], outputs[0]

    def succ(name):
        return [b for a, b in edges if a == name]

    def pred(name):
        return [a for a, b in edges if b == name]

    w_in_names = succ(in_name)
    if (
        len(w_in_names) != 1
        or not isinstance(nodes[w_in_names[0]], (nir.Linear, nir.Affine))
        or succ(w_in_names[0]) != [lif_name]
        or pred(w_in_names[0]) != [in_name]
    ):
        raise ValueError(
            "the graph's input must feed one Linear/Affine node that feeds the "
            f"neuron layer {lif_name!r}"
        )
    w_in_name = w_in_names[0]
    rec_names = [p for p in pred(lif_name) if p != w_in_name]
    if len(rec_names) > 1 or (
        rec_names
        and (not isinstance(nodes[rec_names[0]], nir.Linear) or pred(rec_names[0]) != [lif_name])
    ):
        raise ValueError(
            f"the neuron layer {lif_name!r} may receive only its input weights and "
            f"one recurrent Linear node from itself; got inputs {pred(lif_name)}"
        )
    after = [s for s in succ(lif_name) if s not in rec_names]
    if len(after) != 1:
        raise ValueError(
            f"the neuron layer {lif_name!r} must feed exactly one readout or output, got {after}"
        )
    readout_name = None
    if after[0] != out_name:
        readout_name = after[0]
        if not isinstance(nodes[readout_name], (nir.Linear, nir.Affine)) or succ(readout_name) != [
            out_name
        ]:
            raise ValueError(
                f"node {readout_name!r} after the neurons must be a Linear/Affine "
                "readout feeding the output"
            )

    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    config = meta.get("neurosnap_model")
    if config is not None:
        try:
            config = json.loads(_text(config))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(
                f"the graph's metadata['neurosnap_model'] is not valid JSON: {str(exc)[:100]}"
            ) from None
    if dt is None:
        try:
            dt = _number(meta.get("dt"))
        except (TypeError, ValueError, AttributeError, OverflowError):
            raise ValueError(
                f"the graph's metadata['dt'] must be a number, got {str(meta.get('dt'))[:60]}"
            ) from None
        if dt is None:
            raise ValueError(
                "dt is needed: NIR is continuous-time and this graph has no "
                "metadata['dt']; call from_nir(graph, dt=...)"
            )
    dt = validate.real("dt", dt, low=0.0, low_open=True)

    lif = nodes[lif_name]
    w_in_node, n = nodes[w_in_name], None
    w_in = _node_array(w_in_name, "weight", w_in_node.weight, ndim=2)
    n, n_in = w_in.shape
    bias = (
        _node_array(w_in_name, "bias", w_in_node.bias, shape=(n,))
        if isinstance(w_in_node, nir.Affine)
        else None
    )
    w_rec = (
        _node_array(rec_names[0], "weight", nodes[rec_names[0]].weight, ndim=2)
        if rec_names
        else np.zeros((n, n), w_in.dtype)
    )
    if w_rec.shape != (n, n):
        raise ValueError(f"recurrent weights must have shape ({n}, {n}), got {w_rec.shape}")
    neuron_fields = (
        ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")
        if isinstance(lif, nir.CubaLIF)
        else ("tau", "r", "v_leak", "v_threshold", "v_reset")
    )
    for field in neuron_fields:
        values = _node_array(lif_name, field, getattr(lif, field, None))
        if values.size not in (1, n):
            raise ValueError(
                f"NIR node {lif_name!r}: {field} must have one value per neuron "
                f"({n}), got shape {values.shape}"
            )
        if field.startswith("tau") and not np.all(values > 0):
            raise ValueError(f"NIR node {lif_name!r}: {field} must be > 0, got min {values.min()}")
    if isinstance(lif, nir.CubaLIF):
        tau_syn = _uniform(lif_name, "tau_syn", lif.tau_syn)
        tau_mem = _uniform(lif_name, "tau_mem", lif.tau_mem)
        syn_w, r = np.asarray(lif.w_in, dtype=np.float64), np.asarray(lif.r, dtype=np.float64)
        # neurosnap's jump per unit of S is (dt/tau_syn) * w_in * r: exactly 1 for to_nir's graphs
        exact = np.all(syn_w == np.float64(tau_syn / dt)) and np.all(r == 1.0)
        gain = None if exact else (dt / tau_syn) * syn_w * r
    else:
        tau_syn, tau_mem = dt, _uniform(lif_name, "tau", lif.tau)
        r = np.asarray(lif.r, dtype=np.float64)
        gain = None if np.all(r == 1.0) else r
    v_leak = _uniform(lif_name, "v_leak", lif.v_leak)
    v_th = _uniform(lif_name, "v_threshold", lif.v_threshold)
    v_reset = _uniform(lif_name, "v_reset", lif.v_reset)
    if gain is not None and not np.all(np.isfinite(gain)):
        raise ValueError(
            f"dt={dt} with the neuron's tau_syn, w_in and r gives a non-finite "
            "weight scale (dt/tau_syn) * w_in * r"
        )
    if gain is not None:
        w_in = gain[:, None] * w_in
        w_rec = gain[:, None] * w_rec
        bias = None if bias is None else gain * bias

    ro = nodes[readout_name] if readout_name else None
    if config is not None:
        if (
            not isinstance(config, dict)
            or config.get("cell") != "LIF"
            or config.get("n_in") != n_in
            or config.get("n_hidden") != n
        ):
            raise ValueError("the graph's metadata['neurosnap_model'] does not match its nodes")
        model = build_model(_imported_config(config, meta, storage))
        described = config.get("cell_options", {}).get("connectivity")
        if (
            isinstance(described, dict)
            and "sha256" in described
            and model.cell.connectivity["sha256"] != described["sha256"]
        ):
            raise ValueError(
                "the graph's metadata['neurosnap_post'/'neurosnap_pre'] synapses differ from "
                "the connectivity its model configuration describes"
            )
    else:
        diag = bool(np.any(np.diag(w_rec) != 0))
        n_out = 1 if ro is None else _node_array(readout_name, "weight", ro.weight, ndim=2).shape[0]
        sparse = {}
        if storage == "sparse":  # the synapses are the non-zero recurrent weights
            import scipy.sparse

            if not np.any(w_rec != 0):
                raise ValueError(
                    "storage='sparse' takes the connectivity from the non-zero recurrent "
                    "weights and this graph has none; use storage='dense'"
                )
            sparse = {"connectivity": scipy.sparse.csr_array(w_rec), "storage": "sparse"}
        try:
            cell = LIF(
                n_in,
                n,
                1.0,
                **sparse,
                dt=dt,
                tau_mem=tau_mem,
                tau_syn=tau_syn,
                v_th=v_th,
                v_leak=v_leak,
                v_reset=v_reset,
                autapses=diag or n < 2,
                bias=bias is not None,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"the graph's neuron parameters do not fit ns.cells.LIF: {exc}"
            ) from None
        model = Model(cell, n_out, loss="mse", dtype=np.float64)
    cell, dtype = model.cell, model.dtype
    for field, value in (
        ("tau_mem", tau_mem),
        ("tau_syn", tau_syn),
        ("v_th", v_th),
        ("v_leak", v_leak),
        ("v_reset", v_reset),
        ("dt", dt),
    ):
        if not np.isclose(getattr(cell, field), value, rtol=1e-12, atol=0):
            raise ValueError(
                f"the graph's {field}={value} differs from its metadata's {getattr(cell, field)}"
            )
    if (bias is not None) != cell.has_bias:
        raise ValueError("the graph's input bias does not match its metadata's bias setting")
    # the synapses' weights, and no non-zero weight elsewhere (graph gathers, no (n, n) mask)
    post, pre = cell.graph.edge_post, cell.graph.pre_index
    values = w_rec[post, pre]
    if np.count_nonzero(values) != np.count_nonzero(w_rec):
        raise ValueError(
            "the graph's recurrent weights are non-zero where the model's "
            "connectivity has no synapse"
        )
    params = {
        "cell.w_in": np.asarray(w_in, dtype=dtype)[None].copy(),
        "cell.w_rec": (
            np.asarray(w_rec, dtype=dtype)[None].copy()
            if cell.storage == "dense"
            else values.astype(dtype)[None]
        ),
    }
    if bias is not None:
        params["cell.bias"] = np.asarray(bias, dtype=dtype)[None].copy()
    if ro is not None:
        weight = _node_array(readout_name, "weight", ro.weight, ndim=2).astype(dtype)
        if weight.shape != (model.n_out, n):
            raise ValueError(
                f"readout weight must have shape ({model.n_out}, {n}), got {weight.shape}"
            )
        params["readout.weight"] = weight
        params["readout.bias"] = (
            _node_array(readout_name, "bias", ro.bias, shape=(model.n_out,)).astype(dtype)
            if isinstance(ro, nir.Affine)
            else np.zeros(model.n_out, dtype)
        )
    else:
        params["readout.weight"] = np.zeros((model.n_out, n), dtype)
        params["readout.bias"] = np.zeros(model.n_out, dtype)
    return model, model.check_params(params)


def _imported_config(config, meta, storage):
    """The exported model configuration with ``storage`` (if given) and, for user-given
    connectivity, the synapses of ``metadata["neurosnap_post"/"neurosnap_pre"]``."""
    options = config.get("cell_options")
    if not isinstance(options, dict):
        return config  # build_model names the problem
    options = dict(options)
    if storage is not None:
        options["storage"] = storage
    if options.get("connectivity") is not None and "neurosnap_pre" in meta:
        if "neurosnap_post" not in meta:
            raise ValueError("the graph's metadata has 'neurosnap_pre' but no 'neurosnap_post'")
        options["connectivity"] = (
            np.asarray(meta["neurosnap_post"]),
            np.asarray(meta["neurosnap_pre"]),
        )
    return {**config, "cell_options": options}
