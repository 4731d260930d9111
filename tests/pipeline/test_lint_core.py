"""lint shares convert's readers, rules and audio stage: its errors are convert's rejects."""

from __future__ import annotations

import json

from audiodata.cli.main import main
from audiodata.pipeline.lint import lint
from tests.conftest import SAMPLE, write_audio, write_jsonl


def test_lint_errors_are_exactly_convert_rejects(sample_out):
    out, _ = sample_out
    report = lint([str(SAMPLE)], num_workers=1).to_dict()
    flagged = {(f["source"], f["index"]) for f in report["findings"] if f["severity"] == "error"}
    rejects = {(r["source"], r["index"]) for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())}
    assert flagged == rejects
    assert report["summary"]["records"] == 73 and report["summary"]["records_with_errors"] == 10


def test_report_json_and_exit_codes(tmp_path, capsys):
    write_audio(tmp_path / "c/a.wav", seconds=1.0)
    write_jsonl(tmp_path / "c/good.jsonl", [{"audio": "a.wav", "text": "hi"}])
    assert main(["lint", str(tmp_path / "c/good.jsonl"), "--report-json", str(tmp_path / "r.json")]) == 0
    write_jsonl(tmp_path / "c/bad.jsonl", [{"audio": "a.wav", "text": "hi"}, "{broken", {"audio": "missing.wav", "text": "x"}])
    assert main(["lint", str(tmp_path / "c/bad.jsonl"), "--report-json", str(tmp_path / "r.json")]) == 1
    findings = json.loads((tmp_path / "r.json").read_text())["findings"]
    assert [(f["code"], f["index"], f["line"]) for f in findings] == [("F001", 1, 2), ("A001", 2, 3)]
    assert all(set(f) == {"code", "severity", "source", "index", "line", "field", "message"} for f in findings)
    assert main(["lint", str(tmp_path / "c/bad.jsonl"), "--no-audio"]) == 1  # F001 needs no audio
    assert main(["lint", str(tmp_path / "c/bad.jsonl"), "--ignore", "F,A"]) == 1  # an unparsable record always fails
    write_jsonl(tmp_path / "c/missing.jsonl", [{"audio": "missing.wav", "text": "x"}])
    assert main(["lint", str(tmp_path / "c/missing.jsonl"), "--ignore", "A001"]) == 0
    assert main(["lint", str(tmp_path / "nothing.jsonl")]) == 2
    capsys.readouterr()
