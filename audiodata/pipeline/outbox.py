"""Encoded audio from the workers to the writer without pickling it through a pipe.

A worker's rows are mostly encoded audio (~100 KB a clip). Through the pool's result pipe each
clip is copied four times (pickle, pipe write, pipe read, unpickle) in 64 KB pieces with a context
switch each. Instead the parent makes one anonymous memory file per job in flight
(``memfd_create``) before the pool forks; a worker writes its batch's clip bytes into the job's
file and returns the rows with the bytes left out, and the parent reads each clip back with one
``pread``. The files have no name: whichever process is killed, the kernel frees them with the
last process that holds them, so nothing can leak into ``/dev/shm``.

Only where workers are forked (they inherit the files) and the platform has ``memfd_create``;
elsewhere the bytes travel in the rows as before. The rows the writer gets are the same either way.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from typing import Any

from audiodata.pipeline.process import AudioSettings, Processed, process_batch
from audiodata.records import Record

#: A slot file keeps its pages between jobs up to this size; a bigger batch's are given back.
KEEP_BYTES = 32 * 2**20

Spans = list[tuple[int, int]]  # (offset, size) of each clip's bytes in the job's memory file, in row order


def available() -> bool:
    return hasattr(os, "memfd_create") and mp.get_start_method(allow_none=False) == "fork"


class Outbox:
    """``slots`` memory files, one per job in flight; job ``n`` uses ``fds[n % slots]``."""

    def __init__(self, slots: int) -> None:
        self.fds: list[int] = []
        try:
            for k in range(slots):
                self.fds.append(os.memfd_create(f"audiodata-outbox-{k}", os.MFD_CLOEXEC))
        except BaseException:
            self.close()
            raise

    def slot(self, n: int) -> int:
        return self.fds[n % len(self.fds)]

    def receive(self, fd: int, done: list[Processed], spans: Spans) -> list[Processed]:
        """Put each clip's bytes back into its row, in the order :func:`process_batch_out` wrote them."""
        it = iter(spans)
        for p in done:
            for audio in _audios(p):
                offset, size = next(it)
                audio["bytes"] = os.pread(fd, size, offset) if size else b""
        end = max((o + s for o, s in spans), default=0)
        if end > KEEP_BYTES:
            os.ftruncate(fd, 0)
        return done

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def _audios(p: Processed) -> list[dict[str, Any]]:
    return p.row["audios"] if p.row is not None else []


def process_batch_out(batch: list[tuple[int, Record]], settings: AudioSettings, fd: int) -> tuple[list[Processed], Spans]:
    """:func:`process_batch` in a worker, the clip bytes written to the memory file ``fd`` (inherited at fork)."""
    done = process_batch(batch, settings)
    spans: Spans = []
    offset = 0
    for p in done:
        for audio in _audios(p):
            data = audio["bytes"]
            size = len(data)
            written = 0
            while written < size:
                written += os.pwrite(fd, memoryview(data)[written:], offset + written)
            spans.append((offset, size))
            offset += size
            audio["bytes"] = None
    return done, spans
