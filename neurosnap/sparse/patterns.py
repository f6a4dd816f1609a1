"""SnAp sparsity patterns: which influence entries are reachable within ``n`` steps.

With ``A[k, i] = mask[k, i]`` (unit ``i`` drives unit ``k`` through an existing recurrent weight),
parameter ``p`` first influences the state of its own unit ``q = post[p]`` (the immediate influence)
and, ``h`` steps later, the states of the units reachable from ``q`` in ``h`` hops. SnAp-n keeps the
entries ``(k, p)`` with ``k`` reachable from ``post[p]`` within ``n - 1`` hops (``docs/theory/snap.md``
eq. (4)); all state variables of a kept unit are kept, since the couplings between a unit's own
state variables act within one step.
"""

from __future__ import annotations

import numpy as np


def reachability(mask: np.ndarray, hops: int) -> np.ndarray:
    """``R[k, q]``: unit ``k`` is reachable from unit ``q`` within ``hops`` steps (``R`` includes ``I``).

    Args:
        mask: ``(n, n)`` booleans, ``mask[post, pre]``.
        hops: number of steps, ``>= 0``.

    Returns:
        ``(n, n)`` boolean array, ``R = nz(sum_{h <= hops} A^h)`` (snap eq. (4)).
    """
    if hops < 0:
        raise ValueError(f"hops must be >= 0, got {hops}")
    A = np.asarray(mask, dtype=bool)
    n = A.shape[0]
    R = np.eye(n, dtype=bool)
    Ai = A.astype(np.int32)
    for _ in range(hops):
        nxt = R | ((Ai @ R.astype(np.int32)) > 0)
        if np.array_equal(nxt, R):
            break
        R = nxt
    return R


def saturation_order(mask: np.ndarray) -> int:
    """Smallest SnAp order ``n`` whose pattern equals exact RTRL's (``n - 1`` = the largest
    distance from a unit to any unit it reaches, i.e. the graph's diameter over reachable pairs)."""
    A = np.asarray(mask, dtype=bool)
    n = A.shape[0]
    R = np.eye(n, dtype=bool)
    Ai = A.astype(np.int32)
    hops = 0
    while True:
        nxt = R | ((Ai @ R.astype(np.int32)) > 0)
        if np.array_equal(nxt, R):
            return hops + 1
        R = nxt
        hops += 1


def snap_rows(mask: np.ndarray, order: int) -> list[np.ndarray]:
    """Rows kept by SnAp-``order`` for the parameters of each postsynaptic unit ``q``: sorted units
    reachable from ``q`` within ``order - 1`` hops."""
    R = reachability(mask, order - 1)
    return [np.flatnonzero(R[:, q]) for q in range(R.shape[0])]


def snap_mask(mask: np.ndarray, layout, order: int, n_state: int) -> np.ndarray:
    """The SnAp-``order`` pattern as a dense boolean ``(S, n, P)`` array (for tests and docs)."""
    R = reachability(mask, order - 1)
    keep = R[:, layout.post]  # (n, P)
    return np.broadcast_to(keep, (n_state,) + keep.shape).copy()
