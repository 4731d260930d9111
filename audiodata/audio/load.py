"""Turn a :class:`MediaRef` into bytes or a readable path, safely.

Relative paths resolve against the media root and may not leave it (symlinks
included); URLs are refused (audiodata never fetches); inline data is size-bounded
before it is decoded. Problems raise :class:`AudioError` with an audio rule code;
images and videos go through the same code (``what``) and map the codes to theirs.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path

from audiodata.records import MediaRef


class AudioError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(slots=True)
class AudioSource:
    """Either a file on disk or bytes in memory; ``name`` hints the container."""

    path: Path | None = None
    data: bytes | None = None
    name: str = ""


_DATA_URI = re.compile(r"^data:([\w.+/-]*)((?:;[\w=.-]+)*?);base64,", re.IGNORECASE)


def b64decode(text: str, max_bytes: int, what: str = "audio") -> bytes:
    compact = "".join(text.split())
    if len(compact) * 3 // 4 > max_bytes:
        raise AudioError("A011", f"inline {what} of about {len(compact) * 3 // 4} bytes exceeds --max-audio-bytes {max_bytes}")
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioError("A004", f"invalid base64 ({exc})") from None


def resolve_path(raw: str, media_root: str, allow_absolute: bool = True, what: str = "audio") -> Path:
    root = Path(os.path.realpath(media_root))
    p = Path(os.path.expanduser(raw)) if raw.startswith("~") else Path(raw)
    if p.is_absolute():
        real = Path(os.path.realpath(p))
        if not allow_absolute and not real.is_relative_to(root):
            raise AudioError("A002", f"absolute path {raw} is outside the media root {root} (--strict-paths)")
    else:
        real = Path(os.path.realpath(root / p))
        if not real.is_relative_to(root):
            raise AudioError("A002", f"path {raw} resolves to {real}, outside the media root {root}")
    if not real.is_file():
        raise AudioError("A001", f"{what} file not found: {raw} (looked for {real})")
    return real


def open_ref(ref: MediaRef, media_root: str, max_bytes: int, allow_absolute: bool = True, what: str = "audio") -> AudioSource:
    if ref.kind == "url":
        raise AudioError("A003", f"{what} is a URL ({str(ref.value)[:120]}); download it first, audiodata does not fetch")
    if ref.kind == "path":
        path = resolve_path(str(ref.value), media_root, allow_absolute, what)
        size = path.stat().st_size
        if size > max_bytes:
            raise AudioError("A011", f"{what} file of {size} bytes exceeds --max-audio-bytes {max_bytes}")
        return AudioSource(path=path, name=path.name)
    if ref.kind == "bytes":
        if len(ref.value) > max_bytes:
            raise AudioError("A011", f"inline {what} of {len(ref.value)} bytes exceeds --max-audio-bytes {max_bytes}")
        return AudioSource(data=ref.value, name=ref.name or "")
    if ref.kind == "data_uri":
        m = _DATA_URI.match(ref.value)
        if m is None:
            raise AudioError("A004", f"data URI is not of the form data:{what}/<type>;base64,<data>")
        mime = m.group(1).lower()
        ext = mime.rsplit("/", 1)[-1] if "/" in mime else ""
        data = b64decode(ref.value[m.end() :], max_bytes, what)
        return AudioSource(data=data, name=ref.name or (f"inline.{ext}" if ext else ""))
    if ref.kind == "base64":
        return AudioSource(data=b64decode(ref.value, max_bytes, what), name=ref.name or "")
    raise AudioError("A005", f"cannot read {what} given as {ref.kind}")
