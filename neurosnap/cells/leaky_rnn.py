"""Leaky tanh RNN: ``h_t = (1 - alpha) h_{t-1} + alpha tanh(W_rec h_{t-1} + W_in x_t + b)``.

Smooth and dense in time (every unit "emits" every step), the simplest cell; equations in
``docs/theory/cells.md`` eq. (1).
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from .base import Cell


class LeakyRNN(Cell):
    """Leaky tanh RNN, one state variable ``h`` and one gate.

    Args:
        n_in, n_hidden, density: see :class:`~neurosnap.cells.base.Cell`.
        alpha: leak in (0, 1]; ``alpha=1`` gives the plain tanh RNN.
        **kwargs: ``seed``, ``autapses``, ``bias``, ``w_in_scale``, ``w_rec_scale``.

    State shape ``(B, 1, n)``; output ``h`` of shape ``(B, n)``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> cell = ns.cells.LeakyRNN(n_in=3, n_hidden=6, alpha=0.5)
        >>> xs = np.random.default_rng(0).normal(size=(40, 2, 3))
        >>> model = ns.Model(cell, n_out=2)
        >>> params = model.init(seed=0)
        >>> {k: v.shape for k, v in params.items() if k.startswith("cell.")}
        {'cell.w_rec': (1, 6, 6), 'cell.w_in': (1, 6, 3), 'cell.bias': (1, 6)}
        >>> traj = model.run(params, xs)
        >>> traj.events.shape                # (T, B, n_hidden), which units emitted an event
        (40, 2, 6)
        >>> bool(traj.events.all())          # every unit "emits" every step: no activity sparsity
        True
    """

    state_names = ("h",)
    gate_names = ("h",)

    def __init__(
        self, n_in: int, n_hidden: int, density: float = 1.0, *, alpha: float = 1.0, **kwargs
    ):
        self.alpha = validate.real("alpha", alpha, low=0.0, high=1.0, low_open=True)
        super().__init__(n_in, n_hidden, density, **kwargs)

    def _local(self, state, rec, inp, jac):
        a = self.alpha
        phi = np.tanh(rec[:, 0] + inp[:, 0])
        new = ((1 - a) * state[:, 0] + a * phi)[:, None, :]
        if not jac:
            return new, None, None, None
        local = np.full((state.shape[0], 1, 1, state.shape[2]), 1 - a, dtype=state.dtype)
        dphi = (a * (1 - phi * phi))[:, None, None, :]
        return new, local, dphi, dphi.copy()

    def _output(self, state, jac):
        y = state[:, 0]
        if not jac:
            return y, None, None
        return y, np.ones_like(state), np.ones(y.shape, dtype=bool)

    def compiled_spec(self):
        """See :meth:`~neurosnap.cells.base.Cell.compiled_spec`; ``hyper = [alpha]``."""
        if type(self) is not LeakyRNN:
            return None
        from ..engine import codes

        hyper = np.zeros(10)
        hyper[0] = self.alpha
        return codes.LEAKY, codes.TRIANGLE, np.zeros(2), hyper
