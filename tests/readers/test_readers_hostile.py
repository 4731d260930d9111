"""Hostile input to the readers: one record never stops a run, a file never hangs it, nothing vanishes.

Each promise has a firing case and checks that the rest of the file is still read and counted
(read = written + rejected), through the read stage, ``convert`` and ``lint`` alike.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.pipeline.lint import lint
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.pipeline.read import read_records
from audiodata.privacy import public_path
from audiodata.readers import jsonstream, rawfile
from audiodata.readers.jsonstream import iter_file, iter_lines
from audiodata.readers.rawfile import RATIO_AFTER
from audiodata.readers.sources import InputError, expand
from tests.conftest import write_audio

HUGE = "9" * 5000  # past Python's 4300-digit limit for int("...")


def rec(k: int) -> str:
    return json.dumps({"id": f"r{k}", "audio": "a.wav", "text": f"Record number {k} is here."})


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    write_audio(tmp_path / "a.wav", 1.0)
    return tmp_path


def run(path: Path | str, out: Path, **kw: Any) -> tuple[audiodata.ConvertResult, list[dict[str, Any]], dict[str, Any]]:
    """lint and convert of one input: the result, the rejects and the lint report."""
    report = lint([str(path)], num_workers=1, **kw).to_dict()  # first: the output is no input of lint's
    result = audiodata.convert([str(path)], out, num_workers=1, **kw)
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert result.records_read == result.records_written + result.records_rejected
    assert report["summary"]["records"] == result.records_read
    lint_errors = {(f["source"], f["index"]) for f in report["findings"] if f["severity"] == "error"}
    assert lint_errors == {(r["source"], r["index"]) for r in rejects}  # lint and convert agree record for record
    assert json.loads((out / ".audiodata" / "state.json").read_text())["status"] == "complete"
    return result, rejects, report


def reasons(rejects: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    return [(r["index"], r["line"], r["reasons"][0]["code"]) for r in rejects]


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``, or a failure (not a hung test run) when it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: a hang"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- 1. one record can never stop a run ---------------------------------------------------------------------------------------

BIG_INT = '{"id": "big", "audio": "a.wav", "text": "x", "n": ' + HUGE + "}"


@pytest.mark.parametrize(
    ("layout", "where"),
    [("jsonl", 0), ("jsonl", 1), ("jsonl", 2), ("array", 0), ("array", 1), ("pretty", 1)],
)
def test_a_5000_digit_integer_is_that_records_located_f001(corpus: Path, layout: str, where: int):
    records = [rec(0), rec(1), rec(2)]
    records[where] = BIG_INT
    if layout == "jsonl":
        path, text = corpus / "in.jsonl", "\n".join(records) + "\n"
    elif layout == "array":
        path, text = corpus / "in.json", "[" + ",".join(records) + "]"
    else:
        path, text = corpus / "in.json", "[\n" + ",\n".join(records) + "\n]\n"
    path.write_text(text)
    result, rejects, _ = run(path, corpus / "out")
    assert (result.records_read, result.records_written, result.exit_code) == (3, 2, 1)
    line = where + 1 if layout == "jsonl" else (where + 2 if layout == "pretty" else 1)
    assert reasons(rejects) == [(where, line, "F001")]
    msg = rejects[0]["reasons"][0]["message"]
    assert "integer of 5000 digits" in msg and "4300" in msg and "column" in msg
    assert main(["convert", str(path), "-o", str(corpus / "cli"), "--num-workers", "1", "--no-progress"]) == 1


def test_any_exception_of_the_json_parser_is_f001_not_the_runs_end(corpus: Path, monkeypatch: pytest.MonkeyPatch):
    """The class, not the inputs we know: whatever the record parser (``jsonstream.loads``: orjson, then json)
    raises for one record."""
    real = jsonstream.loads

    def loads(text: str, *a: Any, **kw: Any) -> Any:
        if '"r1"' in text:
            raise KeyError("something no one foresaw")
        return real(text, *a, **kw)

    monkeypatch.setattr(jsonstream, "loads", loads)
    path = corpus / "in.jsonl"
    path.write_text("\n".join(rec(k) for k in range(3)) + "\n")
    result, rejects, _ = run(path, corpus / "out")
    assert (result.records_written, reasons(rejects)) == (2, [(1, 2, "F001")])
    assert "something no one foresaw" in rejects[0]["reasons"][0]["message"]


def test_any_exception_of_the_dialect_parser_is_f001_not_the_runs_end(corpus: Path, monkeypatch: pytest.MonkeyPatch):
    from audiodata.pipeline import read

    real = read.parse_record

    def parse_record(obj: Any, ctx: Any) -> Any:
        if isinstance(obj, dict) and obj.get("id") == "r1":
            raise ZeroDivisionError("a value no dialect code foresaw")
        return real(obj, ctx)

    monkeypatch.setattr(read, "parse_record", parse_record)
    path = corpus / "in.jsonl"
    path.write_text("\n".join(rec(k) for k in range(3)) + "\n")
    result, rejects, _ = run(path, corpus / "out")
    assert (result.records_written, reasons(rejects)) == (2, [(1, 2, "F001")])
    assert "ZeroDivisionError" in rejects[0]["reasons"][0]["message"]


@pytest.mark.parametrize("layout", ["jsonl", "array"])
def test_a_record_nested_100k_deep_is_a_located_f001(corpus: Path, layout: str):
    deep = '{"id": "deep", "audio": "a.wav", "text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    records = [rec(0), deep, rec(2)]
    path = corpus / ("in.jsonl" if layout == "jsonl" else "in.json")
    path.write_text("\n".join(records) + "\n" if layout == "jsonl" else "[\n" + ",\n".join(records) + "\n]")
    result, rejects, _ = run(path, corpus / "out")
    assert result.records_written == 2
    assert reasons(rejects) == [(1, 2 if layout == "jsonl" else 3, "F001")]
    assert "nested too deep" in rejects[0]["reasons"][0]["message"]


@pytest.mark.parametrize("depth", [101, 500])
def test_nesting_past_the_bound_is_f001_before_any_later_stage_recurses(corpus: Path, depth: int):
    """Hundreds of levels parse (json's C parser stops near Python's recursion limit), and then copying
    (--fix), schema checks and pickling to workers would recurse; the reader's bound keeps every later
    stage far from the limit."""
    deep = "[" * depth + "]" * depth
    turns = [{"from": "human", "value": "<audio>Hi?"}, {"from": "bot", "value": "Yo."}]
    ok = json.dumps({"conversations": turns, "audios": ["a.wav"]})
    records = [rec(0), ok[:-1] + ', "tools": ' + deep + "}", ok[:-1] + ', "extra": ' + deep + "}", ok]
    path = corpus / "in.jsonl"
    path.write_text("\n".join(records) + "\n")
    _, rejects, _ = run(path, corpus / "out")
    assert reasons(rejects) == [(1, 2, "F001"), (2, 3, "F001")]
    assert f"nested {depth + 1} levels deep" in rejects[0]["reasons"][0]["message"]
    fixed = lint([str(path)], num_workers=2, fix=corpus / "fixed.jsonl")  # --fix copies records: no RecursionError there
    assert fixed.to_dict()["fix"]["not_copied"] == 2
    two = audiodata.convert([str(path)], corpus / "out2", num_workers=2)
    assert (two.records_written, two.records_rejected) == (2, 2)


def test_a_lone_surrogate_is_f001_located_to_its_field(corpus: Path):
    """JSON lets "\\ud800" through; no UTF-8 file, Parquet string or rejects line can hold it."""
    bad = '{"id": "s", "audio": "a.wav", "text": "half a pair \\ud83c here"}'
    pair = '{"id": "p", "audio": "a.wav", "text": "a whole pair \\ud83c\\udfa7 is fine"}'
    path = corpus / "in.jsonl"
    path.write_text("\n".join([rec(0), bad, pair]) + "\n")
    result, rejects, _ = run(path, corpus / "out")
    assert result.records_written == 2
    assert reasons(rejects) == [(1, 2, "F001")]
    assert rejects[0]["reasons"][0]["field"] == "text"


@pytest.mark.parametrize(
    ("ref", "why"),
    [("a\\u0000.wav", "NUL"), ("a" * 300 + ".wav", "name of 304 bytes"), ("a/" * 2100 + "a.wav", "path of 4205 bytes")],
)
def test_an_audio_path_no_file_system_can_hold_is_a001_not_a_crash(corpus: Path, ref: str, why: str):
    """A NUL or an over-long name make the OS calls raise (ValueError, ENAMETOOLONG) instead of saying "not found"."""
    path = corpus / "in.jsonl"
    path.write_text("\n".join([rec(0), '{"audio": "' + ref + '", "text": "bad path"}', rec(2)]) + "\n")
    result, rejects, _ = run(path, corpus / "out")
    assert result.records_written == 2
    assert reasons(rejects) == [(1, 2, "A001")]
    assert why in rejects[0]["reasons"][0]["message"]


def test_a_stray_closing_brace_in_an_array_is_one_f001_not_an_endless_loop(corpus: Path):
    path = corpus / "in.json"
    path.write_text("[" + rec(0) + "}, " + rec(1) + "]")
    items = within(10, lambda: list(iter_file(path, 10**6)))
    assert [(i.index, i.code) for i in items] == [(0, "F001"), (1, None)]


def test_a_long_run_of_tiny_elements_is_linear(corpus: Path):
    """[1,1,1,...]: the scanner once copied the rest of its 1 MiB chunk per element (quadratic)."""
    path = corpus / "in.json"
    path.write_bytes(b"[" + b"1," * 2_000_000 + b"1]")
    items = within(120, lambda: sum(1 for _ in iter_file(path, 10**6, lazy=True)))
    assert items == 2_000_001


# -- file-level failures: one item each, counted, located where reading stopped ------------------------------------------------


class Breaks(io.RawIOBase):
    """A file whose reads fail with EIO after ``after`` bytes (a disk or NFS error part way)."""

    def __init__(self, data: bytes, after: int) -> None:
        self.data, self.after, self.at = data, after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.at >= self.after:
            raise OSError(errno.EIO, "Input/output error")
        n = min(len(b), self.after - self.at, len(self.data) - self.at)
        b[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self.at = pos
        return pos

    def tell(self) -> int:
        return self.at


def test_a_read_error_part_way_keeps_the_records_before_it_and_ends_with_one_located_f004(corpus, monkeypatch):
    lines = [rec(k) for k in range(300)]
    path = corpus / "in.jsonl"
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    after = len("\n".join(lines[:200]) + "\n") + 5  # inside line 201, past the 4 kB the layout is sniffed from
    monkeypatch.setattr(rawfile, "BUFFER", 4096)  # the error comes a few buffer fills in
    monkeypatch.setattr(rawfile, "open_regular", lambda p: Breaks(data, after))
    result, rejects, _ = run(path, corpus / "out")
    assert result.records_read == result.records_written + 1
    assert 150 < result.records_written <= 200  # every record the reader got before the error (a buffer's worth may not)
    assert reasons(rejects) == [(result.records_written, result.records_written + 1, "F004")]
    msg = rejects[0]["reasons"][0]["message"]
    assert "Input/output error" in msg and "records before it are kept" in msg


def test_a_truncated_gzip_keeps_the_records_before_the_cut(corpus: Path):
    body = ("\n".join(rec(k) for k in range(2000)) + "\n").encode()
    packed = gzip.compress(body)
    path = corpus / "in.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    items = list(iter_file(path, 10**6))
    kept = [i for i in items if i.code is None]
    assert kept and [i.index for i in kept] == list(range(len(kept)))
    last = items[-1]
    assert (last.code, last.index) == ("F004", len(items) - 1)
    assert last.line == len(items)  # the line reading reached
    assert "Compressed file ended" in (last.error or "")


@pytest.mark.parametrize("fault", ["deleted", "permission", "eio"])
def test_a_file_that_fails_between_expansion_and_reading_is_its_f004(corpus, monkeypatch, fault):
    good, bad = corpus / "good.jsonl", corpus / "bad.jsonl"
    good.write_text(rec(0) + "\n")
    bad.write_text(rec(1) + "\n" + rec(2) + "\n")
    real_expand = audiodata.pipeline.convert.expand_inputs

    def expand_then_fail(*a: Any, **kw: Any) -> Any:
        bad.write_text(rec(1) + "\n" + rec(2) + "\n")  # there when the inputs are listed (for each command)
        out = real_expand(*a, **kw)
        if fault == "deleted":
            bad.unlink()
        return out

    real_open = rawfile.open_regular

    def faulty_open(path: Path) -> Any:
        if path.name == "bad.jsonl" and fault == "permission":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        if path.name == "bad.jsonl" and fault == "eio":
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_open(path)

    monkeypatch.setattr(audiodata.pipeline.convert, "expand_inputs", expand_then_fail)
    monkeypatch.setattr(audiodata.pipeline.lint, "expand_inputs", expand_then_fail)
    monkeypatch.setattr(rawfile, "open_regular", faulty_open)
    result, rejects, _ = run(corpus, corpus / "out")
    assert (result.records_read, result.records_written, result.exit_code) == (2, 1, 1)  # the unreadable file counts once
    # outputs name an absolutely typed input relative to its folder (audiodata/privacy.py)
    shown = os.path.join(public_path(str(corpus)), "bad.jsonl")
    assert [(r["source"], r["index"], r["reasons"][0]["code"]) for r in rejects] == [(shown, -1, "F004")]
    want = {"deleted": "No such file", "permission": "Permission denied", "eio": "Input/output error"}[fault]
    assert want in rejects[0]["reasons"][0]["message"]
    assert str(corpus) not in rejects[0]["reasons"][0]["message"]  # the message names the file as given, not a resolved path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway; the injected PermissionError covers it")
def test_chmod_000_is_f004(corpus: Path):
    path = corpus / "in.jsonl"
    path.write_text(rec(0) + "\n")
    path.chmod(0)
    try:
        items = list(iter_file(path, 10**6))
    finally:
        path.chmod(0o644)
    assert [(i.index, i.code) for i in items] == [(-1, "F004")]
    assert "Permission denied" in (items[0].error or "")


# -- 3. not a regular file; UTF-16/32 ------------------------------------------------------------------------------------------


@pytest.fixture()
def fifo(corpus: Path) -> Path:
    path = corpus / "pipe.jsonl"
    os.mkfifo(path)
    return path


def test_dev_zero_fifo_and_socket_named_as_inputs_are_usage_errors(corpus: Path, fifo: Path, capsys):
    sock_path = corpus / "s.jsonl"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for given, kind in [("/dev/zero", "a character device"), (str(fifo), "a FIFO"), (str(sock_path), "a socket")]:
            with pytest.raises(InputError, match=f"not a regular file \\({kind}\\)"):
                within(10, lambda g=given: expand([g]))
            assert within(10, lambda g=given: main(["lint", g, "--no-audio", "--no-progress"])) == 2
            assert "not a regular file" in capsys.readouterr().err
    finally:
        sock.close()


def test_a_fifo_found_in_a_folder_or_a_glob_is_a_located_f004_and_never_blocks(corpus: Path, fifo: Path):
    (corpus / "in.jsonl").write_text(rec(0) + "\n")
    result, rejects, _ = within(60, lambda: run(corpus, corpus / "out"))
    assert (result.records_read, result.records_written) == (2, 1)
    shown = os.path.join(public_path(str(corpus)), fifo.name)  # outputs name absolute inputs relative to their folder
    assert [(r["source"], r["index"], r["reasons"][0]["code"]) for r in rejects] == [(shown, -1, "F004")]
    assert "not a regular file (a FIFO)" in rejects[0]["reasons"][0]["message"]
    items = within(10, lambda: list(read_records(expand([str(corpus / "*.jsonl")]), 10**6)))
    base = public_path(str(corpus / "*.jsonl"))  # a glob's files are named from the folder it starts in
    assert [(p.source.file, p.findings[0].code if p.findings else None) for p in items] == [
        (os.path.join(os.path.dirname(base), "in.jsonl"), None),
        (os.path.join(os.path.dirname(base), fifo.name), "F004"),
    ]


def test_a_file_swapped_for_a_fifo_after_its_stat_is_refused_without_blocking(fifo: Path, monkeypatch):
    """The race the stat cannot close: the open itself must not wait for a writer."""
    regular = os.stat_result((0o100644, *os.stat(fifo)[1:]))
    monkeypatch.setattr(rawfile.os, "stat", lambda p: regular)
    items = within(10, lambda: list(iter_file(fifo, 10**6)))
    assert [(i.index, i.code) for i in items] == [(-1, "F004")]
    assert "a FIFO" in (items[0].error or "")


def test_a_dataset_info_json_that_is_a_fifo_is_a_usage_error_not_a_hang(corpus: Path):
    os.mkfifo(corpus / "dataset_info.json")
    with pytest.raises(InputError, match="not a regular file"):
        within(10, lambda: expand([str(corpus / "dataset_info.json")]))


@pytest.mark.parametrize(
    ("encoding", "bom", "named"),
    [
        ("utf-16", True, "UTF-16 LE"),
        ("utf-16-le", False, "UTF-16 LE"),
        ("utf-16-be", False, "UTF-16 BE"),
        ("utf-32", True, "UTF-32 LE"),
        ("utf-32-be", False, "UTF-32 BE"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_utf16_and_utf32_are_named_not_hundreds_of_f001(corpus: Path, encoding: str, bom: bool, named: str, gz: bool):
    data = ("\n".join(rec(k) for k in range(300)) + "\n").encode(encoding)
    path = corpus / ("wide.jsonl.gz" if gz else "wide.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    (corpus / "ok.jsonl").write_text(rec(9) + "\n")
    result, rejects, _ = run(corpus, corpus / "out")
    assert (result.records_read, result.records_written) == (2, 1)  # the wide file is one finding, the other file is read
    assert reasons(rejects) == [(-1, 0, "F009")]
    msg = rejects[0]["reasons"][0]["message"]
    assert f"the file is {named} ({'with' if bom else 'without'} a byte order mark)" in msg
    assert "re-encode it as UTF-8" in msg


@pytest.mark.parametrize("head", [b"", b"{\x00\x00\x00", b"{\x00", b"\x00{"])
def test_nul_bytes_in_a_utf8_file_are_not_taken_for_utf16(corpus: Path, head: bytes):
    """The quiet side of F009: a NUL in a record (even at the very start) is that record's problem, not an encoding."""
    path = corpus / "in.jsonl"
    path.write_bytes(head + rec(0).encode() + b"\n\x00\x00" + rec(1).encode() + b"\n" + rec(2).encode() + b"\n")
    items = list(iter_file(path, 10**6))
    assert [(i.index, i.code) for i in items] == [(0, "F001" if head else None), (1, "F001"), (2, None)]


# -- 2. decompression bombs ---------------------------------------------------------------------------------------------------


def gz_parts(path: Path, *parts: bytes) -> Path:
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for p in parts:
            fh.write(p)
    return path


@pytest.mark.parametrize("filler", [b" ", b"\n"], ids=["spaces-in-one-line", "blank-lines"])
def test_a_gzip_bomb_is_f008_where_it_fires_and_the_records_before_it_are_kept(corpus: Path, filler: bytes):
    head = (rec(0) + "\n" + rec(1) + "\n").encode()
    path = gz_parts(corpus / "bomb.jsonl.gz", head, filler * (40 * 2**20), b"\n" + rec(2).encode())
    assert path.stat().st_size < 100_000  # 40 MiB in under 100 kB
    result, rejects, _ = run(path, corpus / "out")
    assert (result.records_read, result.records_written) == (3, 2)
    ((index, line, code),) = reasons(rejects)
    assert (index, code) == (2, "F008") and line >= 3
    assert "--max-expansion-ratio" in rejects[0]["reasons"][0]["message"]


def test_the_expansion_ratio_is_a_flag_and_judged_only_past_the_first_bytes(corpus: Path):
    """The quiet side: a small, very repetitive file (>100x) is read; so is a bomb under a raised ratio."""
    small = gz_parts(corpus / "small.jsonl.gz", (rec(0) + "\n").encode() * 2000)
    assert len(gzip.decompress(small.read_bytes())) < RATIO_AFTER
    assert len(gzip.decompress(small.read_bytes())) > 100 * small.stat().st_size
    assert {i.code for i in iter_file(small, 10**6)} == {None}
    bomb = gz_parts(corpus / "bomb.jsonl.gz", rec(0).encode(), b"\n" * (40 * 2**20), rec(1).encode())
    lenient = rawfile.GzipBounds(max_ratio=1e6)
    assert [i.code for i in iter_file(bomb, 10**6, bounds=lenient)] == [None, None]
    assert [i.code for i in iter_file(bomb, 10**6)] == [None, "F008"]


def test_max_decompressed_bytes_bounds_a_file_and_counts_what_it_skips(corpus: Path):
    body = "\n".join(rec(k) for k in range(400)) + "\n"  # about 32 kB
    path = gz_parts(corpus / "in.jsonl.gz", body.encode())
    result, rejects, _ = run(path, corpus / "out", max_decompressed_bytes=20_000)
    assert result.records_read == result.records_written + 1  # the records before the bound, and one F008
    assert 100 < result.records_written < 400
    assert reasons(rejects)[0][2] == "F008" and rejects[0]["index"] == result.records_written
    assert "--max-decompressed-bytes" in rejects[0]["reasons"][0]["message"]


def test_the_bounds_are_cli_flags(corpus: Path, capsys):
    body = "\n".join(rec(k) for k in range(400)) + "\n"
    path = gz_parts(corpus / "in.jsonl.gz", body.encode())
    base = ["lint", str(path), "--no-audio", "--no-progress", "--num-workers", "1"]
    assert main(base) == 0
    assert main([*base, "--max-decompressed-bytes", "20kB"]) == 1
    assert "F008" in capsys.readouterr().out
    assert main([*base, "--max-expansion-ratio", "0.5"]) == 2  # a usage error, one line
    assert "--max-expansion-ratio must be at least 1" in capsys.readouterr().err
    with pytest.raises(OptionsError):
        ConvertOptions(max_decompressed_bytes=0)


def test_an_oversized_line_is_drained_without_being_decoded(monkeypatch: pytest.MonkeyPatch, corpus: Path):
    decoded: list[int] = []
    real = jsonstream._decode
    monkeypatch.setattr(jsonstream, "_decode", lambda data: decoded.append(len(data)) or real(data))
    big = json.dumps({"audio": "B" * 5_000_000})
    for name, text in [("in.jsonl", f"{rec(0)}\n{big}\n{rec(1)}\n"), ("in.json", f"[{rec(0)}, {big}, {rec(1)}]")]:
        path = corpus / name
        path.write_text(text)
        decoded.clear()
        items = list(iter_file(path, 1000))
        assert [i.code for i in items] == [None, "F005", None]
        assert max(decoded) < 10_000, decoded  # the 5 MB record was never decoded


def test_blank_lines_cost_bytes_not_a_python_turn_each():
    """A million blank lines are skipped in a few buffered reads, not a million readline calls."""
    calls = [0]

    class Counting(io.BufferedReader):
        def readline(self, *a: Any) -> bytes:
            calls[0] += 1
            return super().readline(*a)

    data = (rec(0) + "\n" + "\n" * 1_000_000 + "  \t\r\n" * 100_000 + rec(1) + "\n").encode()
    items = list(iter_lines(Counting(io.BytesIO(data), 1 << 20), 10**6))
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 1_100_002)]
    assert calls[0] < 10
