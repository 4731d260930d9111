"""A shard is written back to disk as it grows (``sync_file_range`` every WRITEBACK_BYTES, Linux), so the fsync
that closes it waits on the last megabytes only, while the workers wait on a full window; the bytes, their sha256
and the closing fsync stay what they were."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from audiodata.writer import shards
from audiodata.writer.shards import WRITEBACK_BYTES, CountingFile

CHUNK = 2**20 + 17  # not a divisor of WRITEBACK_BYTES: ranges end wherever a write crosses the mark


def _write(path: Path, chunks: int) -> tuple[CountingFile, bytes]:
    f = CountingFile(path)
    data = b"".join(bytes([k % 256]) * CHUNK for k in range(chunks))
    for k in range(chunks):
        f.write(data[k * CHUNK : (k + 1) * CHUNK])
    f.close()
    return f, data


def test_writeback_is_started_for_each_range_once_in_order_once_flushed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []  # (offset, nbytes, bytes in the file when asked)

    def record(fd: int, offset: int, nbytes: int) -> None:
        calls.append((offset, nbytes, os.fstat(fd).st_size))

    monkeypatch.setattr(shards, "_START_WRITEBACK", record)
    f, data = _write(tmp_path / "s.parquet.tmp", chunks=30)
    assert (tmp_path / "s.parquet.tmp").read_bytes() == data
    assert f.size == len(data) and f.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert len(calls) == len(data) // WRITEBACK_BYTES  # one per WRITEBACK_BYTES crossed (each a bit over it)
    offset = 0
    for start, nbytes, on_disk in calls:
        assert start == offset and WRITEBACK_BYTES <= nbytes < WRITEBACK_BYTES + CHUNK
        assert on_disk >= start + nbytes  # the kernel holds the range: Python's buffer was flushed first
        offset = start + nbytes
    assert offset <= len(data)  # the rest is the closing fsync's


def test_without_sync_file_range_the_same_bytes_are_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shards, "_START_WRITEBACK", None)  # off Linux: the closing fsync does it all
    f, data = _write(tmp_path / "s.parquet.tmp", chunks=12)
    assert (tmp_path / "s.parquet.tmp").read_bytes() == data and f.sha.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_real_call_is_found_on_linux_and_leaves_the_bytes_as_written(tmp_path: Path) -> None:
    assert shards._START_WRITEBACK is not None
    f, data = _write(tmp_path / "s.parquet.tmp", chunks=20)
    assert (tmp_path / "s.parquet.tmp").read_bytes() == data and f.size == len(data)


def test_close_still_fsyncs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(shards.os, "fsync", fsync)
    _write(tmp_path / "s.parquet.tmp", chunks=3)
    assert len(synced) == 1
