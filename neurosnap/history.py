"""What :func:`neurosnap.train` returns: the rows of a run, its final parameters, and a plot."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    """What :func:`neurosnap.train` returns.

    Attributes:
        rows: one dict per processed batch: ``step`` (time steps so far), ``updates``, ``wall`` (s),
            the task's metrics (``loss``, ``accuracy``, ``level``, ...).
        params: the final parameters.
        metric: name of the task's headline metric.
    """

    rows: list = field(default_factory=list)
    params: dict | None = None
    metric: str = "loss"
    #: True when a SIGINT/SIGTERM stopped the run early (after saving a checkpoint)
    interrupted: bool = False
    #: batch rows not yet aggregated into ``rows`` (``log_every``)
    pending: list = field(default_factory=list)

    @property
    def last_logged(self) -> int:
        """Time step of the last recorded row (0 before any)."""
        return self.rows[-1]["step"] if self.rows else 0

    def flush_pending(self) -> None:
        """Aggregate pending batch rows into one row: last counters and level, mean metrics."""
        if not self.pending:
            return
        row = dict(self.pending[-1])
        for key in row:
            if key not in ("step", "updates", "wall", "level"):
                row[key] = float(np.mean([r[key] for r in self.pending if key in r]))
        row["batches"] = len(self.pending)
        self.rows.append(row)
        self.pending = []

    def column(self, name: str) -> np.ndarray:
        """One metric over the run, shape ``(len(rows),)``."""
        return np.array([row.get(name, np.nan) for row in self.rows], dtype=float)

    def final(self, name: str | None = None, last: int = 20) -> float:
        """Mean of a metric over the last ``last`` rows (the level: its maximum)."""
        name = name or self.metric
        values = self.column(name)
        if name == "level":
            return float(values.max())
        return float(np.mean(values[-last:]))

    def to_csv(self, path) -> None:
        """Write the rows as CSV."""
        keys = sorted({k for row in self.rows for k in row}, key=lambda k: (k != "step", k))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def to_json(self, path) -> None:
        """Write the rows as JSON."""
        with open(path, "w") as f:
            json.dump({"metric": self.metric, "rows": self.rows}, f, indent=1)

    def plot(self, path, title: str = ""):
        """Save a learning curve (loss and headline metric against time steps) as PNG and return
        the ``matplotlib.figure.Figure``.

        Losses and metrics other than the curriculum level are smoothed over 25 rows (the axis
        label says so); the level is drawn as it is, with integer ticks. Built without pyplot, so
        it never changes the backend of an interactive session.
        """
        import matplotlib.ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from .plot import readable_log_axis, smooth

        steps = self.column("step")
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)
        smoothed = len(steps) >= 25
        note = " (mean of 25 rows)" if smoothed else ""
        loss = np.asarray(smooth(self.column("loss")), dtype=float)
        axes[0].plot(steps, loss, lw=1)
        axes[0].set(xlabel="time steps", ylabel=f"loss per counted step{note}")
        finite = loss[np.isfinite(loss)]
        if len(finite) and (finite > 0).all():
            axes[0].set_yscale("log")
            readable_log_axis(axes[0].yaxis, finite)
        if self.metric == "level":
            axes[1].step(steps, self.column("level"), where="post", lw=1.5, color="C1")
            axes[1].set(xlabel="time steps", ylabel="curriculum level")
            axes[1].yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        else:
            axes[1].plot(steps, smooth(self.column(self.metric)), lw=1.5, color="C1")
            axes[1].set(xlabel="time steps", ylabel=f"{self.metric}{note}")
        for ax in axes:
            ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
        if title:
            fig.suptitle(title)
        fig.savefig(path, dpi=120)
        return fig
