"""Text-only lint reads JSON-lines files as byte ranges in its workers and merges compact results (issue 15):
the report is the one the per-record path gives, for every kind of input and any number of workers."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from audiodata.pipeline import lint as lint_mod
from audiodata.pipeline.lint import lint

REPO = Path(__file__).resolve().parents[2]


def bench_records(path: Path, count: int) -> list[str]:
    """lint_bench's corpus (five dialects, planted defects, copies and conflicting answers) as lines."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import convert_bench
        import lint_bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    lint_bench._write_part(str(path), 0, count, 7, convert_bench.make_sentences(300, 7))
    return path.read_text(encoding="utf-8").splitlines()


def kto(answer: str, label: bool, rid: str | None = None) -> str:
    rec: dict[str, Any] = {
        "messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": answer}],
        "label": label,
        "audios": ["k.wav"],
    }
    if rid is not None:
        rec["id"] = rid
    return json.dumps(rec)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    root = tmp_path_factory.mktemp("ranges")
    lines = bench_records(root / "a.jsonl", 3000)
    (root / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + (root / "a.jsonl").read_bytes())  # a BOM, then 3,000 records
    hostile = [lines[5], "", "   ", lines[6] + "\r", lines[7], "{not json", lines[5], kto("Yes.", True, "x1")]
    hostile += [kto("Yes.", False), kto("No.", True), "\x0c", '{"conversations": "' + "z" * 5000 + '"}', lines[8]]
    hostile *= 40  # a lone CR, blank and whitespace lines, invalid and oversized records, KTO both ways, excluded ids
    (root / "b.jsonl").write_bytes("\r\n".join(hostile).encode() + b"\n\n \n" + lines[9].encode())  # CRLF, no last newline
    (root / "c.jsonl.gz").write_bytes(gzip.compress("\n".join(lines[:400]).encode()))  # read by the parent
    (root / "d.json").write_text("[" + ",\n".join(lines[100:300]) + "]")  # an array: read by the parent
    (root / "e.json").write_text("\n".join(lines[200:900]) + "\n")  # lines in a .json file
    (root / "f.json").write_text(json.dumps(json.loads(lines[3]), indent=2))  # one pretty object: read whole
    (root / "g.jsonl").write_bytes(b"")
    exclude = root / "exclude.jsonl"
    exclude.write_text(json.dumps({"id": "x1"}) + "\n" + json.dumps({"id": "a-002500"}) + "\n")  # an id, an index's name
    return [root / n for n in ("a.jsonl", "b.jsonl", "c.jsonl.gz", "d.json", "e.json", "f.json", "g.jsonl")], exclude


def report(files: list[Path], workers: int, **options: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_record_bytes": 4000, "num_workers": workers, "progress": False, **options}
    return lint([str(f) for f in files], audio=False, **kwargs).to_dict()


#: Runs whose records' ids matter: an --exclude list names records by id, and a prompt pool (--task asr) draws
#: each record's prompt by its id; a record without an ``id`` is named by its index in the file.
OPTIONS = [{}, {"exclude": ["EXCLUDE"]}, {"task": "asr"}]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "exclude", "prompt-pool"])
def test_ranges_give_the_per_record_report(
    options: dict[str, Any], corpus: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    files, exclude = corpus
    options = {k: [str(exclude)] if v == ["EXCLUDE"] else v for k, v in options.items()}
    monkeypatch.setattr(lint_mod, "RANGE_BYTES", 7000)  # many ranges: ~20 records each, ranges end mid-corpus everywhere
    ranged = report(files, 2, **options)
    s = ranged["summary"]
    assert s["records"] > 4000 and s["kto_labels"]["desirable"] and s["kto_labels"]["undesirable"]
    assert s["excluded"] == (41 if "exclude" in options else 0)
    assert {"D001", "D003", "F001", "F005"} <= set(s["by_code"]), s["by_code"]
    assert ranged == report(files, 1, **options)
    monkeypatch.setattr(lint_mod, "range_splittable", lambda *a: False)  # every record read by the parent
    assert report(files, 2, **options) == ranged
    monkeypatch.setattr(lint_mod, "_by_chunks", lambda task: False)  # the per-record path (what audio and --fix take)
    assert report(files, 2, **options) == ranged


def test_a_file_that_fails_in_a_range_stops_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside a range (a bad sector read by a worker): one F004 where reading stopped, the records
    before it kept, no record after it, and the next file read as usual."""
    from audiodata.readers import jsonstream

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"conversations": [{"from": "human", "value": f"q{i}"}]}) + "\n" for i in range(300)))
    b.write_text(json.dumps({"conversations": [{"from": "human", "value": "q"}]}) + "\n")
    real = jsonstream.iter_lines

    def failing(fh: Any, max_chars: int, lazy: bool = False, pos: Any = None, index: int = 0, lineno: int = 0) -> Any:
        for item in real(fh, max_chars, lazy, pos, index, lineno):
            if item.text is not None and '"q149"' in item.text:  # line 150 (a range's worker counts its lines from 1)
                raise OSError(5, "Input/output error")
            yield item

    bad = sum(len(line) for line in a.read_bytes().splitlines(keepends=True)[:149])  # where line 150 starts
    real_range = lint_mod.range_lines

    def failing_range(path: Path, start: int, end: int, max_chars: int) -> Any:  # the fused read hits it too
        return None if Path(path) == a and start <= bad < end else real_range(path, start, end, max_chars)

    monkeypatch.setattr(lint_mod, "RANGE_BYTES", 2000)
    monkeypatch.setattr(jsonstream, "iter_lines", failing)
    monkeypatch.setattr(lint_mod, "range_lines", failing_range)  # what it gives when its read fails: the general reader's turn
    found = report([a, b], 1)
    stop = [f for f in found["findings"] if f["code"] == "F004"]
    assert len(stop) == 1 and stop[0]["line"] == 150 and stop[0]["index"] == 149, stop
    assert "reading stopped here; the records before it are kept" in stop[0]["message"]
    assert found["summary"]["records"] == 149 + 1 + 1  # the records before, the failure, b's record
    assert all(f["line"] <= 150 for f in found["findings"] if f["source"].endswith("a.jsonl"))


def test_the_heap_is_frozen_while_merging_and_handed_back(
    corpus: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent leaves the objects alive before the run out of full collections while it merges (gc.freeze), and
    hands them back after; a caller's own freeze is left as it is."""
    import gc

    files, _ = corpus
    seen: list[int] = []
    check_rows = lint_mod.RecordDeduper.check_rows

    def counted(self: Any, *args: Any) -> Any:
        seen.append(gc.get_freeze_count())
        return check_rows(self, *args)

    monkeypatch.setattr(lint_mod.RecordDeduper, "check_rows", counted)
    assert gc.get_freeze_count() == 0
    report(files[:1], 1)
    assert seen and min(seen) > 0 and gc.get_freeze_count() == 0
    unfrozen: list[bool] = []
    gc.freeze()
    try:
        monkeypatch.setattr(gc, "unfreeze", lambda: unfrozen.append(True))
        report(files[:1], 1)
        assert not unfrozen and gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()
