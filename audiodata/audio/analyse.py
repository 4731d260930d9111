"""Measure a decoded clip once, for the audio rules (silence, clipping, duration checks).

Runs on the samples the audio stage already holds, so lint and convert never decode
twice; the result is a few numbers per clip, never the audio.
"""

from __future__ import annotations

import math

import numpy as np

from audiodata.audio.decode import Decoded
from audiodata.records import AudioRef, ClipStats

#: A source sample at or above this magnitude counts as clipped (full scale, allowing for dither).
CLIP_LEVEL = 0.999
FLOOR_DBFS = -120.0


def _dbfs(value: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(value)) if value > 0 else FLOOR_DBFS


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 PCM in dBFS, rounded as :class:`ClipStats` holds it (the silence rule and
    dedup's silence exclusion compare this number, for fresh and for stored clips alike)."""
    level = pcm.astype(np.float32) / 32768.0 if pcm.size else np.zeros(1, np.float32)
    return round(_dbfs(float(np.sqrt(np.mean(np.square(level, dtype=np.float64))))), 2)


def measure(ref: AudioRef, decoded: Decoded, pcm: np.ndarray) -> ClipStats:
    """``pcm`` is the stored mono int16 signal; ``decoded`` the source samples."""
    src = decoded.samples
    seconds = src.shape[0] / decoded.sampling_rate
    level = pcm.astype(np.float32) / 32768.0 if pcm.size else np.zeros(1, np.float32)
    peak = float(np.max(np.abs(level)))
    clipped = int(np.count_nonzero(src >= CLIP_LEVEL) + np.count_nonzero(src <= -CLIP_LEVEL)) if src.size else 0
    declared: list[tuple[str, float]] = []
    if ref.declared_duration is not None:
        declared.append(("record", ref.declared_duration))
    if decoded.header_frames:
        declared.append(("header", decoded.header_frames / decoded.sampling_rate))
    return ClipStats(
        field=ref.field,
        seconds=seconds,
        samples_16k=math.ceil(seconds * 16000),
        source_sampling_rate=decoded.sampling_rate,
        source_channels=decoded.channels,
        peak_dbfs=round(_dbfs(peak), 2),
        rms_dbfs=rms_dbfs(pcm),
        clipped_fraction=clipped / src.size if src.size else 0.0,
        declared=tuple(declared),
    )
