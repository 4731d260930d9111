"""Decode any container to float32 samples, block by block: libsndfile first, FFmpeg (PyAV) for the rest.

soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus-in-ogg and mp3 in process;
m4a/aac/webm/wma and friends go through PyAV, FFmpeg's libraries in process (no
subprocess per clip, no system ffmpeg needed). The header (rate, channels, duration) is
checked before any sample is read; samples then go to a sink (the audio stage's downmix
and resampler) in blocks of at most :data:`BLOCK_BYTES`, so a worker never holds a whole
multichannel source, however long or wide: memory follows the mono output, not the input.
The file is opened once, as a :class:`MediaFile`, so a read failure part-way (EIO, a stale
NFS handle) ends as the record's finding, never as a traceback from inside a C callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import soundfile as sf

from audiodata.audio.load import AudioError, AudioSource, MediaFile
from audiodata.errtext import library_error

#: Containers libsndfile never reads: go straight to FFmpeg.
FFMPEG_ONLY = (".m4a", ".mp4", ".aac", ".webm", ".wma", ".mka", ".mkv", ".amr", ".3gp", ".ac3")

#: Source samples held at once (float32, all channels); blocks are at most this big.
BLOCK_BYTES = 4 * 2**20
MAX_BLOCK_FRAMES = 1 << 17  # soxr runs as fast on blocks of 64k frames and more as on a whole clip
#: A libsndfile source up to this decoded size (frames x channels x 4 bytes, from its header) is read in one
#: call, as before block decoding; longer or wider ones in blocks. Every decoder gives the same samples either
#: way except libsndfile's MP3 (mpg123), whose float rounding follows the read boundaries: its blocks differ by
#: 1 LSB on about 0.04% of the stored 16-bit samples (tests/audio/test_audio_hostile.py measures both).
ONE_SHOT_BYTES = 64 * 2**20
#: No audio is sampled faster (FFmpeg decodes DSD512 to 2.8 MHz PCM); a header saying more is corrupt,
#: and resampling from near 2**31 Hz costs microseconds per sample.
MAX_SOURCE_RATE = 4_000_000

#: Containers whose header states the exact frame count (mp3/ogg lengths are estimates).
EXACT_HEADER = ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF")

_SNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError)


@dataclass(frozen=True, slots=True)
class Header:
    """What a source says about itself before its samples are read."""

    sampling_rate: int
    channels: int
    format: str
    header_frames: int | None = None  # the frame count the container declares, when that count is exact
    expected_frames: int = 0  # the frame count the header states or estimates (mp3, ogg, FFmpeg); 0: unknown
    subtype: str = ""  # libsndfile's sample format (PCM_16, PCM_24, FLOAT...); "" from FFmpeg


@dataclass(slots=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels)
    sampling_rate: int
    channels: int
    format: str
    header_frames: int | None = None  # the frame count the container declares, when that count is exact


class Sink(Protocol):
    def feed(self, block: np.ndarray) -> None:
        """Take the next float32 block of shape (frames, channels); may raise AudioError."""


S = TypeVar("S", bound=Sink)


class _LibraryFailed(Exception):
    """libsndfile could not read the source: FFmpeg gets a try."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def block_frames(channels: int) -> int:
    """Frames per block: :data:`MAX_BLOCK_FRAMES`, fewer for wide sources (at most :data:`BLOCK_BYTES`)."""
    return max(1024, min(MAX_BLOCK_FRAMES, BLOCK_BYTES // (4 * max(1, channels))))


def decode_into(src: AudioSource, max_duration: float, make_sink: Callable[[Header], S]) -> S:
    """Feed the samples of ``src`` to ``make_sink(header)`` block by block and return the sink.

    Raises :class:`AudioError` whose message names ``src.label`` (the record's reference), with the
    libraries' reasons cleaned of addresses and resolved paths (stable across runs). When libsndfile
    fails part-way, FFmpeg starts over with a fresh sink."""
    with MediaFile(src) as fh:
        head = fh.head()
        fh.check()
        first_error = "not tried"
        if Path(src.name).suffix.lower() not in FFMPEG_ONLY:
            try:
                return _decode_soundfile(fh, head, src, max_duration, make_sink)
            except _LibraryFailed as exc:
                if _system_error(exc.cause):  # libsndfile's own read of the descriptor failed: learn why
                    fh.surface_error()
                fh.check()
                first_error = _reason(exc.cause, src)
        av = _pyav()
        if av is None:
            if _looks_like_media(head, src.name):
                raise AudioError("A010", f"{src.label}: libsndfile cannot read it and FFmpeg (PyAV) is not installed")
            raise AudioError("A005", f"{src.label} cannot be decoded: {first_error}")
        fh.seek(0)
        return _decode_ffmpeg(av, fh, src, max_duration, first_error, make_sink)


class _Collect:
    """A sink that keeps every block: the whole source, for callers that want it (small clips)."""

    def __init__(self, header: Header) -> None:
        self.header = header
        self.blocks: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        self.blocks.append(block)

    def decoded(self) -> Decoded:
        h = self.header
        samples = np.concatenate(self.blocks) if self.blocks else np.zeros((0, h.channels), np.float32)
        return Decoded(np.ascontiguousarray(samples, dtype=np.float32), h.sampling_rate, h.channels, h.format, h.header_frames)


def decode(src: AudioSource, max_duration: float) -> Decoded:
    """The whole source in memory (frames x channels x 4 bytes): for short clips and tools; the audio
    stage streams through :func:`decode_into` instead."""
    return decode_into(src, max_duration, _Collect).decoded()


def _reason(exc: BaseException, src: AudioSource) -> str:
    return library_error(exc, src.label, (str(src.path),) if src.path is not None else ())


def _pyav() -> Any:
    try:
        import av
    except ImportError:
        return None
    return av


def check_header(rate: int, channels: int, label: str, what: str = "header") -> None:
    """A005 for a rate or channel count no audio has (a corrupt or hostile header), before any sample is read."""
    if rate <= 0 or channels <= 0 or rate > MAX_SOURCE_RATE:
        raise AudioError("A005", f"{label}: invalid {what} ({rate} Hz, {channels} channels)")


#: libsndfile's code for a failed read or seek of the file itself (SFE_SYSTEM)
_SFE_SYSTEM = 2


def _system_error(exc: BaseException) -> bool:
    return isinstance(exc, sf.LibsndfileError) and exc.code == _SFE_SYSTEM


def _decode_soundfile(fh: MediaFile, head: bytes, src: AudioSource, max_duration: float, make_sink: Callable[[Header], S]) -> S:
    """libsndfile reads a file on disk through its descriptor (C reads: a Python callback per read costs ~0.1 ms a
    clip); a failed read there is a LibsndfileError "System error", whose cause :func:`decode_into` then reads
    through the :class:`MediaFile`. Bytes in memory, or a file object that is not an OS file, go through callbacks."""
    fd = fh.descriptor()
    try:
        try:
            f = sf.SoundFile(fh if fd is None else fd, mode="r", closefd=False)
        except _SNDFILE_ERRORS as exc:
            raise _LibraryFailed(exc) from None
        return _read_soundfile(f, fh, head, src, max_duration, make_sink)
    finally:
        if fd is not None:
            fh.resync()


def _read_soundfile(
    f: sf.SoundFile, fh: MediaFile, head: bytes, src: AudioSource, max_duration: float, make_sink: Callable[[Header], S]
) -> S:
    with f:
        check_header(f.samplerate, f.channels, src.label)
        frames = f.frames
        if frames > 0 and frames / f.samplerate > max_duration:
            raise AudioError("A011", f"{frames / f.samplerate:.1f} s exceeds --max-duration {max_duration:g} s")
        declared = frames if f.format in EXACT_HEADER and frames > 0 else None
        if f.format == "WAV":  # libsndfile shortens a truncated data chunk silently; the header still says
            declared = _wav_declared_frames(head) or declared
        sink = make_sink(Header(f.samplerate, f.channels, f.format, declared, max(frames, 0), f.subtype))
        step = block_frames(f.channels)
        if not f.seekable():  # GSM 6.10 and friends: soundfile reads them only with a frame count; FFmpeg does
            raise _LibraryFailed(ValueError("frames must be specified for non-seekable files"))
        if 0 < frames * f.channels * 4 <= ONE_SHOT_BYTES:
            try:
                whole = f.read(dtype="float32", always_2d=True)
            except _SNDFILE_ERRORS as exc:
                raise _LibraryFailed(exc) from None
            fh.check()
            feed_whole = getattr(sink, "feed_whole", None)  # a sink that can take it all at once (PcmSink)
            if feed_whole is not None:
                feed_whole(whole, step)
                return sink
            for i in range(0, whole.shape[0], step):
                sink.feed(whole[i : i + step])
            return sink
        while True:  # soundfile stops at the frame count libsndfile reports, as one whole read would
            try:
                block = f.read(step, dtype="float32", always_2d=True)
            except _SNDFILE_ERRORS as exc:
                raise _LibraryFailed(exc) from None
            fh.check()
            if block.shape[0]:
                sink.feed(block)
            if block.shape[0] < step:
                return sink


def _wav_declared_frames(head: bytes) -> int | None:
    """Frames the RIFF ``data`` chunk claims (size / block align), walking the chunks in ``head``."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, align = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"fmt " and pos + 22 <= len(head):
            align = int.from_bytes(head[pos + 20 : pos + 22], "little")
        if cid == b"data":
            return size // align if align and size not in (0, 0xFFFFFFFF) else None  # 0/-1: streaming writers
        pos += 8 + size + (size & 1)
    return None


_MEDIA_MAGIC = (b"ftyp", b"\x1aE\xdf\xa3", b"OggS", b"ID3", b"\xff\xf1", b"\xff\xf9", b"0&\xb2u")


def _looks_like_media(head: bytes, name: str) -> bool:
    return any(m in head[:12] for m in _MEDIA_MAGIC) or Path(name).suffix.lower() in FFMPEG_ONLY


class _Blocks:
    """Gathers FFmpeg's small frames (about 1024 samples each) into blocks for the sink, and drops
    what lies past ``keep`` frames (AAC and friends carry encoder padding past the true end)."""

    def __init__(self, sink: Sink, step: int, keep: int | None) -> None:
        self.sink, self.step, self.keep = sink, step, keep
        self.parts: list[np.ndarray] = []
        self.held = self.emitted = 0

    def add(self, chunk: np.ndarray) -> None:
        if self.keep is not None:
            chunk = chunk[: max(0, self.keep - self.emitted)]
        if not chunk.shape[0]:
            return
        self.emitted += chunk.shape[0]
        self.parts.append(chunk)
        self.held += chunk.shape[0]
        if self.held >= self.step:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            block = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
            self.parts, self.held = [], 0
            self.sink.feed(block)


def _decode_ffmpeg(
    av: Any, fh: MediaFile, src: AudioSource, max_duration: float, first_error: str, make_sink: Callable[[Header], S]
) -> S:
    name = src.label
    try:
        with av.open(fh, mode="r") as container:
            if not container.streams.audio:
                raise AudioError("A005", f"{name} cannot be decoded: no audio stream (libsndfile: {first_error})")
            stream = container.streams.audio[0]
            if container.duration and container.duration / 1e6 > max_duration:
                raise AudioError("A011", f"{container.duration / 1e6:.1f} s exceeds --max-duration {max_duration:g} s")
            if stream.codec_context is None:  # FFmpeg has no decoder for the stream's codec
                raise AudioError("A005", f"{name} cannot be decoded: no decoder for its audio codec (libsndfile: {first_error})")
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            check_header(rate, channels, name, "stream")
            to_float = av.AudioResampler(format="flt", layout=stream.layout.name, rate=rate)  # packed float, same rate
            codec = stream.codec_context.name.upper()
            keep = declared = None
            if stream.duration and stream.time_base:
                declared = round(float(stream.duration * stream.time_base) * rate)
                keep = max(1, declared)
            if codec in ("MP3", "VORBIS", "OPUS"):  # the stream duration is an estimate there
                declared = None
            limit = int((max_duration + 1) * rate)
            sink = make_sink(Header(rate, channels, codec, declared, min(keep or 0, limit)))
            blocks = _Blocks(sink, block_frames(channels), keep)
            total = 0
            for frame in container.decode(stream):
                for f in to_float.resample(frame):
                    chunk = f.to_ndarray().reshape(-1, channels)
                    total += chunk.shape[0]
                    blocks.add(chunk)
                if total > limit:
                    raise AudioError("A011", f"more than {max_duration:g} s of audio (--max-duration)")
                fh.check()
            for f in to_float.resample(None):
                blocks.add(f.to_ndarray().reshape(-1, channels))
            blocks.flush()
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError, TypeError, OverflowError) as exc:
        fh.check()
        raise AudioError("A005", f"{name} cannot be decoded: {_reason(exc, src)} (libsndfile: {first_error})") from None
    fh.check()
    return sink
