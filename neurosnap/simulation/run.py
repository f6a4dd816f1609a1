"""``simulate``: run a model on an input stream chunk by chunk and record it (the format is in the
docstring of :mod:`neurosnap.simulation`)."""

from __future__ import annotations

import datetime
import os
import shutil
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from ..cells.alif import ALIF
from ..cells.leaky_rnn import LeakyRNN
from ..cells.lif import LIF
from ..core import files, npz, validate
from ..gates import Heaviside
from ..io.codec import model_config, network_hash
from ..model import Model
from .engine import EventRunner, StepRunner
from .kernels import check_threads, set_threads
from .recording import FORMAT, FORMAT_VERSION, ChunkStore, RateBinner, Recording
from .sources import as_source

RECORD_KINDS = ("events", "rate", "states")
ENGINES = ("auto", "event", "step")


def load_params(model: Model, path) -> dict[str, np.ndarray]:
    """Parameters for ``model`` from a ``params.npz`` (written by ``neurosnap train``) or a training
    ``checkpoint.npz`` (its ``params/*`` arrays), checked with ``model.check_params``. Names,
    shapes and dtypes are checked from the members' headers before any data is read, and only the
    parameter members are read (:mod:`neurosnap.core.npz`). Floating arrays are cast to
    ``model.dtype``."""
    shapes = model.param_shapes()

    def select(found):
        prefix = "params/" if "__meta__.json" in found else ""  # a training checkpoint
        names = {k[len(prefix) :] for k in found if k.startswith(prefix) and k != "__meta__.json"}
        if names != set(shapes):
            raise ValueError(
                f"params file {path} does not fit the model: missing "
                f"{sorted(set(shapes) - names)}, unexpected "
                f"{sorted(names - set(shapes))[:10]}"
            )
        for name, shape in shapes.items():
            head = found[prefix + name]
            if head.shape != shape or head.dtype.kind != "f":
                raise ValueError(
                    f"params file {path} does not fit the model: {name} must be "
                    f"floats of shape {shape}, got {head.dtype} {head.shape}"
                )
        return [prefix + name for name in shapes]

    arrays = npz.read(path, "params", select)
    params = {k.split("/", 1)[-1]: v.astype(model.dtype) for k, v in arrays.items()}
    try:
        return model.check_params(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params file {path} does not fit the model: {exc}") from None


def _resolve_record(record, cell, state_vars):
    if isinstance(record, str):
        record = [r.strip() for r in record.split(",") if r.strip()]
    try:
        record = list(record)
    except TypeError:
        raise TypeError(f"record must be a string or a sequence of names, got {record!r}") from None
    names = cell.state_names
    kinds, svars = set(), []
    for r in record:
        if not isinstance(r, str):
            raise TypeError(f"record entries must be strings, got {r!r}")
        if r in RECORD_KINDS:
            kinds.add(r)
        elif r in names:
            kinds.add("states")
            if r not in svars:
                svars.append(r)
        else:
            raise ValueError(
                f"record: unknown name {r!r}; expected 'events', 'rate', 'states' or "
                f"a state variable of {type(cell).__name__}: {', '.join(names)}"
            )
    if not kinds:
        raise ValueError(
            "record must name at least one of 'events', 'rate', 'states' or a state variable"
        )
    if "states" in kinds and not svars:
        if state_vars is None:
            state_vars = (names[0],)
        if isinstance(state_vars, str):
            state_vars = [s.strip() for s in state_vars.split(",")]
        for s in state_vars:
            if s not in names:
                raise ValueError(
                    f"state_vars: {s!r} is not a state variable of "
                    f"{type(cell).__name__} ({', '.join(names)})"
                )
            if s not in svars:
                svars.append(s)
    if isinstance(cell, LeakyRNN) and kinds & {"events", "rate"}:
        raise ValueError(
            "record: a LeakyRNN has no events (every unit outputs a value every "
            "step); record its state instead, e.g. record=('h',)"
        )
    if "events" in kinds:
        kinds.add("rate")  # derived from the same counts, cheap
    return kinds, svars


def _resolve_units(units, n, recording_states):
    if units is None:
        return np.arange(n, dtype=np.int64) if recording_states else np.zeros(0, np.int64)
    if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
        units = [units]
    try:
        arr = np.asarray(list(units))
    except TypeError:
        raise TypeError(f"units must be a sequence of unit indices, got {units!r}") from None
    if arr.size == 0:
        raise ValueError("units must not be empty (use None for all units)")
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise TypeError(f"units must be a 1-D sequence of integers, got {units!r}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(
            f"units must be in [0, {n}) (the network has {n} units), got "
            f"{arr.min() if arr.min() < 0 else arr.max()}"
        )
    if len(np.unique(arr)) != len(arr):
        raise ValueError(f"units must not repeat, got {units!r}")
    return arr.astype(np.int64)


def check_initial_state(initial_state, cell, batch, dtype):
    """``initial_state`` (``simulate``'s argument) as a dict name -> ``(batch, n)`` array."""
    if initial_state is None:
        return {}
    if not isinstance(initial_state, dict):
        raise TypeError(
            f"initial_state must be a dict from state variable names to arrays, got "
            f"{type(initial_state).__name__}"
        )
    allowed = list(cell.state_names)
    if isinstance(cell, (LIF, ALIF)):  # not the delay buffers q*, f*
        allowed = [s for s in allowed if s in ("v", "i", "i_inh", "a", "r")]
    n = cell.n_hidden
    out = {}
    for name, val in initial_state.items():
        if name not in allowed:
            raise ValueError(
                f"initial_state: {name!r} is not a settable state variable of "
                f"{type(cell).__name__}; expected one of {', '.join(allowed)}"
            )
        arr = np.asarray(val, dtype=dtype)
        if arr.shape in ((), (n,)):
            arr = np.broadcast_to(arr, (batch, n))
        elif arr.shape != (batch, n):
            raise ValueError(
                f"initial_state[{name!r}] must be a scalar or have shape ({n},) or "
                f"({batch}, {n}), "
                f"got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"initial_state[{name!r}] must be finite (no NaN or inf)")
        if name == "r":
            steps = getattr(cell, "refractory_steps", 0)
            if np.any(arr < 0) or np.any(arr > max(steps - 1, 0)) or np.any(arr != np.round(arr)):
                raise ValueError(
                    f"initial_state['r'] must hold integers in [0, "
                    f"{max(steps - 1, 0)}] (refractory steps left)"
                )
        out[name] = np.array(arr)
    if "r" in out:  # the two engines differ on such a unit's first spike
        v = out.get("v", np.full((batch, n), cell.v_leak))
        a = out.get("a", 0.0)
        if np.any((out["r"] > 0) & (v - cell.v_th - getattr(cell, "beta", 0.0) * a > 0)):
            raise ValueError(
                "initial_state: a unit with r > 0 (refractory) must be below threshold at step 0"
            )
    return out


@validate.guarded
def simulate(
    model,
    params,
    inputs,
    record=("events",),
    *,
    steps: int | None = None,
    units=None,
    state_vars=None,
    rate_bin: int = 10,
    out=None,
    chunk_steps: int = 10_000,
    progress: bool = False,
    engine: str = "auto",
    batch: int = 1,
    dt: float | None = None,
    delays=None,
    initial_state=None,
    threads: int | None = None,
) -> Recording:
    """Run ``model`` on ``inputs`` and record events, states and rates (module docstring).

    Args:
        model: an ``ns.Model`` (LIF, ALIF, EGRU or LeakyRNN cell).
        params: its parameters: a dict (e.g. ``model.init(seed)``), a path to a ``params.npz``
            (``neurosnap train`` writes ``runs/<name>/params.npz``) or a training checkpoint
            (:func:`load_params`), or ``None`` for ``model.init(0)``.
        inputs: an array ``(T, B, n_in)`` or ``(T, n_in)``; a path to a ``.npy``/``.npz`` file
            (:func:`load_inputs`); a :class:`Source` (:class:`PoissonSource`,
            :class:`BernoulliSource`, :class:`TaskSource`, :class:`ArraySource`); an ``ns.tasks``
            task (its sequences one after another, state reset at each, ``batch`` per sample); or a
            task ``Batch``.
        record: names to record: ``"events"`` (spike lists; implies ``"rate"``), ``"rate"``
            (population rate only), ``"states"`` (the ``state_vars``), or state variable names
            directly (``"v"``, ``"i"``, ``"i_inh"``, ``"a"``, ``"c"``, ``"h"``); a tuple or a comma-separated
            string.
        steps: number of steps; required for unbounded sources, at most the length of finite ones
            (default: all of it).
        units: units whose states are recorded (default: all units; mind the size, ``T * B * U``).
        state_vars: state variables recorded with ``"states"`` (default: the cell's first, e.g.
            ``v`` for LIF/ALIF).
        rate_bin: steps per population-rate bin.
        out: a directory: stream records to disk chunk by chunk (bounded memory) and write
            ``recording.npz`` + ``recording.json`` there; the returned recording reads from it.
        chunk_steps: steps per chunk (input generation, state buffers, disk writes). Chunks are
            shortened so that one chunk's recorded states stay below 64 MiB.
        progress: show a progress bar (tqdm) over the steps.
        engine: ``"auto"`` (event-driven for LIF/ALIF with a Heaviside gate, else ``"step"``),
            ``"event"`` or ``"step"`` (``model.cell.step``, as ``model.run``).
        batch: sequences per sample when ``inputs`` is a task.
        dt: seconds per step for times and rates (default: the cell's ``dt``; cells without one
            count in steps, ``dt = 1``).
        delays: per-synapse recurrent transmission delays in steps for the event engine, integers
            ``>= 1``: shape ``(nnz,)``, one per synapse in the order of ``model.cell.graph`` (the
            order of a sparse ``w_rec``), or ``(n, n)`` indexed ``(post, pre)`` like a dense
            ``w_rec`` (read where a synapse exists): a spike of step ``t`` reaches ``post`` at step
            ``t + delay``. Default: the cell's uniform ``delay`` (1: the next step).
            Brian2's adapter takes the same array (``neurosnap.adapters.brian2.simulate``).
        initial_state: the state at step 0 (and after each reset of a task's sequences) instead
            of the cell's rest state: a dict from base state variable names (``"v"``, ``"i"``,
            ``"i_inh"`` with LIF's ``tau_syn_inh``;
            ALIF ``"a"``; ``"r"``, the refractory counter in steps, when ``refractory > 0``) to
            scalars, arrays ``(n,)`` (every sequence) or ``(B, n)``; names left out keep their rest value.
            Units above threshold in it fire before step 0: their spikes are in flight (with
            ``delay > 1``, on every delay); a refractory unit (``r > 0``) must be below threshold. E.g. CUBA's random potentials,
            ``{"v": rng.uniform(v_reset, v_th, n)}``.
        threads: numba threads of the event engine for this call (default ``None``: numba's
            current number, by default every core; ``NUMBA_NUM_THREADS`` sets it). The units are
            updated in parallel blocks when ``batch x n`` is large enough (thousands of units);
            the results are identical for every number of threads.

    Returns:
        a :class:`Recording`.

    Example:
        >>> import neurosnap as ns
        >>> model = ns.Model(ns.cells.LIF(20, 50, 0.2, w_in_scale=20.0), n_out=2)
        >>> src = ns.simulation.PoissonSource(40.0, n=20, dt=model.cell.dt, seed=0)
        >>> rec = ns.simulate(model, model.init(0), src, record="events,v", steps=500, units=[0, 1])
        >>> rec.states["v"].shape, int(rec.spike_units.size) == rec.n_events
        ((500, 1, 2), True)
    """
    start = time.perf_counter()
    if not isinstance(model, Model):
        raise TypeError(f"model must be an ns.Model, got {type(model).__name__}")
    cell = model.cell
    if params is None:
        params = model.init(0)
    elif isinstance(params, (str, os.PathLike)):
        params = load_params(model, params)
    else:
        params = model.check_params(params)
    batch = validate.positive_int("batch", batch)
    source = as_source(inputs, model, batch)
    if source.n != cell.n_in:
        raise ValueError(
            f"inputs must have n_in={cell.n_in} channels (the model's n_in), got {source.n}"
        )
    if steps is None:
        if source.length is None:
            raise ValueError(
                f"steps must be given for an unbounded input source ({type(source).__name__})"
            )
        steps = source.length
    steps = validate.positive_int("steps", steps)
    if source.length is not None and steps > source.length:
        raise ValueError(f"steps={steps} exceeds the length of inputs ({source.length} steps)")
    rate_bin = validate.positive_int("rate_bin", rate_bin)
    chunk_steps = validate.positive_int("chunk_steps", chunk_steps)
    validate.choice("engine", engine, ENGINES)
    threads = check_threads(threads)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {progress!r}")
    if dt is None:
        dt, time_unit = (float(cell.dt), "s") if hasattr(cell, "dt") else (1.0, "step")
    else:
        dt, time_unit = validate.real("dt", dt, low=0.0, low_open=True), "s"
    kinds, svars = _resolve_record(record, cell, state_vars)
    units = _resolve_units(units, cell.n_hidden, bool(svars))
    if not svars:
        units = np.zeros(0, np.int64)
    var_idx = [cell.state_names.index(s) for s in svars]
    eventable = isinstance(cell, (LIF, ALIF)) and isinstance(cell.gate, Heaviside)
    if engine == "event" and not eventable:
        raise ValueError(
            f"engine='event' needs an LIF or ALIF cell with a Heaviside gate, got "
            f"{cell!r} with gate {getattr(cell, 'gate', None)!r}"
        )
    use_events = eventable and engine != "step"
    if delays is not None and not use_events:
        raise ValueError(
            "delays (per-synapse) need the event engine: an LIF or ALIF cell with a "
            "Heaviside gate and engine 'auto' or 'event'"
        )
    B, n, dtype = source.batch, cell.n_hidden, model.dtype
    # shorten chunks so that one chunk of recorded states stays under 64 MiB
    row_bytes = B * max(1, len(var_idx) * len(units)) * np.dtype(dtype).itemsize
    chunk_steps = max(1, min(chunk_steps, (64 << 20) // row_bytes))

    init = check_initial_state(initial_state, cell, B, dtype)
    runner = (
        EventRunner(model, params, B, var_idx, units, "events" in kinds, delays=delays, init=init)
        if use_events
        else StepRunner(model, params, B, var_idx, units, "events" in kinds, init=init)
    )
    specs: dict[str, tuple[type | np.dtype, tuple[int, ...]]] = {}
    if "events" in kinds:
        specs.update(
            spike_steps=(np.int64, ()), spike_units=(np.int32, ()), spike_batch=(np.int32, ())
        )
    if "rate" in kinds:
        specs["rate"] = (np.float64, (B,))
    for s in svars:
        specs[f"state_{s}"] = (dtype, (B, len(units)))
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    store = ChunkStore(specs, out_dir)
    binner = RateBinner(rate_bin, B, 1.0 / (n * dt))
    n_events = 0

    def emit(st, un, ba):
        nonlocal n_events
        n_events += len(st)
        store.append("spike_steps", st)
        store.append("spike_units", un)
        store.append("spike_batch", ba)

    source.reset()
    bar = None
    if progress:
        from ..core.progress import progress_bar

        bar = progress_bar(steps, unit_scale=True)
    t = 0
    threads_before = set_threads(threads)
    try:
        while t < steps:
            xs, new_sequence = source.next_chunk(min(chunk_steps, steps - t))
            if len(xs) == 0:
                raise ValueError(f"inputs ended after {t} steps, {steps} requested")
            xs = validate.array("inputs", xs, shape=(None, B, cell.n_in), dtype=dtype)
            if new_sequence and t > 0:
                runner.reset()
            counts, st = runner.run(xs, t, emit)
            validate.finite(f"simulate (steps {t}..{t + len(xs) - 1})", **runner.final_state())
            if "rate" in kinds:
                store.append("rate", binner.push(counts))
            for c, s in enumerate(svars):
                store.append(f"state_{s}", st[:, :, c])
            t += len(xs)
            if bar is not None:
                bar.update(len(xs))
        if "rate" in kinds:
            store.append("rate", binner.finish())
            validate.finite(
                "simulate",
                _hint=f"dt={dt} is too small for a rate in events per second",
                rate=binner.scale,
            )
    except BaseException:
        if out_dir is not None:  # leave no half-written chunk files
            shutil.rmtree(store.chunk_dir, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        set_threads(threads_before)
    wall = time.perf_counter() - start
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "neurosnap_version": __version__,
        "dt": dt,
        "time_unit": time_unit,
        "n_steps": steps,
        "batch": B,
        "n_units": n,
        "n_in": cell.n_in,
        "n_events": n_events,
        "recorded": {"events": "events" in kinds, "rate": "rate" in kinds, "states": svars},
        "units": units.tolist(),
        "rate_bin": rate_bin,
        "rate_unit": "events per unit per second"
        if time_unit == "s"
        else "events per unit per step",
        "engine": "event" if use_events else "step",
        "network_hash": network_hash(model, params),
        "model": model_config(model),
        "input": source.describe(),
        "wall_seconds": wall,
        "arrays": {},
    }
    extra = {"units": units} if svars else {}
    for key, (dt_, shape) in specs.items():
        meta["arrays"][key] = {"dtype": np.dtype(dt_).name, "trailing_shape": list(shape)}
    if svars:
        meta["arrays"]["units"] = {"dtype": "int64", "trailing_shape": []}
    if out_dir is None:
        arrays = store.arrays()
        arrays.update(extra)
        return Recording(arrays, meta)
    store.write_npz(out_dir / "recording.npz", extra)
    files.write_json(out_dir / "recording.json", meta)
    return Recording.load(out_dir)
