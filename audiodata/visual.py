"""Images and videos (Omni and vision corpora): opened as safely as audio, checked, then stored.

A record's images and videos go through the audio stage's own loader
(:func:`audiodata.audio.load.open_ref`: media root, symlinks, URLs refused, size bound), so
they are judged exactly like its audio; only the rule codes differ (S030-S034). Each is
checked to be what it claims (Pillow reads the image header, FFmpeg finds a video stream)
and then either embedded (``--visual embed``: the original bytes, as the Hub ``Image``/``Video``
features store them) or kept as a file reference (``--visual refs``: the path as written,
relative to the media root).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiodata.audio.load import AudioError, AudioSource, open_ref, resolve_path
from audiodata.errtext import library_error
from audiodata.records import MediaRef

VISUAL_MODES = ("embed", "refs")

#: The audio loader's codes, as the image/video rules report them.
_CODES = {"A001": "S030", "A002": "S031", "A003": "S032", "A004": "S033", "A005": "S033", "A011": "S034"}

_IMAGE_EXT = {"JPEG": "jpg", "MPO": "jpg", "TIFF": "tif"}
_VIDEO_EXT = ("mp4", "webm", "matroska", "avi", "mov", "mpeg", "flv", "ogg", "gif")


class VisualError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(slots=True)
class StoredVisual:
    """One image or video ready for the row: ``data`` + ``ext`` (embed) or ``ref`` (refs)."""

    ext: str
    data: bytes | None = None
    ref: str | None = None

    def cell(self, path: str) -> dict[str, Any] | str:
        """The value of this image/video in the output row (``path`` names the embedded file)."""
        return self.ref if self.ref is not None else {"bytes": self.data, "path": f"{path}.{self.ext}"}


def store_visual(
    ref: MediaRef,
    what: str,
    media_root: str,
    mode: str = "embed",
    max_bytes: int = 256 * 2**20,
    allow_absolute: bool = True,
    keep: bool = True,
) -> StoredVisual:
    """Open, check and store one image (``what="image"``) or video. Raises :class:`VisualError`.
    ``keep=False`` (lint) checks without holding the bytes."""
    if mode == "refs" and ref.kind not in ("path", "url"):
        msg = f"{what} is inline data ({ref.kind}): --visual refs keeps file references only; use --visual embed"
        raise VisualError("S032", msg)
    try:
        if mode == "refs" and ref.kind == "path":
            path = resolve_path(str(ref.value), media_root, allow_absolute, what=what)
            return StoredVisual(_probe(AudioSource(path=path, name=path.name), what), ref=_relative(str(ref.value), media_root))
        src = open_ref(ref, media_root, max_bytes, allow_absolute, what=what)  # a URL is refused here, in both modes
    except AudioError as exc:
        raise VisualError(_CODES.get(exc.code, "S033"), exc.message) from None
    if keep and src.data is None and src.path is not None:  # read once, check the bytes that are stored
        src = AudioSource(data=src.path.read_bytes(), name=src.name)
    ext = _probe(src, what)
    return StoredVisual(ext, src.data if keep else None)


def _relative(raw: str, media_root: str) -> str:
    """The reference as written, normalised and relative to the media root when it lies under it."""
    root = os.path.abspath(media_root)
    full = os.path.normpath(os.path.join(root, os.path.expanduser(raw)))
    rel = os.path.relpath(full, root)
    return full if rel == ".." or rel.startswith(".." + os.sep) else rel.replace(os.sep, "/")


def _probe(src: AudioSource, what: str) -> str:
    """Check that ``src`` is an image (or a video) and return the file extension to store it under."""
    label = src.name or f"inline {what}"
    if what == "image":
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - Pillow ships with the datasets Image feature's users
            raise VisualError("S033", "checking images needs Pillow (pip install pillow)") from None
        try:
            with Image.open(src.path if src.path is not None else io.BytesIO(src.data or b"")) as im:
                fmt = im.format or ""
                im.verify()
        except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, DecompressionBombError...
            why = library_error(exc, label, (str(src.path),) if src.path is not None else ())
            raise VisualError("S033", f"{label} is not an image Pillow can read ({type(exc).__name__}: {why})") from None
        return _IMAGE_EXT.get(fmt, fmt.lower() or "img")
    import av

    try:
        with av.open(str(src.path) if src.path is not None else io.BytesIO(src.data or b"")) as container:
            if not container.streams.video:
                raise VisualError("S033", f"{label} has no video stream")
            formats = container.format.name.split(",")
            if any(f.endswith("_pipe") or f == "image2" for f in formats):  # FFmpeg opens a still picture as one frame
                raise VisualError("S033", f"{label} is a still image ({formats[0]}), not a video")
    except VisualError:
        raise
    except Exception as exc:  # av.error.FFmpegError and friends
        why = library_error(exc, label, (str(src.path),) if src.path is not None else ())
        raise VisualError("S033", f"{label} is not a video FFmpeg can read ({type(exc).__name__}: {why})") from None
    suffix = Path(src.name).suffix.lower().lstrip(".")
    if re.fullmatch(r"[a-z0-9]{1,5}", suffix):
        return suffix
    return next(("mkv" if f == "matroska" else f for f in _VIDEO_EXT if f in formats), "video")
