"""WebDataset tar shards: samples of consecutive members sharing a key (``{key}.flac`` + ``{key}.json``
or ``{key}.txt``), streamed member by member (``tarfile`` in stream mode: a shard is never seeked,
extracted or held whole), and shard lists written as brace patterns (``shard-{000..009}.tar``).

Each sample becomes one row: the fields of its ``.json`` member (an object), the audio member as
``audio`` (``{bytes, path}``, bytes as stored), a ``.txt`` member as ``text`` (when the JSON has no
``text``; else as ``txt``) and the key as ``id`` (unless the JSON has one) and ``__key__``. Rows are
located by member (``shard-000.tar:utt-0003.flac``), so a reject names the tar and the member.
"""

from __future__ import annotations

import itertools
import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.errtext import library_error
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.rawfile import FileFailure, GzipBounds, Source

SUFFIXES = (".tar", ".tar.gz", ".tgz")
AUDIO_EXTS = ("flac", "wav", "mp3", "ogg", "opus", "m4a", "webm")
TEXT_EXTS = ("txt", "text", "transcript")

#: WebDataset's ``base_plus_ext``: the key is the path up to the first dot of the file name.
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


def is_tar(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def split_name(name: str) -> tuple[str, str] | None:
    """(key, extension) of a member name, as WebDataset splits it; None for a name with no extension."""
    m = _KEY.match(name)
    return (m.group(1), m.group(2).lower()) if m else None


def iter_samples(path: Path, max_bytes: int, bounds: GzipBounds | None = None) -> Iterator[RawItem]:
    """Every sample of one shard as a parsed row (``RawItem.member``: its audio member, else its first).
    A sample over ``max_bytes`` is F005 and its data is skipped, never read; a damaged or truncated tar
    ends with one F004 item located where reading stopped (the samples before it are kept); a gzipped one is
    decompressed within ``bounds`` (F008 past them), as JSON inputs are."""
    index = 0
    members: list[tuple[str, str, bytes | None]] = []  # (name, ext, data); data None past max_bytes
    key: str | None = None
    size = 0
    try:
        with Source(path, bounds) as src, tarfile.open(fileobj=src.binary(), mode="r|*") as tar:  # a .tar.gz bomb: F008
            for info in tar:
                if not info.isfile():
                    continue
                parts = split_name(info.name)
                if parts is None:
                    continue
                if parts[0] != key and members:
                    yield _sample(index, key or "", members, size, max_bytes)
                    index += 1
                    members, size = [], 0
                key = parts[0]
                size += info.size
                data = None
                if size <= max_bytes:
                    fh = tar.extractfile(info)
                    data = fh.read() if fh is not None else b""
                members.append((info.name, parts[1], data))
            if members:
                yield _sample(index, key or "", members, size, max_bytes)
    except (tarfile.TarError, OSError, EOFError, zlib.error, FileFailure) as exc:
        if isinstance(exc, FileFailure):
            code, reason = exc.code, exc.message
        else:
            code, reason = "F004", f"cannot read the tar: {library_error(exc, path.name, (str(path),))}"
        at = members[0][0] if members else None
        if index or members:
            reason += " (reading stopped here; the samples before it are kept)"
        yield RawItem(index if index or members else -1, 0, code=code, error=reason, member=at)


def _sample(index: int, key: str, members: list[tuple[str, str, bytes | None]], size: int, max_bytes: int) -> RawItem:
    audio = next((m for ext in AUDIO_EXTS for m in members if m[1] == ext), None)
    where = audio[0] if audio else members[0][0]
    if size > max_bytes:
        names = ", ".join(m[0] for m in members)
        return RawItem(
            index, 0, code="F005", error=f"sample of {size} bytes ({names}) exceeds the bound of {max_bytes}", member=where
        )
    row: dict[str, Any] = {}
    for name, ext, data in members:
        if ext == "json":
            try:
                value = json.loads((data or b"").decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                raw = (data or b"")[:100000].decode("utf-8", "replace")
                return RawItem(index, 0, raw=raw, code="F001", error=f"invalid JSON in {name}: {library_error(exc)}", member=name)
            if not isinstance(value, dict):
                return RawItem(
                    index, 0, code="F002", error=f"{name} is a JSON {type(value).__name__}, not an object", member=name
                )
            row.update(value)
    for _, ext, data in members:
        if ext in TEXT_EXTS:
            text = (data or b"").decode("utf-8", "replace").strip()
            row["txt" if "text" in row else "text"] = text
    if audio is not None:
        row["audio"] = {"bytes": audio[2], "path": audio[0]}
    row.setdefault("id", key.rsplit("/", 1)[-1])
    row["__key__"] = key
    return RawItem(index, 0, obj=row, member=where)


# -- brace patterns --------------------------------------------------------------------------------

_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_EXPANSION = 100_000


def expand_braces(pattern: str) -> list[str]:
    """``shard-{000..009}.tar`` -> ten names (zero padding kept), ``{train,dev}`` -> two; several groups
    multiply, as in the shell and WebDataset. A pattern with no group is itself. Raises ValueError for a
    pattern naming more than :data:`MAX_EXPANSION` names."""
    groups = list(_BRACE.finditer(pattern))
    if not groups:
        return [pattern]
    choices: list[list[str]] = []
    total = 1
    for g in groups:
        body = g.group(1)
        m = _RANGE.match(body)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            width = len(m.group(1)) if m.group(1).lstrip("-").startswith("0") else 0
            step = 1 if b >= a else -1
            options = [str(n).zfill(width) for n in range(a, b + step, step)]
        else:
            options = body.split(",")
        total *= len(options)
        if total > MAX_EXPANSION:
            raise ValueError(f"{pattern}: names more than {MAX_EXPANSION} files")
        choices.append(options)
    pieces = [pattern[: groups[0].start()]]
    for i, g in enumerate(groups):
        end = groups[i + 1].start() if i + 1 < len(groups) else len(pattern)
        pieces.append(pattern[g.end() : end])
    return ["".join(p + c for p, c in zip(pieces, (*combo, ""), strict=True)) for combo in itertools.product(*choices)]
