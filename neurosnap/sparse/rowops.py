"""Row operations of the sparse exact engine's kernels (:mod:`neurosnap.sparse.blocks`,
:mod:`neurosnap.sparse.panels`): combining up to eight source rows into a destination row of a
flat buffer, with the gradient fused in, addressed by *unsigned* offsets.

Implementation notes (measured on the 2-core benchmark machine, ``docs/benchmarks.md``): a row is
written in passes that each combine up to eight source rows (fewer passes over the destination), the
gradient fused into the last pass; all indexing is by *unsigned* offsets into flat buffers, since
with signed offsets numba's negative-index test keeps LLVM from vectorising, and array views would
cost a reference-count update per row.
"""

from __future__ import annotations

import numba

from ..core.arrays import kernel_array


def contiguous(a, dtype):
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    return kernel_array(a, dtype)


def record_arrays(jac_state, jac_params, credit, dtype) -> tuple:
    """What every kernel reads of a step record, C-contiguous in ``dtype``: ``(local, drec,
    w_rec (G, n, n), dout)`` of the state Jacobian, ``(drec, dinp, y_prev, x)`` of the immediate
    influence, and the credit ``c_t``."""
    js, jp = jac_state, jac_params
    arrays = (js.local, js.drec, js.dense_w_rec(), js.dout, jp.drec, jp.dinp, jp.y_prev, jp.x)
    return tuple(contiguous(a, dtype) for a in (*arrays, credit))


# Vector helpers on flat buffers with *unsigned* offsets: numba then emits no negative-index
# wraparound test and LLVM vectorises the loops; inlined at numba-IR level, so no array views
# (and no reference counting) are created per row.
#: offsets into flat buffers are cast to this type (see the module docstring)
u64 = numba.uint64


@numba.njit(inline="always", fastmath={"contract"})
def comb8(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    """``dst[od:] (+)= sum_u f8[u] * src[o8[u]:]`` (first ``8`` sources) over ``nc`` entries; then,
    if ``with_grad``, ``g[og:] += cf * dst[od:]`` in the same pass. ``comb4``, ``comb2`` and
    ``comb1`` are the same with fewer sources."""
    o0, o1, o2, o3, o4, o5, o6, o7 = o8[0], o8[1], o8[2], o8[3], o8[4], o8[5], o8[6], o8[7]
    f0, f1, f2, f3, f4, f5, f6, f7 = f8[0], f8[1], f8[2], f8[3], f8[4], f8[5], f8[6], f8[7]
    if add:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = (
                    f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = (
                    f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                    + f4 * src[o4 + us]
                    + f5 * src[o5 + us]
                    + f6 * src[o6 + us]
                    + f7 * src[o7 + us]
                )
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def comb4(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    o0, o1, o2, o3 = o8[0], o8[1], o8[2], o8[3]
    f0, f1, f2, f3 = f8[0], f8[1], f8[2], f8[3]
    if add:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                )
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = (
                    dst[od + us]
                    + f0 * src[o0 + us]
                    + f1 * src[o1 + us]
                    + f2 * src[o2 + us]
                    + f3 * src[o3 + us]
                )
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us] + f2 * src[o2 + us] + f3 * src[o3 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us] + f2 * src[o2 + us] + f3 * src[o3 + us]
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def comb2(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    o0, o1 = o8[0], o8[1]
    f0, f1 = f8[0], f8[1]
    if add:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = dst[od + us] + f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = dst[od + us] + f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = f0 * src[o0 + us] + f1 * src[o1 + us]
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def comb1(dst, od, src, o8, f8, nc, add, g, og, cf, with_grad):  # pragma: no cover - numba
    o0 = o8[0]
    f0 = f8[0]
    if add:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = dst[od + us] + f0 * src[o0 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = dst[od + us] + f0 * src[o0 + us]
                dst[od + us] = v
    else:
        if with_grad:
            for s in range(nc):
                us = u64(s)
                v = f0 * src[o0 + us]
                dst[od + us] = v
                g[og + us] += cf * v
        else:
            for s in range(nc):
                us = u64(s)
                v = f0 * src[o0 + us]
                dst[od + us] = v


@numba.njit(inline="always", fastmath={"contract"})
def axpy(dst, od, src, os_, f, nc):  # pragma: no cover - numba
    for s in range(nc):
        us = u64(s)
        dst[od + us] += f * src[os_ + us]


@numba.njit(inline="always")
def fill(dst, od, v, nc):  # pragma: no cover - numba
    for s in range(nc):
        dst[od + u64(s)] = v
