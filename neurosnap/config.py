"""Experiment configurations (TOML), validated with messages that point to the offending key.

A configuration has the sections ``[model]``, ``[task]``, ``[rule]``, ``[optimizer]`` and ``[train]``::

    [model]
    cell = "EGRU"            # LeakyRNN | EGRU | LIF | ALIF
    n_hidden = 16
    density = 1.0
    dtype = "float64"        # or "float32"
    [model.cell_options]     # any keyword of the cell, e.g. threshold, tau_mem, alpha
    gate = { kind = "heaviside", surrogate = "triangle", gamma = 0.7, width = 0.5 }
    [task]
    name = "copy"            # plus the task's keywords
    [rule]
    name = "RTRL"            # plus the rule's keywords
    [optimizer]
    name = "Adam"
    lr = 0.01
    [train]
    steps = 50000
    update_every = 1
    batch_size = 1
    seed = 0

Every value can be overridden with ``key.path=value`` strings (values parsed as TOML).

A configuration is named by a path, or by the name of a reference configuration shipped with the
package (``egru-copy`` or ``egru-copy.toml`` for ``models/egru-copy.toml``; see :func:`resolve`).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import tomllib
from pathlib import Path

import numpy as np

from .cells import CELLS
from .io.codec import build_cell, cell_keywords, gate_from_config
from .model import Model
from .optim import OPTIMIZERS
from .rules import RULES
from .tasks import TASKS

SECTIONS = {"model", "task", "rule", "optimizer", "train"}
MODEL_KEYS = {"cell", "n_hidden", "density", "dtype", "cell_options"}
TRAIN_KEYS = {
    "steps",
    "update_every",
    "batch_size",
    "seed",
    "checkpoint_every",
    "log_every",
    "stats",
}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


#: where the reference configurations live: ``neurosnap/models`` (in a source checkout a link to the
#: repository's top-level ``models/`` directory, which is the source of truth; wheels ship a copy)
SHIPPED = Path(__file__).resolve().parent / "models"


def shipped() -> list[str]:
    """Names of the reference configurations shipped with neurosnap (``models/*.toml``), sorted."""
    return sorted(p.stem for p in SHIPPED.glob("*.toml")) if SHIPPED.is_dir() else []


def resolve(name) -> Path:
    """The file a configuration name refers to: an existing path as given; otherwise a bare name
    (``egru-copy`` or ``egru-copy.toml``) of a shipped reference configuration.

    Raises:
        ConfigError: neither exists (the message lists the shipped names and the nearest one).
    """
    path = Path(name)
    if path.exists():
        return path
    text = str(name)
    if "/" not in text and "\\" not in text:
        stem = text.removesuffix(".toml")
        candidate = SHIPPED / f"{stem}.toml"
        if candidate.is_file():
            return candidate
        names = shipped()
        raise ConfigError(
            f"config file not found: {name} (neither a path nor a shipped "
            f"configuration; shipped: {', '.join(names)}).{did_you_mean(stem, names)}"
        )
    raise ConfigError(f"config file not found: {name}")


def load(path) -> dict:
    """Parse a TOML file into a config dict (not yet validated; see :func:`build`).

    ``path`` may also name a shipped configuration (see :func:`resolve`). A relative
    ``[model.cell_options] connectivity`` file is taken relative to the configuration's folder.
    """
    path = resolve(path)
    if path.is_dir():
        example = next(iter(sorted(path.glob("*.toml"))), None)
        raise ConfigError(
            f"config {path} is a directory; give a TOML file"
            + (f", e.g. {example}" if example else "")
        )
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
        return _relative_to(config, path.parent)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text, so not valid TOML: {exc}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"config file {path} is not valid TOML for a configuration: nested too deeply"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _relative_to(config: dict, folder: Path) -> dict:
    """A connectivity file named by a relative path (``[model.cell_options] connectivity``) is
    found next to the configuration file, wherever neurosnap runs from."""
    options = config.get("model", {}).get("cell_options") if isinstance(config, dict) else None
    if isinstance(options, dict) and isinstance(options.get("connectivity"), str):
        conn = Path(options["connectivity"]).expanduser()
        if not conn.is_absolute():
            options["connectivity"] = str(folder / conn)
    return config


def apply_overrides(config: dict, overrides) -> dict:
    """Return a copy of ``config`` with ``["section.key=value", ...]`` applied (values are TOML)."""
    config = copy.deepcopy(config)
    for item in overrides or ():
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--set takes key=value, e.g. --set train.steps=1000; got {item!r}")
        path, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # bare strings: cell=LIF
        except RecursionError:
            raise ConfigError(f"override {item!r}: the value is nested too deeply") from None
        keys = [k.strip() for k in path.strip().split(".")]
        if not all(keys):
            raise ConfigError(
                f"override {item!r}: the key must look like section.key, e.g. train.steps"
            )
        node = config
        for i, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override {item!r}: {'.'.join(keys[: i + 1])} is {node!r}, not a table"
                )
        node[keys[-1]] = value
    return config


def build(config: dict):
    """Turn a config dict into ``(model, rule, optimizer, task, train_kwargs)``."""
    if not isinstance(config, dict):
        raise ConfigError("config must be a table of sections")
    unknown = set(config) - SECTIONS
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {sorted(unknown)}; allowed: {sorted(SECTIONS)}"
        )
    for section in SECTIONS:
        if section not in config:
            raise ConfigError(f"config is missing the [{section}] section")
        if not isinstance(config[section], dict):
            raise ConfigError(f"config [{section}] must be a table")
    task = _construct("task", TASKS, config["task"])
    rule = _construct("rule", RULES, config["rule"])
    opt = _construct("optimizer", OPTIMIZERS, config["optimizer"])
    model = _build_model(config["model"], task)
    check = getattr(rule, "check_model", None)  # rules with time constants (STDP, RSTDP)
    if check is not None:
        try:
            check(model)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[rule] {exc}") from None
    train_kwargs = dict(config["train"])
    _check_keys("[train]", train_kwargs, TRAIN_KEYS)
    _check_numbers("[train]", train_kwargs)
    _check_train(train_kwargs)
    return model, rule, opt, task, train_kwargs


def check_budget(task, train_kwargs) -> None:
    """Refuse a ``[train] steps`` that ends before the first step of the first sequence that counts in
    the loss (the training would record nothing). Draws that first batch exactly as
    :func:`neurosnap.train` does (same seed), without changing the task.
    """
    steps = train_kwargs.get("steps", 10_000)
    batch = task.sample(
        np.random.default_rng(train_kwargs.get("seed", 0)), train_kwargs.get("batch_size", 1)
    )
    counted = np.flatnonzero(np.asarray(batch.mask).any(axis=1))
    if len(counted) and steps <= counted[0]:
        raise ConfigError(
            f"[train] steps={steps} ends before the first step that counts in the loss "
            f"(step {counted[0] + 1} of the first sequence); increase steps"
        )


def _check_train(kwargs):
    """Validate the ``[train]`` values as :func:`neurosnap.train` would, before anything runs."""
    from .core import validate

    minimum = {
        "steps": 1,
        "update_every": 1,
        "batch_size": 1,
        "checkpoint_every": 1,
        "log_every": 1,
        "seed": 0,
    }
    try:
        for key, low in minimum.items():
            if key in kwargs and not (key == "log_every" and kwargs[key] is None):
                validate.positive_int(f"[train] {key}", kwargs[key], minimum=low)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if "stats" in kwargs and not isinstance(kwargs["stats"], bool):
        raise ConfigError(f"[train] stats must be true or false, got {kwargs['stats']!r}")


def did_you_mean(name, choices) -> str:
    """``" Did you mean 'RTRL'?"`` for the nearest of ``choices`` (case-insensitive), or ``""``."""
    if not isinstance(name, str):
        return ""
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower:
        return f" Did you mean {lower[name.lower()]!r}? (names are case-sensitive)"
    near = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return f" Did you mean {lower[near[0]]!r}?" if near else ""


def _unknown_name(where, name, choices) -> ConfigError:
    return ConfigError(
        f"{where} name={name!r} is unknown; expected one of {sorted(choices)}."
        f"{did_you_mean(name, choices)}"
    )


def _check_numbers(where, table):
    """Integers too large for a float (e.g. a 401-digit learning rate) are refused naming the key."""
    for key, value in table.items():
        if isinstance(value, dict):
            _check_numbers(f"{where} {key}", value)
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
            raise ConfigError(
                f"{where} {key} is an integer with {len(str(abs(value)))} digits, "
                f"too large for a number of this configuration"
            )


def _check_keys(where, table, allowed, what=""):
    bad = sorted(set(table) - set(allowed))
    if bad:
        hint = did_you_mean(bad[0], allowed) if len(bad) == 1 else ""
        raise ConfigError(
            f"unknown key(s) {bad} in {where}{what}; allowed: {sorted(allowed)}.{hint}"
        )


def _construct(section, registry, table):
    table = dict(table)
    name = table.pop("name", None)
    if name is None:
        raise ConfigError(f"[{section}] needs a 'name', one of {sorted(registry)}")
    if not isinstance(name, str) or name not in registry:
        raise _unknown_name(f"[{section}]", name, registry)
    cls = registry[name]
    _check_keys(f"[{section}]", table, keywords(cls), f" for {name}")
    _check_numbers(f"[{section}]", table)
    try:
        return cls(**table)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"[{section}] {exc}") from None


def keywords(cls) -> set[str]:
    """Keyword arguments a config table may give ``cls`` (its constructors' and dataclass fields,
    less the sizes the ``[model]`` table sets)."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {
                p.name
                for p in params
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            }
    fields = getattr(cls, "__dataclass_fields__", None)
    if fields:
        names |= set(fields)
    return names - {"n_in", "n_hidden", "density"}


def _build_model(table, task):
    _check_keys("[model]", table, MODEL_KEYS)
    name = table.get("cell")
    if not isinstance(name, str) or name not in CELLS:
        raise ConfigError(
            f"[model] cell={name!r} is unknown; expected one of {sorted(CELLS)}."
            f"{did_you_mean(name, CELLS)}"
        )
    if "n_hidden" not in table:
        raise ConfigError("[model] needs n_hidden")
    options = table.get("cell_options", {})
    if not isinstance(options, dict):
        raise ConfigError(
            f"[model] cell_options must be a table of the cell's keywords, e.g. "
            f"cell_options = {{ threshold = 0.3 }}, got {options!r}"
        )
    options = dict(options)
    _check_keys("[model.cell_options]", options, set(cell_keywords(CELLS[name])), f" for {name}")
    _check_numbers("[model]", {k: v for k, v in table.items() if k != "cell_options"})
    _check_numbers("[model.cell_options]", options)
    if "gate" in options:
        options["gate"] = _gate(options["gate"])
    dtype = table.get("dtype", "float64")
    if not isinstance(dtype, str) or dtype not in ("float32", "float64"):
        raise ConfigError(f"[model] dtype must be 'float32' or 'float64', got {dtype!r}")
    try:
        cell = build_cell(name, task.n_in, table["n_hidden"], table.get("density", 1.0), options)
        return Model(cell, task.n_out, loss=task.loss, dtype=getattr(np, dtype))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"[model] {exc}") from None


def _gate(spec):
    try:
        return gate_from_config(spec)
    except ValueError as exc:
        raise ConfigError(f"[model.cell_options] {exc}") from None
