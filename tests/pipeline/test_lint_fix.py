"""``lint --fix``: safe repairs only, a copy (never in place), every change said record by record."""

from __future__ import annotations

import json
from pathlib import Path

from audiodata.cli.main import main
from audiodata.pipeline.lint import lint
from tests.conftest import write_audio


def corpus(root: Path) -> Path:
    write_audio(root / "a.wav", 1.0)
    write_audio(root / "b.wav", 1.0, freq=660.0)
    rows = [
        # 0: clean
        {"conversations": [{"from": "human", "value": "<audio>Say it."}, {"from": "gpt", "value": "Hi."}], "audios": ["a.wav"]},
        # 1: one audio, no marker: fixable (marker at the start of the first user turn)
        {"conversations": [{"from": "human", "value": "What is said?"}, {"from": "gpt", "value": "Hi."}], "audios": ["a.wav"]},
        # 2: role aliases: fixable
        {"conversations": [{"from": "Human", "value": "<audio>Q"}, {"from": "bot", "value": "A"}], "audios": ["b.wav"]},
        # 3: two audios, one marker: ambiguous, left alone
        {"conversations": [{"from": "human", "value": "<audio>Q"}, {"from": "gpt", "value": "A"}], "audios": ["a.wav", "b.wav"]},
        # 4: ms-swift messages, no marker: fixable in its own dialect
        {"messages": [{"role": "user", "content": "Transcribe."}, {"role": "assistant", "content": "ok"}], "audios": ["b.wav"]},
        # 5: alpaca with an alias-free record and a missing marker
        {"instruction": "Transcribe.", "input": "", "output": "ok", "audios": ["a.wav"]},
    ]
    path = root / "in.jsonl"
    # untouched records must be copied byte for byte: write them in a style json.dumps would not
    path.write_text("".join(json.dumps(r, indent=None, separators=(",", ":")) + "  \n" for r in rows) + "{broken\n")
    return path


def test_fix_writes_a_repaired_copy_and_says_what_changed(tmp_path: Path):
    src = corpus(tmp_path / "c")
    before = src.read_bytes()
    out = tmp_path / "fixed" / "out.jsonl"
    report = lint([str(src)], fix=str(out), num_workers=1).to_dict()
    assert src.read_bytes() == before  # never edited in place
    lines = out.read_text().splitlines()
    assert len(lines) == 6  # every parsable record copied, the broken one reported instead
    assert report["fix"] == {"output": "out.jsonl", "records_changed": 4, "not_copied": 1}  # typed absolute: by its name
    changes = {f["index"]: f["changes"] for f in report["fixes"]}
    assert changes[1] == ["M001: inserted <audio> at the start of conversations[0].value"]
    assert changes[2] == ["S008: conversations[0].from 'Human' -> 'human'", "S008: conversations[1].from 'bot' -> 'gpt'"]
    assert changes[4] == ["M001: inserted <audio> at the start of messages[0].content"]
    assert changes[5] == ["M001: inserted <audio> at the start of instruction"]
    assert 3 not in changes and 0 not in changes
    assert lines[0] == before.decode().splitlines()[0].strip()  # untouched records are copied byte for byte
    assert json.loads(lines[2])["conversations"][1]["from"] == "gpt"
    # the copy lints clean apart from the ambiguous record, which still fails
    again = lint([str(out)], media_root=str(tmp_path / "c"), num_workers=1).to_dict()
    assert {(f["index"], f["code"]) for f in again["findings"]} == {(3, "M001")}


def test_fix_keeps_only_repairs_that_verify(tmp_path: Path):
    # a marker inserted where the audio count is already matched by a marker in a system prompt would
    # not be safe: M003 + M001 are left for a person
    write_audio(tmp_path / "a.wav", 1.0)
    rec = {
        "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}],
        "system": "Use <audio> well",
        "audios": ["a.wav"],
    }
    (tmp_path / "in.jsonl").write_text(json.dumps(rec) + "\n")
    report = lint([str(tmp_path / "in.jsonl")], fix=str(tmp_path / "out.jsonl"), num_workers=1).to_dict()
    assert report["fixes"] == []
    assert json.loads((tmp_path / "out.jsonl").read_text()) == rec


def test_fix_from_the_command_line(tmp_path: Path, capsys):
    src = corpus(tmp_path / "c")
    out = tmp_path / "out.jsonl"
    code = main(["lint", str(src), "--fix", str(out), "--no-progress", "--report-json", str(tmp_path / "r.json")])
    assert code == 1  # the ambiguous and the broken record still fail the input's lint
    err = capsys.readouterr().out
    assert "4 records repaired" in err and "'bot' -> 'gpt'" in err
    assert json.loads((tmp_path / "r.json").read_text())["fix"]["records_changed"] == 4
    assert out.is_file() and not Path(str(out) + ".tmp").exists()


def test_fix_writes_each_dialects_own_role_spelling(tmp_path: Path):
    """ms-swift's tool_call/tool_response stay as they are; its aliases become them, never LLaMA-Factory's spelling."""
    for k in range(4):
        write_audio(tmp_path / f"{k}.wav", 1.0, freq=300.0 + 100 * k)

    def agent(call: str, result: str, k: int) -> dict:
        turns = [("user", "<audio>Weather?"), (call, '{"name": "w"}'), (result, "sun"), ("assistant", "Sunny.")]
        return {"messages": [{"role": r, "content": c} for r, c in turns], "audios": [f"{k}.wav"]}

    lf_turns = [("human", "<audio>Weather?"), ("tool_call", "{}"), ("tool", "sun"), ("gpt", "Sunny.")]
    sharegpt = {"conversations": [{"from": r, "value": v} for r, v in lf_turns], "audios": ["3.wav"]}
    rows = [agent("tool_call", "tool_response", 0), agent("function_call", "observation", 1), agent("tool_call", "tool", 2)]
    rows.append(sharegpt)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    report = lint([str(tmp_path / "in.jsonl")], fix=str(out), num_workers=1).to_dict()
    assert {(f["index"], f["code"]) for f in report["findings"]} == {(1, "S008"), (3, "S008")}
    changes = {f["index"]: f["changes"] for f in report["fixes"]}
    assert changes == {
        1: ["S008: messages[1].role 'function_call' -> 'tool_call'", "S008: messages[2].role 'observation' -> 'tool_response'"],
        3: ["S008: conversations[1].from 'tool_call' -> 'function_call'", "S008: conversations[2].from 'tool' -> 'observation'"],
    }
    fixed = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["role"] for m in fixed[1]["messages"]] == ["user", "tool_call", "tool_response", "assistant"]
    assert fixed[0] == rows[0] and fixed[2] == rows[2]
    again = lint([str(out)], media_root=str(tmp_path), num_workers=1).to_dict()
    assert again["findings"] == []
