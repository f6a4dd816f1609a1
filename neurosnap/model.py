"""A recurrent cell plus a linear readout and a per-step loss."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .cells.base import Cell
from .core import validate
from .core.structure import Structure
from .losses import LOSSES, per_example_loss_and_grad


@dataclass(frozen=True)
class Trajectory:
    """Result of :meth:`Model.run`.

    Attributes:
        outputs: shape ``(T, B, n_out)``, readout of every step.
        hidden: shape ``(T, B, n)``, the cell's output (events for threshold cells).
        events: shape ``(T, B, n)`` bool, units that emitted an event.
        states: shape ``(T, B, S, n)``, cell state after every step.
    """

    outputs: np.ndarray
    hidden: np.ndarray
    events: np.ndarray
    states: np.ndarray


class Model:
    """A cell with a linear readout ``o_t = W_out y_t + b_out`` and a per-step loss.

    Args:
        cell: a :class:`~neurosnap.cells.base.Cell`.
        n_out: readout size.
        loss: ``"cross_entropy"`` (targets ``(T, B)`` ints) or ``"mse"`` (targets ``(T, B, n_out)``).
        dtype: ``np.float64`` (default, exactness) or ``np.float32`` (speed), same code path.

    Parameters are a flat dict with dotted names: ``cell.w_rec (G, n, n)`` (``(G, nnz)`` for a
    cell with ``storage="sparse"``), ``cell.w_in (G, n, n_in)``,
    ``cell.bias (G, n)`` (if the cell has a bias), ``cell.threshold (n,)`` (EGRU with
    ``learn_threshold=True``, raw: the threshold is its sigmoid), ``readout.weight (n_out, n)``,
    ``readout.bias (n_out,)``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> model = ns.Model(ns.cells.EGRU(n_in=3, n_hidden=8), n_out=2, loss="cross_entropy")
        >>> params = model.init(seed=0)
        >>> sorted(params)
        ['cell.bias', 'cell.w_in', 'cell.w_rec', 'readout.bias', 'readout.weight']
        >>> traj = model.run(params, np.random.default_rng(0).normal(size=(5, 2, 3)))  # (T, B, n_in)
        >>> traj.outputs.shape, traj.events.shape
        ((5, 2, 2), (5, 2, 8))
    """

    def __init__(self, cell: Cell, n_out: int, loss: str = "cross_entropy", dtype=np.float64):
        if not isinstance(cell, Cell):
            raise TypeError(
                f"cell must be a neurosnap cell (ns.cells.*), got {type(cell).__name__}"
            )
        self.cell = cell
        self.n_out = validate.positive_int("n_out", n_out)
        self.loss = validate.choice("loss", loss, LOSSES)
        if self.loss == "cross_entropy" and self.n_out < 2:
            raise ValueError(f"n_out must be >= 2 for loss='cross_entropy', got {n_out}")
        self.dtype = validate.dtype("dtype", dtype)

    # -- parameters ------------------------------------------------------------------------------
    @validate.guarded
    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Fresh parameters (see class docstring), deterministic in ``seed``; ``FloatingPointError``
        if a weight scale overflows the dtype."""
        seed = validate.positive_int("seed", seed, minimum=0)
        rng = np.random.default_rng(seed)
        params = {f"cell.{k}": v for k, v in self.cell.init_params(rng, self.dtype).items()}
        n = self.cell.n_hidden
        params["readout.weight"] = (rng.standard_normal((self.n_out, n)) / np.sqrt(n)).astype(
            self.dtype
        )
        params["readout.bias"] = np.zeros(self.n_out, dtype=self.dtype)
        validate.finite("Model.init", **params)
        return params

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of every parameter, by name."""
        shapes = {f"cell.{k}": v for k, v in self.cell.param_shapes().items()}
        shapes["readout.weight"] = (self.n_out, self.cell.n_hidden)
        shapes["readout.bias"] = (self.n_out,)
        return shapes

    def check_params(self, params) -> dict[str, np.ndarray]:
        """Validate a params dict (names, shapes, finite values, dtype) and return it with every
        array C-contiguous (a new dict; arrays already C-contiguous are not copied)."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        expected = self.param_shapes()
        if set(params) != set(expected):
            missing = sorted(set(expected) - set(params))
            extra = sorted(set(params) - set(expected), key=repr)
            raise ValueError(f"params has the wrong keys: missing {missing}, unexpected {extra}")
        checked = {}
        for name, shape in expected.items():
            value = params[name]
            if not isinstance(value, np.ndarray):
                raise TypeError(
                    f"params[{name!r}] must be a numpy array, got {type(value).__name__}"
                )
            # C-contiguous (a copy only when the layout differs): same numbers, same bits
            checked[name] = validate.array(f"params[{name!r}]", value, shape=shape)
            if value.dtype != self.dtype:
                raise TypeError(f"params[{name!r}] must have dtype {self.dtype}, got {value.dtype}")
        params = checked
        w_rec = params["cell.w_rec"]
        # dense storage: non-zeros anywhere == non-zeros on the mask, without an O(n^2) boolean
        # gather (synapse values of storage="sparse" exist by construction)
        post, pre = self.cell.mask_indices if w_rec.ndim == 3 else (None, None)
        if w_rec.ndim == 3 and np.count_nonzero(w_rec) != np.count_nonzero(w_rec[:, post, pre]):
            raise ValueError(
                "params['cell.w_rec'] must be zero where cell.mask is False "
                "(weights that do not exist)"
            )
        return params

    def grads_dict(
        self, core: np.ndarray, readout_weight: np.ndarray, readout_bias: np.ndarray
    ) -> dict[str, np.ndarray]:
        """A gradient dict with the keys and shapes of the params from a rule's flat ``(P,)`` cell
        gradient (:class:`~neurosnap.core.layout.ParamLayout` order) and the readout gradients."""
        grads = {f"cell.{k}": v for k, v in self.cell.layout.to_dict(core, self.dtype).items()}
        grads["readout.weight"] = readout_weight
        grads["readout.bias"] = readout_bias
        return grads

    @staticmethod
    def cell_params(params) -> dict[str, np.ndarray]:
        """The ``cell.*`` entries without their prefix."""
        return {k[5:]: v for k, v in params.items() if k.startswith("cell.")}

    # -- inputs ----------------------------------------------------------------------------------
    def check_inputs(self, xs, ys=None, mask=None):
        """Validate ``xs (T, B, n_in)``, ``ys`` and ``mask (T, B)``; return them as arrays."""
        xs = validate.array("xs", xs, ndim=3, dtype=self.dtype)
        T, B, k = xs.shape
        if k != self.cell.n_in:
            raise ValueError(f"xs must have shape (T, B, n_in={self.cell.n_in}), got {xs.shape}")
        if ys is not None:
            if self.loss == "cross_entropy":
                ys = validate.array("ys", ys, shape=(T, B), integer=True)
                if ys.min() < 0 or ys.max() >= self.n_out:
                    raise ValueError(
                        f"ys must hold class indices in [0, {self.n_out}), got range "
                        f"[{ys.min()}, {ys.max()}]"
                    )
            else:
                ys = validate.array("ys", ys, shape=(T, B, self.n_out), dtype=self.dtype)
        if mask is None:
            mask = np.ones((T, B), dtype=bool)
        else:
            mask = validate.array("mask", mask, shape=(T, B))
            if mask.dtype != np.bool_:
                if not np.all((mask == 0) | (mask == 1)):
                    raise ValueError("mask must be boolean (or 0/1), shape (T, B)")
                mask = mask.astype(bool)
        return xs, ys, mask

    # -- forward ---------------------------------------------------------------------------------
    def readout(self, params, y: np.ndarray) -> np.ndarray:
        """Readout ``(B, n) -> (B, n_out)``."""
        return y @ params["readout.weight"].T + params["readout.bias"]

    def step_loss(self, params, y, target, mask_t):
        """Loss of one step and its credits.

        Returns:
            ``(losses (B,), logits (B, n_out), dlogits (B, n_out), dy (B, n))``: per-example loss
            (zero where masked out) and the gradients ``dloss/dlogits``, ``dloss/dy``.
        """
        logits = self.readout(params, y)
        losses, dlogits = per_example_loss_and_grad(self.loss, logits, target)
        m = mask_t.astype(logits.dtype)
        dlogits = dlogits * m[:, None]
        return losses * m, logits, dlogits, dlogits @ params["readout.weight"]

    @validate.guarded
    def run(self, params, xs) -> Trajectory:
        """Run the model over ``xs`` of shape ``(T, B, n_in)`` from the initial state.

        Raises ``FloatingPointError`` if a state or output becomes NaN or inf, and ``ValueError``
        if the trajectory would not fit in memory."""
        params = self.check_params(params)
        xs, _, _ = self.check_inputs(xs)
        T, B, _ = xs.shape
        n, S = self.cell.n_hidden, self.cell.n_state
        validate.memory(
            "xs",
            f"shape {xs.shape}",
            T * B * (S + 1) * n * self.dtype.itemsize,
            f"the trajectory (T, B, S={S}, n={n}) of states and outputs",
        )
        cp = self.cell_params(params)
        state = self.cell.initial_state(B, self.dtype)
        hidden = np.empty((T, B, n), self.dtype)
        states = np.empty((T, B, S, n), self.dtype)
        for t in range(T):
            state, hidden[t] = self.cell.step(cp, state, xs[t])
            states[t] = state
        outputs = hidden @ params["readout.weight"].T + params["readout.bias"]
        events = self.cell.output(states.reshape(T * B, S, n), cp)[1].reshape(T, B, n)
        validate.finite("Model.run", states=states, outputs=outputs)
        return Trajectory(outputs=outputs, hidden=hidden, events=events, states=states)

    def structure(self) -> Structure:
        """What learning rules may know of the model besides its step records: the cell's
        :meth:`~neurosnap.cells.base.Cell.structure` with ``n_out`` filled in."""
        return replace(self.cell.structure(), n_out=self.n_out)

    def config(self) -> dict:
        """Every setting of the model as JSON data: the cell's :meth:`~neurosnap.cells.base.Cell.config`,
        ``n_out``, ``loss`` and ``dtype``."""
        return {
            "cell": self.cell.config(),
            "n_out": self.n_out,
            "loss": self.loss,
            "dtype": np.dtype(self.dtype).name,
        }

    def __repr__(self):
        return f"Model({self.cell!r}, n_out={self.n_out}, loss={self.loss!r}, dtype={self.dtype})"
