"""Pattern generation (e-prop, Bellec et al., Nat. Commun. 2020; the e-prop code's
``tutorial_pattern_generation.py`` and ``models.sum_of_sines_target``).

Input: one fixed ("frozen") Poisson spike pattern of ``n_in = n_inputs`` neurons firing at
``rate`` Hz (probability ``rate * dt`` per step) for ``duration`` seconds (``T = duration / dt``
steps). The same input is used for every sequence: :meth:`Pattern.sample` returns ``batch_size``
copies and ignores its ``rng``.

Target, per output: a sum of sines with periods ``periods`` (default 1000, 500, 333, 200 ms),
amplitudes ``~ U(0.5, 2)`` and phases ``~ U(0, 2 pi)``. Each sine is
``sin(linspace(phi, phi + 2 pi cycles, T))`` with ``cycles = floor(duration / period)`` whole
cycles, as in the reference. The sum is shifted to start at 0 and scaled so that ``max |y| = 1``.
Input and target are drawn from ``seed`` only. Mean-squared error at every step (the loss mask is
on everywhere; the per-step loss is ``0.5 sum_k (o_k - y_k)^2``). The reference adds a
firing-rate regulariser (300 x, 10 Hz), which belongs to the model/rule and is not included.

Metric: ``nmse`` = normalised MSE, ``sum (o - y)^2 / sum (y - mean_t y)^2`` over the masked steps
and the outputs (1 = as good as the constant mean of the target, 0 = perfect); also ``mse``
(mean of ``(o - y)^2``). The paper reports normalised MSE.

There is no held-out set (the task is to reproduce one pattern): :meth:`evaluate` returns ``{}``.

Configurations:

* paper (the defaults, :attr:`Pattern.PAPER`): 100 inputs at 50 Hz, 1 s at ``dt = 1 ms``
  (``T = 1000``), 1 output; model there: 100 LIF (tau_m = 30 ms, no self-connections), leaky
  readout (tau = 30 ms), plain SGD.
* small (tests, :meth:`Pattern.small`): 20 inputs, ``dt = 10 ms`` (``T = 100``).

Checked against the e-prop reference code named above.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task


class Pattern(Task):
    """Pattern generation (see module docstring).

    Args:
        n_inputs: input neurons (the task's ``n_in``).
        n_out: number of target signals.
        rate: input firing rate (Hz).
        dt: time step (seconds).
        duration: length of the pattern (seconds).
        periods: periods of the sines (seconds), each ``<= duration``.
        seed: seed of the frozen input and the target.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Pattern(n_inputs=20, duration=0.2, periods=(0.2, 0.1))
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((200, 4, 20), (200, 4, 1), (200, 4))
    """

    loss, metric = "mse", "nmse"
    PAPER = {
        "n_inputs": 100,
        "n_out": 1,
        "rate": 50.0,
        "dt": 1e-3,
        "duration": 1.0,
        "periods": (1.0, 0.5, 0.333, 0.2),
    }
    SMALL = {"n_inputs": 20, "dt": 0.01}

    def __init__(
        self,
        n_inputs: int = 100,
        n_out: int = 1,
        rate: float = 50.0,
        dt: float = 1e-3,
        duration: float = 1.0,
        periods=(1.0, 0.5, 0.333, 0.2),
        seed: int = 0,
    ):
        self.n_in = validate.positive_int("n_inputs", n_inputs)
        self.n_out = validate.positive_int("n_out", n_out)
        self.rate = validate.real("rate", rate, low=0.0)
        self.dt = validate.real("dt", dt, low=0.0, low_open=True)
        self.p_spike = _common.probability("rate", self.rate, self.dt)
        self.duration = validate.real("duration", duration, low=0.0, low_open=True)
        self.length = _common.duration_steps("duration", duration, self.dt, minimum=2)
        self.periods = _periods(periods, self.duration)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        validate.memory(
            "(n_inputs + n_out) * duration / dt",
            (self.n_in + self.n_out) * self.length,
            (self.n_in + self.n_out) * self.length * 8 * 2,
            "the fixed input pattern and target",
        )
        rng = np.random.default_rng(self.seed)
        self.inputs = _common.poisson(rng, np.full((self.length, self.n_in), self.p_spike))
        self.target = np.stack([self._sum_of_sines(rng) for _ in range(self.n_out)], axis=-1)

    @classmethod
    def small(cls, **overrides) -> Pattern:
        """The fast configuration used by the tests (:attr:`SMALL`), with ``overrides`` applied."""
        return cls(**{**cls.SMALL, **overrides})

    def _sum_of_sines(self, rng) -> np.ndarray:
        n = len(self.periods)
        amplitudes = rng.uniform(0.5, 2.0, size=n)
        phases = rng.uniform(0.0, 2 * np.pi, size=n)
        y = np.zeros(self.length)
        for period, a, phi in zip(self.periods, amplitudes, phases, strict=True):
            cycles = int(np.floor(self.duration / period + 1e-9))
            y += a * np.sin(np.linspace(phi, phi + 2 * np.pi * cycles, self.length))
        y -= y[0]
        return y / max(np.abs(y).max(), 1e-6)

    def sample(self, rng, batch_size):
        """``batch_size`` copies of the frozen pattern (``rng`` is not used)."""
        batch_size = _common.batch_size(self, batch_size)
        T, B = self.length, batch_size
        xs = np.repeat(self.inputs[:, None, :], B, axis=1)
        ys = np.repeat(self.target[:, None, :], B, axis=1)
        return Batch(xs=xs, ys=ys, mask=np.ones((T, B), dtype=bool))

    def metrics(self, batch, logits, losses) -> dict:
        """``loss`` (per masked step), ``mse`` and ``nmse`` on the masked steps."""
        m = batch.mask
        count = max(1, int(m.sum()))
        sq = ((logits - batch.ys) ** 2)[m]
        spread = ((batch.ys - self.target.mean(axis=0)) ** 2)[m]
        return {
            "loss": float(losses[m].sum() / count),
            "mse": float(sq.mean()) if sq.size else 0.0,
            "nmse": float(sq.sum() / max(spread.sum(), 1e-12)),
        }

    def observe(self, batch, logits, losses):
        return self.metrics(batch, logits, losses)


def _periods(periods, duration) -> tuple:
    if isinstance(periods, (str, bytes)) or not hasattr(periods, "__iter__"):
        raise TypeError(f"periods must be a list of positive numbers (seconds), got {periods!r}")
    periods = tuple(periods)
    if not periods:
        raise ValueError("periods must not be empty")
    out = []
    for p in periods:
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"periods must hold real numbers, got {p!r}")
        p = validate.real("periods", p, low=0.0, low_open=True)
        if p > duration:
            raise ValueError(
                f"periods must each be <= duration={duration} (at least one cycle), got {p}"
            )
        out.append(p)
    return tuple(out)
