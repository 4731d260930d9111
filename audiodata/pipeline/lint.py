"""``lint``: the pre-flight report. Same readers, same rules, same audio stage as convert,
so convert rejects exactly the records lint marks as errors.

The main process only cuts input files into records; workers parse, run the text
rules, decode and measure audio (no encoding), run the audio rules and prepare
``--fix`` repairs. Results come back in input order through the same bounded window
convert uses; the main process adds the cross-record rules (duplicates) and builds
the report.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from audiodata.dedup.index import RecordDeduper, RecordInfo, conversation_keys
from audiodata.families import DEFAULT_WINDOW, get_family
from audiodata.pipeline.options import ConvertOptions
from audiodata.pipeline.process import AudioSettings, process_record
from audiodata.pipeline.read import Parser, Pending, ReadSettings, read_raw
from audiodata.pipeline.window import ordered_map
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.sources import InputFile, expand_inputs
from audiodata.records import Record, SourceLoc
from audiodata.rules import fixes
from audiodata.rules.findings import Finding
from audiodata.rules.registry import Severity, select

REPORT_VERSION = 1
TEXT_BATCH = 512  # records per job without audio: big enough to amortise the hand-off
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

    def pack(self) -> tuple[Any, ...]:
        return (self.findings or None, self.dedup, self.clips, self.preview, self.fixed, self.changes, self.copy)

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


class Analyser:
    """Turns raw items into :class:`Analysis` results; one per worker process."""

    def __init__(self, task: LintTask) -> None:
        self.task = task
        self.parse = Parser(task.files, task.read)

    def __call__(self, batch: list[Job]) -> list[tuple[Any, ...]]:
        out = []
        for seq, n, index, line, text in batch:
            item = RawItem(index, line, text=text, nbytes=len(text)) if isinstance(text, str) else text
            out.append(self.one(seq, n, item).pack())
        return out

    def one(self, seq: int, n: int, item: RawItem) -> Analysis:
        text = item.text.strip() if item.text is not None else None
        p = self.parse(seq, n, item)
        out = Analysis(list(p.findings))
        rec = p.record
        clips: list[tuple[str, Any]] | None = None
        if rec is not None and self.task.audio is not None:
            done = process_record(seq, rec, self.task.audio)
            out.findings += done.findings
            out.clips = [(c.seconds, c.source_sampling_rate) for c in done.clips]
            out.preview = done.preview
            if len(done.hashes) == len(rec.audios):
                clips = list(zip(done.hashes, done.prints or [None] * len(done.hashes), strict=True))
        elif rec is not None and self.task.dedup:
            clips = [(_ref_identity(rec, r.kind, r.value), None) for r in rec.audios]
        rejected = any(f.is_error for f in out.findings)  # convert drops it anyway: no duplicate of or with it
        if self.task.dedup and rec is not None and clips is not None and not rejected:
            out.dedup = (rec.kind, clips, *conversation_keys(rec))
        if self.task.fix:
            self.fix(p, n, out, text)
        return out

    def fix(self, p: Pending, n: int, out: Analysis, text: str | None) -> None:
        obj = p.item.obj
        if obj is None:
            return  # unparsable: nothing to copy
        proposal = fixes.propose(obj, p.record, out.findings)
        if proposal is not None:
            fixed, changes = proposal
            after = self.parse(p.seq, n, RawItem(p.item.index, p.item.line, obj=fixed))
            if fixes.accept(out.findings, after.findings, changes):
                out.fixed, out.changes = json.dumps(fixed, ensure_ascii=False), changes
                return
        out.copy = text if text is not None and "\n" not in text else json.dumps(obj, ensure_ascii=False)


def _ref_identity(rec: Record, kind: str, value: Any) -> str:
    if kind == "path":
        return "path:" + os.path.normpath(os.path.join(rec.media_root, str(value)))
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
    return _ANALYSER(batch)


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
            },
            "findings": [
                {
                    "code": f.code,
                    "severity": f.severity.value,
                    "source": f.source.file if f.source else None,
                    "index": f.source.index if f.source else None,
                    "line": f.source.line if f.source else None,
                    "field": f.field,
                    "message": f.message,
                }
                for f in self.findings
            ],
        }
        if self.fixed_output is not None:
            out["fix"] = {"output": self.fixed_output, "records_changed": len(self.fixes), "not_copied": self.not_copied}
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
        }


def _window(family: str | None) -> float | None:
    return get_family(family).window_seconds if family else DEFAULT_WINDOW


ProgressFn = Callable[[int, int, int], None]  # (bytes done, bytes total, records)


def lint(
    inputs: list[str | os.PathLike[str]] | str | os.PathLike[str],
    options: ConvertOptions | None = None,
    audio: bool = True,
    fix: str | os.PathLike[str] | None = None,
    html: bool = False,
    on_progress: ProgressFn | None = None,
    **kwargs: Any,
) -> LintReport:
    """Check ``inputs`` without touching them. ``audio=False`` runs the text rules only;
    ``fix`` writes a repaired copy (JSONL) there; ``html`` keeps audio previews of flagged records."""
    opts = options or ConvertOptions(**kwargs)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    expanded = expand_inputs(paths, opts.media_root, opts.format, opts.datasets, [Path(fix)] if fix else None, opts.all_files)
    files = expanded.files
    enabled = frozenset(select(opts.select or None, opts.ignore or None))
    settings = opts.audio_settings(enabled, encode=False, preview=html) if audio else None
    dup_on = "D001" in enabled or "D003" in enabled
    read = ReadSettings(opts.max_record_bytes, opts.prompt, opts.system, enabled)
    task = LintTask(files, read, settings, fix is not None, dup_on)
    report = LintReport(
        inputs=[f.display for f in files], audio_checked=audio, model_family=opts.model_family, cutoff_len=opts.cutoff_len
    )
    report.findings += [s.finding() for s in expanded.skipped]  # entries and files named but not read: F006, F007
    deduper = RecordDeduper(near=False)  # the same record-level logic as `audiodata dedup`, exact layer only
    out: TextIO | None = _open_fix(fix) if fix else None

    def where(n: int, index: int, line: int) -> SourceLoc:
        return SourceLoc(files[n].display, index, line)

    try:
        for n, index, line, a in analyse_stream(files, opts, task, on_progress):
            report.records += 1
            if a.findings:
                report.findings += a.findings
            if dup_on and a.dedup is not None:
                kind, clips, prompt, response = a.dedup
                info = RecordInfo(files[n].display, index, line, kind, clips, prompt, response)
                verdict = deduper.check(info)
                if verdict.duplicate_of is not None and "D001" in enabled:
                    msg = f"exact duplicate of {_loc(verdict.duplicate_of)}"
                    report.findings.append(Finding("D001", msg, "", where(n, index, line)))
                if verdict.conflict_with is not None and "D003" in enabled:
                    msg = f"same audio and prompt as {_loc(verdict.conflict_with)} but a different response"
                    report.findings.append(Finding("D003", msg, "", where(n, index, line)))
            if a.clips:
                for seconds, rate in a.clips:
                    report.durations.append(seconds)
                    report.sample_rates[rate] += 1
            if a.preview is not None and len(report.previews) < MAX_PREVIEWS:
                key = f"{files[n].display}#{index}"
                report.previews[key] = {**a.preview, "data": _b64(a.preview["data"])}
            if out is not None:
                _write_fixed(out, report, a, where(n, index, line))
    finally:
        if out is not None:
            out.close()
    if fix is not None:
        tmp = Path(str(fix) + ".tmp")
        tmp.replace(fix)
        report.fixed_output = str(fix)
    return report


def analyse_stream(
    files: list[InputFile], opts: ConvertOptions, task: LintTask, on_progress: ProgressFn | None = None
) -> Iterator[tuple[int, int, int, Analysis]]:
    """``(file number, index, line, analysis)`` for every record, in input order; the work runs in
    ``opts.workers`` processes through the bounded ordered window convert uses."""
    total = sum(f.path.stat().st_size for f in files if f.path.exists())
    done_bytes = [0]
    records = 0

    def file_done(n: int) -> None:
        done_bytes[0] = n

    size = opts.batch_size if task.audio is not None else TEXT_BATCH

    def jobs() -> Iterator[tuple[list[Job], tuple[Any, ...]]]:
        batch: list[Job] = []
        for seq, n, item in read_raw(files, opts.max_record_bytes, on_file_done=file_done):
            batch.append((seq, n, item.index, item.line, item.text if item.text is not None else item))
            if len(batch) >= size:
                yield batch, (batch,)
                batch = []
        if batch:
            yield batch, (batch,)

    for batch, results in ordered_map(_analyse, jobs(), opts.workers, initializer=_init_worker, initargs=(task,)):
        for (_, n, index, line, _), packed in zip(batch, results, strict=True):
            yield n, index, line, Analysis.unpack(packed)
        records += len(batch)
        if on_progress:
            on_progress(done_bytes[0], total, records)


def _loc(info: RecordInfo) -> str:
    return str(SourceLoc(info.source, info.index, info.line))


def _open_fix(fix: str | os.PathLike[str]) -> TextIO:
    Path(fix).parent.mkdir(parents=True, exist_ok=True)
    return open(str(fix) + ".tmp", "w", encoding="utf-8")


def _write_fixed(out: TextIO, report: LintReport, a: Analysis, source: SourceLoc) -> None:
    line = a.fixed if a.fixed is not None else a.copy
    if line is None:
        report.not_copied += 1
        return
    out.write(line + "\n")
    if a.fixed is not None:
        report.fixes.append({"source": source.file, "index": source.index, "line": source.line, "changes": a.changes})


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")

