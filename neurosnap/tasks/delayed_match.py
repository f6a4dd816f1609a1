"""Delayed match / non-match to sample (Marschall, Cho & Savin, JMLR 2020, ``Delay_Nonmatch_Task``).

Two input channels (``n_in = 2``). A trial of ``T = onset + 2 stim_duration + 2 delay + report``
steps is:

* ``onset`` silent steps (the reference's ``t_stim_1 = 1``);
* stimulus 1: one randomly chosen channel (A = 0 or B = 1) is 1 for ``stim_duration`` steps;
* ``delay`` silent steps;
* stimulus 2: an independently chosen channel for ``stim_duration`` steps;
* ``delay`` silent steps;
* the report window of ``report`` steps, where the target is the class
  **0 = match** (AA or BB) or **1 = non-match** (AB or BA): the reference's one-hot order
  ``[1, 0]`` = match, ``[0, 1]`` = non-match. So ``target == 0`` exactly when
  ``XNOR(stimulus 1, stimulus 2)``, i.e. the class index is ``XOR`` of the two channel bits.

Cross-entropy over 2 classes (``n_out = 2``). The loss mask is on in the report window only.
The reference multiplies the loss outside the report window by ``off_report_loss_factor = 0.1``;
a boolean mask cannot express that weighting, so those steps are left out entirely. (The
reference's targets are all-zero vectors outside the report window, so its softmax cross-entropy
``-sum y log p`` is zero there anyway; the factor matters only for other losses.) The reference
concatenates trials into one stream and lets the user reset states between trials; here every
trial is one sequence, and :func:`neurosnap.train` resets the state at every sequence start.

Metric: ``accuracy`` = fraction of trials whose decision, the argmax of the logits summed over the
report window, is right; also ``step_accuracy`` (per report step). Chance is 0.5. Scale ``delay``
up to probe memory length.

Held-out set: :meth:`DelayedMatch.evaluate` on ``eval_size`` fixed trials (``test_accuracy``).
Small configuration (tests): :meth:`DelayedMatch.small` (``delay=3``, ``T = 13``).
Checked against the reference code of Marschall et al. (``vanilla-rtrl``).
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task

MATCH, NON_MATCH = 0, 1


class DelayedMatch(_common.HeldOut, Task):
    """Delayed match / non-match (see module docstring).

    Args:
        delay: silent steps after each stimulus (>= 0).
        stim_duration: steps of each stimulus (>= 1).
        report: steps of the report window (>= 1).
        onset: silent steps before the first stimulus (>= 0).
        eval_size: number of held-out trials used by :meth:`evaluate` (0: no evaluation).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.DelayedMatch(delay=5)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((20, 4, 2), (20, 4), (20, 4))
    """

    n_in, n_out, loss, metric = 2, 2, "cross_entropy", "accuracy"
    SMALL = {"delay": 3, "stim_duration": 2, "report": 2, "onset": 1, "eval_size": 64}

    def __init__(
        self,
        delay: int = 10,
        stim_duration: int = 3,
        report: int = 3,
        onset: int = 1,
        eval_size: int = 256,
    ):
        self.delay = validate.positive_int("delay", delay, minimum=0)
        self.stim_duration = validate.positive_int("stim_duration", stim_duration)
        self.report = validate.positive_int("report", report)
        self.onset = validate.positive_int("onset", onset, minimum=0)
        self.eval_size = validate.positive_int("eval_size", eval_size, minimum=0)
        self.t_stim_2 = self.onset + self.stim_duration + self.delay
        self.t_report = self.t_stim_2 + self.stim_duration + self.delay
        self.length = self.t_report + self.report

    @classmethod
    def small(cls, **overrides) -> DelayedMatch:
        """The fast configuration used by the tests (:attr:`SMALL`), with ``overrides`` applied."""
        return cls(**{**cls.SMALL, **overrides})

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        stim = rng.integers(0, 2, size=(2, batch_size))
        return self.make_batch(stim[0], stim[1])

    def make_batch(self, first: np.ndarray, second: np.ndarray) -> Batch:
        """The trials with stimulus channels ``first`` and ``second`` (arrays of 0/1, shape ``(B,)``)."""
        B = len(first)
        cols = np.arange(B)
        xs = np.zeros((self.length, B, 2))
        d = self.stim_duration
        xs[self.onset : self.onset + d, cols, first] = 1.0
        xs[self.t_stim_2 : self.t_stim_2 + d, cols, second] = 1.0
        ys = np.zeros((self.length, B), dtype=np.int64)
        ys[self.t_report :] = np.where(first == second, MATCH, NON_MATCH)
        mask = np.zeros((self.length, B), dtype=bool)
        mask[self.t_report :] = True
        return Batch(xs=xs, ys=ys, mask=mask)

    def metrics(self, batch, logits, losses) -> dict:
        """``loss``, ``step_accuracy`` (per report step) and ``accuracy`` (per trial)."""
        metrics = Task.observe(self, batch, logits, losses)
        metrics["step_accuracy"] = metrics.pop("accuracy")
        correct, counted = _common.window_accuracy(logits, batch.ys, batch.mask, len(logits))
        metrics["accuracy"] = correct / counted if counted else 0.0
        return metrics
