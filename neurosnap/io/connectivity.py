"""Connectivity files: a cell's synapses as an ``.npz`` that a configuration can name.

A cell built from arrays (``connectivity=(post, pre)`` or a ``scipy.sparse`` matrix) cannot be
rebuilt from its description alone; :func:`save_connectivity` writes its synapses to a file whose
path a TOML configuration (``[model.cell_options] connectivity = "synapses.npz"``) or a new cell
(``connectivity="synapses.npz"``) takes instead. The file holds two integer arrays ``post`` and
``pre`` (one entry per synapse, in the cell's synapse order) and is read without unpickling.
"""

from __future__ import annotations

from pathlib import Path

from ..core.files import atomic_savez
from ..core.graph import RecurrentGraph


def save_connectivity(path, connectivity) -> Path:
    """Write a connectivity to ``path`` (atomically; ``.npz`` appended if missing).

    Args:
        path: the file to write.
        connectivity: a cell (its ``graph``) or a :class:`~neurosnap.core.graph.RecurrentGraph`.

    Returns:
        The path written. ``ns.cells.LIF(n_in, n, connectivity=path)`` rebuilds the same synapses
        in the same order.
    """
    graph = getattr(connectivity, "graph", connectivity)
    if not isinstance(graph, RecurrentGraph):
        raise TypeError(
            f"connectivity must be a cell or a RecurrentGraph, got {type(connectivity).__name__}"
        )
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    atomic_savez(
        path, {"post": graph.edge_post.astype(graph.pre_index.dtype), "pre": graph.pre_index}
    )
    return path
