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

import copy
import itertools
import json
import math
import os
import socket
import sys
from pathlib import Path

from . import config as config_mod
from .compare import _fmt, load_config, parse_value, run_config, split_top, write_csv

RESULT_KEYS = ("status", "metric", "final", "level", "final_loss", "steps", "wall_s", "host", "error")
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
        for item in ([grid] if isinstance(grid, str) else grid):
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
    return [list(zip(keys, combo)) for combo in itertools.product(*[v for _, v in axes])]


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


def run_point(cfg: dict, point) -> dict:
    """Build and train one grid point (runs on the worker). Raises on failure."""
    summary, _, _ = run_config(point_config(cfg, point))
    summary["host"] = socket.gethostname()
    return summary


def _init_local_worker():
    """Local pool workers: one BLAS thread each (the pool already uses the cores)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def local_map(fn, items, workers, raise_errors=True):
    """``[fn(*item) for item in items]`` in ``workers`` spawned processes, in order (in this
    process when ``workers`` is 1).

    With ``raise_errors=False`` each result is ``(value, None)`` or ``(None, exception)``.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    workers = max(1, min(int(workers), len(items)))
    if workers == 1:                                     # no pool for a single worker
        results = []
        for item in items:
            if raise_errors:
                results.append(fn(*item))
                continue
            try:
                results.append((fn(*item), None))
            except Exception as exc:  # noqa: BLE001 - reported by the caller
                results.append((None, exc))
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_init_local_worker) as pool:
        futures = [pool.submit(fn, *item) for item in items]
        results = []
        for fut in futures:
            if raise_errors:
                results.append(fut.result())
            else:
                try:
                    results.append((fut.result(), None))
                except Exception as exc:  # noqa: BLE001 - reported by the caller
                    results.append((None, exc))
    return results


def _dask_map(items, scheduler, timeout=30):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ImportError("--scheduler needs Dask: pip install 'neurosnap[cluster]'") from None
    results = []
    with Client(scheduler, timeout=timeout) as client:
        futures = [client.submit(run_point, cfg, point, pure=False) for cfg, point in items]
        for fut in futures:
            try:
                results.append((fut.result(), None))
            except Exception as exc:  # noqa: BLE001 - reported by the caller
                results.append((None, exc))
        client.cancel(futures)
    return results


def sweep(config, grid, workers=None, scheduler=None, out=None, overrides=()) -> list[dict]:
    """Run every point of ``grid`` on the configuration ``config`` and gather one table.

    Args:
        config: path of a TOML configuration or a config dict.
        grid: axes, ``{"model.density": [1.0, 0.1], ...}`` or ``["model.density=1.0,0.1", ...]``.
        workers: local processes (default: the number of CPUs, at most the number of points;
            ``1`` runs the points one after the other in this process); ignored with ``scheduler``.
        scheduler: address of a Dask distributed scheduler, e.g. ``"tcp://10.0.0.1:8786"``; the
            points then run on its workers.
        out: if given, write ``sweep.csv``, ``sweep.md`` and ``sweep.json`` there.
        overrides: ``"section.key=value"`` strings applied to every point first.

    Returns:
        One row per grid point (see the module docstring); failed points have ``status="failed"``.
    """
    cfg = config_mod.apply_overrides(load_config(config), list(overrides))
    axes = parse_grid(grid)
    points = grid_points(axes)
    items = [(cfg, point) for point in points]
    if scheduler is not None:
        outcomes = _dask_map(items, scheduler)
    else:
        workers = workers or os.cpu_count() or 1
        outcomes = local_map(run_point, items, workers, raise_errors=False)
    rows = []
    for point, (summary, exc) in zip(points, outcomes):
        row = {key: parse_value(raw) for key, raw in point}
        if exc is None:
            row.update(summary, status="ok", error="")
        else:
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        rows.append({**{key: row[key] for key, _ in point}, **{k: row.get(k) for k in RESULT_KEYS}})
    if out is not None:
        write_outputs(rows, [k for k, _ in axes], out, cfg, scheduler)
    return rows


def markdown(rows, keys) -> str:
    """The sweep table in Markdown."""
    cols = list(keys) + ["status", "final", "level", "final_loss", "steps", "wall_s", "error"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_fmt(r.get(c)) for c in cols]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    failed = sum(r["status"] != "ok" for r in rows)
    metric = next((r["metric"] for r in rows if r.get("metric")), "metric")
    return (f"# neurosnap sweep\n\n{len(rows)} grid points, {failed} failed; `final` is the "
            f"final {metric}.\n\n" + "\n".join(lines) + "\n")


def write_outputs(rows, keys, out, cfg=None, scheduler=None) -> None:
    """Write ``sweep.csv``, ``sweep.md`` and ``sweep.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "sweep.csv", list(keys) + list(RESULT_KEYS))
    (out / "sweep.md").write_text(markdown(rows, keys))
    with open(out / "sweep.json", "w") as f:
        json.dump({"config": cfg, "grid": list(keys), "scheduler": scheduler, "rows": rows}, f,
                  indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))


def main_print(rows, file=None) -> None:
    """A one-line summary per grid point (used by the CLI)."""
    file = file or sys.stdout
    for r in rows:
        desc = " ".join(f"{k}={v}" for k, v in r.items() if k not in RESULT_KEYS and k != "metric")
        if r["status"] == "ok":
            print(f"ok      {desc}: final {r['metric']} {_fmt(r['final'])} ({_fmt(r['wall_s'], 3)} s)",
                  file=file)
        else:
            print(f"FAILED  {desc}: {r['error']}", file=file)
