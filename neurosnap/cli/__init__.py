"""The ``neurosnap`` command line: train, compare, sweep and simulate from TOML configurations.

Exit status: 0 success; 1 a run failed (compare/sweep) or an unexpected error (one line, and the
full traceback with ``--traceback``); 2 a bad configuration, argument or file (one line, no
traceback); 3 training diverged; 130 interrupted (Ctrl-C/SIGTERM) after saving what finished.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import numpy as np

from .. import config as config_mod
from .._version import __version__
from ..checkpoint import CheckpointError
from ..core import files
from ..experiments.report import fmt
from ..train import train
from . import simulate as simulate_cmd
from .common import FILE_ERRORS, Formatter, UsageError, describe_error, prepare_out, setup_errors

DESCRIPTION = (
    "Train, compare, sweep and simulate event-driven recurrent and spiking networks described by "
    "TOML configurations. CONFIG is a path to a TOML file or the name of a configuration shipped "
    "with neurosnap (e.g. egru-copy)."
)

#: the files `neurosnap train` writes into its output directory
TRAIN_OUTPUTS = (
    "metrics.csv",
    "metrics.json",
    "learning_curve.png",
    "params.npz",
    "checkpoint.npz",
)
COMPARE_OUTPUTS = (
    "results.csv",
    "results.md",
    "results.json",
    "curves.json",
    "learning_curves.png",
    "loss_curves.png",
)
SWEEP_OUTPUTS = ("sweep.csv", "sweep.md", "sweep.json")

__all__ = [
    "main",
    "build_parser",
    "UsageError",
    "FILE_ERRORS",
    "DESCRIPTION",
    "TRAIN_OUTPUTS",
    "COMPARE_OUTPUTS",
    "SWEEP_OUTPUTS",
]


def _user_errors():
    from ..compare import RuleSpecError
    from ..sweep import GridError

    return (config_mod.ConfigError, CheckpointError, RuleSpecError, GridError, UsageError)


def main(argv=None) -> int:
    """Entry point of the ``neurosnap`` command (and of ``python -m neurosnap``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        bad = [o for o in getattr(args, "overrides", []) if "=" not in o]
        if bad:
            return _error(
                f"--set takes key=value, e.g. --set train.steps=1000; got --set {bad[0]} "
                f"followed by {' '.join(extra)}"
            )
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = {"train": _train, "compare": _compare, "sweep": _sweep, "simulate": _simulate}
    try:
        return command[args.command](args)
    except _user_errors() as exc:
        return _error(str(exc))
    except FloatingPointError as exc:
        if args.traceback:
            raise
        return _error(f"training diverged: {exc}", status=3, prefix="neurosnap: ")
    except KeyboardInterrupt:
        print("neurosnap: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file that cannot be read or written
        if args.traceback:
            raise
        return _error(describe_error(exc))
    except Exception as exc:
        if args.traceback:
            raise
        return _error(f"{type(exc).__name__}: {exc} (run with --traceback for details)", status=1)


def _error(message, status=2, prefix="neurosnap: error: ") -> int:
    print(prefix + " ".join(str(message).split()), file=sys.stderr)
    return status


# -------------------------------------------------------------------------------------------------
# the parser
# -------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``neurosnap`` (all subcommands)."""
    shipped = ", ".join(config_mod.shipped())
    parser = argparse.ArgumentParser(
        prog="neurosnap",
        description=DESCRIPTION,
        formatter_class=Formatter,
        epilog=f"Shipped configurations: {shipped}. 'neurosnap COMMAND --help' shows the options "
        f"of a command.",
    )
    parser.add_argument("--version", action="version", version=f"neurosnap {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--traceback",
        action="store_true",
        help="on an unexpected error, show the full Python traceback instead of "
        "one line (default: one line)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text):
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[common],
            formatter_class=Formatter,
        )

    p = command("train", "train a model from a TOML configuration")
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="TOML file or shipped name, e.g. models/egru-copy.toml or egru-copy",
    )
    _add_set(p)
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="time steps in total, counting those before a resume (default: the "
        "config's train.steps)",
    )
    p.add_argument("--seed", type=int, metavar="N", help="seed (default: the config's train.seed)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<config name>)")
    _add_run_dir(
        p,
        "continue from DIR/checkpoint.npz, bit-identical to an uninterrupted run; "
        "starts a fresh run (and says so) when there is no checkpoint",
    )
    _add_progress(p)

    p = command("compare", "compare learning rules on one model and task")
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="TOML file or shipped name, e.g. models/copy-curriculum.toml",
    )
    p.add_argument(
        "--rules",
        nargs="+",
        required=True,
        metavar="SPEC",
        help="rule specs Name[:key=value,...], e.g. RTRL SnAp:n=2 BPTT:truncation=10 (required)",
    )
    p.add_argument(
        "--seeds", nargs="+", type=int, default=[0], metavar="N", help="training seeds (default: 0)"
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="time steps per run (default: the config's train.steps)",
    )
    _add_set(p)
    p.add_argument("--workers", default="1", metavar="N", help="parallel local processes")
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/compare-<config name>)"
    )
    _add_run_dir(p, "skip the runs an interrupted comparison in DIR already finished")
    _add_progress(p, " of each run (with --workers 1)")

    p = command("sweep", "run a grid of config overrides in parallel (local or Dask)")
    p.add_argument("config", metavar="CONFIG", help="TOML file or shipped name")
    p.add_argument(
        "--grid",
        nargs="+",
        action="extend",
        required=True,
        metavar="KEY=V1,V2",
        help="grid axes, e.g. rule.name=RTRL,BPTT train.seed=0,1,2 "
        "model.density=1.0,0.1 (required)",
    )
    _add_set(p, " for every point")
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="shortcut for --set train.steps=N (default: the config's train.steps)",
    )
    p.add_argument("--workers", metavar="N", help="local processes (default: the number of CPUs)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://host:8786, needs neurosnap[cluster] "
        "(default: local processes)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/sweep-<config name>)"
    )
    _add_run_dir(p, "skip the grid points an interrupted sweep in DIR already finished")
    _add_progress(p, " of each point (with --workers 1)")

    p = simulate_cmd.add_parser(sub, parents=[common], formatter_class=Formatter)
    _add_progress(p)
    return parser


def _add_set(p, scope=""):
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value{scope}, e.g. --set train.steps=1000 "
        f"(repeatable; default: none)",
    )


def _add_run_dir(p, resume_help):
    p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in the output directory (default: "
        "refuse a non-empty output directory without --resume or --overwrite)",
    )


def _add_progress(p, scope=""):
    p.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=True,
        help=f"show a progress bar{scope}; at most one line every few seconds when "
        f"stderr is not a terminal (default: on)",
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )


def _workers(text, default=None):
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--workers must be a positive integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"--workers must be a positive integer, got {value}")
    return value


# -------------------------------------------------------------------------------------------------
# neurosnap train
# -------------------------------------------------------------------------------------------------
def _train(args) -> int:
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


# -------------------------------------------------------------------------------------------------
# neurosnap compare / sweep
# -------------------------------------------------------------------------------------------------
def _compare(args) -> int:
    from .. import compare as cmp

    workers = _workers(args.workers, 1)
    with setup_errors(f"configuration {args.config}"):
        path = config_mod.resolve(args.config)
        plan = cmp.plan_comparison(
            path,
            args.rules,
            seeds=args.seeds,
            steps=args.steps,
            overrides=args.overrides,
            workers=workers,
        )
    out = prepare_out(
        Path(args.out) if args.out else Path("runs") / f"compare-{path.stem}",
        COMPARE_OUTPUTS,
        args.resume,
        args.overwrite,
        subdir="runs",
    )
    total, done = len(plan["items"]), []

    def report(row, reused):
        done.append(row)
        status = "ok" if row["status"] == "ok" else "FAILED"
        what = (
            f"final {row['metric']} {fmt(row['final'])}, {fmt(row['steps_per_s'], 3)} steps/s"
            if row["status"] == "ok"
            else row["error"]
        )
        print(
            f"[{len(done)}/{total}] {status:<6} {row['rule']} seed {row['seed']}: {what}"
            + (" (finished earlier, reused)" if reused else ""),
            flush=True,
        )

    try:
        results = cmp.run_plan(
            plan, out=out, progress=args.progress, resume=args.resume, on_result=report
        )
    except KeyboardInterrupt:
        print(
            f"neurosnap: interrupted after {len(done)} of {total} runs; "
            + (f"partial table in {out}/results.md; " if done else "")
            + "continue with --resume",
            file=sys.stderr,
        )
        return 130
    print()
    for e in cmp.summarize(results):
        seeds = f"{e['n']} seed{'s' if e['n'] != 1 else ''}"
        print(
            f"{e['rule']:<24} {results.metric} {cmp.fmt_mean_sd(e['final']):>16} ({seeds})   "
            f"{cmp.fmt_mean_sd((e['steps_per_s'][0], None))} steps/s   "
            f"{cmp.fmt_mean_sd((e['macs_per_step'][0], None))} multiply-adds/step"
            + (f"   {e['failed']} FAILED" if e["failed"] else "")
        )
    failed = [r for r in results if r["status"] != "ok"]
    for r in failed:
        print(f"neurosnap: {r['rule']} seed {r['seed']} failed: {r['error']}", file=sys.stderr)
    print(
        f"Tables: {out}/results.md, results.csv; plots: {out}/learning_curves.png, loss_curves.png"
    )
    return 1 if failed else 0


def _sweep(args) -> int:
    from .. import sweep as sw

    workers = _workers(args.workers)
    overrides = list(args.overrides) + (
        [f"train.steps={args.steps}"] if args.steps is not None else []
    )
    with setup_errors(f"configuration {args.config}"):
        path = config_mod.resolve(args.config)
        plan = sw.plan_sweep(path, args.grid, workers=workers, overrides=overrides)
    out = prepare_out(
        Path(args.out) if args.out else Path("runs") / f"sweep-{path.stem}",
        SWEEP_OUTPUTS,
        args.resume,
        args.overwrite,
        subdir="points",
    )
    total, done = len(plan["points"]), []

    def report(row, reused):
        done.append(row)
        print(
            f"[{len(done)}/{total}] {sw.line(row)}"
            + (" (finished earlier, reused)" if reused else ""),
            flush=True,
        )

    try:
        rows = sw.run_plan(
            plan,
            scheduler=args.scheduler,
            out=out,
            resume=args.resume,
            on_result=report,
            progress=args.progress,
        )
    except KeyboardInterrupt:
        print(
            f"neurosnap: interrupted after {len(done)} of {total} grid points; "
            + (f"partial table in {out}/sweep.md; " if done else "")
            + "continue with --resume",
            file=sys.stderr,
        )
        return 130
    failed = sum(r["status"] != "ok" for r in rows)
    print(
        f"{len(rows)} grid points, {failed} failed. Tables: {out}/sweep.md, sweep.csv, sweep.json"
        + (f"; tracebacks of failed points in {out}/points/" if failed else "")
    )
    return 1 if failed else 0


def _simulate(args) -> int:
    return simulate_cmd.main(args)
