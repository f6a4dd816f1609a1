"""An independent torch implementation of the neurosnap cells, readout and losses.

Written again from the update equations of the cells' module docstrings (``docs/theory/cells.md``);
nothing here imports neurosnap. Gradients come from torch autograd, with the threshold's
pseudo-derivative as a :class:`torch.autograd.Function`. It is the oracle that the cells' hand-written
Jacobians (and every rule built on them) are checked against.

Conventions (as in neurosnap):

- a state is a tuple of ``(B, n)`` tensors, one per state variable, in the cell's order:
  LeakyRNN ``(h,)``, EGRU ``(c,)``, LIF ``(v, i)`` with ``v`` *before* its reset, ALIF ``(v, i, a)``,
  plus a last refractory counter ``c`` (steps left) for LIF/ALIF with ``refractory_steps > 0``;
- parameters are a dict ``cell.w_rec (G, n, n)``, ``cell.w_in (G, n, n_in)``, ``cell.bias (G, n)``
  (optional), ``readout.weight (n_out, n)``, ``readout.bias (n_out,)``; EGRU's gates are ordered
  ``(u, r, c)``;
- the event output of a state is what the readout and the recurrence see;
- losses are summed over the masked (t, b) entries: cross entropy ``-log softmax(o)[y]``, mse
  ``0.5 * sum_k (o_k - y_k)^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# -- gates ----------------------------------------------------------------------------------------


class _HeavisideSurrogate(torch.autograd.Function):
    """Forward ``H(x) = 1[x > 0]``; backward the pseudo-derivative ``psi(x)``."""

    @staticmethod
    def forward(ctx, x, surrogate, gamma, param):
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.gamma, ctx.param = surrogate, gamma, param
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        if ctx.surrogate == "triangle":  # gamma * max(0, 1 - |x| / width)
            psi = ctx.gamma * torch.clamp(1.0 - x.abs() / ctx.param, min=0.0)
        elif ctx.surrogate == "fast_sigmoid":  # gamma / (1 + slope |x|)^2
            psi = ctx.gamma / (1.0 + ctx.param * x.abs()) ** 2
        else:
            raise ValueError(ctx.surrogate)
        return grad_out * psi, None, None, None


@dataclass(frozen=True)
class Gate:
    """``kind="heaviside"`` with ``surrogate`` in {"triangle", "fast_sigmoid"} and its ``gamma`` and
    ``param`` (width, resp. slope); or ``kind="smooth"``: ``sigmoid(beta x)``."""

    kind: str = "heaviside"
    surrogate: str = "triangle"
    gamma: float = 0.3
    param: float = 1.0
    beta: float = 5.0

    def __call__(self, x):
        if self.kind == "heaviside":
            return _HeavisideSurrogate.apply(x, self.surrogate, self.gamma, self.param)
        if self.kind == "smooth":
            return torch.sigmoid(self.beta * x)
        raise ValueError(self.kind)


# -- cells ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakyRNN:
    """``h_t = (1 - alpha) h_{t-1} + alpha tanh(W h_{t-1} + V x_t + b)``."""

    alpha: float = 1.0
    n_state = 1

    def initial_state(self, batch, n, dtype):
        return (torch.zeros(batch, n, dtype=dtype),)

    def output(self, state):
        return state[0]

    def step(self, p, state, x):
        (h,) = state
        pre = _rec(p, 0, h) + _inp(p, 0, x)
        return ((1 - self.alpha) * h + self.alpha * torch.tanh(pre),)


@dataclass(frozen=True)
class EGRU:
    """Event-based GRU: ``y = H(c - theta) c``; reset ``c_r = c - o theta`` after an event;
    gates ``u``, ``r``, candidate ``z = tanh(r * (W_c y) + V_c x + b_c)``; ``c_t = u z + (1-u) c_r``.
    With ``learn_threshold`` the threshold is ``sigmoid(p["cell.threshold"])``, one per unit."""

    gate: Gate
    threshold: float = 0.3
    detach_reset: bool = False
    learn_threshold: bool = False
    n_state = 1

    def initial_state(self, batch, n, dtype):
        return (torch.zeros(batch, n, dtype=dtype),)

    def theta(self, p):
        return torch.sigmoid(p["cell.threshold"]) if self.learn_threshold else self.threshold

    def output(self, state, p=None):
        (c,) = state
        return self.gate(c - self.theta(p)) * c

    def step(self, p, state, x):
        (c,) = state
        theta = self.theta(p)
        o = self.gate(c - theta)
        y = o * c  # only y enters the recurrence
        o_reset = o.detach() if self.detach_reset else o
        theta_reset = theta.detach() if (self.detach_reset and self.learn_threshold) else theta
        c_r = c - o_reset * theta_reset
        u = torch.sigmoid(_rec(p, 0, y) + _inp(p, 0, x))
        r = torch.sigmoid(_rec(p, 1, y) + _inp(p, 1, x))
        z = torch.tanh(r * _rec(p, 2, y) + _inp(p, 2, x))
        return (u * z + (1 - u) * c_r,)


@dataclass(frozen=True)
class LIF:
    """Current-based LIF, Norse's order: reset of the previous spike, current jump, Euler update."""

    gate: Gate
    dt: float = 1e-3
    tau_mem: float = 1e-2
    tau_syn: float = 5e-3
    v_th: float = 1.0
    v_leak: float = 0.0
    v_reset: float = 0.0
    reset: str = "zero"
    detach_reset: bool = True
    refractory_steps: int = 0  # R: spike step + R - 1 clamped steps (Brian2's convention)
    delay: int = 1  # D: the recurrence sees z_{t-D}
    n_state = 2

    # With delay D > 1 the state ends with the past *spikes* z_{t-1}, ..., z_{t-D+1} (a different
    # buffer from neurosnap's, which keeps gate arguments: only whole-sequence gradients compare).

    def initial_state(self, batch, n, dtype):
        state = (
            torch.full((batch, n), self.v_leak, dtype=dtype),
            torch.zeros(batch, n, dtype=dtype),
        )
        return self._with_tail(state, batch, n, dtype)

    def _with_tail(self, base, batch, n, dtype):
        state = base + ((torch.zeros(batch, n, dtype=dtype),) if self.refractory_steps else ())
        z0 = self.output(state)  # the network at rest before the first step
        return state + tuple(z0.clone() for _ in range(self.delay - 1))

    def _n_base(self):
        return (3 if isinstance(self, ALIF) else 2) + (1 if self.refractory_steps else 0)

    def _delayed(self, state, z):
        """``(spike the recurrence sees, new spike buffer)``."""
        if self.delay == 1:
            return z, ()
        buf = state[self._n_base() :]
        return buf[-1], (z,) + tuple(buf[:-1])

    def _free(self, state):
        """1 where the unit may spike (counter at 0), a constant: no gradient through the counter."""
        if not self.refractory_steps:
            return None
        return (state[self._n_base() - 1] == 0).to(state[0].dtype)

    def _spike(self, xarg, state):
        z = self.gate(xarg)
        free = self._free(state)
        return z if free is None else z * free

    def _refractory(self, xarg, state, v_r, v_new):
        """``(v_new clamped, counter tuple)``: the counter restarts at R - 1 after a spike."""
        if not self.refractory_steps:
            return v_new, ()
        c = state[
            self._n_base() - 1
        ].detach()  # an integer count: piecewise constant, no derivative
        spiked = (xarg > 0) & (c == 0)
        c_new = torch.where(
            spiked, torch.full_like(c, self.refractory_steps - 1), torch.clamp(c - 1, min=0)
        )
        return torch.where(c_new == 0, v_new, v_r), (c_new,)

    def output(self, state):
        return self._spike(state[0] - self.v_th, state)

    def _reset_v(self, v, z):
        zr = z.detach() if self.detach_reset else z
        if self.reset == "zero":
            return (1 - zr) * v + zr * self.v_reset
        if self.reset == "subtract":
            return v - zr * self.v_th
        raise ValueError(self.reset)

    def _integrate(self, p, v_r, i, z, x):
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        i_j = i + _rec(p, 0, z) + _inp(p, 0, x)
        return v_r + k_m * (self.v_leak - v_r + i_j), (1 - k_s) * i_j

    def step(self, p, state, x):
        v, i = state[:2]
        z = self._spike(v - self.v_th, state)
        v_r = self._reset_v(v, z)
        z_in, buf = self._delayed(state, z)
        v_new, i_new = self._integrate(p, v_r, i, z_in, x)
        v_new, counter = self._refractory(v - self.v_th, state, v_r, v_new)
        return (v_new, i_new) + counter + buf


@dataclass(frozen=True)
class ALIF(LIF):
    """LIF with adaptive threshold ``v_th + beta a``, ``a_t = rho (a_{t-1} + z_{t-1})``."""

    tau_adapt: float = 0.2
    beta: float = 1.8
    detach_adaptation: bool = False
    n_state = 3

    def initial_state(self, batch, n, dtype):
        v = torch.full((batch, n), self.v_leak, dtype=dtype)
        zeros = torch.zeros(batch, n, dtype=dtype)
        return self._with_tail((v, zeros, zeros.clone()), batch, n, dtype)

    def output(self, state):
        v, _, a = state[:3]
        return self._spike(v - self.v_th - self.beta * a, state)

    def step(self, p, state, x):
        v, i, a = state[:3]
        xarg = v - self.v_th - self.beta * a
        z = self._spike(xarg, state)
        v_r = self._reset_v(v, z)
        rho = 1 - self.dt / self.tau_adapt
        za = z.detach() if self.detach_adaptation else z
        a_new = rho * (a + za)
        z_in, buf = self._delayed(state, z)
        v_new, i_new = self._integrate(p, v_r, i, z_in, x)
        v_new, counter = self._refractory(xarg, state, v_r, v_new)
        return (v_new, i_new, a_new) + counter + buf


@dataclass(frozen=True)
class LIF2(LIF):
    """LIF with a second synaptic current ``i_inh`` driven by gate 1's weights (``tau_syn_inh``)."""

    tau_syn_inh: float = 1e-2
    n_state = 3

    def initial_state(self, batch, n, dtype):
        v = torch.full((batch, n), self.v_leak, dtype=dtype)
        zeros = torch.zeros(batch, n, dtype=dtype)
        return self._with_tail((v, zeros, zeros.clone()), batch, n, dtype)

    def _n_base(self):
        return 3 + (1 if self.refractory_steps else 0)

    def step(self, p, state, x):
        v, i, ih = state[:3]
        z = self._spike(v - self.v_th, state)
        v_r = self._reset_v(v, z)
        z_in, buf = self._delayed(state, z)
        k_m, k_s = self.dt / self.tau_mem, self.dt / self.tau_syn
        i_j = i + _rec(p, 0, z_in) + _inp(p, 0, x)
        ih_j = ih + _rec(p, 1, z_in) + _inp(p, 1, x)
        v_new = v_r + k_m * (self.v_leak - v_r + i_j + ih_j)
        v_new, counter = self._refractory(v - self.v_th, state, v_r, v_new)
        return (v_new, (1 - k_s) * i_j, (1 - self.dt / self.tau_syn_inh) * ih_j) + counter + buf


def _rec(p, g, y):
    return y @ p["cell.w_rec"][g].T


def _inp(p, g, x):
    out = x @ p["cell.w_in"][g].T
    if "cell.bias" in p:
        out = out + p["cell.bias"][g]
    return out


# -- model ----------------------------------------------------------------------------------------


def step_stacked(cell, p, s, x):
    """One step on a stacked state ``(B, S, n)`` (for Jacobians)."""
    new = cell.step(p, tuple(s[:, a] for a in range(s.shape[1])), x)
    return torch.stack(new, dim=1)


def sequence_loss(cell, p, xs, ys, mask, loss, truncation=None):
    """Summed masked loss over the sequence; ``p`` a dict of tensors, ``xs (T, B, n_in)``.

    With ``truncation=k`` the state is detached every ``k`` steps (truncated BPTT: each window's
    losses send credit back to the window's start only).
    """
    T, B, _ = xs.shape
    n = p["cell.w_rec"].shape[-1]
    state = cell.initial_state(B, n, xs.dtype)
    total = xs.new_zeros(())
    for t in range(T):
        if truncation is not None and t > 0 and t % truncation == 0:
            state = tuple(s.detach() for s in state)
        state = cell.step(p, state, xs[t])
        y = cell.output(state, p) if isinstance(cell, EGRU) else cell.output(state)
        logits = y @ p["readout.weight"].T + p["readout.bias"]
        m = mask[t].to(xs.dtype)
        if loss == "cross_entropy":
            logp = torch.log_softmax(logits, dim=1)
            total = total - (m * logp.gather(1, ys[t][:, None])[:, 0]).sum()
        elif loss == "mse":
            total = total + 0.5 * (m[:, None] * (logits - ys[t]) ** 2).sum()
        else:
            raise ValueError(loss)
    return total


def bptt_grads(cell, params, xs, ys, mask, loss, truncation=None):
    """Autograd gradient of :func:`sequence_loss`; numpy in, ``(loss float, {name: ndarray})`` out."""
    p = {
        k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)
        for k, v in params.items()
    }
    xs_t = torch.tensor(np.asarray(xs, dtype=np.float64))
    ys_t = (
        torch.tensor(np.asarray(ys))
        if loss == "cross_entropy"
        else torch.tensor(np.asarray(ys, dtype=np.float64))
    )
    mask_t = torch.tensor(np.asarray(mask, dtype=bool))
    total = sequence_loss(cell, p, xs_t, ys_t, mask_t, loss, truncation)
    grads = torch.autograd.grad(total, list(p.values()))
    return float(total.detach()), {k: g.numpy() for k, g in zip(p, grads, strict=True)}


def step_jacobians(cell, params, state, x):
    """Per-example autograd Jacobians of one step: ``(J (B, S*n, S*n), dstate/dparams dict)``.

    ``J[b]`` is ``d s_t[b] / d s_{t-1}[b]`` with rows and columns ordered ``(state var, unit)``;
    ``dparams[name][b]`` has shape ``(S, n) + shape(name)``.
    """
    p = {
        k: torch.tensor(np.asarray(v, dtype=np.float64))
        for k, v in params.items()
        if k.startswith("cell.")
    }
    s = torch.tensor(np.asarray(state, dtype=np.float64))
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    B, S, n = s.shape
    names = list(p)

    def f(s_, *ps):
        return step_stacked(cell, dict(zip(names, ps, strict=True)), s_, xt)

    jac = torch.autograd.functional.jacobian(f, (s, *p.values()))
    js = jac[0]  # (B, S, n, B, S, n)
    J = torch.stack([js[b, :, :, b] for b in range(B)]).reshape(B, S * n, S * n)
    dparams = {name: jac[1 + k].numpy() for k, name in enumerate(names)}  # (B, S, n, *shape)
    return J.numpy(), dparams
