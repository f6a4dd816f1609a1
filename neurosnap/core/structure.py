"""What a learning rule may know about a model besides its step records: its public structure.

A rule's ``init`` reads sizes, the parameter layout, the connectivity and the time step from
:meth:`neurosnap.Model.structure` (the cell's :meth:`~neurosnap.cells.base.Cell.structure` plus the
readout), never from attributes of the cell object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import RecurrentGraph
from .layout import ParamLayout


@dataclass(frozen=True, eq=False)
class Structure:
    """The static description of a model that learning rules use.

    Attributes:
        cell: the cell's class name (for error messages).
        n_in: inputs per step.
        n_hidden: number of units ``n``.
        n_state: state variables per unit ``S``.
        n_out: readout outputs (0 for a cell on its own).
        graph: the recurrent connectivity (:class:`~neurosnap.core.graph.RecurrentGraph`).
        layout: the cell's parameter columns (:class:`~neurosnap.core.layout.ParamLayout`).
        dt: the cell's time step, or ``None`` for cells without physical time (EGRU, LeakyRNN).
    """

    cell: str
    n_in: int
    n_hidden: int
    n_state: int
    n_out: int
    graph: RecurrentGraph
    layout: ParamLayout
    dt: float | None

    @property
    def mask(self) -> np.ndarray:
        """The connectivity as ``(n, n)`` booleans ``mask[post, pre]`` (built from ``graph``)."""
        return self.graph.to_mask()
