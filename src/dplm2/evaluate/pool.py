"""Independent TM-align work items on several processes, results in input order.

TM-align (tmtools) holds the GIL, so the evaluation metrics scale out with processes. Workers
are forked (where the platform can) after the shared data (reference CA traces, sample
structures) is in memory, so it is inherited, not pickled per item; elsewhere it is sent once
per worker through the pool's initializer. Items are handed out one at a time in the given
order: callers put the most expensive items first (longest-processing-time-first scheduling),
which keeps every process busy until the end.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable
from typing import Any

from tqdm import tqdm

_SHARED: Any = None


def _init(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _call(job: tuple[Callable[[Any, Any], Any], Any]) -> Any:
    func, item = job
    return func(_SHARED, item)


def pool_map(func: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any = None, *,
             threads: int = 1, desc: str | None = None, chunksize: int = 1) -> list[Any]:
    """``[func(shared, item) for item in items]`` on ``threads`` processes.

    ``func`` must be a module-level function (it is sent to the workers by name). With
    ``threads <= 1`` (or a single item) everything runs in this process.

    Examples
    --------
    >>> def scaled(k, x):
    ...     return k * x
    >>> pool_map(scaled, [1, 2, 3], 10)
    [10, 20, 30]
    """
    items = list(items)
    bar = dict(total=len(items), desc=desc, disable=desc is None, dynamic_ncols=True,
               mininterval=2.0)
    threads = min(int(threads), len(items))
    if threads <= 1:
        return [func(shared, item) for item in tqdm(items, **bar)]
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else methods[0])
    with ctx.Pool(threads, initializer=_init, initargs=(shared,)) as pool:
        jobs = ((func, item) for item in items)
        return list(tqdm(pool.imap(_call, jobs, chunksize=chunksize), **bar))
