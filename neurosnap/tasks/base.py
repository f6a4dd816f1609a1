"""The task contract: batches of ``(xs, ys, mask)`` and feedback that may drive a curriculum."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..core import describe


@dataclass(frozen=True)
class Batch:
    """One batch of sequences.

    Attributes:
        xs: shape ``(T, B, n_in)`` floats.
        ys: shape ``(T, B)`` ints (cross-entropy tasks) or ``(T, B, n_out)`` floats (mse tasks).
        mask: shape ``(T, B)`` bool, the steps that count in the loss and the metrics.
    """

    xs: np.ndarray
    ys: np.ndarray
    mask: np.ndarray


class Task(abc.ABC):
    """A stream of batches. Subclasses set ``n_in``, ``n_out``, ``loss`` and ``metric``."""

    n_in: int
    n_out: int
    loss: str
    #: name of the headline metric reported by :meth:`observe` (e.g. ``"level"``, ``"accuracy"``)
    metric: str

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):  # every setting ends up in config() and repr
            cls.__init__ = describe.record_init(cls.__init__)

    def config(self) -> dict:
        """Every constructor argument of this task (defaults included) as JSON data, under
        ``"type"`` the class name."""
        return {"type": type(self).__name__, **describe.plain(describe.init_args(self))}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in describe.init_args(self).items())
        return f"{type(self).__name__}({args})"

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """Draw a batch using ``rng`` (the only source of randomness)."""

    def observe(self, batch: Batch, logits: np.ndarray, losses: np.ndarray) -> dict:
        """Feedback after a batch was processed; returns metrics. May advance a curriculum.

        Args:
            batch: the batch just processed.
            logits: shape ``(T, B, n_out)``, readout at every step (with the weights of that step).
            losses: shape ``(T, B)``, per-step loss (0 where masked out).
        """
        m = batch.mask
        count = max(1, int(m.sum()))
        metrics = {"loss": float(losses[m].sum() / count)}
        if self.loss == "cross_entropy":
            metrics["accuracy"] = (
                float((logits.argmax(-1) == batch.ys)[m].mean()) if m.any() else 0.0
            )
        return metrics

    def evaluate(self, model, params) -> dict:
        """Held-out metrics for trained ``params`` (empty for tasks without a held-out set)."""
        return {}

    def state_dict(self) -> dict:
        """JSON-serialisable curriculum state (empty for stationary tasks)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
