"""An ordered, bounded map over a process pool: the one way stages fan out.

Jobs go to worker processes as they come, results come back in submission order,
and at most ``depth`` jobs are in flight, so memory stays bounded however long the
input. With one worker everything runs in this process (easier to debug, no pickling).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from audiodata.lock import drop_inherited

PR_SET_PDEATHSIG = 1
F_SETPIPE_SZ = 1031  # Linux fcntl: resize a pipe's buffer
#: The result pipe's buffer (Linux's default is 64 KiB; 1 MiB is the most an unprivileged process gets by default,
#: /proc/sys/fs/pipe-max-size). A job's rows (convert: 2.2 MB for 16 clips of 7 s) then cross in 3 writes, not 34,
#: each of which wakes this process's reader thread (and, on a busy machine, costs the worker its core).
RESULT_PIPE_BYTES = 2**20

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
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(), initializer, initargs))
    widen_result_pipe(pool)
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


def widen_result_pipe(pool: ProcessPoolExecutor, size: int = RESULT_PIPE_BYTES) -> int | None:
    """Give ``pool``'s result pipe a ``size`` buffer, or the most the system grants below it. Returns the size it
    has, or None where there is no such pipe to resize (not Linux, or a pool without one): then it stays as it was."""
    if not sys.platform.startswith("linux"):
        return None
    reader = getattr(getattr(pool, "_result_queue", None), "_reader", None)  # a SimpleQueue's receiving Connection
    if reader is None:
        return None
    import fcntl

    for want in (size, size // 2, size // 4):
        with contextlib.suppress(OSError, ValueError):
            return int(fcntl.fcntl(reader.fileno(), F_SETPIPE_SZ, want))
    return None


def _worker_init(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Runs first in each worker: a forked worker must not keep the parent's output lock alive, nor
    outlive a parent that was killed (it would wait on the job queue for ever, holding its memory)."""
    drop_inherited()
    die_with(parent)
    if initializer is not None:
        initializer(*initargs)


def die_with(parent: int) -> None:
    """Linux: the kernel sends this process SIGKILL when the thread that forked it ends (the pool is made and
    fed by one thread). Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
