"""Ranks without any engine for ``lint`` and ``dedup``: ``--num-shards N --shard-index I --parts DIR`` does rank I's
share of the workers' jobs (the decode, the rules, the fingerprints) and saves what they found; ``--parts DIR``
alone then merges: the driver runs exactly as a local run, its jobs' results read back from the ranks' parts instead
of computed, so the report is the local one (duplicates, rate outliers, style mixes judged over the whole corpus).

Every rank and the merge list the same jobs (the local pool's: byte ranges of JSON-lines files, batches of records
read from the other inputs); a rank takes jobs ``j`` with ``j % N == I`` (round robin: a slow stretch of the input
spreads over every rank) and computes them with its own pool of ``--num-workers``. Reading the records' text is
cheap next to what the jobs do with audio; a rank reads none of the audio of other ranks' jobs.

A part is one file, ``{command}-rank-IIIII-of-NNNNN.parts``, written under a temporary name and renamed when whole
(so a part that exists is complete): a header (the run's fingerprint: command, inputs, options), then per job its
number, a digest of its input and its result. The merge refuses (exit 2) missing parts, parts of another run or
rank count, and a job whose input changed since its rank ran, listing each problem. Parts are Python pickles:
read them only from a folder you trust as you trust the inputs (they are this run's own output).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from audiodata.pipeline.options import OptionsError
from audiodata.pipeline.window import ordered_map

_PART = re.compile(r"(lint|dedup)-rank-(\d{5})-of-(\d{5})\.parts$")
VERSION = 3  # 3: lint chunks hold styles grouped by prompt and lines from 1 in a range (2: lint ranks hash clips by
# transform.identity_hash; 1: pcm_hash); parts of different versions never mix


class PartsError(OptionsError):
    """Parts that cannot be merged: missing, of another run or rank count, or of inputs that changed (exit 2)."""


@dataclass(frozen=True)
class RankParts:
    """Where parts go (``index`` set: this rank's) or come from (``index`` None: the merge of all ``count``)."""

    folder: Path
    command: str  # lint | dedup
    run: str  # the run's fingerprint: the command, its inputs and options
    count: int | None = None  # None: the merge, as many ranks as the parts say
    index: int | None = None

    def name(self, index: int, count: int) -> str:
        return f"{self.command}-rank-{index:05d}-of-{count:05d}.parts"


def _digest(args: tuple[Any, ...]) -> bytes:
    return hashlib.blake2b(pickle.dumps(args, protocol=5), digest_size=16).digest()


def rank_map(parts: RankParts) -> Callable[..., Iterator[tuple[Any, Any]]]:
    """A mapper with :func:`ordered_map`'s signature: for a rank, computes its share of the jobs, saves them and
    yields nothing (:func:`_compute`); for the merge, yields every job's saved result in order (:func:`_replay`)."""

    def mapper(
        fn: Callable[..., Any],
        jobs: Iterable[tuple[Any, tuple[Any, ...]]],
        workers: int,
        depth: int | None = None,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> Iterator[tuple[Any, Any]]:
        if parts.index is None:
            yield from _replay(parts, jobs)
        else:
            _compute(parts, fn, jobs, workers, initializer, initargs)

    return mapper


def _compute(
    parts: RankParts,
    fn: Callable[..., Any],
    jobs: Iterable[tuple[Any, tuple[Any, ...]]],
    workers: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> None:
    assert parts.count is not None and parts.index is not None
    count, index = parts.count, parts.index
    parts.folder.mkdir(parents=True, exist_ok=True)
    final = parts.folder / parts.name(index, count)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    mine = (((j, _digest(args)), args) for j, (_, args) in enumerate(jobs) if j % count == index)
    try:
        with open(tmp, "wb") as fh:
            pickle.dump({"version": VERSION, "run": parts.run, "count": count, "index": index}, fh, protocol=5)
            for (j, key), result in ordered_map(fn, mine, workers, initializer=initializer, initargs=initargs):
                pickle.dump((j, key, result), fh, protocol=5)
            pickle.dump(None, fh)  # the end
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _replay(parts: RankParts, jobs: Iterable[tuple[Any, tuple[Any, ...]]]) -> Iterator[tuple[Any, Any]]:
    files = open_parts(parts)
    try:
        count = len(files)
        for j, (ctx, args) in enumerate(jobs):
            r = j % count
            got = pickle.load(files[r])
            if got is None or got[0] != j or got[1] != _digest(args):
                raise PartsError(
                    f"{parts.folder / parts.name(r, count)}: job {j} is not the one this run reads there: the inputs "
                    "changed since the rank ran (run the ranks again)"
                )
            yield ctx, got[2]
        left = [parts.name(r, count) for r, fh in enumerate(files) if pickle.load(fh) is not None]
        if left:
            raise PartsError(f"{', '.join(left)}: more jobs than this run has: the inputs changed since the ranks ran")
    finally:
        for fh in files:
            fh.close()


def open_parts(parts: RankParts) -> list[IO[bytes]]:
    """Every rank's part, opened past its header, in rank order; :class:`PartsError` listing what is wrong."""
    found: dict[int, set[int]] = {}
    if parts.folder.is_dir():
        for p in parts.folder.iterdir():
            m = _PART.match(p.name)
            if m and m.group(1) == parts.command:
                found.setdefault(int(m.group(3)), set()).add(int(m.group(2)))
    if not found:
        raise PartsError(f"{parts.folder}: no {parts.command} parts (run each rank with --num-shards N --shard-index I first)")
    if len(found) > 1:
        raise PartsError(f"{parts.folder}: parts of several rank counts ({', '.join(map(str, sorted(found)))}): keep one run's")
    count, have = next(iter(found.items()))
    problems = [f"{parts.name(i, count)} is missing (rank {i} has not finished)" for i in range(count) if i not in have]
    files: list[IO[bytes]] = []
    try:
        for i in range(count):
            if i not in have:
                continue
            part: IO[bytes] = open(parts.folder / parts.name(i, count), "rb")  # closed by the caller, or below
            files.append(part)
            head = _header(part)
            if head.get("version") != VERSION or head.get("run") != parts.run:
                problems.append(f"{parts.name(i, count)} is of another run (other inputs, options or audiodata version)")
        if problems:
            raise PartsError(f"{parts.folder}: cannot merge: " + "; ".join(problems))
    except BaseException:
        for fh in files:
            fh.close()
        raise
    return files


def _header(fh: IO[bytes]) -> dict[str, Any]:
    try:
        head = pickle.load(fh)
    except Exception:  # any damage: not a part this run can read
        return {}
    return head if isinstance(head, dict) else {}


def run_fingerprint(command: str, options: Any, inputs: list[Any], extra: dict[str, Any]) -> str:
    """What makes parts of one run: the command, the inputs (names and contents: a rank reading a byte range of an
    input edited since would find other records), the options and this audiodata."""
    import audiodata

    shown = [{"file": str(f.path), "size": f.size, "content": _content(Path(f.path))} for f in inputs]
    blob = repr((command, audiodata.__version__, options.fingerprint(shown), sorted(extra.items())))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _content(path: Path) -> str:
    """A file's blake2b (~1 GB/s: a small share of what lint does per byte), else (a folder, a dataset) its time."""
    try:
        if not path.is_file():
            return str(os.stat(path).st_mtime_ns)
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return "unreadable"


__all__ = ["PartsError", "RankParts", "open_parts", "rank_map", "run_fingerprint"]
