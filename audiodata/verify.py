"""``verify``: prove a converted output is what ``convert`` wrote, before it is pushed or trained on.

An output folder travels: it is copied, synced, uploaded, hand-edited. Nothing in
Parquet or the Hub notices a truncated shard, a stray file picked up by the card's
globs, a README whose split sizes no longer match, or an audio blob swapped for
another valid one. ``verify`` re-reads everything the manifest promises, streaming
each shard row group by row group (never a whole dataset in memory):

- the manifest is readable (else :class:`VerifyError`, a usage error: exit 2);
- every listed shard exists, no unlisted shard hides in ``data/``, and each file's
  size and sha256 match the manifest (streamed in chunks);
- each shard opens as Parquet, with the row and clip counts the manifest records;
- every clip decodes, at the declared sampling rate, mono, with ``num_samples`` equal
  to the decoded length and ``pcm_hash`` equal to the BLAKE2b of the decoded 16-bit
  PCM: the hash is what proves the stored audio is the converted audio;
- the dataset card's YAML (``configs`` globs, ``dataset_info`` splits and the Audio
  feature's sampling rate) and the manifest summary agree with the shards present.

Every problem has a stable code (registered rules V001-V017, see :data:`CHECKS`) and a location: the file, plus
the row and clip index when one is to blame.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from audiodata import objstore
from audiodata.audio.transform import pcm_hash
from audiodata.dataset import ConvertedDataset, DatasetError
from audiodata.errors import DatasetFormatError
from audiodata.rules import verify_rules  # noqa: F401  (registers V001-V019)
from audiodata.rules.registry import REGISTRY
from audiodata.writer.card import read_card_yaml

#: verify's codes and what each means, from the one rule registry (audiodata.rules.verify_rules: `audiodata rules`
#: and docs/rules.md document each with what / why / fix).
CHECKS: dict[str, str] = {code: rule.summary for code, rule in sorted(REGISTRY.items()) if code.startswith("V")}

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
CHUNK = 1 << 20
BATCH_ROWS = 32  # rows per streamed batch: audio dominates, keep it small

ProgressFn = Callable[[int, int, int], None]
"""Called as ``on_progress(shards_done, shards_total, rows_checked)`` after each streamed batch and shard."""


class VerifyError(DatasetFormatError):
    """The folder is not a verifiable audiodata output (no or unreadable manifest): a usage error."""


@dataclass(frozen=True)
class Problem:
    code: str
    where: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in CHECKS:  # every check verify makes is a registered rule
            raise ValueError(f"verify code {self.code} is not registered in audiodata.rules.verify_rules")

    def __str__(self) -> str:
        return f"{self.code} {self.where}: {self.message}"


@dataclass
class VerifyReport:
    output: str
    audio_checked: bool = True
    shards_checked: int = 0
    rows_checked: int = 0
    clips_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    decoders: list[str] = field(default_factory=list)  # the decoding paths every clip went through (--decoders)

    @property
    def exit_code(self) -> int:
        return EXIT_PROBLEMS if self.problems else EXIT_OK

    def by_code(self) -> dict[str, int]:
        return dict(sorted(Counter(p.code for p in self.problems).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "summary": {
                "shards_checked": self.shards_checked,
                "rows_checked": self.rows_checked,
                "clips_checked": self.clips_checked,
                "audio_checked": self.audio_checked,
                "decoders": self.decoders,
                "problems": len(self.problems),
                "by_code": self.by_code(),
            },
            "problems": [asdict(p) for p in self.problems],
            "exit_code": self.exit_code,
        }


@dataclass
class _ShardSeen:
    rows: int | None = None  # None: unreadable or missing
    clips: int | None = None


def verify(
    out: str | Path,
    audio: bool = True,
    on_progress: ProgressFn | None = None,
    *,
    num_workers: int = 1,
    decoders: list[str] | None = None,
) -> VerifyReport:
    """Re-read the output folder ``out`` and report every inconsistency, located.

    ``audio=False`` skips decoding (metadata, counts, checksums and the card are still
    checked). ``num_workers`` > 1 checks that many shards at once in worker processes (0: all
    cores); the report is the same as with one, problems in the same order. ``decoders`` (names in
    :data:`audiodata.decoding.DECODERS`) also decodes every clip through each of those paths and compares
    it with its ``pcm_hash`` (V018, V019). Raises
    :class:`VerifyError` when there is no readable manifest.
    """
    root = objstore.readable(out, check_ledger=False)  # a store's folder: its copy, damage left for the checks below
    ds = _open(root)
    # the checks below compare the manifest's JSON form (what a hand edit changes) with the shards and the card
    summary, shards = ds.summary.to_dict(), [s.to_dict() for s in ds.manifest.shards]
    rate = ds.sample_rate
    report = VerifyReport(str(out) if objstore.is_remote(str(out)) else str(root), audio_checked=audio)
    add = report.problems.append

    listed = {s["file"] for s in shards}
    data = root / "data"
    present = sorted(p.relative_to(root).as_posix() for p in data.rglob("*.parquet")) if data.is_dir() else []
    for rel in present:
        if rel not in listed:
            add(Problem("V003", rel, "Parquet file not listed in manifest.json (a stray or leftover shard?)"))

    seen: dict[str, _ShardSeen] = {}
    workers = num_workers or os.cpu_count() or 1
    span = span_rows(sum(int(s["rows"]) for s in shards), workers)
    plans = [_spans(root / s["file"], span) if workers > 1 and (root / s["file"]).is_file() else None for s in shards]
    workers = min(workers, sum(len(p or [None]) for p in plans))  # one job per span (and per checksum)
    if workers <= 1:  # in this process, the progress ticking batch by batch
        outcomes: Iterator[tuple[int, tuple[VerifyReport, _ShardSeen, bool]]] = (
            (n, _verify_shard(root, shard, rate, audio, partial(_tick_within, on_progress, n, len(shards), report)))
            for n, shard in enumerate(shards)
        )
    else:  # row groups of every shard at once, results merged in order: the same report as one process gives
        ticker = partial(_tick_within, on_progress)
        outcomes = _verify_parallel(
            root, shards, plans, rate, audio, workers, lambda n, rows: ticker(n, len(shards), report, rows)
        )
    for n, (part, info, there) in outcomes:
        seen[shards[n]["file"]] = info
        report.problems += part.problems
        report.rows_checked += part.rows_checked
        report.clips_checked += part.clips_checked
        report.shards_checked += there
        _tick(on_progress, n + 1, len(shards), report)

    _check_card(root, shards, present, seen, rate, add)
    _check_summary(summary, shards, seen, add)
    if decoders:
        from audiodata.decoding import decoder_problems

        report.decoders = list(decoders)
        for code, where, message in decoder_problems(ds, report.decoders):
            add(Problem(code, where, message))
    return report


def _verify_shard(
    root: Path, shard: dict[str, Any], rate: int, audio: bool, tick: Callable[[int], None] | None = None
) -> tuple[VerifyReport, _ShardSeen, bool]:
    """One shard's checks, its problems and counts in a report of its own (so any process can run it): the
    report, what was seen, and whether the file was there. ``tick(rows_checked)`` after each batch."""
    name = shard["file"]
    path = root / name
    part, info = VerifyReport(str(root), audio_checked=audio), _ShardSeen()
    if not path.is_file():
        part.problems.append(Problem("V002", name, "listed in manifest.json but missing"))
        return part, info, False
    _check_checksum(path, name, shard, part.problems.append)
    _check_shard(path, name, shard, rate, audio, part, info, (lambda: tick(part.rows_checked)) if tick else lambda: None)
    return part, info, True


def _tick(on_progress: ProgressFn | None, done: int, total: int, report: VerifyReport) -> None:
    if on_progress is not None:
        on_progress(done, total, report.rows_checked)


def _tick_within(on_progress: ProgressFn | None, done: int, total: int, report: VerifyReport, shard_rows: int) -> None:
    """Progress inside a shard checked in this process: the rows of the shards before it plus its own so far."""
    if on_progress is not None:
        on_progress(done, total, report.rows_checked + shard_rows)


# -- manifest ------------------------------------------------------------------------


def _open(root: Path) -> ConvertedDataset:
    """The dataset, its manifest read and checked; none, or an unreadable one, is V001 (a usage error). A fault of
    the machine while reading it stays one (exit 3)."""
    try:
        return ConvertedDataset.open(root)
    except DatasetError as exc:
        raise VerifyError(f"V001 {exc}") from None


# -- shards --------------------------------------------------------------------------


def _check_checksum(path: Path, name: str, shard: dict[str, Any], add: Callable[[Problem], None]) -> None:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    if size != shard["bytes"]:
        add(Problem("V004", name, f"size {size} bytes, manifest says {shard['bytes']}"))
    if sha.hexdigest() != shard["sha256"]:
        add(Problem("V004", name, f"sha256 {sha.hexdigest()} differs from manifest {shard['sha256']}"))


def _check_shard(
    path: Path,
    name: str,
    shard: dict[str, Any],
    rate: int,
    audio: bool,
    report: VerifyReport,
    info: _ShardSeen,
    tick: Callable[[], None],
) -> None:
    add = report.problems.append
    pf = _open_shard(path, name, rate, audio, add)
    if pf is None:
        return
    with pf:
        groups = pf.metadata.num_row_groups
        rows, clips, ok = _check_groups(pf, name, rate, audio, range(groups), 0, report, tick)
    if ok:
        _check_counts(name, shard, rows, clips, pf.metadata.num_rows, info, add)


def _open_shard(path: Path, name: str, rate: int, audio: bool, add: Callable[[Problem], None]) -> pq.ParquetFile | None:
    """The shard open as Parquet with the columns verify reads and its schema metadata checked; None (reported) when
    it cannot be read at all."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        add(Problem("V005", name, f"not readable as Parquet: {exc}"))
        return None
    missing = [c for c in ("audios", "audio_info") if c not in pf.schema_arrow.names]
    if missing:
        add(Problem("V005", name, f"missing column(s) {', '.join(missing)}"))
        pf.close()
        return None
    _check_schema_audio(pf, name, rate, add)
    return pf


def _check_groups(
    pf: pq.ParquetFile,
    name: str,
    rate: int,
    audio: bool,
    groups: range,
    first_row: int,
    report: VerifyReport,
    tick: Callable[[], None],
) -> tuple[int, int, bool]:
    """Check the rows of row groups ``groups`` (the shard's row ``first_row`` on): rows and clips read, and False
    when reading failed part way (V005, located at the first row not read)."""
    add = report.problems.append
    columns = ["audios", "audio_info"] if audio else ["audio_info"]
    rows = clips = 0
    try:
        for batch in _batches(pf, columns, groups):
            audios = batch.column("audios").to_pylist() if audio else None
            infos = batch.column("audio_info").to_pylist()
            for i, row_info in enumerate(infos):
                row = first_row + rows + i
                row_infos = row_info or []
                row_audios = audios[i] or [] if audios is not None else None
                if row_audios is not None and len(row_audios) != len(row_infos):
                    add(Problem("V007", f"{name} row {row}", f"{len(row_audios)} audios but {len(row_infos)} audio_info"))
                clips += len(row_audios) if row_audios is not None else len(row_infos)
                for c, meta in enumerate(row_infos):
                    where = f"{name} row {row} audios[{c}]"
                    declared = (meta or {}).get("sampling_rate")
                    if declared != rate:
                        add(Problem("V009", where, f"audio_info sampling_rate {declared}, the dataset's is {rate}"))
                    if row_audios is not None and c < len(row_audios):
                        _check_clip(row_audios[c], meta or {}, rate, where, add)
                        report.clips_checked += 1
            rows += batch.num_rows
            report.rows_checked += batch.num_rows
            tick()
    except Exception as exc:  # a damaged page surfaces while streaming
        add(Problem("V005", f"{name} row {first_row + rows}", f"Parquet read failed: {exc}"))
        return rows, clips, False
    return rows, clips, True


def _check_counts(
    name: str, shard: dict[str, Any], rows: int, clips: int, footer_rows: int, info: _ShardSeen, add: Callable[[Problem], None]
) -> None:
    """A shard read to the end: its rows and clips against its footer and the manifest."""
    info.rows, info.clips = rows, clips
    if rows != footer_rows:
        add(Problem("V005", name, f"read {rows} rows, footer says {footer_rows}"))
    if rows != shard["rows"]:
        add(Problem("V006", name, f"{rows} rows, manifest says {shard['rows']}"))
    if clips != shard["clips"]:
        add(Problem("V007", name, f"{clips} clips, manifest says {shard['clips']}"))


# -- within a shard, in parallel -----------------------------------------------------


@dataclass
class _Span:
    """What a worker found in some row groups of one shard (or, ``groups`` None, in its checksum)."""

    problems: list[Problem]
    rows: int = 0  # rows read
    clips: int = 0
    clips_checked: int = 0
    ok: bool = True  # False: the shard could not be opened, or reading failed part way (reported)
    footer_rows: int = 0


def _checksum_span(path: Path, name: str, shard: dict[str, Any]) -> _Span:
    span = _Span([])
    _check_checksum(path, name, shard, span.problems.append)
    return span


def _groups_span(
    path: Path, name: str, rate: int, audio: bool, groups: range | None, first_row: int, header: bool
) -> _Span:
    """Row groups ``groups`` of one shard; the span holding the first group also reports the shard's header problems
    (the others, finding the same, only stop)."""
    part = VerifyReport("", audio_checked=audio)
    pf = _open_shard(path, name, rate, audio, part.problems.append)
    if pf is None:
        return _Span(part.problems if header else [], ok=False)
    if not header:
        part.problems.clear()  # the schema's problems belong to the first span
    with pf:
        groups = range(pf.metadata.num_row_groups) if groups is None else groups
        rows, clips, ok = _check_groups(pf, name, rate, audio, groups, first_row, part, lambda: None)
        return _Span(part.problems, rows, clips, part.clips_checked, ok, pf.metadata.num_rows)


#: Rows per job at most when a shard's row groups are checked by several workers: enough to amortise opening the
#: footer and the hand-off, small enough that the workers share a single shard evenly.
SPAN_ROWS = 200


def span_rows(rows: int, workers: int) -> int:
    """Rows per job: :data:`SPAN_ROWS`, or fewer when the dataset is small, so each worker gets ~4 jobs (a row
    group is never split: a span is at least one)."""
    return max(1, min(SPAN_ROWS, -(-rows // (4 * workers))))


def _spans(path: Path, rows_per_span: int) -> list[tuple[range, int]] | None:
    """A shard's row groups in runs of about ``rows_per_span`` rows, each with its first row, from its footer;
    None when the footer cannot be read (the shard is then checked whole, as one process does)."""
    try:
        with pq.ParquetFile(path) as pf:
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
    except Exception:  # reported by the check itself
        return None
    spans: list[tuple[range, int]] = []
    start = first = row = 0
    for g, size in enumerate(sizes):
        row += size
        if row - first >= rows_per_span or g == len(sizes) - 1:
            spans.append((range(start, g + 1), first))
            start, first = g + 1, row
    return spans or [(range(0), 0)]


def _run_span(job: Callable[..., _Span], args: tuple[Any, ...]) -> _Span:
    return job(*args)


def _verify_parallel(
    root: Path,
    shards: list[dict[str, Any]],
    plans: list[list[tuple[range, int]] | None],
    rate: int,
    audio: bool,
    workers: int,
    tick: Callable[[int, int], None],
) -> Iterator[tuple[int, tuple[VerifyReport, _ShardSeen, bool]]]:
    """Every shard's checksum and runs of its row groups (``plans``, from :func:`_spans`) as separate jobs over
    ``workers`` processes, so a single big shard keeps every worker busy; merged per shard, in order, into what
    :func:`_verify_shard` returns: the same problems in the same order, reading stopped at the same row. Should the
    rows read before a span differ from what the footer promised, the shard is checked again whole, here."""
    from audiodata.pipeline.window import ordered_map

    def jobs() -> Iterator[tuple[tuple[int, int], tuple[Any, ...]]]:
        for n, shard in enumerate(shards):
            path, name = root / shard["file"], shard["file"]
            if not path.is_file():
                continue
            yield (n, -1), (_checksum_span, (path, name, shard))
            whole: list[tuple[range | None, int]] = [(None, 0)]  # footer unreadable: one job, which reports it
            for k, (groups, first) in enumerate(plans[n] or whole):
                yield (n, k), (_groups_span, (path, name, rate, audio, groups, first, k == 0))

    results = ordered_map(_run_span, jobs(), workers)
    nxt = next(results, None)
    for n, shard in enumerate(shards):
        part, info = VerifyReport(str(root), audio_checked=audio), _ShardSeen()
        if nxt is None or nxt[0][0] != n:  # no jobs: the file is missing
            part.problems.append(Problem("V002", shard["file"], "listed in manifest.json but missing"))
            yield n, (part, info, False)
            continue
        spans: list[_Span] = []
        stopped = False
        while nxt is not None and nxt[0][0] == n:
            (_, k), span = nxt
            nxt = next(results, None)
            if k >= 0 and stopped:
                continue  # the serial check stops at the first failure: so do we
            part.problems += span.problems
            if k >= 0:
                spans.append(span)
                part.rows_checked += span.rows
                part.clips_checked += span.clips_checked
                stopped = not span.ok
                tick(n, part.rows_checked)
        if not stopped:
            firsts = [first for _, first in plans[n] or []] or [0]
            reads = [span.rows for span in spans]
            if any(first != sum(reads[:k]) for k, first in enumerate(firsts)):  # the footer and the pages disagree
                part, info, _ = _verify_shard(root, shard, rate, audio)
            else:
                rows, clips = sum(reads), sum(span.clips for span in spans)
                _check_counts(shard["file"], shard, rows, clips, spans[-1].footer_rows, info, part.problems.append)
        yield n, (part, info, True)


def _batches(pf: pq.ParquetFile, columns: list[str], groups: range) -> Iterator[Any]:
    for group in groups:
        yield from pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=columns)


def _check_clip(
    entry: dict[str, Any] | None, meta: dict[str, Any], rate: int, where: str, add: Callable[[Problem], None]
) -> None:
    blob = (entry or {}).get("bytes")
    if not blob:
        add(Problem("V008", where, "no embedded audio bytes"))
        return
    try:
        pcm, sr = sf.read(io.BytesIO(blob), dtype="int16", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        add(Problem("V008", where, f"does not decode: {exc}"))
        return
    if sr != rate or sr != meta.get("sampling_rate"):
        add(Problem("V009", where, f"decodes at {sr} Hz, declared {meta.get('sampling_rate')} Hz (dataset {rate} Hz)"))
    if pcm.shape[1] != 1 or meta.get("channels") not in (1, None):
        add(Problem("V010", where, f"{pcm.shape[1]} channels decoded, audio_info says {meta.get('channels')}; must be mono"))
    if meta.get("num_samples") != pcm.shape[0]:
        add(Problem("V011", where, f"decodes to {pcm.shape[0]} samples, audio_info num_samples {meta.get('num_samples')}"))
    mono = pcm[:, 0] if pcm.shape[1] == 1 else pcm
    digest = pcm_hash(np.ascontiguousarray(mono))
    if digest != meta.get("pcm_hash"):
        add(Problem("V012", where, f"pcm_hash {digest} of the stored audio, audio_info says {meta.get('pcm_hash')}"))


def _check_schema_audio(pf: pq.ParquetFile, name: str, rate: int, add: Callable[[Problem], None]) -> None:
    """The ``huggingface`` schema metadata is what ``datasets`` decodes with when the card says nothing."""
    raw = (pf.schema_arrow.metadata or {}).get(b"huggingface")
    if raw is None:
        add(Problem("V016", name, "no huggingface schema metadata: the audios column will not load as Audio"))
        return
    try:
        feats = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        add(Problem("V016", name, "unreadable huggingface schema metadata"))
        return
    found = _audio_rates(feats.get("audios"))
    if found != [rate]:
        add(Problem("V016", name, f"schema metadata audios Audio sampling_rate {found or 'missing'}, expected {rate}"))


def _audio_rates(node: Any) -> list[Any]:
    """Sampling rates of every Audio feature under ``node`` (datasets' JSON or the card's YAML form)."""
    rates: list[Any] = []
    if isinstance(node, dict):
        if node.get("_type") == "Audio":
            rates.append(node.get("sampling_rate"))
        elif isinstance(node.get("audio"), dict):
            rates.append(node["audio"].get("sampling_rate"))
        for key, value in node.items():
            if key != "audio":
                rates += _audio_rates(value)
    elif isinstance(node, list):
        for value in node:
            rates += _audio_rates(value)
    return rates


# -- card and summary -----------------------------------------------------------------


def _rows_of(shard: dict[str, Any], seen: dict[str, _ShardSeen]) -> int:
    """The rows actually read, else (missing/unreadable: already reported) the manifest's."""
    got = seen.get(shard["file"])
    return got.rows if got is not None and got.rows is not None else int(shard["rows"])


def _check_card(
    root: Path,
    shards: list[dict[str, Any]],
    present: list[str],
    seen: dict[str, _ShardSeen],
    rate: int,
    add: Callable[[Problem], None],
) -> None:
    path = root / "README.md"
    if not path.is_file():
        add(Problem("V013", "README.md", "missing: the Hub will not know the configs, splits or the Audio feature"))
        return
    try:
        meta = read_card_yaml(path.read_text(encoding="utf-8"))
    except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError
        add(Problem("V013", "README.md", f"YAML front matter unreadable: {exc}"))
        return
    configs, infos = meta.get("configs"), meta.get("dataset_info")
    if not isinstance(configs, list) or not configs or infos is None:
        add(Problem("V013", "README.md", "YAML front matter lacks configs or dataset_info"))
        return

    # configs: data_files globs vs the shard files present (what the Hub will load)
    files = sorted(set(present) | {s["file"] for s in shards if (root / s["file"]).is_file()})
    covered: dict[str, list[tuple[str, str]]] = {f: [] for f in files}
    for cfg in configs:
        cname = str((cfg or {}).get("config_name", "default"))
        for entry in _data_files(cfg):
            split, globs = entry
            for glob in globs:
                hits = [f for f in files if fnmatch.fnmatchcase(f, glob)]
                if not hits:
                    add(Problem("V014", "README.md", f"config {cname} split {split}: data_files {glob!r} matches no shard"))
                for f in hits:
                    covered[f].append((cname, split))
    for s in shards:
        f = s["file"]
        if f not in covered:
            continue  # missing: V002
        where = covered[f]
        if not where:
            add(Problem("V014", f, "not matched by any data_files glob in README.md: the Hub will not load it"))
        elif where != [(s["config"], s["split"])]:
            loaded_as = ", ".join(f"{c}/{sp}" for c, sp in where)
            add(Problem("V014", f, f"README.md loads it as {loaded_as}, manifest says {s['config']}/{s['split']}"))
    for f in present:
        if covered.get(f) and f not in {s["file"] for s in shards}:
            add(Problem("V014", f, "unlisted file matched by README.md data_files: the Hub would load it"))

    # dataset_info: num_examples per config/split, and the Audio feature
    info_list = infos if isinstance(infos, list) else [{"config_name": "default", **infos}]
    expected: Counter[tuple[str, str]] = Counter()
    for s in shards:
        expected[(s["config"], s["split"])] += _rows_of(s, seen)
    declared: dict[tuple[str, str], Any] = {}
    for info in info_list:
        cname = str((info or {}).get("config_name", "default"))
        rates = _audio_rates(next((f for f in info.get("features") or [] if (f or {}).get("name") == "audios"), None))
        if rates != [rate]:
            add(Problem("V016", "README.md", f"config {cname}: audios Audio sampling_rate {rates or 'missing'}, expected {rate}"))
        for sp in info.get("splits") or []:
            declared[(cname, str(sp.get("name")))] = sp.get("num_examples")
    for key in sorted(set(expected) | set(declared)):
        want, got = expected.get(key), declared.get(key)
        if key not in declared:
            add(Problem("V015", "README.md", f"config {key[0]} split {key[1]}: not in dataset_info ({want} rows in shards)"))
        elif want is None:
            add(Problem("V015", "README.md", f"config {key[0]} split {key[1]}: in dataset_info ({got} examples) but no shards"))
        elif got != want:
            add(Problem("V015", "README.md", f"config {key[0]} split {key[1]}: num_examples {got}, shards hold {want} rows"))


def _data_files(cfg: Any) -> list[tuple[str, list[str]]]:
    """A config's data_files in its Hub forms: a glob, a list of globs, or a list of {split, path}."""
    df = (cfg or {}).get("data_files") if isinstance(cfg, dict) else None
    if isinstance(df, str):
        return [("train", [df])]
    out: list[tuple[str, list[str]]] = []
    for entry in df or []:
        if isinstance(entry, str):
            out.append(("train", [entry]))
        elif isinstance(entry, dict):
            path = entry.get("path")
            out.append((str(entry.get("split", "train")), [path] if isinstance(path, str) else [str(p) for p in path or []]))
    return out


def _check_summary(
    summary: dict[str, Any], shards: list[dict[str, Any]], seen: dict[str, _ShardSeen], add: Callable[[Problem], None]
) -> None:
    where = "manifest.json summary"
    rows = sum(_rows_of(s, seen) for s in shards)
    clips = 0
    for s in shards:
        got = seen.get(s["file"])
        clips += got.clips if got is not None and got.clips is not None else int(s["clips"])
    if summary.get("written") != rows:
        add(Problem("V017", where, f"written {summary.get('written')}, the shards hold {rows} rows"))
    if summary.get("clips") != clips:
        add(Problem("V017", where, f"clips {summary.get('clips')}, the shards hold {clips} clips"))
    parts = [summary.get(k) for k in ("written", "rejected", "duplicates")]
    ints = [p for p in parts if isinstance(p, int)]
    apart = [summary.get(k) for k in ("excluded", "equal_pairs")]  # optional: only runs that left records out
    ints += [p for p in apart if isinstance(p, int)]
    if len(ints) >= len(parts) and all(isinstance(p, int) for p in parts) and summary.get("records_read") != sum(ints):
        extra = [k for k, p in zip(("excluded", "equal_pairs"), apart, strict=True) if p]
        named = " + ".join(["written", "rejected", "duplicates", *extra])
        add(Problem("V017", where, f"records_read {summary.get('records_read')} != {named} {sum(ints)}"))
    per: Counter[tuple[str, str]] = Counter()
    for s in shards:
        per[(s["config"], s["split"])] += _rows_of(s, seen)
    stated: dict[tuple[str, str], Any] = {}
    for cname, cfg in (summary.get("configs") or {}).items():
        for split, v in (cfg.get("splits") or {}).items():
            stated[(cname, split)] = (v or {}).get("rows")
    for key in sorted(set(per) | set(stated)):
        if per.get(key) != stated.get(key):
            add(Problem("V017", where, f"configs {key[0]}/{key[1]} rows {stated.get(key)}, the shards hold {per.get(key)}"))


__all__ = ["CHECKS", "Problem", "VerifyError", "VerifyReport", "verify"]
