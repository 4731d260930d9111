"""``audiodata dedup``: exact and acoustic near-duplicates across all inputs, and leakage into a
converted dataset (``--against``, e.g. a test split).

Records go through the same read, rule and audio stages as lint and convert (records convert
would reject are not considered), each clip is decoded once and fingerprinted in the worker,
and the main process feeds them in input order to :class:`RecordDeduper`, which is also what
``convert --dedup`` uses, so both keep and drop the same records.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audiodata.dedup.fingerprint import RATE, fingerprint
from audiodata.dedup.index import NEAR_THRESHOLD, RecordDeduper, RecordInfo, conversation_keys
from audiodata.pipeline.lint import LintTask, ProgressFn, analyse_stream
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.pipeline.read import ReadSettings
from audiodata.readers.sources import expand
from audiodata.records import Message, Record, SourceLoc
from audiodata.rules.registry import select

MODES = ("exact", "near")
REPORT_VERSION = 1


@dataclass
class DedupReport:
    mode: str
    threshold: float
    inputs: list[str]
    against: str | None = None
    records: int = 0
    checked: int = 0  # records that passed the rules (the ones convert would write)
    reference_records: int = 0
    deduper: RecordDeduper | None = None
    leaks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when duplicates, conflicts or leaks were found (CI can gate on it), else 0."""
        d = self.to_dict()["summary"]
        return 1 if d["duplicates"] or d["conflicts"] or d["leaks"] else 0

    def to_dict(self) -> dict[str, Any]:
        body = self.deduper.report() if self.deduper else {"clusters": [], "conflicts": []}
        clusters = body["clusters"]
        for c in clusters:
            c["leak"] = any(m.get("reference") for m in c["members"])
        dups = sum(len(c["members"]) - 1 for c in clusters if not c["leak"])
        return {
            "version": REPORT_VERSION,
            "summary": {
                "records": self.records,
                "checked": self.checked,
                "mode": self.mode,
                "threshold": self.threshold,
                "inputs": self.inputs,
                "against": self.against,
                "reference_records": self.reference_records,
                "clusters": len(clusters),
                "duplicates": dups,
                "exact": sum(len(c["members"]) - 1 for c in clusters if c["kind"] == "exact" and not c["leak"]),
                "near": sum(len(c["members"]) - 1 for c in clusters if c["kind"] == "near" and not c["leak"]),
                "conflicts": len(body["conflicts"]),
                "leaks": sum(sum(1 for m in c["members"] if not m.get("reference")) for c in clusters if c["leak"]),
                "comparisons": self.deduper.clips.comparisons if self.deduper else 0,
            },
            "clusters": clusters,
            "conflicts": body["conflicts"],
        }


def dedup(
    inputs: list[str | os.PathLike[str]] | str | os.PathLike[str],
    options: ConvertOptions | None = None,
    mode: str = "near",
    against: str | os.PathLike[str] | None = None,
    threshold: float = NEAR_THRESHOLD,
    on_progress: ProgressFn | None = None,
    **kwargs: Any,
) -> DedupReport:
    """Find duplicate records across ``inputs`` (and leaks into the converted dataset ``against``)."""
    if mode not in MODES:
        raise OptionsError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    opts = options or ConvertOptions(**kwargs)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    files = expand(paths, opts.media_root, opts.format, opts.datasets)
    enabled = frozenset(select(opts.select or None, opts.ignore or None))
    settings = opts.audio_settings(enabled, encode=False)
    settings = type(settings)(**{**settings.__dict__, "fingerprint": mode == "near"})
    task = LintTask(files, ReadSettings(opts.max_record_bytes, opts.prompt, opts.system, enabled), settings)
    deduper = RecordDeduper(near=mode == "near", threshold=threshold)
    report = DedupReport(mode, threshold, [f.display for f in files], str(against) if against else None, deduper=deduper)
    if against is not None:
        for info in reference_records(Path(against), near=mode == "near"):
            deduper.check(info)
            report.reference_records += 1
    for n, index, line, a in analyse_stream(files, opts, task, on_progress):
        report.records += 1
        if a.dedup is None:
            continue
        kind, clips, prompt, response = a.dedup
        report.checked += 1
        deduper.check(RecordInfo(files[n].display, index, line, kind, clips, prompt, response))
    return report


def stored_records(out: Path, near: bool, reference: bool = False) -> Iterator[RecordInfo]:
    """The records of a converted dataset as dedup sees them: clip hashes (and fingerprints of the
    stored audio when ``near``) plus conversation keys. Used for ``--against`` and to resume
    ``convert --dedup``."""

    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise OptionsError(f"{out}: not a converted dataset (no manifest.json)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for shard in manifest["shards"]:
        yield from shard_records(out / shard["file"], near, reference)


def shard_records(path: Path, near: bool, reference: bool = False) -> Iterator[RecordInfo]:
    import pyarrow.parquet as pq

    cols = ["messages", "system", "tools", "audio_info", "source"] + (["audios"] if near else [])
    names = pq.read_schema(path).names
    cols += [c for c in ("chosen", "rejected") if c in names]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64, columns=cols):
        for row in batch.to_pylist():
            rec = _record(row)
            prompt, response = conversation_keys(rec)
            hashes = [a["pcm_hash"] for a in row["audio_info"] or []]
            prints = [_print(a) for a in row["audios"]] if near else [None] * len(hashes)
            src = row["source"] or {}
            yield RecordInfo(
                src.get("file", str(path)),
                int(src.get("index", -1)),
                src.get("line"),
                rec.kind,
                list(zip(hashes, prints, strict=True)),
                prompt,
                response,
                reference,
            )


def reference_records(out: Path, near: bool) -> Iterator[RecordInfo]:
    return stored_records(out, near, reference=True)


def _record(row: dict[str, Any]) -> Record:
    msgs = [Message(m["role"], m["content"]) for m in row["messages"] or []]
    chosen = [Message(m["role"], m["content"]) for m in row["chosen"]] if row.get("chosen") is not None else None
    rejected = [Message(m["role"], m["content"]) for m in row["rejected"]] if row.get("rejected") is not None else None
    kind = "dpo" if chosen is not None else "sft"
    loc = SourceLoc("", 0)
    return Record("", kind, msgs, loc, system=row.get("system"), tools=row.get("tools"), chosen=chosen, rejected=rejected)


def _print(audio: dict[str, Any]) -> Any:
    data, rate = sf.read(io.BytesIO(audio["bytes"]), dtype="int16", always_2d=True)
    pcm = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1).astype(np.int16)
    if rate != RATE:  # convert stores 16 kHz unless told otherwise
        import soxr

        pcm = np.clip(soxr.resample(pcm.astype(np.float32), rate, RATE), -32768, 32767).astype(np.int16)
    return fingerprint(pcm, RATE)
