"""Parquet shard writing: Hub layout, byte-capped, atomic.

A shard is written to ``<name>.tmp`` through a file wrapper that counts and hashes
every byte, so the size cap works on actual bytes and the sha256 costs no re-read;
only a closed, fsynced file is renamed to its final name. A crash or kill leaves a
``.tmp`` that the next run deletes, never a half-written shard under a real name.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import config as ds_config
from datasets.arrow_writer import get_parquet_column_options

from audiodata.faults import MachineFault, fsync_dir, is_os_fault, on_path
from audiodata.writer.schema import NO_VISUAL, Visual, features

#: Bytes of a shard written before the kernel is asked to start writing them to disk (asynchronously, Linux's
#: ``sync_file_range``). The fsync that closes a shard then waits for the last few megabytes instead of a whole
#: shard (0.25 s for 500 MB here), while the workers, their window full, wait for this process.
WRITEBACK_BYTES = 8 * 2**20
SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)``: start writing back a range, don't wait for it;
    None off Linux (or without it): the close's fsync then does it all, as before."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def start(fd: int, offset: int, nbytes: int) -> None:
        func(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)  # a failure only leaves the work to fsync: not checked

    return start


_START_WRITEBACK = _sync_file_range()


class CountingFile:
    """A write-only binary file that tracks its size and sha256 as it goes, and has the kernel write it to disk
    as it grows (:data:`WRITEBACK_BYTES`), so that closing it waits little."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with on_path(path, "create"):
            self._fh = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False
        self._written_back = 0  # bytes whose writeback has been started

    def write(self, data: Any) -> int:
        mv = memoryview(data)
        try:  # the hot path: no context manager per write
            self._fh.write(mv)
        except OSError as exc:
            if is_os_fault(exc):
                raise MachineFault("write", self.path, exc) from exc
            raise
        self.sha.update(mv)
        self.size += mv.nbytes
        if self.size - self._written_back >= WRITEBACK_BYTES and _START_WRITEBACK is not None:
            self._start_writeback()
        return mv.nbytes

    def _start_writeback(self) -> None:
        assert _START_WRITEBACK is not None
        self.flush()  # what Python still buffers, into the kernel first
        _START_WRITEBACK(self._fh.fileno(), self._written_back, self.size - self._written_back)
        self._written_back = self.size

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        with on_path(self.path):
            self._fh.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                with on_path(self.path):
                    self._fh.flush()
                    os.fsync(self._fh.fileno())
            finally:
                with contextlib.suppress(OSError):
                    self._fh.close()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


@dataclass
class ShardInfo:
    """One finished shard, as the manifest records it."""

    stream: str
    shard: int
    file: str  # path relative to the work dir while running, to the output at the end
    rows: int
    bytes: int
    sha256: str
    audio_seconds: float
    clips: int
    first_seq: int
    last_seq: int
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_nbytes(row: dict[str, Any]) -> int:
    """A close estimate of a row's Parquet size: the audio dominates."""
    n = 64 + sum(len(a["bytes"]) + 64 for a in row.get("audios") or [])
    for v in (row.get("images") or []) + (row.get("videos") or []):
        n += len(v["bytes"] or b"") + 64 if isinstance(v, dict) else len(v)
    for key in ("messages", "chosen", "rejected"):
        n += sum(len(m["content"]) + 16 for m in row.get(key) or [])
    return n + len(row.get("system") or "") + len(row.get("tools") or "") + 96 * len(row.get("audio_info") or [])


class ShardWriter:
    """Writes one stream (config + split) into shards capped at ``max_bytes``.

    Row groups hold at most ``row_group_rows`` rows (or ~1/8 of a shard) so a reader
    streaming audio never has to pull a huge group; columns use the encodings
    ``datasets`` itself writes (media columns PLAIN and uncompressed, content-defined
    chunking for Xet dedup on the Hub).
    """

    def __init__(
        self,
        work_dir: Path,
        stream: str,
        kind: str,
        sample_rate: int,
        max_bytes: int,
        row_group_rows: int,
        first_shard: int,
        on_close: Callable[[ShardInfo], None],
        visual: Visual = NO_VISUAL,
    ) -> None:
        self.dir = work_dir / stream
        with on_path(self.dir, "create"):
            self.dir.mkdir(parents=True, exist_ok=True)
        self.stream = stream
        self.features = features(kind, sample_rate, visual)
        self.schema = self.features.arrow_schema
        self.max_bytes = max_bytes
        self.reserve = 64 * 1024 + max_bytes // 50  # footer, page index, page headers
        self.row_group_rows = row_group_rows
        self.row_group_bytes = max(max_bytes // 8, 1 << 20)
        self.next_shard = first_shard
        self.on_close = on_close
        self._file: CountingFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[dict[str, Any]] = []
        self._buffered = 0
        self._shard_rows = 0
        self._seconds = 0.0
        self._clips = 0
        self._first_seq = self._last_seq = -1
        self._stats: dict[str, Any] = {}

    def add(self, row: dict[str, Any], seq: int, stats: dict[str, Any], size: int | None = None) -> None:
        """``size``: the row's :func:`row_nbytes`, when the worker that built it measured it already."""
        size = row_nbytes(row) if size is None else size
        written = self._file.size if self._file else 0
        if self._shard_rows and written + self._buffered + size + self.reserve > self.max_bytes:
            self._close_shard()
        if self._shard_rows == 0:
            self._first_seq = seq
        self._rows.append(row)
        self._buffered += size
        self._shard_rows += 1
        self._last_seq = seq
        self._seconds += row["audio_seconds"]
        self._clips += len(row["audios"])
        merge_stats(self._stats, stats)
        if len(self._rows) >= self.row_group_rows or self._buffered >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            tmp = self.dir / f"shard-{self.next_shard:05d}.parquet.tmp"
            self._file = CountingFile(tmp)
            cdc = getattr(ds_config, "DEFAULT_CDC_OPTIONS", None)
            kwargs: dict[str, Any] = {"write_page_index": True, **get_parquet_column_options(self.features, self.schema)}
            if cdc:
                kwargs["use_content_defined_chunking"] = cdc
            # pyarrow-stubs want IO or NativeFile; pyarrow itself wraps any object with write() (a PythonFile)
            self._writer = pq.ParquetWriter(self._file, self.schema, **kwargs)  # type: ignore[arg-type]
            if cdc:
                self._writer.add_key_value_metadata({"content_defined_chunking": json.dumps(cdc)})
        # column by column: the same table as from_pylist, a fifth less CPU (one list per column, not a dict per row)
        table = pa.Table.from_pydict({f.name: [r.get(f.name) for r in self._rows] for f in self.schema}, schema=self.schema)
        self._writer.write_table(table, row_group_size=len(self._rows))
        self._rows, self._buffered = [], 0

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is None or self._file is None:
            return
        self._writer.close()
        self._file.close()
        name = f"shard-{self.next_shard:05d}.parquet"
        with on_path(self.dir / name, "rename"):
            os.replace(self.dir / f"{name}.tmp", self.dir / name)
        fsync_dir(self.dir)
        info = ShardInfo(
            self.stream,
            self.next_shard,
            f"{self.stream}/{name}",
            self._shard_rows,
            self._file.size,
            self._file.sha.hexdigest(),
            round(self._seconds, 6),
            self._clips,
            self._first_seq,
            self._last_seq,
            self._stats,
        )
        self._writer = self._file = None
        self._shard_rows, self._seconds, self._clips, self._stats = 0, 0.0, 0, {}
        self.next_shard += 1
        self.on_close(info)

    def first_open_seq(self) -> int | None:
        """The input position of the first row not yet in a closed shard."""
        return self._first_seq if self._shard_rows else None

    def close(self) -> None:
        if self._shard_rows:
            self._close_shard()

    def abort(self) -> None:
        """Drop the open shard (on error): its .tmp is removed, finished shards stay."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._file is not None:
            with contextlib.suppress(OSError, MachineFault):  # a full disk fails the close too: the first error counts
                self._file.close()
        self._writer = self._file = None  # released here, not by a garbage collection at some later moment
        for tmp in self.dir.glob("*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def merge_stats(into: dict[str, Any], add: dict[str, Any]) -> None:
    """Add counters (nested dicts of numbers) from ``add`` into ``into``."""
    for key, value in add.items():
        if isinstance(value, dict):
            merge_stats(into.setdefault(key, {}), value)
        else:
            into[key] = into.get(key, 0) + value
