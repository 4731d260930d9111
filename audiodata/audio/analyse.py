"""Measure a clip once, for the audio rules (silence, clipping, duration checks, non-finite samples).

Source samples are measured block by block as they pass (:class:`SourceLevels`: frames,
full-scale samples, NaN/Inf), levels on the stored PCM the audio stage holds anyway, so
lint and convert never decode twice and never keep the source; the result is a few
numbers per clip, never the audio.
"""

from __future__ import annotations

import math

import numpy as np

from audiodata.audio.decode import Header
from audiodata.audio.load import AudioError
from audiodata.records import AudioRef, ClipStats

#: A source sample at or above this magnitude counts as clipped (full scale, allowing for dither).
CLIP_LEVEL = 0.999
FLOOR_DBFS = -120.0


class SourceLevels:
    """Counts over the source samples, added block by block (integer counts: the same whatever the blocks)."""

    def __init__(self, channels: int, sampling_rate: int = 0) -> None:
        self.channels, self.sampling_rate = channels, sampling_rate
        self.frames = 0
        self.clipped = 0  # samples at full scale (any channel)
        self.nonfinite = 0  # NaN or +-Inf samples (any channel)
        self.first: tuple[int, int] | None = None  # (frame, channel) of the first non-finite sample
        self.overflow_at: int | None = None  # frame from which finite samples overflowed when mixed or resampled

    @property
    def samples(self) -> int:
        return self.frames * self.channels

    @property
    def failed(self) -> bool:
        return bool(self.nonfinite) or self.overflow_at is not None

    def add(self, block: np.ndarray) -> bool:
        """Count the block; True when every sample lies strictly inside full scale (so none is NaN or Inf)."""
        self.frames += block.shape[0]
        # most blocks clip nowhere: two reductions (no masks) prove it; NaN fails both and is counted as before
        if block.size and not (block.max() < CLIP_LEVEL and block.min() > -CLIP_LEVEL):
            self.clipped += int(np.count_nonzero(block >= CLIP_LEVEL) + np.count_nonzero(block <= -CLIP_LEVEL))
            return False
        return True

    def count_nonfinite(self, block: np.ndarray, start: int, mono: np.ndarray | None = None) -> None:
        """Count the non-finite samples of ``block`` (its first frame is ``start``); with ``mono`` (its
        non-finite downmix) and none in the block, the mix itself overflowed."""
        bad = ~np.isfinite(block)
        n = int(np.count_nonzero(bad))
        if n and self.first is None:
            frame, channel = np.unravel_index(int(np.argmax(bad)), block.shape)
            self.first = (start + int(frame), int(channel))
        self.nonfinite += n
        if not n and mono is not None:
            self.overflow(start + int(np.argmax(~np.isfinite(mono))))

    def overflow(self, frame: int) -> None:
        if self.overflow_at is None:
            self.overflow_at = frame

    def check_finite(self, label: str, sampling_rate: int | None = None) -> None:
        """A015 when the source held NaN/Inf samples, or samples that overflow once mixed or resampled:
        their int16 cast is undefined (NaN became 0, Inf full scale), so such a clip is never stored."""
        rate = sampling_rate or self.sampling_rate or 1
        if self.nonfinite and self.first is not None:
            frame, channel = self.first
            where = f"channel {channel + 1} of {self.channels}, " if self.channels > 1 else ""
            raise AudioError(
                "A015",
                f"{label}: {self.nonfinite} of {self.samples} samples are NaN or infinite; "
                f"the first at {frame / rate:.3f} s ({where}frame {frame})",
            )
        if self.overflow_at is not None:
            raise AudioError(
                "A015",
                f"{label}: samples too large for float32 overflow to infinity when mixed or resampled, "
                f"from {self.overflow_at / rate:.3f} s (frame {self.overflow_at})",
            )


def _dbfs(value: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(value)) if value > 0 else FLOOR_DBFS


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 PCM in dBFS, rounded as :class:`ClipStats` holds it (the silence rule and
    dedup's silence exclusion compare this number, for fresh and for stored clips alike).

    The sum of squares is an exact integer, taken a block at a time: no float64 copy of the clip
    (4 bytes per stored byte), and the same number as the float64 mean up to the rounding. An int16
    sample's square fits int32 (at most 2**30), so a block is squared into int32 and summed in int64
    (exact, < 2**50 a block): 1.4x faster than an int64 copy and ``einsum``."""
    if not pcm.size:
        return FLOOR_DBFS
    pcm = np.asarray(pcm, dtype="<i2")
    total = 0
    for i in range(0, pcm.size, _BLOCK):
        squares = np.square(pcm[i : i + _BLOCK], dtype=np.int32)
        total += int(np.add.reduce(squares, dtype=np.int64))
    return round(_dbfs(math.sqrt(total / 2**30 / pcm.size)), 2)


def peak_level(pcm: np.ndarray) -> float:
    """The largest magnitude of int16 PCM as a fraction of full scale (exact)."""
    return max(-int(pcm.min()), int(pcm.max())) / 32768.0 if pcm.size else 0.0


_BLOCK = 1 << 20


def measure(ref: AudioRef, header: Header, levels: SourceLevels, pcm: np.ndarray) -> ClipStats:
    """``pcm`` is the stored mono int16 signal; ``header`` and ``levels`` describe the source."""
    seconds = levels.frames / header.sampling_rate
    peak = peak_level(pcm)
    declared: list[tuple[str, float]] = []
    if ref.declared_duration is not None:
        declared.append(("record", ref.declared_duration))
    if header.header_frames:
        declared.append(("header", header.header_frames / header.sampling_rate))
    return ClipStats(
        field=ref.field,
        seconds=seconds,
        samples_16k=math.ceil(seconds * 16000),
        source_sampling_rate=header.sampling_rate,
        source_channels=header.channels,
        peak_dbfs=round(_dbfs(peak), 2),
        rms_dbfs=rms_dbfs(pcm),
        clipped_fraction=levels.clipped / levels.samples if levels.samples else 0.0,
        declared=tuple(declared),
    )
