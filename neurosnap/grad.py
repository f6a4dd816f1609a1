"""``sequence_grad``: the gradient of a whole sequence's loss with parameters held fixed."""

from __future__ import annotations

import numpy as np

from .core import validate
from .rules.base import check_rule
from .sparse.stats import StatsMeter, step_stats


@validate.guarded
def sequence_grad(model, params, xs, ys, rule, mask=None, stats=False, engine="compiled"):
    """Loss summed over the sequence and its gradient, computed by ``rule``.

    Args:
        model: a :class:`~neurosnap.model.Model`.
        params: parameter dict from ``model.init``.
        xs: inputs, shape ``(T, B, n_in)``.
        ys: targets, shape ``(T, B)`` ints for ``"cross_entropy"``, ``(T, B, n_out)`` for ``"mse"``.
        rule: a learning rule, e.g. ``ns.rules.RTRL()`` or ``ns.rules.BPTT()``.
        mask: optional ``(T, B)`` booleans: which steps count in the loss.
        stats: also return per-step means of the cost counters of
            :func:`neurosnap.sparse.stats.step_stats`: ``event_fraction`` (units with an event),
            ``support_fraction`` (units active or inside the surrogate's support),
            ``influence_nnz`` / ``influence_size`` (non-zeros / numbers stored in the rule's
            influence or trace, per sequence) and ``macs`` (multiply-adds of the rule's update,
            per sequence). Stats need the per-step record: they always run on the reference path.
        engine: ``"compiled"`` (default): the whole sequence runs in compiled code
            (:mod:`neurosnap.engine`; combinations it does not cover run on the reference path);
            ``"reference"``: the per-step NumPy path. Both give the same numbers (to round-off).

    Returns:
        ``(loss, grads)``: the summed loss (float) and a dict with the keys and shapes of
        ``params`` (zero where a weight does not exist); ``(loss, grads, stats)`` with
        ``stats=True``.

    Raises:
        FloatingPointError: the loss, a gradient or the final state is NaN or inf (e.g. weights
            or hyperparameters too large for the dtype).

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> model = ns.Model(ns.cells.LIF(n_in=4, n_hidden=10, density=0.5), n_out=2, loss="mse")
        >>> params = model.init(seed=0)
        >>> rng = np.random.default_rng(0)
        >>> xs = (rng.random((20, 3, 4)) < 0.3).astype(float)        # (T, B, n_in) input spikes
        >>> ys = rng.normal(size=(20, 3, 2))                          # (T, B, n_out) targets
        >>> loss, grads = ns.sequence_grad(model, params, xs, ys, ns.rules.RTRL())
        >>> all(grads[k].shape == params[k].shape for k in params)
        True
        >>> _, g_bptt = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT())
        >>> max(float(abs(grads[k] - g_bptt[k]).max()) for k in params) < 1e-10     # RTRL == BPTT
        True
    """
    from .model import Model

    if not isinstance(model, Model):
        raise TypeError(f"model must be ns.Model, got {type(model).__name__}")
    check_rule(rule)
    stats = validate.boolean("stats", stats)
    from . import engine as _engine

    _engine.check_engine(engine)
    params = model.check_params(params)
    xs, ys, mask = model.check_inputs(xs, ys, mask)
    if ys is None:
        raise ValueError("ys must be given")
    meter = StatsMeter() if stats else None
    if engine == "compiled" and not stats and _engine.supports(model, rule, params=params):
        total, grads, state = _engine.sequence_grad(model, params, xs, ys, rule, mask)
    else:
        total, grads, state = _reference(model, params, xs, ys, rule, mask, meter)
    validate.finite(
        "sequence_grad",
        loss=total,
        final_state=state,
        **{f"grads[{k!r}]": v for k, v in grads.items()},
    )
    if meter is not None:
        return total, grads, meter.means()
    return total, grads


def _reference(model, params, xs, ys, rule, mask, meter):
    """The per-step NumPy path: ``(loss, grads, final state)``; ``meter`` collects step stats."""
    T, B, _ = xs.shape
    cell, layout = model.cell, model.cell.layout
    cp = model.cell_params(params)
    state = cell.initial_state(B, model.dtype)
    rule_state = rule.init(model, params, B)
    core = np.zeros(layout.size, dtype=model.dtype)
    g_wout = np.zeros_like(params["readout.weight"])
    g_bout = np.zeros_like(params["readout.bias"])
    total = 0.0
    for t in range(T):
        state, y, record = cell.step_record(cp, state, xs[t])
        loss, _, dlogits, dy = model.step_loss(params, y, ys[t], mask[t])
        total += float(loss.sum())
        g_wout += dlogits.T @ y
        g_bout += dlogits.sum(axis=0)
        rule_state, g = rule.step(
            rule_state, record, dy[:, None, :] * record.dout, params=params, dlogits=dlogits
        )
        if g is not None:
            core += g
        direct = layout.readout_direct(record, dy)  # learned thresholds only
        if direct is not None:
            core += direct
        if meter is not None:
            meter.add(step_stats(record, rule, rule_state))
    rule_state, g = rule.flush(rule_state, params=params)
    if g is not None:
        core += g
    grads = model.grads_dict(core, g_wout, g_bout)
    return total, grads, state
