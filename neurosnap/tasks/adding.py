"""Adding problem (Hochreiter & Schmidhuber 1997), in the version of Le, Jaitly & Hinton 2015 (IRNN).

Each of the ``T = length`` steps has a 2-D input: a value ``u_t ~ U[0, 1]`` and a marker
``m_t in {0, 1}``. Exactly two markers are 1: one at a uniformly drawn step of the first half
``[0, T // 2)`` and one in the second half ``[T // 2, T)``. The target, read only at the last step
(the loss mask is on at ``t = T - 1`` only), is the sum of the two marked values; one output
(``n_out = 1``), mean-squared error (the per-step loss is ``0.5 (o - y)^2``).

Metric: ``mse`` = mean of ``(o_{T-1} - y)^2`` over the batch. Baseline: always predicting 1 (the
mean of the target) gives ``Var(u_1 + u_2) = 2 / 12 = 1/6 ~ 0.167`` (:data:`BASELINE_MSE`;
papers quote ~0.17); a model solves the task when it gets far below that. Usual lengths are
``T = 100, 200, 400, 750`` (Le et al.) and 1000+ in later work.

Held-out set: :meth:`Adding.evaluate` reports ``test_mse`` on ``eval_size`` fixed sequences.
Small configuration (tests): :meth:`Adding.small` (``length=10``).
The standard definition, as in Le, Jaitly & Hinton (2015).
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task

#: MSE of the best constant prediction (1): ``Var(U1 + U2) = 1/6``.
BASELINE_MSE = 1.0 / 6.0


class Adding(_common.HeldOut, Task):
    """Adding problem (see module docstring).

    Args:
        length: sequence length ``T >= 2``.
        eval_size: number of held-out sequences used by :meth:`evaluate` (0: no evaluation).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Adding(length=20)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((20, 4, 2), (20, 4, 1), (20, 4))
    """

    n_in, n_out, loss, metric = 2, 1, "mse", "mse"
    SMALL = {"length": 10, "eval_size": 64}

    def __init__(self, length: int = 100, eval_size: int = 256):
        self.length = validate.positive_int("length", length, minimum=2)
        self.eval_size = validate.positive_int("eval_size", eval_size, minimum=0)

    @classmethod
    def small(cls, **overrides) -> Adding:
        """The fast configuration used by the tests (:attr:`SMALL`), with ``overrides`` applied."""
        return cls(**{**cls.SMALL, **overrides})

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        T, half = self.length, self.length // 2
        values = rng.uniform(0.0, 1.0, size=(T, batch_size))
        first = rng.integers(0, half, size=batch_size)
        second = rng.integers(half, T, size=batch_size)
        cols = np.arange(batch_size)
        markers = np.zeros((T, batch_size))
        markers[first, cols] = 1.0
        markers[second, cols] = 1.0
        xs = np.stack([values, markers], axis=-1)
        ys = np.zeros((T, batch_size, 1))
        ys[-1, :, 0] = values[first, cols] + values[second, cols]
        mask = np.zeros((T, batch_size), dtype=bool)
        mask[-1] = True
        return Batch(xs=xs, ys=ys, mask=mask)

    def metrics(self, batch, logits, losses) -> dict:
        """``loss`` (per masked step) and ``mse`` (mean squared error on the masked steps)."""
        m = batch.mask
        count = max(1, int(m.sum()))
        err = ((logits - batch.ys) ** 2).mean(axis=-1)
        return {"loss": float(losses[m].sum() / count), "mse": float(err[m].sum() / count)}
