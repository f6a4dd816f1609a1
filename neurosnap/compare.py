"""Rules side by side: one model, one task, identical data streams per seed (``neurosnap compare``).

>>> import neurosnap as ns                                                   # doctest: +SKIP
>>> rows = ns.compare.compare("models/copy-curriculum.toml", ["RTRL", "SnAp:n=1", "BPTT:truncation=10"],
...                           seeds=[0, 1, 2], steps=20_000, out="runs/compare")

Every run (rule x seed) builds its model, rule, optimizer and task afresh from the configuration, so
no curriculum state leaks from one run to the next, and trains with ``ns.train(..., seed=seed)``:
the same seed gives every rule the same initial parameters and the same task random stream (the
batches are identical until the curriculum levels of two runs diverge, since the level decides the
length of the next sequence).

Columns of a result row (one per rule and seed):

- ``rule`` (the spec as given, e.g. ``SnAp:n=2``), ``seed``, ``status`` (``ok``/``failed``), ``error``;
- ``metric`` (the task's headline metric name), ``final`` (:meth:`History.final` of it: the maximum
  for ``level``, else the mean over the last 20 batches), ``level`` (curriculum level reached, for
  tasks with a curriculum), ``final_loss``;
- ``steps``, ``updates``, ``wall_s``, ``steps_per_s`` (time steps per second of the training run);
- ``macs_per_step``, ``influence_nnz``, ``event_fraction``: per-step means of
  :func:`neurosnap.sparse.stats.step_stats` over a *probe*: one batch drawn (fixed seed) from the
  task in the state the run ended in (its curriculum level), processed with the final parameters by
  the same cell-step / rule-step loop as :func:`neurosnap.sequence_grad`;
- ``peak_mem_mib``: the :mod:`tracemalloc` peak of that probe (rule state, step records, gradients:
  the Python/NumPy allocations; memory allocated inside numba kernels is not traced), in MiB. It is
  the working memory of the learning rule on one batch, not the process RSS.

Cumulative multiply-adds (the x-axis of the second plot) are ``steps * macs_per_step`` unless the
training history itself carries a per-step ``macs`` column.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from pathlib import Path

import numpy as np

from . import config as config_mod
from .experiments.compare_report import (
    SUMMARY_KEYS,
    Results,
    load_results,
    markdown,
    mean_curve,
    plot,
    summarize,
    write_outputs,
)
from .experiments.report import fmt_mean_sd, json_default, write_csv
from .experiments.runs import probe, run_config, warm_up
from .experiments.specs import RuleSpecError, load_config, parse_rule_spec, parse_value, split_top
from .experiments.workers import iter_local

__all__ = [
    "compare",
    "Results",
    "SUMMARY_KEYS",
    "RuleSpecError",
    "parse_rule_spec",
    "split_top",
    "parse_value",
    "load_config",
    "run_config",
    "probe",
    "run_one",
    "plan_comparison",
    "run_plan",
    "summarize",
    "fmt_mean_sd",
    "markdown",
    "write_csv",
    "write_outputs",
    "load_results",
    "mean_curve",
    "plot",
]


# -------------------------------------------------------------------------------------------------
# one run
# -------------------------------------------------------------------------------------------------
def run_one(cfg: dict, spec: str, seed: int, progress: bool = False) -> dict:
    """One compare run (picklable work item): returns ``{"row": ..., "curve": ...}``.

    A run that diverges (``FloatingPointError``: a NaN or infinity in a loss, state or gradient) is
    a result of the comparison: it comes back as a row with ``status="failed"`` and the message.
    Any other exception (a bad configuration, a bug) is raised.
    """
    row = {"rule": spec, "seed": seed}
    name, kwargs = parse_rule_spec(spec)
    cfg = copy.deepcopy(cfg)
    cfg["rule"] = {"name": name, **kwargs}
    cfg.setdefault("train", {})["seed"] = seed
    warm_up(cfg)
    try:
        summary, history, (model, rule, _, task, train_kwargs) = run_config(cfg, progress)
    except FloatingPointError as exc:
        row["status"], row["error"] = "failed", f"{type(exc).__name__}: {exc}"
        return {"row": {k: row.get(k) for k in SUMMARY_KEYS}, "curve": None}
    row.update(summary)
    batch = task.sample(np.random.default_rng([seed, 7919]), train_kwargs.get("batch_size", 1))
    row.update(probe(model, rule, history.params, batch))
    row["status"], row["error"] = "ok", ""
    return {
        "row": {k: row.get(k) for k in SUMMARY_KEYS},
        "curve": _curve(history, row["macs_per_step"]),
    }


def _curve(history, macs_per_step):
    steps = history.column("step")
    curve = {
        "step": steps.tolist(),
        history.metric: history.column(history.metric).tolist(),
        "loss": history.column("loss").tolist(),
    }
    if any("macs" in r for r in history.rows):
        curve["macs"] = np.cumsum(np.nan_to_num(history.column("macs"))).tolist()
    else:
        curve["macs"] = (steps * macs_per_step).tolist()
    return curve


# -------------------------------------------------------------------------------------------------
# the grid
# -------------------------------------------------------------------------------------------------
def compare(
    config,
    rules,
    seeds=(0,),
    steps=None,
    overrides=(),
    out=None,
    progress=False,
    workers=1,
    resume=False,
    on_result=None,
) -> Results:
    """Train every rule in ``rules`` for every seed in ``seeds`` on the model and task of ``config``.

    Args:
        config: path of a TOML configuration (or the name of a shipped one) or a config dict
            (``[model]``, ``[task]``, ``[optimizer]``, ``[train]``; its ``[rule]`` table is replaced
            by each rule spec).
        rules: rule specs, e.g. ``["RTRL", "SnAp:n=1", "BPTT:truncation=10"]`` (see
            :func:`parse_rule_spec`); all are checked before anything runs.
        seeds: training seeds (``train.seed``): parameters and data stream.
        steps: time steps per run (default: the config's ``train.steps``).
        overrides: ``"section.key=value"`` strings applied to the config first.
        out: if given, every run's result is written to ``out/runs/`` as soon as it finishes, and
            ``results.csv``, ``results.md``, ``results.json``, ``curves.json``,
            ``learning_curves.png`` and ``loss_curves.png`` at the end (with the runs finished so
            far when the comparison is interrupted or a run raises).
        progress: progress bar per run (sequential runs only).
        workers: runs in parallel in this many local processes (``1``: in this process). Steps per
            second then share the machine's cores.
        resume: with ``out``: reuse the runs already written in ``out/runs/`` by an earlier call
            with the same configuration (an interrupted comparison continues where it stopped);
            without it, earlier run files there are removed first.
        on_result: called as ``on_result(row, reused)`` when a run finishes (``reused``: read back
            from ``out/runs/``), in the order the runs finish.

    Returns:
        :class:`Results`: one row per (rule, seed), in the order rules x seeds (see module docstring).

    Raises:
        RuleSpecError: a bad rule spec (before anything runs).
        ConfigError: a bad configuration or override (before anything runs).
        KeyboardInterrupt: after writing the runs finished so far (see ``out``).
    """
    plan = plan_comparison(config, rules, seeds, steps, overrides, workers)
    return run_plan(plan, out=out, progress=progress, resume=resume, on_result=on_result)


def plan_comparison(config, rules, seeds=(0,), steps=None, overrides=(), workers=1) -> dict:
    """Check everything a comparison needs before it runs; return ``{cfg, items, metric, workers}``."""
    cfg = config_mod.apply_overrides(load_config(config), list(overrides))
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise config_mod.ConfigError(f"steps must be a positive integer, got {steps!r}")
        cfg = config_mod.apply_overrides(cfg, [f"train.steps={int(steps)}"])
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    rules = [rules] if isinstance(rules, str) else list(rules)
    if not rules:
        raise RuleSpecError("no rule specs given")
    if len(set(rules)) != len(rules):
        raise RuleSpecError(
            f"rule specs given twice: {sorted({r for r in rules if rules.count(r) > 1})}"
        )
    parsed = [parse_rule_spec(spec) for spec in rules]
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and not empty, got {seeds}")
    metric = None
    for spec, (name, kwargs) in zip(rules, parsed, strict=True):  # fail early on a bad config
        check = copy.deepcopy(cfg)
        check["rule"] = {"name": name, **kwargs}
        try:
            built = config_mod.build(check)
            config_mod.check_budget(built[3], built[4])
        except config_mod.ConfigError as exc:
            raise config_mod.ConfigError(f"with rule {spec!r}: {exc}") from None
        metric = built[3].metric
    items = [(cfg, spec, int(seed)) for spec in rules for seed in seeds]
    return {"cfg": cfg, "items": items, "metric": metric, "workers": workers}


def _run_file(out, spec, seed) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", spec)
    return Path(out) / "runs" / f"{slug}--seed{seed}.json"


def _read_run(path, cfg, spec, seed):
    """A finished run written by an earlier call, or ``None``; refuses one of another config."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None  # torn or foreign: run it again
    if not isinstance(data, dict) or data.get("spec") != spec or data.get("seed") != seed:
        return None
    if data.get("config") != json.loads(json.dumps(cfg, default=json_default)):
        raise config_mod.ConfigError(
            f"{path} was written by a comparison with another configuration; use another output "
            f"directory, or start over without resume (neurosnap compare --overwrite)"
        )
    return {"row": data["row"], "curve": data["curve"]}


def _write_run(path, cfg, spec, seed, output) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"spec": spec, "seed": seed, "config": cfg, **output}, f, default=json_default)
    os.replace(tmp, path)


def run_plan(plan, out=None, progress=False, resume=False, on_result=None) -> Results:
    """Run the items of a :func:`plan_comparison` (see :func:`compare` for the arguments)."""
    cfg, items = plan["cfg"], plan["items"]
    outputs = [None] * len(items)
    if out is not None:
        if resume:
            for i, (_, spec, seed) in enumerate(items):
                outputs[i] = _read_run(_run_file(out, spec, seed), cfg, spec, seed)
        else:
            for path in (Path(out) / "runs").glob("*.json"):
                path.unlink()
    for output in outputs:
        if output is not None and on_result is not None:
            on_result(output["row"], True)
    todo = [i for i, o in enumerate(outputs) if o is None]

    def results():
        done = [o for o in outputs if o is not None]
        return Results(
            [o["row"] for o in done],
            metric=plan["metric"],
            config=cfg,
            curves={
                (o["row"]["rule"], o["row"]["seed"]): o["curve"]
                for o in done
                if o["curve"] is not None
            },
        )

    try:
        runs = iter_local(
            run_one,
            [items[i] + (progress and plan["workers"] == 1,) for i in todo],
            plan["workers"],
        )
        with contextlib.closing(runs):
            for k, output, _ in runs:
                i = todo[k]
                outputs[i] = output
                if out is not None:
                    _write_run(
                        _run_file(out, items[i][1], items[i][2]),
                        cfg,
                        items[i][1],
                        items[i][2],
                        output,
                    )
                if on_result is not None:
                    on_result(output["row"], False)
    except BaseException:
        if out is not None and any(o is not None for o in outputs):
            write_outputs(results(), out)  # the partial table
        raise
    final = results()
    if out is not None:
        write_outputs(final, out)
    return final
