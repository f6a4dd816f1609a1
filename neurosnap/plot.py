"""Pictures of a :class:`~neurosnap.simulation.Recording`: raster, population rate, state traces,
inter-spike-interval histogram, and a four-panel summary.

matplotlib is imported when a function is called. Each function draws into ``ax`` (a matplotlib
``Axes``; default: a new figure from ``matplotlib.pyplot``) and returns it, for notebooks::

    rec = ns.simulate(model, params, source, record="events,v", steps=2000, units=[0, 1])
    ns.plot.raster(rec)
    ns.plot.traces(rec, var="v")

:func:`summary_figure` builds its figure without pyplot (``matplotlib.figure.Figure`` and the Agg
canvas), so it works headless and never changes the backend of an interactive session.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: most state traces drawn by default (:func:`traces`)
MAX_TRACES = 8


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 3), layout="constrained")  # labels never cut off
    return ax


def _duration(rec, value) -> str:
    """A time (in the recording's unit) as text: ``"250 ms"``, ``"3 s"``, ``"1,000 steps"``."""
    if rec.meta.get("time_unit", "s") != "s":
        return f"{value:,.0f} steps"
    if abs(value) < 1.0:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _window_text(rec, a, b) -> str:
    """The shown window ``[a, b)`` (steps) as text."""
    if a == 0 and b >= rec.n_steps:
        return f"all {_duration(rec, rec.n_steps * rec.dt)}"
    end = _duration(rec, b * rec.dt)
    number, unit = end.split(" ")
    start = a * rec.dt * (1e3 if unit == "ms" else 1.0)
    return f"{start:,.3g} to {number} {unit}"


def _time_label(rec):
    return "time (s)" if rec.meta.get("time_unit", "s") == "s" else "time (steps)"


def _window(rec, t_start, t_stop):
    """Step range ``[a, b)`` of a time window (``None``: whole recording)."""
    a = 0 if t_start is None else max(0, int(np.ceil(t_start / rec.dt - 1e-9)))
    b = (
        rec.n_steps
        if t_stop is None
        else min(rec.n_steps, int(np.floor(t_stop / rec.dt + 1e-9)) + 1)
    )
    return a, max(a, b)


def raster(
    rec,
    ax=None,
    *,
    batch: int = 0,
    t_start=None,
    t_stop=None,
    units=None,
    max_events: int = 200_000,
    markersize: float = 1.5,
    color="k",
):
    """Spike raster: one dot per event, time against unit.

    Args:
        rec: a recording with events.
        ax: the Axes to draw into (default: a new figure).
        batch: which sequence.
        t_start, t_stop: time window (default: all).
        units: only these units (default: all).
        max_events: draw at most this many events (the first ones in the window), so that long
            recordings stay quick; the title says when events were left out.
        markersize, color: of the dots.

    Returns:
        the Axes.
    """
    ax = _axes(ax)
    a, b = _window(rec, t_start, t_stop)
    steps = rec.spike_steps
    lo, hi = np.searchsorted(steps, a), np.searchsorted(steps, b)  # sorted by step
    keep = rec.spike_batch[lo:hi] == batch
    st, un = steps[lo:hi][keep], rec.spike_units[lo:hi][keep]
    if units is not None:
        sel = np.isin(un, np.asarray(units))
        st, un = st[sel], un[sel]
    total = len(st)
    st, un = st[:max_events], un[:max_events]
    ax.plot(
        st * rec.dt,
        un,
        "|" if len(st) < 5000 else ".",
        color=color,
        markersize=markersize,
        linestyle="none",
    )
    ax.set(
        xlabel=_time_label(rec),
        ylabel="unit",
        ylim=(-0.5, rec.n_units - 0.5),
        xlim=(a * rec.dt, max(b - 1, a) * rec.dt),
    )
    title = f"{total:,} events in {_window_text(rec, a, b)}" + (
        f" (sequence {batch})" if rec.batch > 1 else ""
    )
    if total > len(st):
        title += f" (first {len(st):,} shown)"
    ax.set_title(title, fontsize="small")
    return ax


def rate(rec, ax=None, *, batch: int | None = None, color="C0", t_start=None, t_stop=None):
    """Population rate against time (one line per sequence, or only ``batch``).

    Args:
        t_start, t_stop: time window (default: all); the mean in the title is over the window.

    Returns:
        the Axes.
    """
    ax = _axes(ax)
    r = rec.rate
    t = rec.rate_times
    a, b = _window(rec, t_start, t_stop)
    keep = (t >= a * rec.dt - 1e-12) & (t < b * rec.dt - 1e-12) if len(t) else np.zeros(0, bool)
    r, t = r[keep], t[keep]
    cols = range(r.shape[1]) if batch is None else [batch]
    for c in cols:
        ax.step(
            t,
            r[:, c],
            where="post",
            lw=1,
            color=color if batch is not None or r.shape[1] == 1 else None,
            label=None if r.shape[1] == 1 else f"sequence {c}",
        )
    unit = "Hz" if rec.meta.get("time_unit", "s") == "s" else "events/unit/step"
    bin_w = int(rec.meta["rate_bin"]) * rec.dt
    ax.set(
        xlabel=_time_label(rec),
        ylabel=f"population rate ({unit})",
        xlim=(a * rec.dt, max(b - 1, a) * rec.dt),
    )
    mean = f"mean {np.mean(r):.3g} {unit}" if r.size else "no bins"
    ax.set_title(
        f"{mean} in {_window_text(rec, a, b)}, bins of {_duration(rec, bin_w)}", fontsize="small"
    )
    if r.shape[1] > 1 and batch is None:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def traces(
    rec,
    ax=None,
    *,
    var: str | None = None,
    units=None,
    batch: int = 0,
    t_start=None,
    t_stop=None,
    threshold: bool = True,
):
    """Recorded state variable of chosen units against time (e.g. membrane potentials).

    Args:
        rec: a recording with states.
        ax: the Axes (default: a new figure).
        var: which state variable (default: the first recorded, e.g. ``"v"``).
        units: which recorded units (default: all recorded, at most the first
            :data:`MAX_TRACES`; the title then says how many are shown).
        batch: which sequence.
        t_start, t_stop: time window.
        threshold: draw the threshold (``v_th`` for ``v``, ``threshold`` for EGRU's ``c``) dashed.

    Returns:
        the Axes.
    """
    ax = _axes(ax)
    names = rec.meta["recorded"]["states"]
    if not names:
        raise ValueError("traces: no state variable was recorded (record=... did not include one)")
    var = names[0] if var is None else var
    if var not in names:
        raise ValueError(f"var must be one of the recorded states {names}, got {var!r}")
    rec_units = list(rec.meta["units"])
    units = rec_units[:MAX_TRACES] if units is None else list(units)
    missing = [u for u in units if u not in rec_units]
    if missing:
        raise ValueError(f"units {missing} were not recorded (recorded: {rec_units})")
    a, b = _window(rec, t_start, t_stop)
    values = rec.states[var]
    t = np.arange(a, b) * rec.dt
    for u in units:
        ax.plot(t, values[a:b, batch, rec_units.index(u)], lw=1, label=f"unit {u}")
    options = rec.meta["model"]["cell_options"]
    level = {"v": options.get("v_th"), "c": options.get("threshold")}.get(var)
    if threshold and level is not None:
        label = "v_th (+ beta a: adaptive)" if rec.meta["model"]["cell"] == "ALIF" else "threshold"
        ax.axhline(level, color="0.5", ls="--", lw=0.8, label=label)
    ax.set(xlabel=_time_label(rec), ylabel=var)
    shown = f"units {', '.join(map(str, units))}" if len(units) <= 4 else f"{len(units)} units"
    if len(units) < len(rec_units):
        shown += f" of the {len(rec_units)} recorded"
    ax.set_title(f"{var} of {shown}, {_window_text(rec, a, b)}", fontsize="small")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def isi_histogram(
    rec,
    ax=None,
    *,
    bins: int = 50,
    batch: int | None = None,
    log: bool = False,
    max_events: int = 2_000_000,
    color="C2",
):
    """Histogram of inter-spike intervals, pooled over units (:meth:`Recording.isi`).

    Args:
        rec: a recording with events.
        ax: the Axes (default: a new figure).
        bins: number of bins.
        batch: one sequence (default: all).
        log: logarithmic interval axis (log-spaced bins).
        max_events: use the first this many events (a time window) of a long recording.

    Returns:
        the Axes.
    """
    ax = _axes(ax)
    isi = rec.isi(batch, max_events=max_events)
    if len(isi) == 0:
        ax.text(0.5, 0.5, "no unit spiked twice", ha="center", va="center", transform=ax.transAxes)
    else:
        edges = (
            np.geomspace(isi.min(), isi.max(), bins + 1) if log and isi.max() > isi.min() else bins
        )
        steps = rec.meta.get("time_unit", "s") != "s"
        if steps and not log and isi.max() - isi.min() <= 4 * bins:
            edges = np.arange(isi.min() - 0.5, isi.max() + 1.5)  # one bar per whole number of steps
        ax.hist(isi, bins=edges, color=color)
        if log:
            ax.set_xscale("log")
        cv = np.std(isi) / np.mean(isi)
        note = f" (first {max_events:,} events)" if rec.n_events > max_events else ""
        ax.set_title(
            f"{len(isi):,} intervals{note}, mean {_duration(rec, np.mean(isi))}, CV {cv:.2f}",
            fontsize="small",
        )
    unit = "s" if rec.meta.get("time_unit", "s") == "s" else "steps"
    ax.set(xlabel=f"inter-spike interval ({unit})", ylabel="count")
    return ax


def summary_figure(rec, path=None, *, title: str | None = None, t_stop=None):
    """A four-panel figure of what ``rec`` holds: raster, population rate and state traces share
    one time window (stated in the title) and one time axis; the ISI histogram pools the whole
    recording. Panels whose data were not recorded say so. Built without pyplot (headless-safe).

    Args:
        rec: a recording.
        path: if given, save the figure there (PNG by extension).
        title: figure title (default: cell, size, steps and the window shown).
        t_stop: end of the time window of the raster, rate and traces (default: the first 1,000
            steps).

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplot_mosaic(
        [["raster", "isi"], ["rate", "isi"], ["traces", "isi"]], width_ratios=[2.2, 1], sharex=False
    )
    for name in ("rate", "traces"):
        axes[name].sharex(axes["raster"])
    if t_stop is None:
        t_stop = (min(rec.n_steps, 1000) - 1) * rec.dt
    panels: list[tuple[str, Callable[..., object], dict, str]] = [
        ("raster", raster, {"t_stop": t_stop}, "events"),
        ("rate", rate, {"t_stop": t_stop}, "rate"),
        ("traces", traces, {"t_stop": t_stop}, "states"),
        ("isi", isi_histogram, {}, "events"),
    ]
    for name, fn, kwargs, need in panels:
        ax = axes[name]
        if rec.meta["recorded"][need]:
            fn(rec, ax, **kwargs)
        else:
            ax.text(
                0.5, 0.5, f"{need} not recorded", ha="center", va="center", transform=ax.transAxes
            )
            ax.set_axis_off()
    if rec.meta["recorded"]["events"]:
        axes["isi"].set_title(
            axes["isi"].get_title() + "\nover the whole recording", fontsize="small"
        )
    a, b = _window(rec, None, t_stop)
    m = rec.meta["model"]
    fig.suptitle(
        title
        or f"{m['cell']} network, {m['n_hidden']:,} units (density "
        f"{m['density']:g}), {rec.n_steps:,} steps; time panels show "
        f"{_window_text(rec, a, b)} of {_duration(rec, rec.n_steps * rec.dt)}"
    )
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def save_panels(rec, out_dir, *, t_stop=None) -> list:
    """Save ``raster.png``, ``rate.png``, ``traces.png``, ``isi.png`` (those with data) and
    ``summary.png`` into ``out_dir``; return the paths written (what ``neurosnap simulate`` does)."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    if t_stop is None:
        t_stop = (min(rec.n_steps, 1000) - 1) * rec.dt
    written = []
    for name, fn, kwargs, need in (
        ("raster", raster, {"t_stop": t_stop}, "events"),
        ("rate", rate, {"t_stop": t_stop}, "rate"),
        ("traces", traces, {"t_stop": t_stop}, "states"),
        ("isi", isi_histogram, {}, "events"),
    ):
        if not rec.meta["recorded"][need]:
            continue
        fig = Figure(figsize=(8, 3.2), layout="constrained")
        FigureCanvasAgg(fig)
        fn(rec, fig.add_subplot(), **kwargs)
        fig.savefig(out_dir / f"{name}.png", dpi=110)
        written.append(out_dir / f"{name}.png")
    summary_figure(rec, out_dir / "summary.png", t_stop=t_stop)
    written.append(out_dir / "summary.png")
    return written


def smooth(values, width=25):
    """Running mean over ``width`` entries (a list as long as ``values``, the last ``width - 1``
    entries NaN); ``values`` unchanged when shorter than ``width``."""
    if len(values) < width:
        return values
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid").tolist() + [np.nan] * (width - 1)


def readable_log_axis(axis, values):
    """Plain-number labels on a log axis; over less than a decade the minor ticks are labelled
    too (matplotlib would otherwise label one tick, or none, in powers of ten)."""
    import matplotlib.ticker

    lo, hi = float(np.min(values)), float(np.max(values))
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    axis.set_major_formatter(fmt)
    if hi < 10 * lo:
        axis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
        axis.set_minor_formatter(fmt)
    else:
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
