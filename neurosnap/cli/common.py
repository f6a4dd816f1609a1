"""What every ``neurosnap`` command shares: one-line errors, the help formatter, output folders."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

#: errors of reading configurations and files, reported in one line with exit status 2
FILE_ERRORS = (OSError, OverflowError, MemoryError, RecursionError, UnicodeDecodeError)


class UsageError(ValueError):
    """A command line that cannot be run as given (exit status 2, one line)."""


class Formatter(argparse.HelpFormatter):
    """Shows each option's default unless its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or action.default == []
            or not action.option_strings
            or action.nargs == 0
        ):
            return text
        return text + " (default: %(default)s)"


def describe_error(exc) -> str:
    """One line for an OSError / MemoryError / ... without Python's repr noise."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, RecursionError):
        return "input nested too deeply"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextlib.contextmanager
def setup_errors(what):
    """Turn the errors of reading configurations and files into one-line usage errors."""
    try:
        yield
    except FILE_ERRORS as exc:
        raise UsageError(f"{what}: {describe_error(exc)}") from None


def prepare_out(out: Path, outputs, resume=False, overwrite=False, subdir=None) -> Path:
    """Check and create the output directory; refuse to mix a new run into an earlier one."""
    if resume and overwrite:
        raise UsageError(
            "--resume and --overwrite exclude each other: --resume continues the run "
            "in the output directory, --overwrite replaces it"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    for name in outputs:
        if (out / name).exists() and not (out / name).is_file():
            raise UsageError(
                f"{out / name} is a directory, where neurosnap writes a file; remove "
                f"it or choose another --out"
            )
    if out.is_dir() and any(out.iterdir()) and not (resume or overwrite):
        raise UsageError(
            f"{out} is not empty (an earlier run?); use --resume to continue it, "
            f"--overwrite to replace its results, or --out DIR for a new directory"
        )
    with setup_errors(f"cannot use --out {out}"):
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # writable?
            pass
        if overwrite:
            for name in outputs:
                if (out / name).is_file():
                    (out / name).unlink()
            if subdir is not None and (out / subdir).is_dir():
                for path in (out / subdir).glob("*.json"):
                    path.unlink()
    return out


#: the files `neurosnap train` writes into its output directory
TRAIN_OUTPUTS = (
    "metrics.csv",
    "metrics.json",
    "learning_curve.png",
    "params.npz",
    "checkpoint.npz",
)
COMPARE_OUTPUTS = (
    "results.csv",
    "results.md",
    "results.json",
    "curves.json",
    "learning_curves.png",
    "loss_curves.png",
)
SWEEP_OUTPUTS = ("sweep.csv", "sweep.md", "sweep.json")


def workers_arg(text, default=None):
    """``--workers``: a positive integer, or ``default`` when not given."""
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--workers must be a positive integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"--workers must be a positive integer, got {value}")
    return value
