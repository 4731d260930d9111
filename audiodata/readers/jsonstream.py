"""Stream records out of JSON files without loading them whole.

A 2,000-hour corpus with inline base64 audio can be a single multi-GB JSON array,
so arrays are cut into elements by a small scanner (regex jumps over long strings)
and each element is parsed alone. JSONL is read line by line. gzip is detected by
its magic bytes. Every item carries its 0-based index and the 1-based line where it
starts; malformed text comes back as an item with an error, never as an exception.

Hostile input is bounded here, once, for every command:

- Files are read as bytes and cut into records before anything is decoded, so a record
  over ``--max-record-bytes`` is drained in binary (never decoded, never joined) and a run
  of blank lines or whitespace is skipped at C speed: time is bounded by bytes.
- A gzip input may expand to at most ``GzipBounds.max_bytes`` and, past the first
  ``RATIO_AFTER`` bytes, to at most ``max_ratio`` times the compressed bytes read (F008).
- Any failure of one record's parse (a syntax error, a 5000-digit integer, nesting 100k
  deep, a lone surrogate) is that record's F001; only failures of the file itself (cannot
  open, not a regular file, UTF-16/32, a gzip bomb, a stream that breaks mid-file) are
  file-level, and each of those is one item: at index -1 when nothing was read, else at
  the index and line where reading stopped, the records before it kept.
"""

from __future__ import annotations

import bisect
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson

from audiodata.errtext import library_error
from audiodata.readers.rawfile import FileFailure, GzipBounds, Source

CHUNK = 1 << 20
SLACK = 4096


@dataclass(slots=True)
class RawItem:
    index: int
    line: int
    obj: Any = None
    raw: str | None = None  # the text, kept only when it failed to parse
    text: str | None = None  # the text not yet parsed (lazy reading: a worker parses it)
    error: str | None = None  # "F001: ..." style reason when parsing failed
    code: str | None = None
    nbytes: int = 0
    field: str = ""  # where in the record the parse failed, when known (a lone surrogate)
    member: str | None = None  # inputs without lines: where inside the input (a tar member, "row 12")
    stopped: bool = False  # a failure of the file itself read in a byte range (iter_range): reading stopped here



@dataclass(slots=True)
class Cursor:
    """Where a reader is: the index of the next record and the line reading has reached
    (where a file-level failure is located)."""

    index: int = 0
    line: int = 1



def _layout(head: bytes, name: str) -> str:
    head = head.lstrip()
    if not head.startswith(b"["):
        return "lines"
    if name.endswith((".jsonl", ".jsonl.gz")):
        first = head.split(b"\n", 1)[0].strip()
        return "array" if first == b"[" else "lines"
    return "array"


def sniff_layout(path: Path) -> str:
    """'array' for a JSON array, 'lines' for JSONL (or one object per file). A ``.jsonl`` file
    whose first record happens to be a JSON list is still JSONL (that record is then F002).
    A file that cannot be read is 'lines' (reading it says why)."""
    try:
        with Source(path) as src:
            return _layout(src.stream().read(4096), path.name)
    except Exception:
        return "lines"


# -- one record --------------------------------------------------------------------------------

_DIGITS = re.compile(r"\d{4301,}")
#: orjson reads integers of up to 18 digits exactly; a longer one (beyond 64 bits) it turns into a float, where
#: ``json`` keeps the int. Digits map to "0" and every other byte to " ": a run of 19 zeros is such a run of digits.
_DIGIT_RUNS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value and the same exception, at orjson's speed where both agree.

    orjson reads RFC 8259 JSON to the same dicts, lists, strings, ints and floats as ``json``, and refuses
    what ``json`` accepts beyond it: NaN and Infinity, lone surrogate escapes, 1e400 (an infinite float),
    nesting past 1024 levels. Whatever orjson refuses is read again by ``json``, so a record ``json`` reads
    is read the same, and one it cannot read fails with ``json``'s own message and column (the F001
    reason). A text with a run of 19 or more digits goes to ``json`` alone (orjson makes floats of
    integers past 64 bits). ``tests/readers/test_fast_json.py`` checks the equivalence by property tests.
    """
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate in the text itself: json decides
        return json.loads(text)
    if _LONG_RUN in data.translate(_DIGIT_RUNS):
        return json.loads(text)
    try:
        return orjson.loads(data)
    except Exception:  # not JSON to orjson: json says whether it is, and if not, why and where
        return json.loads(text)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _why(exc: Exception, text: str) -> tuple[str, str]:
    """(reason, where) for a record json.loads could not read."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg, f" (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return f"nested too deep to parse (audiodata reads records up to {MAX_NESTING} levels)", ""
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        m = _DIGITS.search(text)
        where = f" (column {m.start() + 1})" if m else ""
        digits = len(m.group()) if m else 0
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        return f"an integer of {digits or 'over ' + str(limit)} digits (Python reads at most {limit})", where
    if isinstance(exc, MemoryError):
        return "out of memory while parsing", ""
    return library_error(exc) or type(exc).__name__, ""


#: The deepest record read. Real records nest a few levels (messages, content items, tool schemas);
#: past this, every later stage (schema, copies, pickling to workers, --fix) stays far from Python's
#: recursion limit, so nesting is one located F001 here and never a RecursionError there.
MAX_NESTING = 100


def nesting(obj: Any, stop: int = 10 * MAX_NESTING) -> int:
    """How deep lists and objects nest in ``obj`` (a scalar: 0), counted up to ``stop``; no recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(obj, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            if depth > deepest:
                deepest = depth
                if deepest >= stop:
                    return deepest
            todo.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def lone_surrogate(obj: Any) -> str | None:
    """The field holding a lone UTF-16 surrogate (``"\\ud800"`` in JSON is not text), or None.
    Walks without recursion: the object may be as deep as the parser allowed."""
    todo: list[tuple[Any, str]] = [(obj, "")]
    while todo:
        value, where = todo.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where or "(the record)"
        elif isinstance(value, dict):
            for k, v in value.items():
                name = f"{where}.{k}" if where else str(k)
                if _SURROGATE.search(k):
                    return name
                todo.append((v, name))
        elif isinstance(value, list):
            todo.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
    return None


def _parse(index: int, line: int, text: str, max_chars: int, lazy: bool = False) -> RawItem:
    if lazy and len(text) <= max_chars:  # checked and stripped when parsed (in a worker)
        return RawItem(index, line, text=text, nbytes=len(text))
    text = text.strip()
    if len(text) > max_chars:
        return _too_large(index, line, len(text.encode("utf-8", "surrogatepass")), max_chars)
    try:
        obj = loads(text)
    except Exception as exc:  # whatever the parser raises, it is this record's F001, never the run's end
        msg, where = _why(exc, text)
        return RawItem(index, line, raw=text, code="F001", error=f"invalid JSON: {msg}{where}")
    if text.count("[") + text.count("{") > MAX_NESTING:  # only then can it be nested that deep: walk it
        depth = nesting(obj)
        if depth > MAX_NESTING:
            msg = f"invalid JSON: nested {depth if depth <= 10 * MAX_NESTING else 'over ' + str(10 * MAX_NESTING)} levels deep"
            return RawItem(index, line, raw=text, code="F001", error=f"{msg} (audiodata reads records up to {MAX_NESTING})")
    if "\\u" in text and re.search(r"\\u[dD][89a-fA-F]", text):  # only escapes make surrogates
        field = lone_surrogate(obj)
        if field is not None:
            msg = f"invalid JSON: a lone UTF-16 surrogate escape in {field} (not a character; encode it as a pair or as UTF-8)"
            return RawItem(index, line, raw=text, code="F001", error=msg, field="" if field.startswith("(") else field)
    return RawItem(index, line, obj=obj, nbytes=len(text))


def parse_text(item: RawItem, max_chars: int) -> RawItem:
    """Finish a lazily read item: parse its text (a no-op for parsed or failed items)."""
    return item if item.text is None else _parse(item.index, item.line, item.text, max_chars)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _too_large(index: int, line: int, size: int, bound: int) -> RawItem:
    return RawItem(index, line, code="F005", error=f"record of {size} bytes exceeds the bound of {bound}")


# -- JSONL -----------------------------------------------------------------------------------

_LEADING_WS = frozenset(b" \t\r\x0b\x0c")  # what bytes.lstrip() strips, but the line feed (data never starts with one here)


def _skip_blank(fh: io.BufferedReader, pos: Cursor, lineno: int) -> int:
    """Consume a run of whitespace (blank lines) without a Python turn per line; the line
    breaks consumed so far (``lineno``) after it."""
    while True:
        buf = fh.peek(CHUNK)
        if not buf:
            return lineno
        k = len(buf) - len(buf.lstrip())  # ASCII whitespace, at C speed
        if k == 0:
            return lineno
        lineno += buf.count(b"\n", 0, k)
        pos.line = lineno + 1
        fh.read(k)
        if k < len(buf):
            return lineno


def iter_lines(
    fh: io.BufferedReader, max_chars: int, lazy: bool = False, pos: Cursor | None = None, index: int = 0, lineno: int = 0
) -> Iterator[RawItem]:
    """JSONL: one record per non-blank line (lines end with ``\\n``, as in JSON Lines).
    ``max_chars`` bounds a line's bytes: a longer one is drained undecoded (F005). ``index``/``lineno``:
    the records and line breaks before ``fh``'s first byte (a byte range of a file: :func:`open_range`)."""
    pos = pos if pos is not None else Cursor()
    limit = max_chars + 2  # room for the record and its line ending
    while True:
        start = lineno + 1
        pos.index, pos.line = index, start
        data = fh.readline(limit)
        if not data:
            return
        if data[0] in _LEADING_WS and not data.isspace():
            # leading whitespace is not the record's (parsing strips it), as when a blank run before it ate it
            # (_skip_blank): cut here, so a line's bound and size never depend on where a byte range began
            rest = data.lstrip()
            if not rest.endswith(b"\n") and len(data) >= limit:
                rest += fh.readline(limit - len(rest))
            data = rest
        if data.endswith(b"\n"):
            lineno += 1
        elif len(data) >= limit:  # an oversized line
            if data.isspace():  # a whitespace run, not a record
                lineno = _skip_blank(fh, pos, lineno)
                continue
            size = len(data)
            while data and not data.endswith(b"\n"):  # drained in binary: never decoded, never joined
                data = fh.readline(CHUNK)
                size += len(data)
            lineno += data.endswith(b"\n")
            yield _too_large(index, start, size, max_chars)
            index += 1
            continue
        if data.isspace():
            lineno = _skip_blank(fh, pos, lineno)
            continue
        item = line_item(data, index, start, max_chars, lazy)
        if item is not None:
            yield item
            index += 1


def line_item(data: bytes, index: int, line: int, max_chars: int, lazy: bool = False) -> RawItem | None:
    """The item of one JSON line (bytes not blank as bytes, within ``max_chars``: :func:`iter_lines` and
    :func:`range_lines` see to both), or None where it is blank once decoded (U+00A0, U+0085, \\x1c-\\x1f: no record)."""
    text = _decode(data)
    if text.isspace():  # never empty (data is not), so = not strip()
        return None
    return _parse(index, line, text, max_chars, lazy)


# -- JSON arrays -----------------------------------------------------------------------------

_OUT = re.compile(rb'["\[\]{},]')
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # after the opening quote: jumped over in C
_IN = re.compile(rb'["\\]')
_WS = re.compile(rb"[ \t\r\n\x0b\x0c]*")
_GAP = re.compile(rb"[ \t\r\n,]*")  # between elements: whitespace and stray commas, skipped at C speed
_QUOTE, _OPEN_LIST, _OPEN_OBJ, _CLOSE_LIST, _CLOSE_OBJ, _COMMA = b'"[{]},'


def iter_array(fh: io.BufferedReader, max_chars: int, lazy: bool = False, pos: Cursor | None = None) -> Iterator[RawItem]:
    """Elements of a top-level JSON array, each parsed on its own. The scanner works on bytes
    (no UTF-8 sequence contains an ASCII byte), so an element is decoded only when kept; it
    stops only at strings and brackets, and counts lines in C where it needs them."""
    pos = pos if pos is not None else Cursor()
    depth = 0  # nesting depth; the top-level array is depth 1
    in_str = esc = False
    opened = closed = False
    parts: list[bytes] = []
    size = 0
    in_elem = False
    line = 1  # the line at offset ``mark`` of the current chunk
    start_line = 1
    index = 0

    limit = max_chars + SLACK  # whitespace around an element does not count toward the bound

    def take(piece: bytes) -> None:
        nonlocal size
        size += len(piece)
        if size <= limit:
            parts.append(piece)

    def finish() -> RawItem:
        nonlocal parts, size, in_elem, index
        item = (
            _too_large(index, start_line, size, max_chars)
            if size > limit
            else _parse(index, start_line, _decode(b"".join(parts)).strip(), max_chars, lazy)
        )
        parts, size, in_elem = [], 0, False
        index += 1
        pos.index = index
        return item

    for chunk in iter(lambda: fh.read(CHUNK), b""):
        pos.line = line
        mark = 0
        i, n = 0, len(chunk)
        while i < n:
            if esc:  # the byte after a backslash, possibly in a new chunk
                take(chunk[i : i + 1])
                i += 1
                esc = False
                continue
            if in_str:  # a string the chunk boundary cut
                m = _IN.search(chunk, i)
                if m is None:
                    take(chunk[i:])
                    break
                j = m.end()
                take(chunk[i:j])
                if chunk[j - 1] == 0x5C:  # backslash
                    esc = True
                else:
                    in_str = False
                i = j
                continue
            if not opened or closed:
                k = _WS.match(chunk, i).end()  # type: ignore[union-attr]
                if k >= n:
                    break
                line += chunk.count(b"\n", mark, k)
                mark = k
                if closed or chunk[k] != _OPEN_LIST:
                    tail = _decode((chunk[k : k + 1000] + (fh.read(1000) if n - k < 1000 else b"")).strip()[:1000])
                    why = "text after the closing ]" if closed else "not a JSON array"
                    yield RawItem(index, line, raw=tail, code="F001", error=f"invalid JSON: {why}")
                    return
                opened, depth = True, 1
                i = k + 1
                continue
            if not in_elem:
                i = _GAP.match(chunk, i).end()  # type: ignore[union-attr]  # no copy of the chunk's rest per element
                if i >= n:
                    break
                if chunk[i] == _CLOSE_LIST:
                    closed = True
                    i += 1
                    continue
                line += chunk.count(b"\n", mark, i)
                mark = i
                in_elem, start_line = True, line
            m = _OUT.search(chunk, i)
            if m is None:
                take(chunk[i:])
                break
            j, e = m.span()
            ch = chunk[j]
            if ch == _QUOTE:
                rest = _STRING_REST.match(chunk, e)
                in_str = rest is None  # the string goes on in the next chunk
                if rest is not None:
                    e = rest.end()
                take(chunk[i:e])
            elif ch in (_OPEN_LIST, _OPEN_OBJ):
                take(chunk[i:e])
                depth += 1
            elif depth == 1 and ch != _CLOSE_OBJ:  # ',' or ']' at the top level closes the element
                take(chunk[i:j])
                yield finish()
                e = j
            else:
                if depth > 1 and ch != _COMMA:
                    depth -= 1
                take(chunk[i:e])  # a stray '}' at the top level stays in the element (which is then F001)
            i = e
        line += chunk.count(b"\n", mark, n)
    pos.line = line
    if in_elem or (opened and not closed):
        if in_elem and b"".join(parts).strip():
            raw = _decode(b"".join(parts)[:100000])
            yield RawItem(index, start_line, raw=raw, code="F001", error="invalid JSON: the array is truncated")
        elif not closed:
            yield RawItem(index, line, raw="", code="F001", error="invalid JSON: the array is not closed")


# -- files -----------------------------------------------------------------------------------


def iter_file(path: Path, max_chars: int, lazy: bool = False, bounds: GzipBounds | None = None) -> Iterator[RawItem]:
    """Records of one JSON, JSONL or gzipped file, in file order. ``lazy``: leave each
    record's text unparsed (see :func:`parse_text`) so workers can parse in parallel.

    Never raises for the file's sake: a failure of the file itself ends the iteration with
    one item carrying its finding (see the module docstring for where it is located)."""
    pos = Cursor()
    yielded = False
    try:
        with Source(path, bounds) as src:
            layout = _layout(src.stream().read(4096), path.name)
            fh = src.stream(lines=layout == "lines")
            if layout == "array":
                for item in iter_array(fh, max_chars, lazy, pos):
                    yielded = True
                    yield item
                return
            items = iter_lines(fh, max_chars, lazy, pos)
            first = next(items, None)
            if first is None:
                return
            checked = parse_text(first, max_chars)
            if checked.code == "F001" and path.suffix != ".jsonl" and not path.name.endswith(".jsonl.gz"):
                whole = _whole_object(src, max_chars)  # maybe one pretty-printed object
                if whole is not None:
                    yielded = True
                    yield whole
                    return
            yielded = True
            yield first if lazy else checked  # lazy: the text stays unparsed like every other record's
            for item in items:
                yield item
    except Exception as exc:  # the file itself: cannot be opened, not a regular file, a broken stream, a bomb
        yield file_failure(_stopped(exc, path, pos), yielded)


@dataclass(slots=True)
class Window:
    """A byte range of a file opened for reading: its bytes as :func:`iter_lines` reads them, and the records and
    line breaks before them (its first record's index, its first line - 1)."""

    fh: io.BufferedReader
    index: int
    lineno: int


def open_range(src: Source, start: int, end: int, max_chars: int, line: int | None = None) -> Window:
    """Bytes ``[start, end)`` of ``src`` (``start`` a line start: :mod:`audiodata.readers.ranges`) as :func:`iter_lines`
    reads them: lone carriage returns as line ends, at offset 0 past a byte order mark (UTF-16/32: F009), a gzip
    file's decompressed text within its bounds (its offsets are the text's). ``line``: the number of the line at
    ``start``, records indexed from 0, a plain file read from ``start`` on; None: the records and line breaks before
    ``start`` are counted (the bytes before read through, no record parsed), so both are numbered as reading the
    whole file numbers them. The one way :func:`iter_range` opens a range (:func:`range_lines` reads the same window
    at once: :meth:`~audiodata.readers.rawfile.Source.window_bytes`)."""
    if line is not None and not src.gzipped:
        return Window(src.window(start, end), 0, line - 1)
    fh = src.stream(lines=True)
    index, lineno = _count_prefix(fh, max(0, start - src.bom), max_chars)
    if line is not None:
        index, lineno = 0, line - 1
    return Window(io.BufferedReader(_Take(fh, end - max(start, src.bom)), buffer_size=CHUNK), index, lineno)


def iter_range(
    path: Path,
    start: int,
    end: int,
    line: int | None,
    max_chars: int,
    lazy: bool = False,
    bounds: GzipBounds | None = None,
    pos: Cursor | None = None,
) -> Iterator[RawItem]:
    """The records of bytes ``[start, end)`` of a JSON-lines file (:func:`open_range`): exactly the items
    :func:`iter_file` yields for those lines, with the same lines. What the ranges of a cut yield one after another
    is what :func:`iter_file` yields for the whole file.

    ``line`` None (a rank's part): the records and lines before ``start`` are counted, so index and line are the
    whole file's, and a failure of the file is the item :func:`iter_file` yields for it. ``line`` given (the first
    line's number: :func:`audiodata.readers.ranges.split_ranges`): records indexed from 0 (the caller adds the
    records before the range), and a failure of the file is one item with ``stopped`` set, its index and line where
    reading stopped in this range, its error *without* :func:`iter_file`'s "reading stopped here" (the caller knows
    whether records came before it in the file, which decides that text: :func:`file_failure`).

    ``pos``: where reading is (see :class:`Cursor`); once the range is read, ``pos.line - line`` is its line ends."""
    pos = pos if pos is not None else Cursor()
    pos.index, pos.line = 0, line or 1
    try:
        with Source(path, bounds) as src:
            w = open_range(src, start, end, max_chars, line)
            pos.index, pos.line = w.index, w.lineno + 1
            yield from iter_lines(w.fh, max_chars, lazy, pos, w.index, w.lineno)
    except Exception as exc:  # the file itself: cannot be opened, not a regular file, a broken stream, a bomb
        item = _stopped(exc, path, pos)
        yield item if line is not None else file_failure(item, item.index > 0)


def range_lines(path: Path, start: int, end: int, max_chars: int) -> tuple[list[bytes], frozenset[int]] | None:
    """The lines of bytes ``[start, end)`` of a plain JSON-lines file as :func:`iter_range` reads them (the same
    window: byte order mark, encoding, lone carriage returns), for a caller that parses lines itself: each without its
    line end, line ``k`` being the range's first line + ``k`` (after a final line end, an empty last one); with the
    lines :func:`loads` would not give orjson (a run of 19 digits or more: ``json`` decides). None where
    :func:`iter_range` must read the range: a gzip file, a failure (it locates it), a line near ``max_chars`` (it
    bounds it: F005). Blank lines are the caller's to skip (:func:`line_item` for the rest)."""
    try:
        with Source(path) as src:
            if src.gzipped:
                return None
            buf = src.window_bytes(start, end)  # the window open_range opens, read at once
    except Exception:  # iter_range reports it, located
        return None
    if b"\r" in buf:  # only in \r\n now (the window made lone ones line ends); a line's text is stripped when parsed
        buf = buf.replace(b"\r\n", b"\n")
    lines = buf.split(b"\n")
    bound = max_chars - 8  # room for the line end iter_lines counts (a line near the bound: its rules)
    if len(buf) > bound and max(map(len, lines)) > bound:
        return None
    return lines, _long_runs(buf, lines)


def _long_runs(buf: bytes, lines: list[bytes]) -> frozenset[int]:
    """The lines of ``buf`` (split into ``lines``) that hold a run of 19 digits or more."""
    digits = buf.translate(_DIGIT_RUNS)
    at = digits.find(_LONG_RUN)
    if at < 0:
        return frozenset()
    starts = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    found = set()
    while at >= 0:
        found.add(bisect.bisect_right(starts, at) - 1)
        at = digits.find(_LONG_RUN, at + 1)
    return frozenset(found)


class _Take(io.RawIOBase):
    """At most ``n`` bytes of a stream: one byte range of a file."""

    def __init__(self, inner: io.BufferedReader, n: int) -> None:
        self.inner, self.left = inner, max(0, n)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.left <= 0:
            return 0
        data = self.inner.read(min(len(b), self.left))
        b[: len(data)] = data
        self.left -= len(data)
        return len(data)


_BLANKISH = re.compile(rb"^[ \t\r\x0b\x0c\x1c-\x1f\x80-\xff]*\n", re.MULTILINE)  # no line break inside: one line a match


def _count_prefix(fh: io.BufferedReader, nbytes: int, max_chars: int) -> tuple[int, int]:
    """(records, line breaks) in the next ``nbytes`` of ``fh`` (which end at a line start), counted as
    :func:`iter_lines` counts them: a line is a record unless it is blank (ASCII whitespace, or whitespace
    once decoded, when short enough to be decoded)."""
    records = lines = 0
    tail = b""
    left = nbytes
    limit = max_chars + 2
    while left > 0:
        block = fh.read(min(CHUNK, left))
        if not block:
            break
        left -= len(block)
        data = tail + block
        cut = data.rfind(b"\n") + 1
        whole, tail = data[:cut], data[cut:]
        n = whole.count(b"\n")
        blank = 0
        for m in _BLANKISH.finditer(whole):
            line = m.group()
            if line.isspace() or (len(line) <= limit and _decode(line).isspace()):
                blank += 1
        lines += n
        records += n - blank
    return records, lines  # a tail (a prefix not ending at a line start) cannot be: ranges.py cuts at line starts


def splittable(path: Path) -> bool:
    """Whether ``path`` may be read as byte ranges (:func:`iter_range`) with the records, lines and findings
    a whole read gives: a readable plain (not gzip) UTF-8 file of JSON lines. A ``.json`` file whose first
    line does not parse may be one pretty-printed object (:func:`iter_file` reads it whole): not splittable.
    Any failure to open or sniff it: not splittable (the whole read reports it)."""
    try:
        with Source(path) as src:
            if src.gzipped or _layout(src.stream().read(4096), path.name) != "lines":
                return False
            if path.name.endswith(".jsonl"):
                return True
            first = next(iter_lines(src.stream(lines=True), 1 << 20, lazy=True), None)
    except Exception:
        return False
    return first is None or (first.text is not None and parse_text(first, 1 << 20).code is None)


def file_failure(item: RawItem, before: bool) -> RawItem:
    """The item :func:`iter_file` yields for the failure :func:`iter_range` gave as ``item`` (``stopped``); ``before``:
    the file yielded records before it."""
    if not before:
        return RawItem(-1, 0, code=item.code, error=item.error)
    return RawItem(item.index, item.line, code=item.code, error=f"{item.error}{_STOPPED}")


_STOPPED = " (reading stopped here; the records before it are kept)"


def _failure_reason(exc: Exception, path: Path) -> tuple[str, str]:
    if isinstance(exc, FileFailure):
        return exc.code, exc.message
    return "F004", f"cannot read the file: {library_error(exc, path.name, (str(path),))}"


def _stopped(exc: Exception, path: Path, pos: Cursor) -> RawItem:
    """The failure of the file ``exc`` says, where reading stopped (``pos``)."""
    code, reason = _failure_reason(exc, path)
    return RawItem(pos.index, pos.line, code=code, error=reason, stopped=True)


def _whole_object(src: Source, max_chars: int) -> RawItem | None:
    """The file as one (pretty-printed) record, or None. Leaves the file where the line
    reader is, so reading goes on line by line when it is not one object."""
    at = src.raw.tell()
    try:
        data = src.stream().read(max_chars + 1)
    finally:
        src.raw.seek(at)
    if len(data) > max_chars:
        return None
    item = _parse(0, 1, _decode(data), max_chars)
    return item if item.code is None else None
