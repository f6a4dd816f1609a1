"""Japanese vowels: speaker identification from real, variable-length speech features.

Kudo, Toyama & Shimbo (1999), "Multidimensional curve classification using passing-through
regions", Pattern Recognition Letters 20; UCI Machine Learning Repository (CC BY 4.0), distributed
with the UEA multivariate time-series archive. Nine male speakers uttered the vowels /ae/; each
utterance is a sequence of 12 LPC cepstrum coefficients (``n_in = 12``) of length 7 to 29 frames.
The task is to name the speaker (``n_out = 9``). Official split: 270 training utterances (30 per
speaker) and 370 test utterances (24 to 88 per speaker).

The files are read from the ``sktime`` or the ``aeon`` wheel (``datasets/data/JapaneseVowels/
JapaneseVowels_{TRAIN,TEST}.ts``), without importing either package: ``pip install
"neurosnap[data]"`` (or ``pip install sktime``) is enough; nothing is downloaded at run time.

Batches are padded with zeros at the end to ``T = 29`` steps. With ``readout="last"`` (default)
the loss mask is on the last real frame of each utterance only; with ``readout="all"`` it is on
every real frame. Padding steps never count. With ``standardize=True`` (default) each coefficient
is shifted and scaled by its mean and standard deviation over the training frames (padding stays 0).

Metrics: ``accuracy`` is one decision per utterance, the argmax of the logits summed over the
counted steps (chance 1/9 for uniform guessing; 88/370 = 0.24 for always naming the most frequent
test speaker); ``step_accuracy`` counts every counted step. :meth:`JapaneseVowels.evaluate` gives
``test_loss``, ``test_accuracy`` and ``test_step_accuracy`` on all 370 test utterances.
:meth:`JapaneseVowels.sample` draws training utterances with replacement.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task

NAME = "JapaneseVowels"
N_FEATURES, N_SPEAKERS, MAX_LENGTH = 12, 9, 29
PACKAGES = ("sktime", "aeon")


def _read_ts(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    """A multivariate ``.ts`` file: lines after ``@data`` are ``ch1,...:ch2,...:...:label``."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, sep, body = text.partition("@data")
    if not sep:
        raise ValueError(f"{path} has no '@data' section; not a .ts file")
    sequences, labels = [], []
    for number, line in enumerate(body.split(), start=1):
        fields = line.split(":")
        if len(fields) != N_FEATURES + 1:
            raise ValueError(
                f"{path}, series {number}: expected {N_FEATURES} channels and a label, "
                f"got {len(fields)} ':'-separated fields"
            )
        try:
            channels = [np.array([float(v) for v in ch.split(",")]) for ch in fields[:-1]]
            label = int(fields[-1])
        except ValueError as exc:
            raise ValueError(f"{path}, series {number}: {exc}") from None
        if len({len(c) for c in channels}) != 1 or not np.all(
            np.isfinite(np.concatenate(channels))
        ):
            raise ValueError(
                f"{path}, series {number}: channels of unequal length or missing values"
            )
        if not 1 <= label <= N_SPEAKERS:
            raise ValueError(f"{path}, series {number}: label must be 1..{N_SPEAKERS}, got {label}")
        sequences.append(np.stack(channels, axis=1))  # (length, 12)
        labels.append(label - 1)
    return sequences, np.array(labels, dtype=np.int64)


@functools.lru_cache(maxsize=2)
def load_japanese_vowels(split: str) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The official ``"train"`` (270) or ``"test"`` (370) split, read from the sktime/aeon wheel.

    Returns:
        ``(sequences, labels)``: a tuple of float64 arrays ``(length, 12)``, length 7..29, and
        labels ``(n,)`` int64 in ``0..8`` (speaker 1 is label 0).

    Raises:
        ImportError: neither sktime nor aeon is installed (``pip install "neurosnap[data]"``).
    """
    split = validate.choice("split", split, ("train", "test"))
    filename = f"{NAME}_{split.upper()}.ts"
    for package in PACKAGES:
        path = _common.package_file(package, "datasets", "data", NAME, filename)
        if path is not None:
            break
    else:
        raise ImportError(
            "JapaneseVowels reads the UEA files shipped in the sktime (or aeon) wheel, "
            'and neither is installed: pip install "neurosnap[data]" '
            "(or pip install sktime)"
        )
    sequences, labels = _read_ts(os.fspath(path))
    for s in sequences:
        s.setflags(write=False)
    labels.setflags(write=False)
    return tuple(sequences), labels


class JapaneseVowels(Task):
    """Speaker identification from 12 LPC cepstra per frame (see module docstring).

    Args:
        readout: ``"last"`` (the last real frame counts) or ``"all"`` (every real frame counts).
        standardize: scale each coefficient by the training mean and standard deviation.
    """

    n_in, n_out, loss, metric = N_FEATURES, N_SPEAKERS, "cross_entropy", "accuracy"
    T = MAX_LENGTH

    def __init__(self, readout: str = "last", standardize: bool = True):
        self.readout = validate.choice("readout", readout, ("last", "all"))
        self.standardize = _common.boolean("standardize", standardize)
        self.data = {name: load_japanese_vowels(name) for name in ("train", "test")}
        frames = np.concatenate(self.data["train"][0])
        if self.standardize:
            self.mean, self.std = frames.mean(axis=0), frames.std(axis=0)
        else:
            self.mean, self.std = np.zeros(N_FEATURES), np.ones(N_FEATURES)
        self._heldout: Batch | None = None

    @classmethod
    def small(cls, **overrides) -> JapaneseVowels:
        """The default configuration (already small: 29 steps, 12 inputs)."""
        return cls(**overrides)

    def batch(self, split: str, indices) -> Batch:
        """The utterances ``indices`` of ``split`` (``"train"`` or ``"test"``), padded to ``T``."""
        sequences, labels = self.data[validate.choice("split", split, self.data)]
        B = len(indices)
        xs = np.zeros((self.T, B, N_FEATURES))
        mask = np.zeros((self.T, B), dtype=bool)
        for b, i in enumerate(indices):
            s = sequences[i]
            xs[: len(s), b] = (s - self.mean) / self.std
            if self.readout == "last":
                mask[len(s) - 1, b] = True
            else:
                mask[: len(s), b] = True
        ys = np.broadcast_to(labels[np.asarray(indices, dtype=np.int64)], (self.T, B)).copy()
        return Batch(xs=xs, ys=ys, mask=mask)

    def lengths(self, split: str) -> np.ndarray:
        """Lengths ``(n,)`` of the utterances of ``split``."""
        return np.array([len(s) for s in self.data[validate.choice("split", split, self.data)][0]])

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        return self.batch("train", rng.integers(0, len(self.data["train"][1]), size=batch_size))

    def split(self, name: str) -> Batch:
        """The whole official ``"train"`` or ``"test"`` split as one padded batch."""
        return self.batch(
            name, np.arange(len(self.data[validate.choice("split", name, self.data)][1]))
        )

    def metrics(self, batch, logits, losses) -> dict:
        """``loss``; ``accuracy`` (argmax of the logits summed over the counted steps, one decision
        per utterance) and ``step_accuracy`` (every counted step on its own)."""
        return _common.sequence_decision_metrics(self, batch, logits, losses)

    def observe(self, batch, logits, losses):
        return self.metrics(batch, logits, losses)

    def evaluate(self, model, params) -> dict:
        """``test_loss``, ``test_accuracy``, ``test_step_accuracy`` on the 370 test utterances."""
        if self._heldout is None:
            self._heldout = self.split("test")
        return _common.heldout(self, model, params, self._heldout)
