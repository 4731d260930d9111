"""``lint``: the pre-flight report. Same readers, same rules, same audio stage as convert,
so convert rejects exactly the records lint marks as errors.

The main process only cuts input files into records; workers parse, run the text
rules, decode and measure audio (no encoding), run the audio rules and prepare
``--fix`` repairs. Results come back in input order through the same bounded window
convert uses; the main process adds the cross-record rules (duplicates) and builds
the report.

Text-only lint goes further (:func:`_merge_chunks`): the main process does not read JSON-lines files at
all. It splits each into byte ranges at line starts (:mod:`audiodata.readers.ranges`), a worker reads its
range and returns what it found compactly (:class:`Chunk`: findings by position, the exact-duplicate
digests as 32 bytes a record, counts), and the main process rebases indices, asks the duplicate index and
merges in input order. The report is the one the per-record path gives (tests/pipeline/test_lint_ranges.py).
In a range, records of the common shapes that draw no finding are answered by one fused pass over the parsed
dict (:mod:`audiodata.pipeline.fused`), the rest by the general path; the report is the same
(tests/pipeline/test_fused_lint.py).
"""

from __future__ import annotations

import array
import contextlib
import copy
import gc
import hashlib
import heapq
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from audiodata.audio.load import roots_resolved_once
from audiodata.dedup.index import RecordDeduper, RecordInfo, Verdict, Where, conversation_keys, exact_digests
from audiodata.exclude import ExcludeList
from audiodata.families import DEFAULT_WINDOW, get_family
from audiodata.pipeline import fixout, fused
from audiodata.pipeline.engines import Mapper, stage_mapper
from audiodata.pipeline.options import ConvertOptions, OptionsError, resolve_options
from audiodata.pipeline.process import AudioSettings, preview_record, process_record
from audiodata.pipeline.read import Parser, Pending, ReadSettings, read_raw
from audiodata.pipeline.window import ordered_map
from audiodata.privacy import public_path
from audiodata.readers.items import iter_range_items, range_splittable
from audiodata.readers.jsonstream import Cursor, RawItem, file_failure, line_item, range_lines
from audiodata.readers.longform import LongForm
from audiodata.readers.ranges import split_ranges
from audiodata.readers.sources import InputFile, expand_inputs
from audiodata.records import Record, SourceLoc
from audiodata.rules import fixes
from audiodata.rules.findings import Finding
from audiodata.rules.registry import Severity, select
from audiodata.rules.style import ChunkStyles, Style, StyleStats, shown_prompt, transcript_style
from audiodata.rules.transcript import RateStats
from audiodata.writer.schema import KINDS

REPORT_VERSION = 1
TEXT_BATCH = 512  # records per job without audio: big enough to amortise the hand-off
#: Bytes of a JSON-lines file per job when the workers read the file themselves (text-only lint): ~3,000 chat
#: records, a job's results a few hundred KiB; the parent reads nothing of such files.
RANGE_BYTES = 1 << 20
MAX_PREVIEWS = 500


@dataclass(slots=True)
class Analysis:
    """What a worker finds about one record. Sent back as a plain tuple (``pack``): the main
    process already knows where each record came from, and tuples pickle fast."""

    findings: list[Finding]
    dedup: tuple[Any, ...] | None = None  # (kind, [(clip hash, fingerprint)], prompt key, response key)
    clips: list[tuple[float, int]] | None = None  # (seconds, source sampling rate)
    preview: dict[str, Any] | None = None
    fixed: str | None = None  # the repaired record as one JSON line
    changes: list[str] | None = None
    copy: str | None = None  # the unchanged record as one JSON line (for --fix)
    moved: int = 0  # relative audio paths made absolute in its --fix copy
    #: (kind, KTO label or rl task tag, audios) of a record convert would write
    task: tuple[str, bool | str | None, int] | None = None
    rate: tuple[str, float, float, str] | None = None  # (script, chars/s, seconds, field) of a transcription record
    excluded: str | None = None  # the --exclude list that names the record: not checked
    style: tuple[str, str, Style] | None = None  # (prompt, field, style) of a transcription record's transcript

    def pack(self) -> tuple[Any, ...]:
        fixes = (self.fixed, self.changes, self.copy, self.moved)
        rest = (self.task, self.rate, self.excluded, self.style)
        return (self.findings or None, self.dedup, self.clips, self.preview, *fixes, *rest)

    @classmethod
    def unpack(cls, t: tuple[Any, ...]) -> Analysis:
        return cls(t[0] or [], *t[1:])


#: One record on its way to a worker: (seq, file number, index, line, text or the failed RawItem).
Job = tuple[int, int, int, int, "str | RawItem"]


@dataclass(frozen=True)
class LintTask:
    files: list[InputFile]
    read: ReadSettings
    audio: AudioSettings | None  # None: text rules only
    fix: bool = False
    dedup: bool = True  # send what the record deduper needs (off when no D rule is enabled)
    fix_roots: tuple[str | None, ...] | None = None  # per file, the media root of its --fix copy (fixout.relocate)
    exclude: ExcludeList = field(default_factory=ExcludeList)  # --exclude: records left out by id
    style_task: str = "none"  # --task for the transcript style profile (T002, T003); "none": no profile
    longform: LongForm | None = None  # how the workers read byte ranges of raw ASR corpora (as read_raw would)


class Analyser:
    """Turns raw items into :class:`Analysis` results; one per worker process."""

    def __init__(self, task: LintTask) -> None:
        self.task = task
        self.parse = Parser(task.files, task.read)
        # the fused pass (text-only range jobs): per file, whether its records may take it, and its instance
        ok = task.audio is None and not task.fix and not task.exclude and fused.usable_settings(task.read)
        self.fused_ok = [ok and fused.usable_spec(f.spec) for f in task.files]
        self.fused = [fused.Fused(f.media_root, task.dedup, task.style_task) for f in task.files]

    def __call__(self, batch: list[Job]) -> list[tuple[Any, ...]]:
        out = []
        for seq, n, index, line, text in batch:
            item = RawItem(index, line, text=text, nbytes=len(text)) if isinstance(text, str) else text
            out.append(self.one(seq, n, item).pack())
        return out

    def chunk(self, job: ChunkJob) -> Chunk:
        """The records of one job, analysed by :meth:`one` as every record is, kept compactly: per record
        only what the parent needs in order (findings, exact-duplicate digests, transcript styles), the rest
        counted. A range job's records are read here, from the file (the parent reads nothing of them); their
        indices start at 0, and so do the ids of records without one (``<stem>-<index>``), their lines at 1 (the
        range's line ends counted): the parent rebases indices and lines, and sends ranges only where ids name
        nothing (:func:`_chunk_jobs`). Records of a range the fused pass answers (:mod:`audiodata.pipeline.fused`)
        skip :meth:`one`, with the same result."""
        out = Chunk()
        if job[0] == "range":
            _, n, start, end, line = job
            out.indices = None
            if self.fused_ok[n] and self._fused_range(out, n, start, end, line):
                return out
            f = self.task.files[n]
            pos = Cursor()
            bound = self.task.read.max_record_bytes
            items: Any = iter_range_items(
                f.path, start, end, line, f.media_root, f.input_dir, f.spec.formatting, bound, self.task.longform, pos=pos
            )
        else:
            _, n, batch = job
            items = (RawItem(i, ln, text=t, nbytes=len(t)) if isinstance(t, str) else t for _, _, i, ln, t in batch)
        for item in items:
            if item.stopped:
                out.stopped = item
                return out
            self._add(out, n, item)
        if job[0] == "range":
            out.line_ends = pos.line - line  # read to its end: the line the reader reached, less the first
        return out

    def _fused_range(self, out: Chunk, n: int, start: int, end: int, line: int) -> bool:
        """The records of a range read as lines (:func:`audiodata.readers.jsonstream.range_lines`): those the fused pass
        answers added here, the others through :meth:`_add`; False (nothing added) when the range must be read as
        items (:func:`audiodata.readers.jsonstream.iter_range`)."""
        max_chars = self.task.read.max_record_bytes
        got = range_lines(self.task.files[n].path, start, end, max_chars)
        if got is None:
            return False
        lines, general = got
        out.line_ends = len(lines) - 1  # the range's line ends (every one a \n in the lines read)
        answer = self.fused[n].record
        loads = orjson.loads
        lines_out, dedup, digests = out.lines, out.dedup, out.digests
        kinds, modality, styles = out.kinds, out.modality, out.styles
        for k, piece in enumerate(lines):
            if piece[:1] == b"{" and piece[-1:] == b"}" and (not general or k not in general):
                try:
                    a = answer(loads(piece))
                except Exception:  # not JSON to orjson (json says whether it is), or anything unforeseen: the general path
                    a = None
                if a is not None:
                    kind, audios, keys, style = a
                    i = out.count
                    out.count = i + 1
                    lines_out.append(line + k)
                    if keys is None:
                        dedup.append(0)
                    else:
                        whole, by_prompt = keys
                        dedup.append(1 if by_prompt is None else 2)
                        digests += whole + (by_prompt or _NO_DIGEST)
                    kinds[kind] += 1
                    modality["audio" if audios else "text_only"] += 1
                    if style is not None:
                        styles.add(n, i, line + k, *style)
                    continue
            elif not piece or piece.isspace():
                continue
            item = line_item(piece, out.count, line + k, max_chars, lazy=True)
            if item is not None:
                self._add(out, n, item)
        return True

    def _add(self, out: Chunk, n: int, item: RawItem) -> None:
        """One record of a text-only job through :meth:`one`, added to ``out`` at position ``out.count``."""
        a = self.one(0, n, item)
        i = out.count
        out.count += 1
        out.lines.append(item.line)
        if out.indices is not None:
            out.indices.append(item.index)
        if a.excluded is not None:
            out.excluded[i] = a.excluded
            out.dedup.append(0)
            return
        if a.findings:
            out.findings[i] = a.findings
        digests = exact_digests(*a.dedup) if a.dedup is not None else None
        if digests is None:
            out.dedup.append(0)
        else:
            whole, by_prompt = digests
            out.dedup.append(1 if by_prompt is None else 2)
            out.digests += whole + (by_prompt or _NO_DIGEST)
        if a.task is not None:
            kind, label, audios = a.task
            out.kinds[kind] += 1
            out.modality["audio" if audios else "text_only"] += 1
            if kind == "kto":
                out.kto_labels[bool(label)] += 1
                if out.first_kto < 0:
                    out.first_kto = i
            elif kind == "rl":
                out.rl_tasks[rl_task_tag(label)] += 1
        if a.style is not None:
            out.styles.add(n, i, item.line, *a.style)

    def one(self, seq: int, n: int, item: RawItem) -> Analysis:
        text = item.text.strip() if item.text is not None and self.task.fix else None  # only --fix copies the text
        p = self.parse(seq, n, item)
        rec = p.record
        by = self.task.exclude.by(rec.id) if rec is not None and self.task.exclude else None
        if by is not None:  # left out: not checked; a --fix copy keeps it unchanged (the corpus stays whole)
            out = Analysis([], excluded=by)
            if self.task.fix:
                out.copy = text if text is not None and "\n" not in text else json.dumps(p.item.obj, ensure_ascii=False)
            return out
        out = Analysis(list(p.findings))
        clips: list[tuple[str | None, Any]] | None = None
        if rec is not None and self.task.audio is not None:
            done = process_record(seq, rec, self.task.audio)
            out.findings += done.findings
            out.clips = [(c.seconds, c.source_sampling_rate) for c in done.clips]
            out.preview = done.preview
            if len(done.hashes) == len(rec.audios):
                clips = done.dedup_clips()
            if done.rate is not None and not any(f.is_error for f in out.findings):
                out.rate = (done.rate.script, done.rate.char_rate, done.rate.seconds, done.rate.field)
        elif rec is not None and self.task.dedup:
            clips = [(_ref_identity(rec, r.kind, r.value), None) for r in rec.audios]
        rejected = any(f.is_error for f in out.findings)  # convert drops it anyway: no duplicate of or with it
        if self.task.dedup and rec is not None and clips is not None and not rejected:
            out.dedup = (rec.kind, clips, *conversation_keys(rec))
        if rec is not None and not rejected:
            out.task = (rec.kind, rec.task if rec.kind == "rl" else rec.label, len(rec.audios))
            out.style = transcript_style(rec, self.task.style_task) if self.task.style_task != "none" else None
        if self.task.fix:
            self.fix(p, n, out, text)
        return out

    def fix(self, p: Pending, n: int, out: Analysis, text: str | None) -> None:
        obj = p.item.obj
        if obj is None:
            return  # unparsable: nothing to copy
        fixed: dict[str, Any] | None = None
        proposal = fixes.propose(obj, p.record, out.findings)
        if proposal is not None:
            candidate, changes = proposal
            after = self.parse(p.seq, n, RawItem(p.item.index, p.item.line, obj=candidate))
            if fixes.accept(out.findings, after.findings, changes):
                fixed, out.changes = candidate, changes
        root = self.task.fix_roots[n] if self.task.fix_roots else None
        if root is not None and p.record is not None and isinstance(obj, dict):
            moved_obj = fixed if fixed is not None else copy.deepcopy(obj)
            out.moved = fixout.relocate(moved_obj, p.record, root)
            if out.moved and fixed is None:
                out.copy = json.dumps(moved_obj, ensure_ascii=False)
                return
        if fixed is not None:
            out.fixed = json.dumps(fixed, ensure_ascii=False)
            return
        out.copy = text if text is not None and "\n" not in text else json.dumps(obj, ensure_ascii=False)


#: A text-only job: a byte range of a file the worker reads itself (file number, start, end, first line), or
#: records the parent read (file number, jobs), for inputs that cannot be split (gzip, JSON arrays, datasets).
ChunkJob = tuple[Any, ...]
_NO_DIGEST = bytes(16)


@dataclass(slots=True)
class Chunk:
    """What a worker found in one text-only job, per record position ``i`` (0-based within the job)."""

    count: int = 0  # records (excluded ones too), the file failure not counted
    indices: list[int] | None = field(default_factory=list)  # per record its index; None: a range's, the records before it + i
    lines: list[int] = field(default_factory=list)
    findings: dict[int, list[Finding]] = field(default_factory=dict)
    excluded: dict[int, str] = field(default_factory=dict)  # --exclude list naming the record
    dedup: bytearray = field(default_factory=bytearray)  # per record: 0 no digests, 1 whole digest, 2 whole and by prompt
    digests: bytearray = field(default_factory=bytearray)  # 32 bytes (whole, by prompt or zeros) per record with digests
    kinds: Counter[str] = field(default_factory=Counter)
    modality: Counter[str] = field(default_factory=Counter)
    kto_labels: Counter[bool] = field(default_factory=Counter)
    rl_tasks: Counter[str] = field(default_factory=Counter)
    first_kto: int = -1
    styles: ChunkStyles = field(default_factory=ChunkStyles)  # transcript styles by prompt, located by position
    stopped: RawItem | None = None  # a range job: the file failed here (jsonstream.iter_range); its later ranges are not read
    #: A range job: its line ends (None: the file failed in it). Its lines count from 1, the parent adds the lines
    #: before the range (it does not read the file to number them).
    line_ends: int | None = None


def rl_task_tag(task: object) -> str:
    """An rl record's task tag as the report counts it ("untagged" when it has none)."""
    return str(task) if isinstance(task, str) and task else "untagged"


def _ref_identity(rec: Record, kind: str, value: Any) -> str:
    if kind == "path":
        return fused.path_identity(rec.media_root, str(value))
    if isinstance(value, (str, bytes)):
        data = value.encode() if isinstance(value, str) else value
        return f"{kind}:" + hashlib.blake2b(data, digest_size=16).hexdigest()
    return f"{kind}:" + hashlib.blake2b(json.dumps(value).encode(), digest_size=16).hexdigest()


_ANALYSER: Analyser | None = None


def _init_worker(task: LintTask) -> None:
    global _ANALYSER
    _ANALYSER = Analyser(task)


def _analyse(batch: list[Job]) -> list[tuple[Any, ...]]:
    assert _ANALYSER is not None
    with roots_resolved_once():  # the records of a job share their media root: its links resolved once
        return _ANALYSER(batch)


def _analyse_chunk(job: ChunkJob) -> Chunk:
    assert _ANALYSER is not None
    with roots_resolved_once():
        return _ANALYSER.chunk(job)


@dataclass
class LintReport:
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    audio_checked: bool = True
    model_family: str | None = None
    cutoff_len: int | None = None
    durations: array.array = field(default_factory=lambda: array.array("d"))
    sample_rates: Counter[int] = field(default_factory=Counter)
    previews: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    fixed_output: str | None = None
    not_copied: int = 0
    fixed_files: list[dict[str, str]] | None = None  # several inputs: which input's copy went where
    paths_rewritten: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # records convert would write, per config kind
    kto_labels: Counter[bool] = field(default_factory=Counter)
    rl_tasks: Counter[str] = field(default_factory=Counter)  # rl records convert would write, per task tag
    modality: Counter[str] = field(default_factory=Counter)  # records convert would write: "audio" / "text_only"
    rates: RateStats | None = None  # transcript chars/s per script (audio checked only)
    styles: StyleStats | None = None  # transcript style per input file and per prompt (T002, T003)
    excluded: Counter[str] = field(default_factory=Counter)  # records left out, per --exclude list
    part: str | None = None  # a rank (--num-shards, --parts): the file its share of the work was saved to

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    @property
    def exit_code(self) -> int:
        """1 when any error is found, so CI pipelines can gate on it."""
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON report; a stable interface documented in ``schemas/lint_report.schema.json``."""
        by_code = Counter(f.code for f in self.findings)
        flagged = {(f.source.file, f.source.index) for f in self.findings if f.source and f.is_error}
        out: dict[str, Any] = {
            "version": REPORT_VERSION,
            "summary": {
                "records": self.records,
                "records_with_errors": len(flagged),
                "errors": self.errors,
                "warnings": self.count(Severity.WARNING),
                "infos": self.count(Severity.INFO),
                "by_code": dict(sorted(by_code.items())),
                "inputs": self.inputs,
                "audio_checked": self.audio_checked,
                "clips": len(self.durations),
                "audio_hours": round(sum(self.durations) / 3600, 6),
                "model_family": self.model_family,
                "cutoff_len": self.cutoff_len,
                "kinds": {k: self.kinds[k] for k in KINDS if self.kinds[k]},
                "kto_labels": {"desirable": self.kto_labels[True], "undesirable": self.kto_labels[False]},
                "modality": {"audio": self.modality["audio"], "text_only": self.modality["text_only"]},
                "excluded": sum(self.excluded.values()),
                "excluded_by": dict(sorted(self.excluded.items())),
                # only with rl records (reports of other corpora stay as they were)
                **({"rl_tasks": dict(sorted(self.rl_tasks.items()))} if self.rl_tasks else {}),
            },
            "findings": [
                {
                    "code": f.code,
                    "severity": f.severity.value,
                    "source": f.source.file if f.source else None,
                    "index": f.source.index if f.source else None,
                    "line": f.source.line if f.source else None,
                    **({"member": f.source.member} if f.source and f.source.member else {}),
                    "field": f.field,
                    "message": f.message,
                }
                for f in self.findings
            ],
        }
        if self.rates is not None and self.rates.scripts:
            out["summary"]["transcript_rates"] = self.rates.summary()
        if self.styles is not None and self.styles.records:
            out["summary"]["transcript_style"] = self.styles.summary(self.inputs)
        if self.fixed_output is not None:
            out["fix"] = {"output": self.fixed_output, "records_changed": len(self.fixes), "not_copied": self.not_copied}
            if self.fixed_files is not None:
                out["fix"].update(files=self.fixed_files, paths_rewritten=self.paths_rewritten)
            out["fixes"] = self.fixes
        return out

    def html_extras(self) -> dict[str, Any]:
        """What the HTML report draws besides the JSON report."""
        return {
            "durations": list(self.durations),
            "sample_rates": {str(k): v for k, v in sorted(self.sample_rates.items())},
            "previews": self.previews,
            "model_window": _window(self.model_family),
            "audio_checked": self.audio_checked,
            "transcript_rates": self._rate_extras(),
        }

    def _rate_extras(self) -> dict[str, dict[str, Any]]:
        """Per script: every measured chars/s (the histogram) with the summary's bounds and band."""
        if self.rates is None:
            return {}
        return {s: {**info, "rates": self.rates.values(s)} for s, info in self.rates.summary().items()}


def _window(family: str | None) -> float | None:
    return get_family(family).window_seconds if family else DEFAULT_WINDOW


ProgressFn = Callable[[int, int, int], None]  # (bytes done, bytes total, records)


def lint(
    inputs: list[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
    audio: bool = True,
    fix: str | os.PathLike[str] | None = None,
    html: bool = False,
    on_progress: ProgressFn | None = None,
    engine: str = "local",
    parts: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> LintReport:
    """Check ``inputs`` without touching them. ``audio=False`` runs the text rules only; ``fix`` writes
    the repaired copy there (one input file: that file, JSONL; several: a folder with one copy per
    input, see :mod:`audiodata.pipeline.fixout`); ``html`` keeps audio previews of flagged records. ``engine="ray"``
    runs the workers' jobs on the connected Ray cluster (else a local one), the report the same
    (:mod:`audiodata.pipeline.raymap`). ``parts``: ranks (:func:`stage_mapper`); a rank returns an empty report
    whose ``part`` names the file it saved."""
    opts = resolve_options(options, kwargs)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    exclude = [Path(fix)] if fix else None
    expanded = expand_inputs(
        paths, opts.media_root, opts.format, opts.datasets, exclude, opts.all_files, opts.absolute_paths, opts.row_columns
    )
    files = expanded.files
    enabled = frozenset(select(opts.select or None, opts.ignore or None))
    # lint's clips meet only each other: hashed by its own identity (transform.identity_hash), not the stored pcm_hash
    settings = replace(opts.audio_settings(enabled, encode=False, preview=html), own_identity=True) if audio else None
    dup_on = "D001" in enabled or "D003" in enabled
    read = opts.read_settings(enabled)
    raw = next((f for f in files if f.kind != "json"), None)
    if fix is not None and raw is not None:  # a dataset's rows or a tar's samples have no JSON text to repair in place
        raise OptionsError(f"--fix writes repaired copies of JSON inputs; {raw.display} is a {raw.kind} input (convert reads it)")
    plan = fixout.plan(files, fix, opts.media_root) if fix is not None else None
    # the transcript style profile: what T002/T003 judge, reported with them (about a fifth of text-only lint's CPU)
    style_on = opts.task != "none" and ("T002" in enabled or "T003" in enabled)
    roots = plan.roots() if plan else None
    longform = opts.longform(read.enabled)
    task = LintTask(
        files, read, settings, fix is not None, dup_on, roots, opts.excluded, opts.task if style_on else "none", longform
    )
    # once the inputs are known good: a bad path is said before any cluster starts
    mapper, ranked = stage_mapper("lint", engine, parts, opts, files, {"audio": audio, "html": html, "fix": fix is not None})
    if ranked is not None and ranked.index is not None and fix is not None:
        raise OptionsError("--fix writes its copies when the ranks are merged (--parts DIR without --num-shards), not in a rank")
    report = LintReport(
        inputs=[f.display for f in files], audio_checked=audio, model_family=opts.model_family, cutoff_len=opts.cutoff_len
    )
    report.findings += [s.finding() for s in expanded.skipped]  # entries and files named but not read: F006, F007
    # the same record-level logic as `audiodata dedup`, exact layer only; findings are the report, so no clusters
    deduper = RecordDeduper(near=False, memory=opts.dedup_memory, keep_report=False)
    report.rates = RateStats() if audio else None
    report.styles = StyleStats() if style_on else None
    out = fixout.FixWriter(plan) if plan is not None else None

    first_kto: SourceLoc | None = None

    def where(n: int, index: int, line: int) -> SourceLoc:
        return SourceLoc(files[n].display, index, line)

    def duplicates(n: int, index: int, line: int, verdict: Verdict) -> None:
        if verdict.duplicate_of is not None and "D001" in enabled:
            msg = f"exact duplicate of {_loc(verdict.duplicate_of)}"
            report.findings.append(Finding("D001", msg, "", where(n, index, line)))
        if verdict.conflict_with is not None and "D003" in enabled:
            msg = f"same audio and prompt as {_loc(verdict.conflict_with)} but a different response"
            report.findings.append(Finding("D003", msg, "", where(n, index, line)))

    if _by_chunks(task):  # text only: workers read byte ranges and send digests (_merge_chunks)
        try:
            with _heap_frozen():
                first_kto = _merge_chunks(files, opts, task, report, deduper, duplicates, on_progress, mapper)
        finally:
            deduper.close()
        if ranked is not None and ranked.index is not None:
            report.part = str(ranked.folder / ranked.name(ranked.index, ranked.count))
            return report
        return _finish(report, files, opts, task, enabled, first_kto, html, None, None, fix)
    try:
        for n, index, line, a in analyse_stream(files, opts, task, on_progress, mapper):
            if a.excluded is not None:
                report.excluded[a.excluded] += 1
                if out is not None:
                    _write_fixed(out, n, report, a, where(n, index, line))
                continue
            report.records += 1
            if a.findings:
                report.findings += a.findings
            if dup_on and a.dedup is not None:
                kind, clips, prompt, response = a.dedup
                info = RecordInfo(files[n].display, index, line, kind, clips, prompt, response)
                duplicates(n, index, line, deduper.check(info))
            if a.task is not None:
                report.kinds[a.task[0]] += 1
                report.modality["audio" if a.task[2] else "text_only"] += 1
                if a.task[0] == "kto":
                    report.kto_labels[bool(a.task[1])] += 1
                    first_kto = first_kto or where(n, index, line)
                elif a.task[0] == "rl":
                    report.rl_tasks[rl_task_tag(a.task[1])] += 1
            if a.rate is not None and report.rates is not None:
                report.rates.add(n, index, line, *a.rate)
            if a.style is not None and report.styles is not None:
                report.styles.add(n, index, line, *a.style)
            if a.clips:
                for seconds, rate in a.clips:
                    report.durations.append(seconds)
                    report.sample_rates[rate] += 1
            if a.preview is not None and len(report.previews) < MAX_PREVIEWS:
                key = f"{files[n].display}#{index}"
                report.previews[key] = {**a.preview, "data": _b64(a.preview["data"])}
            if out is not None:
                _write_fixed(out, n, report, a, where(n, index, line))
        if out is not None:
            out.close()
    except BaseException:
        if out is not None:
            out.abort()
        raise
    finally:
        deduper.close()
    if ranked is not None and ranked.index is not None:
        report.part = str(ranked.folder / ranked.name(ranked.index, ranked.count))
        return report
    return _finish(report, files, opts, task, enabled, first_kto, html, out, plan, fix)


def _by_chunks(task: LintTask) -> bool:
    """Whether the run takes the text-only path (:func:`_merge_chunks`): no audio, no ``--fix`` copies."""
    return task.audio is None and not task.fix


def _finish(
    report: LintReport,
    files: list[InputFile],
    opts: ConvertOptions,
    task: LintTask,
    enabled: frozenset[str],
    first_kto: SourceLoc | None,
    html: bool,
    out: fixout.FixWriter | None,
    plan: fixout.FixPlan | None,
    fix: str | os.PathLike[str] | None,
) -> LintReport:
    """The dataset-stage findings (P003, R005, T002/T003), late previews and the --fix outputs, once every
    record is in."""
    if first_kto is not None and len(report.kto_labels) == 1 and "P003" in enabled:
        label, n_kto = next(iter(report.kto_labels.items()))
        msg = f"all {n_kto} KTO records are labelled {'desirable' if label else 'undesirable'}: KTO needs both kinds"
        report.findings.append(Finding("P003", msg, "label", first_kto))
    late: list[tuple[int, int]] = []
    if report.rates is not None and "R005" in enabled:
        late += _rate_outliers(report, report.rates, files)
    if report.styles is not None:
        late += _style_mixes(report, report.styles, files, enabled)
    if html and late:
        _late_previews(files, opts, task, sorted(set(late)), report)
    if out is not None and plan is not None:
        files_written = out.commit()
        shown = public_path(str(fix), opts.absolute_paths)
        report.fixed_output = shown
        if not plan.single:
            report.fixed_files = [_public_fix(e, str(fix), shown, opts.absolute_paths) for e in files_written]
    return report


def _chunk_jobs(
    files: list[InputFile], opts: ConvertOptions, task: LintTask
) -> Iterator[tuple[tuple[int, int, bool], tuple[ChunkJob]]]:
    """Text-only jobs in input order, each with (file number, bytes of the inputs done when it is, a range job?): byte
    ranges of every JSON-lines file that can be split (:func:`range_splittable`), whose records the workers
    read; records read here, in batches, from every other input."""
    done = 0
    # a record without an id is named by its index in the file, which a worker reading a range does not know: where
    # names matter (an --exclude list, a prompt pool drawn by id, --hypotheses looked up by id) the parent reads
    ids_matter = bool(task.exclude) or task.read.template is not None or task.read.pairs is not None
    for n, f in enumerate(files):
        ranges = None
        if not ids_matter and range_splittable(f.path, f.kind, f.spec.formatting, task.longform):
            try:
                ranges = split_ranges(f.path, max(1, -(-f.size // RANGE_BYTES)), lines=False)
            except (OSError, ValueError):  # gone or changed since: the whole read reports it
                ranges = None
        if ranges is not None:
            for r in ranges:
                if r.size:
                    yield (n, done + r.end, True), (("range", n, r.start, r.end, r.line),)
            done += f.size
            continue
        batch: list[Job] = []
        raw = read_raw([f], opts.max_record_bytes, bounds=opts.gzip_bounds, longform=task.longform)
        for _, _, item in raw:
            batch.append((0, n, item.index, item.line, item.text if item.text is not None else item))
            if len(batch) >= TEXT_BATCH:
                yield (n, done, False), (("items", n, batch),)
                batch = []
        done += f.size
        if batch:
            yield (n, done, False), (("items", n, batch),)


def _merge_chunks(
    files: list[InputFile],
    opts: ConvertOptions,
    task: LintTask,
    report: LintReport,
    deduper: RecordDeduper,
    duplicates: Callable[[int, int, int, Verdict], None],
    on_progress: ProgressFn | None,
    mapper: Mapper = ordered_map,
) -> SourceLoc | None:
    """Text-only lint's parent: what the workers found (:meth:`Analyser.chunk`) merged into ``report`` in input
    order, exactly as the per-record loop of :func:`lint` merges it; returns the first KTO record."""
    total = sum(f.size for f in files)
    before = [0] * len(files)  # records of each file in the jobs merged so far
    stopped = [False] * len(files)  # the file failed: later ranges are not read (as one reader stops there)
    first_kto: SourceLoc | None = None
    parse: Parser | None = None
    records = 0
    dedup_on = task.dedup
    styles = report.styles
    jobs = _chunk_jobs(files, opts, task)
    next_line = [1] * len(files)  # of each file, the first line of the next range
    for (n, done, ranged), chunk in mapper(_analyse_chunk, jobs, opts.workers, initializer=_init_worker, initargs=(task,)):
        if stopped[n]:
            continue
        display = files[n].display
        base = before[n]
        lines, found, excluded = chunk.lines, chunk.findings, chunk.excluded
        shift = 0  # a range's lines count from 1: the lines before it
        if ranged:
            shift = next_line[n] - 1
            next_line[n] += chunk.line_ends or 0  # None: the file failed in the range (it is not read further)
            if shift:
                lines = [line + shift for line in lines]
        indices = range(base, base + chunk.count) if chunk.indices is None else chunk.indices
        # the duplicate index first, in input order (it depends on nothing else), then the findings in input order
        hits = deduper.check_rows(display, indices, lines, chunk.dedup, bytes(chunk.digests)) if dedup_on else {}
        for i in sorted(found.keys() | hits.keys()) if hits else found:
            fs = found.get(i)
            if fs:
                moved = chunk.indices is None and (base or shift)
                report.findings += [_moved(f, base, shift) for f in fs] if moved else fs
            verdict = hits.get(i)
            if verdict is not None:
                duplicates(n, indices[i], lines[i], verdict)
        if styles is not None and chunk.styles.groups:
            styles.merge(n, chunk.styles, _locator(indices, lines))
        for by in excluded.values():
            report.excluded[by] += 1
        report.records += chunk.count - len(excluded)
        report.kinds.update(chunk.kinds)
        report.modality.update(chunk.modality)
        report.kto_labels.update(chunk.kto_labels)
        report.rl_tasks.update(chunk.rl_tasks)
        if first_kto is None and chunk.first_kto >= 0:
            k = chunk.first_kto
            first_kto = SourceLoc(display, indices[k], lines[k])
        before[n] += chunk.count
        if chunk.stopped is not None:  # the file failed in this range: one more item, as the whole read gives it
            stopped[n] = True
            item = chunk.stopped
            item = file_failure(RawItem(base + item.index, item.line + shift, code=item.code, error=item.error), before[n] > 0)
            parse = parse or Parser(files, task.read)
            report.records += 1
            report.findings += parse(0, n, item).findings
        records += chunk.count
        if on_progress:
            on_progress(done, total, records)
    return first_kto


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """The objects alive now (modules, the caller's data: hundreds of thousands) left out of the garbage collector's
    full passes while the parent merges (``gc.freeze``): each chunk it unpickles makes objects, which trigger
    collections, and a full one walked that whole heap again (8% of the parent's CPU at 200k records). Nothing
    of it is garbage meanwhile; it is handed back after. Left alone when the caller froze objects itself."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _locator(indices: Sequence[int], lines: Sequence[int | None]) -> Callable[[int], tuple[int, int]]:
    """A chunk position -> (index, line or -1) in its file."""

    def at(i: int) -> tuple[int, int]:
        line = lines[i]
        return indices[i], -1 if line is None else line

    return at


def _moved(f: Finding, base: int, shift: int) -> Finding:
    """``f`` of a record read in a byte range, located by its index and line in the file (the range's records start
    at index 0 and line 1)."""
    s = f.source
    if s is None:
        return f
    line = None if s.line is None else s.line + shift
    return Finding(f.code, f.message, f.field, SourceLoc(s.file, s.index + base, line, s.member))


def record_jobs(
    files: list[InputFile], opts: ConvertOptions, task: LintTask, file_done: Callable[[int], None] | None = None
) -> Iterator[tuple[list[Job], tuple[list[Job]]]]:
    """The records of ``files``, read here, in batches for the workers (``(batch, (batch,))``, as the ordered map
    takes jobs); ``file_done(bytes)`` as each input file is read."""
    size = opts.batch_size if task.audio is not None else TEXT_BATCH
    batch: list[Job] = []
    longform = opts.longform(task.read.enabled)
    raw = read_raw(files, opts.max_record_bytes, on_file_done=file_done, bounds=opts.gzip_bounds, longform=longform)
    for seq, n, item in raw:
        batch.append((seq, n, item.index, item.line, item.text if item.text is not None else item))
        if len(batch) >= size:
            yield batch, (batch,)
            batch = []
    if batch:
        yield batch, (batch,)


def analyse_stream(
    files: list[InputFile],
    opts: ConvertOptions,
    task: LintTask,
    on_progress: ProgressFn | None = None,
    mapper: Mapper = ordered_map,
) -> Iterator[tuple[int, int, int, Analysis]]:
    """``(file number, index, line, analysis)`` for every record, in input order; the work runs in
    ``opts.workers`` processes through the bounded ordered window convert uses (or ``mapper``'s: a Ray cluster's)."""
    total = sum(f.size for f in files)
    done_bytes = [0]
    records = 0

    def file_done(n: int) -> None:
        done_bytes[0] = n

    jobs = record_jobs(files, opts, task, file_done)
    for batch, results in mapper(_analyse, jobs, opts.workers, initializer=_init_worker, initargs=(task,)):
        for (_, n, index, line, _), packed in zip(batch, results, strict=True):
            yield n, index, line, Analysis.unpack(packed)
        records += len(batch)
        if on_progress:
            on_progress(done_bytes[0], total, records)


def _rate_outliers(report: LintReport, rates: RateStats, files: list[InputFile]) -> list[tuple[int, int]]:
    """R005 findings merged into the report in input order; returns the flagged records (file
    number, index) that have no audio preview yet."""
    found: list[tuple[tuple[int, int], Finding]] = []
    for o in rates.outliers():
        msg = (
            f"{o.rate:.1f} characters/s, {o.rate / o.band.median:.2g}x this dataset's median for {o.script} text "
            f"({o.band.median:.1f}/s over {o.band.records} records; band {o.band.low:.1f}-{o.band.high:.1f}/s)"
        )
        where = SourceLoc(files[o.file].display, o.index, o.line)
        found.append(((o.file, o.index), Finding("R005", msg, o.field, where)))
    return _merge_late(report, found, files)


Late = list[tuple[tuple[int, int], Finding]]  # dataset-stage findings with the (file number, index) they flag


def _style_mixes(
    report: LintReport, styles: StyleStats, files: list[InputFile], enabled: frozenset[str]
) -> list[tuple[int, int]]:
    """T002/T003 findings merged into the report in input order (see :func:`_rate_outliers`)."""
    found: Late = []

    def loc(at: tuple[int, int, int]) -> SourceLoc:
        return SourceLoc(files[at[0]].display, at[1], None if at[2] < 0 else at[2])

    if "T002" in enabled:
        for m in styles.mixes():
            counts = ", ".join(f"{n} {v}" for v, n in m.counts)
            msg = (
                f"transcripts under the prompt {shown_prompt(m.prompt, 60)!r} mix {m.trait} styles ({counts}): this one is "
                f"the first {m.value}; the most common, {m.counts[0][0]}, starts at {loc(m.example)}"
            )
            found.append(((m.at[0], m.at[1]), Finding("T002", msg, m.field, loc(m.at))))
    if "T003" in enabled:
        for a in styles.annotation_mixes():
            shown = ", ".join(a.examples)
            msg = (
                f"none of this file's {a.records} transcripts under the prompt {shown_prompt(a.prompt, 60)!r} has "
                f"{a.annotation}, but {a.count} of {a.of} in {files[a.with_file].display} do ({shown})"
            )
            found.append(((a.at[0], a.at[1]), Finding("T003", msg, a.field, loc(a.at))))
    return _merge_late(report, found, files)


def _merge_late(report: LintReport, found: Late, files: list[InputFile]) -> list[tuple[int, int]]:
    """Dataset-stage findings merged into the report in input order; returns the flagged records (file
    number, index) that have no audio preview yet."""
    if not found:
        return []
    found.sort(key=lambda t: t[0])
    number: dict[str, int] = {}
    for n, f in enumerate(files):
        number.setdefault(f.display, n)

    def key(f: Finding) -> tuple[int, int]:
        return (number.get(f.source.file, len(files)), f.source.index) if f.source else (len(files), 0)

    report.findings = list(heapq.merge(report.findings, [f for _, f in found], key=key))
    return [k for k, _ in found if f"{files[k[0]].display}#{k[1]}" not in report.previews]


def _late_previews(
    files: list[InputFile], opts: ConvertOptions, task: LintTask, wanted: list[tuple[int, int]], report: LintReport
) -> None:
    """Audio players for records only the dataset stage flagged: read those records again and
    decode their first clip (bounded by MAX_PREVIEWS; the rest of the input is only scanned)."""
    if task.audio is None:
        return
    todo = set(wanted[: max(0, MAX_PREVIEWS - len(report.previews))])
    parse = Parser(files, task.read)
    longform = opts.longform(task.read.enabled)
    for seq, n, item in read_raw(files, opts.max_record_bytes, bounds=opts.gzip_bounds, longform=longform):
        if not todo:
            break
        if (n, item.index) not in todo:
            continue
        todo.discard((n, item.index))
        rec = parse(seq, n, item).record
        preview = preview_record(rec, task.audio) if rec is not None else None
        if preview is not None:
            report.previews[f"{files[n].display}#{item.index}"] = {**preview, "data": _b64(preview["data"])}


def _loc(info: Where) -> str:
    return str(SourceLoc(info.source, info.index, info.line))


def _write_fixed(out: fixout.FixWriter, n: int, report: LintReport, a: Analysis, source: SourceLoc) -> None:
    line = a.fixed if a.fixed is not None else a.copy
    if line is None:
        report.not_copied += 1
        return
    out.write(n, line)
    report.paths_rewritten += a.moved
    if a.fixed is not None:
        report.fixes.append({"source": source.file, "index": source.index, "line": source.line, "changes": a.changes})


def _public_fix(entry: dict[str, str], fix: str, shown: str, absolute: bool) -> dict[str, str]:
    """Which input went where, as the report names them: copies under ``--fix`` as it is shown, inputs public."""
    out = entry["output"]
    if not absolute and os.path.isabs(out) and os.path.abspath(out).startswith(os.path.abspath(fix) + os.sep):
        out = os.path.join(shown, os.path.relpath(os.path.abspath(out), os.path.abspath(fix)))
    return {"input": public_path(entry["input"], absolute), "output": public_path(out, absolute)}


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")

