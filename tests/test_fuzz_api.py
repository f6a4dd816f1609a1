"""Property-based fuzzing of the public API with invalid (and valid) arguments.

Every call either succeeds or raises ValueError/TypeError whose message names an argument it was
given; never another exception type, never a silent NaN. The number of cases each property ran is
printed with ``pytest -s``.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurosnap as ns
from neurosnap import config

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
COUNTS = {}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(0, 3), max_size=2),
)


def _check_named(exc, names):
    assert isinstance(exc, (ValueError, TypeError)), repr(exc)
    message = str(exc)
    assert any(name in message for name in names), f"{message!r} names none of {names}"


@SETTINGS
@given(
    cls=st.sampled_from(sorted(ns.cells.CELLS)),
    n_in=junk,
    n_hidden=junk,
    density=junk,
    extra=st.dictionaries(
        st.sampled_from(
            ["alpha", "threshold", "tau_mem", "dt", "beta", "v_th", "reset", "seed", "w_in_scale"]
        ),
        junk,
        max_size=2,
    ),
)
def test_cell_constructors(cls, n_in, n_hidden, density, extra):
    COUNTS["cells"] = COUNTS.get("cells", 0) + 1
    kwargs = {k: v for k, v in extra.items() if k in config.keywords(ns.cells.CELLS[cls])}
    try:
        ns.cells.CELLS[cls](n_in, n_hidden, density, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the property is about the exception type
        _check_named(exc, ["n_in", "n_hidden", "density", *kwargs])


def _model():
    return ns.Model(ns.cells.EGRU(3, 4), n_out=2)


shapes = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128, object])
fill = st.sampled_from([0.0, 1.0, math.nan, math.inf, -1e300])


@SETTINGS
@given(
    xs_shape=shapes,
    xs_dtype=dtypes,
    xs_fill=fill,
    ys_shape=shapes,
    ys_int=st.booleans(),
    mask_shape=st.one_of(st.none(), shapes),
    rule=st.sampled_from(["RTRL", "BPTT", "EProp", "UORO"]),
)
def test_sequence_grad_inputs(xs_shape, xs_dtype, xs_fill, ys_shape, ys_int, mask_shape, rule):
    COUNTS["sequence_grad"] = COUNTS.get("sequence_grad", 0) + 1
    model = _model()
    params = model.init(0)
    with np.errstate(all="ignore"):
        xs = np.full(xs_shape, xs_fill).astype(xs_dtype)
    ys = np.zeros(ys_shape, dtype=np.int64 if ys_int else np.float64)
    mask = None if mask_shape is None else np.ones(mask_shape, dtype=bool)
    try:
        with np.errstate(all="ignore"):
            loss, grads = ns.sequence_grad(model, params, xs, ys, ns.rules.RULES[rule](), mask=mask)
    except Exception as exc:  # noqa: BLE001
        _check_named(exc, ["xs", "ys", "mask"])
        return
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


VALID = {
    "model": {"cell": "EGRU", "n_hidden": 4},
    "task": {"name": "copy"},
    "rule": {"name": "RTRL"},
    "optimizer": {"name": "Adam", "lr": 0.01},
    "train": {"steps": 10},
}
paths = st.sampled_from(
    [
        "model.cell",
        "model.n_hidden",
        "model.density",
        "model.dtype",
        "model.cell_options.threshold",
        "model.cell_options.gate",
        "task.name",
        "task.window",
        "task.start_length",
        "rule.name",
        "rule.sparse",
        "optimizer.name",
        "optimizer.lr",
        "train.steps",
        "train.seed",
        "train.batch_size",
        "model.bogus",
        "extra.section",
        "rule",
    ]
)


@SETTINGS
@given(changes=st.lists(st.tuples(paths, junk), min_size=1, max_size=3))
def test_config_build(changes):
    COUNTS["config"] = COUNTS.get("config", 0) + 1
    cfg = {k: dict(v) for k, v in VALID.items()}
    touched = []
    for path, value in changes:
        keys = path.split(".")
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
        node[keys[-1]] = value
        touched += keys
    try:
        model, rule, opt, task, kwargs = config.build(cfg)
    except config.ConfigError as exc:
        _check_named(exc, touched + ["[model]", "[task]", "[rule]", "[optimizer]", "[train]"])
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"config.build raised {exc!r} instead of ConfigError")
    try:
        ns.train(model, rule, opt, task, **kwargs)
    except Exception as exc:  # noqa: BLE001
        _check_named(exc, touched)


@pytest.fixture(autouse=True, scope="module")
def _report_counts():
    yield
    print("\nfuzz cases run:", COUNTS)
