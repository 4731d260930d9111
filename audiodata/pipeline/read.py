"""The read stage shared by every command: input files -> located, parsed, checked records.

convert, and later lint and dedup, iterate the same :class:`Pending` items, so a
record is parsed and checked by exactly one code path whatever command reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from audiodata.readers.dialects import parse_record
from audiodata.readers.dialects.common import ParseContext
from audiodata.readers.jsonstream import RawItem, iter_file
from audiodata.readers.sources import InputFile
from audiodata.records import Record, SourceLoc
from audiodata.rules.engine import check_record, keep_enabled
from audiodata.rules.findings import Finding


@dataclass
class Pending:
    """One input record: its position in the run (``seq``), the raw item, and either a
    parsed record with its rule findings or the findings that say why there is none."""

    seq: int
    item: RawItem
    source: SourceLoc
    record: Record | None
    findings: list[Finding]


def read_records(
    files: list[InputFile],
    max_record_bytes: int,
    prompt: str | None = None,
    system: str | None = None,
    enabled: frozenset[str] | None = None,
    start: int = 0,
    on_file_done: Callable[[int], None] | None = None,
) -> Iterator[Pending]:
    """Every record of every file in order; items before ``start`` are counted, not parsed."""
    seq = 0
    done_bytes = 0
    for f in files:
        try:
            for item in iter_file(f.path, max_record_bytes):
                if seq >= start:
                    yield parse_item(seq, item, f, prompt, system, enabled)
                seq += 1
        except (OSError, EOFError, ValueError) as exc:  # unreadable or corrupt input file
            if seq >= start:
                src = SourceLoc(f.display, -1, None)
                item = RawItem(-1, 0, code="F004", error=f"cannot read the file: {exc}")
                yield Pending(seq, item, src, None, [Finding("F004", item.error or "", "", src)])
            seq += 1
        done_bytes += f.path.stat().st_size
        if on_file_done:
            on_file_done(done_bytes)


def parse_item(
    seq: int, item: RawItem, f: InputFile, prompt: str | None, system: str | None, enabled: frozenset[str] | None
) -> Pending:
    src = SourceLoc(f.display, item.index, item.line)
    if item.code is not None:
        return Pending(seq, item, src, None, [Finding(item.code, item.error or "", "", src)])
    record, findings = parse_record(item.obj, ParseContext(f.spec, src, f.media_root, prompt, system))
    if record is not None:
        findings = keep_enabled(check_record(record, enabled), enabled)
    return Pending(seq, item, src, record, findings)
