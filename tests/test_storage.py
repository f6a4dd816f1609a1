"""Sparse synapse storage (issue 14): ``storage="sparse"`` holds ``w_rec`` as ``(G, nnz)`` synapse
values and the connectivity as a CSR index, and every path gives what the dense storage gives."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse

import neurosnap as ns
from neurosnap import config as ns_config
from neurosnap.core.graph import RecurrentGraph
from neurosnap.io import codec

CELLS = [
    (ns.cells.LIF, {}),
    (ns.cells.ALIF, {}),
    (ns.cells.EGRU, {}),
    (ns.cells.LeakyRNN, {}),
    (ns.cells.EGRU, {"learn_threshold": True}),
    (ns.cells.LIF, {"delay": 3, "refractory": 0.002}),
    (ns.cells.LIF, {"tau_syn_inh": 0.01}),
]
IDS = ["lif", "alif", "egru", "leaky", "egru-thr", "lif-delay-refr", "lif-two-currents"]


def _pair(cls, kw, n=12, density=0.4, n_out=2, **extra):
    dense = ns.Model(cls(3, n, density, seed=1, **kw, **extra), n_out=n_out)
    sparse = ns.Model(cls(3, n, density, seed=1, storage="sparse", **kw, **extra), n_out=n_out)
    pd, ps = dense.init(0), sparse.init(0)
    for p in (pd, ps):
        p["cell.w_in"] *= 3  # enough input for events in 20 steps
    return dense, sparse, pd, ps


def _old_mask(n, density, seed, autapses):
    """The random connectivity as neurosnap drew it before sparse storage (a dense mask)."""
    candidates = n if autapses else n - 1
    k = min(candidates, max(1, int(round(density * n))))
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        cols = rng.choice(candidates, size=k, replace=False, shuffle=False)
        if not autapses:
            cols[cols >= i] += 1
        mask[i, cols] = True
    return mask


# -- the index --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,density,autapses", [(7, 0.5, True), (30, 0.1, False), (40, 1.0, False)])
def test_random_connectivity_is_unchanged_and_equal_in_both_storages(n, density, autapses):
    old = _old_mask(n, density, 3, autapses)
    for storage in ("dense", "sparse"):
        cell = ns.cells.LIF(2, n, density, seed=3, autapses=autapses, storage=storage)
        assert np.array_equal(cell.mask, old)
        assert cell.graph.pre_index.dtype == np.int32


def test_graph_derived_arrays_match_their_definitions():
    rng = np.random.default_rng(0)
    mask = rng.random((25, 25)) < 0.2
    g = RecurrentGraph(mask)
    post, pre = np.nonzero(mask)
    assert np.array_equal(g.edge_post, post) and np.array_equal(g.edge_pre, pre)
    order = np.lexsort((post, pre))
    assert np.array_equal(g.csc_edge, order)
    assert np.array_equal(g.indices, post[order])
    assert np.array_equal(g.fan_out, mask.sum(axis=0)) and np.array_equal(
        g.fan_in, mask.sum(axis=1)
    )
    assert np.array_equal(g.indptr, np.concatenate(([0], np.cumsum(mask.sum(axis=0)))))
    diag = np.flatnonzero(post == pre)
    assert np.array_equal(g.self_edge[post[diag]], diag)
    assert np.all(g.self_edge[~np.diag(mask)] == -1)
    out_ptr, order32, post16 = g.transpose_order(np.uint16)
    assert np.array_equal(out_ptr, g.indptr) and np.array_equal(order32, order)
    assert post16.dtype == np.uint16 and np.array_equal(post16, post[order])
    assert np.array_equal(g.to_mask(), mask)
    again = pickle.loads(pickle.dumps(g))
    assert again == g and "edge_post" not in vars(again)  # derived arrays are not pickled


@pytest.mark.parametrize("block", [1, 3, 7, 40, 8192])
def test_counting_transpose_in_blocks_of_presynaptic_units(block):
    """The blocked counting sort gives the CSC order for any block size (several passes, rows
    that end inside a block, empty rows and columns)."""
    from neurosnap.core.graph_kernels import counting_transpose

    rng = np.random.default_rng(block)
    mask = rng.random((40, 40)) < 0.15
    mask[5] = False  # an empty row
    mask[:, 9] = False  # an empty column
    g = RecurrentGraph(mask)
    post, pre = np.nonzero(mask)
    order = np.empty(g.nnz, np.int32)
    post_out = np.empty(g.nnz, np.int32)
    out_ptr = counting_transpose(g.n, g.in_ptr, g.pre_index, order, post_out, block)
    expected = np.lexsort((post, pre))
    assert np.array_equal(order, expected) and np.array_equal(post_out, post[expected])
    assert np.array_equal(out_ptr, np.concatenate(([0], np.cumsum(mask.sum(axis=0)))))


def test_transpose_without_order_is_kept_and_extended_on_demand():
    mask = np.random.default_rng(3).random((30, 30)) < 0.2
    g = RecurrentGraph(mask)
    out_ptr, none, post = g.transpose_order(np.uint16, order=False)
    assert none is None and g.transpose_order(np.uint16, order=False)[2] is post  # kept
    full = g.transpose_order(np.uint16)  # asks for the order: sorted again, and kept
    assert np.array_equal(full[0], out_ptr) and np.array_equal(full[2], post)
    assert np.array_equal(full[1], g.csc_edge)
    assert g.transpose_order(np.uint16, order=False) is full  # the fuller result serves both


def test_graph_from_csr_refuses_bad_arrays():
    with pytest.raises(ValueError, match="in_ptr must be integers of shape"):
        RecurrentGraph.from_csr(3, [0, 1], [0])
    with pytest.raises(ValueError, match="in_ptr must start at 0"):
        RecurrentGraph.from_csr(2, [0, 2, 1], [0, 1])
    with pytest.raises(ValueError, match="pre_index must lie in"):
        RecurrentGraph.from_csr(2, [0, 1, 2], [0, 2])
    with pytest.raises(ValueError, match="strictly ascending"):
        RecurrentGraph.from_csr(2, [0, 2, 2], [1, 1])
    g = RecurrentGraph.from_csr(2, [0, 2, 3], [0, 1, 0])
    assert np.array_equal(g.to_mask(), [[True, True], [True, False]])


# -- user-given connectivity ------------------------------------------------------------------------
def _conn_mask(n=9, seed=2):
    m = np.random.default_rng(seed).random((n, n)) < 0.3
    m[0, 1] = True
    np.fill_diagonal(m, False)  # LIF's default autapses=False
    return m


def test_connectivity_forms_give_the_same_cell(tmp_path):
    m = _conn_mask()
    post, pre = np.nonzero(m)
    np.savez(tmp_path / "pairs.npz", post=post[::-1].copy(), pre=pre[::-1].copy())  # any order
    scipy.sparse.save_npz(tmp_path / "scipy.npz", scipy.sparse.csr_matrix(m.astype(float)))
    scipy.sparse.save_npz(tmp_path / "scipy_csc.npz", scipy.sparse.csc_matrix(m.astype(float)))
    forms = [
        m,
        m.astype(float),
        scipy.sparse.coo_array(m),
        (post, pre),
        str(tmp_path / "pairs.npz"),
        tmp_path / "scipy.npz",
        str(tmp_path / "scipy_csc.npz"),
    ]
    for form in forms:
        for storage in ("dense", "sparse"):
            cell = ns.cells.EGRU(2, 9, connectivity=form, storage=storage)
            assert np.array_equal(cell.graph.to_mask(), m), type(form)
            assert cell.density == m.sum() / 81


def test_connectivity_saved_and_named_in_a_configuration_rebuilds(tmp_path):
    m = _conn_mask(12)
    cell = ns.cells.LIF(3, 12, connectivity=scipy.sparse.csr_array(m), storage="sparse")
    assert cell.config()["connectivity"]["nnz"] == m.sum()
    with pytest.raises(ValueError, match="save it with neurosnap.io.save_connectivity"):
        codec.build_model(codec.model_config(ns.Model(cell, 2)))
    path = ns.io.save_connectivity(tmp_path / "syn", cell)
    assert path.name == "syn.npz"
    model = ns.Model(ns.cells.LIF(3, 12, connectivity=path, storage="sparse"), 2)
    desc = codec.model_config(model)
    assert desc["cell_options"]["connectivity"]["file"] == str(path)
    assert desc["cell_options"]["storage"] == "sparse" and desc["density"] == 1.0
    again = codec.build_model(desc)
    assert again.cell.graph == cell.graph
    assert codec.network_hash(again, again.init(0)) == codec.network_hash(model, model.init(0))
    # the file changed under the description: refused, not silently another network
    m2 = m.copy()
    m2[3, 4] = not m2[3, 4]
    np.savez(path, post=np.nonzero(m2)[0], pre=np.nonzero(m2)[1])
    with pytest.raises(ValueError, match="changed since the configuration was written"):
        codec.build_model(desc)


def test_config_file_names_a_connectivity(tmp_path):
    m = _conn_mask(10)
    ns.io.save_connectivity(tmp_path / "syn.npz", RecurrentGraph(m))
    (tmp_path / "run.toml").write_text(
        textwrap.dedent(
            """
            [model]
            cell = "LeakyRNN"
            n_hidden = 10
            [model.cell_options]
            connectivity = "syn.npz"
            storage = "sparse"
            [task]
            name = "adding"
            length = 6
            [rule]
            name = "RTRL"
            [optimizer]
            name = "SGD"
            [train]
            steps = 30
            """
        )
    )
    model = ns_config.build(ns_config.load(tmp_path / "run.toml"))[0]
    assert model.cell.storage == "sparse" and np.array_equal(model.cell.graph.to_mask(), m)
    assert model.param_shapes()["cell.w_rec"] == (1, int(m.sum()))


@pytest.mark.parametrize(
    "value,kwargs,match",
    [
        (np.ones((3, 3)), {}, r"shape \(n, n\) = \(4, 4\)|an array of shape \(3, 3\)"),
        (scipy.sparse.eye(3), {}, r"connectivity must have shape \(n, n\) = \(4, 4\)"),
        ((np.array([0, 1]), np.array([1])), {}, "differ in length"),
        ((np.array([0, 5]), np.array([1, 1])), {}, r"post must lie in \[0, 4\)"),
        ((np.array([0, 0]), np.array([1, 1])), {}, "more than once"),
        ((np.array([0.0]), np.array([1])), {}, "1-D integer array"),
        (np.eye(4), {"autapses": False}, "self-connections but autapses=False"),
        (np.zeros((4, 4)), {}, "at least one synapse"),
        ({"n": 4, "nnz": 3, "sha256": "x"}, {}, "cannot be rebuilt from a description"),
    ],
)
def test_connectivity_errors_name_the_problem(value, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ns.cells.LIF(2, 4, connectivity=value, **kwargs)


def test_connectivity_and_density_together_and_bad_storage_are_refused(tmp_path):
    with pytest.raises(ValueError, match="give density or connectivity, not both"):
        ns.cells.LIF(2, 4, 0.5, connectivity=np.eye(4))
    with pytest.raises(ValueError, match="storage must be 'dense' or 'sparse'"):
        ns.cells.LIF(2, 4, storage="csr")
    np.savez(tmp_path / "bad.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="must hold arrays 'post' and 'pre'"):
        ns.cells.LIF(2, 4, connectivity=tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="connectivity"):
        ns.cells.LIF(2, 4, connectivity=tmp_path / "missing.npz")


def test_connectivity_files_are_read_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, post=np.array([object()], dtype=object), pre=np.array([0]))
    with pytest.raises(ValueError):
        ns.cells.LIF(2, 4, connectivity=path)


# -- parameters in both storages ---------------------------------------------------------------------
@pytest.mark.parametrize("cls,kw", CELLS, ids=IDS)
def test_same_weights_and_conversions(cls, kw):
    dense, sparse, pd, ps = _pair(cls, kw)
    cd, cs = dense.cell, sparse.cell
    G = cd.n_gates
    assert sparse.param_shapes()["cell.w_rec"] == (G, cs.graph.nnz)
    assert np.array_equal(cs.dense_w_rec(ps["cell.w_rec"]), pd["cell.w_rec"])
    assert np.array_equal(cd.synapse_w_rec(pd["cell.w_rec"]), ps["cell.w_rec"])
    assert np.array_equal(cs.synapse_w_rec(ps["cell.w_rec"]), ps["cell.w_rec"])
    for k in pd:
        if k != "cell.w_rec":
            assert np.array_equal(pd[k], ps[k]), k
    m = cs.weight_matrix(ps["cell.w_rec"], gate=G - 1)
    assert isinstance(m, scipy.sparse.csr_array) and np.array_equal(
        m.toarray(), pd["cell.w_rec"][G - 1]
    )
    with pytest.raises(ValueError, match=r"w_rec must have shape"):
        cs.dense_w_rec(np.zeros((G, 5)))
    with pytest.raises(ValueError, match=r"params\['cell.w_rec'\] must have shape"):
        sparse.check_params({**ps, "cell.w_rec": pd["cell.w_rec"]})


@pytest.mark.parametrize("cls,kw", CELLS, ids=IDS)
def test_run_and_every_rule_agree_across_storages(cls, kw):
    dense, sparse, pd, ps = _pair(cls, kw)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(20, 2, 3))
    ys = rng.integers(0, 2, size=(20, 2))
    td, ts = dense.run(pd, xs), sparse.run(ps, xs)
    assert np.allclose(td.states, ts.states, rtol=0, atol=1e-12)
    assert np.array_equal(td.events, ts.events) and td.events.any()
    trace = ns.rules.EProp() if cls in (ns.cells.LIF, ns.cells.ALIF) else ns.rules.RFLO()
    for rule in [ns.rules.RTRL(), ns.rules.RTRL(sparse=False), ns.rules.BPTT(), ns.rules.BPTT(truncation=5),
                 ns.rules.SnAp(1), ns.rules.SnAp(2), trace]:  # fmt: skip
        ld, gd = ns.sequence_grad(dense, pd, xs, ys, rule)
        ls, gs = ns.sequence_grad(sparse, ps, xs, ys, rule, engine="reference")
        assert abs(ld - ls) <= 1e-12 * max(1.0, abs(ld)), rule
        assert gs["cell.w_rec"].shape == ps["cell.w_rec"].shape
        assert np.allclose(
            gs["cell.w_rec"], dense.cell.synapse_w_rec(gd["cell.w_rec"]), rtol=0, atol=1e-12
        )
        for k in gd:
            if k != "cell.w_rec":
                assert np.allclose(gd[k], gs[k], rtol=0, atol=1e-12), (rule, k)


def test_uoro_runs_on_sparse_storage_and_bptt_identity_holds():
    dense, sparse, pd, ps = _pair(ns.cells.EGRU, {})
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(15, 1, 3)), rng.integers(0, 2, size=(15, 1))
    ls, gs = ns.sequence_grad(sparse, ps, xs, ys, ns.rules.UORO(seed=0))
    assert np.isfinite(ls) and gs["cell.w_rec"].shape == ps["cell.w_rec"].shape
    # the state Jacobian's products on synapse values equal the dense ones
    state = sparse.cell.initial_state(1)
    state, _, rec_s = sparse.cell.step_record(sparse.cell_params(ps), state, xs[0])
    state, _, rec_s = sparse.cell.step_record(sparse.cell_params(ps), state, xs[1])
    js = rec_s.jac_state
    jd = type(js)(local=js.local, drec=js.drec, w_rec=js.dense_w_rec(), dout=js.dout)
    v = rng.normal(size=js.dout.shape)
    assert np.allclose(js.matvec(v), jd.matvec(v), rtol=0, atol=1e-13)
    assert np.allclose(js.matvec_transpose(v), jd.matvec_transpose(v), rtol=0, atol=1e-13)
    assert np.allclose(js.to_dense(), jd.to_dense(), rtol=0, atol=1e-15)


def test_event_drive_on_synapse_values_equals_dense_product():
    cell = ns.cells.EGRU(2, 80, 0.1, storage="sparse")
    w = np.random.default_rng(0).normal(size=(cell.n_gates, cell.graph.nnz))
    y = np.random.default_rng(1).normal(size=(3, 80)) * (
        np.random.default_rng(2).random((3, 80)) < 0.05
    )
    dense = np.einsum("gij,bj->bgi", cell.dense_w_rec(w), y)
    assert np.allclose(cell.event_drive.gather(w, y), dense, rtol=0, atol=1e-13)
    assert np.allclose(cell.graph.matmul(w, y), dense, rtol=0, atol=1e-13)
    assert np.allclose(cell.event_drive(w, y), dense, rtol=0, atol=1e-13)
    assert np.allclose(cell.event_drive(w, np.abs(y) + 1), cell.graph.matmul(w, np.abs(y) + 1))


def test_training_and_checkpoints_with_sparse_storage(tmp_path):
    task = ns.tasks.TASKS["adding"](length=6)
    kw = dict(steps=60, seed=1, checkpoint_every=20)

    def model(storage):
        return ns.Model(
            ns.cells.LeakyRNN(task.n_in, 8, 0.5, storage=storage), task.n_out, loss=task.loss
        )

    dense = ns.train(model("dense"), ns.rules.RTRL(), ns.optim.Adam(1e-2), task, **kw)
    full = ns.train(model("sparse"), ns.rules.RTRL(), ns.optim.Adam(1e-2), task, **kw)
    m = model("sparse")
    assert np.allclose(
        full.params["cell.w_rec"], m.cell.synapse_w_rec(dense.params["cell.w_rec"]), atol=1e-12
    )
    # cut at 30 steps and resumed: bit for bit the uninterrupted run
    ns.train(model("sparse"), ns.rules.RTRL(), ns.optim.Adam(1e-2), task, **{**kw, "steps": 30},
             checkpoint_dir=tmp_path)  # fmt: skip
    resumed = ns.train(model("sparse"), ns.rules.RTRL(), ns.optim.Adam(1e-2), task, **kw,
                       checkpoint_dir=tmp_path, resume=True)  # fmt: skip
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    # a checkpoint of one storage is refused by the other, naming the setting
    with pytest.raises(ValueError, match="storage"):
        ns.train(model("dense"), ns.rules.RTRL(), ns.optim.Adam(1e-2), task, **kw,
                 checkpoint_dir=tmp_path, resume=True)  # fmt: skip


# -- simulation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [{}, {"refractory": 0.002}, {"tau_syn_inh": 0.01}, {"delay": 3}],
    ids=["lif", "refractory", "two-currents", "delay"],
)
def test_simulate_event_engine_identical_across_storages(kw):
    dense, sparse, pd, ps = _pair(ns.cells.LIF, kw, n=60, density=0.2, w_rec_scale=3.0)
    src = ns.simulation.PoissonSource(30.0, n=3, dt=dense.cell.dt, seed=0)
    rd = ns.simulate(dense, pd, src, record="events,v", steps=300, units=[0, 5])
    rs = ns.simulate(sparse, ps, src, record="events,v", steps=300, units=[0, 5])
    assert rd.n_events > 20
    assert np.array_equal(rd.spike_steps, rs.spike_steps) and np.array_equal(
        rd.spike_units, rs.spike_units
    )
    assert np.array_equal(rd.states["v"], rs.states["v"])


def test_simulate_per_synapse_delays_in_graph_order_equal_dense_array():
    dense, sparse, pd, ps = _pair(ns.cells.ALIF, {}, n=40, density=0.3, w_rec_scale=3.0)
    g = sparse.cell.graph
    d_edges = 1 + np.random.default_rng(0).integers(0, 4, size=g.nnz)
    d_dense = np.ones((40, 40), dtype=np.int64)
    d_dense[g.edge_post, g.edge_pre] = d_edges
    src = ns.simulation.PoissonSource(30.0, n=3, dt=dense.cell.dt, seed=1)
    a = ns.simulate(dense, pd, src, steps=200, delays=d_dense)
    b = ns.simulate(sparse, ps, src, steps=200, delays=d_edges)
    c = ns.simulate(dense, pd, src, steps=200, delays=d_edges)
    assert a.n_events > 10
    for r in (b, c):
        assert np.array_equal(a.spike_steps, r.spike_steps) and np.array_equal(
            a.spike_units, r.spike_units
        )
    with pytest.raises(ValueError, match=r"delays must have shape \(nnz,\)"):
        ns.simulate(sparse, ps, src, steps=5, delays=d_edges[:-1])


def test_step_engine_on_sparse_storage_equals_dense():
    dense, sparse, pd, ps = _pair(ns.cells.EGRU, {}, n=70, density=0.1)
    xs = np.random.default_rng(0).normal(size=(40, 2, 3))
    a = ns.simulate(dense, pd, xs, record="events,c", units=[1, 2])
    b = ns.simulate(sparse, ps, xs, record="events,c", units=[1, 2])
    assert np.array_equal(a.spike_units, b.spike_units)
    assert np.allclose(a.states["c"], b.states["c"], rtol=0, atol=1e-12)


def test_sparse_network_never_builds_an_n_squared_array():
    """n = 20,000 at 0.5 %: an (n, n) float64 array is 3.2 GB, the network 16 MB of synapses."""
    import tracemalloc

    def run(n, density):
        cell = ns.cells.LIF(5, n, density, storage="sparse", w_in_scale=5.0)
        model = ns.Model(cell, 1, loss="mse", dtype=np.float32)
        src = ns.simulation.PoissonSource(20.0, n=5, dt=cell.dt, seed=0)
        ns.simulate(model, model.init(0), src, steps=20, threads=1)  # serial kernel both times
        return cell

    run(200, 0.05)  # numba compiles the same kernels first (compilation allocates Python objects)
    tracemalloc.start()
    cell = run(20_000, 0.005)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert cell.graph.nnz == 20_000 * 100
    assert peak < 60e6, peak  # synapses: 2e6 x (4 + 4 stored, 4 + 4 + 4 tables) = 40 MB


@pytest.mark.slow
def test_hundred_thousand_neurons_build_and_simulate_in_bounded_memory(tmp_path):
    """Issue 14's target: 10^5 LIF neurons at 1 % (10^8 synapses), built, initialised and
    simulated with spikes streamed to disk, in one process whose peak RSS stays under 4 GB."""
    script = textwrap.dedent(
        f"""
        import numpy as np, neurosnap as ns
        cell = ns.cells.LIF(10, 100_000, 0.01, storage="sparse", w_in_scale=5.0, w_rec_scale=0.5)
        model = ns.Model(cell, n_out=1, loss="mse", dtype=np.float32)
        params = model.init(0)
        src = ns.simulation.PoissonSource(20.0, n=10, dt=cell.dt, seed=0)
        rec = ns.simulate(model, params, src, steps=20, out={str(tmp_path / "rec")!r})
        status = dict(l.split(":", 1) for l in open("/proc/self/status"))
        print(cell.graph.nnz, rec.n_events, int(status["VmHWM"].split()[0]) * 1024)
        """
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    nnz, events, peak = (int(v) for v in out.stdout.split())
    assert nnz == 10**8 and events > 0
    assert peak < 4 * 2**30, f"peak RSS {peak / 2**30:.2f} GiB"
    assert (tmp_path / "rec" / "recording.npz").exists()
