"""Decode one segment of a long recording (``MediaRef.segment``) without decoding the whole file each time.

How the samples are reached depends on what the container allows:

- **Exact seeks** (WAV and its kin, FLAC, AIFF, CAF): libsndfile seeks to the first frame and reads only
  the segment's frames. These are the same samples, bit for bit, as reading the whole file and slicing it
  by sample index (``tests/audio/test_segments.py``).
- **Lossy codecs** (MP3, Ogg Vorbis/Opus, and FFmpeg's containers: m4a, aac, webm, ...), whose decoders
  depend on the frames before a seek point and whose seeks are not sample-exact (libsndfile's Ogg seeks
  land hundreds of samples off): the whole source is decoded once and kept (up to :data:`WHOLE_BYTES` of
  float32 samples), and every segment is a slice of it. A longer source is decoded forward, never sought:
  the decoder stays open where the last segment ended and the next one (segments come in order) is
  reached by decoding on; a segment before that point starts the decoder over. Either way the samples are
  the whole-file decode's.

One source stays open per process (:class:`_Held`): the segments of one recording come in order, in the
same batch or the next one, so a manifest of N segments of one file opens (and, for lossy codecs,
decodes) it once per worker, not N times (``benchmarks/segments_bench.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audiodata.audio.decode import (
    _SNDFILE_ERRORS,
    EXACT_HEADER,
    FFMPEG_ONLY,
    Header,
    S,
    _Collect,
    _pyav,
    block_frames,
    check_header,
    decode_into,
)
from audiodata.audio.load import AudioError, AudioSource, MediaFile
from audiodata.errtext import library_error
from audiodata.records import Segment

#: A lossy source up to this many bytes of float32 samples (frames x channels x 4) is decoded whole once
#: and sliced; the same bound as a source read whole by the audio stage (decode.ONE_SHOT_BYTES).
WHOLE_BYTES = 64 * 2**20


class _Forward:
    """A lossy source decoded forward, block by block, from where the last segment ended."""

    def __init__(self, open_blocks: Callable[[], Iterator[np.ndarray]], label: str) -> None:
        self.open_blocks, self.label = open_blocks, label
        self.blocks: Iterator[np.ndarray] | None = None
        self.pos = 0  # the source frame the next sample from ``rest`` or ``blocks`` is
        self.rest: np.ndarray | None = None

    def take(self, first: int, count: int, feed: Callable[[np.ndarray], None]) -> None:
        if self.blocks is None or first < self.pos:
            self.close()
            self.blocks, self.pos, self.rest = self.open_blocks(), 0, None
        end = first + count
        while self.pos < end:
            block = self.rest if self.rest is not None else self._next()
            self.rest = None
            if block is None:
                return
            n = block.shape[0]
            lo, hi = max(first - self.pos, 0), min(end - self.pos, n)
            if lo >= n:  # wholly before the segment
                self.pos += n
                continue
            feed(block[lo:hi])
            if hi < n:
                self.rest = block[hi:]
            self.pos += hi

    def _next(self) -> np.ndarray | None:
        assert self.blocks is not None
        try:
            return next(self.blocks)
        except StopIteration:
            return None
        except _SNDFILE_ERRORS as exc:
            raise AudioError("A005", f"{self.label} cannot be decoded: {library_error(exc, self.label)}") from None

    def close(self) -> None:
        if self.blocks is not None:
            self.blocks.close()  # type: ignore[attr-defined]
            self.blocks = None


@dataclass
class _Held:
    """The one source a process keeps open between segments."""

    key: tuple[Any, ...]
    header: Header
    pid: int = 0  # the process that opened it: a forked worker inherits the parent's handle, not its own
    fh: MediaFile | None = None
    snd: sf.SoundFile | None = None  # an open libsndfile handle that seeks exactly
    whole: np.ndarray | None = None  # the whole source decoded (a lossy one within WHOLE_BYTES)
    forward: _Forward | None = None  # a longer lossy source, decoded forward

    def close(self) -> None:
        if self.snd is not None:
            self.snd.close()
        if self.fh is not None:
            self.fh.close()
        if self.forward is not None:
            self.forward.close()
        self.snd = self.fh = self.whole = self.forward = None


_HELD: _Held | None = None


def release() -> None:
    """Close the source held open (tests, and callers that want the descriptor back now)."""
    global _HELD
    if _HELD is not None:
        _HELD.close()
        _HELD = None


def _key(src: AudioSource) -> tuple[Any, ...] | None:
    if src.path is None:
        return None  # inline bytes: decoded whole each time (they are small: --max-audio-bytes)
    try:
        st = os.stat(src.path)
    except OSError:
        return None
    return (str(src.path), st.st_ino, st.st_size, st.st_mtime_ns)


def decode_segment_into(src: AudioSource, seg: Segment, max_duration: float, make_sink: Callable[[Header], S]) -> S:
    """Feed the samples of ``seg`` in ``src`` to ``make_sink(header)`` block by block (the header describes
    the segment: its rate, the channels taken, its frame count). Raises :class:`AudioError`: A006 for a
    segment that starts past the end of the audio, A011 for one longer than ``max_duration``, A005 for a
    channel the audio does not have."""
    global _HELD
    if _HELD is not None and _HELD.pid != os.getpid():  # forked with the parent's: its file offset is shared
        _HELD = None
    key = _key(src)
    held = _HELD if key is not None and _HELD is not None and _HELD.key == key else None
    if held is None:
        release()
        held = _open(src, key or ())
        held.pid = os.getpid()
        if key is not None:
            _HELD = held
    try:
        return _feed(held, src, seg, max_duration, make_sink)
    except BaseException:
        if held is _HELD:  # a read that failed part way leaves the handle in no known state
            release()
        else:
            held.close()
        raise


def _open(src: AudioSource, key: tuple[Any, ...]) -> _Held:
    if Path(src.name).suffix.lower() not in FFMPEG_ONLY:
        fh = MediaFile(src)
        try:
            snd = sf.SoundFile(fh, mode="r")
        except _SNDFILE_ERRORS:
            fh.close()
            fh.check()
        else:
            try:
                check_header(snd.samplerate, snd.channels, src.label)
            except AudioError:
                snd.close()
                fh.close()
                raise
            header = Header(snd.samplerate, snd.channels, snd.format, None, max(snd.frames, 0))
            if snd.format in EXACT_HEADER and snd.seekable():
                return _Held(key, header, fh=fh, snd=snd)
            snd.close()
            fh.close()
            if 0 < header.expected_frames * header.channels * 4 <= WHOLE_BYTES or not header.expected_frames:
                return _whole(key, src)
            return _Held(key, header, forward=_Forward(lambda: _sndfile_blocks(src, header.channels), src.label))
    info = _ffmpeg_info(src)
    if info is not None and info.expected_frames * info.channels * 4 > WHOLE_BYTES:
        return _Held(key, info, forward=_Forward(lambda: _ffmpeg_blocks(src, info), src.label))
    return _whole(key, src)


def _whole(key: tuple[Any, ...], src: AudioSource) -> _Held:
    """The whole source decoded once, through the audio stage's decoders (the same samples)."""
    decoded = decode_into(src, 1e9, _Bounded).decoded()  # no duration bound: _Bounded bounds the bytes
    header = Header(decoded.sampling_rate, decoded.channels, decoded.format, None, decoded.samples.shape[0])
    return _Held(key, header, whole=decoded.samples)


class _Bounded(_Collect):
    """Collects a whole lossy source, up to 4 x :data:`WHOLE_BYTES` (a source whose header states no length)."""

    def feed(self, block: np.ndarray) -> None:
        self.size = getattr(self, "size", 0) + block.nbytes
        if self.size > 4 * WHOLE_BYTES:
            raise AudioError("A011", f"the audio decodes to more than {4 * WHOLE_BYTES >> 20} MiB and states no length")
        super().feed(block)


def _feed(held: _Held, src: AudioSource, seg: Segment, max_duration: float, make_sink: Callable[[Header], S]) -> S:
    h = held.header
    first, count = seg.frames(h.sampling_rate)
    total = h.expected_frames
    if total and first >= total:
        end = total / h.sampling_rate
        raise AudioError("A006", f"{src.label}: the segment starts at {seg.start:g} s, past the end of the audio ({end:.2f} s)")
    limit = int((max_duration + 1) * h.sampling_rate)
    if count is None:
        count = total - first if total else limit
    elif total:
        count = min(count, total - first)
    if count / h.sampling_rate > max_duration:
        raise AudioError("A011", f"{count / h.sampling_rate:.1f} s segment exceeds --max-duration {max_duration:g} s")
    take = _channels(seg, h.channels, src.label)
    sink = make_sink(Header(h.sampling_rate, h.channels if take is None else len(take), h.format, None, count))
    step = block_frames(h.channels)

    def feed(block: np.ndarray) -> None:
        for i in range(0, block.shape[0], step):
            part = block[i : i + step]
            sink.feed(part if take is None else np.ascontiguousarray(part[:, take]))

    if held.whole is not None:
        feed(held.whole[first : first + count])
    elif held.forward is not None:
        held.forward.take(first, count, feed)
    else:
        _read_exact(held, src, first, count, feed, step)
    return sink


def _read_exact(held: _Held, src: AudioSource, first: int, count: int, feed: Callable[[np.ndarray], None], step: int) -> None:
    assert held.snd is not None and held.fh is not None
    try:
        held.snd.seek(first)
        left = count
        while left > 0:
            want = min(step, left)
            block = held.snd.read(want, dtype="float32", always_2d=True)
            held.fh.check()
            if block.shape[0]:
                feed(block)
            left -= block.shape[0]
            if block.shape[0] < want:  # the end of the audio
                return
    except _SNDFILE_ERRORS as exc:
        held.fh.check()
        raise AudioError("A005", f"{src.label} cannot be decoded: {library_error(exc, src.label)}") from None


def _channels(seg: Segment, channels: int, label: str) -> list[int] | None:
    """The source columns to keep (None: all of them, downmixed as any clip is)."""
    if seg.channels is None or list(seg.channels) == list(range(channels)):
        return None
    missing = [c for c in seg.channels if not 0 <= c < channels]
    if missing or not seg.channels:
        asked = missing[0] if missing else "none"
        raise AudioError("A005", f"{label}: channel {asked} asked for, the audio has {channels} channel(s) (0-based)")
    return list(seg.channels)


def _sndfile_blocks(src: AudioSource, channels: int) -> Iterator[np.ndarray]:
    step = block_frames(channels)
    with MediaFile(src) as fh, sf.SoundFile(fh, mode="r") as f:
        while True:
            block = f.read(step, dtype="float32", always_2d=True)
            fh.check()
            if not block.shape[0]:
                return
            yield block


def _ffmpeg_info(src: AudioSource) -> Header | None:
    """Rate, channels and length from FFmpeg's stream header, when it states them."""
    av = _pyav()
    if av is None or src.path is None:
        return None
    try:
        with MediaFile(src) as fh, av.open(fh, mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            if not (stream.duration and stream.time_base and rate > 0 and channels > 0):
                return None
            frames = round(float(stream.duration * stream.time_base) * rate)
            return Header(rate, channels, stream.codec_context.name.upper(), None, frames)
    except Exception:  # the whole decode that follows reports what is wrong with the file
        return None


def _ffmpeg_blocks(src: AudioSource, info: Header) -> Iterator[np.ndarray]:
    """FFmpeg's frames as float32 blocks, cut at the stream's stated length (encoder padding), as the
    audio stage's whole decode cuts them."""
    av = _pyav()
    left = info.expected_frames
    try:
        with MediaFile(src) as fh, av.open(fh, mode="r") as container:
            stream = container.streams.audio[0]
            to_float = av.AudioResampler(format="flt", layout=stream.layout.name, rate=info.sampling_rate)
            frames = (f for frame in container.decode(stream) for f in to_float.resample(frame))
            for f in _chain(frames, lambda: to_float.resample(None)):
                chunk = f.to_ndarray().reshape(-1, info.channels)[:left]
                fh.check()
                left -= chunk.shape[0]
                if chunk.shape[0]:
                    yield chunk
                if left <= 0:
                    return
    except (av.error.FFmpegError, ValueError, OSError, IndexError, TypeError, OverflowError) as exc:
        raise AudioError("A005", f"{src.label} cannot be decoded: {library_error(exc, src.label)}") from None


def _chain(first: Iterator[Any], then: Callable[[], list[Any]]) -> Iterator[Any]:
    yield from first
    yield from then()
