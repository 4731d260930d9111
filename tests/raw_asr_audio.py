"""The long recording the raw ASR fixtures (tests/fixtures/raw_asr) describe, made from sample_data clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tests.conftest import REPO, SAMPLE

FIXTURES = REPO / "tests" / "fixtures" / "raw_asr"
RATE = 44100
SECONDS = 24.0
#: (sample_data clip, start s, duration s, transcript): the table in tests/fixtures/raw_asr/README.md.
LAYOUT = [
    ("clip01_22k.wav", 0.50, 3.25, "The quick brown fox jumps over the lazy dog."),
    ("clip02_22k.wav", 4.50, 4.00, "Please call Stella and ask her to bring these things with her."),
    ("clip03_22k.wav", 8.50, 2.25, "It is going to rain later this afternoon."),
    ("clip07_16k.flac", 11.50, 2.80, "She sells sea shells by the sea shore."),
    ("clip08_16k.flac", 14.30, 2.40, "The meeting has been moved to Thursday."),
    ("clip09_16k.flac", 17.50, 2.60, "Turn left at the next traffic light."),
    ("clip10_48k.flac", 20.50, 2.80, "A rainbow appears after the storm passes."),
]


def long_signal(rate: int = RATE) -> np.ndarray:
    """Mono float32: each clip (resampled to ``rate``) at its start, digital silence elsewhere."""
    out = np.zeros(round(SECONDS * rate), np.float32)
    for name, start, duration, _ in LAYOUT:
        x, r = sf.read(SAMPLE / "audio" / name, dtype="float32", always_2d=True)
        x = soxr.resample(x.mean(axis=1), r, rate).astype(np.float32)
        assert x.shape[0] <= round(duration * rate), name  # every clip fits its segment
        at = round(start * rate)
        out[at : at + x.shape[0]] = x
    return out


def make_corpus(root: Path) -> Path:
    """The fixtures copied into ``root`` with their audio: long.wav (44.1 kHz int16) and long2ch.flac (a 440 Hz
    tone on channel 0, the speech on channel 1)."""
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    (root / "README.md").unlink()
    speech = long_signal()
    sf.write(root / "long.wav", speech, RATE, subtype="PCM_16")
    t = np.arange(speech.shape[0]) / RATE
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(root / "long2ch.flac", np.stack([tone, speech], axis=1), RATE, subtype="PCM_16")
    return root
