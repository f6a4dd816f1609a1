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
from pathlib import Path

import numpy as np

from .core import describe, files, npz, validate

FORMAT_VERSION = 1
META_KEY = "__meta__.json"
#: Largest metadata member and deepest JSON nesting a checkpoint may have.
MAX_META_BYTES = 64 << 20
MAX_DEPTH = 16
#: Metadata keys of a training checkpoint (:func:`check_meta`).
REQUIRED = {
    "signature",
    "t",
    "updates",
    "since_update",
    "rng",
    "task",
    "rows",
    "pending",
    "scalars",
    "wall",
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, corrupt, wrong version or wrong model)."""


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta = dict(meta, format_version=FORMAT_VERSION)
    payload[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    files.atomic_savez(path, payload, durable=True)


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save`: ``(arrays, meta)``.

    Every member's header is checked before any data is read (:mod:`neurosnap.core.npz`); see
    :func:`load_training` for a training checkpoint checked against the run that resumes it.
    """
    heads = npz.headers(path, "checkpoint", CheckpointError)
    meta = _read_meta(path, heads)
    arrays = npz.read(
        path, "checkpoint", lambda h: [k for k in h if k != META_KEY], CheckpointError
    )
    return arrays, meta


def _read_meta(path, heads) -> dict:
    head = heads.get(META_KEY)
    if head is None:
        raise CheckpointError(
            f"checkpoint {path} has no metadata ({META_KEY}); not a neurosnap checkpoint"
        )
    if head.dtype != np.uint8 or len(head.shape) != 1 or head.nbytes > MAX_META_BYTES:
        raise CheckpointError(
            f"checkpoint {path} has corrupt metadata: {META_KEY} must be a 1-D "
            f"uint8 array of at most {MAX_META_BYTES} bytes, got {head.dtype} "
            f"{head.shape}"
        )
    raw = npz.read(path, "checkpoint", lambda h: [META_KEY], CheckpointError)[META_KEY]
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {exc}") from None
    except RecursionError:
        raise CheckpointError(
            f"checkpoint {path} has corrupt metadata: nested too deeply"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint {path} has corrupt metadata: expected a JSON object, "
            f"got {type(meta).__name__}"
        )
    _check_depth(path, meta)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version!r}; this neurosnap "
            f"reads version {FORMAT_VERSION}"
        )
    return meta


def _check_depth(path, tree, depth=0):
    if depth > MAX_DEPTH:
        raise CheckpointError(
            f"checkpoint {path} has corrupt metadata: nested deeper than {MAX_DEPTH} levels"
        )
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
        raise CheckpointError(
            f"checkpoint {path}: metadata {key!r} must be an integer in [0, {high}], got {value!r}"
        )
    return value


def _real(path, where, value, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"checkpoint {path}: {where} must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise CheckpointError(f"checkpoint {path}: {where} is out of float range") from None
    if low is not None and not (np.isfinite(value) and value >= low):
        raise CheckpointError(
            f"checkpoint {path}: {where} must be finite and >= {low}, got {value}"
        )
    return value


def _rows(path, meta, key, limit):
    rows = meta.get(key)
    if not isinstance(rows, list) or len(rows) > limit:
        raise CheckpointError(
            f"checkpoint {path}: metadata {key!r} must be a list of at most "
            f"{limit} rows, got {type(rows).__name__}"
        )
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
        raise CheckpointError(
            f"checkpoint {path}: metadata 'signature' must be an object (the run's settings)"
        )
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
        raise CheckpointError(
            f"checkpoint {path}: metadata 'scalars' must hold the optimizer "
            f"state {sorted(opt_scalars)}, got "
            f"{sorted(scalars) if isinstance(scalars, dict) else scalars!r}"
        )
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
        raise CheckpointError(
            f"checkpoint {path}: metadata 'rng' is not a valid random generator state ({exc})"
        ) from None


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
    opt_arrays: dict[str, np.ndarray] = {}
    opt_scalars: dict[str, object] = {}
    _flatten("opt", opt_state, opt_arrays, opt_scalars)
    check_meta(path, meta, opt_scalars)
    expected = {f"params/{k}": v for k, v in model.param_shapes().items()}
    expected.update({k: v.shape for k, v in opt_arrays.items()})
    expected.update(
        {
            "pending/core": (model.cell.layout.size,),
            "pending/readout.weight": (model.n_out, model.cell.n_hidden),
            "pending/readout.bias": (model.n_out,),
        }
    )

    def select(found):
        names = set(found) - {META_KEY}
        if names != set(expected):
            raise CheckpointError(
                f"checkpoint {path} does not fit this run: missing "
                f"{sorted(set(expected) - names)}, unexpected "
                f"{sorted(names - set(expected))[:10]}"
            )
        for name, shape in expected.items():
            head = found[name]
            if head.shape != tuple(shape) or head.dtype != model.dtype:
                raise CheckpointError(
                    f"checkpoint {path}: {name} must be {model.dtype} of shape "
                    f"{tuple(shape)}, got {head.dtype} {head.shape}"
                )
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


# -- the state of a training run ---------------------------------------------------------------
def _unflatten(prefix, arrays, scalars):
    tree = {}
    for source in (arrays, scalars):
        for name, value in source.items():
            if not name.startswith(prefix + "/"):
                continue
            keys = name[len(prefix) + 1 :].split("/")
            node = tree
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
    return tree


def snapshot(loop, rng, task, history) -> dict:
    """Everything a training checkpoint holds, copied (parameters and optimizer state are never
    mutated): the loop's ``params``, ``opt_state``, pending gradients (``core``, ``g_wout``,
    ``g_bout``) and counters, the random generator's state, the task's ``state_dict()`` and the
    rows of ``history``."""
    return {
        "params": _copy_tree(loop.params),
        "opt": _copy_tree(loop.opt_state),
        "core": loop.core.copy(),
        "g_wout": loop.g_wout.copy(),
        "g_bout": loop.g_bout.copy(),
        "t": loop.t,
        "updates": loop.updates,
        "since_update": loop.since_update,
        "rng": rng.bit_generator.state,
        "task": json.loads(json.dumps(task.state_dict())),
        "n_rows": len(history.rows),
        "rows": history.rows,
        "pending": list(history.pending),
    }


def _copy_tree(tree):
    if isinstance(tree, dict):
        return {key: _copy_tree(value) for key, value in tree.items()}
    return tree.copy() if isinstance(tree, np.ndarray) else tree


def save_training(path, snap: dict, signature: dict, wall: float) -> None:
    """Write a :func:`snapshot` as a training checkpoint (refused, with the last good checkpoint
    kept, when an array holds NaN or infinity); ``signature`` is the run's settings, ``wall`` its
    seconds so far."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, object] = {}
    _flatten("params", snap["params"], arrays, scalars)
    _flatten("opt", snap["opt"], arrays, scalars)
    arrays.update(
        {
            "pending/core": snap["core"],
            "pending/readout.weight": snap["g_wout"],
            "pending/readout.bias": snap["g_bout"],
        }
    )
    for name, value in arrays.items():  # never replace a good checkpoint by a bad one
        validate.training_finite(snap["t"], **{name: value})
    meta = {
        "signature": signature,
        "t": snap["t"],
        "updates": snap["updates"],
        "since_update": snap["since_update"],
        "rng": snap["rng"],
        "task": snap["task"],
        "rows": snap["rows"][: snap["n_rows"]],
        "pending": snap["pending"],
        "scalars": scalars,
        "wall": wall,
    }
    save(path, arrays, meta)


def restore_training(path, loop, rng, task, history, signature: dict) -> float:
    """Put the training checkpoint at ``path`` back into ``loop``, ``rng``, ``task`` and ``history``
    (checked against the model, the optimizer state and the run's ``signature``); return the wall
    seconds the run had taken."""
    # settings first: a changed setting (e.g. the cell's storage) is named before the arrays'
    # shapes are compared
    recorded = _read_meta(path, npz.headers(path, "checkpoint", CheckpointError)).get("signature")
    changed = describe.differences(recorded if isinstance(recorded, dict) else {}, signature)
    if changed:
        raise CheckpointError(
            f"checkpoint {path} was written with other settings, so resuming would not continue "
            f"the same run; differing: "
            + "; ".join(changed)
            + ". Resume with the checkpoint's settings, or start a new run in another directory"
        )
    arrays, meta = load_training(path, loop.model, loop.opt_state)
    params = {k[len("params/") :]: v for k, v in arrays.items() if k.startswith("params/")}
    loop.params = loop.model.check_params(params)
    loop.opt_state = _unflatten("opt", arrays, meta["scalars"])
    loop.core = arrays["pending/core"]
    loop.g_wout = arrays["pending/readout.weight"]
    loop.g_bout = arrays["pending/readout.bias"]
    loop.t, loop.updates, loop.since_update = meta["t"], meta["updates"], meta["since_update"]
    rng.bit_generator.state = meta["rng"]
    restore_task(path, task, meta["task"])
    history.rows = meta["rows"]
    history.pending = meta["pending"]
    return float(meta["wall"])
