"""Complete, JSON-serialisable descriptions of configured objects (cells, gates, tasks, rules,
optimizers), used for ``repr`` and for the settings a checkpoint must be resumed with.

Cells and tasks record the arguments they were constructed with (:func:`record_init`), so that
their description holds every hyperparameter, including defaults, whatever attribute names the
class uses internally; frozen dataclasses (gates, surrogates, rules, optimizers) are described by
their fields.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

import numpy as np

#: attribute holding the recorded constructor arguments
INIT_ARGS = "_init_args"


def record_init(init):
    """Wrap an ``__init__`` so that the instance stores its constructor arguments, defaults
    included: every ``__init__`` in the chain adds the arguments it binds that an outer one did not
    (so defaults of a base class's keywords are recorded too), and once the outermost call returns,
    an argument left at ``None`` is replaced by the attribute of that name when the object set one
    (``gate=None`` is recorded as the gate actually chosen). :func:`init_args` reads them."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        outermost = INIT_ARGS not in vars(self)
        if outermost:
            object.__setattr__(self, INIT_ARGS, {})
        recorded = vars(self)[INIT_ARGS]
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            bound = None  # the real __init__ raises its own error
        if bound is not None:
            bound.apply_defaults()
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    for key, item in value.items():
                        recorded.setdefault(key, item)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    recorded.setdefault(name, value)
        init(self, *args, **kwargs)
        if outermost:
            for name, value in recorded.items():
                if value is None and getattr(self, name, None) is not None:
                    recorded[name] = getattr(self, name)

    return wrapper


def init_args(obj) -> dict:
    """The constructor arguments :func:`record_init` stored on ``obj`` (empty if none)."""
    return dict(vars(obj).get(INIT_ARGS, {}))


def plain(value):
    """``value`` as JSON data: numbers, strings, lists and dicts; configured objects become
    ``{"type": class name, **settings}``; anything else its ``repr``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if INIT_ARGS in getattr(value, "__dict__", {}):
        return {"type": type(value).__name__, **plain(init_args(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        return {"type": type(value).__name__, **plain(fields)}
    return repr(value)


def differences(recorded, current, prefix: str = "") -> list[str]:
    """Dotted paths where two :func:`plain` descriptions differ, with both values."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(recorded) | set(current), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in recorded:
                out.append(f"{path}: not set in the checkpoint, {current[key]!r} now")
            elif key not in current:
                out.append(f"{path}: {recorded[key]!r} in the checkpoint, not set now")
            else:
                out += differences(recorded[key], current[key], path)
        return out
    if (
        recorded != current
        or type(recorded) is not type(current)
        and not (
            isinstance(recorded, (int, float))
            and isinstance(current, (int, float))
            and not isinstance(recorded, bool)
            and not isinstance(current, bool)
        )
    ):
        return [f"{prefix or 'value'}: {recorded!r} in the checkpoint, {current!r} now"]
    return []
