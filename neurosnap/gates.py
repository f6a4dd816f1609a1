"""Threshold gates: the step function of event-based units and its (pseudo-)derivative.

A gate maps a pre-threshold value ``x`` (e.g. ``c - theta`` for EGRU, ``v - v_th`` for LIF) to an
event value in [0, 1] and gives the derivative used for credit assignment:

- :class:`Heaviside` emits ``H(x) = 1[x > 0]`` and uses a *surrogate* derivative (pseudo-derivative),
  see ``docs/theory/gates.md`` eq. (1)-(3). Outside the surrogate's support the derivative is exactly
  zero, which is what makes silent units drop out of the Jacobians (activity sparsity).
- :class:`Smooth` replaces the step by ``sigmoid(beta * x)`` and uses its true derivative, so that a
  whole model is differentiable and can be checked against finite differences.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from .core import validate


class Surrogate(abc.ABC):
    """Base of pseudo-derivatives ``psi(x)`` standing in for ``dH/dx``."""

    @abc.abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Pseudo-derivative at ``x`` (any shape)."""


@dataclass(frozen=True)
class Triangle(Surrogate):
    """``psi(x) = gamma * max(0, 1 - |x| / width)`` (Bellec et al. 2020; EGRU).

    Support is ``|x| < width``: units further than ``width`` from threshold have zero derivative.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> psi = ns.gates.Triangle(gamma=0.3, width=1.0)
        >>> psi(np.array([-1.5, -0.5, 0.0, 0.5, 1.5]))
        array([0.  , 0.15, 0.3 , 0.15, 0.  ])
    """

    gamma: float = 0.3
    width: float = 1.0

    def __post_init__(self):
        validate.real("gamma", self.gamma, low=0.0, low_open=True)
        validate.real("width", self.width, low=0.0, low_open=True)

    def __call__(self, x):
        return self.gamma * np.maximum(0.0, 1.0 - np.abs(x) / self.width)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """``psi(x) = gamma / (1 + slope * |x|)^2`` (SuperSpike, Zenke & Ganguli 2018).

    Its support is the whole real line, so it gives no backward activity sparsity. Norse's
    ``super`` surrogate is ``gamma=1, slope=1``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> psi = ns.gates.FastSigmoid(gamma=1.0, slope=1.0)
        >>> psi(np.array([-1.0, 0.0, 1.0]))          # never zero: no backward sparsity
        array([0.25, 1.  , 0.25])
    """

    gamma: float = 1.0
    slope: float = 1.0

    def __post_init__(self):
        validate.real("gamma", self.gamma, low=0.0, low_open=True)
        validate.real("slope", self.slope, low=0.0, low_open=True)

    def __call__(self, x):
        return self.gamma / (1.0 + self.slope * np.abs(x)) ** 2


SURROGATES: dict[str, type[Triangle] | type[FastSigmoid]] = {
    "triangle": Triangle,
    "fast_sigmoid": FastSigmoid,
}


def make_surrogate(spec) -> Surrogate:
    """A :class:`Surrogate` from an instance or a name in ``SURROGATES`` (default parameters)."""
    if isinstance(spec, Surrogate):
        return spec
    validate.choice("surrogate", spec, SURROGATES)
    return SURROGATES[spec]()


class Gate(abc.ABC):
    """Base class: ``forward(x)`` gives event values, ``grad(x)`` the derivative used by rules."""

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Event value in [0, 1] for pre-threshold ``x`` (any shape)."""

    @abc.abstractmethod
    def grad(self, x: np.ndarray) -> np.ndarray:
        """Derivative used for credit assignment, same shape as ``x``."""

    def compiled_spec(self):
        """``(code, params (2,))`` for the compiled engine, or ``None`` (not supported there)."""


@dataclass(frozen=True)
class Heaviside(Gate):
    """Step ``H(x) = 1[x > 0]`` with a surrogate derivative (``"triangle"`` or ``"fast_sigmoid"``).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> gate = ns.gates.Heaviside("triangle")
        >>> x = np.array([-1.0, -0.2, 0.0, 0.2, 1.0])
        >>> gate.forward(x)                  # the step: events where x > 0
        array([0., 0., 0., 1., 1.])
        >>> gate.grad(x)                     # the surrogate derivative: zero outside |x| < width
        array([0.  , 0.24, 0.3 , 0.24, 0.  ])
    """

    surrogate: Surrogate | str = "triangle"

    def __post_init__(self):
        object.__setattr__(self, "surrogate", make_surrogate(self.surrogate))

    def forward(self, x):
        return (x > 0).astype(x.dtype)

    def grad(self, x):
        return self.surrogate(x).astype(x.dtype, copy=False)

    def compiled_spec(self):
        """``(code, params (2,))`` for the compiled engine (:mod:`neurosnap.engine`), or ``None``
        for a surrogate it does not know (the engine then runs the reference path)."""
        from .engine import codes

        s = self.surrogate
        if type(s) is Triangle:
            return codes.TRIANGLE, np.array([s.gamma, s.width], dtype=np.float64)
        if type(s) is FastSigmoid:
            return codes.FAST_SIGMOID, np.array([s.gamma, s.slope], dtype=np.float64)
        return None


@dataclass(frozen=True)
class Smooth(Gate):
    """``sigmoid(beta * x)`` with its exact derivative ``beta * s * (1 - s)``.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> gate = ns.gates.Smooth(beta=5.0)
        >>> x = np.array([-1.0, 0.0, 1.0])
        >>> np.round(gate.forward(x), 4)     # sigmoid(beta x) in place of the step
        array([0.0067, 0.5   , 0.9933])
        >>> np.round(gate.grad(x), 4)        # its true derivative
        array([0.0332, 1.25  , 0.0332])
    """

    beta: float = 5.0

    def __post_init__(self):
        validate.real("beta", self.beta, low=0.0, low_open=True)

    def forward(self, x):
        return 0.5 * (1.0 + np.tanh(0.5 * self.beta * x))

    def grad(self, x):
        s = self.forward(x)
        return self.beta * s * (1.0 - s)

    def compiled_spec(self):
        """``(code, params (2,))`` for the compiled engine (:mod:`neurosnap.engine`)."""
        from .engine import codes

        return codes.SMOOTH, np.array([self.beta, 0.0], dtype=np.float64)


def make_gate(spec, default_surrogate: Surrogate) -> Gate:
    """A gate from ``None`` (Heaviside with ``default_surrogate``) or a :class:`Gate` instance."""
    if spec is None:
        return Heaviside(default_surrogate)
    if not isinstance(spec, Gate):
        raise TypeError(
            f"gate must be ns.gates.Heaviside(...) or ns.gates.Smooth(...), got {spec!r}"
        )
    return spec
