"""neurosnap: event-driven recurrent networks trained online with exact sparse RTRL and SnAp.

>>> import numpy as np, neurosnap as ns
>>> model = ns.Model(ns.cells.EGRU(n_in=3, n_hidden=8), n_out=2)
>>> params = model.init(seed=0)
>>> xs = np.random.default_rng(0).normal(size=(5, 2, 3)); ys = np.zeros((5, 2), dtype=int)
>>> loss, g_rtrl = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
>>> _, g_bptt = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
>>> bool(max(abs(g_rtrl[k] - g_bptt[k]).max() for k in params) < 1e-10)
True
"""

from . import cells, encode, gates, io, optim, plot, rules, simulation, tasks
from ._version import __version__
from .grad import sequence_grad
from .history import History
from .model import Model, Trajectory
from .simulation import simulate
from .train import train

__all__ = [
    "cells",
    "encode",
    "gates",
    "optim",
    "rules",
    "tasks",
    "Model",
    "Trajectory",
    "History",
    "sequence_grad",
    "train",
    "__version__",
    "simulate",
    "simulation",
    "plot",
    "io",
]
