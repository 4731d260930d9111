"""A corpus with many defects across dialects: lint finds each planted defect where it was
planted (code, record, line, field) and nothing anywhere else, any worker count gives the
same report, text-only lint agrees on the text defects, and convert rejects exactly the
records lint marks as errors."""

from __future__ import annotations

import base64
import gzip
import io
import json
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import audiodata
from audiodata.pipeline.lint import lint
from tests.conftest import tone, write_audio

FAMILY = "qwen2-audio"
CUTOFF = 1024  # a 31 s clip (752 audio tokens) still fits; LONG text (1500 tokens) does not
LONG = " ".join(["lorem"] * 1500)

MINICPM = "minicpm.jsonl"  # MiniCPM {"audio", "text"}
SHAREGPT = "sharegpt.json"  # LLaMA-Factory sharegpt SFT, one pretty-printed JSON array
SG_DPO = "sharegpt_dpo.jsonl"  # LLaMA-Factory sharegpt ranking: chosen/rejected message objects
ALPACA = "alpaca.jsonl.gz"  # LLaMA-Factory alpaca, SFT and ranking, gzipped
SWIFT = "swift.jsonl"  # ms-swift messages + audios (role/content), rejected_response for DPO
CHAT = "chat_template.jsonl"  # chat-template content lists {"type": "audio", "path": ...}
FILES = (MINICPM, SHAREGPT, SG_DPO, ALPACA, SWIFT, CHAT)

#: Severities as documented in docs/rules.md; every other planted code is an error.
WARNINGS = {"S008", "M003", "A008", "A009", "A012", "A013", "A014", "T001", "P001", "B002", "D001", "D003"}
WARNINGS |= {"R002", "R004", "R005", "T002"}
#: Findings about a whole record, not one of its fields.
RECORD_LEVEL = {"F001", "F002", "F003", "D001", "D003"}

# Every defect of the corpus: (file, 0-based record index in that file, code). Every other record is clean.
PLANTED: list[tuple[str, int, str]] = [
    (MINICPM, 2, "F001"),  # a line cut in the middle of a string
    (MINICPM, 4, "F002"),  # a JSON list, not an object
    (MINICPM, 6, "F003"),  # keys of no dialect
    (MINICPM, 8, "S005"),  # "text": 42
    (MINICPM, 10, "A001"),  # audio/missing.wav
    (MINICPM, 13, "A003"),  # https URL
    (MINICPM, 14, "A008"),  # 31 s clip
    (MINICPM, 14, "R002"),  # ... whose one-line transcript is far too short for 31 s of audio:
    (MINICPM, 14, "R004"),  # too few letters and words per second,
    (MINICPM, 14, "R005"),  # and far below the rate of the rest of the corpus
    (MINICPM, 16, "A009"),  # 8 kHz source
    (MINICPM, 17, "A012"),  # all zeros
    (MINICPM, 19, "A014"),  # "duration": 9.0 for a 2 s clip
    (MINICPM, 19, "T002"),  # ... and its "nine" is the one number word where the other transcripts under <audio> write digits
    (MINICPM, 20, "M003"),  # <audio> in system
    (MINICPM, 21, "D003"),  # clip 2 again, no prompt, another transcript than record 19
    (MINICPM, 22, "D003"),  # clip 0 again, no prompt, another transcript than record 0
    (MINICPM, 23, "D001"),  # exact copy of record 1
    (SHAREGPT, 2, "S002"),  # role "critic"
    (SHAREGPT, 4, "S004"),  # empty gpt value
    (SHAREGPT, 6, "S007"),  # SFT ends on the user
    (SHAREGPT, 7, "F001"),  # trailing commas inside a pretty-printed element
    (SHAREGPT, 9, "M001"),  # one audio, no marker
    (SHAREGPT, 10, "A013"),  # full-scale square wave
    (SHAREGPT, 12, "A002"),  # ../outside.wav
    (SHAREGPT, 13, "S008"),  # "from": "Human"
    (SHAREGPT, 15, "B001"),  # long user turn, <audio> at its end
    (SHAREGPT, 17, "F002"),  # a list element of the array
    (SG_DPO, 1, "S006"),  # chosen from the human
    (SG_DPO, 3, "M002"),  # <audio> in chosen and rejected
    (SG_DPO, 5, "A007"),  # 0.05 s clip
    (SG_DPO, 7, "T001"),  # U+FFFD in the rejected answer
    (ALPACA, 2, "M005"),  # raw <|AUDIO|> token
    (ALPACA, 4, "P001"),  # chosen == rejected
    (ALPACA, 6, "A004"),  # invalid base64 bytes
    (ALPACA, 7, "A005"),  # a text file named .wav
    (ALPACA, 9, "B002"),  # long output, <audio> first
    (ALPACA, 10, "D001"),  # same audio and conversation as minicpm record 0, in another dialect
    (ALPACA, 11, "F001"),  # a cut line inside the gzip
    (SWIFT, 1, "S003"),  # assistant first
    (SWIFT, 3, "S008"),  # role "bot"
    (SWIFT, 4, "M004"),  # <image> marker
    (SWIFT, 6, "A006"),  # zero-length WAV
    (SWIFT, 7, "A014"),  # WAV truncated to half its bytes
    (SWIFT, 8, "T001"),  # U+FFFD in the answer
    (SWIFT, 10, "S005"),  # content is a number
    (CHAT, 2, "A001"),  # missing file inside a content item
    (CHAT, 4, "S001"),  # audio both in the content list and in audios
    (CHAT, 6, "A003"),  # URL inside a content item
    (CHAT, 8, "M003"),  # <audio> in a system turn
    (CHAT, 8, "T001"),  # and a control character in the user text: two warnings on one record
]

#: Where each field-level defect is reported (the input field, as written).
FIELD = {
    (MINICPM, 8, "S005"): "text",
    (MINICPM, 10, "A001"): "audio",
    (MINICPM, 13, "A003"): "audio",
    (MINICPM, 14, "A008"): "audio",
    (MINICPM, 14, "R002"): "text",
    (MINICPM, 14, "R004"): "text",
    (MINICPM, 14, "R005"): "text",
    (MINICPM, 16, "A009"): "audio",
    (MINICPM, 17, "A012"): "audio",
    (MINICPM, 19, "A014"): "audio",
    (MINICPM, 19, "T002"): "text",
    (MINICPM, 20, "M003"): "system",
    (SHAREGPT, 2, "S002"): "conversations[2].value",
    (SHAREGPT, 4, "S004"): "conversations[1].value",
    (SHAREGPT, 6, "S007"): "messages",
    (SHAREGPT, 9, "M001"): "messages",
    (SHAREGPT, 10, "A013"): "audios[0]",
    (SHAREGPT, 12, "A002"): "audios[0]",
    (SHAREGPT, 13, "S008"): "conversations[0].from",
    (SHAREGPT, 15, "B001"): "audios[0]",
    (SG_DPO, 1, "S006"): "chosen.value",
    (SG_DPO, 3, "M002"): "chosen.value",
    (SG_DPO, 5, "A007"): "audios[0]",
    (SG_DPO, 7, "T001"): "rejected.value",
    (ALPACA, 2, "M005"): "instruction",
    (ALPACA, 4, "P001"): "chosen",
    (ALPACA, 6, "A004"): "audios[0].bytes",
    (ALPACA, 7, "A005"): "audios[0]",
    (ALPACA, 9, "B002"): "messages",
    (SWIFT, 1, "S003"): "messages[0].content",
    (SWIFT, 3, "S008"): "messages[1].role",
    (SWIFT, 4, "M004"): "messages[0].content",
    (SWIFT, 6, "A006"): "audios[0]",
    (SWIFT, 7, "A014"): "audios[0]",
    (SWIFT, 8, "T001"): "messages[1].content",
    (SWIFT, 10, "S005"): "messages[1].content",
    (CHAT, 2, "A001"): "messages[0].content[0].audio",
    (CHAT, 4, "S001"): "messages",
    (CHAT, 6, "A003"): "messages[0].content[0].url",
    (CHAT, 8, "M003"): "system",
    (CHAT, 8, "T001"): "messages[1].content",
}

#: The earlier record each planted duplicate repeats.
DUPLICATE_OF = {(MINICPM, 23): (MINICPM, 1), (ALPACA, 10): (MINICPM, 0)}

AUDIO_FAMILIES = ("A", "B", "R")

# --------------------------------------------------------------------------- audio

#: Clean clips: 1-3 s at 16 kHz, each a different tone.
CLEAN_SECONDS = (1.0, 1.5, 2.0, 2.5, 3.0, 1.2, 2.0, 2.8, 1.8, 2.2)


def clip(k: int) -> str:
    return f"audio/c{k % len(CLEAN_SECONDS)}.wav"


def wav_bytes(x: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_media(root: Path) -> dict[str, str]:
    """Every clip the corpus refers to; returns the inline (base64) ones by name."""
    media = root / "audio"
    for k, seconds in enumerate(CLEAN_SECONDS):
        write_audio(media / f"c{k}.wav", seconds=seconds, freq=220.0 + 70 * k)
    write_audio(media / "low8k.wav", seconds=2.0, rate=8000, freq=500.0)
    sf.write(media / "silent.wav", np.zeros(32000, np.float32), 16000, subtype="PCM_16")
    t = np.arange(32000) / 16000
    sf.write(media / "clipped.wav", np.where(np.sin(2 * np.pi * 200 * t) >= 0, 1.0, -1.0), 16000, subtype="PCM_16")
    write_audio(media / "long31.wav", seconds=31.0, freq=330.0)
    data = write_audio(media / "truncated.wav", seconds=2.0, freq=610.0).read_bytes()
    (media / "truncated.wav").write_bytes(data[: len(data) // 2])
    sf.write(media / "empty.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    write_audio(media / "short.wav", seconds=0.05, freq=700.0)
    (media / "fake.wav").write_text("this is not audio, only text saved under a .wav name\n" * 4)
    write_audio(root.parent / "outside.wav", seconds=1.0, freq=880.0)  # exists, but outside the media root
    return {
        "b64": base64.b64encode(wav_bytes(tone(1.3, freq=1234.0))).decode("ascii"),
        "uri": "data:audio/wav;base64," + base64.b64encode(wav_bytes(tone(1.7, freq=987.0))).decode("ascii"),
    }


# --------------------------------------------------------------------------- records

_serial = iter(range(10_000))


def say() -> str:
    """A unique answer, so no two clean records are duplicates; short enough to be a plausible
    transcript of a 1-3 s clip (the transcript-rate rules measure the transcription records)."""
    return f"Line {next(_serial)} is read."


def minicpm(k: int, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"audio": clip(k), "text": say()}
    return {**rec, **extra}


def sharegpt(k: int, first: str = "<audio>What is said here?", *more: dict[str, str], **extra: Any) -> dict[str, Any]:
    turns = [{"from": "human", "value": first}, {"from": "gpt", "value": say()}, *more]
    return {"conversations": turns, "audios": [clip(k)], **extra}


def sharegpt_dpo(k: int, prompt: str = "<audio>Describe the clip.", **extra: Any) -> dict[str, Any]:
    return {
        "conversations": [{"from": "human", "value": prompt}],
        "chosen": {"from": "gpt", "value": say()},
        "rejected": {"from": "gpt", "value": "It is a recording of a dog barking."},
        "audios": [clip(k)],
        **extra,
    }


def alpaca(k: int, instruction: str = "<audio>Transcribe the clip.", **extra: Any) -> dict[str, Any]:
    return {"instruction": instruction, "input": "", "output": say(), "audios": [clip(k)], **extra}


def alpaca_dpo(k: int) -> dict[str, Any]:
    return {"instruction": "<audio>", "input": "Which tone?", "chosen": say(), "rejected": "A drum.", "audios": [clip(k)]}


def swift(k: int, user: str = "<audio>What does the speaker say?", role: str = "assistant", **extra: Any) -> dict[str, Any]:
    msgs = [{"role": "user", "content": user}, {"role": role, "content": say()}]
    return {"messages": msgs, "audios": [clip(k)], **extra}


def swift_dpo(k: int) -> dict[str, Any]:
    msgs = [
        {"role": "system", "content": "You transcribe audio."},
        {"role": "user", "content": "<audio>Transcribe."},
        {"role": "assistant", "content": say()},
    ]
    return {"messages": msgs, "rejected_response": "No idea.", "audios": [clip(k)]}


def sg(*turns: tuple[str, str], audio: str) -> dict[str, Any]:
    """A sharegpt record written out turn by turn."""
    return {"conversations": [{"from": r, "value": v} for r, v in turns], "audios": [audio]}


def sw(*turns: tuple[str, Any], audio: str) -> dict[str, Any]:
    """An ms-swift record written out turn by turn."""
    return {"messages": [{"role": r, "content": c} for r, c in turns], "audios": [audio]}


def chat(item: dict[str, Any], text: str = "What is in this clip?", **extra: Any) -> dict[str, Any]:
    user = {"role": "user", "content": [item, {"type": "text", "text": text}]}
    return {"messages": [user, {"role": "assistant", "content": say()}], **extra}


# A file is a list of entries: ("ok", record) is clean, ("bad", record or raw text) carries planted
# defects, BLANK is an empty line (JSONL only: it shifts lines but is no record).
BLANK = ("blank", None)


def ok(rec: Any) -> tuple[str, Any]:
    return ("ok", rec)


def bad(rec: Any) -> tuple[str, Any]:
    return ("bad", rec)


def corpus_entries(inline: dict[str, str]) -> dict[str, list[tuple[str, Any]]]:
    first_minicpm = minicpm(0)
    second_minicpm = minicpm(1, prompt="Transcribe the audio.")
    return {
        MINICPM: [
            ok(first_minicpm),
            ok(second_minicpm),
            bad('{"audio": "audio/c2.wav", "text": "cut off in the mid'),
            ok(minicpm(3, prompt="Write down what you hear.")),
            bad('["audio/c3.wav", "a list, not an object"]'),
            ok(minicpm(4, system="You are a careful transcriber.")),
            bad({"wav": "audio/c4.wav", "transcript": "keys no dialect knows"}),
            ok(minicpm(5, id="utt-0005")),
            bad({"audio": "audio/c5.wav", "text": 42}),
            ok(minicpm(6, duration=2.0)),  # a correct stated duration: no A014
            bad({"audio": "audio/missing.wav", "text": "The file was never written."}),
            ok(minicpm(7)),
            BLANK,
            ok({"audios": [clip(8), clip(9)], "text": say(), "prompt": "<audio> then <audio>: what changed?"}),
            bad({"audio": "https://example.com/clip.wav", "text": "Audio on a web server."}),
            bad({"audio": "audio/long31.wav", "text": "A clip longer than the window."}),
            ok(minicpm(8)),
            bad({"audio": "audio/low8k.wav", "text": "A telephone-band recording."}),
            bad({"audio": "audio/silent.wav", "text": "Nothing was recorded."}),
            ok(minicpm(9)),
            bad({"audio": "audio/c2.wav", "text": "A stale manifest says nine seconds.", "duration": 9.0}),
            bad({"audio": clip(1), "text": "The system prompt holds a marker.", "system": "Listen to <audio> carefully."}),
            bad(minicpm(2)),  # D003: clip 2 with another transcript than record 19
            bad(minicpm(0)),  # D003: clip 0 with another transcript than record 0
            bad(second_minicpm),
            BLANK,
            ok(minicpm(4, prompt="Repeat the words.")),
        ],
        SHAREGPT: [
            ok(
                sharegpt(
                    0,
                    "<audio>Who speaks?",
                    {"from": "human", "value": "And what do they say?"},
                    {"from": "gpt", "value": "A greeting."},
                    system="You answer questions about audio.",
                )
            ),
            ok(sharegpt(1)),
            bad(
                sharegpt(
                    2,
                    "<audio>Rate the clip.",
                    {"from": "critic", "value": "Too short."},
                    {"from": "gpt", "value": "It is two seconds."},
                )
            ),
            ok(sharegpt(3, "Listen: <audio>")),
            bad(sg(("human", "<audio>Say it."), ("gpt", ""), audio=clip(4))),
            ok({**sharegpt(5, "<audio> and <audio>: same speaker?"), "audios": [clip(5), clip(6)]}),
            bad(sharegpt(6, "<audio>Go on.", {"from": "human", "value": "Anything else?"})),
            bad("broken"),  # replaced below by a pretty-printed element with trailing commas
            ok(sharegpt(7, "<audio>Transcribe.")),
            bad(sg(("human", "Transcribe."), ("gpt", "Hi."), audio=clip(8))),
            bad(sharegpt(0, "<audio>Is it distorted?") | {"audios": ["audio/clipped.wav"]}),
            ok(sharegpt(9, "<audio>Count the words.", system="Be brief.")),
            bad(sharegpt(0, "<audio>Where is it?") | {"audios": ["../outside.wav"]}),
            bad(sg(("Human", "<audio>Hi?"), ("gpt", "Hello."), audio=clip(3))),
            ok(sharegpt(2, "Please transcribe <audio>")),
            bad(sharegpt(1, LONG + " <audio>")),
            ok(sharegpt(4, "<audio>Which language?")),
            bad(["<audio>", "an array element that is a list"]),
            ok(sharegpt(6, "<audio>Summarise.")),
        ],
        SG_DPO: [
            ok(sharegpt_dpo(0)),
            bad(sharegpt_dpo(1) | {"chosen": {"from": "human", "value": "Wrong side."}}),
            ok(sharegpt_dpo(2, system="Prefer precise answers.")),
            bad(
                sharegpt_dpo(3, "Describe the clip.")
                | {"chosen": {"from": "gpt", "value": "<audio> a tone"}, "rejected": {"from": "gpt", "value": "<audio> noise"}}
            ),
            ok(sharegpt_dpo(4, "What is <audio>?")),
            bad(sharegpt_dpo(0) | {"audios": ["audio/short.wav"]}),
            ok(sharegpt_dpo(5)),
            bad(sharegpt_dpo(6) | {"rejected": {"from": "gpt", "value": "Caf\ufffd music."}}),
            ok(sharegpt_dpo(7)),
        ],
        ALPACA: [
            ok(alpaca(0)),
            ok({"instruction": "<audio>Transcribe.", "output": say(), "audios": [inline["b64"]]}),
            bad(alpaca(2, "<audio><|AUDIO|>Transcribe.")),
            ok(alpaca_dpo(3)),
            bad({"instruction": "<audio>Which is better?", "chosen": "Same.", "rejected": "Same.", "audios": [clip(4)]}),
            ok(alpaca(5, history=[["Hello?", "Hi."]], system="Answer briefly.")),
            bad(alpaca(0) | {"audios": [{"bytes": "@@ not base64 @@", "path": "clip.wav"}]}),
            bad(alpaca(0) | {"audios": ["audio/fake.wav"]}),
            ok(alpaca(6, "Transcribe", input="<audio>")),
            bad(alpaca(7, "<audio>Summarise in detail.") | {"output": LONG}),
            bad({"instruction": "<audio>", "output": first_minicpm["text"], "audios": [first_minicpm["audio"]]}),
            bad('{"instruction": "<audio>Transcribe.", "output": '),
            ok(alpaca_dpo(8)),
            ok(alpaca(9)),
        ],
        SWIFT: [
            ok(swift(0)),
            bad(sw(("assistant", "Hello."), ("user", "<audio>Said what?"), audio=clip(1))),
            ok(swift_dpo(2)),
            bad(swift(3, role="bot")),
            BLANK,
            bad(swift(4, "<audio><image>What is shown?")),
            ok(swift(5, "Describe <audio> in one word.")),
            bad(swift(6) | {"audios": ["audio/empty.wav"]}),
            bad(swift(7) | {"audios": ["audio/truncated.wav"]}),
            bad(sw(("user", "<audio>Name it."), ("assistant", "Caf\ufffd."), audio=clip(8))),
            ok(swift_dpo(9)),
            bad(sw(("user", "<audio>Count."), ("assistant", 123), audio=clip(0))),
            BLANK,
            ok(swift(1, "<audio>Is the speaker calm?", system="You rate audio.")),
        ],
        CHAT: [
            ok(chat({"type": "audio", "path": clip(0)})),
            ok(chat({"type": "audio"}, audios=[clip(1)])),
            bad(chat({"type": "audio", "audio": "audio/gone.wav"})),
            ok(chat({"type": "audio", "audio": inline["uri"]})),
            bad(chat({"type": "audio", "path": clip(2)}, audios=[clip(3)])),
            ok(chat({"type": "audio", "audio": clip(4)}, "Transcribe it.")),
            bad(chat({"type": "audio", "url": "http://example.com/remote.wav"})),
            ok(chat({"type": "audio", "path": clip(5)}, "Who is speaking?")),
            bad(
                {
                    "messages": [
                        {"role": "system", "content": "Each <audio> is a phone call."},
                        {"role": "user", "content": [{"type": "audio", "path": clip(6)}, {"type": "text", "text": "Tone\x07?"}]},
                        {"role": "assistant", "content": "A calm tone."},
                    ]
                }
            ),
            ok(chat({"type": "audio", "path": clip(7)}, "Any background noise?")),
        ],
    }


def broken_element() -> str:
    """A pretty-printed sharegpt record with trailing commas: invalid JSON over several lines."""
    text = json.dumps(sharegpt(0, "<audio>Broken."), indent=2)
    return text.replace("\n    }\n  ],", "\n    },\n  ],").replace("\n}", ",\n}")


# --------------------------------------------------------------------------- writing


@dataclass
class Corpus:
    root: Path
    source: dict[str, str] = field(default_factory=dict)  # file name -> the input path as given to lint
    shown: dict[str, str] = field(default_factory=dict)  # file name -> how findings name it (typed absolute: its name)
    line: dict[tuple[str, int], int] = field(default_factory=dict)  # (file, index) -> 1-based line it starts on
    clean: set[tuple[str, int]] = field(default_factory=set)
    defective: set[tuple[str, int]] = field(default_factory=set)

    @property
    def inputs(self) -> list[str]:
        return [self.source[f] for f in FILES]

    def where(self, file: str, index: int) -> tuple[str, int]:
        return self.shown[file], index


def write_jsonl_file(path: Path, name: str, entries: list[tuple[str, Any]], corpus: Corpus) -> None:
    lines: list[str] = []
    index = 0
    for kind, rec in entries:
        if kind == "blank":
            lines.append("")
            continue
        lines.append(rec if isinstance(rec, str) else json.dumps(rec, ensure_ascii=False))
        corpus.line[name, index] = len(lines)
        (corpus.clean if kind == "ok" else corpus.defective).add((name, index))
        index += 1
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(text, mtime=0) if name.endswith(".gz") else text)


def write_array_file(path: Path, name: str, entries: list[tuple[str, Any]], corpus: Corpus) -> None:
    """A pretty-printed JSON array: '[' on line 1, every element over several lines."""
    parts: list[str] = []
    line = 2
    for index, (kind, rec) in enumerate(entries):
        text = broken_element() if rec == "broken" else json.dumps(rec, indent=2, ensure_ascii=False)
        parts.append(textwrap.indent(text, "  "))
        corpus.line[name, index] = line
        (corpus.clean if kind == "ok" else corpus.defective).add((name, index))
        line += text.count("\n") + 1
    path.write_text("[\n" + ",\n".join(parts) + "\n]\n", encoding="utf-8")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("lint_corpus") / "corpus"
    root.mkdir()
    inline = write_media(root)
    c = Corpus(root)
    for name, entries in corpus_entries(inline).items():
        path = root / name
        c.source[name] = str(path)
        c.shown[name] = name
        if name.endswith(".json"):
            write_array_file(path, name, entries, c)
        else:
            write_jsonl_file(path, name, entries, c)
    return c


@pytest.fixture(scope="module")
def report(corpus: Corpus) -> dict[str, Any]:
    rep = lint(corpus.inputs, audio=True, num_workers=1, model_family=FAMILY, cutoff_len=CUTOFF)
    assert rep.exit_code == 1
    return rep.to_dict()


def by_record(findings: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for f in findings:
        out.setdefault((f["source"], f["index"]), []).append(f)
    return out


def planted_at(c: Corpus) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for file, index, code in PLANTED:
        out.setdefault(c.where(file, index), set()).add(code)
    return out


def planted_errors(c: Corpus) -> set[tuple[str, int]]:
    return {where for where, codes in planted_at(c).items() if codes - WARNINGS}


# --------------------------------------------------------------------------- the table itself


def test_the_planted_table_matches_the_corpus(corpus):
    assert {(f, i) for f, i, _ in PLANTED} == corpus.defective  # every defective record is in the table, and only those
    assert len(PLANTED) >= 30 and len(corpus.clean) >= 40
    assert len(set(PLANTED)) == len(PLANTED)
    wanted = {"F001", "F002", "F003", "S002", "S003", "S004", "S006", "S007", "S008", "T001", "P001", "D001", "D003"}
    wanted |= {f"M00{i}" for i in range(1, 6)} | {f"A00{i}" for i in range(1, 10)} | {"A012", "A013", "A014", "B001", "B002"}
    assert wanted <= {code for _, _, code in PLANTED} and {"S001", "S005"} & {code for _, _, code in PLANTED}
    assert {f for f, _, _ in PLANTED} == set(FILES)
    assert all(key[2] in RECORD_LEVEL or key in FIELD for key in PLANTED) and set(FIELD) <= set(PLANTED)
    lines = corpus.line
    assert any(lines[SHAREGPT, i] != i + 1 for i in range(3)) and any(lines[MINICPM, i] != i + 1 for i in range(14, 20))


# --------------------------------------------------------------------------- 1. every planted defect, in place


def test_every_planted_defect_is_found_where_it_was_planted(corpus, report):
    findings = report["findings"]
    for file, index, code in PLANTED:
        src = corpus.shown[file]
        here = [f for f in findings if (f["source"], f["index"], f["code"]) == (src, index, code)]
        there = [f["code"] for f in findings if (f["source"], f["index"]) == (src, index)]
        assert here, f"{code} not found at {file}#{index}; found there: {there}"
        want_line = corpus.line[file, index]
        assert all(f["line"] == want_line for f in here), (file, index, code, [f["line"] for f in here], want_line)
        if code in RECORD_LEVEL:
            assert all(f["field"] == "" for f in here), (file, index, code)
        else:
            assert any(f["field"] == FIELD[file, index, code] for f in here), (file, index, code, [f["field"] for f in here])
        severity = "warning" if code in WARNINGS else "error"
        assert all(f["severity"] == severity for f in here), (file, index, code)
        assert all(f["message"] for f in here)


def test_duplicates_name_the_record_they_repeat(corpus, report):
    for (file, index), (first_file, first_index) in DUPLICATE_OF.items():
        [dup] = [f for f in report["findings"] if f["code"] == "D001" and (f["source"], f["index"]) == corpus.where(file, index)]
        first = f"{corpus.shown[first_file]}:line {corpus.line[first_file, first_index]} (record {first_index})"
        assert dup["message"] == f"exact duplicate of {first}"


# --------------------------------------------------------------------------- 2. nothing anywhere else


def test_no_finding_on_clean_records_and_errors_exactly_where_planted(corpus, report):
    found = by_record(report["findings"])
    planted = planted_at(corpus)
    clean = {corpus.where(f, i) for f, i in corpus.clean}
    assert not {where: [f["code"] for f in fs] for where, fs in found.items() if where in clean}
    for where, codes in planted.items():  # each defective record shows its planted codes and no others
        assert {f["code"] for f in found.get(where, [])} == codes, where
        if not codes - WARNINGS:
            assert not [f for f in found[where] if f["severity"] == "error"], where
    with_errors = {where for where, fs in found.items() if any(f["severity"] == "error" for f in fs)}
    assert with_errors == planted_errors(corpus)
    assert all(f["line"] == corpus.line[_name(corpus, f["source"]), f["index"]] for f in report["findings"])


def _name(c: Corpus, source: str) -> str:
    return next(name for name, src in c.shown.items() if src == source)


# --------------------------------------------------------------------------- 3. exit code and summary


def test_summary_counts_agree_with_the_findings(corpus, report):
    findings, summary = report["findings"], report["summary"]
    severities = Counter(f["severity"] for f in findings)
    assert summary["records"] == len(corpus.clean) + len(corpus.defective)
    assert summary["errors"] == severities["error"] > 0
    assert summary["warnings"] == severities["warning"] > 0
    assert summary["infos"] == severities["info"] == 0
    assert summary["by_code"] == dict(sorted(Counter(f["code"] for f in findings).items()))
    assert summary["records_with_errors"] == len(planted_errors(corpus))
    assert summary["inputs"] == [corpus.shown[f] for f in FILES]  # typed absolute: named by their file names
    assert summary["audio_checked"] is True
    assert (summary["model_family"], summary["cutoff_len"]) == (FAMILY, CUTOFF)
    assert set(summary["by_code"]) == {code for _, _, code in PLANTED}


# --------------------------------------------------------------------------- 4. worker count


def test_two_workers_give_the_identical_findings(corpus, report):
    two = lint(corpus.inputs, audio=True, num_workers=2, batch_size=5, model_family=FAMILY, cutoff_len=CUTOFF).to_dict()
    assert two["findings"] == report["findings"]
    assert two["summary"] == report["summary"]


# --------------------------------------------------------------------------- 5. convert agrees


def test_convert_rejects_exactly_the_records_lint_marks_as_errors(corpus, report, tmp_path):
    out = tmp_path / "out"
    result = audiodata.convert(corpus.inputs, out, num_workers=1, model_family=FAMILY, cutoff_len=CUTOFF)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    rejected = {(r["source"], r["index"]) for r in rejects}
    flagged = {(f["source"], f["index"]) for f in report["findings"] if f["severity"] == "error"}
    assert rejected == flagged == planted_errors(corpus)
    assert len(rejects) == len(rejected)
    for r in rejects:
        assert r["line"] == corpus.line[_name(corpus, r["source"]), r["index"]]
        here = [f for f in report["findings"] if (f["source"], f["index"]) == (r["source"], r["index"])]
        assert sorted(x["code"] for x in r["reasons"]) == sorted(f["code"] for f in here if f["severity"] == "error")
    assert result.records_read == result.records_written + result.records_rejected
    kept_warnings = {(f["source"], f["index"], f["code"]) for f in report["findings"] if (f["source"], f["index"]) not in flagged}
    lint_only = [code for *_, code in kept_warnings if code[0] == "D" or code in ("R005", "T002", "T003")]  # lint's dataset rules
    assert result.warnings_by_code == dict(Counter(code for *_, code in kept_warnings if code not in lint_only))
    assert result.records_read == report["summary"]["records"]
    assert result.records_rejected == len(flagged)
    assert result.exit_code == 1


# --------------------------------------------------------------------------- 6. text-only lint


def test_text_only_lint_finds_every_text_defect_in_place(corpus, report):
    text = lint(corpus.inputs, audio=False, num_workers=1, model_family=FAMILY, cutoff_len=CUTOFF).to_dict()
    assert text["summary"]["audio_checked"] is False
    assert not [f for f in text["findings"] if f["code"].startswith(AUDIO_FAMILIES)]
    for file, index, code in PLANTED:
        if code.startswith(AUDIO_FAMILIES):
            continue
        src = corpus.shown[file]
        here = [f for f in text["findings"] if (f["source"], f["index"], f["code"]) == (src, index, code)]
        assert here and all(f["line"] == corpus.line[file, index] for f in here), (file, index, code)
    # the same findings as the full lint, less the audio and budget ones
    assert text["findings"] == [f for f in report["findings"] if not f["code"].startswith(AUDIO_FAMILIES)]
