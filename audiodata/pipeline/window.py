"""An ordered, bounded map over a process pool: the one way stages fan out.

Jobs go to worker processes as they come, results come back in submission order,
and at most ``depth`` jobs are in flight, so memory stays bounded however long the
input. With one worker everything runs in this process (easier to debug, no pickling).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from audiodata.lock import drop_inherited

C = TypeVar("C")
R = TypeVar("R")


def ordered_map(
    fn: Callable[..., R],
    jobs: Iterable[tuple[C, tuple[Any, ...]]],
    workers: int,
    depth: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[tuple[C, R]]:
    """``(context, fn(*args))`` for each ``(context, args)`` job, in order.

    ``fn`` must be a module-level function when ``workers > 1``. ``initializer`` runs once
    per worker (or once here when ``workers <= 1``) to set up state ``fn`` reads.
    """
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for ctx, args in jobs:
            yield ctx, fn(*args)
        return
    limit = depth if depth is not None else 2 * workers + 1
    window: deque[tuple[C, Future[R]]] = deque()
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(initializer, initargs))
    try:
        for ctx, args in jobs:
            window.append((ctx, pool.submit(fn, *args)))
            while len(window) > limit:
                c, fut = window.popleft()
                yield c, fut.result()
        while window:
            c, fut = window.popleft()
            yield c, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_init(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Runs first in each worker: a forked worker must not keep the parent's output lock alive."""
    drop_inherited()
    if initializer is not None:
        initializer(*initargs)
