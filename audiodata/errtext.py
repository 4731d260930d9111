"""Library exceptions as stable message text: what went wrong, never where in memory.

libsndfile, FFmpeg (PyAV), soxr and the OS put object reprs (``<_io.BytesIO object at 0x7f...>``),
resolved or temporary paths and errno numbers into their messages. Findings and ``rejects.jsonl``
must be byte-identical across identical runs and name the record's own reference, so every
library message that reaches a finding goes through :func:`library_error` first.
"""

from __future__ import annotations

import re

_OBJECT = re.compile(r"<[^<>]*? object at 0x[0-9A-Fa-f]+>")
_ADDRESS = re.compile(r"\b0x[0-9A-Fa-f]{6,}\b")
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_SNDFILE_PREFIX = re.compile(r"^Error(?: opening [^:]*?)?\s*:\s*")


def library_error(exc: BaseException, label: str = "", paths: tuple[str, ...] = ()) -> str:
    """The gist of ``exc``: its reason without errno numbers, object addresses or the ``paths``
    it was called with (each replaced by ``label``, the reference the message is about)."""
    text = _SNDFILE_PREFIX.sub("", _ERRNO.sub("", _reason(exc)))
    for p in sorted((p for p in paths if p), key=len, reverse=True):
        text = text.replace(repr(p), label).replace(p, label)
    text = _OBJECT.sub(label or "the audio", text)
    text = _ADDRESS.sub("0x…", text)
    return " ".join(text.split()).rstrip(":; ") or type(exc).__name__


def _reason(exc: BaseException) -> str:
    error_string = getattr(exc, "error_string", None)  # soundfile.LibsndfileError: the reason without the prefix
    if isinstance(error_string, str) and error_string:
        return error_string
    strerror = getattr(exc, "strerror", None)  # OSError and PyAV's FFmpegError: the reason without errno and file
    if isinstance(strerror, str) and strerror:
        return strerror
    return str(exc)


def elide(text: str, limit: int = 200, placeholder: str = " ... ") -> str:
    """``text`` within ``limit`` characters, its middle left out at word boundaries: the start says what,
    the end usually says why (``<value> is not of type 'string'``); a word is never cut unless it alone is
    longer than its share."""
    if len(text) <= limit:
        return text
    room = limit - len(placeholder)
    head, tail = text[: room // 3], text[len(text) - (room - room // 3) :]
    head = head.rsplit(" ", 1)[0] if " " in head else head
    tail = tail.split(" ", 1)[1] if " " in tail else tail
    return head.rstrip() + placeholder + tail.lstrip()
