"""Copy task with a curriculum (Mujika et al. 2018; used by SnAp, Menick et al. 2021).

Vocabulary ``{0, 1, DELIM, BLANK}`` one-hot (``n_in = 4``). A sequence of level ``L``: L random bits,
DELIM, then L BLANKs (length ``2L + 1``). The target is the L bits during the last L steps, where the
loss mask is on; outputs are the two bit classes (``n_out = 2``), cross-entropy.

Curriculum: the level starts at ``start_length``; once the mean loss on the copied positions over the
last ``window`` batches at the current level is below ``threshold_bits`` bits per character, the
level increases by one. With ``sample_lengths`` each sequence's length is drawn uniformly from
``{max(L - 5, 1), ..., L}`` so shorter lengths are not forgotten (a detail recalled from Mujika et al.,
hence optional). Metric: the level reached.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task

DELIM, BLANK = 2, 3


class Copy(Task):
    """Copy task with curriculum (see module docstring).

    Args:
        start_length: initial level ``L >= 1``.
        max_length: the curriculum stops here.
        threshold_bits: advance when the mean copy loss is below this (bits per character).
        window: number of batches averaged before deciding to advance.
        sample_lengths: draw lengths in ``{max(L-5,1), ..., L}`` instead of always ``L``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Copy(start_length=3)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((7, 4, 4), (7, 4), (7, 4))
    """

    n_in, n_out, loss, metric = 4, 2, "cross_entropy", "level"

    def __init__(
        self,
        start_length: int = 1,
        max_length: int = 100,
        threshold_bits: float = 0.15,
        window: int = 20,
        sample_lengths: bool = True,
    ):
        self.start_length = validate.positive_int("start_length", start_length)
        self.max_length = validate.positive_int("max_length", max_length)
        if self.max_length < self.start_length:
            raise ValueError(
                f"max_length must be >= start_length, got {max_length} < {start_length}"
            )
        self.threshold_bits = validate.real(
            "threshold_bits", threshold_bits, low=0.0, low_open=True
        )
        self.window = validate.positive_int("window", window)
        if not isinstance(sample_lengths, bool):
            raise TypeError(f"sample_lengths must be a bool, got {sample_lengths!r}")
        self.sample_lengths = sample_lengths
        self.level = self.start_length
        self._recent: deque[float] = deque(maxlen=self.window)

    def sample(self, rng, batch_size):
        """A batch whose sequences share one length ``L`` (padded sequences are never used)."""
        batch_size = _common.batch_size(self, batch_size)
        low = max(self.level - 5, 1) if self.sample_lengths else self.level
        L = int(rng.integers(low, self.level + 1))
        return make_copy_batch(rng.integers(0, 2, size=(L, batch_size)))

    def observe(self, batch, logits, losses):
        metrics = super().observe(batch, logits, losses)
        metrics["loss_bits"] = metrics["loss"] / np.log(2)
        self._recent.append(metrics["loss_bits"])
        if (
            len(self._recent) == self.window
            and np.mean(self._recent) < self.threshold_bits
            and self.level < self.max_length
        ):
            self.level += 1
            self._recent.clear()
        metrics["level"] = self.level
        return metrics

    def state_dict(self):
        return {"level": self.level, "recent": list(self._recent)}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"level", "recent"}:
            raise ValueError(
                f"Copy task state must be a dict with keys 'level' and 'recent', got "
                f"{str(state)[:60]}"
            )
        level = validate.positive_int(
            "level", state["level"], minimum=self.start_length, maximum=self.max_length
        )
        recent = state["recent"]
        if not isinstance(recent, list) or len(recent) > self.window:
            raise ValueError(f"recent must be a list of at most window={self.window} losses")
        recent = [validate.real("recent", v, low=0.0) for v in recent]
        self.level = level
        self._recent = deque(recent, maxlen=self.window)


def make_copy_batch(bits: np.ndarray) -> Batch:
    """Copy-task batch for ``bits`` of shape ``(L, B)`` (0/1): inputs ``(2L+1, B, 4)``."""
    L, B = bits.shape
    T = 2 * L + 1
    tokens = np.full((T, B), BLANK)
    tokens[:L] = bits
    tokens[L] = DELIM
    xs = np.eye(4)[tokens]
    ys = np.zeros((T, B), dtype=np.int64)
    ys[L + 1 :] = bits
    mask = np.zeros((T, B), dtype=bool)
    mask[L + 1 :] = True
    return Batch(xs=xs, ys=ys, mask=mask)
