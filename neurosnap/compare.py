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
import warnings
from pathlib import Path

import numpy as np

from . import config as config_mod
from .experiments.report import fmt, fmt_mean_sd, json_default, write_csv
from .experiments.runs import probe, run_config, warm_up
from .experiments.specs import RuleSpecError, load_config, parse_rule_spec, parse_value, split_top
from .experiments.workers import iter_local
from .plot import readable_log_axis, smooth

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

SUMMARY_KEYS = (
    "rule",
    "seed",
    "status",
    "metric",
    "final",
    "level",
    "final_loss",
    "steps",
    "updates",
    "wall_s",
    "steps_per_s",
    "macs_per_step",
    "influence_nnz",
    "event_fraction",
    "peak_mem_mib",
    "error",
)


class Results(list):
    """The list of result rows returned by :func:`compare`, with the learning curves.

    Attributes:
        curves: ``{(rule, seed): {"step": [...], <metric>: [...], "loss": [...], "macs": [...]}}``.
        metric: the task's headline metric name.
        config: the config dict the runs were built from (before each rule spec).
    """

    def __init__(self, rows=(), curves=None, metric="loss", config=None):
        super().__init__(rows)
        self.curves = dict(curves or {})
        self.metric = metric
        self.config = config


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


# -------------------------------------------------------------------------------------------------
# tables and plots
# -------------------------------------------------------------------------------------------------
def summarize(results) -> list[dict]:
    """Per rule (in order): number of ok seeds, mean and sd of ``final``/``level``, mean costs."""
    rules = list(dict.fromkeys(r["rule"] for r in results))
    out = []
    for rule in rules:
        ok = [r for r in results if r["rule"] == rule and r["status"] == "ok"]
        entry = {
            "rule": rule,
            "n": len(ok),
            "failed": sum(1 for r in results if r["rule"] == rule and r["status"] != "ok"),
        }
        for key in ("final", "level", "final_loss", "steps_per_s", "macs_per_step", "peak_mem_mib"):
            values = [r[key] for r in ok if r.get(key) is not None]
            entry[key] = (
                float(np.mean(values)) if values else None,
                float(np.std(values, ddof=1)) if len(values) > 1 else None,
            )
        out.append(entry)
    return out


def markdown(results, title: str = "") -> str:
    """The Markdown report: a summary per rule (mean ± sd over seeds) and every run."""
    metric = (
        getattr(results, "metric", results[0].get("metric") if results else "metric") or "metric"
    )
    has_level = any(r.get("level") is not None for r in results) and metric != "level"
    lines = [f"# {title}", ""] if title else []
    head = (
        ["rule", "seeds", f"final {metric}"]
        + (["level"] if has_level else [])
        + ["steps/s", "multiply-adds/step", "peak mem (MiB)"]
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summarize(results):
        cells = (
            [
                f"`{e['rule']}`",
                f"{e['n']}" + (f" ({e['failed']} failed)" if e["failed"] else ""),
                fmt_mean_sd(e["final"]),
            ]
            + ([fmt_mean_sd(e["level"])] if has_level else [])
            + [
                fmt_mean_sd((e["steps_per_s"][0], None)),
                fmt(e["macs_per_step"][0], 3),
                fmt(e["peak_mem_mib"][0], 3),
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per run:", ""]
    cols = [
        "rule",
        "seed",
        "status",
        "final",
        "level",
        "final_loss",
        "steps",
        "steps_per_s",
        "macs_per_step",
        "peak_mem_mib",
        "error",
    ]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        lines.append("| " + " | ".join(fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(results, out) -> None:
    """Write ``results.{csv,md,json}``, ``curves.json`` and the two PNG plots into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(results, out / "results.csv", list(SUMMARY_KEYS))
    (out / "results.md").write_text(markdown(results, "neurosnap compare"))
    with open(out / "results.json", "w") as f:
        json.dump(
            {"config": results.config, "metric": results.metric, "rows": list(results)},
            f,
            indent=1,
            default=json_default,
        )
    with open(out / "curves.json", "w") as f:
        json.dump(
            [{"rule": k[0], "seed": k[1], **v} for k, v in results.curves.items()],
            f,
            default=json_default,
        )
    if results.curves:
        plot(results, out / "learning_curves.png", key=results.metric)
        plot(results, out / "loss_curves.png", key="loss")


def load_results(out) -> Results:
    """Read back what :func:`write_outputs` wrote into ``out`` (``results.json``, ``curves.json``)."""
    out = Path(out)
    with open(out / "results.json") as f:
        data = json.load(f)
    with open(out / "curves.json") as f:
        curves = {(c.pop("rule"), c.pop("seed")): c for c in json.load(f)}
    return Results(data["rows"], curves=curves, metric=data["metric"], config=data.get("config"))


def mean_curve(curves, key, grid, xkey="step"):
    """Mean over runs of ``key`` on a common ``grid`` of ``xkey`` (levels held step-wise, other
    metrics smoothed over 25 batches, then linearly interpolated)."""
    ys = []
    for c in curves:
        x = np.asarray(c[xkey], dtype=float)
        y = np.asarray(c[key], dtype=float)
        if len(x) == 0:
            continue
        if key == "level":
            idx = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, len(x) - 1)
            ys.append(np.where(grid >= x[0], y[idx], y[0]))
        else:
            y = np.asarray(smooth(y), dtype=float)
            ok = np.isfinite(y)
            if ok.sum() < 2:
                continue
            ys.append(np.interp(grid, x[ok], y[ok], left=np.nan, right=np.nan))
    if not ys:
        return np.full_like(grid, np.nan)
    with np.errstate(all="ignore"):
        stacked = np.vstack(ys)
        counts = np.isfinite(stacked).sum(axis=0)
        total = np.nansum(stacked, axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def plot(results, path, key=None, title=""):
    """Learning curves of ``key`` (default: the headline metric), one line per rule (mean over
    seeds, the seeds' range shaded), against time steps (left) and cumulative multiply-adds
    (right, log scale), with one legend for both panels that gives each rule's number of seeds.
    Rules whose mean curves are identical are drawn with distinct dashes and markers, and the
    identity is stated in the legend ("= X"), so that no line hides another. Curves too short to
    draw (a very short run) leave a note in the panel instead. Saves a PNG at ``path`` and returns
    the ``matplotlib.figure.Figure``."""
    import matplotlib.ticker
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key = key or results.metric
    rules = list(dict.fromkeys(r for r, _ in results.curves))
    dashes = [
        (None, None),
        (3, 3),
        (1, 2),
        (6, 2, 1, 2),
        (1, 4),
    ]  # identical curves: thinner, on top
    markers = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
    fig = Figure(figsize=(12, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    handles, drawn = [], {"step": [], "macs": []}
    same_as = []  # (rule, grid, mean curve against steps) so far
    for i, rule in enumerate(rules):
        curves = [c for (r, _), c in results.curves.items() if r == rule]
        color = f"C{i % 10}"
        label, k = f"{rule} ({len(curves)} seed{'s' if len(curves) != 1 else ''})", 0
        line = None
        for ax, xkey in zip(axes, ("step", "macs"), strict=True):
            xs = [np.asarray(c[xkey], dtype=float) for c in curves if len(c[xkey])]
            if not xs:
                continue
            xmin, xmax = min(x.min() for x in xs), max(x.max() for x in xs)
            if not (np.isfinite(xmin) and np.isfinite(xmax)) or xmax <= xmin:
                continue
            log_x = xkey == "macs" and xmin > 0
            grid = np.geomspace(xmin, xmax, 300) if log_x else np.linspace(xmin, xmax, 300)
            y = mean_curve(curves, key, grid, xkey)
            if not np.isfinite(y).any():
                continue
            if xkey == "step":  # identical learning curves (against time steps)
                same = [
                    r
                    for r, g, m in same_as
                    if g.shape == grid.shape
                    and np.allclose(g, grid)
                    and np.allclose(m, y, equal_nan=True, rtol=1e-9, atol=1e-12)
                ]
                k = len(same)  # the k-th rule with this very curve
                label += f", = {same[0]}" if same else ""
                same_as.append((rule, grid, y))
            (line,) = ax.plot(
                grid,
                y,
                color=color,
                lw=1.3 if k else 2.2,
                dashes=dashes[k % len(dashes)],
                marker=markers[i % len(markers)],
                markevery=(0.04 * (k + 1), 0.12),
                ms=5,
                label=label,
                zorder=3 + k,
            )
            if len(curves) > 1:  # the seeds' spread: min to max of the runs
                runs = np.vstack([mean_curve([c], key, grid, xkey) for c in curves])
                with warnings.catch_warnings():  # all-NaN columns: no run reached that x
                    warnings.simplefilter("ignore", RuntimeWarning)
                    lo, hi = np.nanmin(runs, axis=0), np.nanmax(runs, axis=0)
                ax.fill_between(grid, lo, hi, color=color, alpha=0.12, lw=0, zorder=1)
            drawn[xkey].append(y[np.isfinite(y)])
        if line is not None:
            line.set_label(label)
            handles.append(line)
    axes[0].set(xlabel="time steps", ylabel=key)
    axes[1].set(xlabel="cumulative multiply-adds (learning rule)", ylabel=key)
    axes[0].xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
    for ax, xkey in zip(axes, ("step", "macs"), strict=True):
        values = np.concatenate(drawn[xkey]) if drawn[xkey] else np.zeros(0)
        if not len(values):
            ax.text(
                0.5,
                0.5,
                "runs too short for a curve",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        if xkey == "macs" and all(
            len(c["macs"]) and min(c["macs"]) > 0 for c in results.curves.values()
        ):
            ax.set_xscale("log")
        if key == "loss" and (values > 0).all():
            ax.set_yscale("log")
            readable_log_axis(ax.yaxis, values)
        if key == "level":
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if handles:
        fig.legend(
            handles=handles,
            loc="outside right upper",
            fontsize=8,
            frameon=False,
            title='shaded: range over seeds\n"= X": same curve as X',
            title_fontsize=8,
        )
    n_seeds = sorted({len([1 for (r, _) in results.curves if r == rule]) for rule in rules})
    seeds = (
        f"{n_seeds[0]} seed{'s' if n_seeds[0] != 1 else ''}"
        if len(n_seeds) == 1
        else "seeds per rule in the legend"
    )
    fig.suptitle(title or f"{key}: mean over {seeds}")
    fig.savefig(path, dpi=150)
    return fig
