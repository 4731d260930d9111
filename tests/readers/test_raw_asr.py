"""Raw ASR corpora through convert and lint: NeMo manifests, lhotse cuts and supervisions + recordings,
subtitles next to a recording; long recordings cut into windows at pauses, or refused (A017).

The manifests are the hand-written fixtures in tests/fixtures/raw_asr (README there: which source defines
each shape); the audio is made from sample_data clips at the times they state (tests/raw_asr_audio.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

import audiodata
from audiodata.audio.transform import convert_samples
from audiodata.dataset import Manifest
from audiodata.readers.dialects import detect
from audiodata.readers.jsonstream import iter_file, parse_text
from audiodata.records import samples_at
from tests.conftest import SAMPLE
from tests.raw_asr_audio import LAYOUT, RATE, make_corpus

TEXTS = [t for *_, t in LAYOUT]
#: The transcripts of the windows an 8 s window cuts the recording into (two segments each, the last alone).
WINDOWS = [" ".join(TEXTS[0:2]), " ".join(TEXTS[2:4]), " ".join(TEXTS[4:6]), TEXTS[6]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("raw") / "c")


def rows(out: Path) -> list[dict[str, Any]]:
    found = [r for p in sorted((out / "data").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return sorted(found, key=lambda r: (r["source"]["file"], r["source"]["index"]))


def rejects(out: Path) -> list[dict[str, Any]]:
    path = out / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def pcm(row: dict[str, Any], k: int = 0) -> np.ndarray:
    data, _ = sf.read(io.BytesIO(row["audios"][k]["bytes"]), dtype="int16")
    return data


def reference(path: Path, start: float, duration: float, channel: int | None = None) -> np.ndarray:
    """The segment cut by hand: the whole file read with soundfile, sliced by sample index, through the same
    downmix and resampler as any clip."""
    whole, rate = sf.read(path, dtype="float32", always_2d=True)
    first = samples_at(start, rate)
    part = whole[first : first + samples_at(duration, rate)]
    part = part[:, [channel]] if channel is not None else part
    return convert_samples(part, rate, 16000, "reference").pcm


def convert(inputs: list[Path], out: Path, **kw: Any) -> audiodata.ConvertResult:
    return audiodata.convert([str(p) for p in inputs], out, num_workers=1, **kw)


# -- NeMo ---------------------------------------------------------------------------------------


def test_nemo_lines_are_transcripts_of_exactly_their_segments(corpus: Path, tmp_path: Path):
    result = convert([corpus / "long.nemo.jsonl"], tmp_path / "o")
    assert (result.records_read, result.records_written, result.records_rejected) == (7, 7, 0)
    out = rows(tmp_path / "o")
    for k, (row, (_, start, duration, text)) in enumerate(zip(out, LAYOUT, strict=True)):
        assert row["messages"] == [{"role": "user", "content": "<audio>"}, {"role": "assistant", "content": text}]
        assert row["source"] == {"file": "long.nemo.jsonl", "index": k, "line": k + 1}  # a path typed absolute: its name
        info = row["audio_info"][0]
        assert info["origin"] == f"long.wav#t={start:g},{start + duration:g}"
        assert info["source_sampling_rate"] == RATE and info["num_samples"] == samples_at(duration, 16000)
        assert np.array_equal(pcm(row), reference(corpus / "long.wav", start, duration))  # sample-exact
        meta = json.loads(row["metadata"])
        assert meta == {"offset": start, "duration": duration, "lang": "en", "speaker": "spk1" if k % 2 == 0 else "spk2"}


def test_nemo_spellings_whole_files_and_prompt(corpus: Path, tmp_path: Path):
    clip = SAMPLE / "audio/clip07_16k.flac"
    (tmp_path / "a.flac").write_bytes(clip.read_bytes())
    lines = [
        {"audio_filename": "a.flac", "duration": 2.76, "normalized_text": "she sells sea shells", "orig_sample_rate": 16000},
        {"audio_filepath": "a.flac", "duration": 9.0, "text": "stale duration"},  # whole file: the duration is checked
    ]
    (tmp_path / "m.json").write_text("".join(json.dumps(x) + "\n" for x in lines))  # NeMo names JSONL manifests .json
    result = convert([tmp_path / "m.json"], tmp_path / "o", prompt="Transcribe the audio.")
    assert result.records_written == 2 and result.warnings_by_code.get("A014") == 1
    first, second = rows(tmp_path / "o")
    assert first["messages"][0]["content"] == "<audio>Transcribe the audio."
    assert first["messages"][1]["content"] == "she sells sea shells"
    assert first["audio_info"][0]["origin"] == "a.flac" and json.loads(first["metadata"])["orig_sample_rate"] == 16000
    assert second["audio_seconds"] == pytest.approx(2.762, abs=1e-3)


def test_nemo_problems_are_located_rejects(corpus: Path, tmp_path: Path):
    lines = [
        '{"audio_filepath": "long.wav", "offset": 0.5, "duration": 3.25, "text": "ok"}',
        '{"audio_filepath": "long.wav", "offset": 0.5, "text": "no duration"}',
        '{"audio_filepath": "long.wav", "offset": -1, "duration": 1.0, "text": "negative offset"}',
        '{"audio_filepath": "long.wav", "offset": 30.0, "duration": 1.0, "text": "past the end"}',
        '{"audio_filepath": "long.wav", "offset": 1.0, "duration": 1.0, "text_filepath": "t.txt"}',
        '{"audio_filepath": 7, "duration": 1.0, "text": "not a path"}',
        '{"audio_filepath": "missing.wav", "offset": 1.0, "duration": 1.0, "text": "missing"}',
        '{"audio_filepath": "long.wav", "offset": 1.0, "duration": 1.0, "text": broken',
    ]
    manifest = corpus / "bad.nemo.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    try:
        result = convert([manifest], tmp_path / "o")
    finally:
        manifest.unlink()
    assert (result.records_read, result.records_written) == (8, 1)
    first = {r["line"]: r["reasons"][0] for r in rejects(tmp_path / "o")}
    got = {line: (r["code"], r.get("field", ""), r["message"]) for line, r in first.items()}
    assert got[2][:2] == ("S001", "duration") and "NeMo requires it" in got[2][2]
    assert got[3][:2] == ("S001", "offset")
    assert got[4][0] == "A006" and "past the end of the audio (24.00 s)" in got[4][2]
    assert got[5][:2] == ("S001", "text") and "text_filepath is not read" in got[5][2]
    assert got[6][:2] == ("S001", "audio_filepath")
    assert got[7][:2] == ("A001", "audio_filepath")
    assert got[8][0] == "F001"


def test_detection_never_takes_a_chat_record_for_a_raw_corpus(corpus: Path):
    """Every record of sample_data keeps its dialect; the fixtures' rows are NeMo or lhotse."""
    seen = 0
    for path in sorted(SAMPLE.rglob("*.json*")):
        if path.name == "dataset_info.json":
            continue
        for item in iter_file(path, 1 << 26):
            obj = parse_text(item, 1 << 26).obj
            if isinstance(obj, dict):
                seen += 1
                assert detect(obj) not in ("nemo", "lhotse"), (path, item.line)
    assert seen > 60
    for name, dialect in (("long.nemo.jsonl", "nemo"), ("cuts.jsonl", "lhotse")):
        for item in iter_file(corpus / name, 1 << 26):
            assert detect(parse_text(item, 1 << 26).obj) == dialect


# -- lhotse -------------------------------------------------------------------------------------


def test_lhotse_cuts_segments_windows_and_channels(corpus: Path, tmp_path: Path):
    result = convert([corpus / "cuts.jsonl"], tmp_path / "o", window_seconds=8.0)
    assert result.records_rejected == 0
    out = rows(tmp_path / "o")
    single, *windows, channel = out
    assert single["messages"][1]["content"] == TEXTS[1]
    assert np.array_equal(pcm(single), reference(corpus / "long.wav", 4.5, 4.0))
    meta = json.loads(single["metadata"])
    cut = (meta["cut_id"], meta["recording_id"], meta["start"], meta["duration"], meta["channel"])
    assert cut == ("long-1", "long", 4.5, 4.0, 0)
    assert [(s["speaker"], s["language"], s["start"]) for s in meta["supervisions"]] == [("spk2", "English", 0.0)]
    # the whole-recording cut (24 s) is cut into windows of at most 8 s, with the texts inside each
    assert [w["messages"][1]["content"] for w in windows] == WINDOWS
    assert all(w["audio_seconds"] <= 8.0 for w in windows)
    assert [json.loads(w["metadata"])["cut_id"] for w in windows] == ["long-0-0", "long-0-1", "long-0-2", "long-0-3"]
    # channel 1 of a two-channel recording: the speech alone, not its mix with the tone on channel 0
    assert np.array_equal(pcm(channel), reference(corpus / "long2ch.flac", 11.5, 2.8, channel=1))
    assert not np.array_equal(pcm(channel), reference(corpus / "long2ch.flac", 11.5, 2.8))
    assert channel["audio_info"][0]["source_channels"] == 1


def test_lhotse_supervisions_join_their_recordings(corpus: Path, tmp_path: Path):
    convert([corpus / "long_supervisions.jsonl"], tmp_path / "sup")
    convert([corpus / "long.nemo.jsonl"], tmp_path / "nemo")
    sup, nemo = rows(tmp_path / "sup"), rows(tmp_path / "nemo")
    assert [r["audio_info"][0]["pcm_hash"] for r in sup] == [r["audio_info"][0]["pcm_hash"] for r in nemo]
    assert [r["messages"] for r in sup] == [r["messages"] for r in nemo]
    meta = json.loads(sup[3]["metadata"])
    assert meta["supervisions"][0] | {"start": 11.5} == {
        "id": "long-3", "recording_id": "long", "start": 11.5, "duration": 2.8, "channel": 0,
        "text": TEXTS[3], "language": "English", "speaker": "spk2",
    }  # fmt: skip
    manifest = Manifest.load(tmp_path / "sup")
    assert [i.file for i in manifest.inputs] == ["long_supervisions.jsonl"]  # the recordings are read through it


def test_lhotse_manifests_made_by_lhotse_itself(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lhotse = pytest.importorskip("lhotse")
    monkeypatch.chdir(corpus)  # lhotse stores the path as given; relative to the manifest's folder here
    rec = lhotse.Recording.from_file("long.wav", recording_id="long")
    sups = [
        lhotse.SupervisionSegment(f"long-{k}", "long", start, duration, channel=0, text=text, language="English")
        for k, (_, start, duration, text) in enumerate(LAYOUT)
    ]
    recs, sup_set = lhotse.RecordingSet.from_recordings([rec]), lhotse.SupervisionSet.from_segments(sups)
    made = tmp_path / "made"
    made.mkdir()
    lhotse.CutSet.from_manifests(recs, sup_set).trim_to_supervisions(keep_overlapping=False).to_file(made / "cuts.jsonl.gz")
    recs.to_file(made / "lh_recordings.jsonl.gz")
    sup_set.to_file(made / "lh_supervisions.jsonl.gz")
    (made / "long.wav").write_bytes((corpus / "long.wav").read_bytes())
    by_lhotse = convert([made / "cuts.jsonl.gz"], tmp_path / "a")
    joined = convert([made / "lh_supervisions.jsonl.gz"], tmp_path / "b")
    convert([corpus / "long.nemo.jsonl"], tmp_path / "nemo")
    assert by_lhotse.records_written == joined.records_written == 7
    want = [(r["audio_info"][0]["pcm_hash"], r["messages"]) for r in rows(tmp_path / "nemo")]
    for out in ("a", "b"):
        assert [(r["audio_info"][0]["pcm_hash"], r["messages"]) for r in rows(tmp_path / out)] == want


def _rec(kind: str, source: str, **extra: Any) -> dict[str, Any]:
    return {"recording": {"id": "r", "sources": [{"type": kind, "channels": [0], "source": source}], **extra}}


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"type": "MixedCut"}, "S001", "MixedCut is not read"),
        (_rec("command", "sox x.wav -t wav -"), "S001", "never run"),
        (_rec("file", "long.wav", transforms=[{"name": "Speed"}]), "S001", "transforms (Speed)"),
        (_rec("url", "https://example.com/a.wav"), "A003", "URL"),
        ({"supervisions": []}, "S001", "no supervisions"),
        ({"channel": 3}, "S001", "channel 3 is not among the recording's channels [0]"),
    ],
)
def test_lhotse_cuts_audiodata_cannot_read_are_refused_with_what_to_do(
    corpus: Path, tmp_path: Path, change: dict, code: str, words: str
):
    cut = json.loads((corpus / "cuts.jsonl").read_text().splitlines()[0]) | change
    (tmp_path / "c.jsonl").write_text(json.dumps(cut) + "\n")
    result = convert([tmp_path / "c.jsonl"], tmp_path / "o", media_root=str(corpus))
    assert result.records_rejected == 1
    (reason,) = rejects(tmp_path / "o")[0]["reasons"]
    assert reason["code"] == code and words in reason["message"], reason


def test_supervision_outside_its_cut_is_refused(corpus: Path, tmp_path: Path):
    cut = json.loads((corpus / "cuts.jsonl").read_text().splitlines()[0])
    cut["supervisions"][0]["duration"] = 6.0  # past the 4 s cut
    (tmp_path / "c.jsonl").write_text(json.dumps(cut) + "\n")
    convert([tmp_path / "c.jsonl"], tmp_path / "o", media_root=str(corpus))
    (reason,) = rejects(tmp_path / "o")[0]["reasons"]
    assert reason["code"] == "S001" and reason["field"] == "supervisions[0]" and "reaches outside the cut" in reason["message"]


# -- long recordings: windows, A017, clips ----------------------------------------------------------


def _silent_at(signal: np.ndarray, seconds: float) -> bool:
    at = samples_at(seconds, RATE)
    return float(np.abs(signal[max(0, at - 220) : at + 220]).max()) < 1e-4  # 5 ms either side


@pytest.mark.parametrize("name", ["long.en.srt", "long.vtt", "long.nemo.jsonl", "long_supervisions.jsonl"])
def test_windows_are_cut_at_pauses_never_through_a_word(corpus: Path, tmp_path: Path, name: str):
    result = convert([corpus / name], tmp_path / "o", window_seconds=8.0, long_form="windows")
    assert result.records_rejected == 0
    out = rows(tmp_path / "o")
    assert [r["messages"][1]["content"] for r in out] == WINDOWS
    speech, _ = sf.read(corpus / "long.wav", dtype="float32")
    for row in out:
        origin = row["audio_info"][0]["origin"]
        start, end = (float(x) for x in origin.split("#t=")[1].split(","))
        assert end - start <= 8.0 and _silent_at(speech, start) and _silent_at(speech, end), origin
        assert np.array_equal(pcm(row), reference(corpus / "long.wav", start, end - start))
    # 8.5 s and 14.3 s: the timestamps abut there; the cut is at the pause the detector found before them
    cuts = [r["audio_info"][0]["origin"] for r in out]
    assert cuts[0].endswith(",8.2975") and cuts[1].endswith(",14.1")


def test_subtitles_metadata_speakers_and_language(corpus: Path, tmp_path: Path):
    convert([corpus / "long.vtt", corpus / "long.en.srt"], tmp_path / "o", window_seconds=8.0)
    out = rows(tmp_path / "o")
    vtt = [r for r in out if r["source"]["file"].endswith("long.vtt")]
    srt = [r for r in out if r["source"]["file"].endswith("long.en.srt")]
    assert [r["audio_info"][0]["pcm_hash"] for r in vtt] == [r["audio_info"][0]["pcm_hash"] for r in srt]
    first = json.loads(vtt[0]["metadata"])
    assert first["subtitles"] == "long.vtt" and "lang" not in first
    assert [(s["speaker"], s["line"], s["text"]) for s in first["segments"]] == [("spk1", 6, TEXTS[0]), ("spk2", 10, TEXTS[1])]
    assert json.loads(srt[0]["metadata"])["lang"] == "en"
    assert [r["source"]["line"] for r in srt] == [2, 10, 18, 26]  # the first cue's timing line


def test_bad_cues_and_missing_recordings_are_located(corpus: Path, tmp_path: Path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "long.wav").write_bytes((corpus / "long.wav").read_bytes())
    text = (corpus / "long.en.srt").read_text().replace("00:00:11,500 --> 00:00:14,300", "00:00:11,500 --> 14.3")
    (folder / "long.srt").write_text(text.replace("00:00:20,500 --> 00:00:23,300", "00:00:23,300 --> 00:00:20,500"))
    (folder / "orphan.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nhello\n")
    result = convert([folder], tmp_path / "o", window_seconds=8.0)
    got = sorted((r["source"], r["line"], r["reasons"][0]["code"], r["reasons"][0]["message"]) for r in rejects(tmp_path / "o"))
    assert [g[:3] for g in got] == [("s/long.srt", 14, "F010"), ("s/long.srt", 26, "F010"), ("s/orphan.vtt", 0, "A001")]
    assert "cannot read the timing line" in got[0][3] and "ends (20.500 s) before it starts (23.300 s)" in got[1][3]
    assert "looked for orphan.wav, orphan.flac" in got[2][3]
    assert result.records_written == 3  # the other cues are read: (0, 1), (2), (4, 5)


def test_a_long_untimed_recording_is_refused_for_transcription(corpus: Path, tmp_path: Path):
    whole = tmp_path / "whole.jsonl"
    whole.write_text(json.dumps({"audio_filepath": "long.wav", "duration": 24.0, "text": "all of it"}) + "\n")
    result = convert([whole], tmp_path / "o", media_root=str(corpus), window_seconds=10.0)
    assert result.rejects_by_code == {"A017": 1}
    (reason,) = rejects(tmp_path / "o")[0]["reasons"]
    assert reason["field"] == "duration" and "24.0 s with one transcript and no timestamps" in reason["message"]
    assert "10 s audio window" in reason["message"]


def test_a_long_recording_for_another_task_is_kept_whole_as_clips_cut_at_pauses(corpus: Path, tmp_path: Path):
    whole = tmp_path / "whole.jsonl"
    whole.write_text(json.dumps({"audio_filepath": "long.wav", "duration": 24.0, "text": "A talk about the weather."}) + "\n")
    result = convert([whole], tmp_path / "o", media_root=str(corpus), window_seconds=10.0, prompt="Summarise the talk.")
    assert result.records_written == 1
    (row,) = rows(tmp_path / "o")
    assert row["messages"][0]["content"] == "<audio><audio><audio>Summarise the talk."
    spans = [tuple(float(x) for x in i["origin"].split("#t=")[1].split(",")) for i in row["audio_info"]]
    assert spans[0][0] == 0.0 and spans[-1][1] == 24.0
    assert all(b - a <= 10.0 for a, b in spans) and all(spans[k][1] == spans[k + 1][0] for k in range(len(spans) - 1))
    speech, _ = sf.read(corpus / "long.wav", dtype="float32")
    assert all(_silent_at(speech, a) for a, _ in spans[1:])  # the splits near 8 s and 16 s moved to pauses
    whole_pcm = reference(corpus / "long.wav", 0.0, 24.0)
    assert sum(len(pcm(row, k)) for k in range(3)) == len(whole_pcm)
    ignored = convert([whole], tmp_path / "i", media_root=str(corpus), window_seconds=10.0, ignore=["A017"])
    assert ignored.records_written == 1 and ignored.warnings_by_code.get("A008") is None  # one clip; A008 is 30 s


def test_lint_reads_raw_corpora_as_convert_does(corpus: Path, tmp_path: Path):
    whole = corpus / "whole.jsonl"
    whole.write_text(json.dumps({"audio_filepath": "long.wav", "duration": 24.0, "text": "all of it"}) + "\n")
    try:
        report = audiodata.lint([str(corpus)], num_workers=2, window_seconds=8.0).to_dict()
    finally:
        whole.unlink()
    errors = [(f["source"], f["line"], f["code"]) for f in report["findings"] if f["severity"] == "error"]
    assert errors == [("c/whole.jsonl", 1, "A017")]
    # cuts (1 + 4 windows + 1), SRT windows, NeMo lines, VTT windows, supervisions, the whole recording
    assert report["summary"]["records"] == 6 + 4 + 7 + 4 + 7 + 1
    # the same audio and text in several of these forms: lint says so (D001), naming where it was first seen
    dups = [f for f in report["findings"] if f["code"] == "D001"]
    assert dups and all(f["message"].startswith("exact duplicate of c/") for f in dups)


def test_metadata_column_is_in_the_schema_and_the_card(corpus: Path, tmp_path: Path):
    convert([corpus / "long.nemo.jsonl"], tmp_path / "o")
    shard = next((tmp_path / "o/data").glob("*.parquet"))
    assert pq.read_schema(shard).names[-1] == "metadata"
    card = (tmp_path / "o/README.md").read_text()
    assert "The `metadata` column holds" in card and "| `speaker` | 7 | who speaks: the corpus's speaker id |" in card
    assert "| `offset` | 7 | segment time: where the clip starts in its recording, seconds (NeMo `offset`) |" in card
    feats = json.loads(pq.read_schema(shard).metadata[b"huggingface"])["info"]["features"]
    assert feats["metadata"] == {"dtype": "string", "_type": "Value"}
