"""Norse adapter: a neurosnap LIF model as a Norse ``LIFRecurrentCell``, and BPTT through Norse.

Norse (1.1.0) and torch are imported lazily inside the functions. See ``docs/adapters.md``.

Norse's ``lif_step`` (``norse/torch/functional/lif.py``) performs neurosnap's LIF step in the same
order: current jump ``i + W_in x_t + W_rec z_{t-1}``, forward-Euler voltage update, current decay,
threshold, reset to ``v_reset`` with the spike detached. Norse stores the membrane *after* the reset
and the spike in its state, neurosnap the membrane before it; the trajectories are the same.

Expressible (:func:`check_expressible`): ``ns.cells.LIF`` with

- ``reset="zero"`` and ``detach_reset=True`` (Norse's reset, no gradient through it);
- ``bias=False`` (Norse's cell has no bias);
- a Heaviside gate whose surrogate Norse has: ``Triangle(gamma, width=1)`` is Norse's
  ``"triangle"`` with ``alpha=gamma`` (``alpha * relu(1 - |x|)``); ``FastSigmoid(gamma=1, slope=1)``
  is Norse's ``"super"`` (``1 / (1 + |x|)^2``; Norse 1.1.0 ignores its ``alpha``);
- any ``dt``, ``tau_mem``, ``tau_syn``, ``v_th``, ``v_leak``, ``v_reset``, ``density`` or
  ``connectivity`` (synapses that do not exist are kept at zero by zero weights and a gradient
  hook), ``autapses`` (Norse's ``autapses=`` flag) and ``storage`` (below).

**Sparse storage.** Norse's ``LIFRecurrentCell`` holds a dense ``(n, n)`` recurrent matrix, so a
cell with ``storage="sparse"`` is densified for it (after a memory check: ``ValueError`` when the
matrix, its gradient and the connectivity mask would not fit in memory), and what comes back
(:func:`from_module`, the gradients of :func:`sequence_grad`) is mapped back to ``(1, nnz)``
synapse values in the order of ``cell.graph``.

Not expressible (``ValueError``): ``reset="subtract"``, ``detach_reset=False``, ``bias=True``,
``ns.gates.Smooth`` or other surrogate shapes, ``ALIF`` (Norse's LSNN adds the synaptic input *after*
the threshold, so a spike reaches the postsynaptic membrane one step later than in neurosnap, and
inputs likewise: no parameter choice reproduces neurosnap's ALIF), ``EGRU`` and ``LeakyRNN``.
"""

from __future__ import annotations

import numpy as np

from ..cells.lif import LIF
from ..core import validate
from ..gates import FastSigmoid, Heaviside, Triangle


def check_expressible(model) -> None:
    """Raise ``ValueError`` naming what Norse cannot express in ``model`` (module docstring)."""
    cell = model.cell
    if type(cell) is not LIF:
        extra = ""
        if type(cell).__name__ == "ALIF":
            extra = (
                ": Norse's LSNN applies the input and recurrent current jump after the "
                "threshold (a spike reaches the postsynaptic membrane one step later than in "
                "neurosnap's ALIF), so neurosnap's ALIF update order is not expressible"
            )
        raise ValueError(f"Norse can express ns.cells.LIF only, got {type(cell).__name__}{extra}")
    problems = []
    if cell.reset != "zero":
        problems.append(f"reset={cell.reset!r} (Norse resets to v_reset: use reset='zero')")
    if not cell.detach_reset:
        problems.append("detach_reset=False (Norse never differentiates through the reset)")
    if cell.has_bias:
        problems.append("bias=True (Norse's LIFRecurrentCell has no bias)")
    if getattr(cell, "tau_syn_inh", None) is not None:
        problems.append(f"tau_syn_inh={cell.tau_syn_inh} (Norse's LIF has one synaptic current)")
    if cell.refractory_steps:
        problems.append(
            "refractory>0 (Norse's LIFRefrac has the same forward pass with rho_reset = "
            "R - 1 but differentiates its refractory mask; this adapter builds "
            "LIFRecurrentCell)"
        )
    try:
        _method(cell.gate)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ValueError("Norse cannot express this LIF configuration: " + "; ".join(problems))


def to_module(model, params):
    """A Norse ``LIFRecurrentCell`` with ``model``'s parameters (``nn.Parameter`` copies in
    ``model.dtype``: float64 by default).

    Args:
        model: a :class:`~neurosnap.model.Model` with an expressible LIF cell.
        params: its parameter dict (``cell.w_rec`` in either storage).

    Returns:
        ``norse.torch.LIFRecurrentCell``; its weights are copies (``w_rec`` shape ``(n, n)``, dense
        for either storage, ``w_in`` shape ``(n, n_in)``, ``[post, pre]`` like neurosnap's),
        gradients where no synapse exists are zeroed by a hook, and the readout rides along as an attached
        ``readout`` ``torch.nn.Linear`` (not used by the cell's forward) so that
        :func:`from_module` can return a complete params dict.
    """
    torch = _torch()
    from norse.torch import LIFParameters, LIFRecurrentCell

    check_expressible(model)
    params = model.check_params(params)
    cell = model.cell
    method, alpha = _method(cell.gate)

    dtype = _torch_dtype(torch, model)

    def tensor(x):  # Norse's defaults would be float32 scalars
        return torch.tensor(x, dtype=dtype)

    p = LIFParameters(
        tau_syn_inv=tensor(1.0 / cell.tau_syn),
        tau_mem_inv=tensor(1.0 / cell.tau_mem),
        v_leak=tensor(cell.v_leak),
        v_th=tensor(cell.v_th),
        v_reset=tensor(cell.v_reset),
        method=method,
        alpha=tensor(alpha),
    )
    n = cell.n_hidden
    if cell.storage == "sparse":  # weights, their gradient, the mask and a NumPy copy
        validate.memory(
            "n_hidden",
            n,
            4 * n * n * np.dtype(model.dtype).itemsize,
            f"Norse's dense ({n}, {n}) recurrent weights, their gradient and the connectivity "
            "mask (Norse has no sparse recurrent weights; storage='sparse' is densified for it)",
        )
    # Copies: with autapses=False Norse zeroes the diagonal of the given tensor in place.
    w_in = torch.nn.Parameter(tensor(params["cell.w_in"][0]))
    w_rec = torch.nn.Parameter(tensor(cell.dense_w_rec(params["cell.w_rec"])[0]))
    module = LIFRecurrentCell(
        cell.n_in,
        cell.n_hidden,
        p=p,
        input_weights=w_in,
        recurrent_weights=w_rec,
        autapses=cell.autapses,
        dt=cell.dt,
    )
    mask = torch.zeros((n, n), dtype=dtype)  # from the connectivity index, either storage
    mask[torch.from_numpy(cell.graph.edge_post), torch.from_numpy(cell.graph.edge_pre)] = 1
    module.recurrent_weights.register_hook(lambda grad: grad * mask)
    readout = torch.nn.Linear(cell.n_hidden, model.n_out, dtype=dtype)
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(params["readout.weight"]))
        readout.bias.copy_(torch.from_numpy(params["readout.bias"]))
    module.readout = readout
    return module


def from_module(module, model) -> dict[str, np.ndarray]:
    """The params dict of ``model`` read from a module built by :func:`to_module` (``cell.w_rec``
    in the cell's storage: ``(1, nnz)`` synapse values for ``storage="sparse"``; ``ValueError``
    if the module has a non-zero recurrent weight where the cell has no synapse)."""

    def arr(t):
        return t.detach().cpu().numpy().astype(model.dtype, copy=True)

    params = {
        "cell.w_in": arr(module.input_weights)[None],
        "cell.w_rec": _storage_w_rec(model.cell, arr(module.recurrent_weights), "module"),
        "readout.weight": arr(module.readout.weight),
        "readout.bias": arr(module.readout.bias),
    }
    return model.check_params(params)


def sequence_grad(model, params, xs, ys, mask=None):
    """Loss and gradients by BPTT through Norse's ``lif_step`` and surrogate (torch autograd).

    Same contract as ``ns.sequence_grad(model, params, xs, ys, rule, mask)``: ``xs (T, B, n_in)``,
    ``ys (T, B)`` ints (cross-entropy) or ``(T, B, n_out)`` (mse), ``mask (T, B)``; returns
    ``(loss, grads)`` with the keys and shapes of ``params`` (zero where a weight does not exist;
    ``cell.w_rec`` as ``(1, nnz)`` synapse values for ``storage="sparse"``, gathered from Norse's
    dense gradient).
    """
    torch = _torch()
    params = model.check_params(params)
    xs, ys, mask = model.check_inputs(xs, ys, mask)
    if ys is None:
        raise ValueError("ys must be given")
    module = to_module(model, params)
    T, B, _ = xs.shape
    state = initial_state(model, B)
    x = torch.from_numpy(xs)
    m = torch.from_numpy(mask.astype(model.dtype))
    total = torch.zeros((), dtype=_torch_dtype(torch, model))
    for t in range(T):
        z, state = module(x[t], state)
        logits = module.readout(z)
        if model.loss == "mse":
            total = total + 0.5 * torch.sum(m[t, :, None] * (logits - torch.from_numpy(ys[t])) ** 2)
        else:
            logp = torch.log_softmax(logits, dim=1)
            picked = logp.gather(1, torch.from_numpy(ys[t]).long()[:, None])[:, 0]
            total = total - torch.sum(m[t] * picked)
    total.backward()
    grads = {
        "cell.w_in": module.input_weights.grad.numpy()[None].astype(model.dtype),
        "cell.w_rec": _storage_w_rec(
            model.cell, module.recurrent_weights.grad.numpy().astype(model.dtype), "gradient"
        ),
        "readout.weight": module.readout.weight.grad.numpy().astype(model.dtype),
        "readout.bias": module.readout.bias.grad.numpy().astype(model.dtype),
    }
    return float(total.detach()), grads


def simulate(model, params, xs):
    """Run ``xs (T, B, n_in)`` through Norse's ``lif_step`` without gradients.

    Returns:
        ``(events, v)``: ``events`` shape ``(T, B, n)`` bool, comparable to ``model.run(...).events``;
        ``v`` shape ``(T, B, n)``, Norse's membrane *after* the reset (neurosnap's state ``v`` is
        before it: they agree where no event occurred, and Norse's is ``v_reset`` where one did).
    """
    torch = _torch()
    params = model.check_params(params)
    xs, _, _ = model.check_inputs(xs)
    module = to_module(model, params)
    T, B, _ = xs.shape
    state = initial_state(model, B)
    x = torch.from_numpy(xs)
    events = np.zeros((T, B, model.cell.n_hidden), dtype=bool)
    v = np.zeros((T, B, model.cell.n_hidden), dtype=model.dtype)
    with torch.no_grad():
        for t in range(T):
            z, state = module(x[t], state)
            events[t], v[t] = z.numpy() > 0, state.v.numpy()
    return events, v


def initial_state(model, batch: int):
    """neurosnap's initial state (``v = v_leak``) as Norse's ``LIFState`` (after the reset, with the
    spike ``z`` of that state), batch ``batch``, in ``model.dtype``."""
    torch = _torch()
    from norse.torch.functional.lif import LIFState

    cell, dtype = model.cell, _torch_dtype(torch, model)
    z0 = float(cell.v_leak - cell.v_th > 0)
    shape = (batch, cell.n_hidden)
    return LIFState(
        z=torch.full(shape, z0, dtype=dtype),
        v=torch.full(shape, cell.v_reset if z0 else cell.v_leak, dtype=dtype),
        i=torch.zeros(shape, dtype=dtype),
    )


def _storage_w_rec(cell, dense: np.ndarray, what: str) -> np.ndarray:
    """A dense ``(n, n)`` recurrent matrix from Norse in the cell's storage: ``(1, n, n)`` or the
    ``(1, nnz)`` synapse values (``ValueError`` naming ``what`` if a non-zero lies off them)."""
    if cell.storage == "dense":
        return dense[None]
    values = dense[cell.graph.edge_post, cell.graph.pre_index]
    if np.count_nonzero(values) != np.count_nonzero(dense):
        raise ValueError(
            f"the Norse {what}'s recurrent weights are non-zero where the cell has no synapse"
        )
    return values[None]


def _torch_dtype(torch, model):
    return torch.float64 if model.dtype == np.float64 else torch.float32


def _torch():
    try:
        import norse.torch  # noqa: F401  (checks that Norse is installed)
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the Norse adapter needs torch and norse (see docs/adapters.md)") from exc
    return torch


def _method(gate):
    """Norse's ``(method, alpha)`` for a neurosnap gate, or ``ValueError``."""
    if not isinstance(gate, Heaviside):
        raise ValueError(f"gate {gate!r} has no Norse equivalent (Norse spikes are Heaviside)")
    s = gate.surrogate
    if isinstance(s, Triangle) and s.width == 1.0:
        return "triangle", s.gamma
    if isinstance(s, FastSigmoid) and s.gamma == 1.0 and s.slope == 1.0:
        return "super", 1.0
    raise ValueError(
        f"surrogate {s!r} has no Norse equivalent: use Triangle(gamma, width=1.0) "
        "(Norse 'triangle') or FastSigmoid(gamma=1.0, slope=1.0) (Norse 'super')"
    )
