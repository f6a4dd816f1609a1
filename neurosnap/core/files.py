"""Pickle-free files written atomically: a reader never sees a half-written file.

Every ``.npz`` that neurosnap writes (training checkpoints, ``params.npz``, recordings) goes through
:func:`atomic_savez`; every one it reads goes through :mod:`neurosnap.core.npz` (headers checked,
``allow_pickle=False``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file renamed over it."""
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def publish(tmp, path) -> None:
    """Rename a finished temporary file over ``path`` with ordinary permissions (mkstemp's are
    owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def atomic_savez(path: Path, arrays, durable: bool = False) -> None:
    """Write ``arrays`` (name -> array) as an uncompressed ``.npz`` to ``path`` through a temporary
    file in the same directory renamed over it. ``durable``: flush the file and the directory to
    disk before returning (checkpoints survive a power cut)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
