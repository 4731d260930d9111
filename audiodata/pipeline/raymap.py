"""The ordered, bounded map of :mod:`audiodata.pipeline.window` on a Ray cluster: ``lint`` and ``dedup`` with
``--engine ray`` run their very jobs (byte ranges of JSON-lines files read by the worker, or batches of records)
through it, so the driver merges exactly what the local pool's parent merges, in the same order, and the report
is the local one by construction.

Each job is a Ray task (one CPU). The stage's settings (the local pool's ``initializer`` and its args: every input
file, the rules) go into the object store once per run; a worker sets the stage up on its first job of the run and
keeps it for the next ones, as a pool worker does, so the rules are compiled once per worker, not per job. Ray keeps
its worker processes between tasks and runs, so a second command on the same cluster starts no process. Results come
back in submission order, at most ``depth`` jobs in flight (memory stays bounded however long the input). A worker
killed mid-job is replaced and the job retried by Ray (:data:`RETRIES`): a job is a pure function of its inputs, so a
retry gives the same result.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

C = TypeVar("C")
R = TypeVar("R")

#: How often Ray retries a job whose worker died before the run fails.
RETRIES = 3
#: The stage this worker process is set up for: (the run's settings ref, as hex) of the last job it ran.
_SET_UP: list[str] = []


class Stage:
    """A run's stage as the workers see it: the ``initializer`` and a ref to its args in the object store (a list
    around it, so that Ray hands the ref over as it is and the worker fetches the args only when it sets up)."""

    def __init__(self, ray: Any, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
        self.initializer = initializer
        self.args = [ray.put(initargs)]
        self.cwd = os.getcwd()  # relative inputs and media resolve as on the driver (every node sees the same paths)

    def ready(self) -> None:
        """Set this worker up for the stage, once per worker and run."""
        import ray

        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        key = self.args[0].hex()
        if _SET_UP[-1:] != [key]:
            if self.initializer is not None:
                self.initializer(*ray.get(self.args[0]))
            _SET_UP[:] = [key]


def _job(stage: Stage, fn: Callable[..., Any], *args: Any) -> Any:
    stage.ready()
    return fn(*args)


def task(ray: Any, num_returns: int = 1) -> Any:
    """The remote function that runs one job of a stage: ``.remote(stage, fn, *args)``."""
    return ray.remote(num_cpus=1, max_retries=RETRIES, num_returns=num_returns)(_job)


def cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


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
    fn(*args))`` for each job, in order. ``workers`` is ignored: the cluster's CPUs are the workers. ``fn``,
    ``initializer`` and the args must be importable by the cluster's workers (module-level functions)."""
    from audiodata.pipeline.rayengine import get

    if ray is None:
        from audiodata.pipeline.rayengine import import_ray

        ray = import_ray()
    stage = Stage(ray, initializer, initargs)
    run = task(ray)
    limit = depth if depth is not None else 2 * cpus(ray) + 1
    window: deque[tuple[C, Any]] = deque()
    try:
        for ctx, args in jobs:
            window.append((ctx, run.remote(stage, fn, *args)))
            while len(window) > limit:
                c, ref = window.popleft()
                yield c, get(ray, ref)
        while window:
            c, ref = window.popleft()
            yield c, get(ray, ref)
    finally:
        for _, ref in window:  # stopped early (an error, the caller gone): the jobs left are not wanted
            ray.cancel(ref)


__all__ = ["RETRIES", "Stage", "cpus", "ray_ordered_map", "task"]
