"""Stream records out of JSON files without loading them whole.

A 2,000-hour corpus with inline base64 audio can be a single multi-GB JSON array,
so arrays are cut into elements by a small scanner (regex jumps over long strings)
and each element is parsed alone. JSONL is read line by line. gzip is detected by
its magic bytes. Every item carries its 0-based index and the 1-based line where it
starts; malformed text comes back as an item with an error, never as an exception.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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


def open_text(path: Path) -> TextIO:
    """Open a JSON/JSONL file as text, transparently gunzipping it."""
    fh = open(path, "rb")
    head = fh.read(2)
    fh.seek(0)
    binary: Any = gzip.GzipFile(fileobj=fh) if head == b"\x1f\x8b" else fh
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")


def sniff_layout(path: Path) -> str:
    """'array' for a JSON array, 'lines' for JSONL (or one object per file). A ``.jsonl`` file
    whose first record happens to be a JSON list is still JSONL (that record is then F002)."""
    with open_text(path) as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith("["):
        return "lines"
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        first = head.split("\n", 1)[0].strip()
        return "array" if first == "[" else "lines"
    return "array"


def _parse(index: int, line: int, text: str, max_chars: int, lazy: bool = False) -> RawItem:
    if lazy and len(text) <= max_chars:  # checked and stripped when parsed (in a worker)
        return RawItem(index, line, text=text, nbytes=len(text))
    text = text.strip()
    if len(text) > max_chars:
        return RawItem(index, line, code="F005", error=f"record of {len(text)} characters exceeds the bound of {max_chars}")
    try:
        return RawItem(index, line, obj=json.loads(text), nbytes=len(text))
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nesting too deep"
        where = f" (column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return RawItem(index, line, raw=text, code="F001", error=f"invalid JSON: {msg}{where}")


def parse_text(item: RawItem, max_chars: int) -> RawItem:
    """Finish a lazily read item: parse its text (a no-op for parsed or failed items)."""
    return item if item.text is None else _parse(item.index, item.line, item.text, max_chars)


def iter_lines(fh: TextIO, max_chars: int, lazy: bool = False) -> Iterator[RawItem]:
    """JSONL: one record per non-blank line."""
    index = 0
    lineno = 0
    while True:
        text = fh.readline(max_chars + 2)  # room for the record and its line ending
        if not text:
            return
        lineno += 1
        start = lineno
        if len(text) > max_chars + 1 and not text.endswith("\n"):
            size = len(text)
            while text and not text.endswith("\n"):  # drain the oversized line
                text = fh.readline(CHUNK)
                size += len(text)
            yield RawItem(index, start, code="F005", error=f"record of {size} characters exceeds the bound of {max_chars}")
            index += 1
            continue
        if not text.strip():
            continue
        yield _parse(index, start, text, max_chars, lazy)
        index += 1


_OUT = re.compile(r'["\[\]{},\n]')
_IN = re.compile(r'["\\\n]')


def iter_array(fh: TextIO, max_chars: int, lazy: bool = False) -> Iterator[RawItem]:
    """Elements of a top-level JSON array, each parsed on its own."""
    depth = 0  # nesting depth; the top-level array is depth 1
    in_str = esc = False
    opened = closed = False
    parts: list[str] = []
    size = 0
    in_elem = False
    start_line = line = 1
    index = 0

    limit = max_chars + SLACK  # whitespace around an element does not count toward the bound

    def take(piece: str) -> None:
        nonlocal size
        size += len(piece)
        if size <= limit:
            parts.append(piece)

    def finish() -> RawItem:
        nonlocal parts, size, in_elem, index
        text = "".join(parts).strip()
        item = (
            RawItem(index, start_line, code="F005", error=f"record of {size} characters exceeds the bound of {max_chars}")
            if size > limit
            else _parse(index, start_line, text, max_chars, lazy)
        )
        parts, size, in_elem = [], 0, False
        index += 1
        return item

    for chunk in iter(lambda: fh.read(CHUNK), ""):
        i, n = 0, len(chunk)
        while i < n:
            if esc:  # the character after a backslash, possibly in a new chunk
                take(chunk[i])
                i += 1
                esc = False
                continue
            if in_str:
                m = _IN.search(chunk, i)
                if m is None:
                    take(chunk[i:])
                    break
                j = m.end()
                ch = m.group()
                take(chunk[i:j])
                if ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
                else:
                    line += 1
                i = j
                continue
            if not opened:
                stripped = chunk[i:].lstrip()
                line += chunk.count("\n", i, n - len(stripped))
                if not stripped:
                    break
                if stripped[0] != "[":
                    raise ValueError("not a JSON array")
                opened, depth = True, 1
                i = n - len(stripped) + 1
                continue
            if closed:
                rest = chunk[i:]
                stripped = rest.lstrip()
                line += rest.count("\n", 0, len(rest) - len(stripped))
                if stripped:
                    tail = (stripped + fh.read(1000)).strip()[:1000]
                    yield RawItem(index, line, raw=tail, code="F001", error="invalid JSON: text after the closing ]")
                    return
                break
            if not in_elem:
                stripped = chunk[i:].lstrip(" \t\r\n")
                line += chunk.count("\n", i, n - len(stripped))
                i = n - len(stripped)
                if i >= n:
                    break
                if chunk[i] == ",":
                    i += 1
                    continue
                if chunk[i] == "]" and depth == 1:
                    closed = True
                    i += 1
                    continue
                in_elem, start_line = True, line
            m = _OUT.search(chunk, i)
            if m is None:
                take(chunk[i:])
                break
            j = m.start()
            ch = m.group()
            if ch == "\n":
                take(chunk[i : j + 1])
                line += 1
                i = j + 1
            elif ch == '"':
                take(chunk[i : j + 1])
                in_str = True
                i = j + 1
            elif ch in "[{":
                take(chunk[i : j + 1])
                depth += 1
                i = j + 1
            elif depth == 1:  # ',' or ']' at the top level closes the element
                take(chunk[i:j])
                yield finish()
                i = j
            else:
                if ch in "]}":
                    depth -= 1
                take(chunk[i : j + 1])
                i = j + 1
    if in_elem or (opened and not closed):
        if in_elem and "".join(parts).strip():
            yield RawItem(
                index, start_line, raw="".join(parts)[:100000], code="F001", error="invalid JSON: the array is truncated"
            )
        elif not closed:
            yield RawItem(index, line, raw="", code="F001", error="invalid JSON: the array is not closed")


def iter_file(path: Path, max_chars: int, lazy: bool = False) -> Iterator[RawItem]:
    """Records of one JSON, JSONL or gzipped file, in file order. ``lazy``: leave each
    record's text unparsed (see :func:`parse_text`) so workers can parse in parallel."""
    layout = sniff_layout(path)
    with open_text(path) as fh:
        if layout == "array":
            yield from iter_array(fh, max_chars, lazy)
            return
        items = iter_lines(fh, max_chars, lazy)
        first = next(items, None)
        if first is None:
            return
        checked = parse_text(first, max_chars)
        if checked.code == "F001" and path.suffix != ".jsonl" and not path.name.endswith(".jsonl.gz"):
            whole = _whole_object(path, max_chars)  # maybe one pretty-printed object
            if whole is not None:
                yield whole
                return
        yield first if lazy else checked  # lazy: the text stays unparsed like every other record's
        yield from items


def _whole_object(path: Path, max_chars: int) -> RawItem | None:
    with open_text(path) as fh:
        text = fh.read(max_chars + 1)
    if len(text) > max_chars:
        return None
    try:
        return RawItem(0, 1, obj=json.loads(text), nbytes=len(text))
    except json.JSONDecodeError:
        return None
