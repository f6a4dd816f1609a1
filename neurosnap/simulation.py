"""Run a network for a long time and record what it did: events, chosen states, population rates.

:func:`simulate` drives a model (any cell; trained or fresh parameters) with inputs from an array,
an array file, a Poisson or Bernoulli spike source or a task stream, in chunks of ``chunk_steps``
steps, carrying the state across chunks. It records

- **events** as lists, one entry per event: ``spike_steps`` (time step, from 0), ``spike_units`` and
  ``spike_batch`` (sequence index), ordered by time step, then sequence, then unit;
- **states**: chosen state variables (e.g. ``v``) of chosen ``units`` at every step, ``(T, B, U)``;
- the **population rate**: events per unit per second (``dt`` seconds per step) in bins of
  ``rate_bin`` steps, ``(n_bins, B)``; the last bin may be shorter and is normalised by its length.

LIF and ALIF cells with a Heaviside gate run event-driven (a numba kernel with the CSR of
:class:`neurosnap.sparse.lif_events.EventLIF`: per step ``O(n)`` for the membranes plus
``O(events x fan-out)``); their events equal ``model.run``'s, their states equal it up to the
summation order of the synaptic input (round-off). Every other cell (EGRU, LeakyRNN, Smooth gates)
runs ``model.cell.step``, bit-identical to ``model.run``.

With ``out=DIR`` every chunk's records go to ``DIR/.chunks/`` as ``.npy`` files as soon as they are
made, and at the end they are copied, one chunk at a time, into ``DIR/recording.npz`` (uncompressed,
no pickles) next to ``DIR/recording.json``: memory stays bounded by one chunk, whatever the number
of steps. The format (``docs/guide/simulation.md``) is readable with numpy and json alone::

    import json, numpy as np
    meta = json.load(open("DIR/recording.json"))
    with np.load("DIR/recording.npz", allow_pickle=False) as f:
        t = f["spike_steps"] * meta["dt"]; i = f["spike_units"]

Arrays of ``recording.npz`` (``T`` steps, ``B`` sequences, ``U`` recorded units, ``K`` events):

- ``spike_steps`` ``(K,)`` int64: time step of each event (its time is ``spike_steps * dt``);
- ``spike_units`` ``(K,)`` int32: unit of each event;
- ``spike_batch`` ``(K,)`` int32: sequence (batch index) of each event;
- ``rate`` ``(n_bins, B)`` float64: population rate, events per unit per second (per step when
  ``time_unit`` is ``"step"``);
- ``units`` ``(U,)`` int64: the units whose states were recorded;
- ``state_<name>`` ``(T, B, U)``, the model's dtype: state variable ``<name>`` (e.g. ``state_v``).
"""
from __future__ import annotations

import abc
import datetime
import json
import os
import shutil
import struct
import tempfile
import time
import zipfile
from pathlib import Path

import numba
import numpy as np

from .cells.alif import ALIF
from .cells.leaky_rnn import LeakyRNN
from .cells.lif import LIF
from .core import npz, validate
from .gates import Heaviside
from .io._model import model_config, network_hash
from .model import Model
from .tasks.base import Batch, Task

FORMAT = "neurosnap-recording"
FORMAT_VERSION = 1
RECORD_KINDS = ("events", "rate", "states")
ENGINES = ("auto", "event", "step")
_FLUSH_BYTES = 2 << 20             # per-key in-memory buffer before a chunk file is written


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

    def _next(self, max_steps):
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
            raise ValueError(f"{argname} must be a number or an array of shape (n={self.n},), "
                             f"got shape {p.shape}")
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
            raise ValueError(f"rate_hz * dt must be <= 1 (one spike per step at most), got "
                             f"rate_hz={rate_hz!r}, dt={self.dt}")
        self.rate_hz = rate
        super().__init__(rate * self.dt, n, seed, batch, "rate_hz")

    def describe(self):
        return {"kind": "poisson", "rate_hz": self.rate_hz.tolist(), "n": self.n, "dt": self.dt,
                "seed": self.seed, "batch": self.batch}


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
        return {"kind": "bernoulli", "p": self._p.tolist(), "n": self.n, "seed": self.seed,
                "batch": self.batch}


class ArraySource(Source):
    """A finite input array ``(T, B, n)`` (or ``(T, n)``, one sequence), read in chunks without
    copying it whole (a memory-mapped ``.npy`` stays on disk).

    Args:
        xs: the inputs; real numbers (bool and int are converted chunk by chunk).
        name: the argument name used in error messages.
    """

    def __init__(self, xs, name: str = "inputs"):
        if isinstance(xs, (np.matrix, np.ma.MaskedArray)):
            raise TypeError(f"{name} must be a plain numpy array (np.asarray), got "
                            f"{type(xs).__module__}.{type(xs).__name__}")
        if not isinstance(xs, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(xs).__name__}")
        if xs.dtype == object or not (np.issubdtype(xs.dtype, np.floating)
                                      or np.issubdtype(xs.dtype, np.integer) or xs.dtype == np.bool_):
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
        chunk = np.asarray(self.xs[self._pos:self._pos + steps], dtype=np.float64)
        if not np.all(np.isfinite(chunk)):
            raise ValueError(f"{self.name} contains NaN or inf (steps {self._pos}.."
                             f"{self._pos + len(chunk) - 1})")
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

    def _next(self, max_steps):
        new = False
        if self._buf is None or self._pos >= len(self._buf):
            xs = self.task.sample(self._rng, self.batch).xs
            self._buf = validate.array("task.sample(...).xs", xs, shape=(None, self.batch, self.n),
                                       dtype=np.float64)
            self._pos, new = 0, self.reset_state
            self.sequences += 1
        chunk = self._buf[self._pos:self._pos + max_steps]
        self._pos += len(chunk)
        return chunk, new

    def read(self, steps):
        steps = validate.positive_int("steps", steps)
        parts, got = [], 0
        while got < steps:
            chunk, _ = self._next(steps - got)
            parts.append(chunk)
            got += len(chunk)
        return np.concatenate(parts)

    def describe(self):
        return {"kind": "task", "task": type(self.task).__name__, "batch": self.batch,
                "seed": self.seed, "reset": self.reset_state}


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


def load_params(model: Model, path) -> dict[str, np.ndarray]:
    """Parameters for ``model`` from a ``params.npz`` (written by ``neurosnap train``) or a training
    ``checkpoint.npz`` (its ``params/*`` arrays), checked with ``model.check_params``. Names,
    shapes and dtypes are checked from the members' headers before any data is read, and only the
    parameter members are read (:mod:`neurosnap.core.npz`). Floating arrays are cast to
    ``model.dtype``."""
    shapes = model.param_shapes()

    def select(found):
        prefix = "params/" if "__meta__.json" in found else ""       # a training checkpoint
        names = {k[len(prefix):] for k in found if k.startswith(prefix) and k != "__meta__.json"}
        if names != set(shapes):
            raise ValueError(f"params file {path} does not fit the model: missing "
                             f"{sorted(set(shapes) - names)}, unexpected "
                             f"{sorted(names - set(shapes))[:10]}")
        for name, shape in shapes.items():
            head = found[prefix + name]
            if head.shape != shape or head.dtype.kind != "f":
                raise ValueError(f"params file {path} does not fit the model: {name} must be "
                                 f"floats of shape {shape}, got {head.dtype} {head.shape}")
        return [prefix + name for name in shapes]

    arrays = npz.read(path, "params", select)
    params = {k.split("/", 1)[-1]: v.astype(model.dtype) for k, v in arrays.items()}
    try:
        return model.check_params(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params file {path} does not fit the model: {exc}") from None


# -- the recording ---------------------------------------------------------------------------------
class _LazyNpz:
    """Arrays of an uncompressed ``.npz``, memory-mapped on first access (nothing is read into
    memory until used; slices of a long recording stay cheap). Members that cannot be mapped
    (compressed archives) are read normally. Every member's header is checked when the file is
    opened (:mod:`neurosnap.core.npz`: no object arrays, declared sizes present in the file)."""

    def __init__(self, path, what="recording"):
        self.path, self.what, self._cache = Path(path), what, {}
        self._heads = npz.headers(self.path, what)
        self.files = list(self._heads)

    def __contains__(self, key):
        return key in self._heads

    def __getitem__(self, key):
        if key not in self._cache:
            self._cache[key] = self._map(key)
        return self._cache[key]

    def _map(self, key):
        head = self._heads[key]
        info = head.info
        if info.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
            if local[:4] == b"PK\x03\x04":                   # a local file header
                n_name, n_extra = struct.unpack("<HH", local[26:30])
                return npz.memmap(self.path, head, info.header_offset + 30 + n_name + n_extra)
        return npz.read(self.path, self.what, lambda found: [key])[key]


class Recording:
    """What :func:`simulate` recorded (format in the module docstring).

    When the recording lives in a directory (``simulate(..., out=DIR)`` or :meth:`load`) its arrays
    are memory-mapped from ``recording.npz`` on first access: nothing is read until used, and
    slices of a long recording cost only what they touch.

    Attributes:
        meta: the JSON metadata (``dt``, ``n_steps``, ``batch``, ``n_units``, ``units``,
            ``rate_bin``, ``network_hash``, ``model``, ``input``, ``recorded``, ...).
        path: the directory it was loaded from or saved to, or ``None``.
    """

    def __init__(self, arrays, meta: dict, path=None):
        self._arrays, self.meta = arrays, meta
        self.path = None if path is None else Path(path)

    # -- metadata
    @property
    def dt(self) -> float:
        """Seconds per step (1.0 with ``time_unit == "step"`` for cells without a ``dt``)."""
        return float(self.meta["dt"])

    @property
    def n_steps(self) -> int:
        """Number of simulated steps ``T``."""
        return int(self.meta["n_steps"])

    @property
    def n_units(self) -> int:
        """Number of units ``n`` of the network."""
        return int(self.meta["n_units"])

    @property
    def batch(self) -> int:
        """Number of parallel sequences ``B``."""
        return int(self.meta["batch"])

    @property
    def network_hash(self) -> str:
        """SHA-256 of the network (``neurosnap.io._model.network_hash``)."""
        return self.meta["network_hash"]

    def _get(self, key, what):
        if key not in self._arrays:
            raise ValueError(f"{what} was not recorded (record=... did not include it)")
        return self._arrays[key]

    # -- events
    @property
    def spike_steps(self) -> np.ndarray:
        """Time step of each event, ``(K,)`` int64, sorted."""
        return self._get("spike_steps", "events")

    @property
    def spike_units(self) -> np.ndarray:
        """Unit of each event, ``(K,)`` int32."""
        return self._get("spike_units", "events")

    @property
    def spike_batch(self) -> np.ndarray:
        """Sequence (batch index) of each event, ``(K,)`` int32."""
        return self._get("spike_batch", "events")

    @property
    def spike_times(self) -> np.ndarray:
        """Time of each event, ``spike_steps * dt`` (seconds, or steps for cells without dt)."""
        return self.spike_steps * self.dt

    @property
    def n_events(self) -> int:
        """Number of recorded events ``K``."""
        return int(self.meta["n_events"])

    def spike_counts(self, batch: int | None = None) -> np.ndarray:
        """Events per unit, ``(n,)``, over all sequences or one ``batch`` index (read in blocks, so
        a memory-mapped recording is never loaded whole)."""
        counts = np.zeros(self.n_units, dtype=np.int64)
        units, seq, block = self.spike_units, self.spike_batch, 1 << 22
        for a in range(0, len(units), block):
            u = np.asarray(units[a:a + block])
            if batch is not None:
                u = u[np.asarray(seq[a:a + block]) == batch]
            counts += np.bincount(u, minlength=self.n_units)
        return counts

    def isi(self, batch: int | None = None, max_events: int | None = None) -> np.ndarray:
        """Inter-event intervals (time units) of every unit of every (or one) sequence, pooled;
        from the first ``max_events`` events only, if given (they are in time order)."""
        k = self.n_events if max_events is None else min(self.n_events, max_events)
        steps = np.asarray(self.spike_steps[:k])
        units, seq = np.asarray(self.spike_units[:k]), np.asarray(self.spike_batch[:k])
        if batch is not None:
            keep = seq == batch
            steps, units, seq = steps[keep], units[keep], seq[keep]
        order = np.lexsort((steps, units, seq))            # by sequence, unit, then time
        steps, key = steps[order], seq[order].astype(np.int64) * self.n_units + units[order]
        same = key[1:] == key[:-1]
        return (steps[1:] - steps[:-1])[same] * self.dt

    # -- rates and states
    @property
    def rate(self) -> np.ndarray:
        """Population rate per bin of ``meta["rate_bin"]`` steps, ``(n_bins, B)`` (events per unit
        per second; per step for cells without ``dt``)."""
        return self._get("rate", "rate")

    @property
    def rate_times(self) -> np.ndarray:
        """Start time of each rate bin, ``(n_bins,)``."""
        return np.arange(len(self.rate)) * int(self.meta["rate_bin"]) * self.dt

    @property
    def units(self) -> np.ndarray:
        """Units whose states were recorded, ``(U,)``."""
        return self._get("units", "states") if "units" in self._arrays \
            else np.zeros(0, dtype=np.int64)

    @property
    def states(self) -> dict[str, np.ndarray]:
        """Recorded state variables by name, each ``(T, B, U)`` for the units :attr:`units`."""
        return {name: self._arrays[f"state_{name}"] for name in self.meta["recorded"]["states"]}

    @property
    def times(self) -> np.ndarray:
        """Time of every step, ``(T,)`` (the time axis of :attr:`states`)."""
        return np.arange(self.n_steps) * self.dt

    # -- files
    def save(self, path) -> Path:
        """Write ``path/recording.npz`` and ``path/recording.json`` (``path`` is a directory);
        return the directory."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(self._arrays[k]) for k in _array_keys(self.meta)}
        _atomic_savez(path / "recording.npz", arrays)
        _write_json(path / "recording.json", self.meta)
        self.path = path
        return path

    @classmethod
    def load(cls, path) -> "Recording":
        """Open a recording directory (or its ``recording.npz`` / ``recording.json``)."""
        path = Path(path)
        if path.suffix in (".npz", ".json"):
            path = path.parent
        meta_path, npz_path = path / "recording.json", path / "recording.npz"
        if not meta_path.is_file() or not npz_path.is_file():
            raise ValueError(f"{path} is not a recording: it needs recording.json and recording.npz")
        if meta_path.stat().st_size > _MAX_META_BYTES:
            raise ValueError(f"{meta_path} is not a valid neurosnap recording file: larger than "
                             f"{_MAX_META_BYTES} bytes")
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{meta_path} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError(f"{meta_path} is not a valid neurosnap recording file: JSON nested "
                             "too deeply") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT \
                or meta.get("format_version") != FORMAT_VERSION:
            got = meta if not isinstance(meta, dict) else \
                f"format={meta.get('format')!r}, format_version={meta.get('format_version')!r}"
            raise ValueError(f"{meta_path} is not a {FORMAT} version {FORMAT_VERSION} file "
                             f"({str(got)[:80]})")
        _check_recording_meta(meta_path, meta)
        arrays = _LazyNpz(npz_path)
        expected = _expected_arrays(meta)
        missing = set(expected) - set(arrays.files)
        if missing:
            raise ValueError(f"{npz_path} lacks the arrays {sorted(missing)} its metadata lists")
        for key, (dtype, shape) in expected.items():
            head = arrays._heads[key]
            if head.dtype != dtype or head.shape != shape:
                raise ValueError(f"{npz_path} is not a valid neurosnap recording file: {key} must "
                                 f"be {dtype} of shape {shape} (from recording.json), got "
                                 f"{head.dtype} {head.shape}")
        return cls(arrays, meta, path)

    def __repr__(self):
        rec = self.meta["recorded"]
        return (f"Recording({self.meta['model']['cell']} n={self.n_units}, T={self.n_steps}, "
                f"B={self.batch}, events={self.n_events if rec['events'] else 'not recorded'}, "
                f"states={rec['states']}, units={len(self.meta['units'])})")


_MAX_META_BYTES = 64 << 20


def _check_recording_meta(path, meta):
    """Validate the metadata keys :class:`Recording` uses (types and ranges)."""
    def bad(key, expected):
        value = meta.get(key)
        raise ValueError(f"{path} is not a valid neurosnap recording file: {key!r} must be "
                         f"{expected}, got {str(value)[:60]}")

    for key, low in (("n_steps", 1), ("batch", 1), ("n_units", 1), ("n_events", 0),
                     ("rate_bin", 1)):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) \
                or not low <= value <= validate.MAX_COUNT:
            bad(key, f"an integer in [{low}, {validate.MAX_COUNT}]")
    dt = meta.get("dt")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < float("inf") \
            or not (dt * meta["n_units"] > 1e-300 and dt * meta["n_steps"] < 1e300):
        bad("dt", "a positive number whose times (dt * n_steps) and rates (1 / (n_units * dt)) "
                  "are finite")
    try:
        validate.memory("n_units", meta["n_units"], meta["n_units"] * 8 * 4,
                        "per-unit event counts")
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid neurosnap recording file: {exc}") from None
    rec = meta.get("recorded")
    if not isinstance(rec, dict) or not isinstance(rec.get("events"), bool) \
            or not isinstance(rec.get("rate"), bool) or not isinstance(rec.get("states"), list) \
            or not all(isinstance(v, str) and v.isidentifier() for v in rec["states"]) \
            or len(set(rec["states"])) != len(rec["states"]):
        bad("recorded", "an object {events: bool, rate: bool, states: [names]}")
    units = meta.get("units")
    if not isinstance(units, list) or not all(
            isinstance(u, int) and not isinstance(u, bool) and 0 <= u < meta["n_units"]
            for u in units):
        bad("units", f"a list of unit indices in [0, {meta['n_units']})")
    if rec["states"] and not units:
        bad("units", "non-empty when states are recorded")
    if not isinstance(meta.get("network_hash"), str):
        bad("network_hash", "a string")
    if not isinstance(meta.get("model"), dict) or not isinstance(meta["model"].get("cell"), str):
        bad("model", "an object with a 'cell' name")


def _expected_arrays(meta):
    """``{key: (dtype, shape)}`` of the arrays a recording's metadata describes."""
    T, B, K, U = meta["n_steps"], meta["batch"], meta["n_events"], len(meta["units"])
    dtypes = meta.get("arrays", {})
    expected = {}
    if meta["recorded"]["events"]:
        expected.update(spike_steps=(np.dtype(np.int64), (K,)),
                        spike_units=(np.dtype(np.int32), (K,)),
                        spike_batch=(np.dtype(np.int32), (K,)))
    if meta["recorded"]["rate"]:
        expected["rate"] = (np.dtype(np.float64), (-(-T // meta["rate_bin"]), B))
    if meta["recorded"]["states"]:
        expected["units"] = (np.dtype(np.int64), (U,))
        for v in meta["recorded"]["states"]:
            name = dtypes.get(f"state_{v}", {}).get("dtype") if isinstance(dtypes, dict) else None
            if name not in ("float32", "float64"):
                raise ValueError(f"recording metadata: arrays['state_{v}'] must give dtype "
                                 f"float32 or float64, got {name!r}")
            expected[f"state_{v}"] = (np.dtype(name), (T, B, U))
    return expected


def _array_keys(meta):
    rec = meta["recorded"]
    keys = ["spike_steps", "spike_units", "spike_batch"] if rec["events"] else []
    keys += ["rate"] if rec["rate"] else []
    keys += (["units"] + [f"state_{v}" for v in rec["states"]]) if rec["states"] else []
    return keys


def _write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _publish(tmp, path):
    """Rename a finished temporary file over ``path`` with ordinary permissions (mkstemp's are
    owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def _atomic_savez(path, arrays):
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- storing records chunk by chunk ----------------------------------------------------------------
class _Store:
    """Arrays growing along axis 0, kept in memory or streamed to ``DIR/.chunks/*.npy``."""

    def __init__(self, specs, out=None):
        self.specs = specs                              # key -> (dtype, trailing shape)
        self.out = None if out is None else Path(out)
        self.pending = {k: [] for k in specs}           # not yet written
        self.pending_bytes = {k: 0 for k in specs}
        self.files = {k: [] for k in specs}             # (path, rows) written so far
        if self.out is not None:
            self.chunk_dir = self.out / ".chunks"
            if self.chunk_dir.exists():
                shutil.rmtree(self.chunk_dir)
            self.chunk_dir.mkdir(parents=True)

    def append(self, key, array):
        if len(array) == 0:
            return
        self.pending[key].append(np.array(array, dtype=self.specs[key][0], copy=True))
        self.pending_bytes[key] += array.nbytes
        if self.out is not None and self.pending_bytes[key] >= _FLUSH_BYTES:
            self._flush(key)

    def _flush(self, key):
        if not self.pending[key]:
            return
        block = np.concatenate(self.pending[key])
        path = self.chunk_dir / f"{key}.{len(self.files[key]):06d}.npy"
        np.save(path, block)
        self.files[key].append((path, len(block)))
        self.pending[key], self.pending_bytes[key] = [], 0

    def flush_all(self):
        if self.out is not None:
            for key in self.specs:
                self._flush(key)

    def arrays(self):
        """In-memory mode: the concatenated arrays."""
        out = {}
        for key, (dtype, shape) in self.specs.items():
            parts = self.pending[key]
            out[key] = np.concatenate(parts) if parts else np.zeros((0,) + shape, dtype)
        return out

    def write_npz(self, path, extra):
        """Disk mode: stream every key's chunk files into one uncompressed ``.npz`` (one chunk in
        memory at a time), plus the small ``extra`` arrays; then delete the chunk files."""
        self.flush_all()
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, (dtype, shape) in self.specs.items():
                    rows = sum(r for _, r in self.files[key])
                    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                              "fortran_order": False, "shape": (rows,) + tuple(shape)}
                    with zf.open(key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array_header_2_0(f, header)
                        for chunk_path, _ in self.files[key]:
                            block = np.load(chunk_path, allow_pickle=False)
                            f.write(np.ascontiguousarray(block).data)
                            del block
                for key, value in extra.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
            _publish(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        shutil.rmtree(self.chunk_dir)


class _RateBinner:
    """Turns per-step event counts ``(k, B)`` into rates per bin of ``width`` steps."""

    def __init__(self, width, batch, scale):
        self.width, self.scale = width, scale          # scale = 1 / (n * dt)
        self.acc, self.filled = np.zeros(batch, dtype=np.int64), 0

    def push(self, counts):
        out, pos, k = [], 0, len(counts)
        while pos < k:
            take = min(self.width - self.filled, k - pos)
            self.acc += counts[pos:pos + take].sum(axis=0)
            self.filled += take
            pos += take
            if self.filled == self.width:
                out.append(self.acc * (self.scale / self.width))
                self.acc[:], self.filled = 0, 0
        return np.array(out, dtype=np.float64).reshape(len(out), len(self.acc))

    def finish(self):
        if self.filled == 0:
            return np.zeros((0, len(self.acc)))
        return (self.acc * (self.scale / self.filled))[None].astype(np.float64)


# -- runners: one chunk at a time, state carried -----------------------------------------------
class _StepRunner:
    """Any cell: ``model.cell.step``, as in ``model.run`` (bit-identical)."""

    def __init__(self, model, params, batch, var_idx, units, want_events):
        self.model, self.cell, self.B = model, model.cell, batch
        self.cp = model.cell_params(params)
        self.var_idx, self.units, self.want_events = var_idx, units, want_events
        self.reset()

    def reset(self):
        self.state = self.cell.initial_state(self.B, self.model.dtype)

    def run(self, xs, t0, emit):
        k = len(xs)
        counts = np.zeros((k, self.B), dtype=np.int64)
        st = np.empty((k, self.B, len(self.var_idx), len(self.units)), dtype=self.model.dtype)
        steps, units, batch = [], [], []
        for j in range(k):
            self.state, _ = self.cell.step(self.cp, self.state, xs[j])
            if self.want_events:
                ev = self.cell.output(self.state, self.cp)[1]
                counts[j] = ev.sum(axis=1)
                b, u = np.nonzero(ev)
                if len(u):
                    steps.append(np.full(len(u), t0 + j, dtype=np.int64))
                    units.append(u)
                    batch.append(b)
            if len(self.units):
                st[j] = self.state[:, self.var_idx][:, :, self.units]
        if steps:
            emit(np.concatenate(steps), np.concatenate(units), np.concatenate(batch))
        return counts, st

    def final_state(self):
        """The state after the last chunk, by name (for the non-finite guard)."""
        return {"state": self.state}


class _EventRunner:
    """LIF/ALIF with a Heaviside gate: event-driven numba kernel on EventLIF's CSR."""

    def __init__(self, model, params, batch, var_idx, units, want_events):
        from .sparse.lif_events import EventLIF
        ev = EventLIF(model, params)
        self.model, self.B, self.n = model, batch, model.cell.n_hidden
        self.csr = (ev.out_ptr, ev.out_post, ev.out_w, ev.w_in_t, ev.bias)
        self.constants, self.subtract = ev.constants, ev.subtract
        self.v_leak = ev.constants[1]
        self.var_codes = np.asarray(var_idx, dtype=np.int64)   # 0 v, 1 i, 2 a (state order)
        self.units = np.asarray(units, dtype=np.int64)
        self.want_events = want_events
        cap = max(self.B * self.n, 1 << 17)
        self.buf = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int32))
        dtype = model.dtype
        self.v = np.empty((self.B, self.n), dtype)
        self.cur = np.empty((self.B, self.n), dtype)
        self.a = np.empty((self.B, self.n), dtype)
        self.rec = np.zeros(self.n, dtype)
        self.inp = np.zeros(self.n, dtype)
        self.prev = np.empty((self.B, self.n), np.int64)
        self.n_prev = np.zeros(self.B, np.int64)
        self.reset()

    def final_state(self):
        """The state after the last chunk, by name (for the non-finite guard)."""
        return {"v": self.v, "i": self.cur, "a": self.a}

    def reset(self):
        self.v[:] = self.v_leak
        self.cur[:] = 0
        self.a[:] = 0
        v_th, beta = self.constants[0], self.constants[6]
        for b in range(self.B):                         # spikes z_{-1} of the initial state
            idx = np.nonzero(self.v[b] - v_th - beta * self.a[b] > 0)[0]
            self.prev[b, :len(idx)] = idx
            self.n_prev[b] = len(idx)

    def run(self, xs, t0, emit):
        xs = np.ascontiguousarray(xs, dtype=self.model.dtype)
        k = len(xs)
        counts = np.zeros((k, self.B), dtype=np.int64)
        st = np.empty((k, self.B, len(self.var_codes), len(self.units)), dtype=self.model.dtype)
        n_spk = np.zeros(1, np.int64)
        t = 0
        while t < k:
            t = _lif_chunk(xs, t, t0, self.v, self.cur, self.a, self.rec, self.inp, self.prev,
                           self.n_prev, *self.csr, *self.constants, self.subtract,
                           self.want_events, *self.buf, n_spk, counts, self.units,
                           self.var_codes, st)
            m = int(n_spk[0])
            if m:
                emit(self.buf[0][:m], self.buf[1][:m], self.buf[2][:m])
            n_spk[0] = 0
        return counts, st


@numba.njit(cache=True)
def _lif_chunk(xs, t_begin, t0, v, cur, a, rec, inp, prev, n_prev, out_ptr, out_post, out_w,
               w_in_t, bias, v_th, v_leak, v_reset, k_m, decay_syn, rho, beta, subtract,
               want_events, spk_step, spk_unit, spk_batch, n_spk_arr, counts, units, var_codes,
               st_out):
    """Steps ``t_begin..`` of a chunk in place on the carried state (same floating-point operations
    as ``neurosnap.sparse.lif_events._simulate``); returns the step it stopped at (the chunk's end,
    or earlier when the event buffer could overflow)."""
    k, B, n_in = xs.shape
    n = bias.shape[0]
    cap = spk_step.shape[0]
    n_spk = n_spk_arr[0]
    for t in range(t_begin, k):
        if want_events and n_spk + B * n > cap:
            n_spk_arr[0] = n_spk
            return t
        for b in range(B):
            for s in range(n_prev[b]):                      # W_rec z_{t-1}: the spikers' rows
                j = prev[b, s]
                for q in range(out_ptr[j], out_ptr[j + 1]):
                    rec[out_post[q]] += out_w[q]
            for c in range(n_in):                           # W_in x_t: the active channels
                x = xs[t, b, c]
                if x != 0:
                    for u in range(n):
                        inp[u] += w_in_t[c, u] * x
            cnt = 0
            for u in range(n):
                vu = v[b, u]
                au = a[b, u]
                v_r = vu
                if vu - v_th - beta * au > 0:
                    v_r = vu - v_th if subtract else v_reset
                    au = rho * (au + 1)
                else:
                    au = rho * au
                i_j = cur[b, u] + rec[u] + (inp[u] + bias[u])
                vn = v_r + k_m * (v_leak - v_r + i_j)
                v[b, u] = vn
                cur[b, u] = decay_syn * i_j
                a[b, u] = au
                rec[u] = 0
                inp[u] = 0
                if vn - v_th - beta * au > 0:
                    prev[b, cnt] = u
                    cnt += 1
                    if want_events:
                        spk_step[n_spk] = t0 + t
                        spk_unit[n_spk] = u
                        spk_batch[n_spk] = b
                        n_spk += 1
            n_prev[b] = cnt
            counts[t, b] = cnt
            for r in range(units.shape[0]):
                u = units[r]
                for c in range(var_codes.shape[0]):
                    code = var_codes[c]
                    if code == 0:
                        st_out[t, b, c, r] = v[b, u]
                    elif code == 1:
                        st_out[t, b, c, r] = cur[b, u]
                    else:
                        st_out[t, b, c, r] = a[b, u]
    n_spk_arr[0] = n_spk
    return k


# -- simulate --------------------------------------------------------------------------------------
def _as_source(inputs, model, batch):
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
    raise TypeError("inputs must be an array (T, B, n_in), a .npy/.npz path, a Source "
                    "(PoissonSource, BernoulliSource, ...), an ns.tasks task or a Batch, got "
                    f"{type(inputs).__name__}")


def _resolve_record(record, cell, state_vars):
    if isinstance(record, str):
        record = [r.strip() for r in record.split(",") if r.strip()]
    try:
        record = list(record)
    except TypeError:
        raise TypeError(f"record must be a string or a sequence of names, got {record!r}") from None
    names = cell.state_names
    kinds, svars = set(), []
    for r in record:
        if not isinstance(r, str):
            raise TypeError(f"record entries must be strings, got {r!r}")
        if r in RECORD_KINDS:
            kinds.add(r)
        elif r in names:
            kinds.add("states")
            if r not in svars:
                svars.append(r)
        else:
            raise ValueError(f"record: unknown name {r!r}; expected 'events', 'rate', 'states' or "
                             f"a state variable of {type(cell).__name__}: {', '.join(names)}")
    if not kinds:
        raise ValueError("record must name at least one of 'events', 'rate', 'states' or a "
                         "state variable")
    if "states" in kinds and not svars:
        if state_vars is None:
            state_vars = (names[0],)
        if isinstance(state_vars, str):
            state_vars = [s.strip() for s in state_vars.split(",")]
        for s in state_vars:
            if s not in names:
                raise ValueError(f"state_vars: {s!r} is not a state variable of "
                                 f"{type(cell).__name__} ({', '.join(names)})")
            if s not in svars:
                svars.append(s)
    if isinstance(cell, LeakyRNN) and kinds & {"events", "rate"}:
        raise ValueError("record: a LeakyRNN has no events (every unit outputs a value every "
                         "step); record its state instead, e.g. record=('h',)")
    if "events" in kinds:
        kinds.add("rate")                               # derived from the same counts, cheap
    return kinds, svars


def _resolve_units(units, n, recording_states):
    if units is None:
        return np.arange(n, dtype=np.int64) if recording_states else np.zeros(0, np.int64)
    if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
        units = [units]
    try:
        arr = np.asarray(list(units))
    except TypeError:
        raise TypeError(f"units must be a sequence of unit indices, got {units!r}") from None
    if arr.size == 0:
        raise ValueError("units must not be empty (use None for all units)")
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise TypeError(f"units must be a 1-D sequence of integers, got {units!r}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"units must be in [0, {n}) (the network has {n} units), got "
                         f"{arr.min() if arr.min() < 0 else arr.max()}")
    if len(np.unique(arr)) != len(arr):
        raise ValueError(f"units must not repeat, got {units!r}")
    return arr.astype(np.int64)


@validate.guarded
def simulate(model, params, inputs, record=("events",), *, steps: int | None = None,
             units=None, state_vars=None, rate_bin: int = 10, out=None,
             chunk_steps: int = 10_000, progress: bool = False, engine: str = "auto",
             batch: int = 1, dt: float | None = None) -> Recording:
    """Run ``model`` on ``inputs`` and record events, states and rates (module docstring).

    Args:
        model: an ``ns.Model`` (LIF, ALIF, EGRU or LeakyRNN cell).
        params: its parameters: a dict (e.g. ``model.init(seed)``), a path to a ``params.npz``
            (``neurosnap train`` writes ``runs/<name>/params.npz``) or a training checkpoint
            (:func:`load_params`), or ``None`` for ``model.init(0)``.
        inputs: an array ``(T, B, n_in)`` or ``(T, n_in)``; a path to a ``.npy``/``.npz`` file
            (:func:`load_inputs`); a :class:`Source` (:class:`PoissonSource`,
            :class:`BernoulliSource`, :class:`TaskSource`, :class:`ArraySource`); an ``ns.tasks``
            task (its sequences one after another, state reset at each, ``batch`` per sample); or a
            task ``Batch``.
        record: names to record: ``"events"`` (spike lists; implies ``"rate"``), ``"rate"``
            (population rate only), ``"states"`` (the ``state_vars``), or state variable names
            directly (``"v"``, ``"i"``, ``"a"``, ``"c"``, ``"h"``); a tuple or a comma-separated
            string.
        steps: number of steps; required for unbounded sources, at most the length of finite ones
            (default: all of it).
        units: units whose states are recorded (default: all units; mind the size, ``T * B * U``).
        state_vars: state variables recorded with ``"states"`` (default: the cell's first, e.g.
            ``v`` for LIF/ALIF).
        rate_bin: steps per population-rate bin.
        out: a directory: stream records to disk chunk by chunk (bounded memory) and write
            ``recording.npz`` + ``recording.json`` there; the returned recording reads from it.
        chunk_steps: steps per chunk (input generation, state buffers, disk writes). Chunks are
            shortened so that one chunk's recorded states stay below 64 MiB.
        progress: show a progress bar (tqdm) over the steps.
        engine: ``"auto"`` (event-driven for LIF/ALIF with a Heaviside gate, else ``"step"``),
            ``"event"`` or ``"step"`` (``model.cell.step``, as ``model.run``).
        batch: sequences per sample when ``inputs`` is a task.
        dt: seconds per step for times and rates (default: the cell's ``dt``; cells without one
            count in steps, ``dt = 1``).

    Returns:
        a :class:`Recording`.

    Example:
        >>> import neurosnap as ns
        >>> model = ns.Model(ns.cells.LIF(20, 50, 0.2, w_in_scale=20.0), n_out=2)
        >>> src = ns.simulation.PoissonSource(40.0, n=20, dt=model.cell.dt, seed=0)
        >>> rec = ns.simulate(model, model.init(0), src, record="events,v", steps=500, units=[0, 1])
        >>> rec.states["v"].shape, int(rec.spike_units.size) == rec.n_events
        ((500, 1, 2), True)
    """
    start = time.perf_counter()
    if not isinstance(model, Model):
        raise TypeError(f"model must be an ns.Model, got {type(model).__name__}")
    cell = model.cell
    if params is None:
        params = model.init(0)
    elif isinstance(params, (str, os.PathLike)):
        params = load_params(model, params)
    else:
        params = model.check_params(params)
    batch = validate.positive_int("batch", batch)
    source = _as_source(inputs, model, batch)
    if source.n != cell.n_in:
        raise ValueError(f"inputs must have n_in={cell.n_in} channels (the model's n_in), got "
                         f"{source.n}")
    if steps is None:
        if source.length is None:
            raise ValueError(f"steps must be given for an unbounded input source "
                             f"({type(source).__name__})")
        steps = source.length
    steps = validate.positive_int("steps", steps)
    if source.length is not None and steps > source.length:
        raise ValueError(f"steps={steps} exceeds the length of inputs ({source.length} steps)")
    rate_bin = validate.positive_int("rate_bin", rate_bin)
    chunk_steps = validate.positive_int("chunk_steps", chunk_steps)
    validate.choice("engine", engine, ENGINES)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {progress!r}")
    if dt is None:
        dt, time_unit = (float(cell.dt), "s") if hasattr(cell, "dt") else (1.0, "step")
    else:
        dt, time_unit = validate.real("dt", dt, low=0.0, low_open=True), "s"
    kinds, svars = _resolve_record(record, cell, state_vars)
    units = _resolve_units(units, cell.n_hidden, bool(svars))
    if not svars:
        units = np.zeros(0, np.int64)
    var_idx = [cell.state_names.index(s) for s in svars]
    eventable = isinstance(cell, (LIF, ALIF)) and isinstance(cell.gate, Heaviside)
    if engine == "event" and not eventable:
        raise ValueError(f"engine='event' needs an LIF or ALIF cell with a Heaviside gate, got "
                         f"{cell!r} with gate {getattr(cell, 'gate', None)!r}")
    use_events = eventable and engine != "step"
    B, n, dtype = source.batch, cell.n_hidden, model.dtype
    # shorten chunks so that one chunk of recorded states stays under 64 MiB
    row_bytes = B * max(1, len(var_idx) * len(units)) * np.dtype(dtype).itemsize
    chunk_steps = max(1, min(chunk_steps, (64 << 20) // row_bytes))

    runner_cls = _EventRunner if use_events else _StepRunner
    runner = runner_cls(model, params, B, var_idx, units, "events" in kinds)
    specs = {}
    if "events" in kinds:
        specs.update(spike_steps=(np.int64, ()), spike_units=(np.int32, ()),
                     spike_batch=(np.int32, ()))
    if "rate" in kinds:
        specs["rate"] = (np.float64, (B,))
    for s in svars:
        specs[f"state_{s}"] = (dtype, (B, len(units)))
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    store = _Store(specs, out_dir)
    binner = _RateBinner(rate_bin, B, 1.0 / (n * dt))
    n_events = 0

    def emit(st, un, ba):
        nonlocal n_events
        n_events += len(st)
        store.append("spike_steps", st)
        store.append("spike_units", un)
        store.append("spike_batch", ba)

    source.reset()
    bar = None
    if progress:
        from .core.progress import progress_bar
        bar = progress_bar(steps, unit_scale=True)
    t = 0
    try:
        while t < steps:
            xs, new_sequence = source._next(min(chunk_steps, steps - t))
            if len(xs) == 0:
                raise ValueError(f"inputs ended after {t} steps, {steps} requested")
            xs = validate.array("inputs", xs, shape=(None, B, cell.n_in), dtype=dtype)
            if new_sequence and t > 0:
                runner.reset()
            counts, st = runner.run(xs, t, emit)
            validate.finite(f"simulate (steps {t}..{t + len(xs) - 1})", **runner.final_state())
            if "rate" in kinds:
                store.append("rate", binner.push(counts))
            for c, s in enumerate(svars):
                store.append(f"state_{s}", st[:, :, c])
            t += len(xs)
            if bar is not None:
                bar.update(len(xs))
        if "rate" in kinds:
            store.append("rate", binner.finish())
            validate.finite("simulate", _hint=f"dt={dt} is too small for a rate in events per "
                            "second", rate=binner.scale)
    except BaseException:
        if out_dir is not None:                         # leave no half-written chunk files
            shutil.rmtree(store.chunk_dir, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "neurosnap_version": _version(),
        "dt": dt, "time_unit": time_unit, "n_steps": steps, "batch": B, "n_units": n,
        "n_in": cell.n_in, "n_events": n_events,
        "recorded": {"events": "events" in kinds, "rate": "rate" in kinds, "states": svars},
        "units": units.tolist(), "rate_bin": rate_bin,
        "rate_unit": "events per unit per second" if time_unit == "s" else
                     "events per unit per step",
        "engine": "event" if use_events else "step",
        "network_hash": network_hash(model, params), "model": model_config(model),
        "input": source.describe(), "wall_seconds": wall,
        "arrays": {},
    }
    extra = {"units": units} if svars else {}
    for key, (dt_, shape) in specs.items():
        meta["arrays"][key] = {"dtype": np.dtype(dt_).name, "trailing_shape": list(shape)}
    if svars:
        meta["arrays"]["units"] = {"dtype": "int64", "trailing_shape": []}
    if out_dir is None:
        arrays = store.arrays()
        arrays.update(extra)
        return Recording(arrays, meta)
    store.write_npz(out_dir / "recording.npz", extra)
    _write_json(out_dir / "recording.json", meta)
    return Recording.load(out_dir)


def _version():
    from . import __version__
    return __version__


# -- command line: `neurosnap simulate` (registered by neurosnap/cli.py) -------------------------
def _cli_add_parser(sub, **kwargs):
    p = sub.add_parser("simulate", help="simulate a configured network and record what it did",
                       description="Simulate a configured network and record what it did. The "
                       "recording and pictures replace those of an earlier simulate run in --out.",
                       **kwargs)
    p.add_argument("config", metavar="CONFIG",
                   help="TOML file or shipped name, e.g. models/lif-network.toml or lif-network")
    p.add_argument("--params", metavar="FILE",
                   help="params.npz (neurosnap train writes runs/<name>/params.npz) or a "
                        "checkpoint.npz (default: fresh parameters model.init(--seed))")
    p.add_argument("--steps", type=int, default=1000, metavar="N", help="time steps to simulate")
    p.add_argument("--input", dest="input_spec", metavar="SPEC",
                   help="poisson:rate=20 (Hz) | bernoulli:p=0.05 | task | file:PATH.npy|.npz "
                        "(default: poisson:rate=20 for spiking cells, task otherwise)")
    p.add_argument("--record", metavar="WHAT",
                   help="comma-separated: events, rate, states, or state variables such as v,i,a "
                        "(default: events and the first state variable)")
    p.add_argument("--units", metavar="LIST",
                   help="units whose states are recorded, e.g. 0,1,2 or 0-9 (default: 0-4)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="parallel sequences")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of fresh parameters and of the input")
    p.add_argument("--rate-bin", type=int, default=10, metavar="N",
                   help="steps per population-rate bin")
    p.add_argument("--chunk-steps", type=int, default=10_000, metavar="N", help="steps per chunk")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.n_hidden=200 (repeatable; "
                        "default: none)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/simulate-<config name>)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    return p


def _parse_units(text, n):
    """Units of ``--units`` ("0,1,2", "0-9"), each checked against ``n`` units before any range is
    expanded."""
    units = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = (int(x) for x in part.split("-", 1))
                if not (0 <= a <= b < n):
                    raise ValueError(f"--units {part}: a range a-b needs 0 <= a <= b < {n} (the "
                                     f"network has {n:,} units)")
                units.extend(range(a, b + 1))
            else:
                u = int(part)
                if not 0 <= u < n:
                    raise ValueError(f"--units {part}: the network has {n:,} units (0-{n - 1})")
                units.append(u)
        except ValueError as exc:
            if str(exc).startswith("--units"):
                raise
            raise ValueError(f"--units {text!r}: expected unit numbers and ranges such as 0,1,2 "
                             f"or 0-9") from None
    return units


def _cli_source(spec, model, task, args):
    cell = model.cell
    kind, _, rest = spec.partition(":")
    opts = {}
    if kind != "file":
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--input {spec!r}: options look like key=value")
            opts[key.strip()] = value.strip()
    if kind == "poisson":
        if not hasattr(cell, "dt"):
            raise ValueError(f"--input poisson needs a cell with dt (LIF/ALIF), not "
                             f"{type(cell).__name__}; use bernoulli:p=...")
        bad = set(opts) - {"rate"}
        if bad:
            raise ValueError(f"--input poisson: unknown option(s) {sorted(bad)}; use rate=HZ")
        return PoissonSource(float(opts.get("rate", 20.0)), cell.n_in, cell.dt, seed=args.seed,
                             batch=args.batch)
    if kind == "bernoulli":
        bad = set(opts) - {"p"}
        if bad:
            raise ValueError(f"--input bernoulli: unknown option(s) {sorted(bad)}; use p=PROB")
        return BernoulliSource(float(opts.get("p", 0.05)), cell.n_in, seed=args.seed,
                               batch=args.batch)
    if kind == "task":
        return TaskSource(task, batch=args.batch, seed=args.seed)
    if kind == "file":
        if not rest:
            raise ValueError("--input file:PATH needs a path, e.g. file:inputs.npy")
        return ArraySource(load_inputs(rest), name=f"inputs file {rest}")
    raise ValueError(f"--input {spec!r}: expected poisson:rate=HZ, bernoulli:p=P, task or "
                     "file:PATH")


def _cli_main(args) -> int:
    import sys

    from . import config as config_mod
    from .cli import FILE_ERRORS, _describe, _prepare_out
    try:
        path = config_mod.resolve(args.config)
        cfg = config_mod.apply_overrides(config_mod.load(path), args.overrides)
        model, _, _, task, _ = config_mod.build(cfg)
        cell = model.cell
        params = (load_params(model, args.params) if args.params
                  else model.init(validate.positive_int("--seed", args.seed, minimum=0)))
        spec = args.input_spec or ("poisson:rate=20" if hasattr(cell, "dt") else "task")
        source = _cli_source(spec, model, task, args)
        has_events = not isinstance(cell, LeakyRNN)
        record = args.record or ",".join((["events"] if has_events else []) + [cell.state_names[0]])
        units = (_parse_units(args.units, cell.n_hidden) if args.units
                 else list(range(min(5, cell.n_hidden))))
        steps = args.steps
        if source.length is not None and args.steps > source.length:
            steps = source.length
        out = Path(args.out or Path("runs") / f"simulate-{path.stem}")
        _prepare_out(out, ("recording.npz", "recording.json"), overwrite=True)
        rec = simulate(model, params, source, record, steps=steps, units=units,
                       rate_bin=args.rate_bin, chunk_steps=args.chunk_steps, out=out,
                       progress=args.progress, batch=args.batch)
    except (ValueError, TypeError) as exc:   # ConfigError, bad arguments, unreadable files
        print(f"neurosnap: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except FILE_ERRORS as exc:
        print(f"neurosnap: error: {_describe(exc)}", file=sys.stderr)
        return 2
    pictures = []
    if not args.no_plots:
        from .plot import save_panels
        pictures = save_panels(rec, out)
    print(_cli_summary(rec, spec, out, pictures))
    return 0


def _cli_summary(rec, spec, out, pictures) -> str:
    m, meta = rec.meta["model"], rec.meta
    seconds = meta["time_unit"] == "s"
    duration = f" ({rec.n_steps * rec.dt:g} s at dt = {rec.dt * 1e3:g} ms)" if seconds else ""
    text = (f"{m['cell']} network ({m['n_hidden']:,} units, weight density {m['density']:g}) "
            f"simulated for {rec.n_steps:,} steps{duration}, batch {rec.batch}, input {spec}, "
            f"engine {meta['engine']}: {meta['wall_seconds']:.2f} s wall "
            f"({1e6 * meta['wall_seconds'] / rec.n_steps:.1f} us/step).")
    if meta["recorded"]["events"]:
        per = rec.n_events / (rec.n_units * rec.batch * rec.n_steps * rec.dt)
        active = int(np.count_nonzero(rec.spike_counts()))
        text += (f" {rec.n_events:,} events; mean rate {per:.3g} "
                 f"{'Hz' if seconds else 'events/unit/step'} per unit; {active:,} of "
                 f"{rec.n_units:,} units were active.")
    text += (f" Recording: {out}/recording.npz + recording.json (network hash "
             f"{rec.network_hash[:12]}).")
    if pictures:
        text += " Pictures: " + ", ".join(str(p) for p in pictures) + "."
    return text
