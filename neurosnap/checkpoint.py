"""Atomic, pickle-free checkpoints: one ``.npz`` holding arrays plus JSON metadata.

The metadata (format version, counters, RNG state, curriculum state, metrics so far) is stored as a
UTF-8 byte array under the key ``__meta__.json`` inside the same ``.npz`` so that arrays and
metadata are replaced together by one ``rename``. Files are written to a temporary name in the same
directory, flushed and fsync'ed, then renamed over the old checkpoint: a crash at any moment leaves
either the old or the new checkpoint, never a torn one. Loading uses ``allow_pickle=False``; object
arrays, truncated files and unknown format versions are rejected with a clear error.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
META_KEY = "__meta__.json"


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
    """Read a checkpoint written by :func:`save`: ``(arrays, meta)``."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):              # never let numpy try (and suggest) unpickling
        raise CheckpointError(f"{path} is not a neurosnap checkpoint: unreadable or truncated (not a "
                              f"complete .npz archive)")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError:                            # object arrays need pickle: refused
        raise CheckpointError(f"checkpoint {path} holds object arrays or unreadable members; not a "
                              f"neurosnap checkpoint (refused, never unpickled)") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {exc}") from None
    if META_KEY not in arrays:
        raise CheckpointError(f"checkpoint {path} has no metadata ({META_KEY}); not a neurosnap checkpoint")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {exc}") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format_version {version!r}; this neurosnap "
                              f"reads version {FORMAT_VERSION}")
    return arrays, meta
