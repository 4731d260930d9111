"""The ordered, bounded map of :mod:`audiodata.pipeline.window` on a Ray cluster: ``lint`` and ``dedup`` with
``--engine ray`` run their very jobs (byte ranges of JSON-lines files read by the worker, or batches of records)
through it, so the driver merges exactly what the local pool's parent merges, in the same order, and the report
is the local one by construction.

Each CPU of the cluster holds one actor, set up once by the stage's ``initializer`` (as each pool worker is):
the analyser with its rules, compiled once, not per job. Jobs go to the actor with the fewest in flight, results
come back in submission order, at most ``depth`` jobs in flight (memory stays bounded however long the input).
A killed worker is restarted by Ray (its actor set up again) and the job retried (``max_restarts`` /
``max_task_retries``): a job is a pure function of its inputs, so a retry gives the same result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

C = TypeVar("C")
R = TypeVar("R")

#: How often Ray restarts a dead worker's actor, and retries the job it held, before the run fails.
RETRIES = 3


class _Stage:
    """One worker's state: what the local pool's ``initializer`` sets up in each process, set up here once."""

    def __init__(self, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
        if initializer is not None:
            initializer(*initargs)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def pid(self) -> int:
        import os

        return os.getpid()


def actors(ray: Any, count: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> list[Any]:
    """``count`` stage actors of one CPU each, retried as the module docstring says."""
    cls = ray.remote(num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES)(_Stage)
    return [cls.remote(initializer, initargs) for _ in range(count)]


def ray_ordered_map(
    fn: Callable[..., R],
    jobs: Iterable[tuple[C, tuple[Any, ...]]],
    workers: int,
    depth: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    *,
    ray: Any = None,
) -> Iterator[tuple[C, R]]:
    """:func:`audiodata.pipeline.window.ordered_map`'s contract on the connected Ray cluster: ``(context,
    fn(*args))`` for each job, in order. ``workers`` is ignored: one actor per CPU of the cluster. ``fn``,
    ``initializer`` and the args must be importable by the cluster's workers (module-level functions)."""
    if ray is None:
        from audiodata.pipeline.rayengine import import_ray

        ray = import_ray()
    count = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = actors(ray, count, initializer, initargs)
    busy = [0] * count
    limit = depth if depth is not None else 2 * count + 1
    window: deque[tuple[C, Any, int]] = deque()
    try:
        for ctx, args in jobs:
            k = min(range(count), key=busy.__getitem__)
            busy[k] += 1
            window.append((ctx, pool[k].run.remote(fn, *args), k))
            while len(window) > limit:
                yield _take(ray, window, busy)
        while window:
            yield _take(ray, window, busy)
    finally:
        for a in pool:
            ray.kill(a)


def _take(ray: Any, window: deque[tuple[C, Any, int]], busy: list[int]) -> tuple[C, Any]:
    from audiodata.pipeline.rayengine import get

    ctx, ref, k = window.popleft()
    busy[k] -= 1
    return ctx, get(ray, ref)


__all__ = ["RETRIES", "actors", "ray_ordered_map"]
