"""Grids of configuration overrides run in parallel (``neurosnap sweep``).

>>> from neurosnap.sweep import sweep                                        # doctest: +SKIP
>>> rows = sweep("models/egru-copy.toml",
...              {"rule.name": ["RTRL", "BPTT"], "train.seed": [0, 1, 2], "model.density": [1.0, 0.1]},
...              workers=2, out="runs/sweep")                          # local processes
>>> rows = sweep("models/egru-copy.toml", ["rule.name=RTRL,BPTT", "train.seed=0,1,2"],
...              scheduler="tcp://scheduler:8786")                     # a Dask distributed cluster

A grid is the cartesian product of its axes (the last axis varies fastest). Every grid point is one
work item ``(config dict, overrides)``: plain data, pickled to a local process or a Dask worker,
where the model, rule, optimizer and task are built and trained (:func:`run_point`). Workers need
neurosnap importable (the same version as the client).

Setting ``rule.name`` (or ``task.name``, ``optimizer.name``) to a class other than the config's
replaces that whole table: its other keys then come only from the grid point's overrides (so
``rule.name=RTRL,BPTT`` works on a config whose ``[rule]`` has RTRL-only keys).

Result rows, one per grid point in grid order: the overrides (one column per axis, the parsed
value), ``status`` (``"ok"`` or ``"failed"``), ``error`` (exception type and message of a failed
point: a bad value, a diverged run, a worker that died), ``metric``, ``final``, ``level``,
``final_loss``, ``steps``, ``wall_s`` (training time on the worker), ``host``.
A failing point never stops the others and is never dropped.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import os
import socket
import sys
from pathlib import Path

from . import config as config_mod
from .experiments.report import fmt, write_csv
from .experiments.runs import run_config
from .experiments.specs import load_config, parse_value, split_top
from .experiments.workers import iter_local, local_map

__all__ = [
    "sweep",
    "GridError",
    "RESULT_KEYS",
    "parse_grid",
    "grid_points",
    "point_config",
    "run_point",
    "plan_sweep",
    "run_plan",
    "iter_local",
    "local_map",
    "markdown",
    "write_outputs",
    "line",
    "main_print",
]

RESULT_KEYS = (
    "status",
    "metric",
    "final",
    "level",
    "final_loss",
    "steps",
    "wall_s",
    "host",
    "error",
)
_NAMED = ("rule", "task", "optimizer")


class GridError(ValueError):
    """A grid axis that cannot be used; the message quotes it."""


def parse_grid(grid) -> list[tuple[str, list[str]]]:
    """Normalise a grid to ``[(key, [raw TOML value, ...]), ...]``.

    Accepts a dict ``{"rule.name": ["RTRL", "BPTT"], ...}`` (Python values) or a list of strings
    ``"rule.name=RTRL,BPTT"`` (comma-separated TOML values; commas inside ``[...]``, ``{...}`` or
    quotes do not split).
    """
    axes = []
    if isinstance(grid, dict):
        for key, values in grid.items():
            values = list(values) if isinstance(values, (list, tuple, range)) else [values]
            axes.append((str(key), [_toml_literal(v) for v in values]))
    else:
        for item in [grid] if isinstance(grid, str) else grid:
            key, eq, raw = str(item).partition("=")
            key = key.strip()
            if not eq or not key or not raw.strip():
                raise GridError(f"grid axis {item!r} must look like section.key=value1,value2")
            try:
                values = [v.strip() for v in split_top(raw)]
            except ValueError as exc:
                raise GridError(f"grid axis {item!r}: {exc}") from None
            if any(not v for v in values):
                raise GridError(f"grid axis {item!r}: empty value")
            for v in values:
                try:
                    parse_value(v)
                except ValueError as exc:
                    raise GridError(f"grid axis {item!r}: {exc}") from None
            axes.append((key, values))
    seen = set()
    for key, values in axes:
        if "." not in key:
            raise GridError(f"grid key {key!r} must look like section.key (e.g. model.density)")
        if key in seen:
            raise GridError(f"grid key {key!r} given twice")
        if not values:
            raise GridError(f"grid key {key!r} has no values")
        seen.add(key)
    if not axes:
        raise GridError("the grid is empty")
    return axes


def _toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    raise GridError(f"grid value {value!r} must be a bool, number, string or list")


def grid_points(axes) -> list[list[tuple[str, str]]]:
    """Cartesian product of the axes: ``[[(key, raw), ...], ...]``, the last axis fastest."""
    keys = [k for k, _ in axes]
    return [
        list(zip(keys, combo, strict=True)) for combo in itertools.product(*[v for _, v in axes])
    ]


def point_config(cfg: dict, point) -> dict:
    """The config of one grid point (see the module docstring for ``<section>.name``)."""
    cfg = copy.deepcopy(cfg)
    for key, raw in point:
        section, _, rest = key.partition(".")
        if section in _NAMED and rest == "name":
            new = parse_value(raw)
            if not isinstance(cfg.get(section), dict) or cfg[section].get("name") != new:
                cfg[section] = {}
    return config_mod.apply_overrides(cfg, [f"{k}={v}" for k, v in point])


def run_point(cfg: dict, point, progress: bool = False) -> dict:
    """Build and train one grid point (runs on the worker). Raises on failure."""
    summary, _, _ = run_config(point_config(cfg, point), progress)
    summary["host"] = socket.gethostname()
    return summary


def _dask_iter(items, scheduler, timeout=30):
    """Yield ``(index, value, exception)`` as the points finish on a Dask cluster."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ImportError("--scheduler needs Dask: pip install 'neurosnap[cluster]'") from None
    with Client(scheduler, timeout=timeout) as client:
        futures = [client.submit(run_point, cfg, point, pure=False) for cfg, point in items]
        index = {fut.key: i for i, fut in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                try:
                    yield index[fut.key], fut.result(), None
                except Exception as exc:  # noqa: BLE001 - reported by the caller
                    yield index[fut.key], None, exc
        finally:
            client.cancel(futures)


def sweep(
    config,
    grid,
    workers=None,
    scheduler=None,
    out=None,
    overrides=(),
    resume=False,
    on_result=None,
    progress=False,
) -> list[dict]:
    """Run every point of ``grid`` on the configuration ``config`` and gather one table.

    Every point's configuration is built and checked before any point runs.

    Args:
        config: path of a TOML configuration (or the name of a shipped one) or a config dict.
        grid: axes, ``{"model.density": [1.0, 0.1], ...}`` or ``["model.density=1.0,0.1", ...]``.
        workers: local processes (default: the number of CPUs, at most the number of points;
            ``1`` runs the points one after the other in this process); ignored with ``scheduler``.
        scheduler: address of a Dask distributed scheduler, e.g. ``"tcp://10.0.0.1:8786"``; the
            points then run on its workers.
        out: if given, every point's row is written to ``out/points/`` as soon as it finishes
            (with the traceback of a failed point), and ``sweep.csv``, ``sweep.md`` and
            ``sweep.json`` at the end, or with the points finished so far when interrupted.
        overrides: ``"section.key=value"`` strings applied to every point first.
        resume: with ``out``: reuse the points an earlier call with the same configuration and grid
            finished (``status="ok"``); without it, earlier point files there are removed first.
        on_result: called as ``on_result(row, reused)`` when a point finishes.
        progress: a progress bar per point (``workers=1`` only).

    Returns:
        One row per grid point (see the module docstring); failed points have ``status="failed"``.

    Raises:
        GridError: a bad axis, or a point whose configuration is invalid (before anything runs).
        ConfigError: a bad configuration or override.
        KeyboardInterrupt: after writing the points finished so far.
    """
    plan = plan_sweep(config, grid, workers, overrides)
    return run_plan(
        plan, scheduler=scheduler, out=out, resume=resume, on_result=on_result, progress=progress
    )


def plan_sweep(config, grid, workers=None, overrides=()) -> dict:
    """Check every grid point's configuration before any runs; return the plan
    :func:`run_plan` executes (see :func:`sweep` for the arguments)."""
    cfg = config_mod.apply_overrides(load_config(config), list(overrides))
    axes = parse_grid(grid)
    points = grid_points(axes)
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise GridError(f"workers must be an integer >= 1, got {workers!r}")
    for point in points:  # every point is checked before any runs
        try:
            built = config_mod.build(point_config(cfg, point))
            config_mod.check_budget(built[3], built[4])
        except config_mod.ConfigError as exc:
            raise GridError(f"grid point {_describe(point)}: {exc}") from None
    return {"cfg": cfg, "axes": axes, "points": points, "workers": workers}


def _describe(point) -> str:
    return " ".join(f"{k}={v}" for k, v in point)


def _point_file(out, index) -> Path:
    return Path(out) / "points" / f"{index:04d}.json"


def _read_point(path, cfg, point):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("point") != [list(p) for p in point]:
        return None
    if data.get("config") != json.loads(json.dumps(cfg)):
        raise config_mod.ConfigError(
            f"{path} was written by a sweep of another configuration; use another output "
            f"directory, or start over without resume (neurosnap sweep --overwrite)"
        )
    return data["row"] if data["row"].get("status") == "ok" else None


def _row(point, summary, exc):
    row = {key: parse_value(raw) for key, raw in point}
    if exc is None:
        row.update(summary, status="ok", error="")
    else:
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    return {**{key: row[key] for key, _ in point}, **{k: row.get(k) for k in RESULT_KEYS}}


def run_plan(plan, scheduler=None, out=None, resume=False, on_result=None, progress=False):
    """Run the points of a :func:`plan_sweep` (see :func:`sweep` for the arguments)."""
    import traceback

    cfg, points, axes = plan["cfg"], plan["points"], plan["axes"]
    rows = [None] * len(points)
    if out is not None:
        if resume:
            for i, point in enumerate(points):
                rows[i] = _read_point(_point_file(out, i), cfg, point)
        else:
            for path in (Path(out) / "points").glob("*.json"):
                path.unlink()
    for row in rows:
        if row is not None and on_result is not None:
            on_result(row, True)
    todo = [i for i, r in enumerate(rows) if r is None]
    workers = plan["workers"] or os.cpu_count() or 1
    try:
        if scheduler is not None:
            outcomes = _dask_iter([(cfg, points[i]) for i in todo], scheduler)
        else:
            outcomes = iter_local(
                run_point,
                [(cfg, points[i], progress and workers == 1) for i in todo],
                workers,
                raise_errors=False,
            )
        with contextlib.closing(outcomes):
            for k, summary, exc in outcomes:
                i = todo[k]
                rows[i] = _row(points[i], summary, exc)
                if out is not None:
                    tb = "" if exc is None else "".join(traceback.format_exception(exc))
                    _write_point(_point_file(out, i), cfg, points[i], rows[i], tb)
                if on_result is not None:
                    on_result(rows[i], False)
    except BaseException:
        if out is not None and any(r is not None for r in rows):
            write_outputs(
                [r for r in rows if r is not None], [k for k, _ in axes], out, cfg, scheduler
            )
        raise
    if out is not None:
        write_outputs(rows, [k for k, _ in axes], out, cfg, scheduler)
    return rows


def _write_point(path, cfg, point, row, tb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(
            {"point": [list(p) for p in point], "config": cfg, "row": row, "traceback": tb},
            f,
            default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v),
        )
    os.replace(tmp, path)


def markdown(rows, keys) -> str:
    """The sweep table in Markdown."""
    cols = list(keys) + ["status", "final", "level", "final_loss", "steps", "wall_s", "error"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt(r.get(c)) for c in cols]
        lines.append(
            "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
        )
    failed = sum(r["status"] != "ok" for r in rows)
    metric = next((r["metric"] for r in rows if r.get("metric")), "metric")
    return (
        f"# neurosnap sweep\n\n{len(rows)} grid points, {failed} failed; `final` is the "
        f"final {metric}.\n\n" + "\n".join(lines) + "\n"
    )


def write_outputs(rows, keys, out, cfg=None, scheduler=None) -> None:
    """Write ``sweep.csv``, ``sweep.md`` and ``sweep.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "sweep.csv", list(keys) + list(RESULT_KEYS))
    (out / "sweep.md").write_text(markdown(rows, keys))
    with open(out / "sweep.json", "w") as f:
        json.dump(
            {"config": cfg, "grid": list(keys), "scheduler": scheduler, "rows": rows},
            f,
            indent=1,
            default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v),
        )


def line(row) -> str:
    """One line describing a finished grid point (what the CLI prints)."""
    desc = " ".join(f"{k}={v}" for k, v in row.items() if k not in RESULT_KEYS and k != "metric")
    if row["status"] == "ok":
        return (
            f"ok      {desc}: final {row['metric']} {fmt(row['final'])} ({fmt(row['wall_s'], 3)} s)"
        )
    return f"FAILED  {desc}: {row['error']}"


def main_print(rows, file=None) -> None:
    """A one-line summary per grid point."""
    file = file or sys.stdout
    for r in rows:
        print(line(r), file=file)
