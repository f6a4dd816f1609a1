"""One LIF/ALIF unit's forward update as small compiled functions, written once.

The event-driven simulator (:mod:`neurosnap.simulation.kernels`, behind ``ns.simulate`` and
``simulate_lif_events``) and the compiled training engine (:mod:`neurosnap.engine._step`) call
these; numba inlines them (``inline="always"``), so they cost nothing over writing the arithmetic
in place. Each is the floating-point expression of the NumPy cells (:mod:`neurosnap.cells.lif`,
:mod:`neurosnap.cells.alif`), which stay the readable reference; ``tests/test_lif_kernel.py`` checks
one step of :func:`unit_step` against them. Equations: ``docs/theory/cells.md`` eq. (7)-(18) and,
for the second synaptic current, eq. (28)-(29).

A unit's state is ``v`` (membrane before the reset), ``i`` (synaptic current; ``ih`` the second
one), ``a`` (ALIF adaptation; 0 with ``rho = beta = 0`` for LIF) and ``c`` (refractory steps left;
always 0 without refractoriness). The spike is ``z = [c = 0] H(v - v_th - beta a)`` and is applied
at the start of the next step, as in the cells.
"""

from __future__ import annotations

import numba

_inline = numba.njit(cache=True, inline="always")


@_inline
def threshold_gap(v, a, v_th, beta):  # pragma: no cover - numba
    """Gate argument ``v - v_th - beta a`` (eq. (12); ``beta = 0`` for LIF)."""
    return v - v_th - beta * a


@_inline
def fires(v, a, c, v_th, beta):  # pragma: no cover - numba
    """Whether the state ``(v, a, c)`` spikes: ``[c = 0] H(v - v_th - beta a)`` (eq. (15))."""
    return c == 0 and threshold_gap(v, a, v_th, beta) > 0


@_inline
def after_spike(v, a, c, v_th, v_reset, rho, beta, subtract, refr):  # pragma: no cover - numba
    """The previous step's spike applied: ``(v_r, a_t, c_t)``.

    ``v_r``: ``v`` reset to ``v_reset`` (or ``v - v_th`` when ``subtract``) if the state fired,
    else ``v`` (eq. (8)); ``a_t = rho (a + z)`` (eq. (13)); ``c_t = refr = R - 1`` after a spike,
    else ``max(c - 1, 0)`` (eq. (16)).
    """
    if fires(v, a, c, v_th, beta):
        return (v - v_th if subtract else v_reset), rho * (a + 1), refr
    return v, rho * a, (c - 1 if c > 0 else 0)


@_inline
def current_jump(i, rec, drive):  # pragma: no cover - numba
    """``i_j = i + W_rec z + drive`` with ``drive = W_in x (+ b)`` (eq. (9))."""
    return i + rec + drive


@_inline
def membrane(v_r, i_j, ih_j, k_m, v_leak, two):  # pragma: no cover - numba
    """Forward Euler ``v_r + k_m (v_leak - v_r + i_j)`` (eq. (10)); with ``two`` the second
    current joins: ``v_r + k_m (v_leak - v_r + i_j + ih_j)`` (eq. (29)); ``ih_j`` unused else."""
    if two:
        return v_r + k_m * (v_leak - v_r + i_j + ih_j)
    return v_r + k_m * (v_leak - v_r + i_j)


@_inline
def unit_step(
    v,
    i,
    ih,
    a,
    c,
    rec,
    drive,
    rec2,
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
):  # pragma: no cover - numba
    """One step of one unit: returns ``(v_t, i_t, ih_t, a_t, c_t)``.

    ``rec``, ``drive``: the recurrent input ``W_rec z`` and ``W_in x (+ b)`` of the current ``i``;
    ``rec2``, ``drive2`` those of ``ih`` (used only when ``two``). ``k_m = dt/tau_mem``,
    ``decay_syn = 1 - dt/tau_syn``, ``decay_inh = 1 - dt/tau_syn_inh``, ``rho = 1 - dt/tau_adapt``
    (ALIF; 0 for LIF), ``refr = max(R - 1, 0)``. While refractory (``c_t > 0``) the membrane stays
    clamped at ``v_r`` (eq. (17)) and the currents keep integrating.
    """
    v_r, a_t, c_t = after_spike(v, a, c, v_th, v_reset, rho, beta, subtract, refr)
    i_j = current_jump(i, rec, drive)
    ih_j = current_jump(ih, rec2, drive2) if two else ih
    v_t = membrane(v_r, i_j, ih_j, k_m, v_leak, two) if c_t == 0 else v_r
    return v_t, decay_syn * i_j, (decay_inh * ih_j if two else ih), a_t, c_t
