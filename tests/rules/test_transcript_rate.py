"""Transcript rate (R rules): scripts, what counts as a transcription, the dataset band, and real speech.

The real-speech tests use the espeak-ng clips of sample_data/ with the sentences they were
synthesised from (sample_data/README.md): right transcripts stay quiet, a transcript swapped in
from a record of very different length fires.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from audiodata.pipeline.convert import convert
from audiodata.pipeline.lint import lint
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.records import AudioRef, Message, Record, SourceLoc
from audiodata.rules.transcript import (
    BOUNDS,
    LOW_MIN_SECONDS,
    MIN_RECORDS,
    RateStats,
    count_text,
    is_transcription_prompt,
    measure,
    transcript_of,
)
from tests.conftest import write_audio

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize(
    "text, script, chars, words",
    [
        ("The quick brown fox.", "latin", 16, 4),
        ("Ça va très bien, merci !", "latin", 17, 5),
        ("Привет, как дела?", "cyrillic", 13, 3),
        ("Καλημέρα σας", "greek", 11, 2),
        ("مرحبا بكم", "arabic", 8, 2),
        ("नमस्ते दुनिया", "indic", 7, 2),  # vowel signs and viramas are marks, not letters
        ("สวัสดีครับ", "thai", 7, None),
        ("안녕하세요 여러분", "hangul", 8, 2),
        ("今天天气很好。", "cjk", 6, None),
        ("我们用iPhone 15拍的", "cjk", 7, None),  # a Latin word and a number count one each
        ("こんにちは、世界", "cjk", 7, None),
        ("I really love 北京 in spring", "latin", 21, 6),
        ("[noise] hello <laugh> there <|en|>", "latin", 10, 2),
        ("12345", "other", 5, None),
    ],
)
def test_count_text_by_script(text: str, script: str, chars: int, words: int | None):
    c = count_text(text)
    assert (c.script, c.chars, c.words) == (script, chars, words)


def test_every_script_has_sane_bounds():
    for script, b in BOUNDS.items():
        lo, hi = b.chars
        assert 0 < lo < 2 < 10 <= hi <= 30, script
    assert BOUNDS["cjk"].chars[1] < BOUNDS["latin"].chars[1] / 2  # characters differ by script


@pytest.mark.parametrize(
    "prompt",
    [
        "<audio>",
        "<audio>\n",
        "<audio>Transcribe the audio.",
        "Transcribe this clip: <audio>",
        "<audio>What does the person say?",
        "<audio>What did he say?",
        "<audio>What is being said?",
        "<audio>Speech to text, please.",
        "<audio>Detect the language and recognize the speech: <|en|>",
        "<audio>请把这段语音转写成文字",
        "<audio>他说了什么？",
        "<audio>语音识别",
        "<audio>この音声を文字起こししてください",
        "<audio>받아쓰기 해 주세요",
        "<audio>Transcribe el audio",
        "<audio>Расшифруй запись",
    ],
)
def test_transcription_prompts_are_recognised(prompt: str):
    assert is_transcription_prompt(prompt)


@pytest.mark.parametrize(
    "prompt",
    [
        "<audio>Describe the sound.",
        "<audio>Transcribe and then translate into French.",
        "<audio>Summarize what the speaker says.",
        "<audio>What is the emotion of the speaker?",
        "<audio>请翻译这段语音",
        "<audio>Where is the listener told to turn?",
        "<audio>Transcribe it. " + "Some very long instruction about formatting. " * 6,
    ],
)
def test_other_prompts_are_not_transcription(prompt: str):
    assert not is_transcription_prompt(prompt)


def record(kind: str = "sft", prompt: str = "<audio>Transcribe.", reply: str = "Hello there, how are you?", **kw: Any) -> Record:
    audios = [AudioRef("path", f"a{i}.wav", f"audios[{i}]") for i in range(kw.pop("clips", 1))]
    msgs = [Message("user", prompt, "messages[0].content"), Message("assistant", reply, "messages[1].content")]
    if kind == "sft":
        return Record("r", "sft", msgs, SourceLoc("f", 0), audios, **kw)
    if kind == "dpo":
        wrong = [Message("assistant", "x")]
        return Record("r", "dpo", msgs[:1], SourceLoc("f", 0), audios, chosen=msgs[1:], rejected=wrong, **kw)
    return Record("r", "kto", msgs[:1], SourceLoc("f", 0), audios, completion=msgs[1:], **kw)


def test_which_reply_is_the_transcript():
    assert transcript_of(record()).content == "Hello there, how are you?"
    assert transcript_of(record("dpo")).field == "messages[1].content"  # chosen, never rejected
    assert transcript_of(record("kto", label=True)) is not None
    assert transcript_of(record("kto", label=False)) is None  # undesirable completions are meant to be wrong
    assert transcript_of(record(prompt="<audio>Describe the sound.")) is None
    assert transcript_of(record(clips=2, prompt="<audio><audio>Transcribe.")) is None
    assert transcript_of(record(prompt="<audio>Describe the sound."), task="asr") is not None  # declared
    assert transcript_of(record(clips=2, prompt="<audio><audio>"), task="asr") is not None
    assert transcript_of(record(), task="none") is None
    multi = record()
    multi.messages += [Message("user", "Again?"), Message("assistant", "Yes.")]
    assert transcript_of(multi) is None and transcript_of(multi, task="asr") is None


def test_measure_sums_clips_and_needs_every_clip():
    r = measure(record(clips=2, prompt="<audio><audio>"), [1.0, 1.0], task="asr")
    assert r is not None and r.seconds == 2.0 and r.chars == 19 and r.char_rate == 9.5 and r.word_rate == 2.5
    assert measure(record(clips=2, prompt="<audio><audio>"), [1.0], task="asr") is None
    assert measure(record(reply="..."), [2.0]) is None  # nothing to count


def test_task_option_is_validated():
    with pytest.raises(OptionsError, match="--task"):
        ConvertOptions(task="tts")


# --------------------------------------------------------------------------- the dataset band


def test_band_is_robust_and_needs_enough_records():
    stats = RateStats()
    for i in range(MIN_RECORDS - 1):
        stats.add(0, i, i + 1, "latin", 12.0 + (i % 3), 4.0)
    assert stats.band("latin") is None and list(stats.outliers()) == []
    stats.add(0, 9, 10, "latin", 60.0, 4.0, "text")  # the 10th: an outlier, which must not widen the band
    band = stats.band("latin")
    assert band is not None and 7 < band.low < band.median < band.high < 25
    assert [(o.index, o.line, o.field) for o in stats.outliers()] == [(9, 10, "text")]
    for k in range(3):  # more outliers (under half the records) move the median and MAD little
        stats.add(1, k, None, "latin", 80.0, 4.0)
    assert stats.band("latin").high < 40
    assert len(list(stats.outliers())) == 4
    assert stats.summary()["latin"]["records"] == 13


def test_band_is_per_script_and_low_outliers_need_long_clips():
    stats = RateStats()
    for i in range(20):
        stats.add(0, i, None, "latin", 12.0 + (i % 4), 4.0)
        stats.add(0, 100 + i, None, "cjk", 4.5 + (i % 3) * 0.5, 4.0)
    stats.add(0, 200, None, "cjk", 12.0, 4.0)  # normal for Latin text, far too fast for Chinese
    stats.add(0, 201, None, "latin", 3.0, LOW_MIN_SECONDS)  # too slow, long clip: flagged
    stats.add(0, 202, None, "latin", 3.0, LOW_MIN_SECONDS - 1)  # too slow, short clip (padding): not judged
    assert sorted(o.index for o in stats.outliers()) == [200, 201]
    assert set(stats.summary()) == {"latin", "cjk"}


def test_memory_per_record_is_a_few_numbers():
    stats = RateStats()
    for i in range(1000):
        stats.add(i % 3, i, i + 1, "latin", 10.0, 3.0, "messages[1].content")
    s = stats.scripts["latin"]
    assert len(stats.field_names) == 1  # the field is stored once, records hold its number
    per_record = sum(a.itemsize for a in (s.files, s.indices, s.lines, s.rates, s.low_ok, s.fields))
    assert per_record <= 40


# --------------------------------------------------------------------------- end to end on generated audio


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def asr(audio: str, text: str, prompt: str = "<audio>Transcribe the audio.") -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}], "audios": [audio]}


def codes(report: dict, prefix: str = "R") -> list[tuple[int, str]]:
    return [(f["index"], f["code"]) for f in report["findings"] if f["code"].startswith(prefix)]


def test_declared_task_measures_what_detection_skips(tmp_path: Path):
    write_audio(tmp_path / "half.wav", 0.5)
    long_text = "This reply holds far more text than half a second of speech could ever carry, by a wide margin."
    path = jsonl(tmp_path / "in.jsonl", [asr("half.wav", long_text, prompt="<audio>Describe the sound.")])
    assert codes(lint([str(path)], num_workers=1).to_dict()) == []  # not a transcription: quiet
    found = lint([str(path)], num_workers=1, task="asr").to_dict()
    assert codes(found) == [(0, "R001"), (0, "R003")]
    assert [f["field"] for f in found["findings"]] == ["messages[1].content"] * 2
    path = jsonl(tmp_path / "in.jsonl", [asr("half.wav", long_text)])
    assert codes(lint([str(path)], num_workers=1).to_dict()) == [(0, "R001"), (0, "R003")]  # detected
    assert codes(lint([str(path)], num_workers=1, task="none").to_dict()) == []


def test_convert_keeps_the_records_and_counts_the_warnings(tmp_path: Path):
    write_audio(tmp_path / "half.wav", 0.5)
    write_audio(tmp_path / "two.wav", 2.0)
    text = "A transcript of two hundred characters cannot fit into half a second. " * 3
    path = jsonl(tmp_path / "in.jsonl", [asr("half.wav", text), asr("two.wav", "Hello there, my friend.")])
    result = convert([str(path)], tmp_path / "out", num_workers=1)
    assert result.records_written == 2 and result.records_rejected == 0 and result.exit_code == 0
    assert result.warnings_by_code == {"R001": 1, "R003": 1}


def test_no_rates_without_audio(tmp_path: Path):
    write_audio(tmp_path / "half.wav", 0.5)
    path = jsonl(tmp_path / "in.jsonl", [asr("half.wav", "x" * 200)])
    report = lint([str(path)], num_workers=1, audio=False)
    assert codes(report.to_dict()) == [] and "transcript_rates" not in report.to_dict()["summary"]


# --------------------------------------------------------------------------- real speech (sample_data)


def sample_clips() -> list[tuple[str, float, str]]:
    """(path under sample_data, seconds, the sentence it was synthesised from) of every clip file."""
    row = re.compile(r"^\| `(audio/clip\S+)` \|.*\| ([\d.]+) s \|.*\| (.+) \|$")
    out = []
    for line in (SAMPLE / "README.md").read_text(encoding="utf-8").splitlines():
        m = row.match(line)
        if m:
            out.append((m.group(1), float(m.group(2)), m.group(3)))
    return out


CLIPS = sample_clips()


def speech_corpus(tmp_path: Path, swaps: dict[int, int]) -> Path:
    """A MiniCPM-style ASR file over the sample clips; ``swaps`` {record: from record} puts another
    record's transcript on a clip (the usual mistake: a manifest shifted by one, a bad join)."""
    records = []
    for i, (audio, _, text) in enumerate(CLIPS):
        records.append({"id": f"asr-{i}", "audio": audio, "text": CLIPS[swaps[i]][2] if i in swaps else text})
    return jsonl(tmp_path / "speech.jsonl", records)


def test_sample_clips_are_all_there():
    assert len(CLIPS) == 19 and all((SAMPLE / a).exists() for a, _, _ in CLIPS)


def test_real_speech_with_the_right_transcripts_is_quiet(tmp_path: Path):
    report = lint([str(speech_corpus(tmp_path, {}))], num_workers=1, media_root=str(SAMPLE)).to_dict()
    assert codes(report) == []
    rates = report["summary"]["transcript_rates"]
    assert list(rates) == ["latin"] and rates["latin"]["records"] == len(CLIPS)
    assert 10 < rates["latin"]["median"] < 15  # espeak-ng at 140-200 words/minute: 12-13 letters/s
    low, high = rates["latin"]["band"]
    assert low < 8 and high > 16


def test_the_whole_sample_corpus_is_quiet():
    report = lint([str(SAMPLE)], num_workers=1).to_dict()
    assert codes(report) == []
    assert report["summary"]["transcript_rates"]["latin"]["records"] > 40  # its transcription records were measured


def index_of(name: str) -> int:
    return next(i for i, (a, _, _) in enumerate(CLIPS) if name in a)


def test_a_swapped_transcript_fires_on_real_speech(tmp_path: Path):
    short_clip, long_text = index_of("clip04"), index_of("clip02")  # 1.73 s; 50 letters
    long_clip, short_text = index_of("clip02"), index_of("clip17")  # 3.95 s; 21 letters
    path = speech_corpus(tmp_path, {short_clip: long_text, long_clip: short_text})
    report = lint([str(path)], num_workers=1, media_root=str(SAMPLE), html=True)
    found = codes(report.to_dict())
    assert sorted(found) == sorted([(short_clip, "R001"), (short_clip, "R005"), (long_clip, "R005")])
    messages = {(f["index"], f["code"]): f["message"] for f in report.to_dict()["findings"]}
    assert "over the 25/s latin bound" in messages[(short_clip, "R001")]
    assert "x this dataset's median for latin text" in messages[(long_clip, "R005")]
    # findings stay in input order, and both flagged records have a player in the HTML report
    idx = [f["index"] for f in report.to_dict()["findings"]]
    assert idx == sorted(idx)
    assert {f"{path.name}#{short_clip}", f"{path.name}#{long_clip}"} <= set(report.previews)  # typed absolute: by its name


def test_the_dataset_rule_can_be_ignored(tmp_path: Path):
    path = speech_corpus(tmp_path, {index_of("clip02"): index_of("clip17")})
    report = lint([str(path)], num_workers=1, media_root=str(SAMPLE), ignore=["R005"]).to_dict()
    assert codes(report) == []
