"""Test shards of ``rl`` records in the contract's columns, written with ``datasets`` (Audio feature).

A Hub-layout folder ``data/rl/{split}-00000-of-00001.parquet`` (the layout TRL users publish, which ``train grpo``
reads without a manifest) with ``id``, ``prompt``, ``answer``, ``choices``, ``task``, ``meta``, ``system``, ``tools``,
``audios`` (the real espeak-ng clips of sample_data), ``audio_info``, ``audio_seconds`` and ``source``: quick to
write, and any row the tests need (a corrupt clip, a marker without a clip). The tests that go through
``audiodata convert`` read the peers' forms in tests/fixtures/rl instead (tests/training/test_grpo.py's MMAU tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import soundfile as sf

SAMPLE_AUDIO = Path(__file__).resolve().parents[2] / "sample_data" / "audio"
CLIPS = ("clip01_22k.wav", "clip03_22k.wav", "clip07_16k.flac", "clip08_16k.flac", "clip09_16k.flac", "clip05_8k.wav")
TRANSCRIPTS = {
    "clip01_22k.wav": "The quick brown fox jumps over the lazy dog.",
    "clip03_22k.wav": "It is going to rain later this afternoon.",
    "clip07_16k.flac": "She sells sea shells by the sea shore.",
    "clip08_16k.flac": "The meeting has been moved to Thursday.",
    "clip09_16k.flac": "Turn left at the next traffic light.",
    "clip05_8k.wav": "Your call is important to us.",
}
CHOICES = ["a man", "a woman", "a child", "nobody"]


def mcq_row(i: int, clip: str | None, answer: str = "a woman", marker: bool | None = None) -> dict[str, Any]:
    """A four-way multiple-choice question on a clip (``None``: a text-only question); the answer is the choice TEXT
    (B by default). ``marker`` overrides whether the prompt holds ``<audio>`` (a mismatch is a bad record)."""
    letters = " ".join(f"({chr(65 + k)}) {c}" for k, c in enumerate(CHOICES))
    audio = "<audio>" if (clip is not None if marker is None else marker) else ""
    return {
        "id": f"mcq-{i:03d}",
        "prompt": [{"role": "user", "content": f"{audio}Who is speaking? {letters}. Answer with the letter."}],
        "answer": answer,
        "choices": list(CHOICES),
        "task": "mcq",
        "meta": json.dumps({"clip": clip}),
        "clip": clip,
    }


def asr_row(i: int, clip: str) -> dict[str, Any]:
    return {
        "id": f"asr-{i:03d}",
        "prompt": [{"role": "user", "content": "<audio>Transcribe the audio."}],
        "answer": TRANSCRIPTS[clip],
        "choices": None,
        "task": "asr",
        "meta": None,
        "clip": clip,
    }


def write_rl_dataset(root: Path, rows: list[dict[str, Any]], split: str = "train") -> Path:
    """``rows`` (each naming its sample_data ``clip``, or None for a text-only prompt) as one Hub-layout shard."""
    import datasets

    records = []
    for k, r in enumerate(rows):
        clip = r.pop("clip", None)
        audios, info, seconds = [], [], 0.0
        if clip is not None:
            path = SAMPLE_AUDIO / clip
            try:
                meta = sf.info(str(path))
                duration, rate, channels = float(meta.duration), int(meta.samplerate), int(meta.channels)
            except RuntimeError:  # corrupt.wav: a clip that does not decode, stored as convert would have found it
                duration, rate, channels = 1.0, 16000, 1
            audios = [{"bytes": path.read_bytes(), "path": clip}]
            info = [{"duration": duration, "sampling_rate": rate, "channels": channels}]
            seconds = duration
        records.append(
            {
                "system": None,
                "tools": None,
                **r,
                "audios": audios,
                "audio_info": info,
                "audio_seconds": seconds,
                "source": {"file": "fixture.jsonl", "index": k},
            }
        )
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
            "answer": datasets.Value("string"),
            "choices": datasets.List(datasets.Value("string")),
            "task": datasets.Value("string"),
            "meta": datasets.Value("string"),
            "system": datasets.Value("string"),
            "tools": datasets.Value("string"),
            "audios": datasets.List(datasets.Audio(decode=False)),
            "audio_info": datasets.List(
                {
                    "duration": datasets.Value("float64"),
                    "sampling_rate": datasets.Value("int32"),
                    "channels": datasets.Value("int32"),
                }
            ),
            "audio_seconds": datasets.Value("float64"),
            "source": {"file": datasets.Value("string"), "index": datasets.Value("int64")},
        }
    )
    out = root / "data" / "rl" / f"{split}-00000-of-00001.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(records, features=features).to_parquet(str(out))
    return root
