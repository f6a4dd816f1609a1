"""Online training loop: learning happens, update schedule, determinism, guards."""

import numpy as np
import pytest

import neurosnap as ns


def _model(n=8, **kw):
    return ns.Model(ns.cells.EGRU(4, n, **kw), n_out=2)


def test_rtrl_learns_copy_curriculum():
    history = ns.train(
        _model(12), ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=6000, seed=0
    )
    assert history.final("level") >= 3
    assert history.column("loss")[:20].mean() > history.column("loss")[-20:].mean()


def test_spiral_reaches_high_accuracy():
    task = ns.tasks.Spiral(n_samples=500)
    model = ns.Model(ns.cells.EGRU(2, 8), n_out=2)
    history = ns.train(
        model,
        ns.rules.RTRL(),
        ns.optim.Adam(1e-2),
        task,
        steps=17 * 300,
        update_every=17,
        batch_size=4,
        seed=1,
    )
    assert task.evaluate(model, history.params)["test_accuracy"] > 0.9


def test_update_every_counts_weight_updates():
    h1 = ns.train(_model(), ns.rules.RTRL(), ns.optim.SGD(1e-2), ns.tasks.Copy(), steps=300)
    h4 = ns.train(
        _model(), ns.rules.RTRL(), ns.optim.SGD(1e-2), ns.tasks.Copy(), steps=300, update_every=4
    )
    assert h1.rows[-1]["updates"] == 300
    assert h4.rows[-1]["updates"] == 75


def test_bptt_updates_once_per_sequence_and_at_truncation():
    h = ns.train(_model(), ns.rules.BPTT(), ns.optim.SGD(1e-2), ns.tasks.Copy(), steps=200)
    assert h.rows[-1]["updates"] == len(h.rows)
    task = ns.tasks.Copy(start_length=5, sample_lengths=False)  # sequences of 11 steps
    h = ns.train(_model(), ns.rules.BPTT(truncation=4), ns.optim.SGD(1e-2), task, steps=110)
    assert h.rows[-1]["updates"] == 10 * 3  # windows 4 + 4 + 3


def test_online_update_with_sgd_equals_one_sequence_grad_per_step():
    """update_every=T on one sequence == one SGD step with sequence_grad (RTRL, fixed weights)."""
    model = _model(6)
    task = ns.tasks.Copy(start_length=3, sample_lengths=False)
    params = model.init(0)
    batch = task.sample(np.random.default_rng(5), 2)
    T = batch.xs.shape[0]
    h = ns.train(
        model,
        ns.rules.RTRL(),
        ns.optim.SGD(0.1),
        task,
        steps=T,
        update_every=T,
        batch_size=2,
        seed=5,
        params=params,
    )
    _, grads = ns.sequence_grad(model, params, batch.xs, batch.ys, ns.rules.RTRL(), batch.mask)
    for k in params:
        np.testing.assert_allclose(h.params[k], params[k] - 0.1 * grads[k] / 2, atol=1e-12)


def test_masked_weights_stay_zero():
    model = _model(10, density=0.3)
    h = ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=500)
    assert np.all(h.params["cell.w_rec"][:, ~model.cell.mask] == 0)


def test_deterministic_given_seed():
    runs = [
        ns.train(_model(), ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=400, seed=7)
        for _ in range(2)
    ]
    for k in runs[0].params:
        assert np.array_equal(runs[0].params[k], runs[1].params[k])


def test_float32_same_code_path():
    model = ns.Model(ns.cells.EGRU(4, 8), n_out=2, dtype=np.float32)
    h = ns.train(model, ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=300)
    assert all(v.dtype == np.float32 for v in h.params.values())


def test_divergence_stops_with_step_in_message():
    model = ns.Model(ns.cells.LeakyRNN(4, 6), n_out=2)
    params = model.init(0)
    params["readout.weight"] = params["readout.weight"] * 1e308
    with pytest.raises(FloatingPointError, match="time step"):
        ns.train(
            model, ns.rules.RTRL(), ns.optim.SGD(1.0), ns.tasks.Copy(), steps=50, params=params
        )


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        (dict(steps=0), "steps"),
        (dict(update_every=0), "update_every"),
        (dict(seed=-1), "seed"),
        (dict(batch_size=0), "batch_size"),
        (dict(steps=1.5), "steps"),
        (dict(checkpoint_every=0), "checkpoint_every"),
        (dict(resume=True), "checkpoint_dir"),
    ],
)
def test_bad_arguments(kwargs, arg):
    with pytest.raises((TypeError, ValueError), match=arg):
        ns.train(_model(), ns.rules.RTRL(), ns.optim.SGD(1e-2), ns.tasks.Copy(), **kwargs)


def test_task_model_mismatch():
    model = ns.Model(ns.cells.EGRU(3, 4), n_out=2)
    with pytest.raises(ValueError, match="n_in"):
        ns.train(model, ns.rules.RTRL(), ns.optim.SGD(1e-2), ns.tasks.Copy(), steps=5)
    model = ns.Model(ns.cells.EGRU(4, 4), n_out=2, loss="mse")
    with pytest.raises(ValueError, match="loss"):
        ns.train(model, ns.rules.RTRL(), ns.optim.SGD(1e-2), ns.tasks.Copy(), steps=5)


def test_history_outputs(tmp_path):
    h = ns.train(_model(), ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=300)
    h.to_csv(tmp_path / "m.csv")
    h.to_json(tmp_path / "m.json")
    h.plot(tmp_path / "c.png")
    assert (tmp_path / "m.csv").read_text().splitlines()[0].startswith("step,")
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_log_every_aggregates_rows():
    per_batch = ns.train(
        _model(), ns.rules.RTRL(), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=1000, seed=2
    )
    logged = ns.train(
        _model(),
        ns.rules.RTRL(),
        ns.optim.Adam(1e-2),
        ns.tasks.Copy(),
        steps=1000,
        seed=2,
        log_every=250,
    )
    assert len(logged.rows) == 4 or len(logged.rows) == 5
    assert sum(r["batches"] for r in logged.rows) == len(per_batch.rows)
    first = [r["loss"] for r in per_batch.rows[: logged.rows[0]["batches"]]]
    assert logged.rows[0]["loss"] == pytest.approx(np.mean(first))
    for k in per_batch.params:
        assert np.array_equal(per_batch.params[k], logged.params[k])


def test_budget_shorter_than_first_counted_step_is_an_error():
    task = ns.tasks.Copy(start_length=5, sample_lengths=False)  # loss counts from step 7 on
    with pytest.raises(ValueError, match="steps=4"):
        ns.train(_model(), ns.rules.RTRL(), ns.optim.SGD(1e-2), task, steps=4)


def test_stats_recorded_per_row_match_sequence_grad_counts():
    model = _model(8, density=0.5)
    h = ns.train(
        model, ns.rules.SnAp(n=1), ns.optim.Adam(1e-2), ns.tasks.Copy(), steps=300, stats=True
    )
    row = h.rows[-1]
    for key in ("event_fraction", "support_fraction", "influence_nnz", "influence_size", "macs"):
        assert np.isfinite(row[key]), key
    assert 0 <= row["event_fraction"] <= row["support_fraction"] <= 1
    assert row["influence_size"] == model.cell.n_state * model.cell.layout.size  # SnAp-1: O(p)
    dense = ns.train(
        model,
        ns.rules.RTRL(sparse=False),
        ns.optim.Adam(1e-2),
        ns.tasks.Copy(),
        steps=300,
        stats=True,
    )
    assert dense.rows[-1]["macs"] > row["macs"]
