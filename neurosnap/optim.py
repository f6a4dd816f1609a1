"""Optimizers as data plus two functions: ``init(params) -> state``, ``update(grads, state, params)``.

Gradients of weights that do not exist are zero, and both optimizers map a zero gradient history to a
zero update, so masked weights stay exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core import validate


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent ``theta <- theta - lr * (g + momentum * velocity)``.

    Args:
        lr: learning rate > 0.
        momentum: heavy-ball momentum in [0, 1).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> opt = ns.optim.SGD(lr=0.1)
        >>> params = {"w": np.array([1.0, -2.0])}
        >>> state = opt.init(params)
        >>> params, state = opt.update({"w": np.array([0.5, -0.5])}, state, params)
        >>> params["w"]
        array([ 0.95, -1.95])
    """

    lr: float = 1e-2
    momentum: float = 0.0

    def __post_init__(self):
        validate.real("lr", self.lr, low=0.0, low_open=True)
        validate.real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)

    def init(self, params):
        """Optimizer state: one velocity array per parameter."""
        return {"velocity": {k: np.zeros_like(v) for k, v in params.items()}}

    def update(self, grads, state, params):
        """Return ``(new_params, new_state)``; arrays are not modified in place."""
        vel = {k: self.momentum * state["velocity"][k] + grads[k] for k in params}
        return {k: params[k] - self.lr * vel[k] for k in params}, {"velocity": vel}


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with bias correction.

    Args:
        lr: learning rate > 0.
        b1, b2: decay rates of the first and second moments, in [0, 1).
        eps: added to the root second moment.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> opt = ns.optim.Adam(lr=0.1)
        >>> params = {"w": np.array([1.0, -2.0])}
        >>> state = opt.init(params)
        >>> params, state = opt.update({"w": np.array([0.5, -0.5])}, state, params)
        >>> params["w"]                      # the first Adam step moves each weight by about lr
        array([ 0.9, -1.9])
    """

    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        validate.real("lr", self.lr, low=0.0, low_open=True)
        validate.real("b1", self.b1, low=0.0, high=1.0, high_open=True)
        validate.real("b2", self.b2, low=0.0, high=1.0, high_open=True)
        validate.real("eps", self.eps, low=0.0, low_open=True)

    def init(self, params):
        """Optimizer state: step count and first/second moments."""
        zeros = {k: np.zeros_like(v) for k, v in params.items()}
        return {"count": 0, "mu": zeros, "nu": {k: v.copy() for k, v in zeros.items()}}

    def update(self, grads, state, params):
        """Return ``(new_params, new_state)``; arrays are not modified in place."""
        count = state["count"] + 1
        mu = {k: self.b1 * state["mu"][k] + (1 - self.b1) * grads[k] for k in params}
        nu = {k: self.b2 * state["nu"][k] + (1 - self.b2) * grads[k] ** 2 for k in params}
        c1, c2 = 1 - self.b1**count, 1 - self.b2**count
        new = {
            k: params[k] - self.lr * (mu[k] / c1) / (np.sqrt(nu[k] / c2) + self.eps) for k in params
        }
        return {k: v.astype(params[k].dtype, copy=False) for k, v in new.items()}, {
            "count": count,
            "mu": mu,
            "nu": nu,
        }


OPTIMIZERS = {"SGD": SGD, "Adam": Adam}
