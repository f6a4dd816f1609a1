"""What :func:`neurosnap.simulate` recorded (:class:`Recording`, its files and their checks) and
the buffers that build it chunk by chunk (:class:`ChunkStore`, :class:`RateBinner`). The file
format is in the docstring of :mod:`neurosnap.simulation`."""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..core import files, npz, validate

FORMAT = "neurosnap-recording"
FORMAT_VERSION = 1
FLUSH_BYTES = 2 << 20  # per-key in-memory buffer before a chunk file is written


# -- the recording ---------------------------------------------------------------------------------
class LazyNpz:
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
            if local[:4] == b"PK\x03\x04":  # a local file header
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
        """SHA-256 of the network (``neurosnap.io.codec.network_hash``)."""
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
            u = np.asarray(units[a : a + block])
            if batch is not None:
                u = u[np.asarray(seq[a : a + block]) == batch]
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
        order = np.lexsort((steps, units, seq))  # by sequence, unit, then time
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
        return (
            self._get("units", "states") if "units" in self._arrays else np.zeros(0, dtype=np.int64)
        )

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
        files.atomic_savez(path / "recording.npz", arrays)
        files.write_json(path / "recording.json", self.meta)
        self.path = path
        return path

    @classmethod
    def load(cls, path) -> Recording:
        """Open a recording directory (or its ``recording.npz`` / ``recording.json``)."""
        path = Path(path)
        if path.suffix in (".npz", ".json"):
            path = path.parent
        meta_path, npz_path = path / "recording.json", path / "recording.npz"
        if not meta_path.is_file() or not npz_path.is_file():
            raise ValueError(
                f"{path} is not a recording: it needs recording.json and recording.npz"
            )
        if meta_path.stat().st_size > _MAX_META_BYTES:
            raise ValueError(
                f"{meta_path} is not a valid neurosnap recording file: larger than "
                f"{_MAX_META_BYTES} bytes"
            )
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{meta_path} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError(
                f"{meta_path} is not a valid neurosnap recording file: JSON nested too deeply"
            ) from None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT
            or meta.get("format_version") != FORMAT_VERSION
        ):
            got = (
                meta
                if not isinstance(meta, dict)
                else f"format={meta.get('format')!r}, format_version={meta.get('format_version')!r}"
            )
            raise ValueError(
                f"{meta_path} is not a {FORMAT} version {FORMAT_VERSION} file ({str(got)[:80]})"
            )
        _check_recording_meta(meta_path, meta)
        arrays = LazyNpz(npz_path)
        expected = _expected_arrays(meta)
        missing = set(expected) - set(arrays.files)
        if missing:
            raise ValueError(f"{npz_path} lacks the arrays {sorted(missing)} its metadata lists")
        for key, (dtype, shape) in expected.items():
            head = arrays._heads[key]
            if head.dtype != dtype or head.shape != shape:
                raise ValueError(
                    f"{npz_path} is not a valid neurosnap recording file: {key} must "
                    f"be {dtype} of shape {shape} (from recording.json), got "
                    f"{head.dtype} {head.shape}"
                )
        return cls(arrays, meta, path)

    def __repr__(self):
        rec = self.meta["recorded"]
        return (
            f"Recording({self.meta['model']['cell']} n={self.n_units}, T={self.n_steps}, "
            f"B={self.batch}, events={self.n_events if rec['events'] else 'not recorded'}, "
            f"states={rec['states']}, units={len(self.meta['units'])})"
        )


_MAX_META_BYTES = 64 << 20


def _check_recording_meta(path, meta):
    """Validate the metadata keys :class:`Recording` uses (types and ranges)."""

    def bad(key, expected):
        value = meta.get(key)
        raise ValueError(
            f"{path} is not a valid neurosnap recording file: {key!r} must be "
            f"{expected}, got {str(value)[:60]}"
        )

    for key, low in (
        ("n_steps", 1),
        ("batch", 1),
        ("n_units", 1),
        ("n_events", 0),
        ("rate_bin", 1),
    ):
        value = meta.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not low <= value <= validate.MAX_COUNT
        ):
            bad(key, f"an integer in [{low}, {validate.MAX_COUNT}]")
    dt = meta.get("dt")
    if (
        isinstance(dt, bool)
        or not isinstance(dt, (int, float))
        or not 0 < dt < float("inf")
        or not (dt * meta["n_units"] > 1e-300 and dt * meta["n_steps"] < 1e300)
    ):
        bad(
            "dt",
            "a positive number whose times (dt * n_steps) and rates (1 / (n_units * dt)) "
            "are finite",
        )
    try:
        validate.memory(
            "n_units", meta["n_units"], meta["n_units"] * 8 * 4, "per-unit event counts"
        )
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid neurosnap recording file: {exc}") from None
    rec = meta.get("recorded")
    if (
        not isinstance(rec, dict)
        or not isinstance(rec.get("events"), bool)
        or not isinstance(rec.get("rate"), bool)
        or not isinstance(rec.get("states"), list)
        or not all(isinstance(v, str) and v.isidentifier() for v in rec["states"])
        or len(set(rec["states"])) != len(rec["states"])
    ):
        bad("recorded", "an object {events: bool, rate: bool, states: [names]}")
    units = meta.get("units")
    if not isinstance(units, list) or not all(
        isinstance(u, int) and not isinstance(u, bool) and 0 <= u < meta["n_units"] for u in units
    ):
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
        expected.update(
            spike_steps=(np.dtype(np.int64), (K,)),
            spike_units=(np.dtype(np.int32), (K,)),
            spike_batch=(np.dtype(np.int32), (K,)),
        )
    if meta["recorded"]["rate"]:
        expected["rate"] = (np.dtype(np.float64), (-(-T // meta["rate_bin"]), B))
    if meta["recorded"]["states"]:
        expected["units"] = (np.dtype(np.int64), (U,))
        for v in meta["recorded"]["states"]:
            name = dtypes.get(f"state_{v}", {}).get("dtype") if isinstance(dtypes, dict) else None
            if name not in ("float32", "float64"):
                raise ValueError(
                    f"recording metadata: arrays['state_{v}'] must give dtype "
                    f"float32 or float64, got {name!r}"
                )
            expected[f"state_{v}"] = (np.dtype(name), (T, B, U))
    return expected


def _array_keys(meta):
    rec = meta["recorded"]
    keys = ["spike_steps", "spike_units", "spike_batch"] if rec["events"] else []
    keys += ["rate"] if rec["rate"] else []
    keys += (["units"] + [f"state_{v}" for v in rec["states"]]) if rec["states"] else []
    return keys


# -- storing records chunk by chunk ----------------------------------------------------------------
class ChunkStore:
    """Arrays growing along axis 0, kept in memory or streamed to ``DIR/.chunks/*.npy``."""

    def __init__(self, specs, out=None):
        self.specs = specs  # key -> (dtype, trailing shape)
        self.out = None if out is None else Path(out)
        self.pending = {k: [] for k in specs}  # not yet written
        self.pending_bytes = {k: 0 for k in specs}
        self.files = {k: [] for k in specs}  # (path, rows) written so far
        if self.out is not None:
            self.chunk_dir = self.out / ".chunks"
            if self.chunk_dir.exists():
                shutil.rmtree(self.chunk_dir)
            self.chunk_dir.mkdir(parents=True)

    def append(self, key, array):
        """Add rows of ``key`` (written to a chunk file once ``FLUSH_BYTES`` are pending)."""
        if len(array) == 0:
            return
        self.pending[key].append(np.array(array, dtype=self.specs[key][0], copy=True))
        self.pending_bytes[key] += array.nbytes
        if self.out is not None and self.pending_bytes[key] >= FLUSH_BYTES:
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
        """Write every pending row to chunk files (disk mode)."""
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
                    header = {
                        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                        "fortran_order": False,
                        "shape": (rows,) + tuple(shape),
                    }
                    with zf.open(key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array_header_2_0(f, header)
                        for chunk_path, _ in self.files[key]:
                            block = np.load(chunk_path, allow_pickle=False)
                            f.write(np.ascontiguousarray(block).data)
                            del block
                for key, value in extra.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
            files.publish(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        shutil.rmtree(self.chunk_dir)


class RateBinner:
    """Turns per-step event counts ``(k, B)`` into rates per bin of ``width`` steps."""

    def __init__(self, width, batch, scale):
        self.width, self.scale = width, scale  # scale = 1 / (n * dt)
        self.acc, self.filled = np.zeros(batch, dtype=np.int64), 0

    def push(self, counts):
        """Rates of the bins completed by ``counts`` ``(k, B)``, shape ``(bins, B)``."""
        out, pos, k = [], 0, len(counts)
        while pos < k:
            take = min(self.width - self.filled, k - pos)
            self.acc += counts[pos : pos + take].sum(axis=0)
            self.filled += take
            pos += take
            if self.filled == self.width:
                out.append(self.acc * (self.scale / self.width))
                self.acc[:], self.filled = 0, 0
        return np.array(out, dtype=np.float64).reshape(len(out), len(self.acc))

    def finish(self):
        """The rate of the last, partial bin (normalised by its length), ``(0 or 1, B)``."""
        if self.filled == 0:
            return np.zeros((0, len(self.acc)))
        return (self.acc * (self.scale / self.filled))[None].astype(np.float64)
