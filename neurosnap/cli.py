"""The ``neurosnap`` command line: ``neurosnap train models/<name>.toml [--set key=value ...]``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import config as config_mod
from .checkpoint import CheckpointError
from .train import train


def main(argv=None) -> int:
    """Entry point of the ``neurosnap`` command."""
    parser = argparse.ArgumentParser(prog="neurosnap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model from a TOML configuration")
    p.add_argument("config", help="path to a TOML file, e.g. models/egru-copy.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=1000 (repeatable)")
    p.add_argument("--steps", type=int, help="shortcut for --set train.steps=N")
    p.add_argument("--seed", type=int, help="shortcut for --set train.seed=N")
    p.add_argument("--out", help="output directory (default runs/<config name>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>/checkpoint.npz (bit-identical to an uninterrupted run)")
    _add_compare_sweep(sub)
    from .simulation import _cli_add_parser, _cli_main       # `neurosnap simulate`
    _cli_add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "simulate":
        return _cli_main(args)
    if args.command in ("compare", "sweep"):
        return _compare_sweep(args)
    try:
        return _train(args)
    except (config_mod.ConfigError, CheckpointError) as exc:
        print(f"neurosnap: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"neurosnap: training diverged: {exc}", file=sys.stderr)
        return 3


def _train(args) -> int:
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    cfg = config_mod.apply_overrides(config_mod.load(args.config), overrides)
    model, rule, opt, task, train_kwargs = config_mod.build(cfg)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        history = train(model, rule, opt, task, progress=not args.no_progress,
                        checkpoint_dir=out, resume=args.resume, **train_kwargs)
    except CheckpointError:
        raise
    except (TypeError, ValueError) as exc:
        raise config_mod.ConfigError(str(exc)) from None
    if history.interrupted:
        print(f"neurosnap: interrupted at step {history.rows[-1]['step'] if history.rows else 0}; "
              f"checkpoint saved in {out}/checkpoint.npz, continue with --resume", file=sys.stderr)
        return 130
    wall = time.perf_counter() - start
    history.to_csv(out / "metrics.csv")
    title = f"{type(model.cell).__name__} n={model.cell.n_hidden}, {type(rule).__name__}, {type(task).__name__}"
    history.plot(out / "learning_curve.png", title=title)
    np.savez(out / "params.npz", **history.params)
    summary = _summary(model, rule, task, history, wall, train_kwargs)
    summary.update(task.evaluate(model, history.params))
    with open(out / "metrics.json", "w") as f:
        json.dump({"config": cfg, "summary": summary, "rows": history.rows}, f, indent=1)
    print(_paragraph(summary, out))
    return 0


def _summary(model, rule, task, history, wall, train_kwargs):
    steps = history.rows[-1]["step"] if history.rows else 0
    return {
        "cell": type(model.cell).__name__, "n_hidden": model.cell.n_hidden,
        "density": model.cell.density, "rule": repr(rule), "task": type(task).__name__,
        "metric": history.metric, "final_metric": history.final(),
        "final_loss": history.final("loss"), "steps": steps, "updates": history.rows[-1]["updates"]
        if history.rows else 0, "wall_seconds": wall, "ms_per_step": 1e3 * wall / max(steps, 1),
        "seed": train_kwargs.get("seed", 0),
    }


def _paragraph(s, out) -> str:
    what = "curriculum level reached" if s["metric"] == "level" else f"final {s['metric']}"
    value = f"{int(s['final_metric'])}" if s["metric"] == "level" else f"{s['final_metric']:.3f}"
    return (f"Trained a {s['cell']} network ({s['n_hidden']} units, weight density {s['density']:g}) "
            f"online with {s['rule']} on the {s['task']} task for {s['steps']:,} time steps "
            f"({s['updates']:,} weight updates) in {s['wall_seconds']:.1f} s "
            f"({s['ms_per_step']:.3f} ms/step). {what}: {value}; final loss per counted step "
            f"{s['final_loss']:.4f}."
            + "".join(f" {k.replace('_', ' ')}: {s[k]:.3f}." for k in ("val_accuracy", "test_accuracy")
                      if k in s)
            + f" Metrics: {out}/metrics.csv and metrics.json; learning curve: "
            f"{out}/learning_curve.png; parameters: {out}/params.npz.")


def _add_compare_sweep(sub):
    p = sub.add_parser("compare", help="compare learning rules on one model and task")
    p.add_argument("config", help="path to a TOML file, e.g. models/copy-curriculum.toml")
    p.add_argument("--rules", nargs="+", required=True, metavar="SPEC",
                   help="rule specs Name[:key=value,...], e.g. RTRL SnAp:n=2 BPTT:truncation=10")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default 0)")
    p.add_argument("--steps", type=int, help="time steps per run (default: train.steps)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--workers", type=int, default=1, help="parallel local processes (default 1)")
    p.add_argument("--out", help="output directory (default runs/compare-<config name>)")
    p.add_argument("--progress", action="store_true", help="progress bar per run (--workers 1)")
    p = sub.add_parser("sweep", help="run a grid of config overrides in parallel (local or Dask)")
    p.add_argument("config", help="path to a TOML file")
    p.add_argument("--grid", nargs="+", action="extend", required=True, metavar="KEY=V1,V2",
                   help="grid axes, e.g. rule.name=RTRL,BPTT train.seed=0,1,2 model.density=1.0,0.1")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for every point (repeatable)")
    p.add_argument("--steps", type=int, help="shortcut for --set train.steps=N")
    p.add_argument("--workers", type=int, help="local processes (default: number of CPUs)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://host:8786 (needs neurosnap[cluster])")
    p.add_argument("--out", help="output directory (default runs/sweep-<config name>)")


def _compare_sweep(args) -> int:
    try:
        if args.command == "compare":
            return _compare(args)
        return _sweep(args)
    except (ValueError, ImportError, OSError) as exc:   # ConfigError, RuleSpecError, GridError, ...
        print(f"neurosnap: error: {exc}", file=sys.stderr)
        return 2


def _compare(args) -> int:
    from .compare import compare, fmt_mean_sd, summarize
    out = Path(args.out or Path("runs") / f"compare-{Path(args.config).stem}")
    results = compare(args.config, args.rules, seeds=args.seeds, steps=args.steps,
                      overrides=args.overrides, out=out, progress=args.progress, workers=args.workers)
    for e in summarize(results):
        print(f"{e['rule']:<24} {results.metric} {fmt_mean_sd(e['final']):>16}   "
              f"{fmt_mean_sd((e['steps_per_s'][0], None))} steps/s   "
              f"{fmt_mean_sd((e['macs_per_step'][0], None))} multiply-adds/step"
              + (f"   {e['failed']} FAILED" if e["failed"] else ""))
    failed = [r for r in results if r["status"] != "ok"]
    for r in failed:
        print(f"neurosnap: {r['rule']} seed {r['seed']} failed: {r['error']}", file=sys.stderr)
    print(f"Tables: {out}/results.md, results.csv; plots: {out}/learning_curves.png, loss_curves.png")
    return 1 if failed else 0


def _sweep(args) -> int:
    from .sweep import main_print, sweep
    out = Path(args.out or Path("runs") / f"sweep-{Path(args.config).stem}")
    overrides = list(args.overrides) + ([f"train.steps={args.steps}"] if args.steps else [])
    rows = sweep(args.config, args.grid, workers=args.workers, scheduler=args.scheduler, out=out,
                 overrides=overrides)
    main_print(rows)
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows)} grid points, {failed} failed. Tables: {out}/sweep.md, sweep.csv, sweep.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
