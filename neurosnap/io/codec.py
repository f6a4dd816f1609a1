"""A model's configuration as plain JSON data, and back (used by recordings and NIR metadata), and
the one reader of gate tables (also used by :mod:`neurosnap.config`).

The description has the shape of a ``[model]`` table of a TOML configuration (``neurosnap.config``)
plus what a task would otherwise supply::

    {"cell": "LIF", "n_in": 100, "n_hidden": 1000, "density": 0.1, "dtype": "float64",
     "n_out": 1, "loss": "mse",
     "cell_options": {"dt": 0.001, "tau_mem": 0.02, ..., "seed": 0, "autapses": false,
                      "gate": {"kind": "heaviside", "surrogate": "triangle", "gamma": 0.3,
                               "width": 1.0}}}

``build_model(model_config(m))`` rebuilds a model with the same hyperparameters and the same
connectivity mask (the mask is a function of ``density`` and ``seed``).
"""

from __future__ import annotations

import hashlib
import inspect
import json

import numpy as np

from .. import gates
from ..cells import CELLS
from ..cells.base import Cell
from ..model import Model

_SKIP = {"self", "n_in", "n_hidden", "density"}


def cell_keywords(cls) -> list[str]:
    """The keyword arguments of cell class ``cls`` a description may set (``cell_options``): every
    constructor argument along its MRO except ``n_in``, ``n_hidden`` and ``density``."""
    names = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if (
                    p.name not in _SKIP
                    and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                    and p.name not in names
                ):
                    names.append(p.name)
    return names


def gate_config(gate) -> dict:
    """A gate as a ``{"kind": ...}`` table (the format of ``[model.cell_options] gate``)."""
    if isinstance(gate, gates.Smooth):
        return {"kind": "smooth", "beta": float(gate.beta)}
    if isinstance(gate, gates.Heaviside):
        s = gate.surrogate
        for name, cls in gates.SURROGATES.items():
            if type(s) is cls:
                return {
                    "kind": "heaviside",
                    "surrogate": name,
                    **{k: float(v) for k, v in vars(s).items()},
                }
    raise ValueError(f"gate {gate!r} cannot be described (unknown gate or surrogate class)")


def gate_from_config(spec) -> gates.Gate:
    """The gate a ``{"kind": ...}`` table describes (:func:`gate_config`'s format, the
    ``[model.cell_options] gate`` of a configuration; ``surrogate`` defaults to ``"triangle"``).
    ``ValueError`` naming the key for a table that describes no gate."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(
            f"gate must be a table with kind='heaviside' or 'smooth', got {str(spec)[:60]}"
        )
    spec = dict(spec)
    kind = spec.pop("kind")
    if not isinstance(kind, str):
        raise ValueError(f"gate kind must be 'heaviside' or 'smooth', got {kind!r}")
    if kind not in ("heaviside", "smooth"):
        raise ValueError(f"gate kind={kind!r} is unknown; expected 'heaviside' or 'smooth'")
    try:
        if kind == "smooth":
            return gates.Smooth(**spec)
        name = spec.pop("surrogate", "triangle")
        if not isinstance(name, str) or name not in gates.SURROGATES:
            raise LookupError(
                f"gate surrogate={name!r} is unknown; expected one of {sorted(gates.SURROGATES)}"
            )
        return gates.Heaviside(gates.SURROGATES[name](**spec))
    except LookupError as exc:
        raise ValueError(exc.args[0]) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"gate: {exc}") from None


def model_config(model) -> dict:
    """JSON-serialisable description of ``model`` (module docstring), from the cell's own
    description (:meth:`~neurosnap.cells.base.Cell.config`, every constructor argument) with the
    gate written as a ``{"kind": ...}`` table."""
    cell = model.cell
    options = cell.config()
    name = options.pop("type")
    n_in, n_hidden, density = (options.pop(k) for k in ("n_in", "n_hidden", "density"))
    if "gate" in options:
        options["gate"] = gate_config(cell.gate)
    return {
        "cell": name,
        "n_in": n_in,
        "n_hidden": n_hidden,
        "density": float(density),
        "dtype": np.dtype(model.dtype).name,
        "n_out": model.n_out,
        "loss": model.loss,
        "cell_options": options,
    }


def build_model(config: dict) -> Model:
    """The model :func:`model_config` described; ``ValueError`` naming the key for a description
    that is not one (missing keys, wrong types, unknown cell, dtype or gate)."""
    if not isinstance(config, dict):
        raise ValueError(f"model configuration must be an object, got {type(config).__name__}")
    missing = sorted(
        {"cell", "n_in", "n_hidden", "density", "dtype", "n_out", "loss", "cell_options"}
        - set(config)
    )
    if missing:
        raise ValueError(f"model configuration lacks {missing}")
    if config["dtype"] not in ("float32", "float64"):
        raise ValueError(
            f"model configuration: dtype must be 'float32' or 'float64', got {config['dtype']!r}"
        )
    try:
        cell = build_cell(
            config["cell"],
            config["n_in"],
            config["n_hidden"],
            config["density"],
            config["cell_options"],
        )
        return Model(cell, config["n_out"], loss=config["loss"], dtype=getattr(np, config["dtype"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model configuration: {exc}") from None


def build_cell(name, n_in, n_hidden, density, options) -> Cell:
    """The cell ``CELLS[name](n_in, n_hidden, density, **options)``, the one path from a
    description (this module's ``cell_options``, a configuration's ``[model]`` table) to a cell.

    Args:
        name: a key of :data:`neurosnap.cells.CELLS`.
        n_in, n_hidden, density: the cell's sizes and weight density.
        options: the other keywords (:func:`cell_keywords`); ``gate`` as a table
            (:func:`gate_from_config`) or a gate.

    Raises:
        ValueError: naming the key, for an unknown cell or keyword, a gate table that describes no
            gate, or a value the cell refuses.
    """
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}")
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValueError("cell_options must be an object")
    cls = CELLS[name]
    unknown = sorted(set(options) - set(cell_keywords(cls)))
    if unknown:
        raise ValueError(f"unknown cell_options {unknown} for {name}")
    options = dict(options)
    if isinstance(options.get("gate"), dict):
        options["gate"] = gate_from_config(options["gate"])
    try:
        return cls(n_in, n_hidden, density, **options)
    except (TypeError, OverflowError) as exc:
        raise ValueError(str(exc)) from None


def network_hash(model, params) -> str:
    """SHA-256 (hex) of a network: its :func:`model_config`, connectivity mask and parameters.

    Two recordings with the same hash were made by the same network (same hyperparameters, same
    weights bit for bit). Parameters are hashed by name (sorted), dtype, shape and bytes.
    """
    h = hashlib.sha256()
    h.update(json.dumps(model_config(model), sort_keys=True).encode())
    cell = model.cell
    if getattr(cell, "storage", "dense") == "dense":
        h.update(np.packbits(cell.mask).tobytes())
    else:  # no (n, n) array: the CSR index itself
        h.update(memoryview(cell.graph.in_ptr).cast("B"))
        h.update(memoryview(cell.graph.pre_index).cast("B"))
    for name in sorted(params):
        value = np.ascontiguousarray(params[name])
        h.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.data.cast("B") if value.size else b"")
    return h.hexdigest()
