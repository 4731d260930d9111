"""One input file, opened safely: a regular file only (a FIFO is never waited on), gzip
decompressed within bounds (a bomb is a finding, F008), UTF-16/32 named (F009), lone carriage
returns read as line ends. What :mod:`audiodata.readers.jsonstream` cuts into records comes
from here, as bytes."""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BUFFER = 1 << 20  # bytes a read asks the file for
#: Bytes a gzip input may produce before its expansion ratio is judged: small files of very
#: repetitive records compress far beyond any sane ratio and are no threat.
RATIO_AFTER = 16 * 2**20
#: Defaults of ``--max-decompressed-bytes`` and ``--max-expansion-ratio``: far above real corpora
#: (JSON text gzips 5-20x; base64 audio barely), far below a bomb (gzip reaches 1000x).
MAX_DECOMPRESSED = 64 * 2**30
MAX_RATIO = 100.0


@dataclass(frozen=True, slots=True)
class GzipBounds:
    """How far one gzip input may expand (``--max-decompressed-bytes``, ``--max-expansion-ratio``)."""

    max_bytes: int = MAX_DECOMPRESSED
    max_ratio: float = MAX_RATIO


class FileFailure(Exception):
    """The file itself cannot be read (further): a file-level finding with its own code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def not_regular(kind: str) -> FileFailure:
    return FileFailure("F004", f"not a regular file ({kind}): audiodata reads JSON files")


def open_regular(path: Path) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file. A FIFO is opened non-blocking
    (so no writer is waited for) and refused after ``fstat``; ``/dev/zero`` and sockets are
    refused before anything is read."""
    kind = file_kind(os.stat(path).st_mode)
    if kind is not None:
        raise not_regular(kind)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = file_kind(os.fstat(fd).st_mode)  # replaced by something else since the stat
        if kind is not None:
            raise not_regular(kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return open(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


class _Borrowed(io.RawIOBase):
    """The open file, lent to one pass: closing (or collecting) the pass's reader leaves it open."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self.raw.readinto(b)  # type: ignore[attr-defined]  # typing.IO lacks readinto; binary files (FileIO, BytesIO) have it


class _Gunzip(io.RawIOBase):
    """gzip decompression that stops at the bounds: a decompression bomb is a finding, not 8 GiB.
    Reads what one step of inflating gives (``read1``), so a stream that breaks (truncated,
    corrupt) or hits a bound loses no record before that point."""

    def __init__(self, raw: IO[bytes], bounds: GzipBounds) -> None:
        self.raw, self.bounds = raw, bounds
        self.gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self.out = 0
        self.stop: FileFailure | None = None  # the bound hit: raised once what came before is handed on

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.stop is not None:
            raise self.stop
        data = self.gz.read1(len(b))
        n = len(data)
        b_ = self.bounds
        if self.out + n > b_.max_bytes:
            n = max(b_.max_bytes - self.out, 0)
            why = f"gzip expands past {_size(b_.max_bytes)} (--max-decompressed-bytes): not read further"
            self.stop = FileFailure("F008", why)
        self.out += n
        packed = max(self.raw.tell(), 1)
        if self.stop is None and self.out > RATIO_AFTER and self.out > packed * b_.max_ratio:
            self.stop = FileFailure(
                "F008",
                f"gzip expands more than {b_.max_ratio:g}x ({_size(packed)} to over {_size(self.out)}; "
                "--max-expansion-ratio): a decompression bomb? not read further",
            )
        if n == 0 and self.stop is not None:
            raise self.stop
        b[:n] = data[:n]
        return n


_LONE_CR = re.compile(rb"\r(?!\n)")


def _hand_on(b: Any, held: bytes) -> tuple[int, bytes]:
    """Bytes a reader holds back handed on first: as many of ``held`` as ``b`` takes; (their count, the rest)."""
    n = min(len(b), len(held))
    b[:n] = held[:n]
    return n, held[n:]


class _LoneCR(io.RawIOBase):
    """JSONL with classic Mac line ends: a lone carriage return ends a line, as pyarrow's JSON reader
    (what LLaMA-Factory reads through ``datasets``) and Python's universal newlines take it. Turned
    into ``\n`` byte for byte, so offsets and sizes stay; ``\r\n`` stays one line end. Reads into
    one buffer of its own: no allocation per read (this sits under every JSONL line)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.buf = bytearray(2)
        self.held = False  # a trailing \r whose next byte is not read yet
        self.carry = b""  # bytes turned out but not yet handed on (a read into a 1-byte buffer)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.carry:
            n, self.carry = _hand_on(b, self.carry)
            return n
        if len(b) == 1:  # a held \r needs its next byte beside it: read 2, hand on 1
            two = bytearray(2)
            n = self.readinto(two)
            b[:n and 1], self.carry = two[: n and 1], bytes(two[1:n])
            return min(n, 1)
        want = max(len(b), 2)  # a BufferedReader asks for its buffer size; 2 leaves room for a held \r
        if len(self.buf) < want:
            self.buf = bytearray(want)
        view = memoryview(self.buf)
        while True:
            start = 1 if self.held else 0
            if self.held:
                self.buf[0] = 0x0D
            got = self.inner.readinto(view[start : len(b)]) or 0
            n, self.held = start + got, False
            if n == 0:
                return 0
            if got and self.buf[n - 1] == 0x0D:  # not at the end: the next byte decides whether it is a \r\n
                n, self.held = n - 1, True
                if n == 0:
                    continue
            if self.buf.find(b"\r", 0, n) >= 0:
                b[:n] = _LONE_CR.sub(b"\n", bytes(view[:n]))
            else:
                b[:n] = view[:n]
            return n


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 BE", "UTF-32BE"),
    (b"\xff\xfe\x00\x00", "UTF-32 LE", "UTF-32LE"),
    (b"\xfe\xff", "UTF-16 BE", "UTF-16BE"),
    (b"\xff\xfe", "UTF-16 LE", "UTF-16LE"),
)


#: Without a byte order mark: which bytes of each code unit are NUL when the text is ASCII.
_UNITS = (
    ((True, True, True, False), "UTF-32 BE", "UTF-32BE"),
    ((False, True, True, True), "UTF-32 LE", "UTF-32LE"),
    ((True, False), "UTF-16 BE", "UTF-16BE"),
    ((False, True), "UTF-16 LE", "UTF-16LE"),
)


def wrong_encoding(head: bytes) -> str | None:
    """'the file is UTF-16 LE ...' when ``head`` (the first bytes; 8 are looked at) says UTF-16/32,
    else None. Without a byte order mark the NUL bytes around the first ASCII characters tell
    (RFC 4627, section 3: JSON text starts with ASCII); the pattern must hold over the first 8
    bytes (4 in a shorter file), so a UTF-8 file with a stray NUL is not taken for UTF-16."""
    found = next(((name, iconv, True) for bom, name, iconv in _BOMS if head.startswith(bom)), None)
    if found is None:
        look = head[:8] if len(head) >= 8 else head[:4]
        if len(look) < 4:
            return None
        zeros = tuple(b == 0 for b in look)
        hit = next(((n, i) for unit, n, i in _UNITS if zeros == unit * (len(look) // len(unit))), None)
        if hit is None:
            return None
        found = (*hit, False)
    name, iconv, bom = found
    mark = "with" if bom else "without"
    return f"the file is {name} ({mark} a byte order mark), not UTF-8: re-encode it as UTF-8 (iconv -f {iconv} -t UTF-8)"


def _head(head: bytes) -> int:
    """The bytes of a UTF-8 byte order mark starting a text whose first bytes are ``head`` (3 or 0);
    :class:`FileFailure` (F009) when they say UTF-16/32."""
    if head.startswith(b"\xef\xbb\xbf"):
        return 3
    why = wrong_encoding(head)
    if why is not None:
        raise FileFailure("F009", why)
    return 0


class _Text(io.RawIOBase):
    """The text of ``inner`` past a UTF-8 byte order mark (:func:`_head`; ``skip``: the bytes skipped). Its first
    8 bytes are read whole before anything is handed on: a reader below may return fewer in one read (a lone
    carriage return held back, a gzip block's end), and the encoding check must see the same 8 bytes however
    the text is read (whole, streamed, by window)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        head = bytearray()
        chunk = bytearray(4096)
        while len(head) < 8:
            got = inner.readinto(chunk) or 0
            if got == 0:
                break
            head += chunk[:got]
        self.skip = _head(bytes(head[:8]))
        self.pending = bytes(head[self.skip :])

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.pending:
            n, self.pending = _hand_on(b, self.pending)
            return n
        return self.inner.readinto(b) or 0


class _Window(io.RawIOBase):
    """Bytes ``[start, end)`` of an open file, read with its own offset (the descriptor's position is moved)."""

    def __init__(self, raw: IO[bytes], start: int, end: int) -> None:
        self.raw, self.pos, self.end = raw, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        want = min(len(b), self.end - self.pos)
        if want <= 0:
            return 0
        self.raw.seek(self.pos)
        n = self.raw.readinto(memoryview(b)[:want]) or 0  # type: ignore[attr-defined]  # binary files have readinto
        self.pos += n
        return n


class Source:
    """One input file, opened once: every pass over it (sniffing the layout, reading, re-reading
    one pretty-printed object) rewinds the same descriptor, so a file removed meanwhile is
    still the file that was opened."""

    def __init__(self, path: Path, bounds: GzipBounds | None = None) -> None:
        self.raw = open_regular(path)
        self.bounds = bounds or GzipBounds()
        self.bom = 0  # the byte order mark's bytes the last text read from offset 0 skipped (3 or 0)
        try:
            self.gzipped = self.raw.read(2) == b"\x1f\x8b"
        except BaseException:
            self.raw.close()
            raise

    def stream(self, lines: bool = False) -> io.BufferedReader:
        """The decompressed bytes from the start, past a UTF-8 byte order mark; ``lines``: with
        lone carriage returns as line ends. Raises :class:`FileFailure` (F009) for UTF-16/32 text."""
        self.raw.seek(0)
        inner: Any = _Gunzip(self.raw, self.bounds) if self.gzipped else _Borrowed(self.raw)
        if lines:
            inner = _LoneCR(inner)
        text = _Text(inner)
        self.bom = text.skip
        return io.BufferedReader(text, buffer_size=max(BUFFER, io.DEFAULT_BUFFER_SIZE))

    def window(self, start: int, end: int) -> io.BufferedReader:
        """Bytes ``[start, end)`` of a plain (not gzip) file, read as ``stream(lines=True)`` reads them: lone
        carriage returns as line ends, and at offset 0 the byte order mark and encoding checks. ``start``
        must be a line start (:func:`audiodata.readers.ranges.split_ranges`), so no ``\\r\\n`` is cut."""
        inner: Any = _LoneCR(_Window(self.raw, start, end))
        if start == 0:
            inner = _Text(inner)
            self.bom = inner.skip
        return io.BufferedReader(inner, buffer_size=max(BUFFER, io.DEFAULT_BUFFER_SIZE))

    def window_bytes(self, start: int, end: int) -> bytes:
        """What :meth:`window` reads, at once (no stream: a reader that takes a whole range as bytes)."""
        self.raw.seek(start)
        parts, left = [], end - start
        while left > 0:
            got = self.raw.read(left)
            if not got:
                break
            parts.append(got)
            left -= len(got)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if start == 0:
            self.bom = _head(data[:8])
            data = data[self.bom :]
        return _LONE_CR.sub(b"\n", data) if b"\r" in data else data

    def binary(self) -> io.BufferedReader:
        """The decompressed bytes from the start, as they are (a tar shard: no text checks), within the gzip bounds."""
        self.raw.seek(0)
        inner: Any = _Gunzip(self.raw, self.bounds) if self.gzipped else _Borrowed(self.raw)
        return io.BufferedReader(inner, buffer_size=max(BUFFER, io.DEFAULT_BUFFER_SIZE))

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
