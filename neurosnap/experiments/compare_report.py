"""The results of ``neurosnap compare``: the result rows (:class:`Results`), the summary per rule,
the Markdown, CSV and JSON reports, and the learning-curve plots (:mod:`neurosnap.compare` runs the
comparison; its module docstring describes the columns)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..plot import readable_log_axis, smooth
from .report import fmt, fmt_mean_sd, json_default, write_csv

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
