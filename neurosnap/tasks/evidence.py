"""Evidence (cue) accumulation (e-prop, Bellec et al., Nat. Commun. 2020; the e-prop code's
``tutorial_evidence_accumulation_with_alif.py`` and ``tools.generate_click_task_data``).

``n_in = n_inputs`` Poisson input neurons in 4 groups of ``n_inputs // 4``: left cue, right cue,
recall cue, and background noise (the noise group also takes the remainder). Durations are given
in seconds and turned into whole steps of ``dt``; spike probabilities are ``rate * dt`` per step.

* Each trial first picks a majority side uniformly; each of the ``n_cues`` cues then comes from
  that side with probability ``1 - p_minority`` (the reference's ``p_group = 0.3`` for the other).
* Cue ``k`` occupies ``[s + k I, s + k I + C)`` with ``C = cue_duration``, ``I = cue_interval`` and
  ``s = I - C`` (silence before every cue): the group of its side fires at ``rate`` Hz.
* Then ``delay`` of silence, then the recall cue group fires at ``rate`` for the last
  ``recall_duration``. The background group fires at ``noise_rate`` Hz throughout.
  ``T = n_cues I + delay + recall_duration``.
* Target: class 1 (right) if more than ``n_cues // 2`` cues came from the right, else 0 (left)
  (the drawn majority, not the side picked first); ``n_cues`` must be odd so there are no ties.
  The loss mask is on during the recall window only; cross-entropy over 2 classes.

The reference also applies firing-rate regularisation (10 Hz) and reads out through a leaky
(tau_out = 20 ms) filter; both belong to the model/rule and are not part of the task.

Metric: ``accuracy`` = fraction of trials whose decision, the argmax of the logits summed over the
recall window, equals the majority side (the paper's *decision error* is ``error = 1 - accuracy``;
its tutorial stops once it is below 7%). Also ``step_accuracy`` (per masked step).

Configurations:

* paper (the defaults, :attr:`Evidence.PAPER`): 40 inputs, 7 cues of 100 ms every 150 ms, a
  1050 ms delay, a 150 ms recall window (``T = 2250`` at ``dt = 1 ms``), cue rate 40 Hz, noise
  10 Hz; model there: 50 LIF + 50 ALIF (tau_a = 2000 ms, tau_v = 20 ms), Adam lr 0.005, batch 64.
* small (tests, :meth:`Evidence.small`): 20 inputs, 3 cues, ``dt = 10 ms``, 50 ms cues every 80 ms,
  100 ms delay, 50 ms recall (``T = 39``). ``dt`` alone rescales the paper setting: ``dt = 0.01``
  gives ``T = 225``.

Held-out set: :meth:`Evidence.evaluate` on ``eval_size`` fixed trials.
Checked against the e-prop reference code named above.
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task

LEFT, RIGHT, RECALL_CUE, NOISE = 0, 1, 2, 3


class Evidence(_common.HeldOut, Task):
    """Evidence accumulation (see module docstring).

    Args:
        n_inputs: Poisson input neurons (>= 4; the task's ``n_in``), 4 groups of ``n_inputs // 4``.
        n_cues: number of cues (odd, >= 1).
        p_minority: probability that a cue comes from the minority side (in [0, 0.5)).
        rate: firing rate of an active cue / recall group (Hz).
        noise_rate: firing rate of the background group (Hz).
        dt: time step (seconds).
        cue_duration, cue_interval, delay, recall_duration: durations (seconds), see module docstring.
        eval_size: number of held-out trials used by :meth:`evaluate` (0: no evaluation).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Evidence(n_inputs=20, n_cues=3, delay=0.2)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((800, 4, 20), (800, 4), (800, 4))
    """

    n_out, loss, metric = 2, "cross_entropy", "accuracy"
    PAPER = {
        "n_inputs": 40,
        "n_cues": 7,
        "p_minority": 0.3,
        "rate": 40.0,
        "noise_rate": 10.0,
        "dt": 1e-3,
        "cue_duration": 0.1,
        "cue_interval": 0.15,
        "delay": 1.05,
        "recall_duration": 0.15,
    }
    SMALL = {
        "n_inputs": 20,
        "n_cues": 3,
        "dt": 0.01,
        "cue_duration": 0.05,
        "cue_interval": 0.08,
        "delay": 0.1,
        "recall_duration": 0.05,
        "eval_size": 64,
    }

    def __init__(
        self,
        n_inputs: int = 40,
        n_cues: int = 7,
        p_minority: float = 0.3,
        rate: float = 40.0,
        noise_rate: float = 10.0,
        dt: float = 1e-3,
        cue_duration: float = 0.1,
        cue_interval: float = 0.15,
        delay: float = 1.05,
        recall_duration: float = 0.15,
        eval_size: int = 256,
    ):
        self.n_in = validate.positive_int("n_inputs", n_inputs, minimum=4)
        self.n_cues = validate.positive_int("n_cues", n_cues)
        if self.n_cues % 2 == 0:
            raise ValueError(f"n_cues must be odd (the majority must be defined), got {n_cues}")
        self.p_minority = validate.real("p_minority", p_minority, low=0.0, high=0.5, high_open=True)
        self.rate = validate.real("rate", rate, low=0.0)
        self.noise_rate = validate.real("noise_rate", noise_rate, low=0.0)
        self.dt = validate.real("dt", dt, low=0.0, low_open=True)
        self.p_cue = _common.probability("rate", self.rate, self.dt)
        self.p_noise = _common.probability("noise_rate", self.noise_rate, self.dt)
        self.cue_steps = _common.duration_steps("cue_duration", cue_duration, self.dt)
        self.interval_steps = _common.duration_steps("cue_interval", cue_interval, self.dt)
        if self.cue_steps > self.interval_steps:
            raise ValueError(
                f"cue_duration must be <= cue_interval, got {cue_duration} > {cue_interval}"
            )
        self.delay_steps = _common.duration_steps("delay", delay, self.dt, minimum=0)
        self.recall_steps = _common.duration_steps("recall_duration", recall_duration, self.dt)
        self.eval_size = validate.positive_int("eval_size", eval_size, minimum=0)
        self.group_size = self.n_in // 4
        self.length = self.n_cues * self.interval_steps + self.delay_steps + self.recall_steps
        if self.length > 2**31 - 1:
            raise ValueError(
                f"n_cues, cue_interval, delay and recall_duration give sequences of "
                f"{self.length} steps of dt={self.dt}, more than {2**31 - 1}"
            )

    @classmethod
    def small(cls, **overrides) -> Evidence:
        """The fast configuration used by the tests (:attr:`SMALL`), with ``overrides`` applied."""
        return cls(**{**cls.SMALL, **overrides})

    def cues(self, rng, batch_size: int) -> np.ndarray:
        """Cue sides ``(n_cues, B)``: 0 = left, 1 = right."""
        majority = rng.integers(0, 2, size=batch_size)
        minority = rng.random((self.n_cues, batch_size)) < self.p_minority
        return np.where(minority, 1 - majority, majority)

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        return self.make_batch(rng, self.cues(rng, batch_size))

    def make_batch(self, rng, cues: np.ndarray) -> Batch:
        """A batch with cue sides ``cues`` (``(n_cues, B)`` of 0/1); ``rng`` draws the spikes."""
        T, B, g = self.length, cues.shape[1], self.group_size
        prob = np.zeros((T, B, self.n_in))
        silence = self.interval_steps - self.cue_steps
        for k in range(self.n_cues):
            start = silence + k * self.interval_steps
            for side in (LEFT, RIGHT):
                on = cues[k] == side
                prob[start : start + self.cue_steps, on, side * g : (side + 1) * g] = self.p_cue
        prob[T - self.recall_steps :, :, RECALL_CUE * g : (RECALL_CUE + 1) * g] = self.p_cue
        prob[:, :, NOISE * g :] = self.p_noise
        xs = _common.poisson(rng, prob)
        label = (cues.sum(axis=0) > self.n_cues // 2).astype(np.int64)
        ys = np.broadcast_to(label, (T, B)).copy()
        mask = np.zeros((T, B), dtype=bool)
        mask[T - self.recall_steps :] = True
        return Batch(xs=xs, ys=ys, mask=mask)

    def metrics(self, batch, logits, losses) -> dict:
        """``loss``, ``step_accuracy``, ``accuracy`` (per trial) and ``error = 1 - accuracy``."""
        metrics = Task.observe(self, batch, logits, losses)
        metrics["step_accuracy"] = metrics.pop("accuracy")
        correct, counted = _common.window_accuracy(logits, batch.ys, batch.mask, len(logits))
        metrics["accuracy"] = correct / counted if counted else 0.0
        metrics["error"] = 1.0 - metrics["accuracy"] if counted else 1.0
        return metrics
