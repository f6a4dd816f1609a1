"""The one array layout that neurosnap's compiled (numba) kernels are specialised for."""

from __future__ import annotations

import numpy as np


def kernel_array(a, dtype=None) -> np.ndarray:
    """``a`` as a C-contiguous, writeable array of ``dtype`` (its own dtype when ``None``), the
    layout every numba kernel of neurosnap is compiled for. No copy when ``a`` already is one.

    A read-only array (a memory-mapped ``.npy``, an array converted from JAX, one with
    ``flags.writeable = False``) is copied: numba types read-only arrays separately, so passing one
    would compile (and cache) a second specialisation of every kernel it reaches, seconds each.
    """
    out = np.ascontiguousarray(a, dtype=dtype)  # cheaper than np.require on the per-step path
    return out if out.flags.writeable else out.copy()
