"""Streaming JSON readers: array elements, JSONL lines, gzip, positions and bounds."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from audiodata.readers import jsonstream, rawfile
from audiodata.readers.jsonstream import iter_array, iter_file, iter_lines

BIG = 10**6

# Strings that would fool a naive scanner: separators, brackets and quotes inside
# strings, escaped quotes and backslashes, a backslash as the last character, an
# escaped newline, unicode.
TRICKY = [
    {"text": 'a",]}[{b', "n": 1},
    {"text": 'q\\"x\\\\', "nested": [1, {"z": "]"}, [], {}]},
    {"text": "ends with backslash \\", "more": "\\\\\\"},
    {"text": 'quote at end"', "list": ["[", "]", "{", "}", ",", '"']},
    {"text": "line\nbreak\ttab", "uni": "héllo — 音声 🎧"},
    "a bare string, with ] and }",
    42,
    -3.5e-2,
    None,
    True,
    False,
    [],
    {},
    [[1, 2], {"k": [3]}],
]


def pretty_array(objs: list) -> tuple[str, list[int]]:
    """A pretty-printed array and the 1-based line each element starts on."""
    parts = [json.dumps(o, indent=2, ensure_ascii=False) for o in objs]
    lines, line = [], 2
    for p in parts:
        lines.append(line)
        line += p.count("\n") + 1
    return "[\n" + ",\n".join(parts) + "\n]\n", lines


def items(it) -> list:
    return list(it)


def stream(text: str) -> io.BufferedReader:
    """The readers work on bytes (a binary, buffered stream), as iter_file hands them."""
    return io.BufferedReader(io.BytesIO(text.encode("utf-8")))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 64])
def test_pretty_array_across_chunk_boundaries(monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    text, lines = pretty_array(TRICKY)
    got = items(iter_array(stream(text), BIG))
    assert [g.obj for g in got] == TRICKY
    assert [g.index for g in got] == list(range(len(TRICKY)))
    assert [g.line for g in got] == lines
    assert all(g.code is None and g.error is None for g in got)


@pytest.mark.parametrize("chunk", [1, 7])
def test_compact_array_elements_on_one_line(monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    text = '[{"a": 1}, {"b": "x,y]"} ,2,"s" ,\n  {"c": [ ]}\n\n , null]'
    got = items(iter_array(stream(text), BIG))
    assert [g.obj for g in got] == [{"a": 1}, {"b": "x,y]"}, 2, "s", {"c": []}, None]
    assert [g.line for g in got] == [1, 1, 1, 1, 2, 4]
    assert [g.index for g in got] == [0, 1, 2, 3, 4, 5]


def test_empty_array_yields_nothing():
    assert items(iter_array(stream("  \n[ \n ]\n"), BIG)) == []


def test_malformed_element_does_not_stop_the_array():
    text = '[\n{"a": 1},\n{"b": 2 3},\n{"c": 3}\n]'
    got = items(iter_array(stream(text), BIG))
    assert [(g.index, g.line, g.code) for g in got] == [(0, 2, None), (1, 3, "F001"), (2, 4, None)]
    assert got[1].raw == '{"b": 2 3}'
    assert got[1].error.startswith("invalid JSON")
    assert got[2].obj == {"c": 3}


@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_truncated_array_inside_an_element(monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    text = '[\n  {"a": 1},\n  {"b": [1, 2'
    got = items(iter_array(stream(text), BIG))
    assert [g.obj for g in got[:1]] == [{"a": 1}]
    assert len(got) == 2
    last = got[1]
    assert (last.index, last.line, last.code) == (1, 3, "F001")
    assert "truncated" in last.error
    assert last.raw.startswith('{"b": [1, 2')


def test_truncated_array_inside_a_string():
    got = items(iter_array(stream('[{"a": "never closed'), BIG))
    assert [(g.index, g.code) for g in got] == [(0, "F001")]
    assert "truncated" in got[0].error


@pytest.mark.parametrize("text", ['[{"a": 1},', '[{"a": 1}, \n', "["])
def test_array_without_closing_bracket(text):
    got = items(iter_array(stream(text), BIG))
    assert got[-1].code == "F001"
    assert "not closed" in got[-1].error
    assert [g.obj for g in got if g.code is None] == ([{"a": 1}] if "a" in text else [])


@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_text_after_closing_bracket(monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    got = items(iter_array(stream('[{"a": 1}, {"b": 2}] {"c": 3}'), BIG))
    assert [g.obj for g in got[:2]] == [{"a": 1}, {"b": 2}]
    assert len(got) == 3
    assert (got[2].index, got[2].code) == (2, "F001")
    assert "after the closing" in got[2].error
    assert got[2].raw and '{"c": 3}'.startswith(got[2].raw)  # a preview of the stray text


def test_whitespace_after_closing_bracket_is_fine():
    got = items(iter_array(stream("[1, 2]\n\n  \t\n"), BIG))
    assert [g.obj for g in got] == [1, 2]


def test_text_after_closing_bracket_is_located_on_its_own_line():
    got = items(iter_array(stream('[\n{"a": 1}\n]\n\n\ngarbage\n'), BIG))
    assert got[-1].code == "F001"
    assert got[-1].line == 6


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_oversized_array_element_is_f005_and_the_run_continues(monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    big = {"audio": "A" * 500, "text": 'x",]}'}
    text, lines = pretty_array([{"a": 1}, big, {"b": 2}, "s"])
    got = items(iter_array(stream(text), 100))
    assert [g.index for g in got] == [0, 1, 2, 3]
    assert [g.line for g in got] == lines
    assert [g.code for g in got] == [None, "F005", None, None]
    assert got[1].obj is None and got[1].raw is None  # the huge text is not kept
    assert "exceeds the bound of 100" in got[1].error
    assert [got[2].obj, got[3].obj] == [{"b": 2}, "s"]


def test_array_nbytes_records_the_element_size():
    got = items(iter_array(stream('[{"a": 1},{"bb": 22}]'), BIG))
    assert [g.nbytes for g in got] == [len('{"a": 1}'), len('{"bb": 22}')]


# ---------------------------------------------------------------- JSONL


def test_jsonl_blank_lines_are_skipped_index_counts_records_line_counts_lines():
    text = '{"a": 1}\n\n   \n{"b": 2}\r\n\t\n{"c": 3}'
    got = items(iter_lines(stream(text), BIG))
    assert [(g.index, g.line, g.obj) for g in got] == [(0, 1, {"a": 1}), (1, 4, {"b": 2}), (2, 6, {"c": 3})]


def test_jsonl_malformed_line_is_f001_and_next_lines_are_read():
    text = '{"a": 1}\n{"b": \n{"c": 3}\n[1, 2]\n'
    got = items(iter_lines(stream(text), BIG))
    assert [(g.index, g.line, g.code) for g in got] == [(0, 1, None), (1, 2, "F001"), (2, 3, None), (3, 4, None)]
    assert got[1].raw.strip() == '{"b":'
    assert "column" in got[1].error
    assert got[2].obj == {"c": 3}
    assert got[3].obj == [1, 2]  # not an object: that is the dialect layer's F002


@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_jsonl_oversized_line_is_f005_and_the_run_continues(monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    huge = json.dumps({"audio": "B" * 300})
    text = f'{{"a": 1}}\n{huge}\n\n{{"b": 2}}\n'
    got = items(iter_lines(stream(text), 50))
    assert [(g.index, g.line, g.code) for g in got] == [(0, 1, None), (1, 2, "F005"), (2, 4, None)]
    assert got[1].obj is None and got[1].raw is None
    assert f"record of {len(huge) + 1} bytes" in got[1].error
    assert got[2].obj == {"b": 2}


def test_jsonl_oversized_last_line_without_newline():
    got = items(iter_lines(stream('{"a": 1}\n' + json.dumps({"x": "y" * 100})), 40))
    assert [(g.index, g.line, g.code) for g in got] == [(0, 1, None), (1, 2, "F005")]


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_record_of_exactly_the_bound_is_accepted(layout):
    rec = json.dumps({"a": "x" * 20})
    bound = len(rec)
    if layout == "lines":
        got = items(iter_lines(stream(rec + "\n" + rec + "\n"), bound))
    else:
        got = items(iter_array(stream("[\n" + rec + "\n,\n" + rec + "\n]"), bound))
    assert [g.code for g in got] == [None, None]


# ---------------------------------------------------------------- files


def write(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def summary(path: Path, max_chars: int = BIG) -> list[tuple]:
    return [(g.index, g.line, g.obj, g.code) for g in iter_file(path, max_chars)]


def test_iter_file_jsonl_gz(tmp_path):
    p = write(tmp_path / "d.jsonl.gz", '{"a": 1}\n\n{"b": "ü"}\n', gz=True)
    assert summary(p) == [(0, 1, {"a": 1}, None), (1, 3, {"b": "ü"}, None)]


def test_iter_file_json_gz_array(tmp_path):
    text, lines = pretty_array(TRICKY[:4])
    p = write(tmp_path / "d.json.gz", text, gz=True)
    got = summary(p)
    assert [g[2] for g in got] == TRICKY[:4]
    assert [g[1] for g in got] == lines


@pytest.mark.parametrize("name", ["plain.jsonl", "plain.json", "noext"])
def test_gzip_is_detected_by_magic_bytes_not_suffix(tmp_path, name):
    p = write(tmp_path / name, '{"a": 1}\n{"b": 2}\n', gz=True)
    assert summary(p) == [(0, 1, {"a": 1}, None), (1, 2, {"b": 2}, None)]


@pytest.mark.parametrize("gz", [False, True])
def test_json_file_holding_one_pretty_printed_object(tmp_path, gz):
    obj = {"audio": "a.wav", "text": "hello\nworld", "nested": {"k": [1, 2, {"x": "}"}]}}
    p = write(tmp_path / ("one.json.gz" if gz else "one.json"), json.dumps(obj, indent=4), gz=gz)
    assert summary(p) == [(0, 1, obj, None)]


def test_json_file_holding_jsonl_is_read_line_by_line(tmp_path):
    p = write(tmp_path / "lines.json", '{"a": 1}\n{"b": 2}\n{oops\n')
    assert [(g[0], g[1], g[3]) for g in summary(p)] == [(0, 1, None), (1, 2, None), (2, 3, "F001")]


def test_iter_file_pretty_array_with_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonstream, "CHUNK", 7)
    text, lines = pretty_array(TRICKY)
    p = write(tmp_path / "arr.json", "\n\n" + text)  # leading blank lines shift every line by 2
    got = summary(p)
    assert [g[2] for g in got] == TRICKY
    assert [g[1] for g in got] == [n + 2 for n in lines]


def test_utf8_bom_is_ignored(tmp_path):
    arr = write(tmp_path / "bom.json", '\ufeff[{"a": 1}]')
    lines = write(tmp_path / "bom.jsonl", '\ufeff{"a": 1}\n')
    assert summary(arr) == [(0, 1, {"a": 1}, None)]
    assert summary(lines) == [(0, 1, {"a": 1}, None)]


def test_empty_file_yields_nothing(tmp_path):
    assert summary(write(tmp_path / "empty.jsonl", "")) == []
    assert summary(write(tmp_path / "empty.json", "\n\n")) == []


CR_TEXT = '{"a": 1}\r{"b": 2}\r\r\n{"c": 3}\r\n\r{"d": 4}\r'


CR_READ = CR_TEXT.replace("\r\n", "\0").replace("\r", "\n").replace("\0", "\r\n").encode()


class Trickle(io.RawIOBase):
    """At most ``step`` bytes per read: a \r at the end of one, its \n in the next."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(self.step, len(b), len(self.data))
        b[:n], self.data = self.data[:n], self.data[n:]
        return n


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_lone_carriage_returns_become_line_ends_across_reads(step):
    assert io.BufferedReader(rawfile._LoneCR(Trickle(CR_TEXT.encode(), step)), 4).read() == CR_READ


@pytest.mark.parametrize("step", [1, 2, 3, 7])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_lone_carriage_returns_read_into_buffers_of_any_size(step, size):
    """A 1-byte buffer while a \r is held: the \r\n stays one line end (it was handed on as a lone \r)."""
    raw, buf, got = rawfile._LoneCR(Trickle(CR_TEXT.encode(), step)), bytearray(size), bytearray()
    while n := raw.readinto(buf):
        got += buf[:n]
    assert bytes(got) == CR_READ


@pytest.mark.parametrize("gz", [False, True])
def test_lone_carriage_returns_end_jsonl_lines_as_in_pyarrow(tmp_path, gz):
    """Classic Mac line ends: pyarrow's JSON reader (datasets, LLaMA-Factory) reads one record per line."""
    p = write(tmp_path / "cr.jsonl", CR_TEXT, gz=gz)
    assert summary(p) == [(0, 1, {"a": 1}, None), (1, 2, {"b": 2}, None), (2, 4, {"c": 3}, None), (3, 6, {"d": 4}, None)]
