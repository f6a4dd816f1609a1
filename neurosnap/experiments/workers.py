"""Running independent work items in local processes (spawned, one BLAS thread each).

Shared by :mod:`neurosnap.compare` and :mod:`neurosnap.sweep`; items and results are pickled.
"""

from __future__ import annotations


def _init_local_worker():
    """Local pool workers: one BLAS thread each (the pool already uses the cores); Ctrl-C is left
    to the parent process, which stops the workers itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def iter_local(fn, items, workers, raise_errors=True):
    """Yield ``(index, value, exception)`` for ``fn(*items[index])`` as the calls finish, in
    ``workers`` spawned processes (in this process, in order, when ``workers`` is 1).

    With ``raise_errors=True`` an exception is raised at once; otherwise it is yielded (``value``
    ``None``). When the consumer stops early (an exception, Ctrl-C), the pool's processes are
    terminated and pending calls dropped.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    items = list(items)
    if not items:
        return
    workers = max(1, min(int(workers), len(items)))
    if workers == 1:  # no pool for a single worker
        for i, item in enumerate(items):
            if raise_errors:
                yield i, fn(*item), None
                continue
            try:
                value = fn(*item)
            except Exception as exc:  # noqa: BLE001 - reported by the caller
                yield i, None, exc
            else:
                yield i, value, None
        return
    pool = ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_init_local_worker
    )
    futures = {}
    try:
        futures = {pool.submit(fn, *item): i for i, item in enumerate(items)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=futures.get):
                try:
                    value = fut.result()
                except Exception as exc:  # raised or reported below
                    if raise_errors:
                        raise
                    yield futures[fut], None, exc
                else:
                    yield futures[fut], value, None
    except BaseException:
        for fut in futures:
            fut.cancel()
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def local_map(fn, items, workers, raise_errors=True):
    """``[fn(*item) for item in items]`` in ``workers`` spawned processes, in order (in this
    process when ``workers`` is 1).

    With ``raise_errors=False`` each result is ``(value, None)`` or ``(None, exception)``.
    """
    items = list(items)
    results = [None] * len(items)
    for i, value, exc in iter_local(fn, items, workers, raise_errors):
        results[i] = value if raise_errors else (value, exc)
    return results
