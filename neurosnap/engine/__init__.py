"""The compiled online engine: a whole chunk of time steps in one numba call.

``ns.sequence_grad(..., engine="compiled")`` (the default) runs a whole sequence, and
``ns.train(..., engine="compiled")`` a whole batch of sequences' time steps including the optimizer
updates every ``update_every`` steps, inside compiled code with no Python per time step: cell step
and step record, readout, loss and credit, the rule's update, gradient accumulation and SGD / Adam.
``engine="reference"`` selects the per-step NumPy path (cells' ``step_record``, rules' ``step``),
which stays the readable reference; both give the same numbers (tested to 1e-12 in float64,
``tests/test_engine.py``).

Coverage: the cells LeakyRNN, EGRU, LIF, ALIF with ``Heaviside`` (triangle or fast-sigmoid
surrogate) or ``Smooth`` gates; the rules RTRL (sparse and dense), SnAp-n, RFLO, e-prop, UORO and
BPTT (any truncation); the optimizers SGD and Adam. Anything else (a subclassed cell, a custom
surrogate or optimizer, STDP-family rules, extra parameters) runs on the reference path with the
same results; :func:`supports` tells which path a combination takes. Stats (``stats=True``) need
the per-step record and always run on the reference path.

Differences from the reference beyond round-off: UORO reseeds its signs from a digest of the
parameters at every sequence, so once an update has made the engines' parameters differ in the last
bits, training runs draw different signs (sequence gradients still agree); the compiled training
loop checks the accumulated gradient for NaN/inf when it applies an update (the reference checks
every step's gradient), with the same error message.

Recurrent weights: the compiled loops read and update ``w_rec`` as ``(G, nnz)`` values of the
existing synapses in the graph's edge order, the storage of a cell with ``storage="sparse"``
(memory and work of every rule but exact RTRL and SnAp-n follow the synapses, never ``n^2``); a
dense ``(G, n, n)`` array and its optimizer state are gathered into that form before a call and
scattered back after it (``O(G nnz)``), so both storages run the same compiled code and give the
same synapse values.

Static structure (the connectivity graph, the parameter layout, SnAp row sets and block plans) is
built once per (cell, rule, batch size) and cached; influence buffers and scratch arrays belong to
each call, so concurrent calls from several threads do not share mutable state.

Numba compiles each loop once per dtype (``cache=True``: later processes load it from disk); there
is one loop per rule family (:mod:`neurosnap.engine.loops`, one module per family): traces (SnAp-1, RFLO, e-prop),
influence (RTRL, SnAp-n), UORO and BPTT.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ..core.arrays import kernel_array
from . import codes

#: the values of ``engine=``
ENGINES = ("compiled", "reference")

#: exact RTRL uses BLAS on dense steps (``neurosnap.rules.rtrl.DENSE_SWITCH``) only when the
#: influence has at least this many rows ``S n``: below, building the dense Jacobian and the call
#: cost more than the sparse kernel saves (EGRU n=16: kernel 0.031 ms/step, BLAS 0.045; n=32
#: equal; measured on the benchmark machine, see docs/benchmarks.md).
BLAS_MIN_ROWS = 32

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def check_engine(engine) -> str:
    """Validate the ``engine`` argument: one of :data:`ENGINES`."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def _rule_family(rule):
    from ..rules import BPTT, RFLO, RTRL, UORO, EProp, SnAp

    kind = type(rule)
    if kind is RTRL:
        return "influence"
    if kind is SnAp:
        return "trace" if rule.n == 1 else "influence"
    if kind in (RFLO, EProp):
        return "trace"
    if kind is UORO:
        return "uoro"
    if kind is BPTT:
        return "bptt"
    return None


def supports(model, rule, opt=None, params=None) -> bool:
    """Whether the compiled engine runs this combination (else the reference path does).

    Args:
        model: a :class:`~neurosnap.model.Model`.
        rule: a learning rule.
        opt: optimizer (training) or ``None`` (``sequence_grad``).
        params: parameter dict (its keys are checked: extra parameters are not compiled).
    """
    from ..optim import SGD, Adam

    if model.cell.compiled_spec() is None or _rule_family(rule) is None:
        return False
    if opt is not None and type(opt) not in (SGD, Adam):
        return False
    if params is not None and set(params) != set(model.param_shapes()):
        return False
    return set(model.param_shapes()) <= {
        "cell.w_rec",
        "cell.w_in",
        "cell.bias",
        "readout.weight",
        "readout.bias",
    }


# -------------------------------------------------------------------------------------------------
# static structure, built once per (cell, key)
# -------------------------------------------------------------------------------------------------
def _static(cell, key, build):
    with _LOCK:
        per_cell = _CACHE.setdefault(cell, {})
        if key not in per_cell:
            per_cell[key] = build()
        return per_cell[key]


def _graph(cell):
    def build():
        g = cell.graph
        return (g.indptr, g.indices, g.csc_edge, g.edge_pre, g.edge_post, g.self_edge, g.in_ptr)

    return _static(cell, ("graph",), build)


def _layout(cell):
    def build():
        lay = cell.layout
        _check_structure(cell)
        return (
            lay.kind.astype(np.int64),
            lay.gate.astype(np.int64),
            lay.post.astype(np.int64),
            lay.pre.astype(np.int64),
        )

    return _static(cell, ("layout",), build)


def _check_structure(cell):
    """The compiled loops visit the columns of :class:`~neurosnap.core.layout.ParamLayout` unit by
    unit assuming its order: per gate the recurrent weights in the graph's edge (CSR) order, then
    per gate the input weights ``(i, k)`` row-major, then per gate the biases. Checked once per
    cell."""
    from ..core.layout import BIAS, INP, REC

    lay, G, n, k = cell.layout, cell.n_gates, cell.n_hidden, cell.n_in
    post, pre = cell.graph.edge_post, cell.graph.edge_pre
    ii, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    parts = [(REC, g, post, pre) for g in range(G)]
    parts += [(INP, g, ii.ravel(), kk.ravel()) for g in range(G)]
    if cell.has_bias:
        parts += [(BIAS, g, np.arange(n), np.zeros(n, np.int64)) for g in range(G)]
    expect = [
        np.concatenate([np.full(len(p[2]), p[j]) if j < 2 else p[j] for p in parts])
        for j in range(4)
    ]
    got = [lay.kind, lay.gate, lay.post, lay.pre]
    if any(
        not np.array_equal(np.asarray(a, np.int64), np.asarray(b, np.int64))
        for a, b in zip(expect, got, strict=True)
    ):
        raise RuntimeError("ParamLayout's column order changed; update neurosnap.engine.loops")


def _plan(cell, order, batch):
    """Block plan of exact RTRL (``order == 0``) or SnAp-``order`` as ``(arrays, perm, sizes,
    exact)``; ``exact``: the plan is all of ``M`` (stored as ``(B, S, n, P)``)."""

    def build():
        from ..sparse import kernels, patterns
        from ..sparse.kernels import BlockPlan

        graph = cell.graph
        S = cell.n_state
        plan, exact = None, True
        if order >= 2:
            rows = patterns.snap_rows(cell.mask, order)
            if not all(len(r) == cell.n_hidden for r in rows):
                plan, exact = BlockPlan.from_rowsets(cell.layout, graph, S, batch, rows), False
        if plan is None:  # exact RTRL (or a saturated SnAp pattern)
            plan = BlockPlan.dense(cell.layout, graph, S, batch, chunk=kernels.CHUNK)
        arrays = (
            plan.blk_base,
            plan.blk_bstride,
            plan.blk_rstride,
            plan.blk_ncol,
            plan.blk_col0,
            plan.blk_rowset,
            plan.rs_rowptr,
            plan.rs_units,
            plan.rs_eptr,
            plan.rs_ejj,
            plan.rs_ee,
            plan.col_kind.astype(np.int64),
            plan.col_gate.astype(np.int64),
            plan.col_post.astype(np.int64),
            plan.col_pre.astype(np.int64),
            plan.col_row.astype(np.int64),
            int(plan.size),
        )
        n_src = S * len(plan.rs_units) * S + S * S * len(plan.rs_ee)
        sizes = (S, max(graph.nnz, 1), cell.n_hidden, S * len(plan.rs_units) + 1, max(n_src, 1))
        return arrays, plan.perm.astype(np.int64), sizes, exact

    return _static(cell, ("plan", order, batch), build)


def _feedback(model, rule):
    from ..rules.rflo import random_feedback

    if getattr(rule, "feedback", "symmetric") != "random":
        return np.zeros((1, 1), model.dtype), False
    key = ("feedback", rule.seed, model.n_out, np.dtype(model.dtype).str)
    fb = _static(
        model.cell,
        key,
        lambda: random_feedback(rule.seed, model.n_out, model.cell.n_hidden, model.dtype),
    )
    return fb, True


# -------------------------------------------------------------------------------------------------
# calls
# -------------------------------------------------------------------------------------------------
def _data(model, xs, ys, mask):
    T, B, _ = xs.shape
    dt = model.dtype
    xs = kernel_array(xs, dt)
    if model.loss == "cross_entropy":
        ys_i = kernel_array(ys, np.int64)
        ys_f = np.zeros((T, B, 1), dtype=dt)
        code = codes.CROSS_ENTROPY
    else:
        ys_i = np.zeros((T, B), dtype=np.int64)
        ys_f = kernel_array(ys, dt)
        code = codes.MSE
    return (xs, ys_i, ys_f, kernel_array(mask, np.bool_), code)


def _edges(cell, w_rec, dtype, copy):
    """``w_rec`` (or optimizer state of its shape) as contiguous ``(G, nnz)`` synapse values in
    edge order: gathered from a dense ``(G, n, n)`` array (a new array), else the values
    themselves (copied if ``copy``)."""
    from . import loops as _loops

    w_rec = np.asarray(w_rec)
    if w_rec.ndim == 3:
        G, n = w_rec.shape[0], w_rec.shape[1]
        g = cell.graph
        if g.nnz == n * n:  # all-to-all: the edge order is the row-major order
            flat = w_rec.reshape(G, n * n)
            return np.array(flat, dtype, order="C", copy=True) if copy else _c(flat, dtype)
        out = np.empty((G, g.nnz), dtype)
        _loops.synapse_values(_c(w_rec, dtype), g.edge_post, g.edge_pre, out)
        return out
    if copy:
        return np.array(w_rec, dtype=dtype, order="C", copy=True)
    return kernel_array(w_rec, dtype)


def _from_edges(cell, like, values):
    """The inverse of :func:`_edges`: ``values (G, nnz)``, an array the engine owns, in the shape
    of ``like``: for a dense ``like``, a copy of it with the synapses overwritten (entries off the
    connectivity are kept), or ``values`` reshaped when every entry is a synapse."""
    from . import loops as _loops

    like = np.asarray(like)
    if like.ndim != 3:
        return values
    g = cell.graph
    if g.nnz == like.shape[1] * like.shape[2]:  # all-to-all: a view of the (fresh) values
        return values.reshape(like.shape)
    out = np.array(like, dtype=values.dtype, order="C", copy=True)
    _loops.scatter_synapses(values, g.edge_post, g.edge_pre, out)
    return out


def _c(a, dtype):
    return kernel_array(a, dtype)


def _param_tuple(model, params, copy):
    cell = model.cell
    G, n = cell.n_gates, cell.n_hidden
    get = (
        (lambda k: np.array(params[k], dtype=model.dtype, order="C", copy=True))
        if copy
        else (lambda k: kernel_array(params[k], model.dtype))
    )
    bias = get("cell.bias") if "cell.bias" in params else np.zeros((G, n), model.dtype)
    w_rec = _edges(cell, params["cell.w_rec"], model.dtype, copy)
    return (w_rec, get("cell.w_in"), bias, get("readout.weight"), get("readout.bias"))


def _no_opt(dtype):
    z = (
        np.zeros((1, 1), dtype),
        np.zeros((1, 1, 1), dtype),
        np.zeros((1, 1), dtype),
        np.zeros((1, 1), dtype),
        np.zeros(1, dtype),
    )
    return (codes.NO_OPT, np.zeros(4), np.zeros(1, np.int64), z, z)


def _run(model, rule, params_t, data, state, acc, outs, opt_t, ctl, batch_size, digest=None):
    """Dispatch one chunk to the compiled loop of the rule's family; returns the summed loss."""
    from ..rules import rtrl as _rtrl
    from . import loops as _loops

    cell = model.cell
    ck, gk, gp, hp = cell.compiled_spec()
    cell_t = (int(ck), int(gk), np.asarray(gp, np.float64), np.asarray(hp, np.float64), state)
    graph, layout = _graph(cell), _layout(cell)
    family = _rule_family(rule)
    B, S, n = state.shape
    bs = float(batch_size)
    if family == "trace":
        code = {"SnAp": codes.SNAP1, "RFLO": codes.RFLO, "EProp": codes.EPROP}[type(rule).__name__]
        fb, use_fb = _feedback(model, rule)
        return _loops.run_trace(
            code, fb, use_fb, data, cell_t, params_t, graph, layout, acc, outs, opt_t, ctl, bs
        )
    if family == "influence":
        order = getattr(rule, "n", 0)
        dt = model.dtype
        rows, P = S * n, cell.layout.size
        if getattr(rule, "sparse", True):
            plan, perm, (S_, nnz, n_, nptr, nsrc), exact = _plan(cell, order, B)
            work = (
                np.zeros((S_, nnz), dt),
                np.zeros(n_, np.bool_),
                np.zeros(nptr, np.int64),
                np.zeros(nsrc, dt),
                np.zeros(nsrc, np.int64),
                np.zeros(nsrc, np.int64),
            )
            code = codes.BLOCK
            knob = getattr(rule, "dense_switch", _rtrl.DENSE_SWITCH)  # SnAp: the default
            switch = float(knob) if exact and rows >= BLAS_MIN_ROWS else 0.0
            size = plan[-1]
            dense = (rows, rows) if switch > 0 else (1, 1)
            bufs = (
                np.zeros(size, dt),
                np.zeros(size, dt),
                np.zeros((1, 1, 1), dt),
                np.zeros((1, 1, 1), dt),
                np.zeros(dense, dt),
                np.zeros(dense[0], dt),
            )
        else:
            plan, perm, work = _dummy_plan(dt), layout[0], _dummy_work(dt)
            code, switch = codes.DENSE, 0.0
            bufs = (
                np.zeros(1, dt),
                np.zeros(1, dt),
                np.zeros((B, rows, P), dt),
                np.zeros((B, rows, P), dt),
                np.zeros((rows, rows), dt),
                np.zeros(rows, dt),
            )
        return _loops.run_influence(
            code,
            plan,
            work,
            bufs,
            perm,
            switch,
            data,
            cell_t,
            params_t,
            graph,
            layout,
            acc,
            outs,
            opt_t,
            ctl,
            bs,
        )
    if family == "uoro":
        from ..rules.uoro import params_digest as _digest

        seed_digest = _digest(digest) if digest is not None else 0
        rng = np.random.default_rng([rule.seed, seed_digest])
        T_run = int(ctl[0])
        nus = (2 * rng.integers(0, 2, size=(T_run, B, S, n)) - 1).astype(model.dtype)
        return _loops.run_uoro(
            nus, data, cell_t, params_t, graph, layout, acc, outs, opt_t, ctl, bs
        )
    window = rule.truncation if rule.truncation is not None else int(ctl[0])
    return _loops.run_bptt(
        int(window), data, cell_t, params_t, graph, layout, acc, outs, opt_t, ctl, bs
    )


def _dummy_plan(dtype):
    z = np.zeros(1, np.int64)
    return (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, 1)


def _dummy_work(dtype):
    return (
        np.zeros((1, 1), dtype),
        np.zeros(1, np.bool_),
        np.zeros(1, np.int64),
        np.zeros(1, dtype),
        np.zeros(1, np.int64),
        np.zeros(1, np.int64),
    )


def sequence_grad(model, params, xs, ys, rule, mask):
    """Compiled ``ns.sequence_grad`` on validated inputs; returns ``(loss, grads, final state)``.

    Args:
        model, params, rule: as :func:`neurosnap.sequence_grad` (already validated).
        xs: ``(T, B, n_in)``; ys: ``(T, B)`` ints or ``(T, B, n_out)``; mask: ``(T, B)`` bool.
    """
    T, B, _ = xs.shape
    dt = model.dtype
    data = _data(model, xs, ys, mask)
    params_t = _param_tuple(model, params, copy=False)
    state = model.cell.initial_state(B, dt)
    core = np.zeros(model.cell.layout.size, dt)
    g_wout = np.zeros_like(params["readout.weight"])
    g_bout = np.zeros_like(params["readout.bias"])
    outs = (np.zeros((T, B, model.n_out), dt), np.zeros((T, B)))
    ctl = np.array([T, 0, 0, 0, 0, 0, 0, 0], dtype=np.int64)
    total = _run(
        model,
        rule,
        params_t,
        data,
        state,
        (core, g_wout, g_bout),
        outs,
        _no_opt(dt),
        ctl,
        1,
        digest=params,
    )
    return float(total), model.grads_dict(core, g_wout, g_bout), state


_PARAM_KEYS = ("cell.w_rec", "cell.w_in", "cell.bias", "readout.weight", "readout.bias")


def run_batch(loop, batch, steps, update_every):
    """Compiled batch loop of :func:`neurosnap.train`: one batch of sequences, optimizer
    updates included; same return value and side effects on ``loop`` as the reference."""
    from ..core.validate import training_finite as _check_finite
    from ..optim import SGD
    from ..tasks.base import Batch

    model, rule, opt = loop.model, loop.rule, loop.opt
    xs, ys, mask = model.check_inputs(batch.xs, batch.ys, batch.mask)
    T, B, _ = xs.shape
    T_run = min(T, steps - loop.t)
    complete = T_run >= T
    if not complete:
        mask = mask.copy()
        mask[T_run:] = False
    dt = model.dtype
    params = loop.params
    has_bias = "cell.bias" in params
    params_t = _param_tuple(model, params, copy=True)
    # optimizer state as tuples of arrays in parameter order (copies: snapshots keep the old ones)
    keys = [k if (k != "cell.bias" or has_bias) else None for k in _PARAM_KEYS]

    def arrays(tree):
        return tuple(
            _edges(model.cell, tree[k], dt, copy=True)
            if k == "cell.w_rec"
            else (
                np.array(tree[k], dtype=dt, copy=True)
                if k is not None
                else np.zeros_like(params_t[2])
            )
            for k in keys
        )

    if isinstance(opt, SGD):
        m1 = arrays(loop.opt_state["velocity"])
        opt_t = (
            codes.SGD,
            np.array([opt.lr, opt.momentum, 0.0, 0.0]),
            np.zeros(1, np.int64),
            m1,
            tuple(np.zeros_like(a) for a in m1),
        )
    else:
        opt_t = (
            codes.ADAM,
            np.array([opt.lr, opt.b1, opt.b2, opt.eps]),
            np.array([int(loop.opt_state["count"])], np.int64),
            arrays(loop.opt_state["mu"]),
            arrays(loop.opt_state["nu"]),
        )
    data = _data(model, xs, ys, mask)
    state = model.cell.initial_state(B, dt)
    outs = (np.zeros((T, B, model.n_out), dt), np.zeros((T, B)))
    update = update_every if rule.online else 0
    ctl = np.array([T_run, update, loop.since_update, loop.updates, 0, 0, loop.t, 1], np.int64)
    acc = (loop.core, loop.g_wout, loop.g_bout)
    _run(model, rule, params_t, data, state, acc, outs, opt_t, ctl, loop.batch_size, digest=params)
    if ctl[3] != loop.updates:
        cell = model.cell
        loop.params = _tree(cell, params_t, params, params)
        if isinstance(opt, SGD):
            loop.opt_state = {"velocity": _tree(cell, opt_t[3], params, loop.opt_state["velocity"])}
        else:
            loop.opt_state = {
                "count": int(opt_t[2][0]),
                "mu": _tree(cell, opt_t[3], params, loop.opt_state["mu"]),
                "nu": _tree(cell, opt_t[4], params, loop.opt_state["nu"]),
            }
    err = int(ctl[4])
    loop.t = int(ctl[5]) if err else loop.t + T_run
    loop.updates, loop.since_update = int(ctl[3]), int(ctl[2])
    if err:
        name = {1: "state", 2: "loss", 3: "gradient"}[err]
        _check_finite(int(ctl[5]), **{name: np.array([np.nan])})
    return Batch(xs=xs, ys=ys, mask=mask), outs[0], outs[1], complete


def _tree(cell, arrays, params, old):
    """The engine's arrays (parameter order, ``w_rec`` as synapse values) as a dict of the keys
    of ``params``, ``w_rec`` back in the shape of ``old["cell.w_rec"]``."""
    return {
        k: _from_edges(cell, old[k], a) if k == "cell.w_rec" else a
        for k, a in zip(_PARAM_KEYS, arrays, strict=True)
        if k in params
    }


__all__ = ["ENGINES", "check_engine", "codes", "run_batch", "sequence_grad", "supports"]
