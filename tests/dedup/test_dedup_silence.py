"""Silent clips are not "the same audio": all-zero and noise-floor clips never make records
duplicates, conflicts or leaks (A012 reports them), while copies of real speech still do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import audiodata
from audiodata.dedup.index import clip_identity
from audiodata.pipeline.dedup import dedup
from tests.conftest import SAMPLE

SPEECH = SAMPLE / "audio" / "clip02_22k.wav"
TEXT = "Please call Stella and ask her to bring these things with her."
PROMPT = "<audio>Transcribe."


def sft(audio: str, text: str, prompt: str = PROMPT) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}], "audios": [audio]}


def make_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(SPEECH, root / "speech.wav")
    shutil.copy(SPEECH, root / "speech_copy.wav")
    sf.write(root / "zeros.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    sf.write(root / "zeros_too.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 10 ** (-70 / 20)  # -70 dBFS RMS
    sf.write(root / "quiet.wav", noise, 16000, subtype="PCM_16")
    records = [
        sft("speech.wav", TEXT),  # 0: kept
        sft("speech_copy.wav", TEXT),  # 1: a copy of 0 (same speech, same conversation): duplicate
        sft("speech.wav", "Something else entirely."),  # 2: same speech and prompt, other answer: conflict with 0
        sft("zeros.wav", "first answer"),  # 3
        sft("zeros.wav", "second answer"),  # 4: same prompt, other answer: would be a conflict with 3
        sft("zeros_too.wav", "first answer"),  # 5: same text, bit-identical silence: would be a duplicate of 3
        sft("zeros.wav", "another answer", "<audio>What is the weather like?"),  # 6: other prompt and answer
        sft("quiet.wav", "first answer"),  # 7: -70 dBFS noise
        sft("quiet.wav", "first answer"),  # 8: would be a duplicate of 7
        sft("quiet.wav", "third answer"),  # 9: would be a conflict with 7
    ]
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("silence") / "c")


def test_silent_clip_has_no_identity():
    assert clip_identity("h", None, -70.0) == (None, None)
    assert clip_identity("h", None, -120.0) == (None, None)
    assert clip_identity("h", None, -25.0) == ("h", None)


def test_lint_flags_only_the_speech_copies(corpus: Path):
    report = audiodata.lint([str(corpus)], num_workers=1)
    dups = sorted((f.code, f.source.index) for f in report.findings if f.code in ("D001", "D003"))
    assert dups == [("D001", 1), ("D003", 2)]
    silent = sorted(f.source.index for f in report.findings if f.code == "A012")
    assert silent == [3, 4, 5, 6, 7, 8, 9]  # still reported as silent, just not as the same audio


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_dedup_finds_only_the_speech_copies(corpus: Path, mode: str):
    body = dedup([str(corpus)], mode=mode, num_workers=1).to_dict()
    clusters = [[m["index"] for m in c["members"]] for c in body["clusters"]]
    conflicts = [[m["index"] for m in c["members"]] for c in body["conflicts"]]
    assert clusters == [[0, 1]]
    assert conflicts == [[0, 2]]


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_convert_dedup_drops_only_the_speech_copy(corpus: Path, tmp_path: Path, mode: str):
    result = audiodata.convert([str(corpus)], tmp_path / "out", num_workers=1, dedup=mode)
    assert result.records_duplicate == 1
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rejects] == [1]


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_silent_clips_do_not_leak_against_a_converted_dataset(corpus: Path, tmp_path: Path, mode: str):
    audiodata.convert([str(corpus)], tmp_path / "ref", num_workers=1)
    new = tmp_path / "new"
    new.mkdir()
    for name in ("zeros.wav", "quiet.wav", "speech.wav"):
        shutil.copy(corpus.parent / name, new / name)
    records = [sft("zeros.wav", "first answer"), sft("quiet.wav", "first answer"), sft("speech.wav", TEXT)]
    (new / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    body = dedup([str(new / "new.jsonl")], mode=mode, against=str(tmp_path / "ref"), num_workers=1).to_dict()
    leaked = sorted(m["index"] for c in body["clusters"] if c["leak"] for m in c["members"] if not m.get("reference"))
    assert leaked == [2]  # the speech record; the silent ones match nothing
    # inside the converted dataset only the speech records conflict (exact mode decodes a stored clip only when
    # its hash repeats; near mode decodes them all)
    assert [[m["index"] for m in c["members"]] for c in body["conflicts"]] == [[0, 2]]
