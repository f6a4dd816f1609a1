"""Sequential digits: scikit-learn's 8x8 handwritten digits read row by row.

The data set bundled with scikit-learn (``sklearn/datasets/data/digits.csv.gz``; a copy of the UCI
"Optical Recognition of Handwritten Digits" test set): 1,797 grey-level images of 8 x 8 pixels with
values 0..16, 10 classes (about 180 each). An image is a sequence of ``T = 8`` steps whose input is
one row of 8 pixels scaled to ``[0, 1]`` (``n_in = 8``). The label (``n_out = 10``) is read at the
last step only (the loss mask is on at ``t = 7``); cross-entropy.

There is no official split: a permutation drawn from ``seed`` splits the images into
train / validation / test (default 70 / 15 / 15 %, i.e. 1,259 / 269 / 269). :meth:`Digits.sample`
draws (with replacement) from the training split only.

Metric: ``accuracy`` at the last step; :meth:`Digits.evaluate` gives ``val_accuracy`` and
``test_accuracy`` (and the losses) on the whole validation and test splits. Chance is 0.1.
The task is already small (the default is the test configuration; :meth:`Digits.small` returns it).

The file is read directly, without importing scikit-learn (which takes seconds); it needs the
``scikit-learn`` package installed. Data: scikit-learn's ``load_digits`` (Alpaydin & Kaynak,
UCI 1998).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 8, 8) float64 in [0, 1], labels (1797,) int64)`` from scikit-learn's file."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the digits task needs scikit-learn: pip install scikit-learn")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if os.path.exists(path):
        with gzip.open(path, "rt") as f:
            data = np.loadtxt(f, delimiter=",")
        X, y = data[:, :-1], data[:, -1]
    else:  # a future layout: fall back to the public loader
        from sklearn.datasets import load_digits as sk_load_digits

        X, y = sk_load_digits(return_X_y=True)
    images = (np.asarray(X, dtype=np.float64) / 16.0).reshape(-1, 8, 8)
    images.setflags(write=False)
    labels = np.asarray(y, dtype=np.int64)
    labels.setflags(write=False)
    return images, labels


class Digits(Task):
    """Row-by-row sequential digits (see module docstring).

    Args:
        seed: seed of the train / validation / test split.
        val_fraction, test_fraction: sizes of the held-out splits (each in (0, 1), sum < 1).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Digits(seed=0)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((8, 4, 8), (8, 4), (8, 4))
    """

    n_in, n_out, loss, metric = 8, 10, "cross_entropy", "accuracy"
    SMALL: dict = {}

    def __init__(self, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15):
        self.seed = validate.positive_int("seed", seed, minimum=0)
        self.val_fraction = validate.real(
            "val_fraction", val_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.test_fraction = validate.real(
            "test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
            )
        images, self.labels = load_digits()
        self.xs = np.ascontiguousarray(images.transpose(1, 0, 2))  # (8, N, 8): rows as steps
        N = len(self.labels)
        order = np.random.default_rng(self.seed).permutation(N)
        n_val, n_test = int(round(self.val_fraction * N)), int(round(self.test_fraction * N))
        n_train = N - n_val - n_test
        self.splits = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        self._heldout: dict[str, object] = {}

    @classmethod
    def small(cls, **overrides) -> Digits:
        """The configuration used by the tests (the default one), with ``overrides`` applied."""
        return cls(**{**cls.SMALL, **overrides})

    def batch(self, indices: np.ndarray) -> Batch:
        """The batch made of data-set rows ``indices``."""
        T, B = 8, len(indices)
        ys = np.zeros((T, B), dtype=np.int64)
        ys[-1] = self.labels[indices]
        mask = np.zeros((T, B), dtype=bool)
        mask[-1] = True
        return Batch(xs=self.xs[:, indices], ys=ys, mask=mask)

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        return self.batch(rng.choice(self.splits["train"], size=batch_size))

    def split(self, name: str) -> Batch:
        """The whole ``"train"``, ``"val"`` or ``"test"`` split as one batch."""
        validate.choice("split", name, self.splits)
        return self.batch(self.splits[name])

    def metrics(self, batch, logits, losses) -> dict:
        """``loss`` and ``accuracy`` on the masked (last) steps."""
        return Task.observe(self, batch, logits, losses)

    def evaluate(self, model, params) -> dict:
        """``val_loss``, ``val_accuracy``, ``test_loss``, ``test_accuracy`` on the whole splits."""
        out = {}
        for name in ("val", "test"):
            if name not in self._heldout:
                self._heldout[name] = self.split(name)
            out.update(_common.heldout(self, model, params, self._heldout[name], prefix=name))
        return out
