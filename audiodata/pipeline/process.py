"""The per-record work, as a pure function of a batch of records.

``process_batch`` resolves, decodes, resamples, encodes and hashes every audio of
every record and returns rows ready for the writer, or located findings. It holds
no state and touches no output, so it runs the same in this process, in a process
pool, or as a ``map_batches`` stage on a distributed engine such as Ray Data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiodata.audio.decode import Decoded, decode
from audiodata.audio.load import AudioError, open_ref
from audiodata.audio.transform import CODECS, encode, pcm_hash, to_pcm16
from audiodata.records import Clip, Record
from audiodata.rules.engine import keep_enabled
from audiodata.rules.findings import Finding

MIN_SECONDS = 0.1
MIN_SOURCE_RATE = 16000


@dataclass(frozen=True)
class AudioSettings:
    sample_rate: int = 16000
    codec: str = "flac"
    max_audio_bytes: int = 256 * 2**20
    max_duration: float = 1200.0
    allow_absolute_paths: bool = True
    enabled: frozenset[str] | None = None  # rule codes to report; None: all


@dataclass
class Processed:
    """The outcome for one record: a row, or the findings that reject it."""

    seq: int
    row: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def process_batch(batch: list[tuple[int, Record]], settings: AudioSettings) -> list[Processed]:
    return [process_record(seq, rec, settings) for seq, rec in batch]


def process_record(seq: int, rec: Record, settings: AudioSettings) -> Processed:
    clips: list[Clip] = []
    findings: list[Finding] = []
    for ref in rec.audios:
        try:
            clip, warnings = make_clip(ref, rec.media_root, settings)
        except AudioError as exc:
            findings.append(Finding(exc.code, exc.message, ref.field, rec.source))
            continue
        clips.append(clip)
        findings += [Finding(code, msg, ref.field, rec.source) for code, msg in warnings]
    findings = keep_enabled(findings, settings.enabled)
    if any(f.is_error for f in findings):
        return Processed(seq, None, findings)
    stats: dict[str, Any] = {
        "clips": len(clips),
        "source_sampling_rates": {str(c.source_sampling_rate): 1 for c in clips},
        "source_formats": {c.source_format: 1 for c in clips},
        "warnings": {f.code: 1 for f in findings},
    }
    return Processed(seq, build_row(rec, clips, settings.codec), findings, [c.pcm_hash for c in clips], stats)


def make_clip(ref: Any, media_root: str, settings: AudioSettings) -> tuple[Clip, list[tuple[str, str]]]:
    """Read one reference into a stored clip. Raises AudioError for errors."""
    if ref.kind == "array":
        samples = np.asarray(ref.value, dtype=np.float32).reshape(-1, 1)
        decoded = Decoded(samples, int(ref.sampling_rate), 1, "ARRAY")
        if samples.shape[0] / decoded.sampling_rate > settings.max_duration:
            raise AudioError("A011", f"array audio exceeds --max-duration {settings.max_duration:g} s")
    else:
        decoded = decode(
            open_ref(ref, media_root, settings.max_audio_bytes, settings.allow_absolute_paths), settings.max_duration
        )
    frames = decoded.samples.shape[0]
    if frames == 0:
        raise AudioError("A006", "the audio has no samples")
    seconds = frames / decoded.sampling_rate
    if seconds < MIN_SECONDS:
        raise AudioError("A007", f"audio is {seconds * 1000:.0f} ms long, under {MIN_SECONDS * 1000:.0f} ms")
    warnings = []
    if decoded.sampling_rate < MIN_SOURCE_RATE:
        warnings.append(("A009", f"source sample rate {decoded.sampling_rate} Hz is under {MIN_SOURCE_RATE} Hz"))
    pcm = to_pcm16(decoded, settings.sample_rate)
    clip = Clip(
        data=encode(pcm, settings.sample_rate, settings.codec),
        codec=settings.codec,
        sampling_rate=settings.sample_rate,
        channels=1,
        num_samples=int(pcm.shape[0]),
        pcm_hash=pcm_hash(pcm),
        origin=ref.origin(),
        source_format=decoded.format,
        source_sampling_rate=decoded.sampling_rate,
        source_channels=decoded.channels,
        source_duration=seconds,
    )
    return clip, warnings


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def build_row(rec: Record, clips: list[Clip], codec: str) -> dict[str, Any]:
    ext = CODECS[codec][2]
    stem = _UNSAFE.sub("_", rec.id).strip("._") or "record"
    row: dict[str, Any] = {
        "id": rec.id,
        "messages": [m.to_dict() for m in rec.messages],
        "system": rec.system,
        "tools": rec.tools,
        "audios": [{"bytes": c.data, "path": f"{stem}_{k}.{ext}"} for k, c in enumerate(clips)],
        "audio_info": [
            {
                "sampling_rate": c.sampling_rate,
                "channels": c.channels,
                "num_samples": c.num_samples,
                "duration": round(c.duration, 6),
                "pcm_hash": c.pcm_hash,
                "origin": c.origin,
                "source_format": c.source_format,
                "source_sampling_rate": c.source_sampling_rate,
                "source_channels": c.source_channels,
            }
            for c in clips
        ],
        "audio_seconds": round(sum(c.duration for c in clips), 6),
        "source": {"file": rec.source.file, "index": rec.source.index, "line": rec.source.line},
    }
    if rec.kind == "dpo":
        row["chosen"] = [m.to_dict() for m in rec.chosen or []]
        row["rejected"] = [m.to_dict() for m in rec.rejected or []]
    return row
