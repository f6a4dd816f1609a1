"""Read-only arrays (a memory-mapped ``.npy``, arrays converted from JAX, ``writeable=False``) are
accepted everywhere and reach the compiled kernels in the layout they are compiled for: the same
results, and no second specialisation of any numba kernel (each costs seconds of compilation; the
compiled engine could not even type one, since it updates parameters in place)."""

import sys

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import neurosnap as ns
from neurosnap.core.arrays import kernel_array


def _signatures():
    """Number of compiled specialisations of every numba kernel of the package."""
    out = {}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("neurosnap"):
            for value in vars(module).values():
                if isinstance(value, CPUDispatcher):
                    key = (value.py_func.__module__, value.py_func.__name__)
                    out[key] = len(value.signatures)
    return out


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _run_everything(cell, readonly, tmp_path):
    model = ns.Model(cell, n_out=2)
    params = model.init(0)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(6, 2, 3)) + 1.0
    ys = rng.integers(0, 2, size=(6, 2))
    if readonly:
        params = {k: _readonly(v) for k, v in params.items()}
        xs, ys = _readonly(xs), _readonly(ys)
    out = {"run": model.run(params, xs).states}
    rules = [ns.rules.RTRL(), ns.rules.SnAp(1), ns.rules.BPTT()]
    rules.append(ns.rules.EProp() if isinstance(cell, ns.cells.LIF) else ns.rules.RFLO())
    for rule in rules:
        for engine in ("compiled", "reference"):
            loss, grads = ns.sequence_grad(model, params, xs, ys, rule, engine=engine)
            out[f"{type(rule).__name__}-{engine}"] = (loss, grads)
    if isinstance(cell, ns.cells.LIF):
        path = tmp_path / f"inputs-{readonly}.npy"
        np.save(path, np.asarray(xs))
        rec = ns.simulate(model, params, path, "events")  # a memory-mapped read-only source
        out["simulate"] = rec.spike_counts()
    return out


CELLS = {
    "LIF": lambda: ns.cells.LIF(3, 6, 0.5),
    "LIF-sparse": lambda: ns.cells.LIF(3, 6, 0.5, storage="sparse"),
    "EGRU": lambda: ns.cells.EGRU(3, 6, 0.5),
}


@pytest.mark.parametrize("name", CELLS)
def test_readonly_arrays_give_the_same_results_without_recompiling(name, tmp_path):
    writable = _run_everything(CELLS[name](), False, tmp_path)
    before = _signatures()
    readonly = _run_everything(CELLS[name](), True, tmp_path)
    grown = {k: (before.get(k, 0), n) for k, n in _signatures().items() if n != before.get(k, 0)}
    assert not grown, f"read-only inputs compiled new kernel specialisations: {grown}"
    for key, value in writable.items():
        if key.startswith(("RTRL", "SnAp", "BPTT", "EProp", "RFLO")):
            assert value[0] == readonly[key][0], key
            for k in value[1]:
                np.testing.assert_array_equal(value[1][k], readonly[key][1][k], err_msg=key)
        else:
            np.testing.assert_array_equal(value, readonly[key], err_msg=key)


def test_train_from_readonly_params():
    model = ns.Model(ns.cells.EGRU(4, 5), n_out=2)
    params = {k: _readonly(v) for k, v in model.init(0).items()}
    task = ns.tasks.Copy()
    a = ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), task, steps=30, seed=0)
    b = ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), task, steps=30, seed=0, params=params)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not any(v.flags.writeable for v in params.values())  # the caller's arrays untouched


def test_kernel_array_copies_only_when_needed():
    a = np.zeros((3, 4))
    assert kernel_array(a) is a
    assert kernel_array(a, np.float64) is a
    view = a[:, ::2]
    assert kernel_array(view).flags.c_contiguous
    frozen = _readonly(a)
    out = kernel_array(frozen)
    assert out is not frozen and out.flags.writeable
    assert kernel_array(a, np.float32).dtype == np.float32
