"""The command line: exit codes CI pipelines gate on, JSON summary, info, rules."""

from __future__ import annotations

import json

from audiodata.cli.main import main
from tests.conftest import SAMPLE, write_audio, write_jsonl


def test_exit_0_when_every_record_goes_through(tmp_path, capsys):
    write_audio(tmp_path / "c/a.wav", seconds=1.0, rate=22050)
    write_jsonl(tmp_path / "c/c.jsonl", [{"audio": "a.wav", "text": "hello"}])
    assert main(["convert", str(tmp_path / "c"), "-o", str(tmp_path / "o"), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records_written"] == 1 and summary["exit_code"] == 0


def test_exit_1_when_records_are_rejected(tmp_path, capsys):
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--no-progress", "--num-workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "rejected" in out and "rejects.jsonl" in out


def test_exit_2_on_usage_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--val-ratio", "1.5"]) == 2
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--max-shard-size", "lots"]) == 2
    try:
        main(["convert", str(SAMPLE)])  # no --output: argparse
    except SystemExit as exc:
        assert exc.code == 2


def test_ignore_turns_an_error_into_a_pass(tmp_path):
    write_audio(tmp_path / "c/a.wav", seconds=1.0)
    write_jsonl(
        tmp_path / "c/c.jsonl",
        [
            {
                "conversations": [{"from": "human", "value": "<audio><audio>hi"}, {"from": "gpt", "value": "ok"}],
                "audios": ["a.wav"],
            }
        ],
    )
    assert main(["convert", str(tmp_path / "c"), "-o", str(tmp_path / "o1"), "--no-progress"]) == 1
    assert main(["convert", str(tmp_path / "c"), "-o", str(tmp_path / "o2"), "--no-progress", "--ignore", "M001"]) == 0


def test_info_and_rules(tmp_path, capsys):
    main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--no-progress", "--num-workers", "1"])
    capsys.readouterr()
    assert main(["info", str(tmp_path / "o"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["records_read"] == info["written"] + info["rejected"]
    assert main(["info", str(tmp_path / "o")]) == 0
    assert "sft" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert main(["rules", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    codes = [r["code"] for r in rules]
    assert codes == sorted(codes) and {"M001", "A002", "F001"} <= set(codes)


def test_lint_table_shows_bracketed_fields_as_text(tmp_path, capsys):
    """A field such as ``[label]`` is printed, not swallowed as rich markup."""
    write_audio(tmp_path / "c/a.wav", seconds=1.0)
    rec = {"messages": [{"role": "user", "content": "<audio>Q"}, {"role": "assistant", "content": "A"}], "audios": ["a.wav"]}
    write_jsonl(tmp_path / "c/c.jsonl", [{**rec, "label": "no"}])
    assert main(["lint", str(tmp_path / "c"), "--no-progress", "--no-audio"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "[label]" in out and "P002" in out
