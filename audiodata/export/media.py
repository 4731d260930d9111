"""Audio, images and videos of an exported record: the stored bytes as files next to the data."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import soundfile as sf

from audiodata.export.base import _Audio, _Skip
from audiodata.records import MediaRef, Record
from audiodata.rules.findings import Finding


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    return None


def _audio_bytes(data: bytes, audio_format: str, field: str = "audios") -> bytes:
    """The stored bytes as they are when already in ``audio_format``; else a lossless PCM_16 copy."""
    if _format_of(data) == audio_format:
        return data
    try:
        pcm, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError for damaged bytes
        msg = "a stored audio does not decode (damaged shard? run `audiodata verify`)"
        raise _Skip(Finding("X003", msg, field)) from exc
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format=audio_format.upper(), subtype="PCM_16")
    return buf.getvalue()


def _audios(rec: Record, audio_dir: str, stem: str, audio_format: str) -> list[_Audio]:
    """The record's audios as files (their bytes are there: rule X001 ran first)."""
    return [
        _Audio(f"{audio_dir}/{stem}_{k}.{audio_format}", _audio_bytes(ref.value, audio_format, ref.field))
        for k, ref in enumerate(rec.audios)
    ]


def _visual_files(items: list[MediaRef], prefix: str) -> list[_Audio]:
    """The stored images or videos as files next to the record's audio, under their original extension."""
    out = []
    for k, v in enumerate(items):
        suffix = Path(str(v.name or "")).suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
            suffix = ""
        out.append(_Audio(f"{prefix}{k}{suffix}", v.value))
    return out


def _with_visual(obj: dict[str, Any], visual: dict[str, list[_Audio]]) -> dict[str, Any]:
    """``images``/``videos`` (paths relative to DEST) right after ``audios``, as LLaMA-Factory and ms-swift read them."""
    if not visual:
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[key] = value
        if key == "audios":
            out.update({name: [f.rel for f in files] for name, files in visual.items()})
    return out
