#!/usr/bin/env python3
"""Generate the committed ``sample_data/`` folder for audiodata.

Deterministic and re-runnable: fixed sentences, voices, speeds and encoder
settings; no randomness.  Speech comes from espeak-ng, resampling from sox
(``-R`` repeatable mode, float intermediates so no dither), lossy encodes
from ffmpeg with ``-fflags +bitexact`` (fixed Ogg serial numbers, no encoder
version tags), PCM/FLAC writing from soundfile.

Outputs (paths relative to ``sample_data/``):

* ``audio/``                 clips in WAV/FLAC/OGG/MP3/M4A/Opus at mixed rates,
                             plus the deliberately broken ``corrupt.wav`` and
                             ``empty.wav``
* ``minicpm.jsonl``, ``more.jsonl.gz``, ``sharegpt_sft.json``,
  ``sharegpt_dpo.jsonl``, ``alpaca.json``, ``alpaca_dpo.jsonl``,
  ``swift.jsonl``, ``chat_content.jsonl``
* ``llamafactory/``          a LLaMA-Factory dataset dir (dataset_info.json,
                             audio_chat.json, audio_rank.json, media/)
* ``README.md``              description + table of broken records
* ``tests/sample_expected.json`` machine-readable counts and broken locations

Usage::

    python scripts/make_sample_data.py [--out sample_data]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------
# Clip table: every sentence, voice and format is fixed here.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    key: str
    filename: str  # relative to sample_data/audio/ ("" for in-memory embeds)
    text: str
    voice: str
    speed: int  # espeak-ng words per minute
    pitch: int  # espeak-ng pitch 0..99
    kind: str  # see render()
    sr: int
    channels: int = 1


CLIPS: list[Clip] = [
    # WAV int16 22050 Hz mono (espeak-ng's native rate)
    Clip("c01", "clip01_22k.wav", "The quick brown fox jumps over the lazy dog.", "en-us", 160, 50, "wav16", 22050),
    Clip(
        "c02",
        "clip02_22k.wav",
        "Please call Stella and ask her to bring these things with her.",
        "en-gb-x-rp",
        150,
        45,
        "wav16",
        22050,
    ),
    Clip("c03", "clip03_22k.wav", "It is going to rain later this afternoon.", "en-gb-scotland", 175, 50, "wav16", 22050),
    # WAV float32 44100 Hz stereo (short: this format is 352 kB per second)
    Clip("c04", "clip04_44k_f32_stereo.wav", "Good morning, everyone.", "en-us+f3", 170, 60, "wavf32_stereo", 44100, 2),
    # WAV int16 8000 Hz mono (telephone band)
    Clip("c05", "clip05_8k.wav", "Your call is important to us.", "en", 160, 50, "wav16", 8000),
    Clip("c06", "clip06_8k.wav", "Press one to speak with an operator.", "en-us", 185, 40, "wav16", 8000),
    # FLAC 16 kHz mono
    Clip("c07", "clip07_16k.flac", "She sells sea shells by the sea shore.", "en-gb-x-rp", 140, 55, "flac16", 16000),
    Clip("c08", "clip08_16k.flac", "The meeting has been moved to Thursday.", "en-us-nyc", 170, 50, "flac16", 16000),
    Clip("c09", "clip09_16k.flac", "Turn left at the next traffic light.", "en-029", 160, 50, "flac16", 16000),
    # FLAC 48 kHz (one mono 16-bit, one stereo 24-bit)
    Clip("c10", "clip10_48k.flac", "A rainbow appears after the storm passes.", "en-us+m3", 150, 45, "flac16", 48000),
    Clip("c11", "clip11_48k_stereo.flac", "Music fills the quiet room.", "en", 160, 50, "flac24_stereo", 48000, 2),
    # OGG/Vorbis 48 kHz
    Clip("c12", "clip12_48k.ogg", "The train to London leaves at nine.", "en-gb-x-rp", 170, 50, "vorbis", 48000),
    Clip("c13", "clip13_48k.ogg", "Fresh bread smells wonderful in the morning.", "en-us+f2", 150, 60, "vorbis", 48000),
    # MP3 24 kHz and 44.1 kHz
    Clip("c14", "clip14_24k.mp3", "Water boils at one hundred degrees Celsius.", "en", 175, 50, "mp3", 24000),
    Clip("c15", "clip15_44k.mp3", "Remember to save your work often.", "en-us", 200, 50, "mp3", 44100),
    # M4A/AAC
    Clip("c16", "clip16_44k.m4a", "The library closes at eight tonight.", "en-gb-scotland", 160, 50, "aac", 44100),
    Clip("c17", "clip17_16k.m4a", "Birds sing loudly at dawn.", "en-us+f4", 140, 55, "aac", 16000),
    # Opus in .opus (Ogg), always 48 kHz
    Clip("c18", "clip18_48k.opus", "Can you hear me clearly now?", "en", 170, 50, "opus", 48000),
    Clip("c19", "clip19_48k.opus", "Thank you for listening.", "en-us", 150, 50, "opus", 48000),
    # In-memory clips embedded into JSON (base64); never written to audio/
    Clip("e1", "", "Hello, how are you today?", "en-us", 170, 50, "embed_wav", 16000),
    Clip("e2", "", "Nice to meet you.", "en-gb-x-rp", 160, 50, "embed_wav", 16000),
    Clip("e3", "", "See you tomorrow.", "en-029", 160, 50, "embed_flac", 16000),
    Clip("e4", "", "What time is it?", "en-us-nyc", 170, 50, "embed_wav", 16000),
]
BY_KEY = {c.key: c for c in CLIPS}

# Small clips copied into llamafactory/media/ (LLaMA-Factory resolves media
# against its dataset_dir, so these must live inside sample_data/llamafactory/).
LF_MEDIA = ["c05", "c07", "c12", "c18", "c17"]

CORRUPT_TEXT = (
    "This is not a WAV file. It is plain text saved with a .wav name so that\n"
    "decoders fail on it; audiodata should report the record as undecodable.\n"
)

KIND_DESC = {
    "wav16": "WAV PCM int16",
    "wavf32_stereo": "WAV float32",
    "flac16": "FLAC 16-bit",
    "flac24_stereo": "FLAC 24-bit",
    "vorbis": "Ogg/Vorbis",
    "mp3": "MP3 (LAME)",
    "aac": "M4A/AAC-LC",
    "opus": "Ogg/Opus",
}

# --------------------------------------------------------------------------
# Audio rendering
# --------------------------------------------------------------------------


def run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr}")


def synth(clip: Clip, tmp: Path) -> np.ndarray:
    """espeak-ng -> sox (resample to clip.sr, float32, peak-normalise) -> mono float array."""
    raw = tmp / f"{clip.key}_espeak.wav"
    run(["espeak-ng", "-v", clip.voice, "-s", str(clip.speed), "-p", str(clip.pitch), "-w", str(raw), clip.text])
    res = tmp / f"{clip.key}_{clip.sr}.wav"
    # -R: repeatable mode; float32 output means sox never dithers.
    run(["sox", "-R", "-V1", str(raw), "-e", "floating-point", "-b", "32", str(res), "rate", "-v", str(clip.sr), "norm", "-3"])
    data, sr = sf.read(res, dtype="float32")
    assert sr == clip.sr, (sr, clip.sr)
    return data


def make_stereo(x: np.ndarray, sr: int, delay_ms: float, gain: float) -> np.ndarray:
    """Deterministic pseudo-stereo: right channel is a delayed, attenuated copy."""
    d = round(sr * delay_ms / 1000.0)
    right = np.concatenate([np.zeros(d, dtype=x.dtype), x[: len(x) - d]]) * gain
    return np.stack([x, right], axis=1).astype(np.float32)


def write_float_wav(path: Path, data: np.ndarray, sr: int) -> None:
    """Write an IEEE-float32 WAV (format tag 3, with fact chunk).

    Not via soundfile: libsndfile adds a PEAK chunk holding a wall-clock
    timestamp to float WAVs, which would make the output differ on every run.
    """
    data = np.asarray(data, dtype="<f4")
    if data.ndim == 1:
        data = data[:, None]
    frames, ch = data.shape
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, ch, sr, sr * ch * 4, ch * 4, 32, 0)
    fact = struct.pack("<I", frames)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<I", len(fact))
        + fact
        + b"data"
        + struct.pack("<I", len(payload))
        + payload
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def ffmpeg_encode(src: Path, dst: Path, codec_args: list[str]) -> None:
    run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            *codec_args,
            str(dst),
        ]
    )


def render(clip: Clip, audio_dir: Path, tmp: Path) -> bytes | None:
    """Write clip to audio_dir (or return encoded bytes for embed_* kinds)."""
    x = synth(clip, tmp)
    out = audio_dir / clip.filename if clip.filename else None
    k = clip.kind
    if k == "wav16":
        sf.write(out, x, clip.sr, subtype="PCM_16", format="WAV")
    elif k == "wavf32_stereo":
        write_float_wav(out, make_stereo(x, clip.sr, 0.25, 0.7), clip.sr)
    elif k == "flac16":
        sf.write(out, x, clip.sr, subtype="PCM_16", format="FLAC")
    elif k == "flac24_stereo":
        sf.write(out, make_stereo(x, clip.sr, 0.5, 0.6), clip.sr, subtype="PCM_24", format="FLAC")
    elif k in ("vorbis", "mp3", "aac", "opus"):
        src = tmp / f"{clip.key}_src.wav"
        sf.write(src, x, clip.sr, subtype="PCM_16", format="WAV")
        args = {
            "vorbis": ["-c:a", "libvorbis", "-q:a", "2"],
            "mp3": ["-c:a", "libmp3lame", "-b:a", "48k" if clip.sr <= 24000 else "64k"],
            "aac": ["-c:a", "aac", "-b:a", "32k" if clip.sr <= 16000 else "48k"],
            "opus": ["-c:a", "libopus", "-b:a", "24k"],
        }[k]
        ffmpeg_encode(src, out, [*args, "-ar", str(clip.sr), "-ac", str(clip.channels)])
    elif k == "embed_wav":
        buf = io.BytesIO()
        sf.write(buf, x, clip.sr, subtype="PCM_16", format="WAV")
        return buf.getvalue()
    elif k == "embed_flac":
        buf = io.BytesIO()
        sf.write(buf, x, clip.sr, subtype="PCM_16", format="FLAC")
        return buf.getvalue()
    else:  # pragma: no cover
        raise ValueError(k)
    return None


def probe(path: Path) -> dict[str, Any]:
    """Decode a file fully (soundfile first, ffmpeg fallback) and return its stats."""
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        return {"decoder": "soundfile", "sr": sr, "channels": data.shape[1], "frames": data.shape[0]}
    except Exception:
        pass
    info = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate,channels",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    st = json.loads(info.stdout)["streams"][0]
    sr, ch = int(st["sample_rate"]), int(st["channels"])
    pcm = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", str(ch), "-"],
        capture_output=True,
        check=True,
    ).stdout
    return {"decoder": "ffmpeg", "sr": sr, "channels": ch, "frames": len(pcm) // (4 * ch)}


# --------------------------------------------------------------------------
# Corpus writing with bookkeeping of good / broken entries
# --------------------------------------------------------------------------


@dataclass
class Entry:
    obj: Any = None  # JSON value to serialise
    raw: str | None = None  # raw text line (for the malformed-JSON case)
    broken: str | None = None  # reason, None for good records
    refs: list[str] = field(default_factory=list)  # relative media paths that must exist


class Corpus:
    def __init__(self, relpath: str, layout: str, dialect: str, description: str):
        self.relpath = relpath
        self.layout = layout  # "jsonl" | "jsonl.gz" | "json"
        self.dialect = dialect
        self.description = description
        self.entries: list[Entry] = []

    def good(self, obj: Any, refs: list[str] | None = None) -> None:
        self.entries.append(Entry(obj=obj, refs=list(refs or [])))

    def bad(self, reason: str, obj: Any = None, raw: str | None = None) -> None:
        self.entries.append(Entry(obj=obj, raw=raw, broken=reason))

    # JSONL: 1-based line number; JSON array: 0-based index
    def location(self, i: int) -> str:
        return f"line {i + 1}" if self.layout.startswith("jsonl") else f"index {i}"

    def write(self, root: Path) -> None:
        path = root / self.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.layout == "json":
            assert all(e.raw is None for e in self.entries)
            text = json.dumps([e.obj for e in self.entries], indent=2, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            return
        lines = []
        for e in self.entries:
            lines.append(e.raw if e.raw is not None else json.dumps(e.obj, ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self.layout == "jsonl.gz":
            # mtime=0 and empty name keep the gzip header byte-identical across runs
            with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz:
                gz.write(data)
        else:
            path.write_bytes(data)

    @property
    def n_good(self) -> int:
        return sum(e.broken is None for e in self.entries)

    @property
    def n_bad(self) -> int:
        return sum(e.broken is not None for e in self.entries)


def A(key: str) -> str:
    """Relative path (from sample_data/) of a clip in audio/."""
    return f"audio/{BY_KEY[key].filename}"


def M(key: str) -> str:
    """Relative path (from sample_data/llamafactory/) of a media copy."""
    return f"media/{BY_KEY[key].filename}"


def T(key: str) -> str:
    return BY_KEY[key].text


def build_corpora(embeds: dict[str, bytes]) -> list[Corpus]:
    b64 = {k: base64.b64encode(v).decode("ascii") for k, v in embeds.items()}
    wav_uri = {k: "data:audio/wav;base64," + v for k, v in b64.items()}
    corpora: list[Corpus] = []

    # ---------------------------------------------------------------- 1 MiniCPM
    c = Corpus(
        "minicpm.jsonl",
        "jsonl",
        "MiniCPM-o (id/audio/text)",
        'MiniCPM-style ASR records `{"id", "audio", "text"}`. Audio given as a relative '
        "path, raw base64 of a WAV file (no prefix), a `data:audio/wav;base64,` URI, a "
        '`"prompt"` field, and an `"audios"` list with two clips.',
    )
    c.good({"id": "mc-0001", "audio": A("c01"), "text": T("c01")}, [A("c01")])
    c.good({"id": "mc-0002", "audio": A("c02"), "text": T("c02")}, [A("c02")])
    c.good({"id": "mc-0003", "audio": A("c03"), "text": T("c03")}, [A("c03")])
    c.good({"id": "mc-0004", "audio": A("c04"), "text": T("c04")}, [A("c04")])
    c.good({"id": "mc-0005", "audio": b64["e1"], "text": T("e1")})
    c.good({"id": "mc-0006", "audio": wav_uri["e2"], "text": T("e2")})
    c.good({"id": "mc-0007", "audio": A("c05"), "prompt": "Transcribe the audio.", "text": T("c05")}, [A("c05")])
    c.good({"id": "mc-0008", "audios": [A("c06"), A("c14")], "text": T("c06") + " " + T("c14")}, [A("c06"), A("c14")])
    c.good({"id": "mc-0009", "audio": A("c16"), "text": T("c16")}, [A("c16")])
    c.good({"id": "mc-0010", "audio": A("c18"), "text": T("c18")}, [A("c18")])
    c.bad(
        "Malformed JSON: the object is truncated mid-string (no closing quote/brace), so the line cannot be parsed.",
        raw='{"id": "mc-bad-json", "audio": "audio/clip01_22k.wav", "text": "The quick brown',
    )
    c.good({"id": "mc-0011", "audio": A("c12"), "text": T("c12")}, [A("c12")])
    c.bad("Valid JSON but not an object (a list `[1, 2]`), so it cannot be a record.", obj=[1, 2])
    c.bad(
        "Missing audio file: `audio/does_not_exist.wav` is a well-formed relative path "
        "inside the media root, but no such file exists.",
        obj={"id": "mc-bad-missing", "audio": "audio/does_not_exist.wav", "text": "This file was never generated."},
    )
    c.good({"id": "mc-0012", "audio": A("c10"), "text": T("c10")}, [A("c10")])
    c.bad(
        "Invalid base64: a 130-character string with no dots or slashes (so it is not a "
        "path) made of `@@notbase64@@` repeated; `@` is not in the base64 alphabet.",
        obj={"id": "mc-bad-b64", "audio": "@@notbase64@@" * 10, "text": "Not decodable."},
    )
    c.good({"id": "mc-0013", "audio": A("c09"), "text": T("c09")}, [A("c09")])
    corpora.append(c)

    # ---------------------------------------------------------- 2 ShareGPT SFT
    sys_asr = "You are a helpful assistant that transcribes speech accurately."
    c = Corpus(
        "sharegpt_sft.json",
        "json",
        "LLaMA-Factory sharegpt (SFT)",
        "JSON array, pretty-printed. `conversations` with `from`/`value` (human/gpt), optional "
        "`system`, `audios` list. Includes a multi-turn record, a two-audio voice-cloning "
        'record, a record whose first turn is `{"from": "system"}`, and an audio given as '
        'a `{"bytes": <base64 FLAC>, "path": "see_you.flac"}` dict.',
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "<audio>What does the speaker say?"},
                {"from": "gpt", "value": T("c07")},
            ],
            "system": sys_asr,
            "audios": [A("c07")],
        },
        [A("c07")],
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "<audio>What does the speaker say?"},
                {"from": "gpt", "value": T("c08")},
            ],
            "audios": [A("c08")],
        },
        [A("c08")],
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "<audio>What does the speaker say?"},
                {"from": "gpt", "value": T("c09")},
                {"from": "human", "value": "Is the speaker asking a question?"},
                {"from": "gpt", "value": "No. The speaker is giving a driving direction."},
                {"from": "human", "value": "Which way should I turn?"},
                {"from": "gpt", "value": "Left, at the next traffic light."},
            ],
            "system": sys_asr,
            "audios": [A("c09")],
        },
        [A("c09")],
    )
    c.good(
        {
            "conversations": [
                {
                    "from": "human",
                    "value": "<audio> is the reference voice, <audio> is the content; "
                    "transcribe the content clip and describe the reference speaker.",
                },
                {
                    "from": "gpt",
                    "value": f'Content: "{T("c15")}" Reference speaker: a male voice with a '
                    "British Received Pronunciation accent, speaking slowly.",
                },
            ],
            "audios": [A("c07"), A("c15")],
        },
        [A("c07"), A("c15")],
    )
    c.good(
        {
            "conversations": [
                {"from": "system", "value": "You are a careful transcriber. Output only the words spoken."},
                {"from": "human", "value": "<audio>Transcribe the audio."},
                {"from": "gpt", "value": T("c12")},
            ],
            "audios": [A("c12")],
        },
        [A("c12")],
    )
    c.good(
        {
            "conversations": [{"from": "human", "value": "<audio>What does the speaker say?"}, {"from": "gpt", "value": T("e3")}],
            "system": sys_asr,
            "audios": [{"bytes": b64["e3"], "path": "see_you.flac"}],
        }
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "<audio>Summarize the clip in a few words."},
                {"from": "gpt", "value": "A remark about the smell of fresh bread in the morning."},
            ],
            "audios": [A("c13")],
        },
        [A("c13")],
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "What does the speaker say?<audio>"},
                {"from": "gpt", "value": T("c14")},
            ],
            "audios": [A("c14")],
        },
        [A("c14")],
    )
    c.bad(
        "Marker count mismatch: the human turn contains two `<audio>` markers but `audios` lists only one file.",
        obj={
            "conversations": [
                {"from": "human", "value": "<audio><audio>Are these two clips the same speaker?"},
                {"from": "gpt", "value": "Yes, both clips are the same speaker."},
            ],
            "audios": [A("c01")],
        },
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "<audio>What does the speaker say?"},
                {"from": "gpt", "value": T("c17")},
            ],
            "system": sys_asr,
            "audios": [A("c17")],
        },
        [A("c17")],
    )
    c.good(
        {
            "conversations": [
                {"from": "human", "value": "<audio>What does the speaker say?"},
                {"from": "gpt", "value": T("c19")},
            ],
            "audios": [A("c19")],
        },
        [A("c19")],
    )
    corpora.append(c)

    # ---------------------------------------------------------- 3 ShareGPT DPO
    c = Corpus(
        "sharegpt_dpo.jsonl",
        "jsonl",
        "LLaMA-Factory sharegpt (DPO / ranking)",
        "One record per line: `conversations` (human turns), `chosen` and `rejected` as "
        '`{"from": "gpt", "value"}` dicts, `audios` list of relative paths.',
    )

    def dpo(key: str, wrong: str, prompt: str = "<audio>What does the speaker say?") -> dict:
        return {
            "conversations": [{"from": "human", "value": prompt}],
            "chosen": {"from": "gpt", "value": T(key)},
            "rejected": {"from": "gpt", "value": wrong},
            "audios": [A(key)],
        }

    c.good(dpo("c01", "The quick brown box jumps over the lazy frog."), [A("c01")])
    c.good(dpo("c11", "Music fills the quite room."), [A("c11")])
    c.good(dpo("c14", "Water boils at one hundred degrees Fahrenheit."), [A("c14")])
    c.bad(
        "Remote URL as audio: `https://example.com/audio/clip01.wav`; remote fetching is "
        "not allowed/possible, so the audio cannot be resolved.",
        obj={
            "conversations": [{"from": "human", "value": "<audio>What does the speaker say?"}],
            "chosen": {"from": "gpt", "value": T("c01")},
            "rejected": {"from": "gpt", "value": "I cannot hear anything."},
            "audios": ["https://example.com/audio/clip01.wav"],
        },
    )
    c.good(dpo("c03", "It is going to snow later this evening."), [A("c03")])
    c.good(
        dpo("c18", "Can you hear me clearly now?", prompt="<audio>Is the speaker asking a question? Answer yes or no.")
        | {"chosen": {"from": "gpt", "value": "Yes."}, "rejected": {"from": "gpt", "value": "No."}},
        [A("c18")],
    )
    corpora.append(c)

    # ------------------------------------------------------------ 4a Alpaca SFT
    c = Corpus(
        "alpaca.json",
        "json",
        "LLaMA-Factory alpaca (SFT)",
        "JSON array, pretty-printed. `instruction` with `<audio>` marker, `input`, `output`, "
        "optional `system` and `history` (list of [user, assistant] pairs), `audios` list.",
    )
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "",
            "output": T("c02"),
            "system": sys_asr,
            "history": [["hi", "hello"]],
            "audios": [A("c02")],
        },
        [A("c02")],
    )
    c.good({"instruction": "<audio>Transcribe this.", "input": "", "output": T("c05"), "audios": [A("c05")]}, [A("c05")])
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "Use lowercase and no punctuation.",
            "output": T("c10").lower().rstrip("."),
            "system": sys_asr,
            "audios": [A("c10")],
        },
        [A("c10")],
    )
    c.bad(
        "Empty audio: `audio/empty.wav` is a valid WAV header with 0 samples, so there is nothing to train on.",
        obj={"instruction": "<audio>Transcribe this.", "input": "", "output": "(silence)", "audios": ["audio/empty.wav"]},
    )
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "",
            "output": T("c16"),
            "history": [["Can you help me with some audio?", "Of course. Please share it."]],
            "audios": [A("c16")],
        },
        [A("c16")],
    )
    c.good(
        {
            "instruction": "<audio>Where is the listener told to turn?",
            "input": "",
            "output": "Left, at the next traffic light.",
            "audios": [A("c09")],
        },
        [A("c09")],
    )
    corpora.append(c)

    # ------------------------------------------------------------ 4b Alpaca DPO
    c = Corpus(
        "alpaca_dpo.jsonl",
        "jsonl",
        "LLaMA-Factory alpaca (DPO / ranking)",
        "One record per line: `instruction`, `input`, `chosen`/`rejected` strings (instead of `output`), `audios` list.",
    )
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "",
            "chosen": T("c06"),
            "rejected": "Press one to speak with an opera singer.",
            "audios": [A("c06")],
        },
        [A("c06")],
    )
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "",
            "chosen": T("c13"),
            "rejected": "Fresh bread smells terrible in the evening.",
            "audios": [A("c13")],
        },
        [A("c13")],
    )
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "",
            "chosen": T("c19"),
            "rejected": "Thank you for watching.",
            "system": sys_asr,
            "audios": [A("c19")],
        },
        [A("c19")],
    )
    c.good(
        {
            "instruction": "<audio>Transcribe this.",
            "input": "",
            "chosen": T("c04"),
            "rejected": "Good evening, everyone.",
            "audios": [A("c04")],
        },
        [A("c04")],
    )
    corpora.append(c)

    # ------------------------------------------------------------------ 5 swift
    c = Corpus(
        "swift.jsonl",
        "jsonl",
        "ms-swift (messages + audios)",
        "One record per line: `messages` with `role`/`content` strings (system/user/assistant), "
        "`<audio>` markers in user content, `audios` list. One DPO record carries "
        "`rejected_response`.",
    )
    sys_tr = "translate all input audio into English"
    c.good(
        {
            "messages": [
                {"role": "system", "content": sys_tr},
                {"role": "user", "content": "<audio>"},
                {"role": "assistant", "content": T("c08")},
            ],
            "audios": [A("c08")],
        },
        [A("c08")],
    )
    c.good(
        {
            "messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": T("c15")}],
            "audios": [A("c15")],
        },
        [A("c15")],
    )
    c.good(
        {
            "messages": [
                {"role": "user", "content": "<audio>What is said?"},
                {"role": "assistant", "content": T("c11")},
                {"role": "user", "content": "What does the speaker say fills the room?"},
                {"role": "assistant", "content": "Music."},
            ],
            "audios": [A("c11")],
        },
        [A("c11")],
    )
    c.good(
        {
            "messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": T("c12")}],
            "rejected_response": "The plane to London leaves at noon.",
            "audios": [A("c12")],
        },
        [A("c12")],
    )
    c.bad(
        "Path escapes the media root: `../../etc/passwd` resolves outside the JSON file's folder and must be refused.",
        obj={
            "messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": "Nothing."}],
            "audios": ["../../etc/passwd"],
        },
    )
    c.good(
        {
            "messages": [
                {"role": "system", "content": sys_tr},
                {"role": "user", "content": "<audio>"},
                {"role": "assistant", "content": T("c17")},
            ],
            "audios": [A("c17")],
        },
        [A("c17")],
    )
    c.good(
        {
            "messages": [
                {"role": "user", "content": "First clip: <audio> Second clip: <audio> Transcribe both, one per line."},
                {"role": "assistant", "content": T("c03") + "\n" + T("c05")},
            ],
            "audios": [A("c03"), A("c05")],
        },
        [A("c03"), A("c05")],
    )
    corpora.append(c)

    # --------------------------------------------------------- 6 chat content
    c = Corpus(
        "chat_content.jsonl",
        "jsonl",
        "chat-template content lists",
        "One record per line: `messages` whose `content` is a list of typed parts. Audio parts "
        'use `{"type": "audio", "path": ...}`, `{"type": "audio", "audio": <data URI>}` '
        'and `{"type": "audio", "audio_url": ...}`. No top-level `audios` list.',
    )

    def user_asst(audio_part: dict, question: str, answer: str, text_first: bool = False) -> dict:
        parts = [audio_part, {"type": "text", "text": question}]
        if text_first:
            parts.reverse()
        return {
            "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        }

    c.good(user_asst({"type": "audio", "path": A("c07")}, "What is said?", T("c07")), [A("c07")])
    c.good(user_asst({"type": "audio", "audio": wav_uri["e4"]}, "What is said?", T("e4")))
    c.good(user_asst({"type": "audio", "audio_url": A("c13")}, "What is said?", T("c13")), [A("c13")])
    c.good(
        {
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": sys_asr}]},
                {"role": "user", "content": [{"type": "audio", "path": A("c18")}, {"type": "text", "text": "What is said?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": T("c18")}]},
            ]
        },
        [A("c18")],
    )
    c.bad(
        "Undecodable audio: `audio/corrupt.wav` exists but is a small plain-text file, not a WAV; decoding fails.",
        obj=user_asst({"type": "audio", "path": "audio/corrupt.wav"}, "What is said?", "Unknown."),
    )
    c.good(
        user_asst({"type": "audio", "path": A("c14")}, "Listen and repeat what you hear.", T("c14"), text_first=True), [A("c14")]
    )
    c.good(user_asst({"type": "audio", "audio_url": A("c16")}, "What is said?", T("c16")), [A("c16")])
    c.good(user_asst({"type": "audio", "path": A("c02")}, "What is said?", T("c02")), [A("c02")])
    corpora.append(c)

    # ------------------------------------------------------ 7 LLaMA-Factory dir
    c = Corpus(
        "llamafactory/audio_chat.json",
        "json",
        "LLaMA-Factory sharegpt, custom tags (SFT)",
        "Referenced by `llamafactory/dataset_info.json` entry `audio_chat` (sharegpt formatting with "
        "role/content tags, like LLaMA-Factory's `mllm_audio_demo`). Paths are relative to "
        "`llamafactory/` and point into `llamafactory/media/`.",
    )
    c.good(
        {
            "messages": [
                {"role": "user", "content": "<audio>What is the speaker saying?"},
                {"role": "assistant", "content": T("c05")},
            ],
            "audios": [M("c05")],
        },
        [M("c05")],
    )
    c.good(
        {
            "messages": [
                {"role": "system", "content": sys_asr},
                {"role": "user", "content": "<audio>What is the speaker saying?"},
                {"role": "assistant", "content": T("c07")},
            ],
            "audios": [M("c07")],
        },
        [M("c07")],
    )
    c.good(
        {
            "messages": [
                {"role": "user", "content": "<audio>Where is the train going?"},
                {"role": "assistant", "content": "To London. It leaves at nine."},
                {"role": "user", "content": "Please transcribe it exactly."},
                {"role": "assistant", "content": T("c12")},
            ],
            "audios": [M("c12")],
        },
        [M("c12")],
    )
    c.good(
        {
            "messages": [
                {"role": "user", "content": "<audio>What is the speaker saying?"},
                {"role": "assistant", "content": T("c18")},
            ],
            "audios": [M("c18")],
        },
        [M("c18")],
    )
    corpora.append(c)

    c = Corpus(
        "llamafactory/audio_rank.json",
        "json",
        "LLaMA-Factory sharegpt, custom tags (ranking)",
        'Referenced by `llamafactory/dataset_info.json` entry `audio_rank` (`"ranking": true`): '
        '`messages`, `chosen`/`rejected` as `{"role": "assistant", "content"}` dicts, `audios`.',
    )

    def rank(key: str, wrong: str) -> dict:
        return {
            "messages": [{"role": "user", "content": "<audio>What is the speaker saying?"}],
            "chosen": {"role": "assistant", "content": T(key)},
            "rejected": {"role": "assistant", "content": wrong},
            "audios": [M(key)],
        }

    c.good(rank("c05", "Your call is not important to us."), [M("c05")])
    c.good(rank("c17", "Birds sing softly at dusk."), [M("c17")])
    c.good(rank("c12", "The train to Lisbon leaves at five."), [M("c12")])
    corpora.append(c)

    # ----------------------------------------------------- 8 gzip MiniCPM
    c = Corpus(
        "more.jsonl.gz",
        "jsonl.gz",
        "MiniCPM-o (id/audio/text), gzip-compressed",
        "Gzip-compressed JSONL in MiniCPM style with relative paths only.",
    )
    for i, key in enumerate(["c08", "c11", "c13", "c15", "c17", "c19"], start=1):
        c.good({"id": f"more-{i:04d}", "audio": A(key), "text": T(key)}, [A(key)])
        if i == 3:
            c.bad(
                'Unknown record shape: `{"foo": "bar"}` matches no supported dialect (no audio, text or conversation fields).',
                obj={"foo": "bar"},
            )
    corpora.append(c)
    return corpora


DATASET_INFO = {
    "audio_chat": {
        "file_name": "audio_chat.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "audios": "audios"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    },
    "audio_rank": {
        "file_name": "audio_rank.json",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected", "audios": "audios"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    },
}

# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------


def fmt_dur(frames: int, sr: int) -> str:
    return f"{frames / sr:.2f} s" if sr else "-"


def write_readme(out: Path, corpora: list[Corpus], audio_rows: list[dict], embed_rows: list[dict]) -> None:
    L: list[str] = []
    L += [
        "# sample_data",
        "",
        "Small, committed test corpora for `audiodata`. **Generated** by "
        "`scripts/make_sample_data.py` — do not edit by hand; change the script and re-run it:",
        "",
        "```sh",
        "python scripts/make_sample_data.py",
        "```",
        "",
        "The generator is deterministic (fixed sentences, espeak-ng voices and speeds, sox in "
        "repeatable mode, ffmpeg with `+bitexact`), so re-running it on the same tool versions "
        "reproduces identical bytes.",
        "",
        "All speech is synthetic (espeak-ng). Each clip's transcript is exactly the sentence it "
        "was synthesised from. Relative audio paths in a JSON/JSONL file are resolved against "
        "that file's own folder (the default media root); absolute paths are never used.",
        "",
        "## Audio files",
        "",
        "| file | container / codec | rate | ch | duration | voice | speed (wpm) | transcript |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in audio_rows:
        L.append(
            f"| `{r['path']}` | {r['codec']} | {r['sr']} | {r['channels']} | {r['dur']} | "
            f"{r['voice']} | {r['speed']} | {r['text']} |"
        )
    L += [
        "",
        "`llamafactory/media/` holds byte-identical copies of a few of the clips above "
        "(LLaMA-Factory resolves media against its dataset dir, and `..` would escape the media root).",
        "",
        "Clips embedded in the JSON as base64 (not present as files):",
        "",
        "| used in | form | codec | rate | duration | transcript |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in embed_rows:
        L.append(f"| {r['used']} | {r['form']} | {r['codec']} | {r['sr']} | {r['dur']} | {r['text']} |")
    L += ["", "## Corpora", "", "| file | dialect | good | broken |", "|---|---|---:|---:|"]
    for c in corpora:
        L.append(f"| `{c.relpath}` | {c.dialect} | {c.n_good} | {c.n_bad} |")
    tot_g = sum(c.n_good for c in corpora)
    tot_b = sum(c.n_bad for c in corpora)
    L.append(f"| **total** | | **{tot_g}** | **{tot_b}** |")
    L += [""]
    for c in corpora:
        L += [f"### `{c.relpath}`", "", c.description, ""]
    L += [
        "### `llamafactory/dataset_info.json`",
        "",
        "LLaMA-Factory dataset registry with two entries: `audio_chat` (sharegpt, custom "
        'role/content tags) and `audio_rank` (same, with `"ranking": true` and '
        "`chosen`/`rejected` columns). Use `sample_data/llamafactory` as the dataset dir.",
        "",
        "## Deliberately broken records",
        "",
        "Each broken record has exactly one defect; everything else about it is valid. "
        "Locations are 1-based line numbers for JSONL files (for `more.jsonl.gz`, of the "
        "decompressed text) and 0-based indices for JSON arrays.",
        "",
        "| file | location | what is wrong |",
        "|---|---|---|",
    ]
    for c in corpora:
        for i, e in enumerate(c.entries):
            if e.broken:
                L.append(f"| `{c.relpath}` | {c.location(i)} | {e.broken} |")
    L += [
        "",
        "Support files for the broken records: `audio/corrupt.wav` (plain text, not audio) "
        "and `audio/empty.wav` (valid 22050 Hz int16 mono WAV header, 0 samples). Neither is "
        "referenced by any good record.",
        "",
        "`tests/sample_expected.json` holds the same counts and locations in machine-readable form.",
        "",
    ]
    (out / "README.md").write_text("\n".join(L), encoding="utf-8")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

GENERATED = [
    "audio",
    "llamafactory",
    "minicpm.jsonl",
    "more.jsonl.gz",
    "sharegpt_sft.json",
    "sharegpt_dpo.jsonl",
    "alpaca.json",
    "alpaca_dpo.jsonl",
    "swift.jsonl",
    "chat_content.jsonl",
    "README.md",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "sample_data")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()

    for tool in ("espeak-ng", "sox", "ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found on PATH", file=sys.stderr)
            return 2

    out.mkdir(parents=True, exist_ok=True)
    for name in GENERATED:  # only remove what this script owns
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    audio_dir = out / "audio"
    audio_dir.mkdir()

    embeds: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="audiodata_sample_") as td:
        tmp = Path(td)
        for clip in CLIPS:
            blob = render(clip, audio_dir, tmp)
            if blob is not None:
                embeds[clip.key] = blob

    # deliberately broken audio files
    (audio_dir / "corrupt.wav").write_text(CORRUPT_TEXT, encoding="ascii")
    sf.write(audio_dir / "empty.wav", np.zeros((0,), dtype=np.int16), 22050, subtype="PCM_16", format="WAV")

    # LLaMA-Factory dataset dir
    lf = out / "llamafactory"
    (lf / "media").mkdir(parents=True)
    for key in LF_MEDIA:
        shutil.copyfile(audio_dir / BY_KEY[key].filename, lf / "media" / BY_KEY[key].filename)
    (lf / "dataset_info.json").write_text(json.dumps(DATASET_INFO, indent=2) + "\n", encoding="utf-8")

    corpora = build_corpora(embeds)
    for c in corpora:
        c.write(out)

    # ---- verification -----------------------------------------------------
    problems: list[str] = []
    audio_rows: list[dict] = []
    for clip in CLIPS:
        if not clip.filename:
            continue
        p = audio_dir / clip.filename
        try:
            st = probe(p)
        except Exception as exc:
            problems.append(f"{p.relative_to(out)} does not decode: {exc}")
            continue
        dur = st["frames"] / st["sr"]
        if st["sr"] != clip.sr or st["channels"] != clip.channels:
            problems.append(f"{clip.filename}: got {st['sr']} Hz/{st['channels']} ch, want {clip.sr}/{clip.channels}")
        if not 1.0 <= dur <= 6.0:
            problems.append(f"{clip.filename}: duration {dur:.2f}s outside 1-6 s")
        codec = KIND_DESC[clip.kind]
        audio_rows.append(
            {
                "path": f"audio/{clip.filename}",
                "codec": codec,
                "sr": st["sr"],
                "channels": st["channels"],
                "dur": f"{dur:.2f} s",
                "voice": clip.voice,
                "speed": clip.speed,
                "text": clip.text,
                "decoder": st["decoder"],
                "bytes": p.stat().st_size,
            }
        )
    for key in LF_MEDIA:  # copies must decode too
        try:
            probe(lf / "media" / BY_KEY[key].filename)
        except Exception as exc:
            problems.append(f"llamafactory/media/{BY_KEY[key].filename} does not decode: {exc}")

    embed_use = {
        "e1": ("`minicpm.jsonl`", "raw base64 (no prefix)", "WAV int16"),
        "e2": ("`minicpm.jsonl`", "`data:audio/wav;base64,` URI", "WAV int16"),
        "e3": ("`sharegpt_sft.json`", '`{"bytes": ..., "path": "see_you.flac"}`', "FLAC 16-bit"),
        "e4": ("`chat_content.jsonl`", "`data:audio/wav;base64,` URI in `audio` part", "WAV int16"),
    }
    embed_rows = []
    for key, blob in embeds.items():
        data, sr = sf.read(io.BytesIO(blob), dtype="float32")
        used, form, codec = embed_use[key]
        embed_rows.append({"used": used, "form": form, "codec": codec, "sr": sr, "dur": fmt_dur(len(data), sr), "text": T(key)})
        if not 1.0 <= len(data) / sr <= 6.0:
            problems.append(f"embedded {key}: duration {len(data) / sr:.2f}s outside 1-6 s")

    # broken support files really are broken
    try:
        sf.read(audio_dir / "corrupt.wav")
        problems.append("corrupt.wav unexpectedly decodes")
    except Exception:
        pass
    if sf.info(audio_dir / "empty.wav").frames != 0:
        problems.append("empty.wav is not empty")

    # every good record's media refs exist and stay inside the media root; every
    # written file parses back with the expected number of entries
    for c in corpora:
        base = (out / c.relpath).parent
        for i, e in enumerate(c.entries):
            for ref in e.refs:
                rp = (base / ref).resolve()
                if not rp.is_file() or base.resolve() not in rp.parents:
                    problems.append(f"{c.relpath} {c.location(i)}: bad ref {ref}")
        path = out / c.relpath
        if c.layout == "json":
            n = len(json.loads(path.read_text(encoding="utf-8")))
        else:
            opener = gzip.open if c.layout == "jsonl.gz" else open
            with opener(path, "rt", encoding="utf-8") as fh:
                lines = fh.read().splitlines()
            n = len(lines)
            for i, line in enumerate(lines):
                try:
                    json.loads(line)
                    ok = True
                except json.JSONDecodeError:
                    ok = False
                if not ok and not (c.entries[i].raw is not None and c.entries[i].broken):
                    problems.append(f"{c.relpath} line {i + 1} does not parse")
        if n != len(c.entries):
            problems.append(f"{c.relpath}: {n} entries on disk, expected {len(c.entries)}")

    # every container used at least once by a good record
    used_ext = {Path(ref).suffix for c in corpora for e in c.entries for ref in e.refs}
    for ext in (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"):
        if ext not in used_ext:
            problems.append(f"no good record references a {ext} file")
    unused = {f"audio/{c.filename}" for c in CLIPS if c.filename} - {ref for c in corpora for e in c.entries for ref in e.refs}
    if unused:
        problems.append(f"clips never referenced by a good record: {sorted(unused)}")

    expected = {
        "files": {
            c.relpath: {"dialect": c.dialect, "layout": c.layout, "good": c.n_good, "broken": c.n_bad, "entries": len(c.entries)}
            for c in corpora
        },
        "broken": [
            {
                "file": c.relpath,
                "line" if c.layout.startswith("jsonl") else "index": (i + 1) if c.layout.startswith("jsonl") else i,
                "reason": e.broken,
            }
            for c in corpora
            for i, e in enumerate(c.entries)
            if e.broken
        ],
        "total_good": sum(c.n_good for c in corpora),
        "total_broken": sum(c.n_bad for c in corpora),
    }
    expected_path = Path(__file__).resolve().parent.parent / "tests" / "sample_expected.json"
    expected_path.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_readme(out, corpora, audio_rows, embed_rows)

    # ---- summary ---------------------------------------------------------
    print(f"sample data written to {out}")
    print("\naudio files:")
    for r in audio_rows:
        print(
            f"  {r['path']:<34} {r['codec']:<13} {r['sr']:>6} Hz {r['channels']} ch "
            f"{r['dur']:>7}  {r['bytes'] / 1024:7.1f} KiB  [{r['decoder']}]"
        )
    for key, blob in embeds.items():
        print(f"  (embedded {key}) {len(blob) / 1024:7.1f} KiB raw, {len(base64.b64encode(blob)) / 1024:7.1f} KiB base64")
    print("\ncorpora:                        good broken")
    for c in corpora:
        print(f"  {c.relpath:<30} {c.n_good:>4} {c.n_bad:>6}")
    print(f"  {'total':<30} {expected['total_good']:>4} {expected['total_broken']:>6}")
    print("\nbroken records:")
    for b in expected["broken"]:
        loc = f"line {b['line']}" if "line" in b else f"index {b['index']}"
        print(f"  {b['file']:<22} {loc:<9} {b['reason'].split(':')[0]}")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(out)).encode() + b"\0" + p.read_bytes())
    print(f"\ntotal size: {total / 1024 / 1024:.2f} MiB; content sha256: {digest.hexdigest()[:16]}")
    if problems:
        print("\nPROBLEMS:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
