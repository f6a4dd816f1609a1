"""The interchange paths on sparse synapse storage (``storage="sparse"``, ``w_rec`` of shape
``(G, nnz)``): NIR export/import, the Brian2 adapter and the Norse adapter give a sparse-storage
network the same spikes and gradients as the same network in dense storage (same seed: same
synapses, same weights), Brian2 and NIR import build no ``(n, n)`` array for it, and NIR export and
Norse (whose formats are dense) refuse clearly when the dense matrix cannot fit in memory."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import neurosnap as ns
from neurosnap.cells.base import Cell
from neurosnap.core import validate
from neurosnap.core.graph import RecurrentGraph
from neurosnap.io.codec import model_config

N_IN = 4


def _pair(kind="LIF", n=30, density=0.2, seed=3, n_out=3, loss="cross_entropy", **kw):
    """The same network in dense and in sparse storage: ``(dense, p_dense, sparse, p_sparse)``."""
    cls = getattr(ns.cells, kind)
    kw = {"w_in_scale": 25.0, "w_rec_scale": 4.0, **kw}
    dense = ns.Model(cls(N_IN, n, density, seed=seed, **kw), n_out, loss=loss)
    sparse = ns.Model(cls(N_IN, n, density, seed=seed, storage="sparse", **kw), n_out, loss=loss)
    pd, ps = dense.init(seed), sparse.init(seed)
    assert sparse.cell.graph == dense.cell.graph
    assert ps["cell.w_rec"].shape == (sparse.cell.n_gates, sparse.cell.graph.nnz)
    np.testing.assert_array_equal(ps["cell.w_rec"], dense.cell.synapse_w_rec(pd["cell.w_rec"]))
    return dense, pd, sparse, ps


def _spikes(T, B=2, rate=0.1, seed=0):
    return (np.random.default_rng(seed).random((T, B, N_IN)) < rate).astype(np.float64)


def _user_connectivity(n, density, seed):
    """A ``scipy.sparse`` connectivity ``[post, pre]`` (self-connections included)."""
    post, pre = np.nonzero(np.random.default_rng(seed).random((n, n)) < density)
    return scipy.sparse.coo_array((np.ones(len(post)), (post, pre)), shape=(n, n))


def _huge_sparse_model(n=400_000):
    """A sparse-storage LIF whose dense ``(n, n)`` float64 matrix (1.28 TB) fits no test machine,
    built in O(n) memory: a ring of ``n`` synapses."""
    ring = np.arange(n)
    cell = ns.cells.LIF(1, n, connectivity=(ring, (ring + 1) % n), storage="sparse")
    model = ns.Model(cell, n_out=2)
    return model, model.init(0)


def _refuse_dense_arrays(monkeypatch):
    """From here on, fail on any (n, n) array built from the connectivity index or from sparse
    weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("an (n, n) array was built for a sparse-storage cell")

    for cls, name in (
        (RecurrentGraph, "to_mask"),
        (RecurrentGraph, "dense"),
        (Cell, "dense_w_rec"),
    ):
        monkeypatch.setattr(cls, name, refuse)


# -- NIR ------------------------------------------------------------------------------------------
def test_nir_sparse_export_equals_dense_and_round_trips():
    pytest.importorskip("nir")
    dense, pd, sparse, ps = _pair(density=0.3)
    g_dense, g_sparse = ns.io.to_nir(dense, pd), ns.io.to_nir(sparse, ps)
    np.testing.assert_array_equal(g_sparse.nodes["w_rec"].weight, g_dense.nodes["w_rec"].weight)
    xs = _spikes(150, rate=0.3)
    want = dense.run(pd, xs).events
    assert want.sum() > 30
    # default: the exported storage; storage="sparse" alike
    for storage in (None, "sparse"):
        model2, params2 = ns.io.from_nir(g_sparse, storage=storage)
        assert model2.cell.storage == "sparse" and model_config(model2) == model_config(sparse)
        assert model2.cell.graph == sparse.cell.graph
        for k in ps:
            assert params2[k].dtype == ps[k].dtype and np.array_equal(params2[k], ps[k]), k
        np.testing.assert_array_equal(model2.run(params2, xs).events, want)
    # a dense export imported sparse, a sparse export imported dense
    model3, params3 = ns.io.from_nir(g_dense, storage="sparse")
    assert model_config(model3) == model_config(sparse)
    np.testing.assert_array_equal(params3["cell.w_rec"], ps["cell.w_rec"])
    model4, params4 = ns.io.from_nir(g_sparse, storage="dense")
    assert model_config(model4) == model_config(dense)
    np.testing.assert_array_equal(params4["cell.w_rec"], pd["cell.w_rec"])


def test_nir_sparse_import_builds_no_dense_arrays(monkeypatch):
    pytest.importorskip("nir")
    _, _, sparse, ps = _pair(n=20)
    graph = ns.io.to_nir(sparse, ps)  # NIR's Linear is dense
    _refuse_dense_arrays(monkeypatch)
    model2, params2 = ns.io.from_nir(graph, storage="sparse")
    np.testing.assert_array_equal(params2["cell.w_rec"], ps["cell.w_rec"])


def test_nir_user_connectivity_round_trips_through_a_file(tmp_path):
    nir = pytest.importorskip("nir")
    conn = _user_connectivity(25, 0.2, seed=1)
    cell = ns.cells.LIF(
        N_IN, 25, connectivity=conn, storage="sparse", autapses=True, w_in_scale=25.0
    )
    model = ns.Model(cell, 3)
    params = model.init(2)
    params["cell.w_rec"] *= 4.0
    params["cell.w_rec"][0, ::7] = 0.0  # existing synapses of weight zero stay synapses
    nir.write(tmp_path / "net.nir", ns.io.to_nir(model, params))
    model2, params2 = ns.io.from_nir(tmp_path / "net.nir")
    assert model2.cell.graph == model.cell.graph
    assert model_config(model2) == model_config(model)
    for k in params:
        np.testing.assert_array_equal(params2[k], params[k], err_msg=k)
    xs = _spikes(150, rate=0.3)
    want = model.run(params, xs).events
    assert want.sum() > 30
    np.testing.assert_array_equal(model2.run(params2, xs).events, want)
    # tampered synapse arrays are refused, not silently taken
    graph = nir.read(tmp_path / "net.nir")
    for key in ("neurosnap_post", "neurosnap_pre"):  # one synapse left out
        graph.metadata[key] = graph.metadata[key][:-1].copy()
    with pytest.raises(ValueError, match="synapses differ from the connectivity"):
        ns.io.from_nir(graph)


def test_nir_foreign_graph_sparse_storage_takes_the_nonzeros():
    pytest.importorskip("nir")
    dense, pd, _, _ = _pair(density=0.3, autapses=True)
    graph = ns.io.to_nir(dense, pd)
    graph.metadata = {}
    model2, params2 = ns.io.from_nir(graph, dt=dense.cell.dt, storage="sparse")
    nz = scipy.sparse.csr_array(pd["cell.w_rec"][0])
    assert model2.cell.storage == "sparse" and model2.cell.graph.nnz == nz.nnz
    np.testing.assert_array_equal(
        model2.cell.weight_matrix(params2["cell.w_rec"]).toarray(), nz.toarray()
    )
    xs = _spikes(150, rate=0.3)
    np.testing.assert_array_equal(model2.run(params2, xs).events, dense.run(pd, xs).events)
    graph.nodes["w_rec"].weight[:] = 0.0
    with pytest.raises(ValueError, match="non-zero recurrent weights"):
        ns.io.from_nir(graph, dt=dense.cell.dt, storage="sparse")
    with pytest.raises(ValueError, match="storage"):
        ns.io.from_nir(graph, dt=dense.cell.dt, storage="csr")


def test_nir_export_refuses_a_dense_matrix_that_cannot_fit(monkeypatch):
    pytest.importorskip("nir")
    model, params = _huge_sparse_model()
    with pytest.raises(ValueError, match=r"n_hidden=400000 .*NIR's Linear node"):
        ns.io.to_nir(model, params)
    _, _, sparse, ps = _pair(n=20)
    monkeypatch.setattr(validate, "MAX_BYTES", 20 * 20 * 8 - 1)
    with pytest.raises(ValueError, match="NIR 1.0 has no sparse weights"):
        ns.io.to_nir(sparse, ps)
    monkeypatch.setattr(validate, "MAX_BYTES", 20 * 20 * 8)
    assert ns.io.to_nir(sparse, ps).nodes["w_rec"].weight.shape == (20, 20)


# -- Brian2 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, kw",
    [("LIF", dict(bias=True)), ("ALIF", dict(beta=0.5, tau_adapt=0.05, reset="subtract"))],
)
def test_brian2_sparse_equals_dense(kind, kw, monkeypatch):
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    dense, pd, sparse, ps = _pair(kind, **kw)
    for p in (pd, ps):
        if "cell.bias" in p:
            p["cell.bias"] = np.random.default_rng(4).normal(0.0, 0.5, p["cell.bias"].shape)
    xs = _spikes(200)
    traj = dense.run(pd, xs)
    assert 0.005 < traj.events.mean() < 0.5
    ev_dense, v_dense = adapter.simulate(dense, pd, xs)
    _refuse_dense_arrays(monkeypatch)
    ev_sparse, v_sparse = adapter.simulate(sparse, ps, xs)
    np.testing.assert_array_equal(ev_sparse, ev_dense)
    np.testing.assert_array_equal(ev_sparse, traj.events)
    np.testing.assert_allclose(v_sparse, v_dense, rtol=0, atol=1e-12)
    net = adapter.to_network(sparse, ps, xs, batch_index=1)
    back = adapter.from_network(net, sparse)
    for k in ps:
        np.testing.assert_array_equal(back[k], ps[k], err_msg=k)


def test_brian2_two_currents_sparse_equals_dense():
    """LIF's second current (Dale's law: excitatory units drive ``i``, inhibitory ones ``i_inh``)
    from ``(2, nnz)`` synapse values: the spikes of the dense network, weights read back."""
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    dense, pd, sparse, ps = _pair(n=30, density=0.5, tau_syn_inh=1e-2, w_in_scale=10.0)
    exc = sparse.cell.graph.pre_index < 22  # the presynaptic unit of every synapse
    ps["cell.w_rec"] = np.stack([np.where(exc, 2.0, 0.0), np.where(exc, 0.0, -4.0)])
    pd["cell.w_rec"] = dense.cell.dense_w_rec(ps["cell.w_rec"])
    w_in = np.random.default_rng(2).normal(0, 12.0, (30, N_IN))
    for p in (ps, pd):
        p["cell.w_in"] = np.stack([np.abs(w_in), -np.abs(w_in) / 6])
    xs = _spikes(200, rate=0.1)
    traj = dense.run(pd, xs)
    assert 0.01 < traj.events.mean() < 0.4
    events, _ = adapter.simulate(sparse, ps, xs)
    np.testing.assert_array_equal(events, traj.events)
    back = adapter.from_network(adapter.to_network(sparse, ps, xs), sparse)
    np.testing.assert_array_equal(back["cell.w_rec"], ps["cell.w_rec"])


def test_brian2_per_synapse_delays_in_graph_order():
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    dense, pd, sparse, ps = _pair(n=30, density=0.3, refractory=2e-3, w_rec_scale=6.0)
    graph = sparse.cell.graph
    delays = np.random.default_rng(0).integers(1, 7, graph.nnz)  # (nnz,), graph order
    xs = _spikes(300, rate=0.1)
    events, _ = adapter.simulate(sparse, ps, xs, delays=delays)
    rec = ns.simulate(sparse, ps, xs, engine="event", delays=delays)
    ours = np.zeros_like(events)
    ours[rec.spike_steps, rec.spike_batch, rec.spike_units] = True
    assert 0.01 < ours.mean() < 0.4
    np.testing.assert_array_equal(events, ours)
    # the same delays as an (n, n) array [post, pre] on the dense network
    square = np.full((30, 30), 99)  # off the synapses: ignored
    square[graph.edge_post, graph.edge_pre] = delays
    events_dense, _ = adapter.simulate(dense, pd, xs, delays=square)
    np.testing.assert_array_equal(events_dense, events)
    assert (events != dense.run(pd, xs).events).any(), "the delays changed nothing"
    with pytest.raises(ValueError, match="delays"):
        adapter.to_network(sparse, ps, xs, delays=delays[:-1])


def test_brian2_user_connectivity_scipy_sparse():
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    conn = _user_connectivity(25, 0.15, seed=5)
    kw = dict(connectivity=conn, autapses=True, w_in_scale=25.0, w_rec_scale=4.0)
    sparse = ns.Model(ns.cells.LIF(N_IN, 25, storage="sparse", **kw), 3)
    dense = ns.Model(ns.cells.LIF(N_IN, 25, **kw), 3)
    ps, pd = sparse.init(6), dense.init(6)
    assert sparse.cell.graph.nnz == conn.nnz
    xs = _spikes(200)
    events, _ = adapter.simulate(sparse, ps, xs)
    traj = dense.run(pd, xs)
    assert 0.005 < traj.events.mean() < 0.5
    np.testing.assert_array_equal(events, traj.events)
    np.testing.assert_array_equal(events, sparse.run(ps, xs).events)


def test_brian2_stdp_updates_in_sparse_storage():
    pytest.importorskip("brian2")
    from neurosnap.adapters import brian2 as adapter

    dense, pd, sparse, ps = _pair(n=20, density=0.3)
    xs = _spikes(300, rate=0.1)
    ys = np.zeros((300, 2), dtype=int)
    rule = ns.rules.STDP(tau_pre=0.01, tau_post=0.02, a_plus=0.01, a_minus=0.012)
    _, grads = ns.sequence_grad(sparse, ps, xs, ys, rule)
    _, grads_dense = ns.sequence_grad(dense, pd, xs, ys, rule)
    net = adapter.to_network(sparse, ps, xs, batch_index=None, stdp=rule)
    adapter.run(net, sparse, xs.shape[0])
    dw = adapter.stdp_updates(net, sparse)
    assert dw["cell.w_rec"].shape == ps["cell.w_rec"].shape
    assert np.abs(grads["cell.w_rec"]).max() > 0.05
    np.testing.assert_allclose(dw["cell.w_rec"], -grads["cell.w_rec"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        dw["cell.w_rec"], -dense.cell.synapse_w_rec(grads_dense["cell.w_rec"]), rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(dw["cell.w_in"], -grads["cell.w_in"], rtol=0, atol=1e-10)


# -- Norse ----------------------------------------------------------------------------------------
def test_norse_sparse_equals_dense_events_and_gradients():
    pytest.importorskip("norse")
    from neurosnap.adapters import norse as adapter

    dense, pd, sparse, ps = _pair(n=16, density=0.3, loss="mse", w_in_scale=30.0, w_rec_scale=5.0)
    rng = np.random.default_rng(7)
    xs = rng.normal(0.0, 1.0, (60, 2, N_IN))
    ys = rng.normal(size=(60, 2, 3))
    mask = rng.random((60, 2)) < 0.7
    ev_sparse, v_sparse = adapter.simulate(sparse, ps, xs)
    ev_dense, v_dense = adapter.simulate(dense, pd, xs)
    traj = sparse.run(ps, xs)
    assert 0.01 < traj.events.mean() < 0.5
    np.testing.assert_array_equal(ev_sparse, ev_dense)
    np.testing.assert_array_equal(ev_sparse, traj.events)
    np.testing.assert_allclose(v_sparse, v_dense, rtol=0, atol=1e-12)

    loss_s, g_s = adapter.sequence_grad(sparse, ps, xs, ys, mask)
    loss_d, g_d = adapter.sequence_grad(dense, pd, xs, ys, mask)
    assert loss_s == pytest.approx(loss_d, rel=1e-12, abs=0)
    assert g_s["cell.w_rec"].shape == ps["cell.w_rec"].shape
    np.testing.assert_allclose(
        g_s["cell.w_rec"], dense.cell.synapse_w_rec(g_d["cell.w_rec"]), rtol=0, atol=1e-12
    )
    for k in ("cell.w_in", "readout.weight", "readout.bias"):
        np.testing.assert_allclose(g_s[k], g_d[k], rtol=0, atol=1e-12, err_msg=k)
    assert np.abs(g_s["cell.w_rec"]).max() > 1e-3
    # and neurosnap's exact RTRL on the sparse storage agrees
    loss_ns, g_ns = ns.sequence_grad(sparse, ps, xs, ys, ns.rules.RTRL(), mask=mask)
    assert loss_s == pytest.approx(loss_ns, rel=1e-12)
    for k in g_ns:
        np.testing.assert_allclose(g_s[k], g_ns[k], rtol=0, atol=1e-8, err_msg=k)


def test_norse_module_round_trip_sparse():
    pytest.importorskip("norse")
    import torch

    from neurosnap.adapters import norse as adapter

    _, _, sparse, ps = _pair(n=12, density=0.4)
    module = adapter.to_module(sparse, ps)
    assert tuple(module.recurrent_weights.shape) == (12, 12)
    with torch.no_grad():
        module.recurrent_weights.mul_(2.0)
    back = adapter.from_module(module, sparse)
    np.testing.assert_array_equal(back["cell.w_rec"], 2.0 * ps["cell.w_rec"])
    post, pre = np.nonzero(~sparse.cell.graph.to_mask())
    with torch.no_grad():
        module.recurrent_weights[post[0], pre[0]] = 1.0
    with pytest.raises(ValueError, match="no synapse"):
        adapter.from_module(module, sparse)


def test_norse_refuses_a_dense_matrix_that_cannot_fit(monkeypatch):
    pytest.importorskip("norse")
    from neurosnap.adapters import norse as adapter

    model, params = _huge_sparse_model()
    with pytest.raises(ValueError, match=r"n_hidden=400000 .*Norse's dense"):
        adapter.to_module(model, params)
    _, _, sparse, ps = _pair(n=20)
    monkeypatch.setattr(validate, "MAX_BYTES", 4 * 20 * 20 * 8 - 1)
    with pytest.raises(ValueError, match="Norse has no sparse recurrent weights"):
        adapter.simulate(sparse, ps, _spikes(5))
