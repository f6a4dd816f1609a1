"""Spike encoders: turn intensities in ``[0, 1]`` into spike trains, time first.

Both encoders take an array ``x`` of any shape (an image ``(28, 28)``, a batch ``(B, 784)``, ...)
with values in ``[0, 1]`` and return float64 spikes of shape ``(steps, *x.shape)``: time is the
first axis, as in every ``xs (T, B, n_in)`` of neurosnap.

- :func:`rate`: every entry fires at random with a per-step probability (Bernoulli) or intensity
  (Poisson counts) proportional to its value; the information is in the spike *count*.
- :func:`latency`: every entry fires at most once, earlier for larger values; the information is in
  the spike *time*.

A picture of both codes on one digit is in the guide (docs/guide/tasks.md, "Spike encoding").
"""

from __future__ import annotations

import numbers

import numpy as np

from .core import validate

__all__ = ["rate", "latency"]


def _intensities(x) -> np.ndarray:
    x = validate.array("x", x, dtype=np.float64)
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(f"x must hold intensities in [0, 1], got values in [{x.min()}, {x.max()}]")
    return x


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__} {rng!r}"
    )


def rate(x, steps: int, *, rng, kind: str = "bernoulli", gain: float = 1.0) -> np.ndarray:
    """Rate code: independent random spikes whose expected count per step is ``gain * x``.

    - ``kind="bernoulli"``: at most one spike per entry and step, with probability ``gain * x``
      (``gain * x <= 1`` is required). This is the usual "Poisson input" of a simulator with time
      step ``dt`` and rate ``r``, with ``gain * x = r * dt``.
    - ``kind="poisson"``: spike *counts* drawn from a Poisson distribution of mean ``gain * x``
      (a Poisson process of intensity ``gain * x`` per step, counted in bins of one step); counts
      above 1 are possible when ``gain * x`` is not small. For small ``gain * x`` the two codes agree
      to first order.

    Entries with ``x = 0`` never fire. The expected spike count of an entry over the whole train is
    ``steps * gain * x`` for both kinds.

    Args:
        x: intensities in ``[0, 1]``, any shape ``S``.
        steps: number of time steps ``T`` (>= 1).
        rng: ``np.random.Generator`` or integer seed (the only source of randomness).
        kind: ``"bernoulli"`` or ``"poisson"``.
        gain: maximum expected spikes per step (``x = 1``); > 0, and <= 1 for ``"bernoulli"``.

    Returns:
        float64 array of shape ``(T, *S)``: 0/1 spikes (``"bernoulli"``) or counts (``"poisson"``).

    >>> import numpy as np, neurosnap as ns
    >>> s = ns.encode.rate(np.array([0.0, 0.5, 1.0]), steps=1000, rng=0)
    >>> s.shape, s[:, 0].sum(), s[:, 2].sum()
    ((1000, 3), np.float64(0.0), np.float64(1000.0))
    """
    x = _intensities(x)
    steps = validate.positive_int("steps", steps)
    kind = validate.choice("kind", kind, ("bernoulli", "poisson"))
    gain = validate.real("gain", gain, low=0.0, low_open=True)
    if kind == "bernoulli" and gain > 1.0:
        raise ValueError(
            f"gain must be <= 1 for kind='bernoulli' (a probability per step), got {gain}"
        )
    gen = _generator(rng)
    mean = gain * x
    if kind == "bernoulli":
        return (gen.random((steps, *x.shape)) < mean).astype(np.float64)
    return gen.poisson(np.broadcast_to(mean, (steps, *x.shape))).astype(np.float64)


def latency(x, steps: int, *, threshold: float = 0.0) -> np.ndarray:
    """Latency (time-to-first-spike) code: one spike per entry, earlier for larger values.

    An entry with value ``x > threshold`` fires once, at step
    ``t = round((1 - x) / (1 - threshold) * (steps - 1))``: ``x = 1`` fires at ``t = 0`` and values
    just above ``threshold`` fire near the last step. Entries with ``x <= threshold`` (a black
    background, for instance) never fire. The code is deterministic and linear in ``x``; a spike
    train carries as many spikes as there are entries above ``threshold``.

    Args:
        x: intensities in ``[0, 1]``, any shape ``S``.
        steps: number of time steps ``T`` (>= 1).
        threshold: values at or below it stay silent; in ``[0, 1)``.

    Returns:
        float64 0/1 array of shape ``(T, *S)`` with at most one spike along time per entry.

    >>> import numpy as np, neurosnap as ns
    >>> s = ns.encode.latency(np.array([0.0, 0.5, 1.0]), steps=11)
    >>> s.argmax(axis=0), s.sum(axis=0)
    (array([0, 5, 0]), array([0., 1., 1.]))
    """
    x = _intensities(x)
    steps = validate.positive_int("steps", steps)
    threshold = validate.real("threshold", threshold, low=0.0, high=1.0, high_open=True)
    t = np.rint((1.0 - x) / (1.0 - threshold) * (steps - 1)).astype(np.int64)
    fires = x > threshold
    out = np.zeros((steps, *x.shape))
    idx = np.nonzero(fires)
    out[(t[idx], *idx)] = 1.0
    return out
