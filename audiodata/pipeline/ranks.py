"""Ranks without any engine: ``convert --num-shards N --shard-index I`` converts one deterministic slice of
the inputs, ``merge`` (:mod:`audiodata.pipeline.merge`) assembles the N rank outputs into one dataset.

The slice is by bytes: the inputs, in the order the run lists them, are laid end to end and cut into N
ranges of about equal bytes. A JSONL file that a cut falls into is split at a line boundary
(:mod:`audiodata.readers.ranges`), a Parquet file at a row-group start (each row group goes to the rank its first
byte falls in), so one huge file still spreads over every rank; any other input (a JSON array, a gzip file, an Arrow
file, a tar, a NeMo or lhotse manifest, whose records are not one per line) goes whole to the rank its first byte
falls in. The cut depends on the inputs alone, so every rank,
whichever machine runs it, computes the same plan, and rank I's records are exactly the records a local
run reads between rank I-1's and rank I+1's: the ranks in order are the local run's input order.

This module is the seam a distributed engine calls (a Ray task per rank runs :func:`audiodata.convert` with
``num_shards``/``shard_index``; the driver runs :func:`audiodata.pipeline.merge.merge`).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from audiodata.readers.hfdataset import row_group_starts
from audiodata.readers.items import JSON
from audiodata.readers.jsonstream import splittable as lines_splittable
from audiodata.readers.ranges import line_start
from audiodata.readers.sources import InputFile

#: Where ``convert -o OUT --num-shards N --shard-index I`` writes rank I, and where ``merge OUT`` looks.
RANKS_DIR = "ranks"
#: A rank's dedup keys (one JSON line per row it wrote, in input order): what merge dedups across ranks by.
KEYS = "dedup-keys.jsonl"
#: Markers of NeMo lines and lhotse cuts: a file holding them is read whole (a line may become several records).
_LONG_FORM = (b'"audio_filepath"', b'"audio_filename"', b'"supervisions"')
_HEAD = 1 << 16


def next_start(f: InputFile, pos: int) -> int:
    """The first record boundary at or after byte ``pos`` of a splittable input: a line start of a JSONL file, a
    row-group start of a Parquet file (else the file's size)."""
    if f.kind != "parquet":
        return line_start(f.path, pos, lone_cr=False)
    return next((at for at, _ in row_group_starts(f.path) if at >= pos), f.size)


def rank_name(index: int, count: int) -> str:
    return f"rank-{index:05d}-of-{count:05d}"


def rank_folder(out: str | Path, index: int, count: int) -> Path:
    return Path(out) / RANKS_DIR / rank_name(index, count)


def rank_fingerprint(run: str, index: int, count: int) -> str:
    """A rank folder's own fingerprint: the run's, and which rank of how many."""
    return hashlib.sha256(f"{run}:rank:{index}:{count}".encode()).hexdigest()[:16]


def splittable(f: InputFile) -> bool:
    """A file cut at record boundaries: plain (not gzip) JSONL whose records are one per line (cut at line starts),
    or a local Parquet file of more than one row group (cut at row-group starts)."""
    if f.kind == "parquet" and f.part is None and f.hub is None:
        try:
            return len(row_group_starts(f.path)) > 1
        except Exception:  # pyarrow's errors for a damaged file: read whole, where reading it says why (F004)
            return False
    if f.kind != JSON or f.part is not None or not f.path.name.endswith(".jsonl"):
        return False
    if f.spec.formatting in ("nemo", "lhotse"):
        return False
    try:
        with open(f.path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return False  # read whole: reading it says why (F004)
    if head.startswith(b"\x1f\x8b") or any(m in head for m in _LONG_FORM):
        return False
    return lines_splittable(f.path)  # plain UTF-8 JSON lines: a UTF-16/32 file is read whole (one F009)


@dataclass(frozen=True)
class Part:
    """One piece of a rank's slice: input file number ``file`` of the run, all of it (``start`` None) or
    bytes ``[start, end)``."""

    file: int
    start: int | None = None
    end: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return dataclasses.asdict(self)


def plan(files: list[InputFile], count: int, index: int) -> list[Part]:
    """Rank ``index``'s slice of ``files`` (of ``count`` ranks). Every record of every file is in exactly one
    rank's slice; the slices in rank order are the files in order."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    sizes = [f.size for f in files]
    total = sum(sizes)
    bounds = [total * r // count for r in range(count + 1)]  # rank r: bytes [bounds[r], bounds[r+1])
    lo, hi = bounds[index], bounds[index + 1]
    parts: list[Part] = []
    offset = 0
    for n, (f, size) in enumerate(zip(files, sizes, strict=True)):
        if size and splittable(f):
            a, b = min(max(lo - offset, 0), size), min(max(hi - offset, 0), size)
            start = next_start(f, a) if a < size else size
            end = next_start(f, b) if b < size else size
            if start < end:
                parts.append(Part(n, start, end) if (start, end) != (0, size) else Part(n))
        else:  # whole, to the rank its first byte falls in (an empty file: where it sits)
            owner = min(bisect.bisect_right(bounds, offset) - 1, count - 1)
            if owner == index:
                parts.append(Part(n))
        offset += size
    return parts


def sliced(files: list[InputFile], parts: list[Part]) -> list[InputFile]:
    """The run's files as a rank reads them: those of its slice, a split one limited to its byte range."""
    out = []
    for p in parts:
        f = files[p.file]
        out.append(f if p.start is None else dataclasses.replace(f, part=(p.start, p.end or 0)))
    return out


__all__ = [
    "KEYS",
    "RANKS_DIR",
    "Part",
    "next_start",
    "plan",
    "rank_fingerprint",
    "rank_folder",
    "rank_name",
    "sliced",
    "splittable",
]
