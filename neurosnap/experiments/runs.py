"""One training run built from a configuration, and the cost probe of a trained rule.

Shared by :mod:`neurosnap.compare` (rule x seed runs) and :mod:`neurosnap.sweep` (grid points).
"""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np

from .. import config as config_mod
from ..sparse.stats import StatsMeter, step_stats
from ..train import train


def run_config(cfg: dict, progress: bool = False):
    """Build everything from ``cfg`` afresh, train, and return ``(summary, history, built)``.

    ``summary`` has the training columns of a result row (see module docstring) except the probe's;
    ``built`` is ``(model, rule, opt, task, train_kwargs)`` after training (the task in its final
    curriculum state).
    """
    model, rule, opt, task, train_kwargs = config_mod.build(cfg)
    start = time.perf_counter()
    history = train_built(
        model, rule, opt, task, progress, train_kwargs
    )  # errors propagate as raised
    wall = time.perf_counter() - start
    last = history.rows[-1] if history.rows else {}
    steps = int(last.get("step", 0))
    summary = {
        "metric": history.metric,
        "final": history.final() if history.rows else math.nan,
        "level": history.final("level") if any("level" in r for r in history.rows) else None,
        "final_loss": history.final("loss") if history.rows else math.nan,
        "steps": steps,
        "updates": int(last.get("updates", 0)),
        "wall_s": wall,
        "steps_per_s": steps / wall if wall > 0 else math.nan,
    }
    return summary, history, (model, rule, opt, task, train_kwargs)


def train_built(model, rule, opt, task, progress, train_kwargs):
    """``ns.train`` with the keyword arguments of a configuration's ``[train]`` table (checkpoints
    aside: an experiment's runs keep no checkpoints)."""
    kwargs = {k: v for k, v in train_kwargs.items() if k != "checkpoint_every"}
    return train(model, rule, opt, task, progress=progress, **kwargs)


def probe(model, rule, params, batch) -> dict:
    """Per-step cost of ``rule`` on one batch: mean :func:`~neurosnap.sparse.stats.step_stats` and
    the :mod:`tracemalloc` peak (MiB) of the loop of :func:`neurosnap.sequence_grad`."""
    xs, ys, mask = model.check_inputs(batch.xs, batch.ys, batch.mask)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    meter = StatsMeter()
    try:
        T, B, _ = xs.shape
        cell = model.cell
        cp = model.cell_params(params)
        state = cell.initial_state(B, model.dtype)
        rule_state = rule.init(model, params, B)
        core = np.zeros(cell.layout.size, dtype=model.dtype)
        for t in range(T):
            state, y, record = cell.step_record(cp, state, xs[t])
            _, _, dlogits, dy = model.step_loss(params, y, ys[t], mask[t])
            rule_state, g = rule.step(
                rule_state, record, dy[:, None, :] * record.dout, params=params, dlogits=dlogits
            )
            meter.add(step_stats(record, rule, rule_state))
            if g is not None:
                core += g
        rule.flush(rule_state, params=params)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    means = meter.means()
    return {
        "macs_per_step": means["macs"],
        "influence_nnz": means["influence_nnz"],
        "event_fraction": means["event_fraction"],
        "peak_mem_mib": peak / 2**20,
    }


def warm_up(cfg):
    """Run the rule once on a short batch so that JIT compilation is not counted in steps/s."""
    model, rule, _, task, _ = config_mod.build(cfg)
    batch = task.sample(np.random.default_rng(0), 1)
    probe(model, rule, model.init(0), batch)
