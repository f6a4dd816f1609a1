"""The compiled engine on sparse synapse storage (``storage="sparse"``, ``w_rec`` of shape
``(G, nnz)``), against the per-step NumPy reference and against dense storage:

- ``ns.sequence_grad`` compiled == reference (<= 1e-12, float64) for every cell x gate x rule of
  ``tests/test_engine.py``, and == the compiled dense-storage gradient's synapse values;
- ``ns.train`` compiled == reference and == dense storage (synapse values) with SGD and Adam,
  ``update_every`` in {1, 5};
- a checkpoint written by one engine resumes with the other (optimizer state of the reference's
  shapes);
- e-prop trains a 20,000-neuron sparse LIF in memory that follows the synapses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import make_batch, make_cell, random_params
from test_engine import CONFIGS, TOL, TRAIN_RULES, _assert_close, _rules

import neurosnap as ns
from neurosnap import engine
from neurosnap.engine import _step


def _pair(kind, gate, **kw):
    """The same cell with dense and with sparse storage (same synapses, same weights)."""
    return [
        ns.Model(
            make_cell(kind, gate, storage=storage, **kw.get("cell", {})), **kw.get("model", {})
        )
        for storage in ("dense", "sparse")
    ]


def _synapses(model, grads):
    """A dense-storage gradient or parameter dict with ``cell.w_rec`` as synapse values."""
    return {k: model.cell.synapse_w_rec(v) if k == "cell.w_rec" else v for k, v in grads.items()}


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("density", [0.4, 1.0])
@pytest.mark.parametrize("active", [1, 16])
def test_recurrent_drive_of_every_branch_equals_reference(storage, density, active):
    """The compiled recurrent drive gathers from the active units (few events) or runs row by
    row (many), with an all-to-all shortcut for both: each against ``Cell.step_record``."""
    cell = ns.cells.EGRU(3, 16, density, seed=2, storage=storage)
    model = ns.Model(cell, n_out=2)
    cp = model.cell_params(random_params(model, seed=3))
    B, S, n, G = 2, cell.n_state, cell.n_hidden, cell.n_gates
    rng = np.random.default_rng(4)
    state = np.full((B, S, n), 0.1) + 0.01 * rng.standard_normal((B, S, n))
    state[:, 0, :active] = 1.5 + rng.random((B, active))  # above the threshold: events
    x = rng.normal(size=(B, 3))
    new_ref, _, rec_ref = cell.step_record(cp, state, x)
    ck, gk, gp, hp = cell.compiled_spec()
    y_prev, dout_prev = np.zeros((B, n)), np.zeros((B, S, n))
    _step.cell_output(ck, gk, gp, hp, state, y_prev, dout_prev)
    assert np.count_nonzero(y_prev[0]) == active
    new, local = np.zeros((B, S, n)), np.zeros((B, S, S, n))
    drec, dinp = np.zeros((B, S, G, n)), np.zeros((B, S, G, n))
    w = cell.synapse_w_rec(cp["w_rec"])
    rec, inp = np.zeros((G, n)), np.zeros((G, n))
    args = (cp["w_in"], cp["bias"], engine._graph(cell), y_prev, rec, inp, new, local, drec, dinp)
    _step.cell_step(ck, gk, gp, hp, state, x, w, *args)
    np.testing.assert_allclose(new, new_ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(drec, rec_ref.jac_state.drec, rtol=0, atol=TOL)
    drive = np.einsum("gij,j->gi", cell.dense_w_rec(cp["w_rec"]), y_prev[B - 1])
    np.testing.assert_allclose(rec, drive, rtol=0, atol=TOL)  # the last example's drive


@pytest.mark.parametrize(
    "kind,gate,density,loss",
    [(k, g, 0.5, "cross_entropy") for k, g in CONFIGS]
    + [("EGRU", "heaviside", 1.0, "mse"), ("LIF", "smooth", 1.0, "cross_entropy")]
    + [("ALIF-subtract", "fast_sigmoid", 0.5, "mse")],
)
def test_sequence_grad_sparse_storage_compiled_equals_reference(kind, gate, density, loss):
    dense, sparse = _pair(
        kind,
        gate,
        cell={"n_in": 3, "n_hidden": 6, "density": density},
        model={"n_out": 3, "loss": loss},
    )
    ps = random_params(sparse, seed=2)
    pd = random_params(dense, seed=2)
    assert np.array_equal(ps["cell.w_rec"], sparse.cell.synapse_w_rec(pd["cell.w_rec"]))
    xs, ys, mask = make_batch(sparse, 9, 3, seed=5)
    assert engine.supports(sparse, ns.rules.RTRL(), params=ps)
    for name, rule in _rules().items():
        l1, g1 = ns.sequence_grad(sparse, ps, xs, ys, rule, mask=mask)
        l2, g2 = ns.sequence_grad(sparse, ps, xs, ys, rule, mask=mask, engine="reference")
        assert g1["cell.w_rec"].shape == (sparse.cell.n_gates, sparse.cell.graph.nnz)
        assert abs(l1 - l2) <= TOL * max(1.0, abs(l2)), name
        _assert_close(g1, g2, TOL, name)
        if name != "UORO":  # its signs are seeded by a digest of the parameters' arrays
            l3, g3 = ns.sequence_grad(dense, pd, xs, ys, rule, mask=mask)
            assert abs(l1 - l3) <= TOL * max(1.0, abs(l3)), name
            _assert_close(g1, _synapses(dense, g3), TOL, f"{name} (dense storage)")
        assert np.abs(g2["cell.w_rec"]).max() > 1e-6, f"{name}: vacuous w_rec gradient"


def test_sequence_grad_sparse_storage_float32_close():
    model = ns.Model(
        make_cell("LIF", n_in=3, n_hidden=8, density=0.5, storage="sparse"),
        n_out=3,
        dtype=np.float32,
    )
    params = random_params(model, seed=0)
    xs, ys, mask = make_batch(model, 8, 2, seed=1)
    for rule in (ns.rules.RTRL(), ns.rules.EProp(), ns.rules.BPTT()):
        _, g1 = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
        _, g2 = ns.sequence_grad(model, params, xs, ys, rule, mask=mask, engine="reference")
        assert g1["cell.w_rec"].dtype == np.float32
        assert np.abs(g2["cell.w_rec"]).max() > 1e-3
        _assert_close(g1, g2, 1e-4, repr(rule))


@pytest.mark.parametrize("update_every", [1, 5])
@pytest.mark.parametrize(
    "kind,gate,opt",
    [
        ("LeakyRNN", "none", ns.optim.Adam(1e-2)),
        ("EGRU", "heaviside", ns.optim.Adam(1e-2)),
        ("LIF", "smooth", ns.optim.SGD(0.05, momentum=0.5)),
        ("ALIF-subtract", "heaviside", ns.optim.SGD(0.05)),
    ],
)
def test_train_sparse_storage_compiled_equals_reference_and_dense(kind, gate, opt, update_every):
    task = ns.tasks.Copy()
    kw = {"steps": 61, "update_every": update_every, "seed": 2, "batch_size": 2}
    for name, rule in TRAIN_RULES.items():
        dense, sparse = _pair(
            kind,
            gate,
            cell={"n_in": task.n_in, "n_hidden": 5, "density": 0.6},
            model={"n_out": task.n_out},
        )
        runs = [
            ns.train(sparse, rule, opt, ns.tasks.Copy(), engine=e, **kw)
            for e in ("compiled", "reference")
        ]
        run_d = ns.train(dense, rule, opt, ns.tasks.Copy(), **kw)
        _assert_close(runs[0].params, runs[1].params, TOL, name)
        _assert_close(runs[0].params, _synapses(dense, run_d.params), TOL, f"{name} (dense)")
        assert len(runs[0].rows) == len(runs[1].rows) == len(run_d.rows)
        for r0, r1 in zip(runs[0].rows, runs[1].rows, strict=True):
            for key in r0:
                if key != "wall":
                    assert abs(r0[key] - r1[key]) <= TOL, (name, key)
        assert runs[0].rows[-1]["updates"] > 1
        assert not np.array_equal(runs[0].params["cell.w_rec"], sparse.init(2)["cell.w_rec"])


@pytest.mark.parametrize(
    "first,second,opt",
    [
        ("compiled", "reference", ns.optim.Adam(1e-2)),
        ("reference", "compiled", ns.optim.SGD(0.05, momentum=0.5)),
    ],
)
def test_sparse_storage_checkpoint_resumes_with_the_other_engine(tmp_path, first, second, opt):
    task = ns.tasks.Copy()
    model = ns.Model(
        make_cell("EGRU", n_in=task.n_in, n_hidden=5, density=0.6, storage="sparse"),
        n_out=task.n_out,
    )
    kw = {"update_every": 2, "seed": 3, "batch_size": 2}
    rule = ns.rules.SnAp(2)
    ns.train(
        model, rule, opt, ns.tasks.Copy(), steps=60, checkpoint_dir=tmp_path, engine=first, **kw
    )
    resumed = ns.train(
        model,
        rule,
        opt,
        ns.tasks.Copy(),
        steps=140,
        checkpoint_dir=tmp_path,
        resume=True,
        engine=second,
        **kw,
    )
    whole = ns.train(model, rule, opt, ns.tasks.Copy(), steps=140, engine=second, **kw)
    assert resumed.params["cell.w_rec"].shape == (3, model.cell.graph.nnz)
    _assert_close(resumed.params, whole.params, TOL, "resumed")


def test_eprop_trains_a_large_sparse_lif_in_memory_that_follows_synapses():
    """20,000 LIF units with 10 synapses each: the dense (n, n) float64 weights would take 3.2 GB
    (touched by numba's zeroing); the compiled e-prop training run stays far below that."""
    script = textwrap.dedent(
        """
        import numpy as np, neurosnap as ns
        from neurosnap import engine
        task = ns.tasks.Copy()
        cell = ns.cells.LIF(task.n_in, 20_000, 0.0005, storage="sparse", w_in_scale=30.0)
        model = ns.Model(cell, n_out=task.n_out)
        rule, opt = ns.rules.EProp(), ns.optim.Adam(1e-3)
        assert engine.supports(model, rule, opt, model.init(0))
        run = ns.train(model, rule, opt, task, steps=40, update_every=10, seed=0)
        status = dict(l.split(":", 1) for l in open("/proc/self/status"))
        w0 = model.init(0)["cell.w_rec"]
        changed = int(np.count_nonzero(run.params["cell.w_rec"] != w0))
        print(cell.graph.nnz, run.rows[-1]["updates"], changed, int(status["VmHWM"].split()[0]) * 1024)
        """
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    nnz, updates, changed, peak = (int(v) for v in out.stdout.split())
    assert nnz == 200_000 and updates >= 2 and changed > 0
    assert peak < 2**30, f"peak RSS {peak / 2**30:.2f} GiB"
