"""``neurosnap train``: one configuration trained online, its metrics, curve, parameters and
checkpoint written to the run folder."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import numpy as np

from .. import config as config_mod
from ..core import files
from ..train import train
from .common import (
    TRAIN_OUTPUTS,
    prepare_out,
    setup_errors,
)


# -------------------------------------------------------------------------------------------------
# neurosnap train
# -------------------------------------------------------------------------------------------------
def main(args) -> int:
    """Run ``neurosnap train`` with parsed ``args``; return the exit status."""
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    with setup_errors(f"configuration {args.config}"):
        path = config_mod.resolve(args.config)
        cfg = config_mod.apply_overrides(config_mod.load(path), overrides)
        model, rule, opt, task, train_kwargs = config_mod.build(cfg)
        config_mod.check_budget(task, train_kwargs)
    out = prepare_out(
        Path(args.out) if args.out else Path("runs") / path.stem,
        TRAIN_OUTPUTS,
        args.resume,
        args.overwrite,
    )
    steps = train_kwargs.get("steps", inspect.signature(train).parameters["steps"].default)
    checkpoint = out / "checkpoint.npz"
    resumed_at = None
    if args.resume:
        if checkpoint.is_file():
            from .. import checkpoint as ckpt

            with setup_errors(f"cannot read checkpoint {checkpoint}"):
                _, meta = ckpt.load(checkpoint)
            resumed_at = int(meta.get("t", 0)) if isinstance(meta, dict) else 0
            if resumed_at >= steps:
                print(
                    f"neurosnap: the checkpoint in {out} is already at step {resumed_at:,}, at or "
                    f"beyond --steps/train.steps {steps:,}: nothing to train; the summary "
                    f"describes the checkpoint's run",
                    file=sys.stderr,
                )
        else:
            print(
                f"neurosnap: --resume: no checkpoint in {out}, starting a fresh run",
                file=sys.stderr,
            )
    history = train(
        model,
        rule,
        opt,
        task,
        progress=args.progress,
        checkpoint_dir=out,
        resume=args.resume,
        **train_kwargs,
    )
    if history.interrupted:
        print(
            f"neurosnap: interrupted at step {history.rows[-1]['step'] if history.rows else 0}; "
            f"checkpoint saved in {out}/checkpoint.npz, continue with --resume",
            file=sys.stderr,
        )
        return 130
    with setup_errors(f"cannot write the results into {out}"):
        history.to_csv(out / "metrics.csv")
        history.plot(out / "learning_curve.png", title=_title(model, rule, task, train_kwargs))
        files.atomic_savez(out / "params.npz", history.params)
        summary = _summary(model, rule, task, history, train_kwargs, resumed_at)
        summary.update(task.evaluate(model, history.params))
        with open(out / "metrics.json", "w") as f:
            json.dump({"config": cfg, "summary": summary, "rows": history.rows}, f, indent=1)
    print(_paragraph(summary, out))
    return 0


def _title(model, rule, task, train_kwargs):
    return (
        f"{type(model.cell).__name__}, {model.cell.n_hidden} units, {type(rule).__name__}, "
        f"{type(task).__name__} task, batch {train_kwargs.get('batch_size', 1)}"
    )


def _summary(model, rule, task, history, train_kwargs, resumed_at=None):
    """The numbers of the summary paragraph; times are of the whole run (before and after resumes)."""
    last = history.rows[-1] if history.rows else {}
    steps = int(last.get("step", 0))
    wall = float(last.get("wall", 0.0))  # cumulative over resumes
    return {
        "cell": type(model.cell).__name__,
        "n_hidden": model.cell.n_hidden,
        "density": model.cell.density,
        "dtype": np.dtype(model.dtype).name,
        "rule": repr(rule),
        "task": type(task).__name__,
        "batch_size": train_kwargs.get("batch_size", 1),
        "log_every": train_kwargs.get("log_every"),
        "metric": history.metric,
        "final_metric": history.final(),
        "final_loss": history.final("loss"),
        "steps": steps,
        "updates": int(last.get("updates", 0)),
        "wall_seconds": wall,
        "ms_per_step": 1e3 * wall / max(steps, 1),
        "seed": train_kwargs.get("seed", 0),
        "resumed_at": resumed_at,
    }


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU" else "a"


def _paragraph(s, out) -> str:
    """The summary paragraph printed by ``neurosnap train``."""
    rows = "batches" if not s.get("log_every") else f"logged rows of {s['log_every']:,} steps"
    if s["metric"] == "level":
        result = f"Curriculum level reached: {int(s['final_metric'])}"
    else:
        result = f"Final {s['metric']} (mean of the last 20 {rows}): {s['final_metric']:.3f}"
    resumed = f", resumed at step {s['resumed_at']:,}" if s.get("resumed_at") else ""
    batch = s.get("batch_size", 1)
    return (
        f"Trained {_article(s['cell'])} {s['cell']} network ({s['n_hidden']} units, weight "
        f"density {s['density']:g}, {s.get('dtype', 'float64')}) online with {s['rule']} on the "
        f"{s['task']} task for {s['steps']:,} time steps in batches of {batch} sequence"
        f"{'s' if batch != 1 else ''} ({s['updates']:,} weight updates) in "
        f"{s['wall_seconds']:.1f} s ({s['ms_per_step']:.3f} ms/step over the whole run{resumed}). "
        f"{result}; loss per counted step (mean of the last 20 {rows}): {s['final_loss']:.4f}."
        + "".join(
            f" {k.replace('_', ' ').capitalize()}: {s[k]:.3f}."
            for k in ("val_accuracy", "test_accuracy")
            if k in s
        )
        + f" Metrics: {out}/metrics.csv and metrics.json; learning curve: "
        f"{out}/learning_curve.png; parameters: {out}/params.npz."
    )
