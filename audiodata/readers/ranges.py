"""Byte ranges of a JSONL file cut at line boundaries: how one huge file is shared among workers or ranks.

A cut is moved forward to the next line start (the byte after a ``\\n``), so every line lies in exactly one
range and the ranges, read one after another, are the file. Each range knows the 1-based number of its
first line, so records read from it keep their file's line numbers. Only ``\\n`` cuts: after ``\\r\\n`` or
``\\n`` is a line start however lone carriage returns are read. Pure functions over the file's bytes: the
same file gives every caller the same ranges.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LineRange:
    """Bytes ``[start, end)`` of a file, from a line start to a line start (or the end); ``first_line``: the
    1-based line number of its first line, counting ``\\n`` only (a file with lone carriage returns reads
    more lines: :func:`audiodata.readers.jsonstream.iter_file_range` numbers them as the reader does)."""

    start: int
    end: int
    first_line: int

    @property
    def size(self) -> int:
        return self.end - self.start


def next_line_start(path: str | os.PathLike[str], pos: int) -> int:
    """The first line start at or after byte ``pos``: ``pos`` itself when it is 0 or follows a ``\\n``, else
    the byte after the next ``\\n``, else the file's size."""
    size = os.path.getsize(path)
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    with open(path, "rb") as fh:
        fh.seek(pos - 1)
        at = pos - 1
        while True:
            block = fh.read(CHUNK)
            if not block:
                return size
            k = block.find(b"\n")
            if k >= 0:
                return at + k + 1
            at += len(block)


def count_lines(path: str | os.PathLike[str], start: int, end: int) -> int:
    """The ``\\n`` bytes in ``[start, end)`` (at memchr speed, a chunk at a time)."""
    n = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            block = fh.read(min(CHUNK, left))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    return n


def ranges_at(path: str | os.PathLike[str], cuts: list[int]) -> list[LineRange]:
    """The file cut at byte positions ``cuts`` (ascending; each moved to the next line start): one range
    per gap, ``len(cuts) + 1`` in all, some possibly empty."""
    size = os.path.getsize(path)
    bounds = [0, *(next_line_start(path, c) for c in cuts), size]
    out: list[LineRange] = []
    line = 1
    for a, b in itertools.pairwise(bounds):
        b = max(a, b)
        out.append(LineRange(a, b, line))
        line += count_lines(path, a, b)
    return out


def split_lines(path: str | os.PathLike[str], n: int) -> list[LineRange]:
    """``path`` in ``n`` ranges of about equal bytes, cut at line boundaries (empty ranges kept, so range
    ``k`` is always the ``k``-th of ``n``)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    size = os.path.getsize(Path(path))
    return ranges_at(path, [size * k // n for k in range(1, n)])


__all__ = ["LineRange", "count_lines", "next_line_start", "ranges_at", "split_lines"]
