"""Decode any container to float32 samples: libsndfile first, FFmpeg (PyAV) for the rest.

soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus-in-ogg and mp3 in process;
m4a/aac/webm/wma and friends go through PyAV, FFmpeg's libraries in process (no
subprocess per clip, no system ffmpeg needed). Durations are checked from the header
before samples are read, so a huge file cannot blow the memory bound.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audiodata.audio.load import AudioError, AudioSource
from audiodata.errtext import library_error

#: Containers libsndfile never reads: go straight to FFmpeg.
FFMPEG_ONLY = (".m4a", ".mp4", ".aac", ".webm", ".wma", ".mka", ".mkv", ".amr", ".3gp", ".ac3")


@dataclass(slots=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels)
    sampling_rate: int
    channels: int
    format: str
    header_frames: int | None = None  # the frame count the container declares, when that count is exact


#: Containers whose header states the exact frame count (mp3/ogg lengths are estimates).
EXACT_HEADER = ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF")


def decode(src: AudioSource, max_duration: float) -> Decoded:
    """Raises :class:`AudioError` whose message names ``src.label`` (the record's reference), with
    the libraries' reasons cleaned of addresses and resolved paths (stable across runs)."""
    first_error = "not tried"
    if Path(src.name).suffix.lower() not in FFMPEG_ONLY:
        try:
            return _decode_soundfile(src, max_duration)
        except AudioError:
            raise
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            first_error = _reason(exc, src)
    av = _pyav()
    if av is None:
        if _looks_like_media(src):
            raise AudioError("A010", f"{src.label}: libsndfile cannot read it and FFmpeg (PyAV) is not installed")
        raise AudioError("A005", f"{src.label} cannot be decoded: {first_error}")
    return _decode_ffmpeg(av, src, max_duration, first_error)


def _reason(exc: BaseException, src: AudioSource) -> str:
    return library_error(exc, src.label, (str(src.path),) if src.path is not None else ())


def _pyav() -> Any:
    try:
        import av
    except ImportError:
        return None
    return av


def _decode_soundfile(src: AudioSource, max_duration: float) -> Decoded:
    target = str(src.path) if src.path is not None else io.BytesIO(src.data or b"")
    with sf.SoundFile(target) as f:
        if f.samplerate <= 0 or f.channels <= 0:
            raise AudioError("A005", f"{src.label}: invalid header ({f.samplerate} Hz, {f.channels} channels)")
        frames = f.frames
        if frames > 0 and frames / f.samplerate > max_duration:
            raise AudioError("A011", f"{frames / f.samplerate:.1f} s exceeds --max-duration {max_duration:g} s")
        data = f.read(dtype="float32", always_2d=True)
        declared = frames if f.format in EXACT_HEADER and frames > 0 else None
        if f.format == "WAV":  # libsndfile shortens a truncated data chunk silently; the header still says
            declared = _wav_declared_frames(_head(src)) or declared
        return Decoded(data, f.samplerate, f.channels, f.format, declared)


def _head(src: AudioSource, size: int = 4096) -> bytes:
    if src.path is not None:
        with src.path.open("rb") as fh:
            return fh.read(size)
    return (src.data or b"")[:size]


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


def _looks_like_media(src: AudioSource) -> bool:
    head = src.data[:12] if src.data is not None else b""
    if src.path is not None:
        with src.path.open("rb") as fh:
            head = fh.read(12)
    return any(m in head for m in _MEDIA_MAGIC) or Path(src.name).suffix.lower() in FFMPEG_ONLY


def _decode_ffmpeg(av: Any, src: AudioSource, max_duration: float, first_error: str) -> Decoded:
    name = src.label
    target: Any = str(src.path) if src.path is not None else io.BytesIO(src.data or b"")
    try:
        with av.open(target) as container:
            if not container.streams.audio:
                raise AudioError("A005", f"{name} cannot be decoded: no audio stream (libsndfile: {first_error})")
            stream = container.streams.audio[0]
            if container.duration and container.duration / 1e6 > max_duration:
                raise AudioError("A011", f"{container.duration / 1e6:.1f} s exceeds --max-duration {max_duration:g} s")
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            if rate <= 0 or channels <= 0:
                raise AudioError("A005", f"{name}: invalid stream ({rate} Hz, {channels} channels)")
            to_float = av.AudioResampler(format="flt", layout=stream.layout.name, rate=rate)  # packed float, same rate
            chunks: list[np.ndarray] = []
            total = 0
            limit = int((max_duration + 1) * rate)
            for frame in container.decode(stream):
                for f in to_float.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1, channels))
                    total += chunks[-1].shape[0]
                if total > limit:
                    raise AudioError("A011", f"more than {max_duration:g} s of audio (--max-duration)")
            chunks += [f.to_ndarray().reshape(-1, channels) for f in to_float.resample(None)]
            samples = np.concatenate(chunks) if chunks else np.zeros((0, channels), np.float32)
            if stream.duration and stream.time_base:  # AAC and friends carry encoder padding past the true end
                samples = samples[: max(1, round(float(stream.duration * stream.time_base) * rate))]
            codec = stream.codec_context.name.upper()
            declared = None
            if stream.duration and stream.time_base and codec not in ("MP3", "VORBIS", "OPUS"):  # estimates there
                declared = round(float(stream.duration * stream.time_base) * rate)
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise AudioError("A005", f"{name} cannot be decoded: {_reason(exc, src)} (libsndfile: {first_error})") from None
    return Decoded(np.ascontiguousarray(samples, dtype=np.float32), rate, channels, codec, declared)
