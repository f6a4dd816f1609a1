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
"""
from __future__ import annotations

import copy
import inspect
import tomllib

import numpy as np

from . import gates
from .cells import CELLS
from .model import Model
from .optim import OPTIMIZERS
from .rules import RULES
from .tasks import TASKS

SECTIONS = {"model", "task", "rule", "optimizer", "train"}
MODEL_KEYS = {"cell", "n_hidden", "density", "dtype", "cell_options"}
TRAIN_KEYS = {"steps", "update_every", "batch_size", "seed", "checkpoint_every", "log_every", "stats"}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


def load(path) -> dict:
    """Parse a TOML file into a config dict (not yet validated; see :func:`build`)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is not valid TOML: nested too deeply") from None


def apply_overrides(config: dict, overrides) -> dict:
    """Return a copy of ``config`` with ``["section.key=value", ...]`` applied (values are TOML)."""
    config = copy.deepcopy(config)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        path, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw                                   # bare strings: cell=LIF
        except RecursionError:
            raise ConfigError(f"override {item[:40]!r}...: value nested too deeply") from None
        keys = path.strip().split(".")
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key!r} is not a table")
        node[keys[-1]] = value
    return config


def build(config: dict):
    """Turn a config dict into ``(model, rule, optimizer, task, train_kwargs)``."""
    if not isinstance(config, dict):
        raise ConfigError("config must be a table of sections")
    unknown = set(config) - SECTIONS
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; allowed: {sorted(SECTIONS)}")
    for section in SECTIONS:
        if section not in config:
            raise ConfigError(f"config is missing the [{section}] section")
        if not isinstance(config[section], dict):
            raise ConfigError(f"config [{section}] must be a table")
    task = _construct("task", TASKS, config["task"])
    rule = _construct("rule", RULES, config["rule"])
    opt = _construct("optimizer", OPTIMIZERS, config["optimizer"])
    model = _build_model(config["model"], task)
    train_kwargs = dict(config["train"])
    bad = set(train_kwargs) - TRAIN_KEYS
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in [train]; allowed: {sorted(TRAIN_KEYS)}")
    if "stats" in train_kwargs and not isinstance(train_kwargs["stats"], bool):
        raise ConfigError(f"[train] stats must be true or false (a TOML boolean, not a string), "
                          f"got {train_kwargs['stats']!r}")
    return model, rule, opt, task, train_kwargs


def _construct(section, registry, table):
    table = dict(table)
    name = table.pop("name", None)
    if name is None:
        raise ConfigError(f"[{section}] needs a 'name', one of {sorted(registry)}")
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(f"[{section}] name={name!r} is unknown; expected one of {sorted(registry)}")
    cls = registry[name]
    allowed = _keywords(cls)
    bad = set(table) - allowed
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in [{section}] for {name}; "
                          f"allowed: {sorted(allowed)}")
    try:
        return cls(**table)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}] {exc}") from None


def _keywords(cls):
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in params if p.name != "self" and p.kind not in
                      (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    fields = getattr(cls, "__dataclass_fields__", None)
    if fields:
        names |= set(fields)
    return names - {"n_in", "n_hidden", "density"}


def _build_model(table, task):
    bad = set(table) - MODEL_KEYS
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in [model]; allowed: {sorted(MODEL_KEYS)}")
    name = table.get("cell")
    if not isinstance(name, str) or name not in CELLS:
        raise ConfigError(f"[model] cell={name!r} is unknown; expected one of {sorted(CELLS)}")
    if "n_hidden" not in table:
        raise ConfigError("[model] needs n_hidden")
    options = table.get("cell_options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"[model.cell_options] must be a table, got {options!r}")
    options = dict(options)
    allowed = _keywords(CELLS[name])
    bad = set(options) - allowed
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in [model.cell_options] for {name}; "
                          f"allowed: {sorted(allowed)}")
    if "gate" in options:
        options["gate"] = _gate(options["gate"])
    dtype = table.get("dtype", "float64")
    if not isinstance(dtype, str) or dtype not in ("float32", "float64"):
        raise ConfigError(f"[model] dtype must be 'float32' or 'float64', got {dtype!r}")
    try:
        cell = CELLS[name](task.n_in, table["n_hidden"], table.get("density", 1.0), **options)
        return Model(cell, task.n_out, loss=task.loss, dtype=getattr(np, dtype))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[model] {exc}") from None


def _gate(spec):
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError("[model.cell_options] gate must be a table with kind='heaviside' or 'smooth'")
    spec = dict(spec)
    kind = spec.pop("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"[model.cell_options] gate kind must be 'heaviside' or 'smooth', got {kind!r}")
    try:
        if kind == "smooth":
            return gates.Smooth(**spec)
        if kind == "heaviside":
            name = spec.pop("surrogate", "triangle")
            if not isinstance(name, str) or name not in gates.SURROGATES:
                raise ConfigError(f"[model.cell_options] gate surrogate={name!r} is unknown; expected "
                                  f"one of {sorted(gates.SURROGATES)}")
            return gates.Heaviside(gates.SURROGATES[name](**spec))
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[model.cell_options] gate: {exc}") from None
    raise ConfigError(f"[model.cell_options] gate kind={kind!r} is unknown; expected 'heaviside' or 'smooth'")
