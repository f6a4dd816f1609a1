"""Progress bars (tqdm) that stay quiet in logs.

On a terminal the bar redraws at most twice a second; when stderr is not a terminal (a log file, a
pipe, a batch job) it writes a new line at most every :data:`LOG_INTERVAL` seconds, so that a long
run does not fill its log with progress lines.
"""

from __future__ import annotations

import sys

#: seconds between two progress lines when the output is not a terminal
LOG_INTERVAL = 5.0


def progress_bar(total: int, *, initial: int = 0, file=None, **kwargs):
    """A ``tqdm`` bar over ``total`` time steps, drawn on ``file`` (default ``sys.stderr``).

    ``mininterval`` is 0.5 s on a terminal and :data:`LOG_INTERVAL` otherwise; ``set_postfix`` never
    forces a redraw. Other keyword arguments go to ``tqdm``.
    """
    from tqdm.auto import tqdm

    file = sys.stderr if file is None else file
    isatty = getattr(file, "isatty", None)
    terminal = bool(isatty()) if callable(isatty) else False
    options = {
        "unit": "step",
        "dynamic_ncols": terminal,
        "mininterval": 0.5 if terminal else LOG_INTERVAL,
    }
    if not terminal:
        options["maxinterval"] = max(LOG_INTERVAL, 10.0)
    options.update(kwargs)

    class Bar(tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **values):
            # shown with the next throttled redraw, never forcing one (a forced redraw per batch
            # wrote a progress line per sequence into logs)
            super().set_postfix(ordered_dict, refresh=False, **values)

    return Bar(total=total, initial=initial, file=file, **options)
