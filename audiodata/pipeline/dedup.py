"""``audiodata dedup``: exact and acoustic near-duplicates across all inputs, and leakage into a
converted dataset (``--against``, e.g. a test split).

Records go through the same read, rule and audio stages as lint and convert (records convert
would reject are not considered), each clip is decoded once and fingerprinted in the worker,
and the main process feeds them in input order to :class:`RecordDeduper`, which is also what
``convert --dedup`` uses, so both keep and drop the same records.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audiodata import objstore
from audiodata.dataset import ConvertedDataset, DatasetError
from audiodata.dedup.index import NEAR_THRESHOLD, RecordDeduper, RecordInfo, Where
from audiodata.dedup.stored import reference_records
from audiodata.pipeline.engines import stage_mapper
from audiodata.pipeline.lint import LintTask, ProgressFn, analyse_stream
from audiodata.pipeline.options import ConvertOptions, OptionsError, resolve_options
from audiodata.privacy import public_path
from audiodata.readers.sources import expand
from audiodata.records import SourceLoc
from audiodata.rules.findings import Finding
from audiodata.rules.registry import select

MODES = ("exact", "near")
REPORT_VERSION = 1


@dataclass(frozen=True)
class DuplicateMember:
    """One record of a cluster: where it is, and how it matched the cluster's first record."""

    source: str
    index: int
    line: int | None = None
    reference: bool = False  # a row of the ``--against`` dataset
    match: str | None = None  # exact | near; None for the first (kept) record
    similarity: float = 1.0


@dataclass(frozen=True)
class DuplicateCluster:
    """Records that are copies of one another; the first is the one kept, a ``leak`` reaches ``--against``."""

    id: str
    kind: str
    similarity: float
    members: tuple[DuplicateMember, ...]

    @property
    def leak(self) -> bool:
        return any(m.reference for m in self.members)

    @property
    def duplicates(self) -> tuple[DuplicateMember, ...]:
        return self.members[1:]


@dataclass
class DedupReport:
    mode: str
    threshold: float
    inputs: list[str]
    against: str | None = None
    records: int = 0
    checked: int = 0  # records that passed the rules (the ones convert would write)
    reference_records: int = 0
    deduper: RecordDeduper = field(default_factory=RecordDeduper)
    stages: Any = None  # --engine ray, near mode: what the Ray stages moved (raydedup.Stages); not in the report
    part: str | None = None  # a rank (--num-shards, --parts): the file its share of the work was saved to

    @property
    def exit_code(self) -> int:
        """1 when duplicates, conflicts or leaks were found (CI can gate on it), else 0: a cluster
        counts once it holds an input record (copies inside the --against dataset alone do not)."""
        found = any(not m.reference for c in self.deduper.clusters.values() for m in c.members[1:])
        return 1 if found or self.deduper.conflicts else 0

    @property
    def clusters(self) -> list[DuplicateCluster]:
        """The clusters found, typed (``to_dict()["clusters"]`` is the same as JSON)."""
        return [
            DuplicateCluster(c["id"], c["kind"], c["similarity"], tuple(DuplicateMember(**m) for m in c["members"]))
            for c in self.deduper.report()["clusters"]
        ]

    def to_dict(self) -> dict[str, Any]:
        body = self.deduper.report()
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
                "exact": sum(1 for c in clusters if not c["leak"] for m in c["members"] if m.get("match") == "exact"),
                "near": sum(1 for c in clusters if not c["leak"] for m in c["members"] if m.get("match") == "near"),
                "conflicts": len(body["conflicts"]),
                "leaks": sum(sum(1 for m in c["members"] if not m.get("reference")) for c in clusters if c["leak"]),
                "comparisons": self.deduper.clips.comparisons,
            },
            "clusters": clusters,
            "conflicts": body["conflicts"],
            "findings": [f.to_dict() for f in self.findings()],
        }

    def findings(self) -> list[Finding]:
        """What was found, as located findings with the codes lint and convert use: each later copy of a kept
        record is ``D001`` (exact) or ``D002`` (near), an input record already in the ``--against`` dataset is
        ``D004``, a record whose audio and prompt match an earlier one with another response is ``D003``."""
        found: list[Finding] = []
        for c in self.deduper.clusters.values():
            ref = next((m for m in c.members if m.reference), None)  # --against records are read first
            for m, (kind, sim) in zip(c.members[1:], c.matches, strict=True):
                if m.reference:
                    continue  # copies inside the --against dataset alone are not this run's problem
                if ref is not None:
                    code, msg = "D004", f"{kind} copy of {_at(ref)} in the --against dataset {self.against}"
                else:
                    code = "D001" if kind == "exact" else "D002"
                    msg = f"{kind} duplicate of {_at(c.members[0])}" + (f" (similarity {sim:.3f})" if kind == "near" else "")
                found.append(Finding(code, msg, "", SourceLoc(m.source, m.index, m.line)))
        for first, later in self.deduper.conflicts:
            if not later.reference:
                msg = f"same audio and prompt as {_at(first)} but a different response"
                found.append(Finding("D003", msg, "", SourceLoc(later.source, later.index, later.line)))
        return sorted(found, key=lambda f: (f.source.file, f.source.index) if f.source else ("", -1))


def _at(where: Where) -> str:
    return str(SourceLoc(where.source, where.index, where.line))


def dedup(
    inputs: list[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
    mode: str = "near",
    against: str | os.PathLike[str] | None = None,
    threshold: float = NEAR_THRESHOLD,
    on_progress: ProgressFn | None = None,
    engine: str = "local",
    on_stage: Callable[[str], None] | None = None,
    parts: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> DedupReport:
    """Find duplicate records across ``inputs`` (and leaks into the converted dataset ``against``). ``engine="ray"``
    runs on the connected Ray cluster (else a local one), the report the same: exact mode analyses the records there
    and checks them here; near mode shuffles fingerprints by LSH key there (:mod:`audiodata.pipeline.raydedup`;
    ``on_stage(name)`` as each of its stages starts). ``parts``: ranks, as for lint
    (:func:`audiodata.pipeline.engines.stage_mapper`); a rank returns an empty report whose ``part`` names its file."""
    if mode not in MODES:
        raise OptionsError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    opts = resolve_options(options, kwargs)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    files = expand(
        paths, opts.media_root, opts.format, opts.datasets, None, opts.all_files, opts.absolute_paths, opts.row_columns
    )
    enabled = frozenset(select(opts.select or None, opts.ignore or None))
    settings = opts.audio_settings(enabled, encode=False, fingerprint=mode == "near")
    task = LintTask(files, opts.read_settings(enabled), settings)
    against_root = None  # --against's folder: one in an object store is its local copy, pulled once here
    if against is not None:  # a converted dataset, of a format this audiodata reads: checked before any input is read
        try:
            against_root = objstore.readable(against)
            ConvertedDataset.open(against_root)
        except DatasetError as exc:
            raise DatasetError(f"--against {exc}") from None
    # once the inputs are known good: a bad path is said before any cluster starts
    mapper, ranked = stage_mapper("dedup", engine, parts, opts, files, {"mode": mode})
    rank = ranked is not None and ranked.index is not None
    deduper = RecordDeduper(near=mode == "near", threshold=threshold, memory=opts.dedup_memory)
    shown = public_path(str(against), opts.absolute_paths) if against else None
    report = DedupReport(mode, threshold, [f.display for f in files], shown, deduper=deduper)
    try:
        if engine == "ray" and mode == "near":
            from audiodata.pipeline.raydedup import Stages, near_on_ray

            where = None if against is None else str(against)
            report.stages = Stages()
            for reference, info in near_on_ray(files, opts, task, deduper, where, on_progress, on_stage, report.stages):
                if reference:
                    report.reference_records += 1
                    continue
                report.records += 1
                report.checked += info is not None
            return report
        if against_root is not None and not rank:  # a rank only analyses its share of the inputs: the merge reads --against
            for info in reference_records(against_root, near=mode == "near"):
                deduper.check(info)
                report.reference_records += 1
        for n, index, line, a in analyse_stream(files, opts, task, on_progress, mapper):
            report.records += 1
            if a.dedup is None:
                continue
            kind, clips, prompt, response = a.dedup
            report.checked += 1
            deduper.check(RecordInfo(files[n].display, index, line, kind, clips, prompt, response))
    finally:
        deduper.close()  # the clusters and conflicts stay for the report
    if rank:
        assert ranked is not None and ranked.index is not None and ranked.count is not None
        report.part = str(ranked.folder / ranked.name(ranked.index, ranked.count))
    return report


