"""``split_ranges``: byte ranges of a JSONL file at line boundaries, with exact first line numbers."""

from __future__ import annotations

import errno
import gzip
import io
import itertools
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiodata.readers import ranges, rawfile
from audiodata.readers.jsonstream import (
    Cursor,
    RawItem,
    file_failure,
    iter_file,
    iter_range,
    line_item,
    parse_text,
    range_lines,
    splittable,
)
from audiodata.readers.ranges import ByteRange, split_ranges

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def line_starts(data: bytes) -> list[int]:
    """Every line start, the plain way: 0 and just past each \\r\\n, \\n or lone \\r (a start at EOF included)."""
    return [0, *(m.end() for m in re.finditer(rb"\r\n|\r|\n", data))]


def check(data: bytes, parts: int) -> list[ByteRange]:
    got = split_ranges(io.BytesIO(data), parts)
    starts = line_starts(data)
    assert len(got) == parts
    assert got[0].start == 0 and got[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(got))  # contiguous: every byte once, in order
    assert b"".join(data[r.start : r.end] for r in got) == data
    for k, r in enumerate(got):
        assert r.size >= 0
        assert r.start in starts or r.start == len(data)
        # the line number a whole-file read gives the line starting there: 1 + the line ends before it
        assert r.line == len(re.findall(rb"\r\n|\r|\n", data[: r.start])) + 1
        if k:  # the first line start at or after the even byte target (never before the previous range)
            target = k * len(data) // parts
            first = next((s for s in starts if s >= target), len(data))
            assert r.start == max(got[k - 1].start, first)
    return got


def test_plain_lines_split_evenly_with_line_numbers() -> None:
    data = b"".join(b'{"i": %d}\n' % i for i in range(100))  # 10 bytes per line up to i=9, then 11
    got = check(data, 4)
    assert [r.line for r in got] == [data[: r.start].count(b"\n") + 1 for r in got]
    assert got[0] == ByteRange(0, got[1].start, 1)
    assert all(r.size > 0 for r in got)
    assert split_ranges(io.BytesIO(data), 4) == got  # deterministic


def test_crlf_is_one_line_end_and_never_split() -> None:
    data = b"".join(b'{"i": %d}\r\n' % i for i in range(50))
    for parts in range(1, 12):
        got = check(data, parts)
        for r in got:
            assert r.start == 0 or data[r.start - 2 : r.start] == b"\r\n"
            assert r.line == data[: r.start].count(b"\r\n") + 1


def test_lone_cr_ends_a_line_as_the_reader_takes_it() -> None:
    data = b'{"a": 1}\r{"a": 2}\r{"a": 3}\r{"a": 4}'
    got = check(data, 4)
    assert [(r.start, r.line) for r in got] == [(0, 1), (9, 2), (18, 3), (27, 4)]


def test_last_line_without_newline() -> None:
    data = b'{"a": 1}\n{"a": 2}\n{"a": 3}'
    got = check(data, 3)
    assert [(r.start, r.end, r.line) for r in got] == [(0, 9, 1), (9, 18, 2), (18, 26, 3)]


def test_empty_file_gives_empty_ranges() -> None:
    assert split_ranges(io.BytesIO(b""), 3) == [ByteRange(0, 0, 1)] * 3


def test_fewer_lines_than_parts() -> None:
    data = b'{"a": 1}\n{"a": 2}\n'
    got = check(data, 8)
    nonempty = [r for r in got if r.size]
    assert [(r.start, r.line) for r in nonempty] == [(0, 1), (9, 2)]
    assert sum(r.size for r in got) == len(data)


def test_one_line_longer_than_a_range() -> None:
    data = b'{"a": 1}\n{"long": "' + b"x" * 5000 + b'"}\n{"a": 3}\n'
    got = check(data, 10)
    long_start = 9
    holder = [r for r in got if r.start <= long_start < r.end]
    assert len(holder) == 1 and holder[0].end > long_start + 5000  # the long line lies whole in one range
    assert [r.line for r in got if r.size] == [1, 3] or [r.line for r in got if r.size] == [1, 2, 3]


def test_cr_lf_cut_by_a_block_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few bytes: a \\r\\n falls across block edges in every position, and lines still count once."""
    monkeypatch.setattr(ranges, "BLOCK", 3)
    data = b"ab\r\ncd\r\n\r\nef\rgh\r\r\n\n" * 7
    for parts in range(1, 15):
        check(data, parts)


def test_path_and_gzip(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    assert split_ranges(f, 2) == split_ranges(str(f), 2) == [ByteRange(0, 9, 1), ByteRange(9, 18, 2)]
    g = tmp_path / "a.jsonl.gz"
    g.write_bytes(gzip.compress(f.read_bytes()))
    with pytest.raises(ValueError, match="gzip"):
        split_ranges(g, 2)
    with pytest.raises(ValueError, match="at least 1"):
        split_ranges(f, 0)


_LINE = st.one_of(
    st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.just(b""),
    st.just(b"x" * 300),  # longer than most ranges
)
_END_ = st.sampled_from([b"\n", b"\r\n", b"\r", b""])


@SETTINGS
@given(st.lists(st.tuples(_LINE, _END_), max_size=30), st.integers(1, 12), st.integers(2, 64))
def test_any_bytes_any_parts(lines: list[tuple[bytes, bytes]], parts: int, block: int) -> None:
    """Whatever the line ends, lengths, and block size: contiguous, at line starts, exact line numbers."""
    data = b"".join(a + b for a, b in lines)
    if data.startswith(b"\x1f\x8b"):  # gzip's magic: refused (test_path_and_gzip)
        data = b"{" + data
    old = ranges.BLOCK
    ranges.BLOCK = block
    try:
        check(data, parts)
    finally:
        ranges.BLOCK = old


# -- reading the ranges: the same records as reading the whole file -----------------------------------------------------

LONG = b'"' + b"y" * 60 + b'"'  # over the record bound of 40 bytes
_RECORD = st.sampled_from(
    [
        b'{"a": 1}',
        b'{"b": "x\\u00e9"}',
        b"[1, 2]",
        b"{bad json",
        b"   ",
        b"",
        b"\xef\xbb\xbf{}",
        b'{"c": "\xff\xfe"}',
        b"\x0c",
        LONG,
    ]
)


def _items(found: list[Any]) -> list[tuple[Any, ...]]:
    return [(x.index, x.line, x.obj, x.raw, x.error, x.code, x.nbytes, x.field) for x in found]


def whole_and_ranges(path: Path, parts: int, max_chars: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What iter_file gives, and what reading the ranges gives put together as text-only lint does (indices
    rebased by the records before, a failure rebuilt by file_failure, nothing read after it)."""
    whole = [parse_text(x, max_chars) for x in iter_file(path, max_chars, lazy=True)]
    if not splittable(path):  # lint reads it whole
        return _items(whole), _items(whole)
    joined: list[RawItem] = []
    for r in split_ranges(path, parts):
        if not r.size:
            continue
        base = len(joined)
        stop = None
        for x in iter_range(path, r.start, r.end, r.line, max_chars, lazy=True):
            if x.stopped:
                stop = file_failure(RawItem(base + x.index, x.line, code=x.code, error=x.error), base + x.index > 0)
                break
            x = parse_text(x, max_chars)
            x.index += base
            joined.append(x)
        if stop is not None:
            joined.append(stop)
            break
    return _items(whole), _items(joined)


@SETTINGS
@given(st.lists(st.tuples(_RECORD, _END_), max_size=25), st.integers(1, 9), st.booleans())
def test_reading_ranges_gives_the_items_of_the_whole_file(lines: list[tuple[bytes, bytes]], parts: int, bom: bool) -> None:
    """Blank and whitespace lines, CR/CRLF/LF, invalid JSON and UTF-8, a BOM, lines over the record bound:
    the ranges' records, lines, values and findings are the whole file's, in order."""
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(a + b for a, b in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(data)
        whole, joined = whole_and_ranges(path, parts, 40)
    assert joined == whole


def lines_read_as_items(path: Path, r: ByteRange, max_chars: int) -> list[RawItem] | None:
    """The items of a range read as raw lines (:func:`range_lines`), each line as text-only lint's general path takes
    it (:func:`line_item`); None where range_lines refuses the range."""
    got = range_lines(path, r.start, r.end, max_chars)
    if got is None:
        return None
    lines, long_runs = got
    assert long_runs == {k for k, piece in enumerate(lines) if re.search(rb"[0-9]{19}", piece)}
    out: list[RawItem] = []
    for k, piece in enumerate(lines):
        if piece and not piece.isspace():
            item = line_item(piece, len(out), r.line + k, max_chars, lazy=True)
            if item is not None:
                out.append(parse_text(item, max_chars))
    return out


_DIGITS = st.just(b'{"n": 12345678901234567890}')  # json reads it (an int), orjson would not: a long digit run


@SETTINGS
@given(st.lists(st.tuples(st.one_of(_RECORD, _DIGITS), _END_), max_size=25), st.integers(1, 9), st.booleans())
def test_every_way_of_reading_a_range_gives_the_same_items(lines: list[tuple[bytes, bytes]], parts: int, bom: bool) -> None:
    """One range read three ways, each the items the whole file gives there: from its known first line (indexed
    from 0; the reader's cursor ends on the next range's first line), counted from the file's start (a rank's part:
    index and line the whole file's), and as raw lines (text-only lint's fast read; it may refuse a range)."""
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(a + b for a, b in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(data)
        whole = [parse_text(x, 40) for x in iter_file(path, 40, lazy=True)]
        cut = split_ranges(path, parts)
        counted: list[RawItem] = []
        for k, r in enumerate(cut):
            pos = Cursor()
            known = [parse_text(x, 40) for x in iter_range(path, r.start, r.end, r.line, 40, lazy=True, pos=pos)]
            nxt = cut[k + 1].line if k + 1 < len(cut) else len(re.findall(rb"\r\n|\r|\n", data)) + 1
            assert pos.line == nxt  # pos.line - r.line: the range's line ends
            upto = nxt if r.end < len(data) else len(data) + 1  # the lines in it: a last line without a line end too
            mine = [replace(x, index=x.index - len(counted)) for x in whole if r.size and r.line <= x.line < upto]
            assert _items(known) == _items(mine)
            raw = lines_read_as_items(path, r, 40)
            assert raw is None or _items(raw) == _items(known)
            counted += [parse_text(x, 40) for x in iter_range(path, r.start, r.end, None, 40, lazy=True)]
    assert _items(counted) == _items(whole)


def test_the_raw_lines_read_take_a_byte_order_mark_and_lone_carriage_returns_as_the_items_read(tmp_path: Path) -> None:
    """A byte order mark and lone carriage returns are the window's to handle: raw lines read them as items do."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r{"b": 2}\r\n\r{"c": 3}\n')
    r = split_ranges(path, 1)[0]
    known = list(iter_range(path, r.start, r.end, r.line, 1000))
    assert [(x.obj, x.line) for x in known] == [({"a": 1}, 1), ({"b": 2}, 2), ({"c": 3}, 4)]
    assert range_lines(path, r.start, r.end, 1000) == ([b'{"a": 1}', b'{"b": 2}', b"", b'{"c": 3}', b""], frozenset())
    assert _items(lines_read_as_items(path, r, 1000) or []) == _items(known)


class _FailingFile(io.FileIO):
    """A file with a bad sector at byte ``at``: a read gives the bytes before it, a read from it fails with EIO."""

    at = 0

    def readinto(self, b: Any) -> int:
        pos = self.tell()
        if pos >= self.at:
            raise OSError(errno.EIO, "Input/output error")
        return super().readinto(memoryview(b)[: self.at - pos])


@pytest.mark.parametrize("at", [0, 5, 5000, 9001, 15_000, 10**6])
def test_an_io_error_in_a_range_is_reported_as_reading_the_whole_file_reports_it(
    at: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad sector past the split (the parent's sniff and split read the file before it failed): the records
    before it, then one F004 where reading stopped ("the records before it are kept"), nothing after, as
    the whole read reports it. A file failing its sniff is not split (read whole)."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(b'{"a": %d}\n' % i for i in range(2000)))

    def failing(p: Path) -> io.FileIO:
        f = _FailingFile(p, "rb")
        f.at = at
        return f

    monkeypatch.setattr(rawfile, "open_regular", failing)
    for parts in (1, 3, 7):
        whole, joined = whole_and_ranges(path, parts, 1000)
        assert joined == whole
        assert whole[-1][5] == "F004" if at < 10**6 else len(whole) == 2000


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_leading_whitespace_is_not_the_records_wherever_a_range_begins(parts: int, tmp_path: Path) -> None:
    """A whitespace line without a line end joins the next line: whole, the blank run before it ate those spaces;
    a range beginning there read them as the record's, so its F005 size (66 vs 63) and bound differed (found by
    hypothesis). Leading whitespace is never the record's now: the same size and the same verdict both ways."""
    lines = [b'{"a": 1}\n'] * 7 + [b"   \n", b"   ", b'"' + b"y" * 60 + b'"\n', b"     " + b'"' + b"z" * 35 + b'"\n']
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(lines))
    whole, joined = whole_and_ranges(path, parts, 40)
    assert joined == whole
    assert whole[7][4] == "record of 63 bytes exceeds the bound of 40"
    assert whole[8][2] == "z" * 35  # 37 bytes of record after 5 spaces: within the bound of 40


def _window(path: Path, start: int, end: int, whole: bool) -> tuple[str, bytes | str, int]:
    with rawfile.Source(path) as src:
        try:
            data = src.window_bytes(start, end) if whole else src.window(start, end).read()
        except rawfile.FileFailure as exc:
            return "failed", exc.message, src.bom
        return "read", data, src.bom


_HEAD = st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"{\x00\x00\x00", b"\x00{"])


@SETTINGS
@given(_HEAD, st.lists(st.tuples(_LINE, _END_), max_size=20), st.integers(0, 40), st.integers(0, 40))
@example(b"{\x00\x00\x00", [(b"\x00\x00", b"\n"), (b"", b"\r")], 0, 8)  # found in CI: a held \r hid the 8th byte
def test_a_window_read_at_once_is_the_window_streamed(head: bytes, lines: list[tuple[bytes, bytes]], a: int, b: int) -> None:
    """Source.window_bytes (the raw-lines read) and Source.window (the item reader's stream) read the same bytes of any
    window between line starts: the byte order mark skipped at offset 0, UTF-16/32 refused with the same F009, every
    lone carriage return a line feed."""
    data = head + b"".join(x + y for x, y in lines)
    starts = sorted({0, len(data), *(s for s in line_starts(data) if s <= len(data))})
    start, end = sorted((starts[a % len(starts)], starts[b % len(starts)]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(data)
        streamed = _window(path, start, end, whole=False)
        assert _window(path, start, end, whole=True) == streamed
    if streamed[0] == "read" and start > 0:
        assert streamed[1] == re.sub(rb"\r(?!\n)", b"\n", data[start:end])
