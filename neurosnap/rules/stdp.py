"""Pair-based spike-timing-dependent plasticity: :class:`STDP` and reward-modulated :class:`RSTDP`.

These are biologically motivated baselines, not gradient estimators. They follow the rule contract
(``neurosnap/rules/base.py``) by returning the **negative** weight change ``-Δw`` as their "gradient",
so that an optimizer step ``w <- w - lr * grad`` with ``ns.optim.SGD(lr=1)`` applies exactly ``Δw``
(and ``ns.sequence_grad`` returns ``-ΣΔw`` over a sequence with the weights held fixed).

Pairing (additive, all-to-all pairs through traces; Norse's ``stdp_step_linear`` convention). For a
synapse ``w[i, j]`` from presynaptic activity ``p_j`` to unit ``i``, per step ``t`` and sequence::

    x_pre[j]  <- d_pre  x_pre[j]  + p_j(t)                 traces include this step's activity
    x_post[i] <- d_post x_post[i] + z_i(t)
    Δw[i, j]   = a_plus z_i(t) x_pre[j] - a_minus x_post[i] p_j(t)

summed over the batch. ``z(t)`` is ``record.events``; ``p(t)`` is the presynaptic value *arriving*
at step t: ``record.jac_params.y_prev`` (``z_{t-1}``) for recurrent weights, ``record.jac_params.x``
for input weights (graded inputs enter linearly). A pre arrival and a post spike in the same step
count for both terms. ``d = 1 - dt/tau`` (``decay="euler"``, Norse's trace) or ``exp(-dt/tau)``
(``decay="exp"``, Brian2's event-driven traces); ``dt`` is the cell's ``dt`` (1 for cells without
one), and the taus are in the same unit. Biases never change.

Bounds: with ``w_min``/``w_max`` the change is ``clip(w + Δw, w_min, w_max) - w`` for the current
weights passed as ``params`` (Norse's ``hardbound``); exact when the optimizer applies every step's
update before the next (``update_every=1``, ``SGD(lr=1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import validate
from ..core.layout import INP, REC
from .base import Rule

DECAYS = ("euler", "exp")


@dataclass
class STDPState:
    """Traces of one batch: ``pre_rec (B, n)``, ``pre_in (B, n_in)``, ``post (B, n)``; the plastic
    columns of the parameter layout; for :class:`RSTDP` the ``eligibility (B, P)`` and the reward
    ``baseline (B,)``."""

    pre_rec: np.ndarray
    pre_in: np.ndarray
    post: np.ndarray
    decay_pre: float
    decay_post: float
    layout: object
    rec_cols: np.ndarray
    inp_cols: np.ndarray
    plastic: np.ndarray
    loss: str
    eligibility: np.ndarray | None = None
    decay_eligibility: float = 0.0
    baseline: np.ndarray | None = None
    baseline_rate: float = 0.0


@dataclass(frozen=True)
class _Pairing(Rule):
    """Shared hyperparameters and the pair term of :class:`STDP` and :class:`RSTDP` (not public)."""

    tau_pre: float = 0.02
    tau_post: float = 0.02
    a_plus: float = 1e-3
    a_minus: float = 1e-3
    w_min: float | None = None
    w_max: float | None = None
    decay: str = "euler"
    input_weights: bool = True

    def __post_init__(self):
        validate.real("tau_pre", self.tau_pre, low=0.0, low_open=True)
        validate.real("tau_post", self.tau_post, low=0.0, low_open=True)
        validate.real("a_plus", self.a_plus)
        validate.real("a_minus", self.a_minus)
        for name in ("w_min", "w_max"):
            if getattr(self, name) is not None:
                validate.real(name, getattr(self, name))
        if self.w_min is not None and self.w_max is not None and self.w_min > self.w_max:
            raise ValueError(f"w_min must be <= w_max, got {self.w_min} > {self.w_max}")
        validate.choice("decay", self.decay, DECAYS)
        if not isinstance(self.input_weights, bool):
            raise TypeError(f"input_weights must be a bool, got {self.input_weights!r}")

    def _factor(self, dt, tau, name, steps_cell=None):
        if self.decay == "exp":
            return float(np.exp(-dt / tau))
        if tau < dt:
            if steps_cell:
                raise ValueError(
                    f"{name}={tau} is shorter than one time step: {steps_cell} counts "
                    f"time in steps (dt = 1), so {name} is a number of steps, e.g. "
                    f"{name}=20"
                )
            raise ValueError(
                f"{name} must be >= dt={dt} (the cell's time unit) for decay='euler', got {tau}"
            )
        return 1.0 - dt / tau

    def decays(self, dt: float, steps_cell: str | None = None) -> tuple[float, float]:
        """Per-step trace factors ``(d_pre, d_post)`` for a time step ``dt`` (``steps_cell``: name
        of a cell without ``dt``, which counts time in steps; only used in the error message)."""
        return (
            self._factor(dt, self.tau_pre, "tau_pre", steps_cell),
            self._factor(dt, self.tau_post, "tau_post", steps_cell),
        )

    def check_model(self, model) -> None:
        """Raise ``ValueError`` when the time constants do not fit ``model``'s cell (checked before
        training starts, e.g. by :func:`neurosnap.config.build`)."""
        self.init(model, None, 1)

    def init(self, model, params, batch):
        cell = model.structure()
        dt = 1.0 if cell.dt is None else cell.dt
        d_pre, d_post = self.decays(dt, cell.cell if cell.dt is None else None)
        layout = cell.layout
        rec_cols = np.flatnonzero(layout.kind == REC)
        inp_cols = np.flatnonzero(layout.kind == INP) if self.input_weights else np.zeros(0, int)
        plastic = np.zeros(layout.size, bool)
        plastic[rec_cols] = plastic[inp_cols] = True
        dtype = model.dtype
        return STDPState(
            pre_rec=np.zeros((batch, cell.n_hidden), dtype),
            pre_in=np.zeros((batch, cell.n_in), dtype),
            post=np.zeros((batch, cell.n_hidden), dtype),
            decay_pre=d_pre,
            decay_post=d_post,
            layout=layout,
            rec_cols=rec_cols,
            inp_cols=inp_cols,
            plastic=plastic,
            loss=model.loss,
        )

    def _pairs(self, state, record) -> np.ndarray:
        """Advance the traces with step t and return the per-sequence changes ``Δw (B, P)``."""
        y_prev, x = record.jac_params.y_prev, record.jac_params.x
        z = record.events.astype(y_prev.dtype)
        state.pre_rec = state.decay_pre * state.pre_rec + y_prev
        state.pre_in = state.decay_pre * state.pre_in + x
        state.post = state.decay_post * state.post + z
        post, pre = state.layout.post, state.layout.pre
        dw = np.zeros((z.shape[0], state.layout.size), dtype=y_prev.dtype)
        for cols, now, trace in (
            (state.rec_cols, y_prev, state.pre_rec),
            (state.inp_cols, x, state.pre_in),
        ):
            dw[:, cols] = (
                self.a_plus * z[:, post[cols]] * trace[:, pre[cols]]
                - self.a_minus * state.post[:, post[cols]] * now[:, pre[cols]]
            )
        return dw

    def cost(self, state, record) -> dict:
        """Trace entries stored and multiply-adds of one step, per sequence: the three traces
        (``2 n + n_in``), plus the eligibility ``P`` for :class:`RSTDP`; ``4`` multiply-adds per
        plastic weight (two pair terms) plus the trace updates (and ``2 P`` for the eligibility)."""
        traces = [state.pre_rec, state.pre_in, state.post]
        if state.eligibility is not None:
            traces.append(state.eligibility)
        B = state.post.shape[0]
        macs = 4 * int(state.plastic.sum()) + sum(a[0].size for a in traces[:3])
        if state.eligibility is not None:
            macs += 2 * state.layout.size
        return {
            "influence_nnz": sum(np.count_nonzero(a) for a in traces) / B,
            "influence_size": float(sum(a[0].size for a in traces)),
            "macs": float(macs),
        }

    def _bounded(self, state, dw, params) -> np.ndarray:
        """``Δw`` (P,) limited so that the plastic weights stay in ``[w_min, w_max]``."""
        if self.w_min is None and self.w_max is None:
            return dw
        cell_params = {k[5:]: v for k, v in params.items() if k.startswith("cell.")}
        w = state.layout.from_dict(cell_params)
        lo = -np.inf if self.w_min is None else self.w_min
        hi = np.inf if self.w_max is None else self.w_max
        return np.where(state.plastic, np.clip(w + dw, lo, hi) - w, 0.0).astype(
            dw.dtype, copy=False
        )


@dataclass(frozen=True)
class STDP(_Pairing):
    """Additive pair-based STDP (module docstring); the "gradient" is ``-Δw``.

    Args:
        tau_pre, tau_post: trace time constants (the cell's time unit, e.g. seconds).
        a_plus, a_minus: potentiation and depression amplitudes per pair.
        w_min, w_max: optional hard bounds on the plastic weights.
        decay: ``"euler"`` (trace factor ``1 - dt/tau``, Norse) or ``"exp"`` (``exp(-dt/tau)``, Brian2).
        input_weights: also adapt the input weights (default True); recurrent weights always adapt.

    Cost per step ``O(B P)`` over the existing weights; the rule ignores ``credit``.

    >>> import numpy as np, neurosnap as ns
    >>> model = ns.Model(ns.cells.LIF(2, 4, w_in_scale=40.0), n_out=2)
    >>> params = model.init(seed=0)
    >>> xs = (np.random.default_rng(0).random((50, 1, 2)) < 0.3).astype(float)
    >>> _, g = ns.sequence_grad(model, params, xs, np.zeros((50, 1), int), ns.rules.STDP(a_plus=0.01))
    >>> bool(np.any(g["cell.w_in"] != 0))
    True
    """

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        dw = self._pairs(state, record).sum(axis=0)
        return state, -self._bounded(state, dw, params)


@dataclass(frozen=True)
class RSTDP(_Pairing):
    """Reward-modulated STDP with an eligibility trace (Izhikevich 2007; Florian 2007, MSTDPET).

    Per sequence b the pair term of :class:`STDP` feeds an eligibility trace, which the reward
    (minus a running baseline, if ``tau_reward`` is set) turns into a weight change::

        e_b      <- d_e e_b + Δw_pairs_b                          d_e = 1 - dt/tau_eligibility
        δ_b       = r_b(t) - rbar_b,   rbar_b <- rbar_b + (dt/tau_reward) δ_b
        Δw        = lr * sum_b δ_b e_b                           "gradient": -Δw

    The reward ``r(t)`` is the keyword extra ``reward`` (shape ``(B,)``) when the caller passes one,
    otherwise minus this step's loss, recovered from ``dlogits``: ``-0.5 |dlogits|^2`` for ``"mse"``
    and ``log(1 + min_k dlogits_k) = log p_target`` for ``"cross_entropy"``. Steps whose ``dlogits``
    row is all zero (masked out of the loss) carry no reward: ``δ = 0`` and the baseline stays.

    Args:
        tau_pre, tau_post, a_plus, a_minus, w_min, w_max, decay, input_weights: as in :class:`STDP`.
        tau_eligibility: eligibility time constant.
        tau_reward: time constant of the reward baseline; ``None``: no baseline (``δ = r``).
        lr: scale of the modulated update.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> model = ns.Model(ns.cells.LIF(2, 4, w_in_scale=40.0), n_out=2)
        >>> params = model.init(seed=0)
        >>> xs = (np.random.default_rng(0).random((50, 1, 2)) < 0.3).astype(float)
        >>> ys = np.zeros((50, 1), int)
        >>> _, g = ns.sequence_grad(model, params, xs, ys, ns.rules.RSTDP(a_plus=0.01, tau_eligibility=0.05))
        >>> sorted(g) == sorted(params)
        True
    """

    tau_eligibility: float = 0.2
    tau_reward: float | None = None
    lr: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        validate.real("tau_eligibility", self.tau_eligibility, low=0.0, low_open=True)
        if self.tau_reward is not None:
            validate.real("tau_reward", self.tau_reward, low=0.0, low_open=True)
        validate.real("lr", self.lr)

    def init(self, model, params, batch):
        state = super().init(model, params, batch)
        structure = model.structure()
        dt = 1.0 if structure.dt is None else structure.dt
        state.eligibility = np.zeros((batch, state.layout.size), model.dtype)
        state.decay_eligibility = self._factor(
            dt,
            self.tau_eligibility,
            "tau_eligibility",
            structure.cell if structure.dt is None else None,
        )
        state.baseline = np.zeros(batch, model.dtype)
        if self.tau_reward is not None:
            if dt > self.tau_reward:
                raise ValueError(f"tau_reward must be >= dt={dt}, got {self.tau_reward}")
            state.baseline_rate = dt / self.tau_reward
        return state

    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        state.eligibility = state.decay_eligibility * state.eligibility + self._pairs(state, record)
        reward, present = self._reward(state, dlogits, extras.get("reward"))
        delta = np.where(present, reward - state.baseline, 0.0)
        state.baseline = state.baseline + state.baseline_rate * delta
        dw = self.lr * (delta @ state.eligibility)
        return state, -self._bounded(state, dw, params)

    @staticmethod
    def _reward(state, dlogits, reward):
        """``(r (B,), present (B,) bool)`` from an explicit reward or from ``dlogits``."""
        B = state.post.shape[0]
        if reward is not None:
            reward = validate.array("reward", np.broadcast_to(np.asarray(reward, float), (B,)))
            return reward, np.ones(B, bool)
        if dlogits is None:
            raise ValueError(
                "RSTDP needs a reward: pass dlogits (as ns.sequence_grad does) or "
                "reward=(B,) to step()"
            )
        present = np.any(dlogits != 0, axis=1)
        if state.loss == "mse":
            return -0.5 * np.sum(dlogits * dlogits, axis=1), present
        p_target = 1.0 + dlogits.min(axis=1)  # softmax - onehot at the target
        return np.log(np.where(present, p_target, 1.0)), present
