"""Pickle-free files written atomically: a reader never sees a half-written file."""
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


def atomic_savez(path: Path, arrays) -> None:
    """Write ``arrays`` (name -> array) as an uncompressed ``.npz`` to ``path`` through a temporary
    file in the same directory (no object arrays: numpy refuses to pickle in ``np.savez`` readers
    that load with ``allow_pickle=False``)."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
