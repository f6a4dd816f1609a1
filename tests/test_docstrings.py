"""Every public name has a docstring: the API reference (docs/api/) is generated from them.

Public means: the names in ``neurosnap.__all__``; the public classes and functions of
``neurosnap.cells``, ``rules``, ``tasks``, ``gates`` and ``optim`` (their ``__all__`` where they
define one, and the classes of their registries such as ``RULES``) with every public method and
property of those classes; and the public functions of
the ``neurosnap.adapters`` modules. A method that overrides a documented method of a base class
inherits its docstring (``inspect.getdoc``), as the rule and task contracts intend.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import neurosnap as ns

SUBPACKAGES = ("cells", "rules", "tasks", "gates", "optim")


def _public_members(module):
    """Public classes and functions of ``module``: its ``__all__``, else those it defines."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, obj in vars(module).items()
            if not n.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", "") == module.__name__
        ]
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
    for name, registry in vars(module).items():  # CELLS, RULES, TASKS: names the configs use
        if name.isupper() and isinstance(registry, dict):
            for cls in registry.values():
                if inspect.isclass(cls):
                    yield f"{module.__name__}.{cls.__name__}", cls


def _methods(cls):
    """Public methods and properties defined in ``cls`` (inherited ones are checked on their class)."""
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, property):
            yield name, attr.fget
        elif isinstance(attr, (staticmethod, classmethod)):
            yield name, attr.__func__
        elif inspect.isfunction(attr):
            yield name, getattr(cls, name)


def _adapter_modules():
    import neurosnap.adapters as adapters

    for info in pkgutil.iter_modules(adapters.__path__):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"neurosnap.adapters.{info.name}")


def public_objects():
    """``(qualified name, object)`` of every public name this test covers."""
    seen = set()
    objects = [("neurosnap", ns)]
    for name in ns.__all__:
        obj = getattr(ns, name)
        if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj):
            objects.append((f"neurosnap.{name}", obj))
    for sub in SUBPACKAGES:
        module = getattr(ns, sub)
        objects.append((module.__name__, module))
        objects.extend(_public_members(module))
    for module in _adapter_modules():
        objects.append((module.__name__, module))
        objects.extend(_public_members(module))
    for qualname, obj in list(objects):
        if inspect.isclass(obj):
            objects.extend((f"{qualname}.{name}", method) for name, method in _methods(obj))
    for qualname, obj in objects:
        if id(obj) not in seen or inspect.ismodule(obj):
            seen.add(id(obj))
            yield qualname, obj


def test_every_public_name_has_a_docstring():
    missing = sorted(
        {name for name, obj in public_objects() if not (inspect.getdoc(obj) or "").strip()}
    )
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_the_check_covers_the_public_surface():
    names = {name for name, _ in public_objects()}
    for expected in (
        "neurosnap.Model",
        "neurosnap.sequence_grad",
        "neurosnap.train",
        "neurosnap.cells.EGRU",
        "neurosnap.cells.Cell.step_record",
        "neurosnap.rules.RTRL",
        "neurosnap.rules.RTRL.step",
        "neurosnap.rules.SnAp",
        "neurosnap.tasks.Copy.sample",
        "neurosnap.gates.Smooth",
        "neurosnap.optim.Adam.update",
        "neurosnap.adapters.brian2.simulate",
        "neurosnap.adapters.norse.sequence_grad",
    ):
        assert expected in names, f"{expected} is not checked"
