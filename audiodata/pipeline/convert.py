"""``convert``: raw JSON corpora in, Hub-ready Parquet shards out.

Stages (webdataset-style, each small): read items -> parse to records -> record
rules -> audio stage (pure, in a worker pool, in order) -> split assignment ->
shard writers; every record that fails a stage goes to ``rejects.jsonl`` with its
reasons. Accounting always holds: read = written + rejected.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from audiodata import __version__, objstore
from audiodata.dataset import (
    CARD,
    FORMAT_VERSION,
    MANIFEST,
    ConfigInfo,
    DatasetError,
    InputEntry,
    Manifest,
    RankEntry,
    RejectsEntry,
    ShardEntry,
    SplitInfo,
    Summary,
    verify_hint,
)
from audiodata.dedup.fingerprint import Fingerprint, fingerprint_from_json, fingerprint_to_json
from audiodata.dedup.index import RecordDeduper, RecordInfo, Verdict, conversation_keys
from audiodata.dedup.store import SPILL_PREFIX
from audiodata.dedup.stored import shard_records
from audiodata.faults import MachineFault, on_path
from audiodata.lock import hold
from audiodata.pipeline import aside, ranks
from audiodata.pipeline.options import ConvertOptions, OptionsError, resolve_options
from audiodata.pipeline.process import Processed, process_batch
from audiodata.pipeline.read import Pending, read_records, visual_media
from audiodata.pipeline.state import WORK, RunState, atomic_write
from audiodata.pipeline.window import ordered_map
from audiodata.readers.sources import InputError, InputFile, Skipped, expand_inputs
from audiodata.records import Record
from audiodata.rules.engine import has_error
from audiodata.rules.findings import Finding
from audiodata.rules.registry import select
from audiodata.writer.card import card_yaml, render_card
from audiodata.writer.schema import KINDS, Visual
from audiodata.writer.shards import ShardInfo, ShardWriter, merge_stats

#: About how many bytes of rows one job of records brings back from a worker. Records per job shrink
#: from --batch-size as the records' clips grow (measured on the rows already back), so what workers and
#: the in-flight window hold stays bounded however long the clips: 16 records of 20-minute clips would
#: be 600 MB a job.
BATCH_BYTES = 16 * 2**20

OUTPUT_FILES = aside.DATASET_FILES
RESTART = "pass --overwrite to convert again from the start"


@dataclass
class ConvertResult:
    """What a conversion wrote, from its manifest (:meth:`from_manifest`: the one place that maps it)."""

    output: Path | str  # a str: an object-store URL (s3://bucket/out)
    records_read: int = 0
    records_written: int = 0
    records_rejected: int = 0
    audio_seconds: float = 0.0  # seconds of audio written (at the target rate)
    clips: int = 0
    rejects_by_code: dict[str, int] = field(default_factory=dict)
    warnings_by_code: dict[str, int] = field(default_factory=dict)
    records_duplicate: int = 0  # dropped by --dedup (listed in rejects.jsonl with their cluster)
    records_excluded: int = 0  # left out by --exclude (listed in rejects.jsonl with the list that named them)
    excluded_by: dict[str, int] = field(default_factory=dict)  # per --exclude list (file name)
    records_equal_pairs: int = 0  # DPO pairs from ASR hypotheses equal to their transcript: skipped (rejects.jsonl, P004)
    duplicates_by_kind: dict[str, int] = field(default_factory=dict)
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)  # named but not read (F006, F007), with why
    shards: list[ShardEntry] = field(default_factory=list)
    resumed_from: int = 0
    already_complete: bool = False

    @property
    def exit_code(self) -> int:
        """0: every record went through (duplicates dropped on request count as through); 1: some were rejected."""
        return 1 if self.records_rejected else 0

    @classmethod
    def from_manifest(
        cls, output: Path | str, manifest: Manifest, resumed_from: int = 0, already_complete: bool = False
    ) -> ConvertResult:
        s = manifest.summary
        return cls(
            output=output,
            records_read=s.records_read,
            records_written=s.written,
            records_rejected=s.rejected,
            audio_seconds=s.audio_seconds,
            clips=s.clips,
            rejects_by_code=dict(s.rejects_by_code),
            warnings_by_code=dict(s.warnings_by_code),
            records_duplicate=s.duplicates,
            records_excluded=s.excluded or 0,
            excluded_by=dict(s.excluded_by or {}),
            records_equal_pairs=s.equal_pairs or 0,
            duplicates_by_kind=dict(s.duplicates_by_kind),
            skipped_inputs=list(s.skipped_inputs),
            shards=list(manifest.shards),
            resumed_from=resumed_from,
            already_complete=already_complete,
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as ``convert --json`` prints it: every field, and the exit code."""
        return {**asdict(self), "output": str(self.output), "exit_code": self.exit_code}


@dataclass
class Progress:
    """What a progress display is told after each record."""

    bytes_done: int = 0
    bytes_total: int = 0
    records: int = 0
    rejected: int = 0
    duplicates: int = 0
    excluded: int = 0
    equal_pairs: int = 0
    audio_seconds: float = 0.0


ProgressFn = Callable[[Progress], None]
Inputs = Sequence[str | os.PathLike[str]] | str | os.PathLike[str]


def convert(
    inputs: list[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
    on_progress: ProgressFn | None = None,
    **kwargs: Any,
) -> ConvertResult:
    """Convert ``inputs`` (files, folders, globs, dataset_info.json) into ``output``.

    Keyword arguments are :class:`ConvertOptions` fields. Raises
    :class:`OptionsError`/:class:`InputError` for usage errors, :class:`OutputBusy` when another run
    writes ``output``, :class:`MachineFault` when the machine fails a write; bad records never raise.
    With ``overwrite``, a dataset already in ``output`` stays whole until the new one is complete
    (built aside, see :mod:`audiodata.pipeline.aside`).
    """
    opts = resolve_options(options, kwargs)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    if objstore.is_remote(str(output)):
        return _convert_remote(paths, str(output), opts, on_progress)
    return _convert(_Plan.of(paths, output, opts), opts, on_progress)


def _convert_remote(paths: list[str], url: str, opts: ConvertOptions, on_progress: ProgressFn | None) -> ConvertResult:
    """Into an object store: the local engine builds in the store folder's local copy (:class:`objstore.Mirror`),
    brought first to what the store holds (a run resumes from there, on any machine), and every durable point
    is replicated to the store. A rank mirrors only its own folder."""
    url = url.rstrip("/")
    sub = ranks.rank_folder("", opts.shard_index, opts.num_shards).as_posix() if opts.num_shards > 1 else None
    mirror = objstore.Mirror(url, sub)
    with mirror.claimed():
        mirror.pull()
        with mirror.attached():
            result = _convert(_Plan.of(paths, mirror.base, opts), opts, on_progress)
    result.output = url
    return result


def convert_fed(inputs: Inputs, output: str | os.PathLike[str], options: ConvertOptions, feed: Feed) -> ConvertResult:
    """One rank's conversion (``options.num_shards`` > 1) whose records and audio-stage outcomes come from ``feed``
    (``(Pending, Processed | None)`` in input order, as :func:`rank_feed_items` read them and ``process_batch``
    processed them elsewhere) instead of its own read and pool: what a streaming engine's writer runs where the
    rows already are. Everything else (resume, rejects, dedup keys, shards, the rank's manifest) is the rank's own
    :func:`convert`. Raises :class:`FeedError` when ``feed`` is not the rank's records, every one once, in order."""
    if options.num_shards <= 1:
        raise OptionsError("convert_fed writes one rank: give num_shards > 1")
    return _convert(_Plan.of(inputs, output, options), options, None, feed)


def rank_feed_items(inputs: Inputs, output: str | os.PathLike[str], options: ConvertOptions) -> Iterator[tuple[Pending, bool]]:
    """Rank ``options.shard_index``'s records, read and checked as its own convert reads them, each with whether
    the audio stage must process it (not rejected by the record rules, not excluded, not an equal pair). Nothing is
    written. The read side of a streaming engine: :func:`convert_fed` takes them back with their outcomes."""
    plan = _Plan.of(inputs, output, options)
    run = _Run(plan.files, plan.out, options, RunState(plan.fingerprint), None, plan.skipped, plan.rank)
    for p in run._items():
        yield p, run._needs_audio(p)


def check_inputs(inputs: Inputs, output: str | os.PathLike[str], options: ConvertOptions) -> None:
    """What a conversion would refuse before reading a record (an input that is not there, options that do not go
    together), raised as the conversion raises it: a distributed engine's driver says it before any task starts."""
    _Plan.of(inputs, output, replace(options, num_shards=1, shard_index=0))


class FeedError(RuntimeError):
    """A fed rank's records are not the rank's own (out of order, missing, or more): a bug, never a bad input."""


#: What a fed rank consumes: every record of the rank in input order, with its audio-stage outcome (None: not processed).
Feed = Iterable[tuple[Pending, Processed | None]]


@dataclass
class _Plan:
    """What a run converts and where: its input files (a rank's slice), output folder, fingerprint, rank."""

    files: list[InputFile]
    out: Path
    fingerprint: str
    rank: Rank | None
    skipped: list[Skipped]

    @classmethod
    def of(cls, inputs: Inputs, output: str | os.PathLike[str], opts: ConvertOptions) -> _Plan:
        paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
        out = Path(output)
        exclude = [out, aside.new_path(out), aside.old_path(out)]
        expanded = expand_inputs(
            paths, opts.media_root, opts.format, opts.datasets, exclude, opts.all_files, opts.absolute_paths, opts.row_columns
        )
        files = expanded.files
        fingerprint = opts.fingerprint([f.describe() for f in files])
        rank: Rank | None = None
        skipped = expanded.skipped
        if opts.num_shards > 1:  # one rank's slice, into OUT/ranks/rank-I-of-N (audiodata.pipeline.ranks)
            i, n = opts.shard_index, opts.num_shards
            rank = Rank(i, n, fingerprint, ranks.plan(files, n, i), files)
            out = ranks.rank_folder(out, i, n)
            fingerprint = ranks.rank_fingerprint(fingerprint, i, n)
            files = ranks.sliced(files, rank.parts)
            skipped = skipped if i == 0 else []  # inputs named but not read: reported once, by rank 0
        return cls(files, out, fingerprint, rank, skipped)


def _convert(plan: _Plan, opts: ConvertOptions, on_progress: ProgressFn | None, feed: Feed | None = None) -> ConvertResult:
    files, out, fingerprint, rank, skipped = plan.files, plan.out, plan.fingerprint, plan.rank, plan.skipped
    _refuse_foreign(out, opts.overwrite)
    with contextlib.ExitStack() as locks:
        locks.enter_context(hold(out, "convert"))
        new = aside.new_path(out)
        new_lock = locks.enter_context(hold(new, "convert", shown=str(out))) if new.is_dir() else None
        finished = aside.finish_pending(out)  # an interrupted overwrite's complete build, swapped in now
        done = RunState.load(out) if finished else None
        if done is not None and done.fingerprint == fingerprint and done.status == "complete":
            return _result_from_manifest(out, already_complete=True)  # it was this very conversion: not built again
        target, clear = _target(out, fingerprint, opts.overwrite)
        if target != out and not (new_lock is not None and new_lock.valid()):
            locks.enter_context(hold(target, "convert", shown=str(out)))
        state = _prepare_output(target, fingerprint, clear)
        if state.status == "complete":
            return _result_from_manifest(out, already_complete=True)
        run = _Run(files, target, opts, state, on_progress, skipped, rank, feed)
        result = run.finalize() if state.status == "finalizing" else run.run()
        if target != out:
            aside.swap_in(target, out)
            result = _result_from_manifest(out, resumed_from=result.resumed_from)
        return result


def resume_command(argv: list[str], output: str | os.PathLike[str]) -> list[str]:
    """The command that resumes an interrupted ``convert argv``: the same one, except that a build in place
    is resumed without ``--overwrite`` (with it, it would start over); a build aside resumes with it."""
    if "--overwrite" not in argv or aside.new_path(Path(output)).is_dir():
        return argv
    return [a for a in argv if a != "--overwrite"]


def _refuse_foreign(out: Path, overwrite: bool) -> None:
    """Before anything is written: a folder holding something else is refused (and left untouched)."""
    if overwrite or not out.is_dir() or (out / WORK / "state.json").exists():
        return
    if any(e.name != WORK for e in out.iterdir()):
        raise OptionsError(f"{out} exists and is not an audiodata output; choose an empty folder or pass --overwrite")


def _target(out: Path, fingerprint: str, overwrite: bool) -> tuple[Path, bool]:
    """Where this run builds, and whether what is there must be cleared first: ``out`` itself, or
    (``--overwrite`` of a dataset) the folder aside. ``--overwrite`` starts over, but an unfinished build
    aside of this very conversion is its own work: resumed by the same command, deleted by any other.
    (An interrupted build in place is resumed without ``--overwrite``: :func:`resume_command`.)"""
    new = aside.new_path(out)
    if new.is_dir():
        pending = RunState.load(new)
        if overwrite and pending is not None and pending.fingerprint == fingerprint:
            return new, False
        aside.remove(new)
    if not overwrite:
        return out, False
    if not aside.holds_dataset(out) or not aside.can_build_aside(out):
        return out, True  # nothing to keep, or OUT is a mount point: cleared in place, as before
    try:
        with on_path(new, "create"):
            new.mkdir()
    except MachineFault as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return out, True  # the parent is not writable: overwrite in place
        raise
    return new, False


def _prepare_output(out: Path, fingerprint: str, overwrite: bool) -> RunState:
    state = RunState.load(out)
    if overwrite:
        aside.clear_dataset(out)
        state = None
    elif state is not None and state.fingerprint != fingerprint:
        raise OptionsError(f"{out} holds a conversion of other inputs or options; pass --overwrite to replace it")
    elif state is None and (out / WORK / "state.json").exists():
        raise OptionsError(f"{out}: {WORK}/state.json is unreadable (damaged?); pass --overwrite to convert again from the start")
    elif state is None and out.exists() and any(e.name != WORK for e in out.iterdir()):
        raise OptionsError(f"{out} exists and is not an audiodata output; choose an empty folder or pass --overwrite")
    with on_path(out, "create"):
        out.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = RunState(fingerprint)
        state.save(out)
    return state


@dataclass
class Rank:
    """A rank's run: which of how many, the whole run's fingerprint, its slice, and every input of the run
    (the optional columns and the manifest's inputs are the whole run's, so every rank writes one schema)."""

    index: int
    count: int
    run: str
    parts: list[ranks.Part]
    all_files: list[InputFile]

    def entry(self, dedup_keys: bool) -> RankEntry:
        keys = f"{WORK}/{ranks.KEYS}" if dedup_keys else None
        return RankEntry(self.index, self.count, self.run, [p.to_dict() for p in self.parts], keys)


class _Run:
    def __init__(
        self,
        files: list[InputFile],
        out: Path,
        opts: ConvertOptions,
        state: RunState,
        on_progress: ProgressFn | None,
        skipped: list[Skipped] | None = None,
        rank: Rank | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.files, self.out, self.opts, self.state = files, out, opts, state
        self.feed = feed
        self.skipped = skipped or []
        self.rank = rank
        self.all_files = rank.all_files if rank is not None else files
        self.work = out / WORK
        self.on_progress = on_progress
        self.enabled = frozenset(select(opts.select or None, opts.ignore or None))
        self.settings = opts.audio_settings(self.enabled)
        images, videos, metadata = visual_media(self.all_files, opts.max_record_bytes, opts.gzip_bounds)
        # normalised transcripts keep their originals in the metadata column: the run has one
        metadata = metadata or opts.normalize_transcripts != "none"
        self.visual = Visual(images, videos, refs=opts.visual == "refs", metadata=metadata)
        self.deduper = (  # past --dedup-memory its index spills into the output's work folder (not $TMPDIR: maybe RAM)
            RecordDeduper(opts.dedup == "near", opts.dedup_threshold, opts.dedup_memory, self.work)
            if opts.dedup != "off" and rank is None
            else None
        )
        # a rank dedups nothing itself: it keeps every row's dedup keys, and merge decides across ranks in input order
        self.keys_path = self.work / ranks.KEYS if opts.dedup != "off" and rank is not None else None
        self.keys: Any = None
        self.writers: dict[str, ShardWriter] = {}
        self.resumed_from = state.resume_at if state.shards else 0
        self.progress = Progress(bytes_total=sum(f.size for f in files))
        self.live_stats: dict[str, Any] = {}
        self.start = self.resumed_from
        self.row_bytes: float | None = None  # bytes per written row, averaged over the jobs back so far

    # -- reading -----------------------------------------------------------------
    def _items(self) -> Iterator[Pending]:
        def file_done(done: int) -> None:
            self.progress.bytes_done = done

        o = self.opts
        longform = o.longform(self.enabled)
        return read_records(
            self.files, o.max_record_bytes, o.prompt, o.system, self.enabled, self.start, file_done, o.gzip_bounds, longform,
            pairs=o.pairs, template=o.prompting, normalize=o.normalize_transcripts, task=o.rate_task,
        )  # fmt: skip

    # -- the run -----------------------------------------------------------------
    def run(self) -> ConvertResult:
        self._restore()
        if self.deduper is not None:  # resuming: what durable shards hold is kept, later copies of it are not
            try:
                for s in self.state.shards:
                    for info in shard_records(self.work / s.file, self.deduper.near, shown=f"{WORK}/{s.file}", out=self.out):
                        self.deduper.check(info)
            except DatasetError as exc:  # no manifest yet to verify: the way out is a fresh start
                raise DatasetError(str(exc).replace(verify_hint(self.out), RESTART)) from None
        self.rejects_path = self.work / "rejects.jsonl"
        with on_path(self.rejects_path, "open"):
            rejects = self.rejects = open(self.rejects_path, "a", encoding="utf-8")
        if self.keys_path is not None:
            with on_path(self.keys_path, "open"):
                self.keys = open(self.keys_path, "a", encoding="utf-8")
        try:
            for pending, processed in self._processed() if self.feed is None else self._fed(self.feed):
                self._accept(pending, processed, rejects)
            with on_path(self.rejects_path):
                rejects.flush()
            for w in self.writers.values():
                w.close()
        except BaseException:
            for w in self.writers.values():
                w.abort()
            with contextlib.suppress(OSError):  # a full disk fails this flush too: the first error is the one to report
                rejects.close()
                if self.keys is not None:
                    self.keys.close()
            raise
        if self.keys is not None and self.keys_path is not None:
            with on_path(self.keys_path):
                self.keys.close()
        with on_path(self.rejects_path):
            rejects.close()
            if self.deduper is not None:
                self.deduper.close()  # its spilled index, if any (an error before this point: removed when collected)
        return self.finalize()

    def _processed(self) -> Iterator[tuple[Pending, Processed | None]]:
        """Records in input order with their audio-stage outcome (bounded in flight)."""

        def jobs() -> Iterator[tuple[list[Pending], tuple[Any, ...]]]:
            batch: list[Pending] = []
            todo: list[tuple[int, Record]] = []  # what the audio stage processes (not rejected or written already)
            for pending in self._items():
                batch.append(pending)
                if pending.record is not None and self._needs_audio(pending):
                    todo.append((pending.seq, pending.record))
                if len(todo) >= self._batch_records() or len(batch) >= 64 * self.opts.batch_size:
                    yield batch, (todo, self.settings)
                    batch, todo = [], []
            if batch:
                yield batch, (todo, self.settings)

        for items, done in ordered_map(process_batch, jobs(), self.opts.workers):
            self._measure(done)
            by_seq = {p.seq: p for p in done}
            for p in items:
                yield p, by_seq.get(p.seq)

    def _fed(self, feed: Feed) -> Iterator[tuple[Pending, Processed | None]]:
        """The fed records from the resume point on, checked to be this rank's, each once, in input order: the
        same records ``_items`` would read (a resumed rank's records before its resume point are dropped here,
        as ``_items`` never reads them)."""
        for expected, (pending, processed) in enumerate(feed):
            if pending.seq != expected:
                raise FeedError(f"{self.out}: fed record {pending.seq} where record {expected} was due")
            if pending.seq >= self.start:
                yield pending, processed

    def _batch_records(self) -> int:
        """Records for the next job: one until a job has come back (nothing says how big rows are yet),
        then as many as fit in :data:`BATCH_BYTES`, at most --batch-size."""
        if self.row_bytes is None:
            return 1
        return max(1, min(self.opts.batch_size, int(BATCH_BYTES // max(self.row_bytes, 1.0))))

    def _measure(self, done: list[Processed]) -> None:
        if done:  # a rejected record brings nothing back
            mean = sum(p.nbytes for p in done) / len(done)
            self.row_bytes = mean if self.row_bytes is None else (self.row_bytes + mean) / 2

    def _needs_audio(self, p: Pending) -> bool:
        return (
            p.record is not None
            and not has_error(p.findings)
            and not self._already_written(p)
            and not self._excluded_by(p)
            and not self._equal_pair(p)
        )

    def _equal_pair(self, p: Pending) -> bool:
        """A pair made from an ASR hypothesis equal to its transcript (P004): skipped, counted; ``--ignore P004``
        writes it. A record with an error is rejected instead."""
        return "P004" in self.enabled and any(f.code == "P004" for f in p.findings) and not has_error(p.findings)

    def _excluded_by(self, p: Pending) -> str | None:
        """The --exclude list naming this record, if any (exclusion wins over every other outcome)."""
        excluded = self.opts.excluded
        return excluded.by(p.record.id) if excluded and p.record is not None else None

    def _streams_of(self, kind: str) -> list[str]:
        splits = [self.opts.split] + ([self.opts.val_split] if self.opts.val_ratio else [])
        return [f"{kind}/{s}" for s in splits]

    def _already_written(self, p: Pending) -> bool:
        """On resume: a record whose every possible stream is durable past it."""
        return p.record is not None and all(self.state.is_durable(s, p.seq) for s in self._streams_of(p.record.kind))

    def _accept(self, p: Pending, processed: Processed | None, rejects: Any) -> None:
        self.progress.records += 1
        by = self._excluded_by(p)
        if by is not None:
            self._exclude(p, by, rejects)
            return
        if p.record is not None and self._equal_pair(p):
            self._skip_equal(p, rejects)
            return
        findings = list(p.findings)
        if processed is not None:
            findings += processed.findings
        if processed is None and p.record is not None and not has_error(findings):
            return  # already in a durable shard (resume)
        if has_error(findings) or processed is None or processed.row is None:
            self._reject(p, findings, rejects)
            return
        assert p.record is not None
        stream = f"{p.record.kind}/{self._split(p.record, processed.split_keys)}"
        if self.state.is_durable(stream, p.seq):
            return
        if self.deduper is not None or self.keys is not None:
            prompt, response = conversation_keys(p.record)
            clips = processed.dedup_clips()
        if self.deduper is not None:
            info = RecordInfo(p.source.file, p.source.index, p.source.line, p.record.kind, clips, prompt, response)
            verdict = self.deduper.check(info)
            if verdict.duplicate_of is not None:
                self._duplicate(p, verdict, rejects)
                return
        for f in p.findings:  # record-rule warnings count with the audio ones
            processed.stats.setdefault("warnings", {})[f.code] = 1
        if p.record.kind == "kto":
            processed.stats["kto_labels"] = {"desirable" if p.record.label else "undesirable": 1}
        elif p.record.kind == "rl":
            processed.stats["rl_tasks"] = {p.record.task or "qa": 1}
        if self.keys is not None:
            keys = DedupKeys(p.seq, stream, p.record.kind, clips, prompt, response, processed.stats, self._entry(p, {}))
            with on_path(self.keys_path or self.work):
                self.keys.write(keys.to_json() + "\n")
        writer = self._writer(stream, p.record.kind)
        self.progress.audio_seconds += processed.row["audio_seconds"]
        writer.add(processed.row, p.seq, processed.stats, processed.nbytes)
        if self.on_progress:
            self.on_progress(self.progress)

    def _set_aside(self, p: Pending, rejects: Any, counter: str, **fields: Any) -> None:
        """One line of rejects.jsonl for a record not written (rejected, a duplicate, excluded, an equal pair):
        where it was (file, index, line, tar member), ``fields`` saying why, the record as read; ``counter``
        is the progress count it adds to."""
        with on_path(self.rejects_path):
            rejects.write(json.dumps(self._entry(p, fields), ensure_ascii=False, default=unjsonable) + "\n")
        setattr(self.progress, counter, getattr(self.progress, counter) + 1)
        if self.on_progress:
            self.on_progress(self.progress)

    @staticmethod
    def _entry(p: Pending, fields: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": p.seq,
            "source": p.source.file,
            "index": p.source.index,
            "line": p.source.line,
            **({"member": p.source.member} if p.source.member else {}),
            **fields,
        }
        if p.item.obj is not None:
            entry["record"] = p.item.obj
        else:
            entry["raw"] = p.item.raw
        return entry

    def _reject(self, p: Pending, findings: list[Finding], rejects: Any) -> None:
        self._set_aside(p, rejects, "rejected", reasons=[f.reason() for f in findings if f.is_error])

    def _duplicate(self, p: Pending, verdict: Verdict, rejects: Any) -> None:
        """A later copy: not written, listed in rejects.jsonl with its cluster, counted apart from rejects."""
        self._set_aside(p, rejects, "duplicates", **duplicate_fields(verdict))

    def _exclude(self, p: Pending, by: str, rejects: Any) -> None:
        """Named by an --exclude list: not checked, not written; listed in rejects.jsonl, counted apart."""
        assert p.record is not None
        self._set_aside(p, rejects, "excluded", excluded={"by": by, "id": p.record.id})

    def _skip_equal(self, p: Pending, rejects: Any) -> None:
        """An equal pair: not written; listed in rejects.jsonl with its reason, counted apart (``equal_pairs``)."""
        assert p.record is not None
        reasons = [f.reason() for f in p.findings if f.code == "P004"]
        self._set_aside(p, rejects, "equal_pairs", skipped={"why": "equal-pair", "id": p.record.id}, reasons=reasons)

    def _split(self, record: Record, keys: list[str]) -> str:
        """Seeded, keyed on audio content: the same audio never lands in two splits; a segment or window (NeMo
        offsets, lhotse cuts, subtitle windows) is keyed on the recording it is cut from, so the parts of one
        recording never land in two splits either (``Processed.split_keys``)."""
        if not self.opts.val_ratio:
            return self.opts.split
        key = min(keys) if keys else f"id:{record.id}"
        digest = hashlib.blake2b(f"{self.opts.seed}:{key}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        return self.opts.val_split if u < self.opts.val_ratio else self.opts.split

    def _writer(self, stream: str, kind: str) -> ShardWriter:
        if stream not in self.writers:
            first = sum(1 for s in self.state.shards if s.stream == stream)
            self.writers[stream] = ShardWriter(
                self.work,
                stream,
                kind,
                self.opts.sample_rate,
                self.opts.max_shard_size,
                self.opts.row_group_rows,
                first,
                self._checkpoint,
                self.visual,
            )
        return self.writers[stream]

    def _checkpoint(self, info: ShardInfo) -> None:
        """A shard closed: record what is durable, so a kill here loses nothing."""
        with on_path(self.rejects_path):
            self.rejects.flush()  # every reject before this point must survive a kill
            os.fsync(self.rejects.fileno())
        if self.keys is not None:
            with on_path(self.keys_path or self.work):
                self.keys.flush()  # ... and so must the dedup keys of every row in a closed shard
                os.fsync(self.keys.fileno())
        self.state.shards.append(info)
        position = info.last_seq + 1
        for stream, w in self.writers.items():
            first_open = w.first_open_seq()
            self.state.durable[stream] = first_open if first_open is not None else position
        self.state.position = position
        self.state.save(self.out)

    # -- resume and finish -----------------------------------------------------------
    def _restore(self) -> None:
        """Drop leftovers of an interrupted run: .tmp shards, shards and rejects past the resume point;
        check that the shards it made durable are still there, whole."""
        with on_path(self.work, "clean up"):
            self._drop_leftovers()
        check_durable(self.out, self.state.shards)

    def _drop_leftovers(self) -> None:
        for tmp in self.work.rglob("*.tmp"):
            tmp.unlink()
        for spill in self.work.glob(f"{SPILL_PREFIX}*"):  # a killed run's spilled duplicate index
            shutil.rmtree(spill, ignore_errors=True)
        known = {s.file for s in self.state.shards}
        for shard in self.work.rglob("shard-*.parquet"):
            if str(shard.relative_to(self.work)) not in known:
                shard.unlink()
        path = self.work / "rejects.jsonl"
        if path.exists():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if _seq_of(line) < self.start]
            atomic_write(path, "".join(kept))
        if self.keys_path is not None and self.keys_path.exists():  # the keys of rows in durable shards, no others
            tmp = self.keys_path.with_name(self.keys_path.name + ".tmp")  # streamed: a rank's keys can be gigabytes
            with open(self.keys_path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
                dst.writelines(line for line in src if line.endswith("\n") and self._durable_keys(line))
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.keys_path)

    def _durable_keys(self, line: str) -> bool:
        try:
            head = json.loads(line)
            return self.state.is_durable(head["stream"], int(head["seq"]))
        except (ValueError, KeyError, TypeError):  # a torn last line (kill mid-write)
            return False

    def finalize(self) -> ConvertResult:
        with on_path(self.out, "finish"):
            return self._finalize()

    def _finalize(self) -> ConvertResult:
        self.state.status = "finalizing"
        self.state.save(self.out)
        rejects_path = self.work / "rejects.jsonl"
        rejects_path.touch()
        counts = RejectCounts.of(rejects_path)
        streams: dict[str, list[ShardInfo]] = {}
        for s in self.state.shards:
            streams.setdefault(s.stream, []).append(s)
        totals: dict[str, Any] = {}
        for s in self.state.shards:
            merge_stats(totals, s.stats)
        placed = {stream: [(self.work / s.file, s) for s in sorted(sh, key=lambda s: s.shard)] for stream, sh in streams.items()}
        shard_rows, configs = place_shards(self.out, placed, self.opts.split, _move)
        if rejects_path.exists():
            with open(rejects_path, encoding="utf-8") as fh:
                write_rejects(self.out, fh, keep_seq=self.rank is not None)
        o = self.opts
        described = describe_summary(
            shard_rows, configs, counts, totals, [s.to_dict() for s in self.skipped], o.sample_rate, o.codec,
            exclude_given=bool(counts.excluded or o.exclude), pairs=o.pairs is not None, visual=self.visual,
            prompts=o.prompting.describe() if o.prompting is not None else None,
        )  # fmt: skip
        rank = self.rank.entry(self.keys_path is not None) if self.rank is not None else None
        manifest = Manifest(
            audiodata_version=__version__,
            format_version=FORMAT_VERSION,
            options=o.recorded(),
            inputs=[InputEntry(f.display, f.spec.formatting or "auto", f.spec.name) for f in self.all_files],
            summary=described,
            shards=shard_rows,
            rejects=counts.entry(o.pairs is not None),
            rank=rank,
        )
        write_dataset(self.out, manifest, o.license, self.visual)
        self.state.status = "complete"
        self.state.save(self.out)
        for kind in KINDS:
            shutil.rmtree(self.work / kind, ignore_errors=True)
        rejects_path.unlink(missing_ok=True)
        return _result_from_manifest(self.out, resumed_from=self.resumed_from)


def duplicate_fields(verdict: Verdict) -> dict[str, Any]:
    """What rejects.jsonl says of a later copy: its cluster and the record it copies (D001/D002)."""
    assert verdict.duplicate_of is not None
    code = "D001" if verdict.kind == "exact" else "D002"
    first = verdict.duplicate_of
    duplicate = {"cluster": verdict.cluster, "kind": verdict.kind, "similarity": round(verdict.similarity, 4), "of": first.where}
    reason = Finding(code, f"{verdict.kind} duplicate of {first.source}:{first.line or first.index}").reason()
    return {"duplicate": duplicate, "reasons": [reason]}


@dataclass
class DedupKeys:
    """One written row of a rank as merge dedups it: its input position and stream, what the deduper compares
    (clip identities, conversation digests), its counters (taken off the totals if it is dropped) and its
    rejects.jsonl entry without the why (``entry``: seq, where, the record as read)."""

    seq: int
    stream: str
    kind: str
    clips: list[tuple[str | None, Fingerprint | None]]
    prompt: bytes
    response: bytes
    stats: dict[str, Any]
    entry: dict[str, Any]

    def to_json(self) -> str:
        clips = [[h, fingerprint_to_json(fp) if fp is not None else None] for h, fp in self.clips]
        data = {
            "seq": self.seq,
            "stream": self.stream,
            "kind": self.kind,
            "clips": clips,
            "prompt": self.prompt.hex(),
            "response": self.response.hex(),
            "stats": self.stats,
            "entry": self.entry,
        }
        return json.dumps(data, ensure_ascii=False, default=unjsonable)

    @classmethod
    def from_json(cls, line: str) -> DedupKeys:
        d = json.loads(line)
        clips = [(h, fingerprint_from_json(fp) if fp is not None else None) for h, fp in d["clips"]]
        prompt, response = bytes.fromhex(d["prompt"]), bytes.fromhex(d["response"])
        return cls(d["seq"], d["stream"], d["kind"], clips, prompt, response, d["stats"], d["entry"])

    def info(self) -> RecordInfo:
        e = self.entry
        return RecordInfo(e["source"], e["index"], e["line"], self.kind, self.clips, self.prompt, self.response)


# -- finishing a dataset: the local run and merge alike --------------------------------------------


@dataclass
class RejectCounts:
    """What ``rejects.jsonl`` holds, by what it says of each line."""

    by_code: Counter[str] = field(default_factory=Counter)
    dup_kinds: Counter[str] = field(default_factory=Counter)
    excluded_by: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    duplicates: int = 0
    equal: int = 0

    @property
    def excluded(self) -> int:
        return sum(self.excluded_by.values())

    def add(self, entry: dict[str, Any]) -> None:
        if "duplicate" in entry:
            self.duplicates += 1
            self.dup_kinds[entry["duplicate"]["kind"]] += 1
        elif "excluded" in entry:
            self.excluded_by[entry["excluded"]["by"]] += 1
        elif "skipped" in entry:
            self.equal += 1
        else:
            self.rejected += 1
            self.by_code.update({r["code"] for r in entry["reasons"]})

    @classmethod
    def of(cls, path: Path) -> RejectCounts:
        counts = cls()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                counts.add(json.loads(line))
        return counts

    def entry(self, pairs: bool) -> RejectsEntry:
        n = self.excluded
        total = self.rejected + self.duplicates + n + self.equal
        equal = self.equal if pairs else None
        return RejectsEntry("rejects.jsonl", total, self.rejected, self.duplicates, n if n else None, equal)


def _move(src: Path, dst: Path) -> None:
    if src.exists():
        os.replace(src, dst)


def place_shards(
    out: Path, streams: dict[str, list[tuple[Path, ShardInfo]]], split: str, put: Callable[[Path, Path], None]
) -> tuple[list[ShardEntry], dict[str, ConfigInfo]]:
    """Shards of each stream (``kind/split``, in order) put at their Hub names under ``out/data`` by ``put``
    (a rename for the local run, a link or copy for merge); the manifest's shard list and configs."""
    kinds = sorted({s.split("/")[0] for s in streams}, key=KINDS.index)
    config_dirs: dict[str, tuple[str, str]] = {}  # name -> (kind, data_dir)
    config_splits: dict[str, dict[str, SplitInfo]] = {}
    shard_rows: list[ShardEntry] = []
    (out / "data").mkdir(exist_ok=True)
    for stream in sorted(streams, key=lambda s: (kinds.index(s.split("/")[0]), s.split("/")[1] != split, s)):
        kind, name_of_split = stream.split("/")
        name = "default" if len(kinds) == 1 else kind
        data_dir = "data" if len(kinds) == 1 else f"data/{kind}"
        shards = streams[stream]
        config_dirs.setdefault(name, (kind, data_dir))
        config_splits.setdefault(name, {})[name_of_split] = SplitInfo(
            sum(s.rows for _, s in shards), sum(s.bytes for _, s in shards)
        )
        for k, (src, s) in enumerate(shards):
            final = f"{data_dir}/{name_of_split}-{k:05d}-of-{len(shards):05d}.parquet"
            dst = out / final
            dst.parent.mkdir(parents=True, exist_ok=True)
            put(src, dst)
            shard_rows.append(ShardEntry(final, name, name_of_split, s.rows, s.bytes, s.sha256, s.audio_seconds, s.clips))
    configs = {name: ConfigInfo(kind, data_dir, config_splits[name]) for name, (kind, data_dir) in config_dirs.items()}
    return shard_rows, configs


def write_rejects(out: Path, lines: Iterable[str], keep_seq: bool = False) -> None:
    """``out/rejects.jsonl`` from ``lines`` (rejects entries in input order), fsynced, through a ``.tmp``;
    each line's input position ``seq`` dropped (a rank keeps it: merge orders by it)."""
    tmp = out / "rejects.jsonl.tmp"
    with on_path(tmp), open(tmp, "w", encoding="utf-8") as dst_fh:
        for line in lines:
            entry = json.loads(line)
            if not keep_seq:
                entry.pop("seq", None)
            dst_fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        dst_fh.flush()
        os.fsync(dst_fh.fileno())
    os.replace(tmp, out / "rejects.jsonl")


def describe_summary(
    shard_rows: list[ShardEntry],
    configs: dict[str, ConfigInfo],
    counts: RejectCounts,
    totals: dict[str, Any],
    skipped: list[dict[str, str]],
    sample_rate: int,
    codec: str,
    *,
    exclude_given: bool,
    pairs: bool,
    visual: Visual,
    prompts: Any,
) -> Summary:
    """The manifest's summary of a finished dataset, from its shards, its rejects and the rows' counters."""
    written = sum(r.rows for r in shard_rows)
    warnings = Counter(totals.get("warnings", {}))
    warnings.update(s["code"] for s in skipped)  # inputs named but not read count with the record warnings
    n_excluded = counts.excluded
    return Summary(
        records_read=written + counts.rejected + counts.duplicates + n_excluded + counts.equal,
        written=written,
        rejected=counts.rejected,
        duplicates=counts.duplicates,
        duplicates_by_kind=dict(sorted(counts.dup_kinds.items())),
        clips=sum(r.clips for r in shard_rows),
        audio_seconds=round(sum(r.audio_seconds for r in shard_rows), 6),
        sample_rate=sample_rate,
        codec=codec,
        source_sampling_rates=totals.get("source_sampling_rates", {}),
        source_formats=totals.get("source_formats", {}),
        warnings_by_code=dict(sorted((k, v) for k, v in warnings.items() if v)),
        kto_labels=totals.get("kto_labels", {}),
        rl_tasks=dict(sorted(totals["rl_tasks"].items())) if "rl_tasks" in totals else None,
        skipped_inputs=skipped,
        rejects_by_code=dict(sorted(counts.by_code.items())),
        configs=configs,
        # only runs given --exclude: other manifests stay as they were
        excluded=n_excluded if exclude_given else None,
        excluded_by=dict(sorted(counts.excluded_by.items())) if exclude_given else None,
        equal_pairs=counts.equal if pairs else None,  # only runs that make pairs from hypotheses
        # only in runs with visual columns: audio-only manifests stay as they were
        images=totals.get("images", 0) if visual.images else None,
        videos=totals.get("videos", 0) if visual.videos else None,
        # rows per metadata key, for the card: only in runs with a metadata column (the raw ASR corpora)
        metadata_keys=dict(sorted((k, v) for k, v in totals.get("metadata_keys", {}).items() if v)) if visual.metadata else None,
        prompts=prompts,
    )


def write_dataset(out: Path, manifest: Manifest, license: str, visual: Visual) -> None:
    """The card, then the manifest (the last file written: a dataset is there once its manifest is)."""
    summary = manifest.summary
    card = card_yaml(summary.configs, summary.sample_rate, license, visual)
    atomic_write(out / CARD, render_card(card, summary))
    atomic_write(out / MANIFEST, manifest.to_json())


def unjsonable(value: Any) -> Any:
    """What rejects.jsonl keeps of a row value JSON has no type for: a dataset row's audio bytes are named
    by their size (the input holds them), anything else (a timestamp, a decimal) as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    return str(value)


def check_durable(out: Path, shards: list[ShardInfo]) -> None:
    """Every shard the resume state counts on is there, at the size it was written: a resume never builds
    on a lost or truncated shard."""
    for s in shards:
        path = out / WORK / s.file
        size = path.stat().st_size if path.is_file() else None
        if size != s.bytes:
            what = "is missing" if size is None else f"is {size} bytes, written as {s.bytes}"
            raise DatasetError(f"{out}: {WORK}/{s.file}, a finished shard the resume builds on, {what}; {RESTART}")


def _seq_of(line: str) -> float:
    """The input position of a rejects line; a torn last line (kill mid-write) sorts last."""
    try:
        return int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def _result_from_manifest(out: Path, resumed_from: int = 0, already_complete: bool = False) -> ConvertResult:
    return ConvertResult.from_manifest(out, Manifest.load(out), resumed_from, already_complete)


__all__ = [
    "ConvertResult",
    "Feed",
    "FeedError",
    "InputError",
    "OptionsError",
    "Progress",
    "check_inputs",
    "convert",
    "convert_fed",
    "rank_feed_items",
]  # fmt: skip
