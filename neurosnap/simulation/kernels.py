"""The event-driven LIF/ALIF kernel of ``ns.simulate`` and ``simulate_lif_events`` (numba).

:func:`lif_chunk` advances a batch of networks a chunk of steps in place on their state. Per step
and sequence it costs ``O(n)`` for the membranes (the unit update of
:func:`neurosnap.cells.lif_kernel.unit_step`, written once for every compiled path), ``O(events x
fan-out)`` for the recurrent input and ``O(active inputs x n)`` for the input.

Spikes travel through a ring buffer of ``L`` slots per sequence: a spike of step ``t`` on a synapse
of delay ``d`` is added at slot ``(t + d) mod L`` and enters the current jump of step ``t + d``
(``docs/theory/cells.md`` eq. (15)-(20)). The synapses are stored by presynaptic unit (CSR):
``out_ptr`` int64 ``(n + 1,)``, ``out_post`` integers ``(nnz,)`` (any integer type), ``out_w``
``(nnz,)`` and ``out_d`` the per-synapse delays ``(nnz,)`` (read only when ``uniform`` is 0).

Threads (numba ``prange``): the units are split into ``n_blocks`` contiguous blocks, and each step
updates the (sequence, block) pairs in parallel; a block adds the previous step's spikes to its own
units' ring-buffer entries (every entry receives its additions in the serial order: step by step,
presynaptic units ascending), updates its units and lists its spikes; the lists are then joined in
block order, so spikes are recorded by step, sequence and unit ascending. Results are therefore
identical for every thread count and block split. With ``parallel=None`` the same code runs as
one block per sequence without a parallel region, and the parallel code is neither compiled nor
started (:func:`plan` chooses: a parallel region costs about a microsecond per step, and a
thread that the machine cannot schedule at once stalls every step).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..cells.lif_kernel import fires, unit_step
from ..core.arrays import kernel_array
from ..core.graph_kernels import TRANSPOSE_BLOCK, column_ptr, csc_scatter

#: below this many units per step (``batch x n``) the kernel runs serially: a parallel region costs
#: a few microseconds per step, about what a few thousand unit updates take
PARALLEL_MIN_UNITS = 4096
#: the same with numba's "workqueue" threading layer (no OpenMP or TBB), whose parallel region
#: cost about 100 microseconds per step on the benchmark machine (OpenMP's: 3)
WORKQUEUE_MIN_UNITS = 32 * PARALLEL_MIN_UNITS
#: units per block at least (a block per thread when there are enough units)
MIN_BLOCK = 1024


def check_threads(threads) -> int | None:
    """``threads`` (``ns.simulate``'s argument) checked: ``None`` (numba's current number of
    threads) or an integer from 1 to numba's maximum (``NUMBA_NUM_THREADS``, by default the
    number of cores)."""
    if threads is None:
        return None
    top = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(
            f"threads must be None or an integer from 1 to {top}, got "
            f"{type(threads).__name__} {threads!r}"
        )
    if not 1 <= threads <= top:
        raise ValueError(
            f"threads must be None or an integer from 1 to {top} (numba's NUMBA_NUM_THREADS), "
            f"got {threads}"
        )
    return int(threads)


def set_threads(threads: int | None) -> int | None:
    """Set numba's number of threads to ``threads`` (checked by :func:`check_threads`) and return
    the number before, to restore with ``set_threads(before)``; ``None`` changes nothing and
    returns ``None``."""
    if threads is None:
        return None
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    return before


def plan(n: int, batch: int) -> tuple[bool, int]:
    """``(parallel, n_blocks)`` for :func:`lif_chunk` with ``n`` units and ``batch`` sequences on
    numba's current number of threads; the results do not depend on it."""
    top = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if batch * n < PARALLEL_MIN_UNITS or top <= 1:
        return False, 1  # (numba's threads are not even started)
    threads = numba.get_num_threads()
    if threads <= 1:
        return False, 1
    if numba.threading_layer() == "workqueue" and batch * n < WORKQUEUE_MIN_UNITS:
        return False, 1
    # blocks per sequence: the (sequence, block) tasks a multiple of the threads, all busy
    per_seq = threads // math.gcd(batch, threads)
    return True, max(1, min(per_seq, n // MIN_BLOCK))


def synapse_table(graph, transposed, w, d=None, drop_zeros=False):
    """One synaptic current's table by presynaptic unit, written in compiled passes straight from
    the cell's CSR index (no NumPy temporaries and no random reads of the weights: the
    simulator's setup at 10^8 synapses).

    Args:
        graph: the cell's :class:`~neurosnap.core.graph.RecurrentGraph` (CSR by postsynaptic unit).
        transposed: its ``(out_ptr, order, post)`` from
            :meth:`~neurosnap.core.graph.RecurrentGraph.transpose_order` (``order`` unused).
        w: ``(nnz,)`` weights in the graph's edge order.
        d: ``(nnz,)`` per-synapse delays in edge order, or ``None``.
        drop_zeros: leave out synapses of zero weight (a current that only some units drive,
            e.g. Dale's law; adding a zero changes no sum).

    Returns:
        ``(ptr (n + 1,), post (m,), w (m,), d (m,) or a 1-element placeholder)``; ``post`` is the
        transposed index itself when nothing is dropped.
    """
    out_ptr, _, post = transposed
    w = kernel_array(w)
    has_d = d is not None
    d = kernel_array(d) if has_d else np.zeros(1, np.uint16)
    if drop_zeros:
        ptr = column_ptr(graph.n, graph.pre_index, w, True)
        post_out = np.empty(ptr[-1], post.dtype)
    else:
        ptr, post_out = out_ptr, post
    m = int(ptr[-1])
    w_out = np.empty(m, w.dtype)
    d_out = np.empty(m, d.dtype) if has_d else np.zeros(1, d.dtype)
    no = np.zeros(0, np.int64)
    csc_scatter(
        graph.in_ptr,
        graph.pre_index,
        ptr,
        TRANSPOSE_BLOCK,
        w,
        drop_zeros,
        no,
        post_out if drop_zeros else no,
        w_out,
        d,
        d_out if has_d else d_out[:0],
    )
    return ptr, post_out, w_out, d_out


@numba.njit(cache=True)
def rows_sorted(out_ptr, out_post):  # pragma: no cover - numba
    """Whether every row ``out_post[out_ptr[j]:out_ptr[j + 1]]`` is ascending (then a block of
    postsynaptic units is found in a row by bisection)."""
    for j in range(out_ptr.shape[0] - 1):
        for q in range(out_ptr[j] + 1, out_ptr[j + 1]):
            if out_post[q] < out_post[q - 1]:
                return False
    return True


@numba.njit(cache=True, inline="always")
def _lower_bound(out_post, q0, q1, x):  # pragma: no cover - numba
    """First ``q`` in ``[q0, q1)`` with ``out_post[q] >= x`` (``q1`` if none); the row ascends."""
    while q0 < q1:
        mid = (q0 + q1) >> 1
        if out_post[mid] < x:
            q0 = mid + 1
        else:
            q1 = mid
    return q0


@numba.njit(cache=True, inline="always")
def _deliver(ring, b, slot, uniform, j, table, lo, hi, whole, sorted_rows):  # pragma: no cover
    """Add unit ``j``'s spike of the step at ring slot ``slot`` to its targets in ``[lo, hi)``
    (all of them when ``whole``), through ``table = (out_ptr, out_post, out_w, out_d)``: at slot
    ``slot + d`` (mod ``L``) for the synapse's delay ``d`` (``uniform`` when non-zero, else per
    synapse)."""
    out_ptr, out_post, out_w, out_d = table
    L = ring.shape[1]
    q0 = out_ptr[j]
    q1 = out_ptr[j + 1]
    bounded = not whole
    if bounded and sorted_rows:
        q0 = _lower_bound(out_post, q0, q1, lo)
        q1 = _lower_bound(out_post, q0, q1, hi)
        bounded = False
    if uniform:
        dst = slot + uniform
        row = ring[b, dst - L if dst >= L else dst]
        if bounded:
            for q in range(q0, q1):
                p = out_post[q]
                if p >= lo and p < hi:
                    row[p] += out_w[q]
        else:  # the hot loop: one add per synapse
            for q in range(q0, q1):
                row[out_post[q]] += out_w[q]
    elif bounded:
        for q in range(q0, q1):
            p = out_post[q]
            if p >= lo and p < hi:
                dst = slot + out_d[q]
                ring[b, dst - L if dst >= L else dst, p] += out_w[q]
    else:
        for q in range(q0, q1):
            dst = slot + out_d[q]
            ring[b, dst - L if dst >= L else dst, out_post[q]] += out_w[q]


@numba.njit(cache=True, inline="always")
def _deliver_block(b, blk, nb, buf, slot, scratch, state, synapses, cell):  # pragma: no cover
    """Block ``blk`` (of ``nb``) of sequence ``b`` receives the spikes listed in buffer ``buf``
    (the step at ring slot ``slot``), in the serial kernel's order (tuples as in :func:`_task`)."""
    spikes, n_sp = scratch[4], scratch[5]
    ring, ring2 = state[5], state[6]
    table, table2 = synapses
    two, uniform, sorted_rows = cell[3], cell[4], cell[5]
    n = ring.shape[2]
    lo = blk * n // nb
    hi = (blk + 1) * n // nb
    whole = nb == 1
    for kb in range(nb):
        base = kb * n // nb
        for s in range(n_sp[buf, b, kb]):
            j = spikes[buf, b, base + s]
            _deliver(ring, b, slot, uniform, j, table, lo, hi, whole, sorted_rows)
            if two:
                _deliver(ring2, b, slot, uniform, j, table2, lo, hi, whole, sorted_rows)


@numba.njit(cache=True, inline="always")
def _units(b, lo, hi, spikes, args, two):  # pragma: no cover - numba
    """The unit update of units ``lo..hi-1`` of sequence ``b`` (``args`` as in
    :func:`_update_block`); lists the spikes in ``spikes`` from ``lo`` on, returns their count.

    The update is bound by memory traffic on large networks, so arrays that cannot change a
    result are neither read nor written: the adaptation ``a`` of an LIF cell (``rho = beta = 0``:
    it stays 0) and the input sums ``inp``, ``inp2`` of a step with no active input channel
    (they hold 0)."""
    v, cur, cur2, a, cnt, rec, rec2, inp, inp2, bias, bias2, constants, subtract, refr, fed = args
    v_th, v_leak, v_reset, k_m, decay_syn, decay_inh, rho, beta = constants
    adapt = rho != 0 or beta != 0
    zero = v[b, 0] - v[b, 0]  # 0 in the state's dtype
    m = 0
    for u in range(lo, hi):
        drive = inp[b, u] + bias[u] if fed else bias[u]
        drive2 = (inp2[b, u] + bias2[u] if fed else bias2[u]) if two else rec[u]
        vn, i_n, ih_n, a_n, c_n = unit_step(
            v[b, u],
            cur[b, u],
            cur2[b, u] if two else cur[b, u],
            a[b, u] if adapt else zero,
            cnt[b, u],
            rec[u],
            drive,
            rec2[u] if two else rec[u],
            drive2,
            v_th,
            v_leak,
            v_reset,
            k_m,
            decay_syn,
            decay_inh,
            rho,
            beta,
            subtract,
            refr,
            two,
        )
        v[b, u] = vn
        cur[b, u] = i_n
        if adapt:
            a[b, u] = a_n
        cnt[b, u] = c_n
        rec[u] = 0
        if fed:
            inp[b, u] = 0
        if two:
            cur2[b, u] = ih_n
            rec2[u] = 0
            if fed:
                inp2[b, u] = 0
        if fires(vn, a_n, c_n, v_th, beta):
            spikes[lo + m] = u
            m += 1
    return m


@numba.njit(cache=True, inline="always")
def _update_block(
    t, b, blk, nb, slot, buf, xs, scratch, state, weights, cell, record
):  # pragma: no cover - numba
    """Step ``t`` of block ``blk`` (of ``nb``) of sequence ``b``: input (the ``n_active[b]``
    channels ``active[b]``, summed in ``inp``, ``inp2``), unit update (ring slot ``slot`` read and
    cleared), the block's spikes listed from its first unit on in ``spikes[buf, b]``, recorded
    states; returns the number of the block's spikes (tuples as in :func:`_task`)."""
    active, n_active, inp, inp2, spikes, _ = scratch
    v, cur, cur2, a, cnt, ring, ring2 = state
    w_in_t, bias, w_in_t2, bias2 = weights
    constants, subtract, refr, two, _, _ = cell
    units, var_codes, st_out = record
    v_th, v_leak, v_reset, k_m, decay_syn, decay_inh, rho, beta = constants
    n = v.shape[1]
    lo = blk * n // nb
    hi = (blk + 1) * n // nb
    for ci in range(n_active[b]):  # W_in x_t: the active channels, unit order within each
        c = active[b, ci]
        x = xs[t, b, c]
        for u in range(lo, hi):
            inp[b, u] += w_in_t[c, u] * x
        if two:
            for u in range(lo, hi):
                inp2[b, u] += w_in_t2[c, u] * x
    rec = ring[b, slot]
    rec2 = ring2[b, slot if two else 0]
    fed = n_active[b] > 0  # any input this step (else inp, inp2 hold zeros)
    args = (v, cur, cur2, a, cnt, rec, rec2, inp, inp2, bias, bias2, constants, subtract, refr, fed)
    if two:  # a loop for each: no test of `two` per unit
        m = _units(b, lo, hi, spikes[buf, b], args, True)
    else:
        m = _units(b, lo, hi, spikes[buf, b], args, False)
    for r in range(units.shape[0]):
        u = units[r]
        if u >= lo and u < hi:
            for c in range(var_codes.shape[0]):
                code = var_codes[c]
                if code == 0:
                    st_out[t, b, c, r] = v[b, u]
                elif code == 1:
                    st_out[t, b, c, r] = cur[b, u]
                elif code == 2:
                    st_out[t, b, c, r] = a[b, u]
                elif code == 3:
                    st_out[t, b, c, r] = cnt[b, u]
                else:
                    st_out[t, b, c, r] = cur2[b, u]
    return m


@numba.njit(cache=True, inline="always")
def _task(
    task, nb, t, slot, pslot, buf, update, xs, scratch, state, synapses, weights, cell, record
):  # pragma: no cover - numba
    """Task ``task`` of a step: sequence ``task // nb``, block ``task % nb``. It receives the
    previous step's spikes (buffer ``1 - buf``, ring slot ``pslot``) and, with ``update``, runs
    step ``t`` (ring slot ``slot``), listing its spikes in buffer ``buf``.

    The tuples hold :func:`lif_chunk`'s arrays and flags: ``scratch = (active, n_active, inp,
    inp2, spikes, n_sp)``, ``state = (v, cur, cur2, a, cnt, ring, ring2)``, ``synapses =
    (tables, tables2)``, ``weights = (w_in_t, bias, w_in_t2, bias2)``, ``cell = (constants,
    subtract, refr, two, uniform, sorted_rows)``, ``record = (units, var_codes, st_out)``. (Inlined
    into the serial kernel and into :func:`_task_call`, one function each: passing the arrays on to
    compiled calls made the unit update 1.7 times slower.)
    """
    b = task // nb
    blk = task - b * nb
    _deliver_block(b, blk, nb, 1 - buf, pslot, scratch, state, synapses, cell)
    if update:
        m = _update_block(t, b, blk, nb, slot, buf, xs, scratch, state, weights, cell, record)
        scratch[5][buf, b, blk] = m


@numba.njit(cache=True)
def _task_call(
    task, nb, t, slot, pslot, buf, update, xs, scratch, state, synapses, weights, cell, record
):  # pragma: no cover - numba
    """:func:`_task`, compiled on its own (numba's parallel pass may drop writes of code inlined
    into a parallel loop to arrays handed over in tuples)."""
    _task(
        task, nb, t, slot, pslot, buf, update, xs, scratch, state, synapses, weights, cell, record
    )


@numba.njit(cache=True, parallel=True)
def _tasks_parallel(
    n_task, nb, t, slot, pslot, buf, update, xs, scratch, state, synapses, weights, cell, record
):  # pragma: no cover - numba
    """Every :func:`_task` of a step, in parallel (numba ``prange``): they touch disjoint units.
    (A parallel loop cannot capture nested tuples: they are taken apart here and rebuilt.)"""
    tables, tables2 = synapses
    constants, subtract, refr, two, uniform, sorted_rows = cell
    for task in numba.prange(n_task):
        syn = (tables, tables2)
        flags = (constants, subtract, refr, two, uniform, sorted_rows)
        i = np.int64(task)  # the serial loop's type: one compiled _task
        _task_call(
            i, nb, t, slot, pslot, buf, update, xs, scratch, state, syn, weights, flags, record
        )


@numba.njit(cache=True)
def lif_chunk(
    xs,
    t_begin,
    t0,
    v,
    cur,
    cur2,
    a,
    cnt,
    ring,
    ring2,
    tables,
    w_in_t,
    bias,
    tables2,
    w_in_t2,
    bias2,
    constants,
    subtract,
    refr,
    uniform,
    two,
    sorted_rows,
    parallel,
    n_blocks,
    want_events,
    spk_step,
    spk_unit,
    spk_batch,
    n_spk_arr,
    counts,
    units,
    var_codes,
    st_out,
):  # pragma: no cover - numba
    """Steps ``t_begin..`` of a chunk ``xs (k, B, n_in)`` (time steps ``t0 + t``) in place on the
    carried state; returns the step it stopped at (the chunk's end, or earlier when the event
    buffer could overflow). Every spike is in the ring buffer on return.

    Args:
        v, cur, cur2, a: ``(B, n)`` membrane, current, second current (read and written only when
            ``two``) and adaptation (ALIF; LIF passes zeros with ``rho = beta = 0``).
        cnt: ``(B, n)`` int64 refractory counters.
        ring, ring2: ``(B, L, n)`` ring buffers of the two currents (``ring2`` may be ``(B, 1, 1)``
            without ``two``); ``ring[b, (t0 + t) mod L]`` holds the recurrent input of step ``t``.
        tables, tables2: ``(out_ptr, out_post, out_w, out_d)`` of each current (module docstring;
            ``tables2`` of the same types, unused without ``two``); ``w_in_t (n_in, n)``,
            ``bias (n,)`` and ``w_in_t2``, ``bias2`` their input weights and biases.
        constants: ``(v_th, v_leak, v_reset, k_m, decay_syn, decay_inh, rho, beta)`` in the
            state's dtype (:func:`~neurosnap.cells.lif_kernel.unit_step`).
        subtract: reset by subtraction; ``refr``: ``max(R - 1, 0)``; ``uniform``: the delay of
            every synapse, or 0 to read ``out_d``; ``two``: the second current is present.
        sorted_rows: every CSR row ascends (:func:`rows_sorted`).
        parallel, n_blocks: ``None`` (serial; the parallel code is then neither compiled nor
            started) or ``True`` to run ``n_blocks`` blocks per sequence in parallel (:func:`plan`).
        want_events: list spikes in ``spk_step``, ``spk_unit``, ``spk_batch`` from
            ``n_spk_arr[0]`` on (updated); ``counts (k, B)``: spikes per step and sequence.
        units, var_codes, st_out: record ``st_out[t, b, c, r]`` = state variable ``var_codes[c]``
            (0 v, 1 i, 2 a, 3 r, 4 i_inh) of unit ``units[r]``.
    """
    k, B, n_in = xs.shape
    n = bias.shape[0]
    L = ring.shape[1]
    cap = spk_step.shape[0]
    n_spk = n_spk_arr[0]
    nb = 1 if parallel is None else n_blocks
    n_task = B * nb
    inp = np.zeros((B, n), dtype=v.dtype)
    inp2 = np.zeros((B, n) if two else (1, 1), dtype=v.dtype)
    spikes = np.empty((2, B, n), dtype=np.int64)  # a block's spikes at its first unit on
    n_sp = np.zeros((2, B, nb), dtype=np.int64)
    active = np.empty((B, n_in), dtype=np.int64)
    n_active = np.zeros(B, dtype=np.int64)
    scratch = (active, n_active, inp, inp2, spikes, n_sp)
    state = (v, cur, cur2, a, cnt, ring, ring2)
    synapses = (tables, tables2)
    weights = (w_in_t, bias, w_in_t2, bias2)
    cell = (constants, subtract, refr, two, uniform, sorted_rows)
    record = (units, var_codes, st_out)
    t = t_begin
    while True:
        # one more round after the last step: its spikes travel too (no update)
        update = t < k and not (want_events and n_spk + B * n > cap)
        if not update and t == t_begin:
            break
        slot = (t0 + t) % L
        pslot = slot - 1 if slot > 0 else L - 1  # the previous step's slot
        buf = (t - t_begin) & 1
        if update:
            for b in range(B):
                m = 0
                for c in range(n_in):
                    if xs[t, b, c] != 0:
                        active[b, m] = c
                        m += 1
                n_active[b] = m
        if parallel is not None:  # (pruned when None: no parallel code compiled or started)
            _tasks_parallel(
                n_task,
                nb,
                t,
                slot,
                pslot,
                buf,
                update,
                xs,
                scratch,
                state,
                synapses,
                weights,
                cell,
                record,
            )
        else:
            for task in range(n_task):
                _task(
                    task,
                    nb,
                    t,
                    slot,
                    pslot,
                    buf,
                    update,
                    xs,
                    scratch,
                    state,
                    synapses,
                    weights,
                    cell,
                    record,
                )
        if not update:
            break
        for b in range(B):  # join the blocks' lists: units ascending
            total = 0
            for blk in range(nb):
                m = n_sp[buf, b, blk]
                if want_events:
                    base = blk * n // nb
                    for s in range(m):
                        spk_step[n_spk] = t0 + t
                        spk_unit[n_spk] = spikes[buf, b, base + s]
                        spk_batch[n_spk] = b
                        n_spk += 1
                total += m
            counts[t, b] = total
        t += 1
    n_spk_arr[0] = n_spk
    return t
