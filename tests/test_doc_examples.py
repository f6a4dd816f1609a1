"""The ``Examples:`` sections of the public docstrings run, and print what they say (doctest).

The API reference (docs/api/) shows these examples; this test keeps them true. Every learning rule,
cell, gate, task and optimizer, ``Model``, ``train`` and ``sequence_grad`` has one.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import neurosnap as ns

MODULES = [
    "neurosnap",
    "neurosnap.model",
    "neurosnap.grad",
    "neurosnap.train",
    "neurosnap.gates",
    "neurosnap.optim",
    "neurosnap.cells.egru",
    "neurosnap.cells.lif",
    "neurosnap.cells.alif",
    "neurosnap.cells.leaky_rnn",
    "neurosnap.rules.rtrl",
    "neurosnap.rules.snap",
    "neurosnap.rules.bptt",
    "neurosnap.rules.uoro",
    "neurosnap.rules.rflo",
    "neurosnap.rules.eprop",
    "neurosnap.rules.stdp",
    "neurosnap.tasks.copy",
    "neurosnap.tasks.adding",
    "neurosnap.tasks.delayed_match",
    "neurosnap.tasks.store_recall",
    "neurosnap.tasks.evidence",
    "neurosnap.tasks.pattern",
    "neurosnap.tasks.digits",
    "neurosnap.tasks.spiral",
]


def _with_examples():
    yield ns.Model
    yield ns.train
    yield ns.sequence_grad
    for name in ("EGRU", "LIF", "ALIF", "LeakyRNN"):
        yield getattr(ns.cells, name)
    for name in ("Heaviside", "Smooth", "Triangle", "FastSigmoid"):
        yield getattr(ns.gates, name)
    for name in ("SGD", "Adam"):
        yield getattr(ns.optim, name)
    for name in ("RTRL", "SnAp", "BPTT", "UORO", "RFLO", "EProp", "STDP", "RSTDP"):
        yield getattr(ns.rules, name)
    for name in (
        "Copy",
        "Adding",
        "DelayedMatch",
        "StoreRecall",
        "Evidence",
        "Pattern",
        "Digits",
        "Spiral",
    ):
        yield getattr(ns.tasks, name)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} failing examples in {name} (doctest output above)"


@pytest.mark.parametrize("obj", list(_with_examples()), ids=lambda obj: obj.__qualname__)
def test_public_object_has_an_example(obj):
    """An ``Examples:`` section, or (older docstrings) ``>>>`` lines the API pages fence alike."""
    assert ">>>" in (inspect.getdoc(obj) or ""), (
        f"{obj.__module__}.{obj.__qualname__} has no doctest example"
    )
