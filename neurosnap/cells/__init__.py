"""Recurrent cores: :class:`LeakyRNN`, :class:`EGRU`, :class:`LIF`, :class:`ALIF`."""

from .alif import ALIF
from .base import Cell
from .egru import EGRU
from .leaky_rnn import LeakyRNN
from .lif import LIF

CELLS = {"LeakyRNN": LeakyRNN, "EGRU": EGRU, "LIF": LIF, "ALIF": ALIF}

__all__ = ["Cell", "LeakyRNN", "EGRU", "LIF", "ALIF", "CELLS"]
