"""``lint``: the pre-flight report. Same readers, same rules, same audio stage as convert,
so convert rejects exactly the records lint marks as errors.

First cut (issue 3 grows it): terminal and JSON reports over every rule in the
registry; the HTML report, --fix, token-budget rules and the speed benchmark are to come.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from audiodata.pipeline.options import ConvertOptions
from audiodata.pipeline.process import AudioSettings, process_batch
from audiodata.pipeline.read import Pending, read_records
from audiodata.readers.sources import expand
from audiodata.rules.findings import Finding
from audiodata.rules.registry import Severity, select

REPORT_VERSION = 1


@dataclass
class LintReport:
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def exit_code(self) -> int:
        """1 when any error is found, so CI pipelines can gate on it."""
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        by_code = Counter(f.code for f in self.findings)
        flagged = {(f.source.file, f.source.index) for f in self.findings if f.source and f.is_error}
        return {
            "version": REPORT_VERSION,
            "summary": {
                "records": self.records,
                "records_with_errors": len(flagged),
                "errors": self.errors,
                "warnings": sum(1 for f in self.findings if f.severity is Severity.WARNING),
                "by_code": dict(sorted(by_code.items())),
                "inputs": self.inputs,
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


def lint(
    inputs: list[str | os.PathLike[str]] | str, options: ConvertOptions | None = None, audio: bool = True, **kwargs: Any
) -> LintReport:
    """Check ``inputs`` without writing anything. ``audio=False`` skips decoding (text rules only)."""
    opts = options or ConvertOptions(**kwargs)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    files = expand(paths, opts.media_root, opts.format, opts.datasets)
    enabled = frozenset(select(opts.select or None, opts.ignore or None))
    settings = AudioSettings(
        opts.sample_rate, opts.codec, opts.max_audio_bytes, opts.max_duration, opts.allow_absolute_paths, enabled
    )
    report = LintReport(inputs=[f.display for f in files])
    items = read_records(files, opts.max_record_bytes, opts.prompt, opts.system, enabled)
    batch: list[Pending] = []
    pool = ProcessPoolExecutor(max_workers=opts.workers) if audio and opts.workers > 1 else None

    def flush(chunk: list[Pending]) -> None:
        todo = [(p.seq, p.record) for p in chunk if audio and p.record is not None and not any(f.is_error for f in p.findings)]
        if pool is None:
            done = process_batch(todo, settings)
        else:  # one slice per worker, gathered in order
            n = max(1, -(-len(todo) // opts.workers))
            futures = [pool.submit(process_batch, todo[i : i + n], settings) for i in range(0, len(todo), n)]
            done = [d for fut in futures for d in fut.result()]
        audio_findings = {d.seq: d.findings for d in done}
        for p in chunk:
            report.records += 1
            report.findings += p.findings + audio_findings.get(p.seq, [])

    try:
        for p in items:
            batch.append(p)
            if len(batch) >= opts.batch_size * max(1, opts.workers):
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return report
