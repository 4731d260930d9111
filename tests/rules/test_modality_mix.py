"""The modality mix of a corpus: lint reports it; the trainer says what a distributed run does with it."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

import audiodata
from tests.conftest import REPO, SAMPLE, write_jsonl

SCHEMA = json.loads((REPO / "schemas" / "lint_report.schema.json").read_text())


def corpus(tmp: Path, audio: int, text: int) -> Path:
    """ms-swift ``messages`` records (its docs/source_en/Customization/Custom-dataset.md), some with a clip."""
    clip = str(SAMPLE / "audio" / "clip07_16k.flac")
    records = [
        {"messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": f"Words {i}."}],
         "audios": [clip]}
        for i in range(audio)
    ]
    records += [
        {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
        for i in range(text)
    ]
    return write_jsonl(tmp / "mixed.jsonl", records)


def test_lint_reports_records_with_and_without_audio(tmp_path: Path, capsys):
    from audiodata.cli.main import main

    path = corpus(tmp_path, audio=3, text=2)
    broken = json.loads(path.read_text().splitlines()[0]) | {"audios": [str(tmp_path / "missing.wav")]}
    path.write_text(path.read_text() + json.dumps(broken) + "\n")  # rejected by convert: not counted
    report = audiodata.lint([str(path)], num_workers=1).to_dict()
    Draft202012Validator(SCHEMA).validate(report)
    assert report["summary"]["modality"] == {"audio": 3, "text_only": 2}
    assert main(["lint", str(path), "--num-workers", "1", "--no-progress"]) == 1
    assert "modality: 3 records with audio, 2 text-only" in " ".join(capsys.readouterr().out.split())

    only_audio = audiodata.lint([str(corpus(tmp_path / "a", audio=2, text=0))], num_workers=1, audio=False).to_dict()
    assert only_audio["summary"]["modality"] == {"audio": 2, "text_only": 0}
    assert main(["lint", str(tmp_path / "a" / "mixed.jsonl"), "--num-workers", "1", "--no-progress"]) == 0
    assert "modality:" not in capsys.readouterr().out  # nothing to say about a single-modality corpus


def test_the_trainer_notes_a_mixed_corpus_only_on_several_processes():
    from trainer.train import modality_note

    assert modality_note([1, 0, 2, 0], world=1, dummy=False) is None  # one process: nothing can hang
    assert modality_note([1, 1, 2], world=4, dummy=True) is None  # every record has audio
    assert modality_note([0, 0], world=4, dummy=True) is None  # no record has: the encoder never runs anywhere
    note = modality_note([1, 0, 2, 0], world=2, dummy=True)
    assert note is not None and note.startswith("2 of 4 training records have no audio and 2 processes train")
    assert "dummy clip" in note
    off = modality_note([1, 0], world=2, dummy=False)
    assert off is not None and "dummy_audio is off" in off
