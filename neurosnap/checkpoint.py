"""Atomic, pickle-free checkpoints: one ``.npz`` holding arrays plus JSON metadata.

The metadata (format version, counters, RNG state, curriculum state, metrics so far) is stored as a
UTF-8 byte array under the key ``__meta__.json`` inside the same ``.npz`` so that arrays and
metadata are replaced together by one ``rename``. Files are written to a temporary name in the same
directory, flushed and fsync'ed, then renamed over the old checkpoint: a crash at any moment leaves
either the old or the new checkpoint, never a torn one. Loading reads the members' headers before
any data (:mod:`neurosnap.core.npz`), never unpickles; object arrays, truncated files and unknown
format versions are rejected with a clear error, and :func:`load_training` checks the metadata
(:func:`check_meta`) and the arrays against the run that resumes.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .core import npz, validate

FORMAT_VERSION = 1
META_KEY = "__meta__.json"
#: Largest metadata member and deepest JSON nesting a checkpoint may have.
MAX_META_BYTES = 64 << 20
MAX_DEPTH = 16
#: Metadata keys of a training checkpoint (:func:`check_meta`).
REQUIRED = {"signature", "t", "updates", "since_update", "rng", "task", "rows", "pending",
            "scalars", "wall"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, corrupt, wrong version or wrong model)."""


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta = dict(meta, format_version=FORMAT_VERSION)
    payload[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save`: ``(arrays, meta)``.

    Every member's header is checked before any data is read (:mod:`neurosnap.core.npz`); see
    :func:`load_training` for a training checkpoint checked against the run that resumes it.
    """
    heads = npz.headers(path, "checkpoint", CheckpointError)
    meta = _read_meta(path, heads)
    arrays = npz.read(path, "checkpoint", lambda h: [k for k in h if k != META_KEY],
                      CheckpointError)
    return arrays, meta


def _read_meta(path, heads) -> dict:
    head = heads.get(META_KEY)
    if head is None:
        raise CheckpointError(f"checkpoint {path} has no metadata ({META_KEY}); not a neurosnap "
                              "checkpoint")
    if head.dtype != np.uint8 or len(head.shape) != 1 or head.nbytes > MAX_META_BYTES:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {META_KEY} must be a 1-D "
                              f"uint8 array of at most {MAX_META_BYTES} bytes, got {head.dtype} "
                              f"{head.shape}")
    raw = npz.read(path, "checkpoint", lambda h: [META_KEY], CheckpointError)[META_KEY]
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: nested too deeply") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: expected a JSON object, "
                              f"got {type(meta).__name__}")
    _check_depth(path, meta)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format_version {version!r}; this neurosnap "
                              f"reads version {FORMAT_VERSION}")
    return meta


def _check_depth(path, tree, depth=0):
    if depth > MAX_DEPTH:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: nested deeper than "
                              f"{MAX_DEPTH} levels")
    children = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    for child in children:
        _check_depth(path, child, depth + 1)


def _flatten(prefix, tree, arrays, scalars):
    for key, value in tree.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            _flatten(name, value, arrays, scalars)
        elif isinstance(value, np.ndarray):
            arrays[name] = value
        else:
            scalars[name] = value


def _count(path, meta, key, high=validate.MAX_COUNT):
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise CheckpointError(f"checkpoint {path}: metadata {key!r} must be an integer in "
                              f"[0, {high}], got {value!r}")
    return value


def _real(path, where, value, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"checkpoint {path}: {where} must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise CheckpointError(f"checkpoint {path}: {where} is out of float range") from None
    if low is not None and not (np.isfinite(value) and value >= low):
        raise CheckpointError(f"checkpoint {path}: {where} must be finite and >= {low}, got {value}")
    return value


def _rows(path, meta, key, limit):
    rows = meta.get(key)
    if not isinstance(rows, list) or len(rows) > limit:
        raise CheckpointError(f"checkpoint {path}: metadata {key!r} must be a list of at most "
                              f"{limit} rows, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise CheckpointError(f"checkpoint {path}: metadata {key}[{i}] must be an object")
        for name, value in row.items():
            _real(path, f"metadata {key}[{i}][{name!r}]", value)


def check_meta(path, meta: dict, opt_scalars: dict) -> None:
    """Validate a training checkpoint's metadata (keys, types, ranges), raising
    :class:`CheckpointError` naming the first problem.

    Args:
        path: the file (for messages).
        meta: the metadata :func:`load` returned.
        opt_scalars: the optimizer's non-array state of the resuming run, flattened
            (``{"opt/count": 0}`` for Adam): the checkpoint must hold the same names.
    """
    missing = sorted(REQUIRED - set(meta))
    if missing:
        raise CheckpointError(f"checkpoint {path}: metadata lacks {missing}")
    signature = meta["signature"]
    if not isinstance(signature, dict):
        raise CheckpointError(f"checkpoint {path}: metadata 'signature' must be an object (the "
                              "run's settings)")
    t = _count(path, meta, "t")
    _count(path, meta, "updates", t)
    _count(path, meta, "since_update", t)
    _real(path, "metadata 'wall'", meta["wall"], low=0.0)
    if not isinstance(meta["task"], dict):
        raise CheckpointError(f"checkpoint {path}: metadata 'task' must be an object")
    _rows(path, meta, "rows", t)
    _rows(path, meta, "pending", t)
    scalars = meta["scalars"]
    if not isinstance(scalars, dict) or set(scalars) != set(opt_scalars):
        raise CheckpointError(f"checkpoint {path}: metadata 'scalars' must hold the optimizer "
                              f"state {sorted(opt_scalars)}, got "
                              f"{sorted(scalars) if isinstance(scalars, dict) else scalars!r}")
    for name, value in scalars.items():
        if isinstance(opt_scalars[name], int):
            _count(path, scalars, name)
        else:
            _real(path, f"metadata scalars[{name!r}]", value, low=-np.inf)
    rng = np.random.default_rng()
    try:
        if meta["rng"]["bit_generator"] != type(rng.bit_generator).__name__:
            raise ValueError(f"bit generator {meta['rng']['bit_generator']!r}")
        rng.bit_generator.state = meta["rng"]
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint {path}: metadata 'rng' is not a valid random "
                              f"generator state ({exc})") from None


def load_training(path, model, opt_state) -> tuple[dict[str, np.ndarray], dict]:
    """Read a training checkpoint for a run of ``model`` whose optimizer state looks like
    ``opt_state``: the metadata is checked by :func:`check_meta`, the members must be exactly
    ``params/*`` (the model's shapes and dtype), ``opt/*`` (the shapes of ``opt_state``'s arrays)
    and ``pending/core``, ``pending/readout.weight``, ``pending/readout.bias``; only those are read,
    and they must be finite.

    Returns:
        ``(arrays, meta)`` as :func:`load`.
    """
    heads = npz.headers(path, "checkpoint", CheckpointError)
    meta = _read_meta(path, heads)
    opt_arrays, opt_scalars = {}, {}
    _flatten("opt", opt_state, opt_arrays, opt_scalars)
    check_meta(path, meta, opt_scalars)
    expected = {f"params/{k}": v for k, v in model.param_shapes().items()}
    expected.update({k: v.shape for k, v in opt_arrays.items()})
    expected.update({"pending/core": (model.cell.layout.size,),
                     "pending/readout.weight": (model.n_out, model.cell.n_hidden),
                     "pending/readout.bias": (model.n_out,)})

    def select(found):
        names = set(found) - {META_KEY}
        if names != set(expected):
            raise CheckpointError(f"checkpoint {path} does not fit this run: missing "
                                  f"{sorted(set(expected) - names)}, unexpected "
                                  f"{sorted(names - set(expected))[:10]}")
        for name, shape in expected.items():
            head = found[name]
            if head.shape != tuple(shape) or head.dtype != model.dtype:
                raise CheckpointError(f"checkpoint {path}: {name} must be {model.dtype} of shape "
                                      f"{tuple(shape)}, got {head.dtype} {head.shape}")
        return list(expected)

    arrays = npz.read(path, "checkpoint", select, CheckpointError)
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"checkpoint {path}: {name} contains NaN or inf")
    return arrays, meta


def restore_task(path, task, state) -> None:
    """``task.load_state_dict(state)``, with an invalid curriculum state (e.g. a level outside
    the task's range) reported as a :class:`CheckpointError` naming the file."""
    try:
        task.load_state_dict(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: invalid task state: {exc}") from None
