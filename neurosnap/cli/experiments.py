"""``neurosnap compare`` (rules side by side) and ``neurosnap sweep`` (a grid of settings)."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import config as config_mod
from ..experiments.report import fmt
from .common import (
    COMPARE_OUTPUTS,
    SWEEP_OUTPUTS,
    prepare_out,
    setup_errors,
    workers_arg,
)


# -------------------------------------------------------------------------------------------------
# neurosnap compare / sweep
# -------------------------------------------------------------------------------------------------
def compare_main(args) -> int:
    """Run ``neurosnap compare`` with parsed ``args``; return the exit status."""
    from .. import compare as cmp

    workers = workers_arg(args.workers, 1)
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


def sweep_main(args) -> int:
    """Run ``neurosnap sweep`` with parsed ``args``; return the exit status."""
    from .. import sweep as sw

    workers = workers_arg(args.workers)
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
