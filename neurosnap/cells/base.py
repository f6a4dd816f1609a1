"""The recurrent-core interface shared by all cells.

A cell is hyperparameters (static) plus a fixed connectivity (:attr:`Cell.graph`, CSR by
postsynaptic unit); its learnable arrays live in a params dict ``{"w_rec": ..., "w_in": (G, n,
n_in), "bias": (G, n)}`` (bias only if the cell has one). ``w_rec`` has shape ``(G, n, n)`` (zero
off the connectivity) with ``storage="dense"``, the default, and ``(G, nnz)`` -- one value per
existing synapse, in the order of the graph's edges -- with ``storage="sparse"``, whose memory
follows the synapses (``docs/large-networks.md``). Subclasses define one unit's dynamics in :meth:`Cell._local` and its event output in
:meth:`Cell._output`, each with hand-written derivatives; :meth:`Cell.step_record` assembles the
step record of ``docs/theory/rtrl.md`` eq. (1)-(3) from them.
"""

from __future__ import annotations

import abc
import functools
from typing import ClassVar

import numpy as np

from ..core import describe, validate
from ..core.connectivity import connectivity_csr
from ..core.graph import RecurrentGraph, index_dtype
from ..core.layout import ParamLayout
from ..core.record import ParamJacobian, StateJacobian, StepRecord
from ..core.structure import Structure
from .events import EventDrive

#: constructor options left out of a cell's description at their default, so that descriptions
#: (checkpoint signatures, network hashes) written before they existed still match
_QUIET_DEFAULTS = {"connectivity": None, "storage": "dense"}


class Cell(abc.ABC):
    """Base class of recurrent cores. Concrete cells: LeakyRNN, EGRU, LIF, ALIF.

    Args:
        n_in: input size.
        n_hidden: number of units ``n``.
        density: fraction of recurrent weights that exist, in (0, 1]. Each unit receives
            ``max(1, round(density * n))`` recurrent connections chosen at random (seeded by ``seed``).
        seed: seed of the connectivity mask.
        autapses: whether a unit may connect to itself.
        connectivity: the recurrent synapses, instead of the random ones of ``density``/``seed``
            (see :func:`~neurosnap.core.connectivity.connectivity_csr`): a ``scipy.sparse`` matrix or a dense ``(n, n)`` array
            indexed ``[post, pre]`` (its non-zeros), a pair of index arrays ``(post, pre)``, or the
            path of an ``.npz`` file holding either ``post`` and ``pre`` arrays or a matrix saved
            by ``scipy.sparse.save_npz``.
        storage: ``"dense"`` (``w_rec`` of shape ``(G, n, n)``) or ``"sparse"`` (``(G, nnz)``, one
            value per synapse; memory ``O(n + nnz)``, for large networks).
        w_in_scale, w_rec_scale: standard deviations of the initial weights in units of
            ``1/sqrt(fan_in)``.
    """

    state_names: ClassVar[tuple[str, ...]]
    gate_names: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):  # every hyperparameter ends up in config() and repr
            cls.__init__ = describe.record_init(cls.__init__)

    @describe.record_init
    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        density: float = 1.0,
        *,
        seed: int = 0,
        autapses: bool = True,
        bias: bool = True,
        w_in_scale: float = 1.0,
        w_rec_scale: float = 1.0,
        connectivity=None,
        storage: str = "dense",
    ):
        self.n_in = validate.positive_int("n_in", n_in)
        self.n_hidden = validate.positive_int("n_hidden", n_hidden)
        self.density = validate.density("density", density)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        if storage not in ("dense", "sparse"):
            raise ValueError(f"storage must be 'dense' or 'sparse', got {storage!r}")
        self.storage = storage
        G, n = len(self.gate_names), self.n_hidden
        if storage == "dense":  # dense (G, n, n) weights and (n, n) mask
            validate.memory(
                "n_hidden",
                n_hidden,
                n * n * (8 * G + 1),
                f"the dense ({G}, n, n) float64 recurrent weights and the (n, n) mask "
                "(storage='sparse' stores only the existing synapses)",
            )
        validate.memory("n_in", n_in, G * n * self.n_in * 8, f"the ({G}, n, n_in) input weights")
        if not isinstance(autapses, bool):
            raise TypeError(f"autapses must be a bool, got {autapses!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        if not autapses and n_hidden < 2:
            raise ValueError("n_hidden must be >= 2 when autapses=False")
        self.autapses, self.has_bias = autapses, bias
        self.w_in_scale = validate.real("w_in_scale", w_in_scale, low=0.0)
        self.w_rec_scale = validate.real("w_rec_scale", w_rec_scale, low=0.0)
        if connectivity is None:
            if storage == "sparse":
                k = self._in_degree()
                validate.memory("n_hidden", n_hidden, n * k * (8 * G + 4), "the synapses")
            #: the connectivity index (:class:`~neurosnap.core.graph.RecurrentGraph`, CSR by
            #: postsynaptic unit), built once here; every user of the connectivity takes it
            self.graph = RecurrentGraph.from_csr(n, *self._random_csr())
        else:
            if density != 1.0:
                raise ValueError("give density or connectivity, not both")
            self.graph, described = connectivity_csr(connectivity, n, autapses=autapses)
            vars(self)[describe.INIT_ARGS]["connectivity"] = described
            self.density = self.graph.nnz / (n * n)
        #: the connectivity the user gave (its JSON description, see :func:`connectivity_csr`)
        #: or None for the random one of ``density`` and ``seed``
        self.connectivity = None if connectivity is None else described
        if self.graph.nnz == 0:
            raise ValueError("connectivity must hold at least one synapse")
        if storage == "dense":
            self._mask = self.graph.to_mask()
        #: the recurrent drive gathered from events (:class:`~neurosnap.cells.events.EventDrive`),
        #: with its tuning knobs ``crossover`` and ``min_units``
        self.event_drive = EventDrive(self.graph)

    @property
    def mask(self) -> np.ndarray:
        """The connectivity as a dense ``(n, n)`` bool array ``mask[post, pre]`` (kept with
        ``storage="dense"``; built on each call with ``storage="sparse"``, ``n**2`` bytes)."""
        if self.storage == "dense":
            return self._mask
        validate.memory("n_hidden", self.n_hidden, self.n_hidden**2, "a dense (n, n) mask")
        return self.graph.to_mask()

    @property
    def mask_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(post, pre)`` int64 index arrays of the existing recurrent synapses (graph order)."""
        return self.graph.edge_post, self.graph.edge_pre

    @functools.cached_property
    def layout(self) -> ParamLayout:
        """Column numbering of the learnable parameters (:class:`~neurosnap.core.layout.ParamLayout`),
        built on first use (training needs it, simulation does not)."""
        return ParamLayout(
            self.graph,
            len(self.gate_names),
            self.n_in,
            self.has_bias,
            has_threshold=bool(getattr(self, "learn_threshold", False)),
            sparse_rec=self.storage == "sparse",
        )

    # -- connectivity and parameters -------------------------------------------------------------
    @property
    def n_state(self) -> int:
        """Number of state variables per unit, ``S``."""
        return len(self.state_names)

    @property
    def n_gates(self) -> int:
        """Number of recurrent drives ``G`` (each has its own ``w_rec``, ``w_in``, ``bias``)."""
        return len(self.gate_names)

    def structure(self) -> Structure:
        """The cell's public structure for learning rules (:class:`~neurosnap.core.structure.Structure`,
        ``n_out=0``): sizes, connectivity index (``graph``), layout and time step ``dt``
        (``None`` for cells without one)."""
        dt = getattr(self, "dt", None)
        return Structure(
            cell=type(self).__name__,
            n_in=self.n_in,
            n_hidden=self.n_hidden,
            n_state=self.n_state,
            n_out=0,
            graph=self.graph,
            layout=self.layout,
            dt=None if dt is None else float(dt),
        )

    def _in_degree(self) -> int:
        candidates = self.n_hidden if self.autapses else self.n_hidden - 1
        return min(candidates, max(1, int(round(self.density * self.n_hidden))))

    def _random_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Fixed in-degree random connectivity as CSR ``(in_ptr, pre)``, ``O(n k)`` memory; the
        same synapses for both storages (and as neurosnap drew them before sparse storage)."""
        n, k = self.n_hidden, self._in_degree()
        candidates = n if self.autapses else n - 1
        rng = np.random.default_rng(self.seed)
        pre = np.empty(n * k, dtype=index_dtype(n))
        for i in range(n):
            cols = rng.choice(candidates, size=k, replace=False, shuffle=False)
            if not self.autapses:
                cols[cols >= i] += 1  # skip column i
            cols.sort()
            pre[i * k : (i + 1) * k] = cols
        return np.arange(n + 1, dtype=np.int64) * k, pre

    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        """Fresh parameters: Gaussian weights on the existing synapses and zero biases, see
        ``w_*_scale``. Both storages draw the same values (the ``(G, nnz)`` synapse values are
        drawn in chunks straight into ``dtype``, so a large sparse network needs no float64
        copy)."""
        G, n, k = self.n_gates, self.n_hidden, self.n_in
        fan_in = max(1, int(self.graph.fan_in.max()))
        scale = self.w_rec_scale / np.sqrt(fan_in)
        values = np.empty((G, self.graph.nnz), dtype=dtype)  # only existing weights are drawn
        flat = values.reshape(-1)
        chunk = 1 << 22
        for start in range(0, flat.size, chunk):
            part = flat[start : start + chunk]
            part[:] = rng.standard_normal(part.size) * scale
        if self.storage == "dense":
            w_rec = np.zeros((G, n, n), dtype=dtype)
            w_rec[:, self.graph.edge_post, self.graph.edge_pre] = values
        else:
            w_rec = values
        params = {
            "w_rec": w_rec,
            "w_in": rng.standard_normal((G, n, k)) * self.w_in_scale / np.sqrt(k),
        }
        if self.has_bias:
            params["bias"] = np.zeros((G, n))
        return {name: value.astype(dtype, copy=False) for name, value in params.items()}

    # -- the two storages of w_rec ----------------------------------------------------------------
    def dense_w_rec(self, w_rec: np.ndarray) -> np.ndarray:
        """``w_rec`` as a dense ``(G, n, n)`` array (zero off the connectivity), from either
        storage's shape; a dense array is returned as it is."""
        G, n = self.n_gates, self.n_hidden
        w_rec = np.asarray(w_rec)
        if w_rec.shape == (G, n, n):
            return w_rec
        self._check_w_rec(w_rec, (G, self.graph.nnz))
        validate.memory("n_hidden", n, G * n * n * w_rec.itemsize, f"dense ({G}, n, n) weights")
        out = np.zeros((G, n, n), dtype=w_rec.dtype)
        out[:, self.graph.edge_post, self.graph.pre_index] = w_rec
        return out

    def synapse_w_rec(self, w_rec: np.ndarray) -> np.ndarray:
        """``w_rec`` as ``(G, nnz)`` values of the existing synapses in graph order, from either
        storage's shape (a dense array's entries off the connectivity are dropped)."""
        G, n = self.n_gates, self.n_hidden
        w_rec = np.asarray(w_rec)
        if w_rec.shape == (G, self.graph.nnz) and w_rec.ndim == 2:
            return w_rec
        self._check_w_rec(w_rec, (G, n, n))
        return w_rec[:, self.graph.edge_post, self.graph.pre_index]

    def _check_w_rec(self, w_rec, shape):
        if w_rec.shape != shape:
            raise ValueError(
                f"w_rec must have shape {(self.n_gates, self.n_hidden, self.n_hidden)} (dense) or "
                f"{(self.n_gates, self.graph.nnz)} (one value per synapse), got {w_rec.shape}"
            )

    def weight_matrix(self, w_rec: np.ndarray, gate: int = 0):
        """Gate ``gate``'s recurrent weights as a ``scipy.sparse.csr_array`` of shape ``(n, n)``
        indexed ``[post, pre]`` (from either storage), e.g. to analyse or plot them."""
        import scipy.sparse

        values = self.synapse_w_rec(w_rec)[gate]
        n = self.n_hidden
        return scipy.sparse.csr_array(
            (values, self.graph.pre_index, self.graph.in_ptr), shape=(n, n)
        )

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the cell's parameter arrays, by name (``w_rec`` by :attr:`storage`)."""
        G, n, k = self.n_gates, self.n_hidden, self.n_in
        rec = (G, n, n) if self.storage == "dense" else (G, self.graph.nnz)
        shapes: dict[str, tuple[int, ...]] = {"w_rec": rec, "w_in": (G, n, k)}
        if self.has_bias:
            shapes["bias"] = (G, n)
        return shapes

    def initial_state(self, batch: int, dtype=np.float64) -> np.ndarray:
        """State before the first step, shape ``(B, S, n)``; zeros unless a cell says otherwise."""
        return np.zeros((batch, self.n_state, self.n_hidden), dtype=dtype)

    # -- one step --------------------------------------------------------------------------------
    def step(self, params: dict, state: np.ndarray, x: np.ndarray):
        """One step: ``(state (B, S, n), x (B, n_in)) -> (new_state (B, S, n), out (B, n))``."""
        y_prev = self._drive_output(state, jac=False, params=params)[0]
        rec, inp = self._drives(params, y_prev, x)
        new, *_ = self._loc(params, state, rec, inp, jac=False)
        return new, self._out(params, new, jac=False)[0]

    def step_record(self, params: dict, state: np.ndarray, x: np.ndarray):
        """One step with its :class:`~neurosnap.core.record.StepRecord`.

        Args:
            params: the cell's parameter dict.
            state: shape ``(B, S, n)``.
            x: shape ``(B, n_in)``.

        Returns:
            ``(new_state (B, S, n), out (B, n), record)``.
        """
        y_prev, dout_prev, _ = self._drive_output(state, jac=True, params=params)
        rec, inp = self._drives(params, y_prev, x)
        new, local, drec, dinp = self._loc(params, state, rec, inp, jac=True)
        y, dout, events = self._out(params, new, jac=True)
        thr = self._threshold_terms(params, state, new, rec, inp)  # learned thresholds only
        dthr, dy_thr_prev, dy_thr = (None, None, None) if thr is None else thr
        record = StepRecord(
            events=events,
            support=np.any(dout != 0, axis=1),
            dout=dout,
            jac_state=StateJacobian(
                local=local, drec=drec, w_rec=params["w_rec"], dout=dout_prev, graph=self.graph
            ),
            jac_params=ParamJacobian(
                drec=drec, dinp=dinp, y_prev=y_prev, x=x, dthr=dthr, dy_thr_prev=dy_thr_prev
            ),
            dy_thr=dy_thr,
        )
        return new, y, record

    def output(self, state: np.ndarray, params: dict | None = None):
        """Event output of a state ``(B, S, n)``: ``(y (B, n), events (B, n) bool)``; ``params`` (the
        cell's parameter dict) is needed only by cells with learned output parameters (EGRU with
        ``learn_threshold=True``)."""
        y, _, events = self._out(params, state, jac=True)
        return y, events

    # hooks for cells whose local dynamics or output read parameters other than the weights
    # (EGRU with learn_threshold=True); the default ignores ``params``
    def _out(self, params, state, jac: bool):
        return self._output(state, jac)

    def _loc(self, params, state, rec, inp, jac: bool):
        return self._local(state, rec, inp, jac)

    def _threshold_terms(self, params, state, new, rec, inp):
        """``(dthr (B, S, n), dy_thr_prev (B, n), dy_thr (B, n))`` for a learned threshold, else
        None (see :class:`~neurosnap.core.record.ParamJacobian`)."""

    def _drives(self, params, y_prev, x):
        # W_rec @ y_prev gathered from the units with non-zero output when that is cheaper than
        # the dense product (neurosnap.cells.events.EventDrive); equal to round-off
        rec = self.event_drive(params["w_rec"], y_prev)  # (B, G, n)
        inp = np.matmul(params["w_in"], x.T).transpose(2, 0, 1)
        if self.has_bias:
            inp = inp + params["bias"]
        return rec, inp

    @abc.abstractmethod
    def _local(self, state, rec, inp, jac: bool):
        """Per-unit update.

        Args:
            state: shape ``(B, S, n)``, the previous state.
            rec, inp: shape ``(B, G, n)``, recurrent drive ``W_rec y_{t-1}`` and input drive
                ``W_in x_t + b``.

        Returns:
            ``(new_state (B, S, n), local (B, S, S, n), drec (B, S, G, n), dinp (B, S, G, n))``; the
            three derivatives are ``None`` when ``jac`` is False.
        """

    @abc.abstractmethod
    def _output(self, state, jac: bool):
        """Event output of a state: ``(y (B, n), dout (B, S, n) or None, events (B, n) bool)``."""

    def _drive_output(self, state, jac: bool, params=None):
        """What the recurrent synapses transmit from a state, same returns as :meth:`_output`; the
        event output itself unless transmission is delayed (LIF/ALIF ``delay > 1``)."""
        return self._out(params, state, jac)

    def config(self) -> dict:
        """Every constructor argument of this cell (defaults included) as JSON data, under
        ``"type"`` the class name; gates appear as ``{"type": "Heaviside", "surrogate": ...}``."""
        config = describe.plain(self)
        for key, default in _QUIET_DEFAULTS.items():  # as written before these options existed
            if config.get(key, default) == default:
                config.pop(key, None)
        return config

    def compiled_spec(self):
        """What the compiled engine (:mod:`neurosnap.engine`) needs to run this cell, or ``None``
        when it does not cover the cell (it then runs the reference NumPy path).

        Returns:
            ``(cell_code, gate_code, gate_params (2,), hyper (10,))``: integer codes of
            :mod:`neurosnap.engine.codes` and float64 hyperparameters. The cell's NumPy
            dynamics stay the reference the compiled step is tested against.
        """

    def __repr__(self):
        args = ", ".join(
            f"{k}={v!r}"
            for k, v in describe.init_args(self).items()
            if not (k in _QUIET_DEFAULTS and v == _QUIET_DEFAULTS[k])
        )
        return f"{type(self).__name__}({args})"
