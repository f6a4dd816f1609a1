"""Online training: cell step -> readout/loss -> rule step -> optimizer every ``update_every`` steps."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .core import describe, validate
from .history import History
from .model import Model
from .rules.base import Rule, check_rule
from .sparse.stats import StatsMeter, step_stats
from .tasks.base import Batch, Task


def train(
    model: Model,
    rule: Rule,
    opt,
    task: Task,
    steps: int = 10_000,
    update_every: int = 1,
    seed: int = 0,
    batch_size: int = 1,
    params: dict | None = None,
    progress: bool = False,
    callback=None,
    checkpoint_dir=None,
    checkpoint_every: int = 10_000,
    resume: bool = False,
    log_every: int | None = None,
    stats: bool = False,
    engine: str = "compiled",
) -> History:
    """Train ``model`` online on ``task`` with ``rule`` and ``opt``.

    Sequences are processed step by step. Online rules (RTRL, SnAp, e-prop, ...) change the weights
    every ``update_every`` time steps, counting across sequences, with no history kept; rules that
    need history (BPTT) update whenever they return a gradient (at truncation boundaries and
    sequence ends). Cell state and rule state are reset at the start of every sequence. Gradients are
    averaged over the batch.

    Args:
        model: the model; its loss must match ``task.loss``.
        rule: learning rule.
        opt: ``ns.optim.SGD`` or ``ns.optim.Adam``.
        task: a task (stream of batches).
        steps: number of time steps to process (in total, including steps before a resume).
        update_every: weight update period in time steps for online rules.
        seed: seeds the parameters (unless ``params`` is given) and the data stream.
        batch_size: sequences per batch.
        params: initial parameters (default ``model.init(seed)``).
        progress: show a tqdm progress bar.
        callback: called as ``callback(row, params)`` after each batch.
        checkpoint_dir: if given, ``checkpoint.npz`` is written there atomically at the first
            sequence boundary after every ``checkpoint_every`` steps, at the end, and when SIGINT or
            SIGTERM arrives (the run then stops cleanly with ``history.interrupted = True``).
        checkpoint_every: checkpoint period in time steps.
        resume: continue from ``checkpoint_dir/checkpoint.npz`` if it exists; the result is
            bit-identical to an uninterrupted run. The checkpoint must have been written with the
            same settings (every cell, gate, task, rule and optimizer hyperparameter, dtype, seed,
            batch size, ``update_every``, ``log_every``, ``stats``); otherwise a
            :class:`~neurosnap.checkpoint.CheckpointError` lists each difference.
        stats: also record, per row, the per-step means of ``event_fraction``,
            ``support_fraction``, ``influence_nnz``, ``influence_size`` and ``macs`` (the rule's
            counted multiply-adds), as ``ns.sequence_grad(..., stats=True)`` reports them.
        log_every: ``None`` records one history row per batch; an integer aggregates the batches
            of every ``log_every`` time steps into one row (means of the metrics; last ``level``),
            which keeps the memory of very long runs bounded.
        engine: ``"compiled"`` (default): each batch's time steps, optimizer updates included,
            run in compiled code (:mod:`neurosnap.engine`); ``"reference"``: the per-step NumPy
            path. Both give the same numbers (to round-off). Runs with ``stats=True`` and
            combinations the compiled engine does not cover use the reference path.

    Returns:
        :class:`History`.

    Raises:
        ValueError: also when ``steps`` ends before the first step that counts in the loss.
        FloatingPointError: a loss, state or gradient became NaN/inf; the message names the time
            step, and the last good checkpoint is left untouched.

    Examples:
        >>> import numpy as np, neurosnap as ns
        >>> task = ns.tasks.Copy()
        >>> model = ns.Model(ns.cells.EGRU(n_in=task.n_in, n_hidden=8), n_out=task.n_out)
        >>> history = ns.train(model, ns.rules.SnAp(n=1), ns.optim.Adam(lr=1e-2), task, steps=300, seed=0)
        >>> sorted(history.rows[-1])[:5]
        ['accuracy', 'batches', 'level', 'loss', 'loss_bits']
        >>> history.final("level")           # the copy curriculum's level after 300 online steps
        1.0
        >>> history.params["cell.w_rec"].shape
        (3, 8, 8)
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be ns.Model, got {type(model).__name__}")
    check_rule(rule)
    if not isinstance(task, Task):
        raise TypeError(f"task must be a neurosnap task (ns.tasks.*), got {type(task).__name__}")
    if not hasattr(opt, "update") or not hasattr(opt, "init"):
        raise TypeError(f"opt must be ns.optim.SGD or ns.optim.Adam, got {type(opt).__name__}")
    steps = validate.positive_int("steps", steps)
    update_every = validate.positive_int("update_every", update_every)
    seed = validate.positive_int("seed", seed, minimum=0)
    batch_size = validate.positive_int("batch_size", batch_size)
    checkpoint_every = validate.positive_int("checkpoint_every", checkpoint_every)
    if log_every is not None:
        log_every = validate.positive_int("log_every", log_every)
    stats = validate.boolean("stats", stats)
    progress = validate.boolean("progress", progress)
    resume = validate.boolean("resume", resume)
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be callable as callback(row, params), got "
            f"{type(callback).__name__} {callback!r}"
        )
    length = getattr(task, "length", 1)  # steps per sequence, where the task says
    length = length if isinstance(length, int) and length > 0 else 1
    per_step = model.cell.n_state * model.cell.n_hidden + model.cell.n_in + model.n_out
    validate.memory(
        "batch_size",
        batch_size,
        batch_size * length * per_step * model.dtype.itemsize,
        "one batch of sequences (inputs, targets and states)",
    )
    if task.loss != model.loss:
        raise ValueError(f"task needs loss={task.loss!r} but the model has loss={model.loss!r}")
    if (task.n_in, task.n_out) != (model.cell.n_in, model.n_out):
        raise ValueError(
            f"task has n_in={task.n_in}, n_out={task.n_out} but the model has "
            f"n_in={model.cell.n_in}, n_out={model.n_out}"
        )
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    from . import engine as _engine

    _engine.check_engine(engine)
    params = model.check_params(model.init(seed) if params is None else params)
    loop = _Loop(model, rule, opt, params, batch_size, stats)
    if engine == "compiled" and not stats and _engine.supports(model, rule, opt, params):
        loop.compiled = _engine.run_batch
    rng = np.random.default_rng(seed)
    history = History(metric=task.metric)
    # every setting that changes the numbers of a run; a resume must match all of them
    signature = {
        "model": model.config(),
        "rule": describe.plain(rule),
        "opt": describe.plain(opt),
        "task": task.config(),
        "seed": seed,
        "batch_size": batch_size,
        "update_every": update_every,
        "log_every": log_every,
        "stats": stats,
    }
    path = None if checkpoint_dir is None else Path(checkpoint_dir) / "checkpoint.npz"
    wall_offset = 0.0
    if resume and path is not None and path.exists():  # path is set: checked above
        wall_offset = ckpt.restore_training(path, loop, rng, task, history, signature)
    stop = _StopFlag(enabled=path is not None)
    bar = _progress(steps, progress, loop.t)
    start = time.perf_counter() - wall_offset
    last_saved = loop.t
    boundary = None  # (snapshot at the last sequence boundary, wall), see below
    complete = True
    try:
        while loop.t < steps and not stop.raised:
            if path is not None:
                boundary = (ckpt.snapshot(loop, rng, task, history), time.perf_counter() - start)
            batch = task.sample(rng, batch_size)
            # overflow is not warned about here: validate.training_finite turns it into a FloatingPointError
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                batch, logits, losses, complete = loop.run_batch(batch, steps, update_every)
            if not batch.mask.any() and loop.t >= steps:
                break  # the budget ended before any counted step of this batch
            row = {"step": loop.t, "updates": loop.updates, "wall": time.perf_counter() - start}
            with np.errstate(over="ignore", invalid="ignore"):
                metrics = {k: float(v) for k, v in task.observe(batch, logits, losses).items()}
            validate.training_finite(loop.t, loss=metrics.get("loss", 0.0))
            row.update(metrics)
            if loop.meter is not None:
                row.update(loop.meter.means())
                loop.meter = StatsMeter()
            history.pending.append(row)
            if log_every is None or row["step"] - history.last_logged >= log_every:
                history.flush_pending()
            if bar is not None:
                bar.update(loop.t - bar.n)
                bar.set_postfix({k: f"{row[k]:.3g}" for k in ("loss", task.metric) if k in row})
            if callback is not None:
                callback(row, loop.params)
            # only at a sequence boundary: a batch cut short by the budget is replayed whole by a
            # resume, from the boundary checkpoint written below
            if (
                path is not None
                and complete
                and (loop.t - last_saved >= checkpoint_every or stop.raised)
            ):
                ckpt.save_training(
                    path,
                    ckpt.snapshot(loop, rng, task, history),
                    signature,
                    time.perf_counter() - start,
                )
                last_saved = loop.t
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
    history.flush_pending()
    interrupted = stop.raised and loop.t < steps
    if not history.rows and not interrupted:
        raise ValueError(
            f"steps={steps} ended before any step that counts in the loss; sequences "
            f"of this task are longer, so increase steps"
        )
    if path is not None and (loop.t != last_saved or (interrupted and not path.exists())):
        if complete:
            ckpt.save_training(
                path,
                ckpt.snapshot(loop, rng, task, history),
                signature,
                time.perf_counter() - start,
            )
        elif boundary is not None and boundary[0]["t"] != last_saved:
            # The budget ended inside a sequence: checkpoint the boundary before it, so that a
            # resume with a larger budget replays that sequence exactly as an uninterrupted run.
            ckpt.save_training(path, boundary[0], signature, boundary[1])
    history.interrupted = interrupted
    history.params = loop.params
    return history


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked at sequence boundaries (main thread only)."""

    def __init__(self, enabled):
        self.raised = False
        self._old = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.raised = True

    def restore(self):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _progress(total, enabled, initial):
    if not enabled:
        return None
    from .core.progress import progress_bar

    return progress_bar(total, initial=initial)


class _Loop:
    """Mutable state of a training run (parameters, optimizer, pending gradients)."""

    def __init__(self, model, rule, opt, params, batch_size, stats=False):
        self.model, self.rule, self.opt, self.params = model, rule, opt, params
        self.opt_state = opt.init(params)
        self.batch_size = batch_size
        self.t = 0
        self.updates = 0
        self.since_update = 0
        self.meter = StatsMeter() if stats else None
        self.compiled = None  # neurosnap.engine.run_batch when the compiled engine runs
        self._zero()

    def _zero(self):
        layout = self.model.cell.layout
        self.core = np.zeros(layout.size, dtype=self.model.dtype)
        self.g_wout = np.zeros_like(self.params["readout.weight"])
        self.g_bout = np.zeros_like(self.params["readout.bias"])

    def _apply(self):
        grads = self.model.grads_dict(self.core, self.g_wout, self.g_bout)
        grads = {k: v / self.batch_size for k, v in grads.items()}
        self.params, self.opt_state = self.opt.update(grads, self.opt_state, self.params)
        self.updates += 1
        self.since_update = 0
        self._zero()

    def run_batch(self, batch, steps, update_every):
        if self.compiled is not None:
            return self.compiled(self, batch, steps, update_every)
        model, rule, cell = self.model, self.rule, self.model.cell
        xs, ys, mask = model.check_inputs(batch.xs, batch.ys, batch.mask)
        T, B, _ = xs.shape
        state = cell.initial_state(B, model.dtype)
        rule_state = rule.init(model, self.params, B)
        logits_seq = np.zeros((T, B, model.n_out), dtype=model.dtype)
        losses = np.zeros((T, B))
        cp = model.cell_params(self.params)
        complete = True
        for k in range(T):
            if self.t >= steps:  # budget exhausted mid-sequence: the rest does not count
                mask = mask.copy()
                mask[k:] = False
                complete = False
                break
            state, y, record = cell.step_record(cp, state, xs[k])
            loss, logits, dlogits, dy = model.step_loss(self.params, y, ys[k], mask[k])
            validate.training_finite(self.t, state=state, loss=loss)
            logits_seq[k] = logits
            losses[k] = loss
            self.g_wout += dlogits.T @ y
            self.g_bout += dlogits.sum(axis=0)
            rule_state, g = rule.step(
                rule_state,
                record,
                dy[:, None, :] * record.dout,
                params=self.params,
                dlogits=dlogits,
            )
            direct = cell.layout.readout_direct(record, dy)  # learned thresholds only
            if direct is not None:
                self.core += direct
            if self.meter is not None:
                self.meter.add(step_stats(record, rule, rule_state))
            self.t += 1
            self.since_update += 1
            if g is not None:
                validate.training_finite(self.t, gradient=g)
                self.core += g
                if not rule.online:
                    self._apply()
                    cp = model.cell_params(self.params)
            if rule.online and self.since_update >= update_every:
                self._apply()
                cp = model.cell_params(self.params)
        rule_state, g = rule.flush(rule_state, params=self.params)
        if g is not None:
            validate.training_finite(self.t, gradient=g)
            self.core += g
            self._apply()
        return Batch(xs=xs, ys=ys, mask=mask), logits_seq, losses, complete
