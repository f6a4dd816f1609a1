"""``neurosnap simulate``: run a configured network and record it (:func:`neurosnap.simulate`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import config as config_mod
from ..cells.leaky_rnn import LeakyRNN
from ..core import validate
from ..simulation import (
    ArraySource,
    BernoulliSource,
    PoissonSource,
    TaskSource,
    load_inputs,
    load_params,
    simulate,
)
from .common import FILE_ERRORS, describe_error, prepare_out


def add_parser(sub, **kwargs):
    """Register ``neurosnap simulate`` on the subcommand parsers ``sub`` (``kwargs`` go to
    ``add_parser``); return its parser."""
    p = sub.add_parser(
        "simulate",
        help="simulate a configured network and record what it did",
        description="Simulate a configured network and record what it did. The "
        "recording and pictures replace those of an earlier simulate run in --out.",
        **kwargs,
    )
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="TOML file or shipped name, e.g. models/lif-network.toml or lif-network",
    )
    p.add_argument(
        "--params",
        metavar="FILE",
        help="params.npz (neurosnap train writes runs/<name>/params.npz) or a "
        "checkpoint.npz (default: fresh parameters model.init(--seed))",
    )
    p.add_argument("--steps", type=int, default=1000, metavar="N", help="time steps to simulate")
    p.add_argument(
        "--input",
        dest="input_spec",
        metavar="SPEC",
        help="poisson:rate=20 (Hz) | bernoulli:p=0.05 | task | file:PATH.npy|.npz "
        "(default: poisson:rate=20 for spiking cells, task otherwise)",
    )
    p.add_argument(
        "--record",
        metavar="WHAT",
        help="comma-separated: events, rate, states, or state variables such as v,i,a "
        "(default: events and the first state variable)",
    )
    p.add_argument(
        "--units",
        metavar="LIST",
        help="units whose states are recorded, e.g. 0,1,2 or 0-9 (default: 0-4)",
    )
    p.add_argument("--batch", type=int, default=1, metavar="N", help="parallel sequences")
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of fresh parameters and of the input"
    )
    p.add_argument(
        "--rate-bin", type=int, default=10, metavar="N", help="steps per population-rate bin"
    )
    p.add_argument("--chunk-steps", type=int, default=10_000, metavar="N", help="steps per chunk")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of the event engine (default: numba's, every core); the results "
        "do not depend on it",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.n_hidden=200 (repeatable; default: none)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/simulate-<config name>)"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    return p


def parse_units(text, n):
    """Units of ``--units`` ("0,1,2", "0-9"), each checked against ``n`` units before any range is
    expanded."""
    units = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = (int(x) for x in part.split("-", 1))
                if not (0 <= a <= b < n):
                    raise ValueError(
                        f"--units {part}: a range a-b needs 0 <= a <= b < {n} (the "
                        f"network has {n:,} units)"
                    )
                units.extend(range(a, b + 1))
            else:
                u = int(part)
                if not 0 <= u < n:
                    raise ValueError(f"--units {part}: the network has {n:,} units (0-{n - 1})")
                units.append(u)
        except ValueError as exc:
            if str(exc).startswith("--units"):
                raise
            raise ValueError(
                f"--units {text!r}: expected unit numbers and ranges such as 0,1,2 or 0-9"
            ) from None
    return units


def input_source(spec, model, task, args):
    """The :class:`~neurosnap.simulation.Source` of ``--input SPEC`` for ``model`` (``task``: the
    configuration's task; ``args``: seed and batch)."""
    cell = model.cell
    kind, _, rest = spec.partition(":")
    opts = {}
    if kind != "file":
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--input {spec!r}: options look like key=value")
            opts[key.strip()] = value.strip()
    if kind == "poisson":
        if not hasattr(cell, "dt"):
            raise ValueError(
                f"--input poisson needs a cell with dt (LIF/ALIF), not "
                f"{type(cell).__name__}; use bernoulli:p=..."
            )
        bad = set(opts) - {"rate"}
        if bad:
            raise ValueError(f"--input poisson: unknown option(s) {sorted(bad)}; use rate=HZ")
        return PoissonSource(
            float(opts.get("rate", 20.0)), cell.n_in, cell.dt, seed=args.seed, batch=args.batch
        )
    if kind == "bernoulli":
        bad = set(opts) - {"p"}
        if bad:
            raise ValueError(f"--input bernoulli: unknown option(s) {sorted(bad)}; use p=PROB")
        return BernoulliSource(
            float(opts.get("p", 0.05)), cell.n_in, seed=args.seed, batch=args.batch
        )
    if kind == "task":
        return TaskSource(task, batch=args.batch, seed=args.seed)
    if kind == "file":
        if not rest:
            raise ValueError("--input file:PATH needs a path, e.g. file:inputs.npy")
        return ArraySource(load_inputs(rest), name=f"inputs file {rest}")
    raise ValueError(
        f"--input {spec!r}: expected poisson:rate=HZ, bernoulli:p=P, task or file:PATH"
    )


def main(args) -> int:
    """Run ``neurosnap simulate`` with parsed ``args``; return the exit status (2: a bad
    configuration, argument or file, in one line)."""
    try:
        path = config_mod.resolve(args.config)
        cfg = config_mod.apply_overrides(config_mod.load(path), args.overrides)
        model, _, _, task, _ = config_mod.build(cfg)
        cell = model.cell
        params = (
            load_params(model, args.params)
            if args.params
            else model.init(validate.positive_int("--seed", args.seed, minimum=0))
        )
        spec = args.input_spec or ("poisson:rate=20" if hasattr(cell, "dt") else "task")
        source = input_source(spec, model, task, args)
        has_events = not isinstance(cell, LeakyRNN)
        record = args.record or ",".join((["events"] if has_events else []) + [cell.state_names[0]])
        units = (
            parse_units(args.units, cell.n_hidden)
            if args.units
            else list(range(min(5, cell.n_hidden)))
        )
        steps = args.steps
        if source.length is not None and args.steps > source.length:
            steps = source.length
        out = Path(args.out or Path("runs") / f"simulate-{path.stem}")
        prepare_out(out, ("recording.npz", "recording.json"), overwrite=True)
        rec = simulate(
            model,
            params,
            source,
            record,
            steps=steps,
            units=units,
            rate_bin=args.rate_bin,
            chunk_steps=args.chunk_steps,
            out=out,
            progress=args.progress,
            batch=args.batch,
            threads=args.threads,
        )
    except (ValueError, TypeError) as exc:  # ConfigError, bad arguments, unreadable files
        print(f"neurosnap: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except FILE_ERRORS as exc:
        print(f"neurosnap: error: {describe_error(exc)}", file=sys.stderr)
        return 2
    pictures = []
    if not args.no_plots:
        from ..plot import save_panels

        pictures = save_panels(rec, out)
    print(summary(rec, spec, out, pictures))
    return 0


def summary(rec, spec, out, pictures) -> str:
    """The paragraph printed after a simulation: size, speed, events, where the files are."""
    m, meta = rec.meta["model"], rec.meta
    seconds = meta["time_unit"] == "s"
    duration = f" ({rec.n_steps * rec.dt:g} s at dt = {rec.dt * 1e3:g} ms)" if seconds else ""
    text = (
        f"{m['cell']} network ({m['n_hidden']:,} units, weight density {m['density']:g}) "
        f"simulated for {rec.n_steps:,} steps{duration}, batch {rec.batch}, input {spec}, "
        f"engine {meta['engine']}: {meta['wall_seconds']:.2f} s wall "
        f"({1e6 * meta['wall_seconds'] / rec.n_steps:.1f} us/step)."
    )
    if meta["recorded"]["events"]:
        per = rec.n_events / (rec.n_units * rec.batch * rec.n_steps * rec.dt)
        active = int(np.count_nonzero(rec.spike_counts()))
        text += (
            f" {rec.n_events:,} events; mean rate {per:.3g} "
            f"{'Hz' if seconds else 'events/unit/step'} per unit; {active:,} of "
            f"{rec.n_units:,} units were active."
        )
    text += (
        f" Recording: {out}/recording.npz + recording.json (network hash {rec.network_hash[:12]})."
    )
    if pictures:
        text += " Pictures: " + ", ".join(str(p) for p in pictures) + "."
    return text
