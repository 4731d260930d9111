"""The pool's result pipe is widened (Linux): a job's rows cross in a few writes, each waking the parent's reader,
instead of one per 64 KiB; results bigger than the pipe still arrive whole and in order."""

from __future__ import annotations

import fcntl
import sys
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
