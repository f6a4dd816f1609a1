"""Resume is exact: a run cut anywhere (inside a sequence too) and resumed equals an uninterrupted
run bit for bit, and a resume with any other setting is refused, naming what differs."""

import numpy as np
import pytest

import neurosnap as ns
from neurosnap import checkpoint as ckpt


def _task(name):
    cls = ns.tasks.TASKS[name]
    if name == "copy":
        return cls(start_length=3)
    return cls.small() if hasattr(cls, "small") else cls()


def _length(task):
    return task.sample(np.random.default_rng(0), 1).xs.shape[0]


def _model(task, n=6):
    cell = ns.cells.LeakyRNN(task.n_in, n, 0.5)
    return ns.Model(cell, task.n_out, loss=task.loss)


def _train(task_name, rule, steps, **kw):
    task = _task(task_name)
    return ns.train(_model(task), rule, ns.optim.Adam(1e-2), task, steps=steps, seed=1, **kw)


def _same(a, b):
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall"} for r in rows]  # noqa: E731
    assert strip(a.rows) == strip(b.rows)


@pytest.mark.parametrize("task_name", sorted(ns.tasks.TASKS))
@pytest.mark.parametrize("rule", [ns.rules.EProp(), ns.rules.RTRL()], ids=["eprop", "rtrl"])
def test_budget_ending_inside_a_sequence_resumes_bit_identically(tmp_path, task_name, rule):
    length = _length(_task(task_name))
    cut = length + length // 2 + 1  # inside the second sequence
    if length < 3:
        cut = length + 1
    total = 3 * length + 2
    # checkpoint_every small enough that a periodic checkpoint falls due inside the cut sequence
    first = _train(task_name, rule, cut, checkpoint_dir=tmp_path, checkpoint_every=max(1, cut - 1))
    assert first.rows  # the first run did count some steps
    resumed = _train(task_name, rule, total, checkpoint_dir=tmp_path, resume=True)
    _same(_train(task_name, rule, total), resumed)


def test_the_issue_example_pattern_eprop(tmp_path):
    """LeakyRNN n=8, pattern task of length 100, e-prop, checkpoint_every=50: 150 then 300 steps."""
    task = ns.tasks.Pattern(n_inputs=10, dt=0.01, duration=1.0)
    assert _length(task) == 100

    def run(steps, **kw):
        model = ns.Model(ns.cells.LeakyRNN(10, 8), 1, loss="mse")
        return ns.train(
            model,
            ns.rules.EProp(),
            ns.optim.Adam(1e-2),
            ns.tasks.Pattern(n_inputs=10, dt=0.01, duration=1.0),
            steps=steps,
            **kw,
        )

    run(150, checkpoint_dir=tmp_path, checkpoint_every=50)
    _same(run(300), run(300, checkpoint_dir=tmp_path, resume=True))


def _egru_run(tmp_path, cell_kw=None, task_kw=None, rule=None, opt=None, **kw):
    model = ns.Model(ns.cells.EGRU(4, 8, **(cell_kw or {})), n_out=2)
    return ns.train(
        model,
        rule or ns.rules.RTRL(),
        opt or ns.optim.Adam(1e-2),
        ns.tasks.Copy(**(task_kw or {})),
        seed=3,
        checkpoint_dir=tmp_path,
        **kw,
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"cell_kw": {"threshold": 0.5}},
            r"model\.cell\.threshold: 0\.3 in the checkpoint, 0\.5 now",
        ),
        ({"cell_kw": {"gate": ns.gates.Smooth(beta=5.0)}}, r"model\.cell\.gate\.type"),
        (
            {"cell_kw": {"gate": ns.gates.Heaviside(ns.gates.Triangle(gamma=0.7, width=0.3))}},
            r"model\.cell\.gate\.surrogate\.width: 0\.5 in the checkpoint, 0\.3 now",
        ),
        ({"cell_kw": {"detach_reset": True}}, r"model\.cell\.detach_reset"),
        ({"task_kw": {"max_length": 50}}, r"task\.max_length: 100 in the checkpoint, 50 now"),
        ({"rule": ns.rules.RTRL(sparse=False)}, r"rule\.sparse: True in the checkpoint, False now"),
        ({"rule": ns.rules.SnAp(n=1)}, r"rule\.type: 'RTRL' in the checkpoint, 'SnAp' now"),
        ({"opt": ns.optim.Adam(2e-2)}, r"opt\.lr: 0\.01 in the checkpoint, 0\.02 now"),
        ({"opt": ns.optim.Adam(1e-2, b2=0.99)}, r"opt\.b2"),
        ({"update_every": 2}, r"update_every: 1 in the checkpoint, 2 now"),
        ({"batch_size": 2}, r"batch_size"),
        ({"log_every": 100}, r"log_every"),
    ],
)
def test_resume_refuses_any_changed_setting_and_names_it(tmp_path, change, expected):
    _egru_run(tmp_path, steps=200)
    with pytest.raises(ckpt.CheckpointError, match=expected):
        _egru_run(tmp_path, steps=400, resume=True, **change)


def test_resume_refuses_changed_spiking_settings(tmp_path):
    def run(**cell_kw):
        model = ns.Model(ns.cells.LIF(10, 6, **cell_kw), 1, loss="mse")
        return ns.train(
            model,
            ns.rules.EProp(),
            ns.optim.Adam(1e-2),
            ns.tasks.Pattern.small(n_inputs=10),
            steps=150,
            checkpoint_dir=tmp_path,
            resume=True,
        )

    run()
    with pytest.raises(ckpt.CheckpointError) as info:
        run(tau_mem=0.02, reset="subtract")
    assert "model.cell.tau_mem" in str(info.value) and "model.cell.reset" in str(info.value)


def test_resume_with_the_same_settings_is_accepted(tmp_path):
    _egru_run(tmp_path, steps=200, cell_kw={"threshold": 0.4})
    history = _egru_run(tmp_path, steps=300, cell_kw={"threshold": 0.4}, resume=True)
    assert history.rows[-1]["step"] >= 300


def test_cells_and_tasks_describe_every_setting():
    cell = ns.cells.ALIF(3, 5, tau_mem=0.03)
    assert (
        "tau_mem=0.03" in repr(cell)
        and "tau_adapt=" in repr(cell)
        and "gate=Heaviside" in repr(cell)
    )
    config = cell.config()
    assert config["type"] == "ALIF" and config["v_th"] == 1.0 and config["seed"] == 0
    task = ns.tasks.DelayedMatch(delay=4)
    assert task.config() == {
        "type": "DelayedMatch",
        "delay": 4,
        "stim_duration": 3,
        "report": 3,
        "onset": 1,
        "eval_size": 256,
    }
    assert repr(task).startswith("DelayedMatch(delay=4,")
