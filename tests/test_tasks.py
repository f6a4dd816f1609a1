"""Task suite: batch contract, determinism, each task's defining property, argument checks, metrics,
configs in models/, and a short training run on every task."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import neurosnap as ns
from neurosnap import config as config_mod
from neurosnap.tasks import TASKS, _common
from neurosnap.tasks.delayed_match import MATCH, NON_MATCH
from neurosnap.tasks.digits import load_digits
from neurosnap.tasks.evidence import LEFT, NOISE, RECALL_CUE, RIGHT
from neurosnap.tasks.store_recall import BIT0, BIT1, RECALL, STORE

MODELS = Path(__file__).resolve().parents[1] / "models"
NAMES = sorted(TASKS)


def make(name, **overrides):
    """The fast configuration of task ``name``."""
    cls = TASKS[name]
    if hasattr(cls, "small"):
        return cls.small(**overrides)
    return cls(**overrides)


# -- the batch contract ----------------------------------------------------------------------------
def test_registry():
    assert set(TASKS) == {
        "copy",
        "spiral",
        "adding",
        "delayed_match",
        "store_recall",
        "evidence",
        "pattern",
        "digits",
        "spiking_digits",
        "vowels",
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch_size", [1, 5])
def test_batch_contract(name, batch_size):
    task = make(name)
    assert task.loss in ("cross_entropy", "mse") and isinstance(task.metric, str)
    batch = task.sample(np.random.default_rng(0), batch_size)
    T = batch.xs.shape[0]
    assert batch.xs.shape == (T, batch_size, task.n_in) and batch.xs.dtype == np.float64
    assert np.all(np.isfinite(batch.xs))
    assert batch.mask.shape == (T, batch_size) and batch.mask.dtype == np.bool_
    assert batch.mask.any(axis=0).all()  # every sequence has counted steps
    if task.loss == "cross_entropy":
        assert batch.ys.shape == (T, batch_size) and np.issubdtype(batch.ys.dtype, np.integer)
        assert batch.ys.min() >= 0 and batch.ys.max() < task.n_out
    else:
        assert batch.ys.shape == (T, batch_size, task.n_out) and batch.ys.dtype == np.float64
        assert np.all(np.isfinite(batch.ys))
    json.dumps(task.state_dict())
    task.load_state_dict(task.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_rng(name):
    a = make(name).sample(np.random.default_rng(3), 4)
    b = make(name).sample(np.random.default_rng(3), 4)
    for x, y in zip((a.xs, a.ys, a.mask), (b.xs, b.ys, b.mask), strict=True):
        np.testing.assert_array_equal(x, y)
    if name not in ("pattern", "copy"):  # pattern is frozen; copy at level 1 has 2^4 draws
        c = make(name).sample(np.random.default_rng(4), 4)
        assert not np.array_equal(a.xs, c.xs)


@pytest.mark.parametrize("name", NAMES)
def test_tasks_pickle(name):
    task = make(name)
    clone = pickle.loads(pickle.dumps(task))
    a = task.sample(np.random.default_rng(0), 3)
    b = clone.sample(np.random.default_rng(0), 3)
    np.testing.assert_array_equal(a.xs, b.xs)
    np.testing.assert_array_equal(a.ys, b.ys)


@pytest.mark.parametrize("name", ["adding", "delayed_match", "store_recall", "evidence"])
def test_heldout_set_is_fixed_and_not_a_training_stream(name):
    task = make(name)
    held = _common.heldout_batch(task, 8)
    again = _common.heldout_batch(make(name), 8)
    np.testing.assert_array_equal(held.xs, again.xs)
    for seed in range(3):
        assert not np.array_equal(held.xs, task.sample(np.random.default_rng(seed), 8).xs)


@pytest.mark.parametrize("name", NAMES)
def test_perfect_predictions_score_perfectly(name):
    task = make(name)
    batch = task.sample(np.random.default_rng(1), 6)
    if task.loss == "cross_entropy":
        logits = 5.0 * np.eye(task.n_out)[batch.ys]
    else:
        logits = batch.ys.copy()
    losses = _common.step_losses(task.loss, logits, batch.ys, batch.mask)
    metrics = task.observe(batch, logits, losses)
    if task.metric in ("accuracy",):
        assert metrics["accuracy"] == 1.0
    elif task.metric in ("mse", "nmse"):
        assert metrics[task.metric] == pytest.approx(0.0, abs=1e-12)
    else:
        assert task.metric == "level" and metrics["level"] >= 1


# -- defining properties ---------------------------------------------------------------------------
def test_adding_target_is_the_marked_sum():
    task = ns.tasks.Adding(length=20)
    batch = task.sample(np.random.default_rng(0), 500)
    values, markers = batch.xs[..., 0], batch.xs[..., 1]
    assert np.all(markers[:10].sum(axis=0) == 1) and np.all(markers[10:].sum(axis=0) == 1)
    assert np.all((values >= 0) & (values <= 1))
    np.testing.assert_allclose(batch.ys[-1, :, 0], (values * markers).sum(axis=0))
    assert np.all(batch.ys[:-1] == 0)
    assert batch.mask[-1].all() and not batch.mask[:-1].any()
    # the baseline: predicting 1 scores Var(u1 + u2) = 1/6
    logits = np.ones_like(batch.ys)
    mse = task.observe(batch, logits, _common.step_losses("mse", logits, batch.ys, batch.mask))[
        "mse"
    ]
    assert mse == pytest.approx(ns.tasks.adding.BASELINE_MSE, rel=0.15)


def test_delayed_match_label_is_xnor_of_the_stimuli():
    task = ns.tasks.DelayedMatch(delay=4, stim_duration=2, report=3, onset=1)
    assert task.length == 1 + 2 * 2 + 2 * 4 + 3
    batch = task.sample(np.random.default_rng(0), 64)
    xs = batch.xs
    first = xs[1:3].argmax(-1)  # (2, B) channel of stimulus 1
    second = xs[7:9].argmax(-1)
    assert np.all(first[0] == first[1]) and np.all(second[0] == second[1])
    assert np.all(xs[1:3].sum(-1) == 1) and np.all(xs[7:9].sum(-1) == 1)
    silent = np.ones(task.length, bool)
    silent[1:3] = silent[7:9] = False
    assert np.all(xs[silent] == 0)
    match = first[0] == second[0]  # XNOR of the two channel bits
    report = slice(task.t_report, None)
    assert np.all(batch.ys[report] == np.where(match, MATCH, NON_MATCH))
    assert np.all((batch.ys[report] == MATCH) == ~np.logical_xor(first[0], second[0]))
    assert batch.mask[report].all() and not batch.mask[: task.t_report].any()
    assert 0.25 < match.mean() < 0.75


def _decode_store_recall(task, batch):
    """Per-period active groups, from inputs generated with spike probability 1."""
    L, tau = task.seq_len, task.tau_char
    on = np.stack([batch.xs[:, :, idx].mean(-1) for idx in task.groups], axis=-1)  # (T, B, 4)
    periods = on.reshape(L, tau, -1, 4)
    assert np.all(periods == periods[:, :1])  # constant inside a period
    return periods[:, 0] == 1  # (L, B, 4)


def test_store_recall_target_is_the_stored_bit():
    task = ns.tasks.StoreRecall(
        n_inputs=8, seq_len=8, tau_char=3, seq_delay=2.0, rate=1000.0, dt=1e-3
    )  # spike probability 1: the inputs are the symbols
    batch = task.sample(np.random.default_rng(0), 50)
    active = _decode_store_recall(task, batch)
    L, tau = task.seq_len, task.tau_char
    ys = batch.ys.reshape(L, tau, -1)
    mask = batch.mask.reshape(L, tau, -1)
    n_recalls = 0
    for b in range(active.shape[1]):
        stored, last = None, None
        assert active[:, b, STORE].any() and active[:, b, RECALL].any()
        for t in range(L):
            a = active[t, b]
            if a[RECALL]:
                assert not (a[BIT0] or a[BIT1] or a[STORE])
                assert last == STORE and stored is not None  # strict alternation
                assert mask[t, :, b].all() and np.all(ys[t, :, b] == stored)
                last, n_recalls = RECALL, n_recalls + 1
            else:
                assert a[BIT0] != a[BIT1]  # exactly one bit shown
                assert not mask[t, :, b].any()
                if a[STORE]:
                    assert last in (None, RECALL)
                    assert t + 1 < L and not active[t + 1, b, RECALL]  # a bit period follows
                    stored, last = int(a[BIT1]), STORE
        assert last == RECALL  # ends with a recall
    assert n_recalls >= 50


def test_store_recall_symbols_statistics():
    task = ns.tasks.StoreRecall.small()
    events, bits, targets = task.symbols(np.random.default_rng(0), 400)
    recall = events == RECALL
    assert 0.4 < targets[recall].mean() < 0.6  # stored bits are balanced
    assert set(np.unique(bits)) == {0, 1}


def test_evidence_label_is_the_majority_side():
    task = ns.tasks.Evidence(
        n_inputs=12,
        n_cues=5,
        rate=100.0,
        noise_rate=0.0,
        dt=0.01,
        cue_duration=0.02,
        cue_interval=0.03,
        delay=0.04,
        recall_duration=0.02,
    )
    assert task.length == 5 * 3 + 4 + 2
    batch = task.sample(
        np.random.default_rng(0), 200
    )  # spike probability 1: the inputs are the cues
    g = task.group_size
    left = batch.xs[:, :, LEFT * g : (LEFT + 1) * g].mean(-1)
    right = batch.xs[:, :, RIGHT * g : (RIGHT + 1) * g].mean(-1)
    starts = 1 + 3 * np.arange(5)  # 1 step of silence before each 2-step cue
    cue_steps = np.concatenate([starts, starts + 1])
    assert np.all(left[cue_steps] + right[cue_steps] == 1)
    others = np.setdiff1d(np.arange(task.length), cue_steps)
    assert np.all(left[others] == 0) and np.all(right[others] == 0)
    n_right = right[starts].sum(axis=0)
    np.testing.assert_array_equal(batch.ys[-1], (n_right > 2).astype(int))
    assert np.all(batch.ys == batch.ys[-1])
    recall = batch.xs[:, :, RECALL_CUE * g : (RECALL_CUE + 1) * g].mean(-1)
    assert np.all(recall[-2:] == 1) and np.all(recall[:-2] == 0)
    assert batch.mask[-2:].all() and not batch.mask[:-2].any()
    assert np.all(batch.xs[:, :, NOISE * g :] == 0)


@pytest.mark.parametrize(
    "cls, length",
    [(ns.tasks.StoreRecall, 2400), (ns.tasks.Evidence, 2250), (ns.tasks.Pattern, 1000)],
)
def test_defaults_are_the_paper_configuration(cls, length):
    default, paper = cls(), cls(**cls.PAPER)
    assert default.length == paper.length == length
    assert default.n_in == paper.n_in
    a = default.sample(np.random.default_rng(0), 1)
    b = paper.sample(np.random.default_rng(0), 1)
    np.testing.assert_array_equal(a.xs, b.xs)


def test_evidence_cue_statistics():
    task = ns.tasks.Evidence(n_cues=7, dt=0.01, p_minority=0.3)
    cues = task.cues(np.random.default_rng(0), 4000)
    majority = (cues.sum(axis=0) > 3).astype(int)
    assert 0.45 < majority.mean() < 0.55
    assert abs((cues != majority).mean() - 0.24) < 0.03  # below 0.3: the drawn majority can flip
    batch = task.sample(np.random.default_rng(1), 8)
    assert task.length == 225
    noise = batch.xs[:, :, NOISE * task.group_size :].mean()
    assert noise == pytest.approx(10.0 * 0.01, rel=0.2)


def test_pattern_is_frozen_and_seeded():
    task = ns.tasks.Pattern(n_inputs=30, n_out=3, dt=0.002, seed=5)
    assert task.length == 500
    a = task.sample(np.random.default_rng(0), 2)
    b = task.sample(np.random.default_rng(1), 1)
    np.testing.assert_array_equal(a.xs[:, 0], a.xs[:, 1])
    np.testing.assert_array_equal(a.xs[:, 0], b.xs[:, 0])
    np.testing.assert_array_equal(a.ys[:, 0], b.ys[:, 0])
    y = task.target
    assert y.shape == (500, 3)
    np.testing.assert_allclose(y[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(y).max(axis=0), 1.0)
    assert a.mask.all()
    assert a.xs.mean() == pytest.approx(50.0 * 0.002, rel=0.2)
    same = ns.tasks.Pattern(n_inputs=30, n_out=3, dt=0.002, seed=5)
    other = ns.tasks.Pattern(n_inputs=30, n_out=3, dt=0.002, seed=6)
    np.testing.assert_array_equal(same.target, task.target)
    np.testing.assert_array_equal(same.inputs, task.inputs)
    assert not np.array_equal(other.target, task.target)
    # nmse: 1 for the constant mean of the target, 0 for the target
    logits = np.broadcast_to(y.mean(axis=0), a.ys.shape).copy()
    losses = _common.step_losses("mse", logits, a.ys, a.mask)
    assert task.observe(a, logits, losses)["nmse"] == pytest.approx(1.0)


def test_pattern_sines_have_the_reference_form():
    task = ns.tasks.Pattern(n_inputs=4, dt=1e-3, periods=(0.5,), seed=0)
    rng = np.random.default_rng(0)
    rng.random((1000, 4))  # the frozen input is drawn first
    a, phi = rng.uniform(0.5, 2.0, 1), rng.uniform(0, 2 * np.pi, 1)
    y = a * np.sin(np.linspace(phi[0], phi[0] + 2 * np.pi * 2, 1000))
    y = y - y[0]
    np.testing.assert_allclose(task.target[:, 0], y / np.abs(y).max())


def test_digits_split_disjoint_fixed_and_used():
    task = ns.tasks.Digits()
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.min() == 0.0 and images.max() == 1.0
    splits = task.splits
    allidx = np.concatenate([splits["train"], splits["val"], splits["test"]])
    assert len(allidx) == 1797 and len(np.unique(allidx)) == 1797  # disjoint and complete
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (1257, 270, 270)
    again = ns.tasks.Digits()
    for k in splits:
        np.testing.assert_array_equal(splits[k], again.splits[k])
    assert not np.array_equal(splits["test"], ns.tasks.Digits(seed=1).splits["test"])
    batch = task.sample(np.random.default_rng(0), 64)
    train = {images[i].tobytes(): labels[i] for i in splits["train"]}
    for b in range(64):
        img = np.ascontiguousarray(batch.xs[:, b])  # rows as time steps
        assert img.tobytes() in train and train[img.tobytes()] == batch.ys[-1, b]
    assert batch.mask[-1].all() and not batch.mask[:-1].any()
    test = task.split("test")
    np.testing.assert_array_equal(test.ys[-1], labels[splits["test"]])


# -- argument checks -------------------------------------------------------------------------------
BAD_ARGS = [
    ("adding", {"length": 1}, ValueError, "length"),
    ("adding", {"length": 10.0}, TypeError, "length"),
    ("adding", {"eval_size": -1}, ValueError, "eval_size"),
    ("delayed_match", {"delay": -1}, ValueError, "delay"),
    ("delayed_match", {"stim_duration": 0}, ValueError, "stim_duration"),
    ("delayed_match", {"report": "3"}, TypeError, "report"),
    ("delayed_match", {"onset": True}, TypeError, "onset"),
    ("store_recall", {"n_inputs": 3}, ValueError, "n_inputs"),
    ("store_recall", {"seq_len": 2}, ValueError, "seq_len"),
    ("store_recall", {"tau_char": 0}, ValueError, "tau_char"),
    ("store_recall", {"seq_delay": 0.0}, ValueError, "seq_delay"),
    ("store_recall", {"rate": 2000.0}, ValueError, "rate"),
    ("store_recall", {"dt": -1e-3}, ValueError, "dt"),
    ("evidence", {"n_cues": 4}, ValueError, "n_cues"),
    ("evidence", {"p_minority": 0.5}, ValueError, "p_minority"),
    ("evidence", {"cue_duration": 0.2, "cue_interval": 0.15}, ValueError, "cue_duration"),
    ("evidence", {"recall_duration": 0.0001}, ValueError, "recall_duration"),
    ("evidence", {"noise_rate": 2000.0}, ValueError, "noise_rate"),
    ("evidence", {"delay": -0.1}, ValueError, "delay"),
    ("evidence", {"n_inputs": "40"}, TypeError, "n_inputs"),
    ("pattern", {"periods": (2.0,)}, ValueError, "periods"),
    ("pattern", {"periods": "1.0"}, TypeError, "periods"),
    ("pattern", {"periods": ()}, ValueError, "periods"),
    ("pattern", {"n_out": 0}, ValueError, "n_out"),
    ("pattern", {"duration": 0.0}, ValueError, "duration"),
    ("pattern", {"seed": -1}, ValueError, "seed"),
    ("digits", {"val_fraction": 0.0}, ValueError, "val_fraction"),
    ("digits", {"val_fraction": 0.6, "test_fraction": 0.5}, ValueError, "val_fraction"),
    ("digits", {"seed": 1.5}, TypeError, "seed"),
    ("spiking_digits", {"encoding": "phase"}, ValueError, "encoding"),
    ("spiking_digits", {"layout": "columns"}, ValueError, "layout"),
    ("spiking_digits", {"downsample": 3}, ValueError, "downsample"),
    ("spiking_digits", {"steps": 0}, ValueError, "steps"),
    ("spiking_digits", {"gain": 2.0}, ValueError, "gain"),
    ("spiking_digits", {"kind": "gauss"}, ValueError, "kind"),
    ("spiking_digits", {"threshold": 1.0}, ValueError, "threshold"),
    ("spiking_digits", {"steps": 4, "readout_steps": 5}, ValueError, "readout_steps"),
    ("spiking_digits", {"test_fraction": 0.0}, ValueError, "test_fraction"),
    ("spiking_digits", {"eval_size": 2000}, ValueError, "eval_size"),
    ("vowels", {"readout": "first"}, ValueError, "readout"),
    ("vowels", {"standardize": 1}, TypeError, "standardize"),
]


@pytest.mark.parametrize("name, kwargs, exc, arg", BAD_ARGS)
def test_bad_arguments_name_the_argument(name, kwargs, exc, arg):
    with pytest.raises(exc, match=arg):
        TASKS[name](**kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_bad_batch_size(name):
    with pytest.raises(ValueError, match="batch_size"):
        make(name).sample(np.random.default_rng(0), 0)


# -- metrics ---------------------------------------------------------------------------------------
def test_window_accuracy_by_hand():
    # T = 4, B = 2, windows of 2 steps; logits favour class 1 in window 0 and class 0 in window 1
    logits = np.zeros((4, 2, 2))
    logits[:2, :, 1] = 1.0
    logits[2:, :, 0] = 1.0
    ys = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    mask = np.array([[True, True], [True, True], [False, True], [False, False]])
    correct, counted = _common.window_accuracy(logits, ys, mask, 2)
    assert (correct, counted) == (2, 3)


def test_store_recall_metrics_by_period():
    task = ns.tasks.StoreRecall.small()
    batch = task.sample(np.random.default_rng(2), 8)
    logits = 3.0 * np.eye(2)[batch.ys]
    logits[::2] = np.eye(2)[1 - batch.ys[::2]]  # every other step wrong, but less confident
    m = task.observe(
        batch, logits, _common.step_losses("cross_entropy", logits, batch.ys, batch.mask)
    )
    assert m["accuracy"] == 1.0 and m["recall_error"] == 0.0 and m["step_accuracy"] < 1.0
    flipped = 3.0 * np.eye(2)[1 - batch.ys]
    m = task.observe(
        batch, flipped, _common.step_losses("cross_entropy", flipped, batch.ys, batch.mask)
    )
    assert m["accuracy"] == 0.0 and m["recall_error"] == 1.0


# -- configs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(MODELS.glob("*.toml")), ids=lambda p: p.name)
def test_model_configs_build(path):
    model, rule, opt, task, train_kwargs = config_mod.build(config_mod.load(path))
    assert (model.cell.n_in, model.n_out, model.loss) == (task.n_in, task.n_out, task.loss)
    dt = getattr(model.cell, "dt", None)
    if dt is not None and hasattr(task, "dt"):
        assert dt == task.dt, "the cell's dt must equal the task's dt"


def test_every_task_has_a_config():
    names = {config_mod.load(p)["task"]["name"] for p in MODELS.glob("*.toml")}
    assert set(TASKS) <= names


# -- training --------------------------------------------------------------------------------------
SMOKE = [
    ("copy", "LeakyRNN", "RTRL"),
    ("spiral", "LeakyRNN", "BPTT"),
    ("adding", "LeakyRNN", "RTRL"),
    ("delayed_match", "LeakyRNN", "BPTT"),
    ("store_recall", "LIF", "RTRL"),
    ("evidence", "ALIF", "BPTT"),
    ("pattern", "LIF", "BPTT"),
    ("digits", "LeakyRNN", "RTRL"),
    ("spiking_digits", "LIF", "RTRL"),
    ("vowels", "ALIF", "BPTT"),
]


@pytest.mark.parametrize("name, cell, rule", SMOKE)
def test_short_training_run(name, cell, rule):
    task = make(name)
    kwargs = {"w_in_scale": 10.0, "w_rec_scale": 3.0} if cell in ("LIF", "ALIF") else {}
    model = ns.Model(ns.cells.CELLS[cell](task.n_in, 6, **kwargs), task.n_out, loss=task.loss)
    history = ns.train(
        model, ns.rules.RULES[rule](), ns.optim.Adam(lr=0.01), task, steps=300, batch_size=2, seed=0
    )
    assert history.rows and history.rows[-1]["step"] <= 300
    assert np.isfinite(history.final())
    for row in history.rows:
        assert all(np.isfinite(v) for v in row.values())
    held = task.evaluate(model, history.params)
    assert all(np.isfinite(v) for v in held.values())
    if name in ("digits", "spiral"):
        assert {"val_accuracy", "test_accuracy"} <= set(held)
    elif name != "pattern" and name != "copy":
        assert f"test_{task.metric}" in held


def test_digits_learns():
    """A small tanh RNN with BPTT gets well above chance (0.1) on held-out digits in a few seconds."""
    task = ns.tasks.Digits()
    model = ns.Model(ns.cells.LeakyRNN(8, 24), 10)
    history = ns.train(
        model, ns.rules.BPTT(), ns.optim.Adam(lr=0.02), task, steps=8 * 150, batch_size=16, seed=0
    )
    held = task.evaluate(model, history.params)
    assert held["val_accuracy"] > 0.5 and held["test_accuracy"] > 0.5
