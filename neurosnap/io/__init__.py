"""Interchange with other tools: NIR graphs (:mod:`neurosnap.io.nir`).

``ns.io.to_nir(model, params)`` exports an LIF network as a ``nir.NIRGraph`` and
``ns.io.from_nir(graph)`` imports one as ``(model, params)``; the ``nir`` package is imported only
when they are called. ``ns.io.save_connectivity(path, cell)`` writes a cell's synapses to a file
that a configuration can name (:mod:`neurosnap.core.connectivity`).
"""

from ..core.connectivity import save_connectivity
from .nir import check_expressible, from_nir, to_nir

__all__ = ["to_nir", "from_nir", "check_expressible", "save_connectivity"]
