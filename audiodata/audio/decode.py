"""Decode any container to float32 samples: soundfile first, ffmpeg for the rest.

soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus-in-ogg and mp3 in process;
m4a/aac/webm and friends go through an ffmpeg subprocess when it is installed.
Durations are checked from the header before any samples are read, so a huge
file cannot blow the memory bound.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiodata.audio.load import AudioError, AudioSource


@dataclass(slots=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels)
    sampling_rate: int
    channels: int
    format: str


def decode(src: AudioSource, max_duration: float) -> Decoded:
    try:
        return _decode_soundfile(src, max_duration)
    except sf.LibsndfileError as exc:
        first_error = str(exc)
    except (RuntimeError, TypeError, ValueError) as exc:
        first_error = str(exc)
    if shutil.which("ffmpeg") is None:
        if _looks_like_media(src):
            raise AudioError(
                "A010", f"{src.name or 'audio'}: libsndfile cannot read it ({first_error}) and ffmpeg is not installed"
            )
        raise AudioError("A005", f"{src.name or 'audio'} cannot be decoded: {first_error}")
    return _decode_ffmpeg(src, max_duration, first_error)


def _decode_soundfile(src: AudioSource, max_duration: float) -> Decoded:
    target = str(src.path) if src.path is not None else io.BytesIO(src.data or b"")
    with sf.SoundFile(target) as f:
        if f.samplerate <= 0 or f.channels <= 0:
            raise AudioError("A005", f"invalid header: {f.samplerate} Hz, {f.channels} channels")
        frames = f.frames
        if frames > 0 and frames / f.samplerate > max_duration:
            raise AudioError("A011", f"{frames / f.samplerate:.1f} s exceeds --max-duration {max_duration:g} s")
        data = f.read(dtype="float32", always_2d=True)
        return Decoded(data, f.samplerate, f.channels, f.format)


_MEDIA_MAGIC = (b"\x00\x00\x00", b"ftyp", b"\x1aE\xdf\xa3", b"OggS", b"ID3", b"\xff\xf1", b"\xff\xf9")


def _looks_like_media(src: AudioSource) -> bool:
    head = src.data[:12] if src.data is not None else b""
    if src.path is not None:
        with src.path.open("rb") as fh:
            head = fh.read(12)
    return any(m in head for m in _MEDIA_MAGIC) or Path(src.name).suffix.lower() in (
        ".m4a",
        ".aac",
        ".opus",
        ".webm",
        ".mp4",
        ".wma",
    )


def _decode_ffmpeg(src: AudioSource, max_duration: float, first_error: str) -> Decoded:
    with tempfile.TemporaryDirectory(prefix="audiodata-") as tmp:
        path = src.path
        if path is None:  # mp4-family containers need a seekable file, not a pipe
            path = Path(tmp) / ("input" + Path(src.name).suffix)
            path.write_bytes(src.data or b"")
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                "stream=sample_rate,channels,codec_name",
                "-show_entries",
                "format=format_name,duration",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            info = json.loads(probe.stdout or "{}")
            stream = info["streams"][0]
            rate, channels = int(stream["sample_rate"]), int(stream["channels"])
        except (KeyError, IndexError, ValueError, json.JSONDecodeError):
            raise AudioError(
                "A005", f"{src.name or 'audio'} cannot be decoded (soundfile: {first_error}; ffprobe found no audio stream)"
            ) from None
        fmt = str(info.get("format", {}).get("format_name", "ffmpeg")).split(",")[0].upper()
        duration = float(info.get("format", {}).get("duration") or 0)
        if duration > max_duration:
            raise AudioError("A011", f"{duration:.1f} s exceeds --max-duration {max_duration:g} s")
        out = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-nostdin",
                "-i",
                str(path),
                "-map",
                "0:a:0",
                "-f",
                "f32le",
                "-acodec",
                "pcm_f32le",
                "-t",
                str(max_duration + 1),
                "pipe:1",
            ],
            capture_output=True,
            check=False,
        )
        if out.returncode != 0:
            msg = out.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["ffmpeg failed"]
            raise AudioError("A005", f"{src.name or 'audio'} cannot be decoded: {msg[0]}")
        samples = np.frombuffer(out.stdout, dtype="<f4")
        samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        if duration > 0:  # ffmpeg keeps AAC priming/padding samples in raw output; the container knows the true length
            samples = samples[: max(1, round(duration * rate))]
        return Decoded(samples, rate, channels, fmt)
