"""The pool's result pipe is widened (Linux): a job's rows cross in a few writes, each waking the parent's reader,
instead of one per 64 KiB; results bigger than the pipe still arrive whole and in order."""

from __future__ import annotations

import fcntl
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from audiodata.pipeline import window
from audiodata.pipeline.window import RESULT_PIPE_BYTES, ordered_map, widen_result_pipe

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
F_GETPIPE_SZ = 1032
DEFAULT_PIPE = 2**16


def _pipe_max() -> int:
    return int(Path("/proc/sys/fs/pipe-max-size").read_text())


def _rows(seed: int, size: int) -> bytes:
    return bytes([seed % 251]) * size


def test_the_result_pipe_gets_the_size_asked_or_the_most_the_system_grants() -> None:
    pool = ProcessPoolExecutor(max_workers=1)
    try:
        got = widen_result_pipe(pool)
        if got is None and _pipe_max() < RESULT_PIPE_BYTES // 4:
            pytest.skip("this system grants no pipe of a quarter of RESULT_PIPE_BYTES")
        assert got in (RESULT_PIPE_BYTES, RESULT_PIPE_BYTES // 2, RESULT_PIPE_BYTES // 4)
        assert got == fcntl.fcntl(pool._result_queue._reader.fileno(), F_GETPIPE_SZ)  # type: ignore[attr-defined]
    finally:
        pool.shutdown()


def test_a_pool_without_a_result_pipe_is_left_as_it_is() -> None:
    class NoPipe:
        pass

    assert widen_result_pipe(NoPipe()) is None  # type: ignore[arg-type]


def test_ordered_map_widens_its_pool_and_big_results_come_back_whole_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    granted: list[int | None] = []
    real = window.widen_result_pipe

    def recording(pool: ProcessPoolExecutor, size: int = RESULT_PIPE_BYTES) -> int | None:
        granted.append(real(pool, size))
        return granted[-1]

    monkeypatch.setattr(window, "widen_result_pipe", recording)
    sizes = [3 * RESULT_PIPE_BYTES, 10, RESULT_PIPE_BYTES, RESULT_PIPE_BYTES // 2 + 1, 5 * RESULT_PIPE_BYTES // 2]
    jobs = [(k, (k, size)) for k, size in enumerate(sizes)]
    got = list(ordered_map(_rows, jobs, workers=2))
    assert [k for k, _ in got] == list(range(len(sizes)))
    assert [r for _, r in got] == [_rows(k, size) for k, size in enumerate(sizes)]
    assert len(granted) == 1 and granted[0] is not None and granted[0] > DEFAULT_PIPE


def _timed(delay: float, size: int) -> tuple[float, float, bytes]:
    start = time.time()
    time.sleep(delay)
    return start, time.time(), b"r" * size


def test_a_worker_starts_its_next_job_while_the_parent_has_not_read_its_last_result() -> None:
    """The parent holds its GIL (a long C call: its pool thread cannot read) while both workers finish a job whose rows
    are three times the pipe: their result threads wait for room, and a worker goes on to the third job meanwhile."""
    released: list[float] = []

    def jobs() -> Iterator[tuple[int, tuple[float, int]]]:
        yield 0, (0.6, 3 * RESULT_PIPE_BYTES)
        yield 1, (0.6, 3 * RESULT_PIPE_BYTES)
        yield 2, (0.0, 10)
        time.sleep(0.3)  # the three jobs reach the workers' queue (the pool's threads need the GIL for that)
        sum(range(60_000_000))  # one C call, a second or more, never letting the GIL go: the results stay unread
        released.append(time.time())

    got = dict(ordered_map(_timed, jobs(), workers=2, depth=3))
    assert [len(got[k][2]) for k in range(3)] == [3 * RESULT_PIPE_BYTES, 3 * RESULT_PIPE_BYTES, 10]
    # measured: the third job started 0.01 s after the first two ended, 2 s before the parent let go of the GIL;
    # with each worker writing its own result, it started when the parent let go (the workers waited on the pipe)
    assert got[2][0] < released[0] - 0.3, (got[0][:2], got[1][:2], got[2][:2], released)
