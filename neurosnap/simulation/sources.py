"""Input streams for :func:`neurosnap.simulate`: arrays, array files, Poisson and Bernoulli spike
sources, task streams. A :class:`Source` yields ``(steps, batch, n)`` chunks in order."""

from __future__ import annotations

import abc
import os

import numpy as np

from ..core import npz, validate
from ..tasks.base import Batch, Task


# -- input sources ---------------------------------------------------------------------------------
class Source(abc.ABC):
    """A stream of inputs ``(steps, batch, n)``, read in consecutive chunks.

    Attributes:
        n: number of input channels (the model's ``n_in``).
        batch: number of parallel sequences ``B``.
        length: number of steps, ``None`` for an unbounded stream.
    """

    n: int
    batch: int
    length: int | None = None

    @abc.abstractmethod
    def read(self, steps: int) -> np.ndarray:
        """The next ``steps`` steps, shape ``(k, batch, n)`` float64 with ``k <= steps`` (fewer only
        at the end of a finite source)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Restart the stream from its beginning (same values again)."""

    def take(self, steps: int) -> np.ndarray:
        """Restart and return the first ``steps`` steps as one array (for small runs and tests)."""
        self.reset()
        out = self.read(validate.positive_int("steps", steps))
        self.reset()
        return out

    def next_chunk(self, max_steps):
        """``(xs, new_sequence)``: the next chunk and whether the state is reset before it."""
        return self.read(max_steps), False

    def describe(self) -> dict:
        """JSON description of the source (stored in the recording's metadata)."""
        return {"kind": type(self).__name__}


def _floats(name, value):
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}") from None


class _RandomSpikes(Source):
    def __init__(self, p, n, seed, batch, argname):
        self.n = validate.positive_int("n", n)
        self.batch = validate.positive_int("batch", batch)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        p = np.array(p, dtype=np.float64)
        if p.ndim not in (0, 1) or (p.ndim == 1 and p.shape != (self.n,)):
            raise ValueError(
                f"{argname} must be a number or an array of shape (n={self.n},), "
                f"got shape {p.shape}"
            )
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{argname} must be finite")
        self._p = p
        self.reset()

    def reset(self):
        self._rng = np.random.default_rng(self.seed)

    def read(self, steps):
        steps = validate.positive_int("steps", steps)
        # one uniform per (step, sequence, channel) in C order: chunks concatenate to the same stream
        return (self._rng.random((steps, self.batch, self.n)) < self._p).astype(np.float64)


class PoissonSource(_RandomSpikes):
    """Poisson spike trains, discretised: channel ``k`` spikes in a step with probability
    ``rate_hz[k] * dt`` (as in the e-prop code and ``ns.tasks.Pattern``), independently.

    Args:
        rate_hz: rate in Hz (spikes per second), a number or one per channel ``(n,)``; ``>= 0`` and
            ``rate_hz * dt <= 1``.
        n: number of channels (the model's ``n_in``).
        dt: time step in seconds (the cell's ``dt``).
        seed: seed of the spike trains; the stream does not depend on the chunk sizes it is read in.
        batch: number of independent sequences.
    """

    def __init__(self, rate_hz, n: int, dt: float, seed: int = 0, batch: int = 1):
        self.dt = validate.real("dt", dt, low=0.0, low_open=True)
        rate = _floats("rate_hz", rate_hz)
        if np.any(rate < 0):
            raise ValueError(f"rate_hz must be >= 0, got {rate_hz!r}")
        if np.any(rate * self.dt > 1):
            raise ValueError(
                f"rate_hz * dt must be <= 1 (one spike per step at most), got "
                f"rate_hz={rate_hz!r}, dt={self.dt}"
            )
        self.rate_hz = rate
        super().__init__(rate * self.dt, n, seed, batch, "rate_hz")

    def describe(self):
        return {
            "kind": "poisson",
            "rate_hz": self.rate_hz.tolist(),
            "n": self.n,
            "dt": self.dt,
            "seed": self.seed,
            "batch": self.batch,
        }


class BernoulliSource(_RandomSpikes):
    """Independent 0/1 inputs: channel ``k`` is 1 in a step with probability ``p[k]``.

    Args:
        p: probability per step, a number or one per channel ``(n,)``, in [0, 1].
        n: number of channels (the model's ``n_in``).
        seed: seed; the stream does not depend on the chunk sizes it is read in.
        batch: number of independent sequences.
    """

    def __init__(self, p, n: int, seed: int = 0, batch: int = 1):
        q = _floats("p", p)
        if np.any(q < 0) or np.any(q > 1):
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        super().__init__(q, n, seed, batch, "p")

    def describe(self):
        return {
            "kind": "bernoulli",
            "p": self._p.tolist(),
            "n": self.n,
            "seed": self.seed,
            "batch": self.batch,
        }


class ArraySource(Source):
    """A finite input array ``(T, B, n)`` (or ``(T, n)``, one sequence), read in chunks without
    copying it whole (a memory-mapped ``.npy`` stays on disk).

    Args:
        xs: the inputs; real numbers (bool and int are converted chunk by chunk).
        name: the argument name used in error messages.
    """

    def __init__(self, xs, name: str = "inputs"):
        if isinstance(xs, (np.matrix, np.ma.MaskedArray)):
            raise TypeError(
                f"{name} must be a plain numpy array (np.asarray), got "
                f"{type(xs).__module__}.{type(xs).__name__}"
            )
        if not isinstance(xs, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(xs).__name__}")
        if xs.dtype == object or not (
            np.issubdtype(xs.dtype, np.floating)
            or np.issubdtype(xs.dtype, np.integer)
            or xs.dtype == np.bool_
        ):
            raise TypeError(f"{name} must be a real-valued array, got dtype {xs.dtype}")
        if xs.ndim == 2:
            xs = xs[:, None, :]
        if xs.ndim != 3 or xs.size == 0:
            raise ValueError(f"{name} must have shape (T, B, n_in) or (T, n_in), got {xs.shape}")
        self.xs, self.name = xs, name
        self.length, self.batch, self.n = xs.shape
        self._pos = 0

    def reset(self):
        self._pos = 0

    def read(self, steps):
        steps = validate.positive_int("steps", steps)
        chunk = np.asarray(self.xs[self._pos : self._pos + steps], dtype=np.float64)
        if not np.all(np.isfinite(chunk)):
            raise ValueError(
                f"{self.name} contains NaN or inf (steps {self._pos}..{self._pos + len(chunk) - 1})"
            )
        self._pos += len(chunk)
        return chunk

    def describe(self):
        return {"kind": "array", "shape": list(self.xs.shape), "dtype": str(self.xs.dtype)}


class TaskSource(Source):
    """Sequences of a task (``task.sample(rng, batch).xs``) one after another.

    Args:
        task: an ``ns.tasks`` task.
        batch: sequences per sample.
        seed: seed of the ``rng`` passed to ``task.sample``.
        reset: if True (default) the network state is reset to its initial state at the start of
            every sequence, as in training (``ns.train``); if False it runs on continuously.
    """

    def __init__(self, task: Task, batch: int = 1, seed: int = 0, reset: bool = True):
        if not isinstance(task, Task):
            raise TypeError(f"task must be an ns.tasks task, got {type(task).__name__}")
        self.task, self.n = task, task.n_in
        self.batch = validate.positive_int("batch", batch)
        self.seed = validate.positive_int("seed", seed, minimum=0)
        if not isinstance(reset, bool):
            raise TypeError(f"reset must be a bool, got {reset!r}")
        self.reset_state = reset
        self.reset()

    def reset(self):
        self._rng = np.random.default_rng(self.seed)
        self._buf, self._pos, self.sequences = None, 0, 0

    def next_chunk(self, max_steps):
        new = False
        if self._buf is None or self._pos >= len(self._buf):
            xs = self.task.sample(self._rng, self.batch).xs
            self._buf = validate.array(
                "task.sample(...).xs", xs, shape=(None, self.batch, self.n), dtype=np.float64
            )
            self._pos, new = 0, self.reset_state
            self.sequences += 1
        chunk = self._buf[self._pos : self._pos + max_steps]
        self._pos += len(chunk)
        return chunk, new

    def read(self, steps):
        steps = validate.positive_int("steps", steps)
        parts, got = [], 0
        while got < steps:
            chunk, _ = self.next_chunk(steps - got)
            parts.append(chunk)
            got += len(chunk)
        return np.concatenate(parts)

    def describe(self):
        return {
            "kind": "task",
            "task": type(self.task).__name__,
            "batch": self.batch,
            "seed": self.seed,
            "reset": self.reset_state,
        }


def load_inputs(path) -> np.ndarray:
    """Inputs from a ``.npy`` (memory-mapped, read lazily) or ``.npz`` file (key ``xs``, or its only
    array). Headers are checked before any data is read (:mod:`neurosnap.core.npz`): object arrays
    are refused (nothing is unpickled), truncated or corrupt files are reported as such, and only
    the input member of an ``.npz`` is read."""
    path = npz.check_file(path, "inputs")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"inputs file must end in .npy or .npz, got {path}")
    if path.suffix == ".npy":
        return npz.memmap(path, npz.npy_header(path, "inputs"))

    def select(found):
        keys = list(found)
        key = "xs" if "xs" in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ValueError(f"inputs file {path} holds {keys}: name the input array 'xs'")
        return [key]

    return next(iter(npz.read(path, "inputs", select).values()))


def as_source(inputs, model, batch):
    """``inputs`` of :func:`neurosnap.simulate` as a :class:`Source`."""
    if isinstance(inputs, Source):
        return inputs
    if isinstance(inputs, (str, os.PathLike)):
        return ArraySource(load_inputs(inputs), name=f"inputs file {inputs}")
    if isinstance(inputs, Batch):
        return ArraySource(inputs.xs)
    if isinstance(inputs, Task):
        return TaskSource(inputs, batch=batch)
    if isinstance(inputs, np.ndarray):
        return ArraySource(inputs)
    raise TypeError(
        "inputs must be an array (T, B, n_in), a .npy/.npz path, a Source "
        "(PoissonSource, BernoulliSource, ...), an ns.tasks task or a Batch, got "
        f"{type(inputs).__name__}"
    )
