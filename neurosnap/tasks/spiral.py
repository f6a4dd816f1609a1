"""Two-class spiral sequences (arXiv 2303.05641's task, from its code).

``x1 = sin(t + phi) / (1 + t)``, ``x2 = cos(t + phi) / (1 + t)`` for ``t`` in ``linspace(0, 2 pi, L)``
and ``phi ~ U(0, 2 pi)``; class 0 flips the sign of ``x1`` (the two classes turn in opposite
directions). The label is read at the last step only (the loss mask is on at ``t = L - 1``).
A fixed data set of ``n_samples`` sequences (seeded) is split 70/15/15 into train/val/test;
:meth:`Spiral.sample` draws from the training split. Metric: accuracy.
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task


class Spiral(Task):
    """Spiral classification (see module docstring).

    Args:
        length: sequence length ``L`` (default 17).
        n_samples: size of the data set (default 10,000).
        seed: seed of the data set and its split.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Spiral(n_samples=200)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((17, 4, 2), (17, 4), (17, 4))
    """

    n_in, n_out, loss, metric = 2, 2, "cross_entropy", "accuracy"

    def __init__(self, length: int = 17, n_samples: int = 10_000, seed: int = 0):
        self.length = validate.positive_int("length", length, minimum=2)
        self.n_samples = validate.positive_int("n_samples", n_samples, minimum=10)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        validate.memory(
            "length * n_samples",
            self.length * self.n_samples,
            self.length * self.n_samples * 6 * 8,
            "the data set (inputs and phases)",
        )
        rng = np.random.default_rng(self.seed)
        labels = rng.integers(0, 2, self.n_samples)
        phase = rng.uniform(0, 2 * np.pi, self.n_samples)
        t = np.linspace(0, 2 * np.pi, self.length)[:, None]
        x1 = np.sin(t + phase) / (1 + t)
        x1 = np.where(labels == 0, -x1, x1)
        x2 = np.cos(t + phase) / (1 + t)
        self.xs = np.stack([x1, x2], axis=-1)  # (L, N, 2)
        self.labels = labels
        order = rng.permutation(self.n_samples)
        n_train, n_val = int(0.7 * self.n_samples), int(0.15 * self.n_samples)
        self.splits = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }

    def batch(self, indices: np.ndarray) -> Batch:
        """The batch made of data-set rows ``indices``."""
        L, B = self.length, len(indices)
        ys = np.zeros((L, B), dtype=np.int64)
        ys[-1] = self.labels[indices]
        mask = np.zeros((L, B), dtype=bool)
        mask[-1] = True
        return Batch(xs=self.xs[:, indices], ys=ys, mask=mask)

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        return self.batch(rng.choice(self.splits["train"], size=batch_size))

    def evaluate(self, model, params) -> dict:
        """Accuracy on the validation and test splits (label read at the last step)."""
        out = {}
        for name in ("val", "test"):
            batch = self.split(name)
            logits = model.run(params, batch.xs).outputs[-1]
            out[f"{name}_accuracy"] = float((logits.argmax(-1) == batch.ys[-1]).mean())
        return out

    def split(self, name: str) -> Batch:
        """The whole ``"train"``, ``"val"`` or ``"test"`` split as one batch."""
        validate.choice("split", name, self.splits)
        return self.batch(self.splits[name])
