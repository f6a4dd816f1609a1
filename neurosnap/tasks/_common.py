"""Helpers shared by the synthetic tasks (not public): argument checks, Poisson inputs, window
decisions and held-out evaluation on a fixed set of sequences."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..core import validate
from ..losses import per_example_loss_and_grad

#: Seed of every held-out set. A ``SeedSequence`` with a non-empty ``spawn_key`` never produces the
#: stream of ``np.random.default_rng(seed)`` for an integer training seed, so a held-out set cannot
#: coincide with a training stream.
HELDOUT_SEED = np.random.SeedSequence(entropy=0x5EED, spawn_key=(0xE7A1,))

#: Largest number of floats a chunk of :meth:`Model.run` may hold in its state trajectory.
_RUN_BUDGET = 2_000_000


def boolean(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def duration_steps(name: str, duration, dt: float, *, minimum: int = 1) -> int:
    """``duration`` (seconds) as a whole number of steps of ``dt`` (rounded), at least ``minimum``."""
    duration = validate.real(name, duration, low=0.0)
    return validate.steps(name, duration, dt, minimum=minimum)


def batch_size(task, value) -> int:
    """``task.sample``'s ``batch_size``: a positive integer whose batch fits in memory (inputs,
    targets and mask of ``task.length`` steps, where the task has a fixed length)."""
    value = validate.positive_int("batch_size", value)
    length = getattr(task, "length", getattr(task, "T", 1))  # fixed or padded sequence length
    length = length if isinstance(length, int) and length > 0 else 1
    validate.memory(
        "batch_size",
        value,
        value * length * (task.n_in + task.n_out + 1) * 8,
        f"a batch of {length}-step sequences",
    )
    return value


def probability(name: str, rate: float, dt: float) -> float:
    """Per-step spike probability ``rate * dt`` of a Poisson input, which must be <= 1."""
    p = rate * dt
    if p > 1.0:
        raise ValueError(
            f"{name} * dt must be <= 1 (a spike probability per step), got "
            f"{name}={rate} and dt={dt}"
        )
    return p


def poisson(rng: np.random.Generator, prob: np.ndarray) -> np.ndarray:
    """Bernoulli spikes (0.0/1.0 float64) with per-entry probability ``prob``."""
    return (rng.random(prob.shape) < prob).astype(np.float64)


def sequence_decision_metrics(task, batch, logits: np.ndarray, losses: np.ndarray) -> dict:
    """Metrics of a task with one class per sequence: ``loss``; ``accuracy``, one decision per
    sequence (argmax of the logits summed over its counted steps, :func:`window_accuracy`); and
    ``step_accuracy``, every counted step on its own. ``logits (T, B, n_out)``, ``losses (T, B)``."""
    from .base import Task

    out = Task.observe(task, batch, logits, losses)
    out["step_accuracy"] = out.pop("accuracy")
    correct, counted = window_accuracy(logits, batch.ys, batch.mask, logits.shape[0])
    out["accuracy"] = correct / max(1, counted)
    return out


def window_accuracy(logits: np.ndarray, ys: np.ndarray, mask: np.ndarray, window: int) -> tuple:
    """Decisions over windows of ``window`` steps: argmax of the summed logits on masked steps.

    The time axis ``T`` is cut into ``T // window`` consecutive windows (``window = T``: one per
    sequence); a window counts when at least one of its steps is masked, and its label is the
    target of its first masked step (targets are constant inside a window).

    Returns:
        ``(correct, counted)``: numbers of correct and counted windows.
    """
    T, B, K = logits.shape
    W = T // window
    lg = logits[: W * window].reshape(W, window, B, K)
    m = mask[: W * window].reshape(W, window, B)
    y = ys[: W * window].reshape(W, window, B)
    summed = (lg * m[..., None]).sum(axis=1)  # (W, B, K)
    counted = m.any(axis=1)  # (W, B)
    first = np.argmax(m, axis=1)  # (W, B)
    label = np.take_along_axis(y, first[:, None, :], axis=1)[:, 0]  # (W, B)
    correct = (summed.argmax(-1) == label) & counted
    return int(correct.sum()), int(counted.sum())


def step_losses(loss: str, logits: np.ndarray, ys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-step losses ``(T, B)`` as :func:`neurosnap.train` computes them (0 where masked out)."""
    T, B = mask.shape
    flat_logits = logits.reshape(T * B, -1)
    flat_ys = ys.reshape(T * B, *ys.shape[2:])
    losses, _ = per_example_loss_and_grad(loss, flat_logits, flat_ys)
    return losses.reshape(T, B) * mask


def run_outputs(model, params, xs: np.ndarray) -> np.ndarray:
    """``model.run(params, xs).outputs`` computed in batch chunks that bound the memory used."""
    T, B, _ = xs.shape
    per_seq = T * model.cell.n_state * model.cell.n_hidden
    chunk = max(1, min(B, _RUN_BUDGET // max(1, per_seq)))
    return np.concatenate(
        [model.run(params, xs[:, i : i + chunk]).outputs for i in range(0, B, chunk)], axis=1
    )


def heldout(task, model, params, batch, prefix: str = "test") -> dict:
    """``task.metrics`` of ``params`` on ``batch`` (no learning), keys prefixed with ``prefix``."""
    logits = run_outputs(model, params, batch.xs)
    losses = step_losses(task.loss, logits, batch.ys, batch.mask)
    return {f"{prefix}_{k}": v for k, v in task.metrics(batch, logits, losses).items()}


def heldout_batch(task, size: int):
    """The task's held-out set: ``size`` sequences drawn from :data:`HELDOUT_SEED`."""
    return task.sample(np.random.default_rng(HELDOUT_SEED), size)


class HeldOut:
    """Mixin of the synthetic tasks: ``observe`` reports :meth:`metrics`; ``evaluate`` scores
    ``eval_size`` fixed held-out sequences (a seed no training stream can draw)."""

    _heldout = None
    eval_size: int  # set by the task

    def observe(self, batch, logits, losses):
        """The task's :meth:`metrics` of a processed batch (see :meth:`Task.observe`)."""
        return self.metrics(batch, logits, losses)

    def evaluate(self, model, params) -> dict:
        """``test_*`` versions of :meth:`metrics` on ``eval_size`` fixed held-out sequences."""
        if self.eval_size == 0:
            return {}
        if self._heldout is None:
            self._heldout = heldout_batch(self, self.eval_size)
        return heldout(self, model, params, self._heldout)


def package_file(package: str, *parts: str) -> str | None:
    """Path of ``parts`` inside an installed ``package`` (never imported), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], *parts)
    return path if os.path.exists(path) else None
