"""Split one JSONL file into byte ranges at line boundaries, each with the number of its first line.

Why: one huge JSONL file is the common corpus layout, and both lint's worker pool and ``convert
--num-shards N --shard-index I`` want to hand parts of it to different processes without a
parent reading every line first. Each part is a byte range that starts at the start of a line,
so a reader can seek to it and read whole records, and it carries the 1-based number of that
line, so every finding stays located exactly as a whole-file read would locate it.

Line ends are what :mod:`audiodata.readers.rawfile` reads as line ends: ``\\n``, ``\\r\\n`` (one
end, never split) and a lone ``\\r`` (classic Mac). A last line without a line end is a line.

The answer depends only on the file's bytes and ``parts`` (deterministic: every rank computes the
same split on its own). Cost: the file is read once up to the last boundary, in 1 MiB blocks,
counting line ends in C (memory is one block, whatever the line lengths).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import IO

BLOCK = 1 << 20
_END = re.compile(rb"[\r\n]")
_LF = re.compile(rb"\n")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, end)`` of a file; ``start`` is the start of line number ``line`` (1-based).

    An empty range (``start == end``) holds no line; its ``line`` is the line that starts there."""

    start: int
    end: int
    line: int

    @property
    def size(self) -> int:
        return self.end - self.start


def split_ranges(source: str | os.PathLike[str] | IO[bytes], parts: int, lines: bool = True) -> list[ByteRange]:
    """``parts`` contiguous ranges covering the whole file, in order, each starting at a line start.

    Range ``k`` starts at the first line start at or after byte ``k * size // parts``, so ranges are
    about equal in bytes. Always exactly ``parts`` ranges: where the file has fewer lines than parts,
    or one line is longer than a range, some ranges are empty (``start == end``); an empty file gives
    ``parts`` empty ranges ``(0, 0, line 1)``. Rank ``I`` of ``N`` can thus take range ``I`` of the
    same split, and the non-empty ranges read in order give every line exactly once.

    ``source`` is a path or a seekable binary file (read from offset 0; its position is not
    restored). Plain text only: a gzip file (its first bytes ``1f 8b``) raises ``ValueError``, since
    its byte offsets are not line boundaries; read it whole instead.

    ``lines=False`` leaves the line numbers out (every range's ``line`` is 1): finding them reads the whole file,
    which a caller whose readers count each range's line ends themselves (the reader's cursor:
    :func:`audiodata.readers.jsonstream.iter_range`) need not do."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            return _split(fh, parts, lines)
    return _split(source, parts, lines)


def _split(fh: IO[bytes], parts: int, lines: bool = True) -> list[ByteRange]:
    size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    if fh.read(2) == b"\x1f\x8b":
        raise ValueError("a gzip file cannot be split into byte ranges at line boundaries; read it whole")
    starts = [0]
    for k in range(1, parts):
        target = k * size // parts
        starts.append(max(starts[-1], _line_start(fh, target, size)))
    numbers = _line_numbers(fh, starts) if lines else [1] * len(starts)
    ends = [*starts[1:], size]
    return [ByteRange(s, e, n) for s, e, n in zip(starts, ends, numbers, strict=True)]


def line_start(path: str | os.PathLike[str], pos: int, lone_cr: bool = True) -> int:
    """The first line start at or after byte ``pos`` of the file at ``path`` (its size if none). ``lone_cr=False``:
    only a ``\\n`` ends a line here (a rank's cut, :mod:`audiodata.pipeline.ranks`: after a ``\\n`` is a line
    start however lone carriage returns are read, and a file of lone ``\\r`` line ends simply stays whole)."""
    with open(path, "rb") as fh:
        return _line_start(fh, pos, fh.seek(0, io.SEEK_END), _END if lone_cr else _LF)


def _line_start(fh: IO[bytes], target: int, size: int, ends: re.Pattern[bytes] = _END) -> int:
    """The first line start at or after ``target`` (``size`` if none): just past the first line
    end that ends at or after ``target``; ``ends`` matches the bytes that end a line."""
    if target <= 0:
        return 0
    at = target - 1  # a line end at target - 1 makes target itself a line start
    while at < size:
        fh.seek(at)
        block = fh.read(BLOCK)
        if not block:
            break
        m = ends.search(block)
        if m is None:
            at += len(block)
            continue
        end = at + m.start()
        if block[m.start()] == 0x0A:  # \n
            return end + 1
        nxt = block[m.start() + 1 : m.start() + 2]
        if not nxt:  # the \r is the block's last byte: the next byte decides
            fh.seek(end + 1)
            nxt = fh.read(1)
        return end + 2 if nxt == b"\n" else end + 1  # \r\n is one end; a lone \r ends a line
    return size


def _line_numbers(fh: IO[bytes], starts: list[int]) -> list[int]:
    """The 1-based line number at each of ``starts`` (ascending line starts): one pass counting
    line ends (``\\n`` and lone ``\\r``) in the bytes before each."""
    out: list[int] = []
    fh.seek(0)
    pos = 0
    ends = 0  # line ends in [0, pos)
    prev_cr = False  # the byte before pos is \r (a \n right at pos then ends no extra line)
    for start in starts:
        while pos < start:
            block = fh.read(min(BLOCK, start - pos))
            if not block:
                break
            ends += block.count(b"\n")
            crs = block.count(b"\r")
            if crs:
                ends += crs - block.count(b"\r\n")  # \r\n already counted by its \n
            if prev_cr and block[0] == 0x0A:
                ends -= 1  # a \r\n cut by the block edge: its \r was counted as lone
            prev_cr = block[-1] == 0x0D
            pos += len(block)
        out.append(ends + 1)
    return out
