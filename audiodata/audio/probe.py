"""Pauses in stretches of a long recording, for cutting it into windows while the inputs are read.

The audio is reached the way the audio stage reaches it (the same path safety, the same segment
decoding by seeking, one file held open between reads), a second or so around each boundary, downmixed
and run through the offline detector (``audiodata.audio.vad``). Audio that cannot be read gives no
pauses: windows are then cut only where the timestamps leave a gap, and the audio stage reports the
file's problem on each record.
"""

from __future__ import annotations

import numpy as np

from audiodata.audio import vad
from audiodata.audio.decode import _Collect
from audiodata.audio.load import AudioError, open_ref
from audiodata.audio.segment import decode_segment_into
from audiodata.records import MediaRef, Segment

#: The longest stretch read for one search (seconds): a boundary search reads well under it.
MAX_STRETCH = 30.0


class PauseProbe:
    """``probe(path, channels)(lo, hi)``: the pauses between ``lo`` and ``hi`` seconds of one file."""

    def __init__(self, media_root: str, input_dir: str | None, max_audio_bytes: int, allow_absolute: bool) -> None:
        self.media_root, self.input_dir = media_root, input_dir
        self.max_audio_bytes, self.allow_absolute = max_audio_bytes, allow_absolute
        self.broken: set[str] = set()  # references that failed once: not tried again

    def pauses(self, path: str, channels: tuple[int, ...] | None, lo: float, hi: float) -> list[tuple[float, float]]:
        if path in self.broken or hi <= lo:
            return []
        ref = MediaRef("path", path, "", segment=Segment(max(0.0, lo), min(hi - lo, MAX_STRETCH), channels))
        try:
            src = open_ref(ref, self.media_root, self.max_audio_bytes, self.allow_absolute, self.input_dir)
            decoded = decode_segment_into(src, ref.segment, MAX_STRETCH + 1, _Collect).decoded()  # type: ignore[arg-type]
        except (AudioError, MemoryError):
            self.broken.add(path)
            return []
        mono = decoded.samples.mean(axis=1) if decoded.samples.shape[1] > 1 else decoded.samples[:, 0]
        if not np.isfinite(mono).all():
            return []
        base = max(0.0, lo)
        return [(base + a, base + b) for a, b in vad.pauses(mono, decoded.sampling_rate)]

    def finder(self, path: str, channels: tuple[int, ...] | None = None):  # type: ignore[no-untyped-def]
        """A :data:`audiodata.readers.longform.PauseFinder` for one file."""
        return lambda lo, hi: self.pauses(path, channels, lo, hi)
