"""The rule contract, one registry of rules x cells (like optax's ``_OPTIMIZERS_UNDER_TEST``).

Every rule, through ``ns.sequence_grad`` on every cell kind with batch > 1:
- gradients have the parameters' keys, shapes and dtype, are finite, non-trivial, and zero on
  weights that do not exist;
- zero credit (every step masked out) gives exactly zero gradient;
- equal rules give identical gradients (determinism given seeds); different seeds of a random rule
  give different gradients;
- no state leaks between calls (A, B, A gives A twice);
- the gradient of a batch is the sum over examples: against batch-1 runs for every rule with
  per-example state and deterministic updates; against single-example masks of the same batch for
  all, UORO included (its signs come from one stream per batch, so a batch-1 run of an example draws
  other signs; its batch-1 additivity holds in expectation, see ``docs/theory/uoro.md``);
- the rule is a frozen dataclass that survives a pickle round trip;
- ``cost`` counts exactly the trace entries the rule stores (per sequence).

SnAp(1) and SnAp(2) join the registry when ``ns.rules.SnAp`` exists.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from conftest import make_batch, make_cell, random_params

import neurosnap as ns

T, B, N_HIDDEN, N_IN, N_OUT = 7, 3, 5, 3, 3
CELL_KINDS = ("LeakyRNN", "EGRU", "EGRU-thr", "LIF", "ALIF")


def _rules_under_test():
    rules = {
        "BPTT": ns.rules.BPTT(),
        "BPTT-3": ns.rules.BPTT(truncation=3),
        "RTRL": ns.rules.RTRL(),
        "RTRL-dense": ns.rules.RTRL(sparse=False),
        "UORO": ns.rules.UORO(seed=0),
        "RFLO": ns.rules.RFLO(),
        "RFLO-symmetric": ns.rules.RFLO(feedback="symmetric"),
        "EProp": ns.rules.EProp(),
        "EProp-random": ns.rules.EProp(feedback="random", seed=3),
    }
    snap = getattr(ns.rules, "SnAp", None)
    if snap is not None:
        rules["SnAp-1"] = snap(1)
        rules["SnAp-2"] = snap(2)
    return rules


RULES_UNDER_TEST = _rules_under_test()
RULE_NAMES = tuple(RULES_UNDER_TEST)
# Rules whose batch gradient equals the sum of batch-1 gradients exactly.
BATCH1_ADDITIVE = tuple(name for name in RULE_NAMES if name != "UORO")
# Rules with a seed that changes the gradient.
SEEDED = {
    "UORO": lambda s: ns.rules.UORO(seed=s),
    "RFLO": lambda s: ns.rules.RFLO(seed=s),
    "EProp-random": lambda s: ns.rules.EProp(feedback="random", seed=s),
}


def _problem(kind, seed=0, T=T, B=B):
    model = ns.Model(make_cell(kind, n_in=N_IN, n_hidden=N_HIDDEN, seed=seed), n_out=N_OUT)
    params = random_params(model, seed=seed)
    xs, ys, mask = make_batch(model, T, B, seed=seed + 11)
    return model, params, xs, ys, mask


def _assert_same(g1, g2, *, atol=0.0, rtol=0.0, what=""):
    assert set(g1) == set(g2)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=rtol, atol=atol, err_msg=f"{what}: {k}")


@pytest.fixture(scope="module", params=CELL_KINDS)
def problem(request):
    return _problem(request.param)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_grads_have_params_structure(problem, name):
    model, params, xs, ys, mask = problem
    loss, grads = ns.sequence_grad(model, params, xs, ys, RULES_UNDER_TEST[name], mask=mask)
    loss_ref, _ = ns.sequence_grad(model, params, xs, ys, ns.rules.BPTT(), mask=mask)
    assert loss == loss_ref  # the rule never changes the forward pass
    assert set(grads) == set(params)
    for k in params:
        assert grads[k].shape == params[k].shape, k
        assert grads[k].dtype == params[k].dtype, k
        assert np.all(np.isfinite(grads[k])), k
    assert np.all(grads["cell.w_rec"][:, ~model.cell.mask] == 0), "gradient on a missing weight"
    assert np.abs(grads["cell.w_in"]).max() > 1e-8, "vacuous: no credit reached the input weights"
    assert np.abs(grads["cell.w_rec"]).max() > 1e-8, "vacuous: no credit reached w_rec"


@pytest.mark.parametrize("name", RULE_NAMES)
def test_zero_credit_gives_zero_gradient(problem, name):
    model, params, xs, ys, mask = problem
    loss, grads = ns.sequence_grad(
        model, params, xs, ys, RULES_UNDER_TEST[name], mask=np.zeros_like(mask)
    )
    assert loss == 0.0
    for k, g in grads.items():
        assert np.all(g == 0), k


@pytest.mark.parametrize("name", RULE_NAMES)
def test_deterministic_given_seeds(problem, name):
    model, params, xs, ys, mask = problem
    rule = RULES_UNDER_TEST[name]
    twin = pickle.loads(pickle.dumps(rule))
    _, g1 = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
    _, g2 = ns.sequence_grad(model, params, xs, ys, twin, mask=mask)
    _assert_same(g1, g2, what=name)


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_different_seeds_give_different_grads(problem, name):
    model, params, xs, ys, mask = problem
    _, g0 = ns.sequence_grad(model, params, xs, ys, SEEDED[name](0), mask=mask)
    _, g1 = ns.sequence_grad(model, params, xs, ys, SEEDED[name](1), mask=mask)
    assert np.abs(g0["cell.w_in"] - g1["cell.w_in"]).max() > 1e-8


@pytest.mark.parametrize("name", RULE_NAMES)
def test_no_state_leaks_between_calls(problem, name):
    model, params, xs, ys, mask = problem
    rule = RULES_UNDER_TEST[name]
    _, first = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
    other = make_batch(model, T + 2, B + 1, seed=99)
    ns.sequence_grad(model, params, *other[:2], rule, mask=other[2])
    _, again = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
    _assert_same(first, again, what=name)


@pytest.mark.parametrize("name", BATCH1_ADDITIVE)
def test_batch_gradient_is_sum_of_batch1_gradients(problem, name):
    model, params, xs, ys, mask = problem
    rule = RULES_UNDER_TEST[name]
    _, full = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
    total = {k: np.zeros_like(v) for k, v in full.items()}
    for b in range(xs.shape[1]):
        _, g = ns.sequence_grad(
            model, params, xs[:, b : b + 1], ys[:, b : b + 1], rule, mask=mask[:, b : b + 1]
        )
        for k in total:
            total[k] += g[k]
    _assert_same(full, total, atol=1e-12, rtol=1e-10, what=name)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_batch_gradient_is_sum_of_single_example_masks(problem, name):
    model, params, xs, ys, mask = problem
    rule = RULES_UNDER_TEST[name]
    _, full = ns.sequence_grad(model, params, xs, ys, rule, mask=mask)
    total = {k: np.zeros_like(v) for k, v in full.items()}
    for b in range(xs.shape[1]):
        only_b = np.zeros_like(mask)
        only_b[:, b] = mask[:, b]
        _, g = ns.sequence_grad(model, params, xs, ys, rule, mask=only_b)
        for k in total:
            total[k] += g[k]
    _assert_same(full, total, atol=1e-12, rtol=1e-10, what=name)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_float32_model_gives_float32_gradients_close_to_float64(name):
    rule = RULES_UNDER_TEST[name]
    grads = {}
    for dtype in (np.float64, np.float32):
        model = ns.Model(
            make_cell("LeakyRNN", n_in=N_IN, n_hidden=N_HIDDEN), n_out=N_OUT, dtype=dtype
        )
        params = {k: v.astype(dtype) for k, v in random_params(model).items()}
        xs, ys, mask = make_batch(model, T, B, seed=11)
        _, grads[dtype] = ns.sequence_grad(model, params, xs.astype(dtype), ys, rule, mask=mask)
    for k, g in grads[np.float32].items():
        assert g.dtype == np.float32, k
        if name != "UORO":  # UORO's signs are seeded from the parameters' bytes
            np.testing.assert_allclose(g, grads[np.float64][k], rtol=1e-3, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_is_a_frozen_dataclass_that_pickles(name):
    rule = RULES_UNDER_TEST[name]
    assert dataclasses.is_dataclass(rule)
    clone = pickle.loads(pickle.dumps(rule))
    assert clone == rule and hash(clone) == hash(rule) and type(clone) is type(rule)
    field = dataclasses.fields(rule)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(rule, field, getattr(rule, field))


TRACES = {
    "UORO": ("s_tilde", "theta_tilde"),
    "RFLO": ("eligibility",),
    "RFLO-symmetric": ("eligibility",),
    "EProp": ("eligibility",),
    "EProp-random": ("eligibility",),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_cost_counts_stored_trace_entries(problem, name):
    model, params, xs, ys, mask = problem
    rule = RULES_UNDER_TEST[name]
    cell, layout = model.cell, model.cell.layout
    state = rule.init(model, params, B)
    cell_state = cell.initial_state(B)
    cp = model.cell_params(params)
    macs = []
    for t in range(3):
        cell_state, y, record = cell.step_record(cp, cell_state, xs[t])
        _, _, dlogits, dy = model.step_loss(params, y, ys[t], mask[t])
        state, _ = rule.step(
            state, record, dy[:, None, :] * record.dout, params=params, dlogits=dlogits
        )
        cost = rule.cost(state, record)
        traces = [getattr(state, k) for k in TRACES[name]]
        assert cost["influence_size"] == sum(a[0].size for a in traces)  # per sequence
        assert cost["influence_nnz"] == sum(np.count_nonzero(a) for a in traces) / B
        assert 0 < cost["influence_nnz"] <= cost["influence_size"]
        assert cost["macs"] > 0
        macs.append(cost["macs"])
    S, P = cell.n_state, layout.size
    rtrl_dense_macs = (S * cell.n_hidden) ** 2 * P  # J_t M_{t-1} of dense RTRL alone
    assert max(macs) < rtrl_dense_macs


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ns.rules.UORO(seed=-1), "seed"),
        (lambda: ns.rules.UORO(seed=1.5), "seed"),
        (lambda: ns.rules.RFLO(feedback="transposed"), "feedback"),
        (lambda: ns.rules.EProp(feedback=None), "feedback"),
        (lambda: ns.rules.EProp(seed="0"), "seed"),
    ],
)
def test_bad_hyperparameters_name_the_argument(make, message):
    with pytest.raises((TypeError, ValueError), match=f"^{message}"):
        make()


@pytest.mark.parametrize("rule", [ns.rules.RFLO(), ns.rules.EProp(feedback="random")])
def test_random_feedback_needs_dlogits(rule):
    model, params, xs, ys, mask = _problem("LeakyRNN")
    state = rule.init(model, params, B)
    cell = model.cell
    _, _, record = cell.step_record(model.cell_params(params), cell.initial_state(B), xs[0])
    with pytest.raises(ValueError, match="^dlogits"):
        rule.step(state, record, np.zeros_like(record.dout), params=params)
