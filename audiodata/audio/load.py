"""Turn a :class:`MediaRef` into bytes or a readable path, safely.

Relative paths resolve against the media root (or, when missing there, the input's own
folder inside it) and may not leave it (symlinks included); a media root in an object store
(``s3://bucket/corpus``) is read the same way through :mod:`audiodata.objstore`. URLs are refused
(A003) unless they lie under a prefix the user allows (``--allow-remote s3://bucket/``, object
stores only: http(s) never); inline data is size-bounded before it is decoded. Problems raise
:class:`AudioError` with an audio rule code; images and videos go through the same code
(``what``) and map the codes to theirs.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiodata import objstore
from audiodata.privacy import MEDIA_ROOT
from audiodata.records import MediaRef

#: Messages name resolved files absolutely (``--absolute-paths``); by default relative to the media root,
#: since findings travel (rejects.jsonl, reports, ``publish --include-rejects``).
_ABSOLUTE: ContextVar[bool] = ContextVar("audiodata_absolute_paths", default=False)


@contextmanager
def show_absolute(on: bool) -> Iterator[None]:
    token = _ABSOLUTE.set(on)
    try:
        yield
    finally:
        _ABSOLUTE.reset(token)


def _shown(path: Path, root: Path, media_root: str) -> str:
    """A resolved ``path`` as a message names it: absolute with ``--absolute-paths``; else under the media
    root as typed when that is relative (``corpus/a.wav``, ``corpus/../shared``), or under ``<media root>``."""
    if _ABSOLUTE.get():
        return str(path)
    rel = os.path.relpath(path, root)
    if not os.path.isabs(media_root):
        return os.path.normpath(os.path.join(media_root, rel))
    return MEDIA_ROOT if rel == "." else f"{MEDIA_ROOT}/{rel}"


def _root_named(root: Path, media_root: str) -> str:
    """`` {root}`` after "the media root" where it can be named without leaving the machine."""
    if _ABSOLUTE.get():
        return f" {root}"
    return "" if os.path.isabs(media_root) else f" {os.path.normpath(media_root)}"


class AudioError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(slots=True)
class AudioSource:
    """Either a file on disk or bytes in memory; ``name`` hints the container; ``label`` is how
    messages name it (the reference as the record wrote it, never a resolved or in-memory object)."""

    path: Path | None = None
    data: bytes | None = None
    name: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.name or "audio"


def describe_ref(ref: MediaRef) -> str:
    """The reference as a message names it: the path or URL as written, or where inline data sits.
    Stable across runs and machines (no resolved paths, no object reprs)."""
    if ref.kind in ("path", "url"):
        return str(ref.value)[:200]
    what = {"base64": "inline base64", "data_uri": "inline data URI", "bytes": "inline bytes", "array": "array audio"}
    named = f" ({ref.name})" if ref.name else ""
    return f"{what.get(ref.kind, ref.kind)} in {ref.field}{named}"


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


#: Within :func:`roots_resolved_once`: media root -> its real path, and (real root, folder relative to it) -> that
#: folder's real path as a string (None: it lies outside the root).
_ROOTS: ContextVar[dict[Any, Any] | None] = ContextVar("audiodata_media_roots", default=None)


@contextmanager
def roots_resolved_once() -> Iterator[None]:
    """Within it, each media root's real path is resolved once (a worker's job of records shares one root; a realpath
    costs an lstat per component, for every clip), and so is each folder under it that relative paths name
    (:func:`_known_file`); outside it on every call, so that a root whose links change between two runs in one
    process is followed."""
    token = _ROOTS.set({}) if _ROOTS.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _ROOTS.reset(token)


def real_root(media_root: str) -> Path:
    """The media root with its links resolved (once per job inside :func:`roots_resolved_once`)."""
    roots = _ROOTS.get()
    if roots is None:
        return Path(os.path.realpath(media_root))
    root = roots.get(media_root)
    if root is None:
        root = roots[media_root] = Path(os.path.realpath(media_root))
    return root


def resolve_path(
    raw: str, media_root: str, allow_absolute: bool = True, input_dir: str | None = None, hint: bool = True, what: str = "audio"
) -> Path:
    """The real file ``raw`` names. A relative path resolves against the media root; when nothing is
    there and the input file's own folder ``input_dir`` lies inside the media root, against that
    folder (a corpus folder inside a wider --media-root keeps paths relative to itself, e.g. through
    a link ``corpus/audio -> /mnt/shared/audio``). Either way the real file, links followed, must lie
    inside the media root; an A002 says which --media-root would accept the path."""
    return _resolve(raw, media_root, allow_absolute, input_dir, hint, what)[0]


def _resolve(
    raw: str, media_root: str, allow_absolute: bool = True, input_dir: str | None = None, hint: bool = True, what: str = "audio"
) -> tuple[Path, int | None]:
    """:func:`resolve_path`, with the file's size when finding it told it (the fast path)."""
    root = real_root(media_root)
    p = Path(os.path.expanduser(raw)) if raw.startswith("~") else Path(raw)
    if p.is_absolute():
        real = Path(os.path.realpath(p))
        if not allow_absolute and not real.is_relative_to(root):
            wider = _hint(raw, real, root, allow_absolute, input_dir, media_root) if hint else ""
            named = _root_named(root, media_root)
            raise AudioError("A002", f"absolute path {raw} is outside the media root{named} (--strict-paths){wider}")
    else:
        known = _known_file(p, root)
        if known is not None:
            return known
        real = Path(os.path.realpath(_base(p, root, input_dir) / p))
        if not real.is_relative_to(root):
            wider = _hint(raw, real, root, allow_absolute, input_dir, media_root) if hint else ""
            shown, named = _shown(real, root, media_root), _root_named(root, media_root)
            raise AudioError("A002", f"path {raw} resolves to {shown}, outside the media root{named}{wider}")
    if not real.is_file():
        if real.exists():  # a FIFO, a device (/dev/zero), a socket or a folder: reading it would block or never end
            raise AudioError("A005", f"{what} {raw} is not a regular file")
        raise AudioError("A001", f"{what} file not found: {raw} (looked for {_shown(real, root, media_root)})")
    return real, None


def _known_file(rel: Path, root: Path) -> tuple[Path, int] | None:
    """A relative path found as :func:`resolve_path` finds it, by one ``lstat``: within :func:`roots_resolved_once`
    its folder's real path is resolved once (a corpus keeps many clips per folder) and, when the file itself is a
    regular file (not a link), the real path of ``root/rel`` is that folder's with the name appended: the file is
    there under the root, so :func:`_base` picks the root. None (the full resolution decides, and words any error)
    outside that scope, for a link, a missing file, anything but a regular file, or a folder outside the root.
    The same answer as ``realpath`` (``tests/audio/test_resolve_fast.py``) for 1 of its ~7 stat calls a clip."""
    cache = _ROOTS.get()
    name = rel.name
    if cache is None or name in ("", ".", ".."):
        return None
    key = (root, rel.parent)
    if key in cache:
        folder = cache[key]
    else:
        real = os.path.realpath(root / rel.parent)
        folder = cache[key] = real if Path(real).is_relative_to(root) else None
    if folder is None:
        return None
    path = os.path.join(folder, name)
    try:
        st = os.lstat(path)
    except (OSError, ValueError):  # not there (or a name the OS refuses): the full resolution words it
        return None
    return (Path(path), st.st_size) if stat.S_ISREG(st.st_mode) else None


def _base(rel: Path, root: Path, input_dir: str | None) -> Path:
    """The folder a relative path is read from: the media root, or the input's folder inside it
    when only there the path exists."""
    if input_dir is None or (root / rel).exists():
        return root
    here = Path(os.path.abspath(input_dir))
    if here != root and Path(os.path.realpath(here)).is_relative_to(root) and (here / rel).exists():
        return here
    return root


def lexical_target(raw: str, media_root: str, input_dir: str | None = None) -> Path | None:
    """The absolute path a relative reference names, links kept as written (the folder chosen as
    :func:`resolve_path` chooses it); None for an absolute or ``~`` path."""
    p = Path(raw)
    if raw.startswith("~") or p.is_absolute():
        return None
    root = Path(os.path.realpath(media_root))
    base = _base(p, root, input_dir)
    return (Path(os.path.abspath(media_root)) if base == root else base) / p


def _hint(raw: str, real: Path, root: Path, allow_absolute: bool, input_dir: str | None, media_root: str) -> str:
    """'; --media-root X would accept it' for the nearest common folder X of the media root and the
    real file, when resolving ``raw`` against X (and the input's folder) does reach that file. X is
    named relative to the media root (``corpus/..``, ``<media root>/..``) unless ``--absolute-paths``."""
    wider = Path(os.path.commonpath([root, real]))
    try:
        if resolve_path(raw, str(wider), allow_absolute, input_dir, hint=False) != real:
            return ""
    except AudioError:
        return ""
    return f"; --media-root {_shown(wider, root, media_root)} would accept it"


def open_ref(
    ref: MediaRef,
    media_root: str,
    max_bytes: int,
    allow_absolute: bool = True,
    input_dir: str | None = None,
    what: str = "audio",
    allow_remote: tuple[str, ...] = (),
) -> AudioSource:
    if ref.kind == "url":
        url = str(ref.value)
        if not objstore.is_remote(url) or not objstore.allowed(url, allow_remote):
            raise AudioError("A003", _refused(url, what, allow_remote))
        return _remote_source(ref, url, max_bytes, what)
    if ref.kind == "path" and objstore.is_remote(media_root) and not _local_form(str(ref.value)):
        return _remote_source(ref, _remote_path(str(ref.value), media_root), max_bytes, what)
    if ref.kind == "path":
        path, size = _resolve(str(ref.value), media_root, allow_absolute, input_dir, what=what)
        if size is None:
            try:
                size = path.stat().st_size
            except OSError as exc:  # deleted, or the file system failed, since it was resolved
                raise read_error(exc, describe_ref(ref), what) from None
        if size > max_bytes and ref.segment is None:  # a segment is bounded by its duration, not by its file's bytes
            raise AudioError("A011", f"{what} file of {size} bytes exceeds --max-audio-bytes {max_bytes}")
        return AudioSource(path=path, name=path.name, label=describe_ref(ref))
    if ref.kind == "bytes":
        if len(ref.value) > max_bytes:
            raise AudioError("A011", f"inline {what} of {len(ref.value)} bytes exceeds --max-audio-bytes {max_bytes}")
        return AudioSource(data=ref.value, name=ref.name or "", label=describe_ref(ref))
    if ref.kind == "data_uri":
        m = _DATA_URI.match(ref.value)
        if m is None:
            raise AudioError("A004", f"data URI is not of the form data:{what}/<type>;base64,<data>")
        mime = m.group(1).lower()
        ext = mime.rsplit("/", 1)[-1] if "/" in mime else ""
        name = ref.name or (f"inline.{ext}" if ext else "")
        return AudioSource(data=b64decode(ref.value[m.end() :], max_bytes, what), name=name, label=describe_ref(ref))
    if ref.kind == "base64":
        return AudioSource(data=b64decode(ref.value, max_bytes, what), name=ref.name or "", label=describe_ref(ref))
    raise AudioError("A005", f"cannot read {what} given as {ref.kind}")


def _refused(url: str, what: str, allow_remote: tuple[str, ...]) -> str:
    """Why a URL is not fetched, and what would fetch it (object stores only)."""
    shown = url[:120]
    if not objstore.is_remote(url):
        return f"{what} is a URL ({shown}); download it first: audiodata fetches only from object stores the user allows"
    allow = objstore.suggest_prefix(url)
    given = f" (allowed: {', '.join(allow_remote)})" if allow_remote else ""
    return f"{what} is a remote object ({shown}) outside the allowed prefixes{given}; --allow-remote {allow} would fetch it"


def _local_form(raw: str) -> bool:
    """A path that names a local file even under a remote media root: absolute, or from the home folder."""
    return raw.startswith(("/", "~"))


def _remote_path(raw: str, media_root: str) -> str:
    """``raw`` under the remote ``media_root``; it may not leave it (A002), as a local relative path may not."""
    root = media_root.rstrip("/")
    url = objstore.join(root, raw)
    if not url.startswith(root + "/"):
        raise AudioError("A002", f"path {raw} resolves to {url}, outside the media root {root}")
    return url


def _remote_source(ref: MediaRef, url: str, max_bytes: int, what: str) -> AudioSource:
    """An object's bytes, bounded before they are fetched; failures (after the retries) are the record's finding."""
    label = describe_ref(ref)
    try:
        data = objstore.read_bytes(url, None if ref.segment is not None else max_bytes)
    except objstore.TooLarge as exc:
        raise AudioError("A011", f"{what} file of {exc.size} bytes exceeds --max-audio-bytes {max_bytes}") from None
    except FileNotFoundError:
        raise AudioError("A001", f"{what} file not found: {label} (looked for {url})") from None
    except PermissionError as exc:
        raise AudioError("A005", f"{label} cannot be read: {objstore.reason(exc)}") from None
    except (objstore.RemoteFault, objstore.MissingExtra) as exc:
        raise AudioError("A005", f"{label} cannot be read: {exc}") from None
    name = url.rsplit("/", 1)[-1]
    return AudioSource(data=data, name=name, label=label)


def read_error(exc: OSError, label: str, what: str = "audio") -> AudioError:
    """The record's finding for a file that fails between resolving and decoding: gone (A001), or
    unreadable (A005: permissions, EIO, a stale NFS handle), named by the reference, never by path."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return AudioError("A001", f"{what} file {label} disappeared before it could be read")
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return AudioError("A005", f"{label} cannot be read: {reason}")


def open_binary(path: Path, label: str, what: str = "audio") -> io.BufferedReader:
    """Open a regular file for reading without ever blocking: a path that became a FIFO or a device
    since it was resolved is refused (``O_NONBLOCK`` keeps a FIFO's open from waiting for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise read_error(exc, label, what) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AudioError("A005", f"{what} {label} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class MediaFile:
    """A source opened once for the decoders (libsndfile, then FFmpeg on the same handle).

    An ``OSError`` while reading (EIO, a stale NFS handle) would otherwise unwind through a C
    callback, where libsndfile prints a traceback and sees end of file: it is kept here instead,
    reads return end of file, and :meth:`check` raises it as the record's :class:`AudioError`."""

    def __init__(self, src: AudioSource, what: str = "audio") -> None:
        self.label, self.what = src.label, what
        self.error: OSError | None = None
        self._fh: Any = io.BytesIO(src.data or b"") if src.path is None else open_binary(src.path, src.label, what)

    def _failed(self, exc: OSError) -> None:
        self.error = self.error or exc

    def read(self, size: int = -1) -> bytes:
        if self.error is None:
            try:
                return self._fh.read(size)
            except OSError as exc:
                self._failed(exc)
        return b""

    def readinto(self, buf: bytearray | memoryview) -> int:
        if self.error is None:
            try:
                return self._fh.readinto(buf) or 0
            except OSError as exc:
                self._failed(exc)
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        """A seek a corrupt header asks for (negative, past the end) fails softly: the position stays."""
        try:
            return self._fh.seek(offset, whence)
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EINVAL, None):
                self._failed(exc)
            return self.tell()

    def tell(self) -> int:
        try:
            return self._fh.tell()
        except OSError as exc:
            self._failed(exc)
            return 0

    def seekable(self) -> bool:
        return True

    def head(self, size: int = 4096) -> bytes:
        """The first ``size`` bytes, leaving the position at the start (before a library opens it)."""
        self.seek(0)
        data = self.read(size)
        self.seek(0)
        return data

    def descriptor(self) -> int | None:
        """The file's OS descriptor at offset 0 for libsndfile to read itself (C reads, no Python call per read),
        or None for bytes in memory or a file object that is not a plain OS file. Call :meth:`resync` when the
        library is done: it moved the descriptor under this object's buffer."""
        if type(self._fh) is not io.BufferedReader:
            return None
        self.resync()
        return self._fh.fileno()

    def resync(self) -> None:
        """Drop the buffer and put the descriptor back at offset 0 (a seek to the end always reaches the OS;
        one to 0 inside the buffer would not)."""
        self.seek(0, os.SEEK_END)
        self.seek(0)

    def surface_error(self, chunk: int = 1 << 20) -> None:
        """Read the file through this object to the end, so a failure the library saw only as "System error"
        (its own reads of :meth:`descriptor`) is caught with its errno; :meth:`check` then raises it."""
        self.resync()
        while self.error is None and self.read(chunk):
            pass
        self.seek(0)

    def check(self) -> None:
        """Raise the read failure, if any, as the record's finding."""
        if self.error is not None:
            raise read_error(self.error, self.label, self.what)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
