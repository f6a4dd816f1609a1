"""Bad input fails early with ValueError/TypeError whose message names the offending argument."""

from __future__ import annotations

import numpy as np
import pytest

import neurosnap as ns

T, B, N_IN, N_OUT = 5, 2, 3, 3
ERR = (ValueError, TypeError)


def _model(loss="cross_entropy", cell=None):
    cell = cell or ns.cells.EGRU(N_IN, 4, density=0.5)
    return ns.Model(cell, n_out=N_OUT, loss=loss)


def _good(loss="cross_entropy"):
    model = _model(loss)
    params = model.init(seed=0)
    xs = np.random.default_rng(0).standard_normal((T, B, N_IN))
    if loss == "cross_entropy":
        ys = np.zeros((T, B), dtype=np.int64)
    else:
        ys = np.zeros((T, B, N_OUT))
    return model, params, xs, ys


def _grad(model, params, xs, ys, rule=None, **kw):
    return ns.sequence_grad(model, params, xs, ys, rule or ns.rules.RTRL(), **kw)


def test_good_input_passes():
    for loss in ("cross_entropy", "mse"):
        model, params, xs, ys = _good(loss)
        loss_value, grads = _grad(model, params, xs, ys, mask=np.ones((T, B), dtype=bool))
        assert np.isfinite(loss_value) and set(grads) == set(params)
        model.run(params, xs)
    # accepted conversions: lists, 0/1 masks, numpy integer scalars
    model, params, xs, ys = _good()
    _grad(model, params, xs.tolist(), ys.tolist(), mask=np.ones((T, B), dtype=np.int64))
    ns.cells.LIF(np.int64(2), np.int64(3), np.float32(0.5))


# -- xs -------------------------------------------------------------------------------------------

BAD_XS = {
    "ndim2": np.zeros((T, N_IN)),
    "ndim4": np.zeros((T, B, N_IN, 1)),
    "scalar": 1.0,
    "wrong_n_in": np.zeros((T, B, N_IN + 1)),
    "empty_T": np.zeros((0, B, N_IN)),
    "object": np.zeros((T, B, N_IN), dtype=object),
    "strings": np.full((T, B, N_IN), "a"),
    "complex": np.zeros((T, B, N_IN), dtype=complex),
    "nan": np.full((T, B, N_IN), np.nan),
    "inf": np.full((T, B, N_IN), np.inf),
    "none": None,
    "dict": {"x": 1},
}


@pytest.mark.parametrize("name", list(BAD_XS))
def test_bad_xs(name):
    model, params, _, ys = _good()
    xs = BAD_XS[name]
    with pytest.raises(ERR, match="xs"):
        _grad(model, params, xs, ys)
    with pytest.raises(ERR, match="xs"):
        model.run(params, xs)


def test_xs_partial_nan():
    model, params, xs, ys = _good()
    xs[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="xs"):
        _grad(model, params, xs, ys)


# -- ys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "float",
        "bool",
        "wrong_T",
        "wrong_B",
        "3d",
        "too_big",
        "negative",
        "strings",
        "object",
        "none",
    ],
)
def test_bad_ys_cross_entropy(bad):
    model, params, xs, ys = _good("cross_entropy")
    ys = {
        "float": ys.astype(float),
        "bool": ys.astype(bool),
        "wrong_T": ys[:-1],
        "wrong_B": ys[:, :1],
        "3d": ys[..., None],
        "too_big": np.full_like(ys, N_OUT),
        "negative": np.full_like(ys, -1),
        "strings": np.full(ys.shape, "a"),
        "object": ys.astype(object),
        "none": None,
    }[bad]
    with pytest.raises(ERR, match="ys"):
        _grad(model, params, xs, ys)


@pytest.mark.parametrize("bad", ["nan", "inf", "wrong_n_out", "2d", "complex", "object"])
def test_bad_ys_mse(bad):
    model, params, xs, ys = _good("mse")
    ys = {
        "nan": np.full_like(ys, np.nan),
        "inf": np.full_like(ys, -np.inf),
        "wrong_n_out": np.zeros((T, B, N_OUT + 1)),
        "2d": np.zeros((T, B)),
        "complex": ys.astype(complex),
        "object": ys.astype(object),
    }[bad]
    with pytest.raises(ERR, match="ys"):
        _grad(model, params, xs, ys)


# -- mask -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["wrong_shape", "3d", "half", "two", "nan", "strings", "complex", "object", "empty"]
)
def test_bad_mask(bad):
    model, params, xs, ys = _good()
    mask = {
        "wrong_shape": np.ones((T, B + 1), dtype=bool),
        "3d": np.ones((T, B, 1), dtype=bool),
        "half": np.full((T, B), 0.5),
        "two": np.full((T, B), 2),
        "nan": np.full((T, B), np.nan),
        "strings": np.full((T, B), "1"),
        "complex": np.ones((T, B), dtype=complex),
        "object": np.ones((T, B), dtype=object),
        "empty": np.ones((0,), dtype=bool),
    }[bad]
    with pytest.raises(ERR, match="mask"):
        _grad(model, params, xs, ys, mask=mask)


# -- params ---------------------------------------------------------------------------------------


def _bad_params(bad, params, model):
    p = dict(params)
    if bad == "missing":
        del p["cell.w_in"]
    elif bad == "extra":
        p["cell.extra"] = np.zeros(3)
    elif bad == "extra_nonstring_keys":
        p[1] = 0
        p[("a",)] = 0
    elif bad == "renamed":
        p["w_in"] = p.pop("cell.w_in")
    elif bad == "shape":
        p["cell.w_rec"] = np.zeros((3, 4, 5))
    elif bad == "shape_readout":
        p["readout.weight"] = p["readout.weight"].T.copy()
    elif bad == "scalar":
        p["readout.bias"] = np.float64(0.0)
    elif bad == "list":
        p["readout.bias"] = [0.0] * N_OUT
    elif bad == "nan":
        p["cell.w_in"] = p["cell.w_in"].copy()
        p["cell.w_in"][0, 0, 0] = np.nan
    elif bad == "inf":
        p["readout.weight"] = np.full_like(p["readout.weight"], np.inf)
    elif bad == "int":
        p["readout.bias"] = np.zeros(N_OUT, dtype=np.int64)
    elif bad == "float32":
        p["cell.bias"] = p["cell.bias"].astype(np.float32)
    elif bad == "complex":
        p["cell.bias"] = p["cell.bias"].astype(complex)
    elif bad == "object":
        p["cell.bias"] = p["cell.bias"].astype(object)
    elif bad == "off_mask_weight":
        # a weight where the connectivity mask says none exists: sparse RTRL would silently
        # disagree with dense RTRL/BPTT, so it must be rejected
        w = p["cell.w_rec"].copy()
        i, j = np.argwhere(~model.cell.mask)[0]
        w[0, i, j] = 0.5
        p["cell.w_rec"] = w
    else:
        raise AssertionError(bad)
    return p


PARAM_CASES = {
    "missing": "params",
    "extra": "params",
    "extra_nonstring_keys": "params",
    "renamed": "params",
    "shape": "cell.w_rec",
    "shape_readout": "readout.weight",
    "scalar": "readout.bias",
    "list": "readout.bias",
    "nan": "cell.w_in",
    "inf": "readout.weight",
    "int": "readout.bias",
    "float32": "cell.bias",
    "complex": "cell.bias",
    "object": "cell.bias",
    "off_mask_weight": "cell.w_rec",
}


@pytest.mark.parametrize("bad", list(PARAM_CASES))
def test_bad_params(bad):
    model, params, xs, ys = _good()
    p = _bad_params(bad, params, model)
    with pytest.raises(ERR, match="params"):
        _grad(model, p, xs, ys)
    with pytest.raises(ERR, match=PARAM_CASES[bad]):
        model.run(p, xs)


@pytest.mark.parametrize("params", [None, [1, 2], np.zeros(3), "params"])
def test_params_not_a_dict(params):
    model, _, xs, ys = _good()
    with pytest.raises(TypeError, match="params"):
        _grad(model, params, xs, ys)


# -- rule and model -------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [None, "RTRL", ns.rules.RTRL, object(), ns.optim.SGD])
def test_rule_not_a_rule(rule):
    model, params, xs, ys = _good()
    with pytest.raises(TypeError, match="rule"):
        ns.sequence_grad(model, params, xs, ys, rule)


def test_model_not_a_model():
    _, params, xs, ys = _good()
    with pytest.raises(TypeError, match="model"):
        ns.sequence_grad("model", params, xs, ys, ns.rules.RTRL())


def test_ys_required():
    model, params, xs, _ = _good()
    with pytest.raises(ValueError, match="ys"):
        _grad(model, params, xs, None)


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        (dict(n_out=0), "n_out"),
        (dict(n_out=-2), "n_out"),
        (dict(n_out=2.0), "n_out"),
        (dict(n_out=True), "n_out"),
        (dict(n_out=1), "n_out"),  # cross entropy needs two classes
        (dict(n_out=3, loss="hinge"), "loss"),
        (dict(n_out=3, loss="MSE"), "loss"),
        (dict(n_out=3, loss=None), "loss"),
        (dict(n_out=3, dtype=np.int32), "dtype"),
        (dict(n_out=3, dtype=np.float16), "dtype"),
        (dict(n_out=3, dtype="banana"), "dtype"),
    ],
)
def test_bad_model_args(kwargs, arg):
    with pytest.raises(ERR, match=arg):
        ns.Model(ns.cells.LeakyRNN(2, 3), **kwargs)


@pytest.mark.parametrize("cell", [None, "EGRU", ns.cells.EGRU])
def test_model_cell_not_a_cell(cell):
    with pytest.raises(TypeError, match="cell"):
        ns.Model(cell, n_out=2)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_bad_init_seed(seed):
    with pytest.raises(ERR, match="seed"):
        _model().init(seed=seed)


# -- cells ----------------------------------------------------------------------------------------

CELL_CLASSES = [ns.cells.LeakyRNN, ns.cells.EGRU, ns.cells.LIF, ns.cells.ALIF]


@pytest.mark.parametrize("cls", CELL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "args,arg",
    [
        ((3, 0), "n_hidden"),
        ((3, -4), "n_hidden"),
        ((3, 2.5), "n_hidden"),
        ((3, True), "n_hidden"),
        ((3, "4"), "n_hidden"),
        ((0, 4), "n_in"),
        ((-1, 4), "n_in"),
        ((None, 4), "n_in"),
        ((3, 4, 0.0), "density"),
        ((3, 4, -0.1), "density"),
        ((3, 4, 1.5), "density"),
        ((3, 4, float("nan")), "density"),
        ((3, 4, float("inf")), "density"),
        ((3, 4, "0.5"), "density"),
    ],
    ids=str,
)
def test_bad_cell_sizes(cls, args, arg):
    with pytest.raises(ERR, match=arg):
        cls(*args)


@pytest.mark.parametrize("cls", CELL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs,arg",
    [
        (dict(seed=-1), "seed"),
        (dict(seed=0.5), "seed"),
        (dict(w_in_scale=-1.0), "w_in_scale"),
        (dict(w_rec_scale=float("nan")), "w_rec_scale"),
        (dict(autapses="yes"), "autapses"),
        (dict(bias=1), "bias"),
        (dict(unknown_option=1), "unknown_option"),
    ],
    ids=str,
)
def test_bad_cell_common_kwargs(cls, kwargs, arg):
    with pytest.raises(ERR, match=arg):
        cls(3, 4, **kwargs)


@pytest.mark.parametrize(
    "cls,kwargs,arg",
    [
        (ns.cells.LeakyRNN, dict(alpha=0.0), "alpha"),
        (ns.cells.LeakyRNN, dict(alpha=1.5), "alpha"),
        (ns.cells.LeakyRNN, dict(alpha=float("nan")), "alpha"),
        (ns.cells.EGRU, dict(threshold=0.0), "threshold"),
        (ns.cells.EGRU, dict(threshold=-1.0), "threshold"),
        (ns.cells.EGRU, dict(detach_reset=1), "detach_reset"),
        (ns.cells.EGRU, dict(gate="smooth"), "gate"),
        (ns.cells.EGRU, dict(gate=ns.gates.Triangle()), "gate"),
        (ns.cells.LIF, dict(dt=0.0), "dt"),
        (ns.cells.LIF, dict(dt="1e-3"), "dt"),
        (ns.cells.LIF, dict(tau_mem=1e-4), "tau_mem"),
        (ns.cells.LIF, dict(tau_syn=-1.0), "tau_syn"),
        (ns.cells.LIF, dict(v_th=float("inf")), "v_th"),
        (ns.cells.LIF, dict(v_leak=float("nan")), "v_leak"),
        (ns.cells.LIF, dict(v_reset=None), "v_reset"),
        (ns.cells.LIF, dict(reset="hard"), "reset"),
        (ns.cells.LIF, dict(reset=0), "reset"),
        (ns.cells.LIF, dict(detach_reset="no"), "detach_reset"),
        (ns.cells.LIF, dict(gate=ns.gates.FastSigmoid()), "gate"),
        (ns.cells.ALIF, dict(tau_adapt=1e-4), "tau_adapt"),
        (ns.cells.ALIF, dict(beta=-0.5), "beta"),
        (ns.cells.ALIF, dict(detach_adaptation=0), "detach_adaptation"),
        (ns.cells.ALIF, dict(reset="soft"), "reset"),
    ],
    ids=str,
)
def test_bad_cell_hyperparameters(cls, kwargs, arg):
    with pytest.raises(ERR, match=arg):
        cls(3, 4, **kwargs)


def test_autapses_need_two_units():
    with pytest.raises(ValueError, match="n_hidden"):
        ns.cells.LIF(3, 1)  # LIF defaults to autapses=False


# -- gates and rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: ns.gates.Heaviside("sigmoidal"), "surrogate"),
        (lambda: ns.gates.Heaviside(surrogate=3), "surrogate"),
        (lambda: ns.gates.Heaviside(surrogate=None), "surrogate"),
        (lambda: ns.gates.Smooth(0.0), "beta"),
        (lambda: ns.gates.Smooth(-2.0), "beta"),
        (lambda: ns.gates.Smooth(float("nan")), "beta"),
        (lambda: ns.gates.Smooth("5"), "beta"),
        (lambda: ns.gates.Triangle(gamma=0.0), "gamma"),
        (lambda: ns.gates.Triangle(width=-1.0), "width"),
        (lambda: ns.gates.FastSigmoid(slope=0.0), "slope"),
        (lambda: ns.gates.FastSigmoid(gamma=float("inf")), "gamma"),
    ],
    ids=str,
)
def test_bad_gates(make, arg):
    with pytest.raises(ERR, match=arg):
        make()


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: ns.rules.BPTT(truncation=0), "truncation"),
        (lambda: ns.rules.BPTT(truncation=-3), "truncation"),
        (lambda: ns.rules.BPTT(truncation=2.5), "truncation"),
        (lambda: ns.rules.BPTT(truncation="10"), "truncation"),
        (lambda: ns.rules.RTRL(sparse=1), "sparse"),
        (lambda: ns.rules.RTRL(sparse="yes"), "sparse"),
    ],
    ids=str,
)
def test_bad_rule_hyperparameters(make, arg):
    with pytest.raises(ERR, match=arg):
        make()
