"""Store-recall (LSNN, Bellec et al. 2018; the e-prop code base's ``storerecall_utils.py``).

Symbols 0, 1, STORE and RECALL, each driving one of 4 groups of Poisson input neurons
(``n_in = n_inputs``, split into 4 near-equal groups in that order); a group fires at ``rate`` Hz
(spike probability ``rate * dt`` per step) while its symbol is active, and is silent otherwise.
A trial is ``seq_len`` "character periods" of ``tau_char`` steps each (``T = seq_len * tau_char``).

* Every period that is not a RECALL carries a random bit (group 0 or 1 active).
* STORE and RECALL events alternate, starting with a STORE: while waiting, each period becomes the
  next event with probability ``p = 1 / (1 + seq_delay)`` (``seq_delay`` is the expected delay in
  periods). A STORE period shows its bit together with the STORE group; the bit of the following
  period is independent of it. (The reference copies the next period's bit onto the STORE period and
  then flips that next bit with probability 0.5, which gives the same distribution.)
* A sequence is redrawn until it is valid: at least one STORE and one RECALL, the last event is a
  RECALL, and the period right after a STORE is a plain bit period.
* Target (class 0 or 1) during every RECALL period: the bit shown with the most recent STORE. The
  loss mask is on for all ``tau_char`` steps of the RECALL periods only; cross-entropy over 2
  classes (``n_out = 2``).

The reference adds a firing-rate regulariser (target 10 Hz) to the loss; that belongs to the
model/rule, not the task, and is not included.

Metric: ``accuracy`` = fraction of RECALL periods whose decision, the argmax of the logits summed
over the period, equals the stored bit; ``recall_error = 1 - accuracy`` is the paper's "recall
error rate" (the reference decides by the argmax of the period-averaged *sign* of the outputs;
here the period-summed logits decide). Also ``step_accuracy`` (per masked step). Chance is 0.5.

Configurations (``dt`` in seconds):

* paper (the defaults, :attr:`StoreRecall.PAPER`, e-prop ``tutorial_store_recall.py``):
  ``n_inputs=100``, ``seq_len=12``, ``tau_char=200`` (200 ms at ``dt=1e-3``, ``T = 2400``),
  ``seq_delay=6``, ``rate=50``; model there: 100 neurons, 40% ALIF (tau_a = 1200 ms,
  beta = 1.7), Adam lr 0.002.
* small (tests, :meth:`StoreRecall.small`): ``n_inputs=20``, ``seq_len=6``, ``tau_char=10``,
  ``seq_delay=2``, ``rate=100`` (``T = 60``).

Held-out set: :meth:`StoreRecall.evaluate` on ``eval_size`` fixed trials.
Checked against the e-prop reference code named above.
"""

from __future__ import annotations

import numpy as np

from ..core import validate
from . import _common
from .base import Batch, Task

#: Input groups, in order.
BIT0, BIT1, STORE, RECALL = 0, 1, 2, 3
_NONE = -1
_MAX_TRIES = 10_000


#: Smallest probability that one draw of events is valid: (1 - 0.003)^10000 < 1e-13, so
#: :meth:`StoreRecall.sample` never runs out of its ``_MAX_TRIES`` draws in practice.
_MIN_VALID = 0.003


def valid_probability(seq_len: int, p: float) -> float:
    """Probability that one draw of :meth:`StoreRecall._events` is valid: exact, a Markov chain
    over ``(last event is a STORE, a STORE was seen, previous period was a STORE)`` raised to the
    power ``seq_len`` (``O(log seq_len)``)."""
    states = [(a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)]
    index = {s: i for i, s in enumerate(states)}
    M = np.zeros((8, 8))
    for (last_store, seen, prev_store), i in index.items():
        if not prev_store:  # an event may follow
            M[i, index[(not last_store, seen or not last_store, not last_store)]] += p
        M[i, index[(last_store, seen, False)]] += 1.0 - p  # a plain bit period
    start = np.zeros(8)
    start[index[(False, False, False)]] = 1.0
    dist = start @ np.linalg.matrix_power(M, seq_len)
    return float(
        sum(dist[i] for (last_store, seen, _), i in index.items() if seen and not last_store)
    )


class StoreRecall(_common.HeldOut, Task):
    """Store-recall (see module docstring).

    Args:
        n_inputs: number of Poisson input neurons (>= 4), split into 4 groups (0, 1, STORE, RECALL);
            this is the task's ``n_in``.
        seq_len: character periods per trial (>= 3).
        tau_char: steps per character period (>= 1).
        seq_delay: expected store-recall delay in periods (> 0); events occur with probability
            ``1 / (1 + seq_delay)`` per period.
        rate: firing rate of an active group (Hz, ``rate * dt <= 1``).
        dt: time step (seconds).
        eval_size: number of held-out trials used by :meth:`evaluate` (0: no evaluation).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.StoreRecall(n_inputs=20, seq_len=4, tau_char=20)
        >>> batch = task.sample(np.random.default_rng(0), 4)
        >>> batch.xs.shape, batch.ys.shape, batch.mask.shape     # (T, B, n_in), targets, (T, B)
        ((80, 4, 20), (80, 4), (80, 4))
    """

    n_out, loss, metric = 2, "cross_entropy", "accuracy"
    SMALL = {
        "n_inputs": 20,
        "seq_len": 6,
        "tau_char": 10,
        "seq_delay": 2.0,
        "rate": 100.0,
        "eval_size": 64,
    }
    PAPER = {
        "n_inputs": 100,
        "seq_len": 12,
        "tau_char": 200,
        "seq_delay": 6.0,
        "rate": 50.0,
        "dt": 1e-3,
    }

    def __init__(
        self,
        n_inputs: int = 100,
        seq_len: int = 12,
        tau_char: int = 200,
        seq_delay: float = 6.0,
        rate: float = 50.0,
        dt: float = 1e-3,
        eval_size: int = 256,
    ):
        self.n_in = validate.positive_int("n_inputs", n_inputs, minimum=4)
        self.seq_len = validate.positive_int("seq_len", seq_len, minimum=3)
        self.tau_char = validate.positive_int("tau_char", tau_char)
        self.seq_delay = validate.real("seq_delay", seq_delay, low=0.0, low_open=True)
        self.rate = validate.real("rate", rate, low=0.0)
        self.dt = validate.real("dt", dt, low=0.0, low_open=True)
        self.p_spike = _common.probability("rate", self.rate, self.dt)
        self.eval_size = validate.positive_int("eval_size", eval_size, minimum=0)
        self.p_event = 1.0 / (1.0 + self.seq_delay)
        p_valid = valid_probability(self.seq_len, self.p_event)
        if p_valid < _MIN_VALID:
            raise ValueError(
                f"seq_delay={self.seq_delay} with seq_len={self.seq_len} makes a "
                f"valid store-recall sequence too rare (probability {p_valid:.3g} per "
                f"draw, at least {_MIN_VALID} needed); choose seq_delay nearer "
                f"seq_len / 4 or a longer seq_len"
            )
        self.length = self.seq_len * self.tau_char
        validate.memory(
            "n_inputs",
            self.n_in,
            self.length * self.n_in * 8 * 2,
            "one trial of Poisson inputs (seq_len * tau_char steps)",
        )
        self.groups = np.array_split(np.arange(self.n_in), 4)

    @classmethod
    def small(cls, **overrides) -> StoreRecall:
        """The fast configuration used by the tests (:attr:`SMALL`), with ``overrides`` applied."""
        return cls(**{**cls.SMALL, **overrides})

    # -- symbols ---------------------------------------------------------------------------------
    def _events(self, rng) -> np.ndarray:
        """One valid event sequence ``(seq_len,)`` of ``_NONE``, ``STORE``, ``RECALL``."""
        L, p = self.seq_len, self.p_event
        for _ in range(_MAX_TRIES):
            events = np.full(L, _NONE)
            last = RECALL
            draws = rng.random(L)
            for t in range(L):
                if draws[t] < p:
                    last = STORE if last == RECALL else RECALL
                    events[t] = last
            stores = np.flatnonzero(events == STORE)
            if (
                len(stores)
                and last == RECALL
                and stores[-1] < L - 1
                and np.all(events[stores + 1] == _NONE)
            ):
                return events
        raise RuntimeError(
            f"no valid store-recall sequence in {_MAX_TRIES} draws; increase "
            f"seq_len={L} or lower seq_delay={self.seq_delay}"
        )

    def symbols(self, rng, batch_size: int):
        """Per-period ``(events, bits, targets)``, each of shape ``(seq_len, B)``.

        ``events``: ``-1`` (plain bit), ``STORE`` or ``RECALL``; ``bits``: the bit shown in each
        period (meaningless in RECALL periods); ``targets``: the stored bit in RECALL periods, else 0.
        """
        L = self.seq_len
        events = np.stack([self._events(rng) for _ in range(batch_size)], axis=1)
        bits = rng.integers(0, 2, size=(L, batch_size))
        targets = np.zeros((L, batch_size), dtype=np.int64)
        for b in range(batch_size):
            stored = 0
            for t in range(L):
                if events[t, b] == STORE:
                    stored = bits[t, b]
                elif events[t, b] == RECALL:
                    targets[t, b] = stored
        return events, bits, targets

    def sample(self, rng, batch_size):
        batch_size = _common.batch_size(self, batch_size)
        events, bits, targets = self.symbols(rng, batch_size)
        L, tau, B = self.seq_len, self.tau_char, batch_size
        active = np.zeros((L, B, 4), dtype=bool)  # which group is on in each period
        recall = events == RECALL
        active[..., BIT0] = (bits == 0) & ~recall
        active[..., BIT1] = (bits == 1) & ~recall
        active[..., STORE] = events == STORE
        active[..., RECALL] = recall
        prob = np.zeros((L, B, self.n_in))
        for g, idx in enumerate(self.groups):
            prob[:, :, idx] = np.where(active[..., g : g + 1], self.p_spike, 0.0)
        xs = _common.poisson(rng, np.repeat(prob, tau, axis=0))
        ys = np.repeat(targets, tau, axis=0)
        mask = np.repeat(recall, tau, axis=0)
        return Batch(xs=xs, ys=ys, mask=mask)

    # -- metrics ---------------------------------------------------------------------------------
    def metrics(self, batch, logits, losses) -> dict:
        """``loss``, ``step_accuracy``, ``accuracy`` (per RECALL period) and ``recall_error``."""
        metrics = Task.observe(self, batch, logits, losses)
        metrics["step_accuracy"] = metrics.pop("accuracy")
        correct, counted = _common.window_accuracy(logits, batch.ys, batch.mask, self.tau_char)
        metrics["accuracy"] = correct / counted if counted else 0.0
        metrics["recall_error"] = 1.0 - metrics["accuracy"] if counted else 1.0
        return metrics
