"""The ``neurosnap`` command line: train, compare, sweep and simulate from TOML configurations.

Exit status: 0 success; 1 a run failed (compare/sweep) or an unexpected error (one line, and the
full traceback with ``--traceback``); 2 a bad configuration, argument or file (one line, no
traceback); 3 training diverged; 130 interrupted (Ctrl-C/SIGTERM) after saving what finished.
"""

from __future__ import annotations

import argparse
import sys

from .. import config as config_mod
from .._version import __version__
from ..checkpoint import CheckpointError
from . import experiments as experiments_cmd
from . import simulate as simulate_cmd
from . import train as train_cmd
from .common import (
    COMPARE_OUTPUTS,
    FILE_ERRORS,
    SWEEP_OUTPUTS,
    TRAIN_OUTPUTS,
    Formatter,
    UsageError,
    describe_error,
)

DESCRIPTION = (
    "Train, compare, sweep and simulate event-driven recurrent and spiking networks described by "
    "TOML configurations. CONFIG is a path to a TOML file or the name of a configuration shipped "
    "with neurosnap (e.g. egru-copy)."
)


__all__ = [
    "main",
    "build_parser",
    "UsageError",
    "FILE_ERRORS",
    "DESCRIPTION",
    "TRAIN_OUTPUTS",
    "COMPARE_OUTPUTS",
    "SWEEP_OUTPUTS",
]


def _user_errors():
    from ..compare import RuleSpecError
    from ..sweep import GridError

    return (config_mod.ConfigError, CheckpointError, RuleSpecError, GridError, UsageError)


def main(argv=None) -> int:
    """Entry point of the ``neurosnap`` command (and of ``python -m neurosnap``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        bad = [o for o in getattr(args, "overrides", []) if "=" not in o]
        if bad:
            return _error(
                f"--set takes key=value, e.g. --set train.steps=1000; got --set {bad[0]} "
                f"followed by {' '.join(extra)}"
            )
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = {
        "train": train_cmd.main,
        "compare": experiments_cmd.compare_main,
        "sweep": experiments_cmd.sweep_main,
        "simulate": simulate_cmd.main,
    }
    try:
        return command[args.command](args)
    except _user_errors() as exc:
        return _error(str(exc))
    except FloatingPointError as exc:
        if args.traceback:
            raise
        return _error(f"training diverged: {exc}", status=3, prefix="neurosnap: ")
    except KeyboardInterrupt:
        print("neurosnap: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file that cannot be read or written
        if args.traceback:
            raise
        return _error(describe_error(exc))
    except Exception as exc:
        if args.traceback:
            raise
        return _error(f"{type(exc).__name__}: {exc} (run with --traceback for details)", status=1)


def _error(message, status=2, prefix="neurosnap: error: ") -> int:
    print(prefix + " ".join(str(message).split()), file=sys.stderr)
    return status


# -------------------------------------------------------------------------------------------------
# the parser
# -------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``neurosnap`` (all subcommands)."""
    shipped = ", ".join(config_mod.shipped())
    parser = argparse.ArgumentParser(
        prog="neurosnap",
        description=DESCRIPTION,
        formatter_class=Formatter,
        epilog=f"Shipped configurations: {shipped}. 'neurosnap COMMAND --help' shows the options "
        f"of a command.",
    )
    parser.add_argument("--version", action="version", version=f"neurosnap {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--traceback",
        action="store_true",
        help="on an unexpected error, show the full Python traceback instead of "
        "one line (default: one line)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text):
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[common],
            formatter_class=Formatter,
        )

    p = command("train", "train a model from a TOML configuration")
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="TOML file or shipped name, e.g. models/egru-copy.toml or egru-copy",
    )
    _add_set(p)
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="time steps in total, counting those before a resume (default: the "
        "config's train.steps)",
    )
    p.add_argument("--seed", type=int, metavar="N", help="seed (default: the config's train.seed)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<config name>)")
    _add_run_dir(
        p,
        "continue from DIR/checkpoint.npz, bit-identical to an uninterrupted run; "
        "starts a fresh run (and says so) when there is no checkpoint",
    )
    _add_progress(p)

    p = command("compare", "compare learning rules on one model and task")
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="TOML file or shipped name, e.g. models/copy-curriculum.toml",
    )
    p.add_argument(
        "--rules",
        nargs="+",
        required=True,
        metavar="SPEC",
        help="rule specs Name[:key=value,...], e.g. RTRL SnAp:n=2 BPTT:truncation=10 (required)",
    )
    p.add_argument(
        "--seeds", nargs="+", type=int, default=[0], metavar="N", help="training seeds (default: 0)"
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="time steps per run (default: the config's train.steps)",
    )
    _add_set(p)
    p.add_argument("--workers", default="1", metavar="N", help="parallel local processes")
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/compare-<config name>)"
    )
    _add_run_dir(p, "skip the runs an interrupted comparison in DIR already finished")
    _add_progress(p, " of each run (with --workers 1)")

    p = command("sweep", "run a grid of config overrides in parallel (local or Dask)")
    p.add_argument("config", metavar="CONFIG", help="TOML file or shipped name")
    p.add_argument(
        "--grid",
        nargs="+",
        action="extend",
        required=True,
        metavar="KEY=V1,V2",
        help="grid axes, e.g. rule.name=RTRL,BPTT train.seed=0,1,2 "
        "model.density=1.0,0.1 (required)",
    )
    _add_set(p, " for every point")
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="shortcut for --set train.steps=N (default: the config's train.steps)",
    )
    p.add_argument("--workers", metavar="N", help="local processes (default: the number of CPUs)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://host:8786, needs neurosnap[cluster] "
        "(default: local processes)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/sweep-<config name>)"
    )
    _add_run_dir(p, "skip the grid points an interrupted sweep in DIR already finished")
    _add_progress(p, " of each point (with --workers 1)")

    p = simulate_cmd.add_parser(sub, parents=[common], formatter_class=Formatter)
    _add_progress(p)
    return parser


def _add_set(p, scope=""):
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value{scope}, e.g. --set train.steps=1000 "
        f"(repeatable; default: none)",
    )


def _add_run_dir(p, resume_help):
    p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in the output directory (default: "
        "refuse a non-empty output directory without --resume or --overwrite)",
    )


def _add_progress(p, scope=""):
    p.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=True,
        help=f"show a progress bar{scope}; at most one line every few seconds when "
        f"stderr is not a terminal (default: on)",
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
