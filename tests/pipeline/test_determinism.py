"""Identical runs give byte-identical rejects and lint reports, and messages name the record's
reference, never Python internals (object addresses) or resolved/temporary paths."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodata.cli.main import main
from audiodata.errtext import library_error
from tests.conftest import tone, tree_bytes, write_audio, write_jsonl

JUNK = base64.b64encode(b"this is not audio at all " * 12).decode()
#: What must never reach a message: object addresses, reprs, temp names.
LEAKS = re.compile(r"0x[0-9a-f]{6,}|/tmp/| object at |\[Errno")


def _sft(audio: object, answer: str) -> dict:
    turns = [{"from": "human", "value": "<audio>What is said?"}, {"from": "gpt", "value": answer}]
    return {"conversations": turns, "audios": [audio]}


def failing_corpus(root: Path) -> Path:
    """One record per kind of audio failure, plus one good record."""
    write_audio(root / "audio/good.wav", seconds=1.0)
    write_audio(root / "audio/narrow.wav", seconds=1.0, rate=8000)  # a warning (A009): an audio preview in the HTML
    full = (root / "audio/good.wav").read_bytes()
    sf.write(root / "audio/long.flac", tone(3.0), 16000)
    (root / "audio/truncated.flac").write_bytes((root / "audio/long.flac").read_bytes()[:3000])
    (root / "audio/truncated.wav").write_bytes(full[:40])  # header cut inside the fmt chunk
    (root / "audio/empty.wav").write_bytes(b"")
    (root / "audio/text.wav").write_text("not audio\n" * 30)
    nan = tone(1.0).reshape(-1, 1).copy()
    nan[100:200] = np.nan
    sf.write(root / "audio/nan.wav", nan, 16000, subtype="FLOAT")
    records = [
        _sft("audio/good.wav", "good"),
        _sft("audio/narrow.wav", "8 kHz"),
        _sft(JUNK, "undecodable base64"),
        _sft({"bytes": JUNK, "path": "clip.wav"}, "undecodable bytes dict"),
        _sft("data:audio/wav;base64," + JUNK, "undecodable data URI"),
        _sft("data:audio/mp4;base64," + JUNK, "undecodable data URI through FFmpeg only"),
        _sft("data:audio/wav,plain", "bad data URI"),
        _sft("audio/truncated.flac", "truncated FLAC"),
        _sft("audio/truncated.wav", "truncated WAV"),
        _sft("audio/empty.wav", "empty file"),
        _sft("audio/text.wav", "text named .wav"),
        _sft("audio/nan.wav", "float WAV with NaN"),
        _sft({"array": [0.1, float("nan")] * 4000, "sampling_rate": 16000}, "array with NaN"),
        _sft("audio/missing.wav", "missing"),
        _sft("../outside.wav", "escape"),
    ]
    return write_jsonl(root / "corpus.jsonl", [json.dumps(r, allow_nan=True) for r in records])


def _run_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, bytes]]:
    corpus = failing_corpus(tmp_path / "c")
    runs = []
    for k in (1, 2):
        out, rj, rh = tmp_path / "out", tmp_path / f"lint{k}.json", tmp_path / f"lint{k}.html"
        assert main(["convert", str(corpus), "-o", str(out), "--no-progress", "--num-workers", "2", "--overwrite"]) == 1
        convert_terminal = capsys.readouterr().out
        lint = ["lint", str(corpus), "--no-progress", "--num-workers", "2", "--report-json", str(rj), "--report-html", str(rh)]
        assert main(lint) == 1
        lint_terminal = capsys.readouterr().out
        runs.append(
            {
                "rejects": (out / "rejects.jsonl").read_bytes(),
                "lint.json": rj.read_bytes(),
                "lint.html": rh.read_bytes(),
                "lint terminal": lint_terminal.encode(),
                "convert terminal": convert_terminal.encode(),
            }
        )
    return runs


def test_rejects_and_lint_reports_are_byte_identical_and_clean(tmp_path, capsys):
    first, second = _run_twice(tmp_path, capsys)
    for name in first:
        assert first[name] == second[name], f"{name} differs between identical runs"

    rejects = [json.loads(line) for line in first["rejects"].decode().splitlines()]
    lint = json.loads(first["lint.json"])
    messages = [r["message"] for rec in rejects for r in rec["reasons"]] + [f["message"] for f in lint["findings"]]
    assert len(rejects) == 13  # every failing record is rejected, the good ones are written
    assert b"audio/mpeg" in first["lint.html"] or b"audio/flac" in first["lint.html"]  # the preview is compared too
    for msg in messages:  # the user's own folders may be named (A001/A002: the media root); nothing else of the machine
        assert not LEAKS.search(msg.replace(str(tmp_path), "<user folder>")), msg

    by_answer = {rec["record"]["conversations"][1]["value"]: rec["reasons"][0] for rec in rejects}
    assert by_answer["undecodable base64"]["message"].startswith("inline base64 in audios[0] cannot be decoded: ")
    assert by_answer["undecodable bytes dict"]["message"].startswith("inline base64 in audios[0].bytes (clip.wav) cannot")
    assert by_answer["undecodable data URI"]["message"].startswith("inline data URI in audios[0] cannot be decoded")
    assert by_answer["truncated FLAC"]["message"].startswith("audio/truncated.flac cannot be decoded: ")
    assert by_answer["empty file"]["message"].startswith("audio/empty.wav cannot be decoded: ")
    nan_wav = "audio/nan.wav: 100 of 16000 samples are NaN or infinite; the first at 0.006 s (frame 100)"
    assert by_answer["float WAV with NaN"]["message"] == nan_wav
    nan_array = "array audio in audios[0]: 4000 of 8000 samples are NaN or infinite; the first at 0.000 s (frame 1)"
    assert by_answer["array with NaN"]["message"] == nan_array
    assert {r["code"] for r in by_answer.values()} == {"A001", "A002", "A004", "A005", "A015"}
    assert all(r["field"].startswith("audios[0]") for r in by_answer.values())


class _FakeFFmpegError(ValueError):
    def __init__(self) -> None:
        super().__init__(1094995529, "Invalid data found when processing input", "/tmp/xyz/clip.wav")
        self.errno, self.strerror = 1094995529, "Invalid data found when processing input"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RuntimeError("Error opening <_io.BytesIO object at 0x7f045215d080>: Format not recognised."), "Format not recognised."),
        (RuntimeError("Error opening '/data/c/a.wav': File contains data in an unknown format."), "File contains data in"),
        (RuntimeError("Error : flac decoder lost sync."), "flac decoder lost sync."),
        (_FakeFFmpegError(), "Invalid data found when processing input"),
        (OSError(13, "Permission denied", "/tmp/secret/a.wav"), "Permission denied"),
        (ValueError("buffer <numpy.ndarray object at 0xdeadbeef12> at 0x7ffe12345678"), "buffer a.wav at 0x…"),
    ],
)
def test_library_error_keeps_the_reason_and_drops_addresses_and_paths(exc, expected):
    text = library_error(exc, "a.wav", ("/data/c/a.wav",))
    assert text.startswith(expected)
    assert not LEAKS.search(text)


def test_raw_asr_corpora_convert_the_same_for_any_worker_count_and_after_a_resume(tmp_path):
    """NeMo, lhotse and subtitle inputs (windows cut at pauses found while reading, segments decoded by seeking
    in workers that each hold a file open) give byte-identical outputs and lint reports; a run stopped part way
    resumes to the same bytes."""
    import audiodata
    from tests.conftest import tree_bytes
    from tests.raw_asr_audio import make_corpus

    corpus = make_corpus(tmp_path / "c")
    (corpus / "whole.jsonl").write_text(json.dumps({"audio_filepath": "long.wav", "duration": 24.0, "text": "all"}) + "\n")
    opts = {"window_seconds": 8.0, "long_form": "windows", "max_shard_size": 64 * 1024}
    one = audiodata.convert([str(corpus)], tmp_path / "w1", num_workers=1, **opts)
    audiodata.convert([str(corpus)], tmp_path / "w3", num_workers=3, batch_size=2, **opts)
    assert one.records_rejected == 1 and one.records_written == 4 + 4 + 4 + 4 + 6  # A017: the untimed whole
    assert len(one.shards) > 3 and tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w3")

    class Stop(RuntimeError):
        pass

    def stop(p):  # type: ignore[no-untyped-def]
        if p.records >= 14:
            raise Stop

    with pytest.raises(Stop):
        audiodata.convert([str(corpus)], tmp_path / "r", num_workers=2, on_progress=stop, **opts)
    resumed = audiodata.convert([str(corpus)], tmp_path / "r", num_workers=2, **opts)
    assert resumed.resumed_from > 0 and tree_bytes(tmp_path / "r") == tree_bytes(tmp_path / "w1")
    reports = [audiodata.lint([str(corpus)], num_workers=n, window_seconds=8.0, long_form="windows").to_dict() for n in (1, 3)]
    assert reports[0] == reports[1] and reports[0]["summary"]["by_code"]["A017"] == 1


def test_raw_corpora_rejects_and_lint_reports_do_not_depend_on_the_worker_count(tmp_path, capsys):
    """A WebDataset tar and a datasets folder (rows located by member): rejects, the lint report and the shards
    are the same bytes with one worker or three, and messages leak nothing of the machine."""
    from datasets import Dataset

    from tests.readers.test_raw_corpora import FLAC48, WAV22, write_shards

    write_shards(tmp_path / "wds")
    rows = {"audio": [str(WAV22), str(FLAC48), str(tmp_path / "gone.wav")], "text": ["a fox", "", "missing"]}
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "saved"))  # paths only: the last one names no file
    inputs = [str(tmp_path / "wds" / "shard-{000..001}.tar"), str(tmp_path / "saved")]
    runs = []
    for workers in ("1", "3"):
        out, rj = tmp_path / f"out{workers}", tmp_path / f"lint{workers}.json"
        assert main(["convert", *inputs, "-o", str(out), "--no-progress", "--num-workers", workers]) == 1
        assert main(["lint", *inputs, "--no-progress", "--num-workers", workers, "--report-json", str(rj)]) == 1
        capsys.readouterr()
        runs.append({"rejects": (out / "rejects.jsonl").read_bytes(), "lint.json": rj.read_bytes(), **tree_bytes(out)})
    assert runs[0] == runs[1]
    rejects = [json.loads(line) for line in runs[0]["rejects"].decode().splitlines()]
    assert [(r["source"], r["member"]) for r in rejects] == [
        ("shard-001.tar", "utt-0002.json"),
        ("shard-001.tar", "utt-0003.json"),
        ("saved/data-00000-of-00001.arrow", "row 1"),
        ("saved/data-00000-of-00001.arrow", "row 2"),
    ]
    for msg in [r["message"] for rec in rejects for r in rec["reasons"]]:
        assert not LEAKS.search(msg.replace(str(tmp_path), "<user folder>")), msg
