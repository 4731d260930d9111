"""A byte range of a JSONL file read with the records and lines before it counted (a rank's part) reads as that part
of the whole file: the records read range by range are the records of the whole file, with the same index and line,
however the lines end or how many are blank, and a failure of the file is the one the whole read gives."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from audiodata.readers.jsonstream import iter_file, iter_range
from audiodata.readers.ranges import line_start, split_ranges

LINES = [
    b'{"a": 1}\n',
    b"\n",
    b"   \t\n",
    b'{"b": "\xc3\xa9t\xc3\xa9"}\r\n',
    b"\xc2\xa0\n",  # U+00A0 alone: blank once decoded
    b"not json\n",
    b'{"c": 3}\r{"d": 4}\n',  # a lone carriage return ends a line
    b"\x1c\n",  # blank for str.isspace, not for bytes.isspace
    b'{"e": "' + b"x" * 300 + b'"}\n',  # over max_chars below: F005
    b"\r\r",  # two blank lines ended by lone carriage returns
    b"[1, 2]\n",
    b'{"f": 6}',  # no final line break
]


def _items(items):
    return [(i.index, i.line, i.obj, i.raw, i.code) for i in items]


@pytest.mark.parametrize("bom", [False, True])
def test_ranges_read_back_the_whole_file(tmp_path: Path, bom: bool) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"".join(LINES))
    whole = _items(iter_file(path, 200))
    assert [w[2] for w in whole if w[4] is None] == [{"a": 1}, {"b": "été"}, {"c": 3}, {"d": 4}, [1, 2], {"f": 6}]
    for n in range(1, 14):
        parts = split_ranges(path, n)
        got = []
        for r in parts:
            items = _items(iter_range(path, r.start, r.end, None, 200))
            assert all(line >= r.line for _, line, *_ in items)  # numbered as ranges.py numbers the range's first line
            got += items
        assert got == whole, n
    cuts = [0] + [line_start(path, p, lone_cr=False) for p in range(1, path.stat().st_size, 7)] + [path.stat().st_size]
    cuts = sorted(set(cuts))
    got = [x for a, b in itertools.pairwise(cuts) for x in _items(iter_range(path, a, b, None, 200))]
    assert got == whole


def test_a_cut_moves_to_the_byte_after_the_next_line_feed(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"ab\ncd\n\nef")
    assert [line_start(path, p, lone_cr=False) for p in range(0, 11)] == [0, 3, 3, 3, 6, 6, 6, 7, 9, 9, 9]


def test_a_gzip_file_is_read_in_ranges_of_its_text(tmp_path: Path) -> None:
    """A gzip file's offsets are of its decompressed text (a byte order mark in it included), read from the start."""
    text = b"\xef\xbb\xbf" + b"".join(LINES)
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(text))
    whole = _items(iter_file(path, 200))
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(text)
    for n in (1, 2, 5):
        got = [x for r in split_ranges(plain, n) for x in _items(iter_range(path, r.start, r.end, None, 200))]
        assert got == whole, n


def test_a_failure_in_a_range_is_the_failure_the_whole_read_gives(tmp_path: Path) -> None:
    """UTF-16 text: the whole read gives one F009 for the file (no record read); so does every range of it (no record
    read before it either: not "reading stopped here"). A file gone: F004 for the file."""
    path = tmp_path / "utf16.jsonl"
    path.write_bytes('{"a": 1}\n{"a": 2}\n'.encode("utf-16-le"))
    whole = _items(iter_file(path, 200))
    assert len(whole) == 1 and whole[0][:2] == (-1, 0) and whole[0][4] == "F009"
    for start in (0, 4, 20):
        assert _items(iter_range(path, start, path.stat().st_size, None, 200)) == whole
    gone = [(x.index, x.line, x.code) for x in iter_range(tmp_path / "gone.jsonl", 3, 10, None, 200)]
    assert gone == [(-1, 0, "F004")]


def test_a_line_start_is_after_a_lone_carriage_return_unless_only_line_feeds_cut(tmp_path: Path) -> None:
    """Split ranges (lint) cut where the reader ends lines (``\\r``, ``\\r\\n``, ``\\n``); a rank's cut only after ``\\n``."""
    path = tmp_path / "cr.jsonl"
    path.write_bytes(b"ab\rcd\r\nef\r")  # bytes: a b \r c d \r \n e f \r (10)
    assert [line_start(path, p) for p in range(0, 12)] == [0, 3, 3, 3, 7, 7, 7, 7, 10, 10, 10, 10]
    assert [line_start(path, p, lone_cr=False) for p in range(0, 12)] == [0, 7, 7, 7, 7, 7, 7, 7, 10, 10, 10, 10]
