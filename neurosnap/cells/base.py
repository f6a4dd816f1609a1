"""The recurrent-core interface shared by all cells.

A cell is hyperparameters (static) plus a fixed connectivity mask; its learnable arrays live in a
params dict ``{"w_rec": (G, n, n), "w_in": (G, n, n_in), "bias": (G, n)}`` (bias only if the cell
has one). Subclasses define one unit's dynamics in :meth:`Cell._local` and its event output in
:meth:`Cell._output`, each with hand-written derivatives; :meth:`Cell.step_record` assembles the
step record of ``docs/theory/rtrl.md`` eq. (1)-(3) from them.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from ..core import describe, validate
from ..core.graph import RecurrentGraph
from ..core.layout import ParamLayout
from ..core.record import ParamJacobian, StateJacobian, StepRecord
from ..core.structure import Structure
from .events import EventDrive


class Cell(abc.ABC):
    """Base class of recurrent cores. Concrete cells: LeakyRNN, EGRU, LIF, ALIF.

    Args:
        n_in: input size.
        n_hidden: number of units ``n``.
        density: fraction of recurrent weights that exist, in (0, 1]. Each unit receives
            ``max(1, round(density * n))`` recurrent connections chosen at random (seeded by ``seed``).
        seed: seed of the connectivity mask.
        autapses: whether a unit may connect to itself.
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
    ):
        self.n_in = validate.positive_int("n_in", n_in)
        self.n_hidden = validate.positive_int("n_hidden", n_hidden)
        self.density = validate.density("density", density)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        G, n = len(self.gate_names), self.n_hidden  # dense (G, n, n) weights and (n, n) mask
        validate.memory(
            "n_hidden",
            n_hidden,
            n * n * (8 * G + 1),
            f"the dense ({G}, n, n) float64 recurrent weights and the (n, n) mask",
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
        self.mask = self._make_mask()
        #: ``(post, pre)`` index arrays of the existing recurrent weights
        self.mask_indices = np.nonzero(self.mask)
        #: the connectivity index (:class:`~neurosnap.core.graph.RecurrentGraph`), built once here;
        #: the event drive, the sparse engine, SnAp, the cost counters and the compiled loops use it
        self.graph = RecurrentGraph(self.mask)
        self.layout = ParamLayout(
            self.mask,
            len(self.gate_names),
            self.n_in,
            self.has_bias,
            has_threshold=bool(getattr(self, "learn_threshold", False)),
        )
        #: the recurrent drive gathered from events (:class:`~neurosnap.cells.events.EventDrive`),
        #: with its tuning knobs ``crossover`` and ``min_units``
        self.event_drive = EventDrive(self.graph)

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
        ``n_out=0``): sizes, mask, connectivity index (``graph``), layout and time step ``dt``
        (``None`` for cells without one)."""
        dt = getattr(self, "dt", None)
        return Structure(
            cell=type(self).__name__,
            n_in=self.n_in,
            n_hidden=self.n_hidden,
            n_state=self.n_state,
            n_out=0,
            mask=self.mask,
            graph=self.graph,
            layout=self.layout,
            dt=None if dt is None else float(dt),
        )

    def _make_mask(self) -> np.ndarray:
        n = self.n_hidden
        candidates = n if self.autapses else n - 1
        k = min(candidates, max(1, int(round(self.density * n))))
        rng = np.random.default_rng(self.seed)
        mask = np.zeros((n, n), dtype=bool)
        for i in range(n):
            cols = rng.choice(candidates, size=k, replace=False, shuffle=False)
            if not self.autapses:
                cols[cols >= i] += 1  # skip column i
            mask[i, cols] = True
        return mask

    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        """Fresh parameters: Gaussian weights (masked) and zero biases, see ``w_*_scale``."""
        G, n, k = self.n_gates, self.n_hidden, self.n_in
        fan_in = max(1, int(self.mask.sum(axis=1).max()))
        post, pre = self.mask_indices
        w_rec = np.zeros((G, n, n), dtype=dtype)  # only existing weights are drawn
        w_rec[:, post, pre] = (
            rng.standard_normal((G, len(post))) * self.w_rec_scale / np.sqrt(fan_in)
        )
        params = {
            "w_rec": w_rec,
            "w_in": rng.standard_normal((G, n, k)) * self.w_in_scale / np.sqrt(k),
        }
        if self.has_bias:
            params["bias"] = np.zeros((G, n))
        return {name: value.astype(dtype, copy=False) for name, value in params.items()}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the cell's parameter arrays, by name."""
        G, n, k = self.n_gates, self.n_hidden, self.n_in
        shapes: dict[str, tuple[int, ...]] = {"w_rec": (G, n, n), "w_in": (G, n, k)}
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
            jac_state=StateJacobian(local=local, drec=drec, w_rec=params["w_rec"], dout=dout_prev),
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
        return describe.plain(self)

    def compiled_spec(self):
        """What the compiled engine (:mod:`neurosnap.engine`) needs to run this cell, or ``None``
        when it does not cover the cell (it then runs the reference NumPy path).

        Returns:
            ``(cell_code, gate_code, gate_params (2,), hyper (10,))``: integer codes of
            :mod:`neurosnap.engine.codes` and float64 hyperparameters. The cell's NumPy
            dynamics stay the reference the compiled step is tested against.
        """

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in describe.init_args(self).items())
        return f"{type(self).__name__}({args})"
