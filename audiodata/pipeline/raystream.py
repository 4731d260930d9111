"""The streaming Ray Data engine for convert (``pip install audiodata[ray]``): one conversion as a Ray Data pipeline.

It sits beside ``--engine ray`` (ranks as Ray tasks, :mod:`audiodata.pipeline.rayengine`), which it did not replace:
measured at 10k clips on a local 2-CPU cluster (``benchmarks/ray_bench.py --repeats 2``), this engine took 1.62x the
local pool's CPU and ranks as tasks 1.21x (README, "On a Ray cluster"). Python only: :func:`stream_on_ray`.

The stages (issue 16):

1. **read**: the inputs cut into P pieces by :func:`audiodata.pipeline.ranks.plan` (the byte ranges a rank reads:
   a JSONL split at line starts, a Parquet input by row group, anything else whole); each piece is read and
   parsed as one Ray Data task (``map_batches`` over the pieces, ``read_cpus`` each), exactly as a rank's own
   convert reads it (:func:`audiodata.pipeline.convert.rank_feed_items`), into one row holding its parsed
   records (text, small);
2. **process**: ``process_batch`` as a ``map_batches`` stage (``process_cpus`` each, at most ``concurrency`` at
   once), a piece's records in jobs of ``--batch-size``, as the local pool cuts them;
3. **write**: our shard writer as a custom :class:`ray.data.Datasink` whose ``write`` runs in the worker: each piece
   becomes a rank folder (``OUT/ranks/rank-IIIII-of-PPPPP``: shards, rejects, dedup keys, a rank manifest) by the
   rank's own convert fed with the processed records (:func:`audiodata.pipeline.convert.convert_fed`).

Stages 2 and 3 have the same resources, so Ray Data fuses them into one task: the encoded clips (about 100 KB a
row) never leave the worker that made them. (Moving such rows to the driver costs 2.6 ms CPU a row, measured in
session 5; the writer checks that every piece reaches it whole, so a plan that stops fusing them fails loudly.)
The driver then finalizes with :func:`audiodata.pipeline.merge.merge`: the Hub layout, card, manifest, one
``rejects.jsonl`` and the dedup across pieces, keep-first in global input order. So the answer equals the local
pool's by the ranks + merge equality (``tests/pipeline/test_ranks.py``), and a rerun resumes: finished pieces are
not read again, an unfinished one resumes from its durable shards; a worker killed mid-piece is retried by Ray.

What it needs, as the ranks engine: every node sees the inputs, media and ``OUT`` at the same paths.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any

from audiodata.dataset import MANIFEST
from audiodata.pipeline import ranks
from audiodata.pipeline.convert import ConvertResult, FeedError, check_inputs, convert_fed, rank_feed_items
from audiodata.pipeline.merge import merge
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.pipeline.process import Processed, process_batch
from audiodata.pipeline.rayengine import _existing_count, start
from audiodata.pipeline.read import Pending
from audiodata.pipeline.state import RunState

#: Pieces per cluster CPU when ``--num-shards`` does not say: enough that one slow piece is a short tail, few
#: enough that each piece's shards stay large (each piece writes its own shards).
PIECES_PER_CPU = 4
#: How many times Ray runs a task again whose worker died (killed, out of memory); then the run stops with the error.
MAX_RETRIES = 3


@dataclass(frozen=True)
class Job:
    """What every stage needs to know of the run (picklable: it travels to the workers once per task)."""

    paths: list[str]
    out: str
    options: ConvertOptions  # the run's, with num_shards = the piece count
    cwd: str
    #: tests only: called in the process stage after each job of records with (piece, records done), e.g. to kill the worker
    fault: Callable[[int, int], None] | None = None

    def rank_options(self, piece: int) -> ConvertOptions:
        return replace(self.options, shard_index=piece, num_workers=1)


def _read_pieces(batch: dict[str, Any], job: Job) -> dict[str, Any]:
    """Stage 1: each piece's records read and checked, as one row of pickled ``(Pending, needs audio)``."""
    os.chdir(job.cwd)
    pieces, counts, items = [], [], []
    for piece in batch["piece"]:
        records = list(rank_feed_items(job.paths, job.out, job.rank_options(int(piece))))
        pieces.append(int(piece))
        counts.append(len(records))
        items.append(pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL))
    return {"piece": pieces, "count": counts, "items": items}


def _process_pieces(batch: dict[str, Any], job: Job) -> Iterator[dict[str, Any]]:
    """Stage 2: ``process_batch`` over each piece's records, in jobs of ``--batch-size`` records that need audio;
    one output batch per job: ``(piece, count, pickled (Pending, Processed | None))`` rows in input order. An empty
    piece yields one row with no record, so that its (empty) rank is still written."""
    os.chdir(job.cwd)
    opts = job.options
    settings = None
    for piece, count, blob in zip(batch["piece"], batch["count"], batch["items"], strict=True):
        records: list[tuple[Pending, bool]] = pickle.loads(blob)
        if not records:
            yield {"piece": [int(piece)], "count": [0], "pair": [b""], "pid": [os.getpid()]}
            continue
        if settings is None:
            from audiodata.rules.registry import select

            settings = opts.audio_settings(frozenset(select(opts.select or None, opts.ignore or None)))
        step = max(1, opts.batch_size)
        for at in range(0, len(records), step):
            chunk = records[at : at + step]
            done = {p.seq: p for p in process_batch([(p.seq, p.record) for p, needs in chunk if needs and p.record], settings)}
            pairs = [pickle.dumps((p, done.get(p.seq)), protocol=pickle.HIGHEST_PROTOCOL) for p, _ in chunk]
            n = len(chunk)
            yield {"piece": [int(piece)] * n, "count": [int(count)] * n, "pair": pairs, "pid": [os.getpid()] * n}
            if job.fault is not None:
                job.fault(int(piece), at + len(chunk))


def _rows(blocks: Iterable[Any]) -> Iterator[tuple[int, int, bytes, int]]:
    for block in blocks:  # pyarrow tables
        columns = block.to_pydict()
        yield from zip(columns["piece"], columns["count"], columns["pair"], columns["pid"], strict=True)


class _PieceFeed:
    """One piece's rows as the fed rank takes them, counting what arrives against what the read stage counted."""

    def __init__(self, rows: Iterable[tuple[int, int, bytes, int]]) -> None:
        self.rows, self.seen, self.count, self.moved = rows, 0, 0, 0

    def __iter__(self) -> Iterator[tuple[Pending, Processed | None]]:
        me = os.getpid()
        for _, count, blob, pid in self.rows:
            self.count = count
            self.moved += pid != me  # made by another process: the row travelled (stages not fused)
            if blob:  # an empty piece's one row holds no record
                self.seen += 1
                yield pickle.loads(blob)


def _import_datasink() -> type:
    from ray.data import Datasink

    return Datasink


def _make_sink(job: Job) -> Any:
    """Stage 3, the writer: a :class:`ray.data.Datasink` whose ``write`` (in the worker) turns each piece's
    processed records into its rank folder."""
    base = _import_datasink()

    class RankSink(base):  # type: ignore[misc, valid-type]
        def write(self, blocks: Iterable[Any], ctx: Any) -> list[dict[str, int]]:
            os.chdir(job.cwd)
            written = []
            for piece, rows in groupby(_rows(blocks), key=lambda r: r[0]):
                feed = _PieceFeed(rows)
                result = convert_fed(job.paths, job.out, job.rank_options(piece), iter(feed))
                if feed.seen != feed.count and not result.already_complete:
                    raise FeedError(f"piece {piece}: {feed.seen} of its {feed.count} records reached its writer")
                written.append({"piece": piece, "rows": feed.seen, "moved": feed.moved})
            return written

        def on_write_complete(self, write_result: Any) -> None:
            """On the driver: what the writers said, for :func:`stream_on_ray`'s ``stats``."""
            for returned in write_result.write_returns:
                self.pieces.extend(returned)

        def get_name(self) -> str:
            return "RankWriter"

    sink = RankSink()
    sink.pieces = []
    return sink


def _finished(out: Path, piece: int, count: int) -> bool:
    folder = ranks.rank_folder(out, piece, count)
    state = RunState.load(folder)
    return state is not None and state.status == "complete" and (folder / MANIFEST).is_file()


def stream_on_ray(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: ConvertOptions,
    address: str | None = None,
    read_cpus: float = 0.25,
    process_cpus: float = 1.0,
    concurrency: int | None = None,
    on_start: Callable[[str | None, int], None] | None = None,
    on_rank: Callable[[int, int], None] | None = None,
    stats: dict[str, Any] | None = None,
    _fault: Callable[[int, int], None] | None = None,
) -> ConvertResult:
    """Convert ``inputs`` into ``output`` as a Ray Data pipeline (read, ``process_batch``, a writer in the workers),
    then merge on the driver: the local pool's answer. ``options.num_shards`` > 1 sets the piece count (default:
    :data:`PIECES_PER_CPU` per cluster CPU, or the count of pieces already under ``OUT/ranks``). ``read_cpus``,
    ``process_cpus``: CPUs a read task, a process-and-write task holds; ``concurrency``: at most that many
    process-and-write tasks at once. ``on_start(dashboard URL, pieces)``, ``on_rank(pieces done, pieces)``; ``stats``
    gets what the writers reported: per piece its rows and how many were made in another process (``rows_moved``:
    0 while Ray Data fuses the process stage with the writer)."""
    if options.num_shards > 1 and options.shard_index:
        raise OptionsError("--engine ray runs every rank itself: give --num-shards N without --shard-index")
    out = Path(output)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    check_inputs(paths, out, options)  # a missing input or a bad option: said here, before any task starts
    ray, dashboard = start(address)
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    count = options.num_shards if options.num_shards > 1 else (_existing_count(out) or max(2, PIECES_PER_CPU * cpus))
    job = Job(paths, str(out), replace(options, num_shards=count, shard_index=0), os.getcwd(), _fault)
    if on_start is not None:
        on_start(dashboard, count)
    todo = [i for i in range(count) if not _finished(out, i, count)]
    if todo:
        _run_pipeline(ray, job, todo, (read_cpus, process_cpus, concurrency), lambda: _done(out, count), on_rank, count, stats)
    if on_rank is not None:
        on_rank(count, count)
    return merge(out, dedup_memory=options.dedup_memory, overwrite=options.overwrite)


def _done(out: Path, count: int) -> int:
    return sum(_finished(out, i, count) for i in range(count))


def _run_pipeline(
    ray: Any,
    job: Job,
    todo: list[int],
    resources: tuple[float, float, int | None],
    done: Callable[[], int],
    on_rank: Callable[[int, int], None] | None,
    count: int,
    stats: dict[str, Any] | None,
) -> None:
    """The three stages over the pieces ``todo``; progress is read from the rank folders as they finish (the
    output is on a filesystem every node and the driver see)."""
    import ray.data

    read_cpus, process_cpus, concurrency = resources
    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.print_on_execution_start
    ctx.enable_progress_bars = ctx.print_on_execution_start = on_rank is None  # the CLI shows its own progress
    retries = {"max_retries": MAX_RETRIES}  # Ray Data's default retries a dead worker's task for ever
    ds = ray.data.from_items([{"piece": i} for i in todo], override_num_blocks=len(todo))
    with warnings.catch_warnings():  # Ray 2.60 names max_retries a deprecated remote argument, and offers no other way
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(_read_pieces, fn_kwargs={"job": job}, batch_size=1, num_cpus=read_cpus, **retries)
        ds = ds.map_batches(  # fused with the writer below (the same remote arguments): rows stay where they were made
            _process_pieces, fn_kwargs={"job": job}, batch_size=1, concurrency=concurrency, num_cpus=process_cpus, **retries
        )
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(stop, done, on_rank, count), daemon=True) if on_rank else None
    if watcher is not None:
        watcher.start()
    try:
        sink = _make_sink(job)
        ds.write_datasink(sink, ray_remote_args={"num_cpus": process_cpus, **retries}, concurrency=concurrency)
        if stats is not None:
            stats["pieces"] = list(sink.pieces)
            stats["rows_moved"] = sum(p["moved"] for p in sink.pieces)
    except ray.exceptions.RayTaskError as e:  # a piece's own error (a bad input: exit 2; a fault: exit 3) as itself
        cause = _root_cause(e)
        if cause is not None:
            raise cause from None
        raise
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved


def _root_cause(e: BaseException) -> Exception | None:
    """The error a worker raised, under Ray Data's wrappers."""
    seen = e
    for _ in range(8):
        cause = getattr(seen, "cause", None) or seen.__cause__
        if cause is None:
            break
        seen = cause
    return seen if isinstance(seen, Exception) and seen is not e and not type(seen).__module__.startswith("ray") else None


def _watch(stop: threading.Event, done: Callable[[], int], on_rank: Callable[[int, int], None] | None, count: int) -> None:
    last = -1
    while not stop.wait(0.5):
        with contextlib.suppress(OSError):
            n = done()
            if n != last and on_rank is not None:
                on_rank(n, count)
                last = n


__all__ = ["PIECES_PER_CPU", "stream_on_ray"]
