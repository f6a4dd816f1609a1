"""User-given connectivity: reading it into a :class:`~neurosnap.core.graph.RecurrentGraph` (a cell's
``connectivity=``) and writing a cell's synapses to a file that a configuration can name.

A cell built from arrays (``connectivity=(post, pre)`` or a ``scipy.sparse`` matrix) cannot be
rebuilt from its description alone; :func:`save_connectivity` (also ``ns.io.save_connectivity``)
writes its synapses to an ``.npz`` whose path a TOML configuration
(``[model.cell_options] connectivity = "synapses.npz"``) or a new cell (``connectivity=path``)
takes instead. The file holds two integer arrays ``post`` and ``pre`` (one entry per synapse, in the
cell's synapse order) and is read without unpickling.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from .files import atomic_savez
from .graph import RecurrentGraph


def connectivity_csr(value, n: int, *, autapses: bool = True) -> tuple[RecurrentGraph, object]:
    """The connectivity a user gave a cell, as a graph, and its JSON description for the cell's
    ``config()``.

    Args:
        value: a ``scipy.sparse`` matrix or array-like ``(n, n)`` indexed ``[post, pre]`` (its
            non-zeros are the synapses), a pair ``(post, pre)`` of equal-length integer arrays
            (no synapse twice), the path of an ``.npz`` file with arrays ``post`` and ``pre`` or a
            matrix written by ``scipy.sparse.save_npz`` (read without unpickling), or the
            description this function returned (``{"file": path, "sha256": ...}``).
        n: number of units.
        autapses: ``False`` refuses self-connections.

    Returns:
        ``(graph, description)``: the description is ``{"file": path, "sha256": digest}`` for a
        file (a cell rebuilt from it checks the file is unchanged) and ``{"n": n, "nnz": nnz,
        "sha256": digest}`` for arrays (enough to tell two connectivities apart; a configuration
        file must name a file to rebuild one).
    """
    import scipy.sparse

    path, expect = None, None
    if isinstance(value, dict):
        if "file" not in value:
            raise ValueError(
                "connectivity given as arrays cannot be rebuilt from a description; save it with "
                "neurosnap.io.save_connectivity(path, cell) and pass the path"
            )
        path, expect = value["file"], value.get("sha256")
    elif isinstance(value, (str, os.PathLike)):
        path = value
    if path is not None:
        from . import npz

        npz.check_file(path, "connectivity")
        try:
            with zipfile.ZipFile(path) as zf:
                names = {name.removesuffix(".npy") for name in zf.namelist()}
        except (OSError, zipfile.BadZipFile) as exc:
            raise ValueError(
                f"connectivity file {os.fspath(path)!r} is not an .npz: {exc}"
            ) from None
        if {"post", "pre"} <= names:  # neurosnap's own layout, read by its checked reader
            arrays = npz.read(path, "connectivity", select=lambda found: ["post", "pre"])
            value = (arrays["post"], arrays["pre"])
        elif {"format", "indptr", "indices", "shape"} <= names:
            try:  # scipy.sparse.save_npz's layout; scipy reads it with allow_pickle=False
                value = scipy.sparse.load_npz(path)
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(
                    f"connectivity file {os.fspath(path)!r} is not a readable scipy.sparse "
                    f"matrix: {exc}"
                ) from None
        else:
            raise ValueError(
                f"connectivity file {os.fspath(path)!r} must hold arrays 'post' and 'pre' or a "
                f"matrix saved by scipy.sparse.save_npz; found {sorted(names)}"
            )
    if scipy.sparse.issparse(value):
        if value.shape != (n, n):
            raise ValueError(f"connectivity must have shape (n, n) = ({n}, {n}), got {value.shape}")
        m = scipy.sparse.csr_array(value, copy=True)
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        graph = RecurrentGraph.from_csr(n, m.indptr, m.indices)
    elif isinstance(value, tuple) and len(value) == 2:
        post, pre = (np.asarray(a) for a in value)
        for name, arr in (("post", post), ("pre", pre)):
            if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
                raise ValueError(
                    f"connectivity {name} must be a 1-D integer array, got {arr.dtype}"
                )
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise ValueError(
                    f"connectivity {name} must lie in [0, {n}), got {arr.min()}..{arr.max()}"
                )
        if post.shape != pre.shape:
            raise ValueError(
                f"connectivity post and pre differ in length: {post.shape} vs {pre.shape}"
            )
        order = np.lexsort((pre, post))
        post, pre = post[order], pre[order]
        if np.any((np.diff(post) == 0) & (np.diff(pre) == 0)):
            raise ValueError("connectivity gives a synapse (post, pre) more than once")
        in_ptr = np.searchsorted(post, np.arange(n + 1))
        graph = RecurrentGraph.from_csr(n, in_ptr, pre)
    else:
        arr = np.asarray(value)
        if arr.shape != (n, n):
            raise ValueError(
                "connectivity must be a scipy.sparse matrix, an (n, n) array, a pair of index "
                f"arrays (post, pre) or an .npz path; got an array of shape {arr.shape} for n={n}"
            )
        graph = RecurrentGraph(arr != 0)
    if not autapses and np.any(graph.edge_post == graph.edge_pre):
        raise ValueError("connectivity holds self-connections but autapses=False")
    digest = hashlib.sha256()
    digest.update(memoryview(graph.in_ptr).cast("B"))
    digest.update(memoryview(graph.pre_index).cast("B"))
    sha = digest.hexdigest()
    if expect is not None and expect != sha:
        raise ValueError(
            f"connectivity file {path!r} changed since the configuration was written "
            "(its synapses differ)"
        )
    if path is not None:
        return graph, {"file": os.fspath(path), "sha256": sha}
    return graph, {"n": n, "nnz": graph.nnz, "sha256": sha}


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
