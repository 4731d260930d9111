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

Every problem has a stable code (see :data:`CHECKS`) and a location: the file, plus
the row and clip index when one is to blame.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from audiodata.audio.transform import pcm_hash
from audiodata.dataset import ConvertedDataset, DatasetError
from audiodata.errors import DatasetFormatError
from audiodata.faults import FAULT_EXIT
from audiodata.writer.card import read_card_yaml

CHECKS: dict[str, str] = {
    "V001": "manifest.json missing or unreadable (raised as VerifyError: usage error)",
    "V002": "a shard listed in the manifest is missing",
    "V003": "a Parquet file in data/ is not listed in the manifest",
    "V004": "a shard's size or sha256 differs from the manifest",
    "V005": "a shard is not readable Parquet (or lacks the audio columns)",
    "V006": "a shard's row count differs from the manifest",
    "V007": "a shard's clip count differs from the manifest, or a row's audios and audio_info disagree",
    "V008": "an audio does not decode (or has no embedded bytes)",
    "V009": "an audio's sampling rate differs from the declared one",
    "V010": "an audio is not mono",
    "V011": "an audio's num_samples differs from its decoded length",
    "V012": "an audio's pcm_hash differs from the hash of its decoded PCM",
    "V013": "README.md (dataset card) missing or its YAML unreadable",
    "V014": "the card's configs data_files do not match the shard files",
    "V015": "the card's dataset_info num_examples differ from the shards' rows",
    "V016": "the Audio feature (card or shard schema) is missing or has the wrong sampling rate",
    "V017": "the manifest summary totals are inconsistent with the shards",
    "V018": "--decoders: a decoding path (soundfile, datasets) gives other PCM, rate or channels than audio_info records",
    "V019": "--decoders: a decoding path (soundfile, datasets) fails on a clip",
}

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
    out: str | Path, audio: bool = True, on_progress: ProgressFn | None = None, *, decoders: list[str] | None = None
) -> VerifyReport:
    """Re-read the output folder ``out`` and report every inconsistency, located.

    ``audio=False`` skips decoding (metadata, counts, checksums and the card are still
    checked). ``decoders`` (names in :data:`audiodata.decoding.DECODERS`) also decodes every clip
    through each of those paths and compares it with its ``pcm_hash`` (V018, V019). Raises
    :class:`VerifyError` when there is no readable manifest.
    """
    root = Path(out)
    ds = _open(root)
    # the checks below compare the manifest's JSON form (what a hand edit changes) with the shards and the card
    summary, shards = ds.summary.to_dict(), [s.to_dict() for s in ds.manifest.shards]
    rate = ds.sample_rate
    report = VerifyReport(str(root), audio_checked=audio)
    add = report.problems.append

    listed = {s["file"] for s in shards}
    data = root / "data"
    present = sorted(p.relative_to(root).as_posix() for p in data.rglob("*.parquet")) if data.is_dir() else []
    for rel in present:
        if rel not in listed:
            add(Problem("V003", rel, "Parquet file not listed in manifest.json (a stray or leftover shard?)"))

    seen: dict[str, _ShardSeen] = {}
    for n, shard in enumerate(shards):
        name = shard["file"]
        path = root / name
        seen[name] = info = _ShardSeen()
        if not path.is_file():
            add(Problem("V002", name, "listed in manifest.json but missing"))
            continue
        _check_checksum(path, name, shard, add)
        _check_shard(path, name, shard, rate, audio, report, info, partial(_tick, on_progress, n, len(shards), report))
        report.shards_checked += 1
        _tick(on_progress, n + 1, len(shards), report)

    _check_card(root, shards, present, seen, rate, add)
    _check_summary(summary, shards, seen, add)
    if decoders:
        from audiodata.decoding import decoder_problems

        report.decoders = list(decoders)
        for code, where, message in decoder_problems(ds, report.decoders):
            add(Problem(code, where, message))
    return report


def _tick(on_progress: ProgressFn | None, done: int, total: int, report: VerifyReport) -> None:
    if on_progress is not None:
        on_progress(done, total, report.rows_checked)


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
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        add(Problem("V005", name, f"not readable as Parquet: {exc}"))
        return
    with pf:
        columns = ["audios", "audio_info"] if audio else ["audio_info"]
        missing = [c for c in ("audios", "audio_info") if c not in pf.schema_arrow.names]
        if missing:
            add(Problem("V005", name, f"missing column(s) {', '.join(missing)}"))
            return
        _check_schema_audio(pf, name, rate, add)
        rows = clips = 0
        try:
            for batch in _batches(pf, columns):
                audios = batch.column("audios").to_pylist() if audio else None
                infos = batch.column("audio_info").to_pylist()
                for i, row_info in enumerate(infos):
                    row = rows + i
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
            add(Problem("V005", f"{name} row {rows}", f"Parquet read failed: {exc}"))
            return
    info.rows, info.clips = rows, clips
    if rows != pf.metadata.num_rows:
        add(Problem("V005", name, f"read {rows} rows, footer says {pf.metadata.num_rows}"))
    if rows != shard["rows"]:
        add(Problem("V006", name, f"{rows} rows, manifest says {shard['rows']}"))
    if clips != shard["clips"]:
        add(Problem("V007", name, f"{clips} clips, manifest says {shard['clips']}"))


def _batches(pf: pq.ParquetFile, columns: list[str]) -> Iterator[Any]:
    for group in range(pf.metadata.num_row_groups):
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
            got = ", ".join(f"{c}/{sp}" for c, sp in where)
            add(Problem("V014", f, f"README.md loads it as {got}, manifest says {s['config']}/{s['split']}"))
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
    if all(isinstance(p, int) for p in parts) and summary.get("records_read") != sum(parts):  # type: ignore[arg-type]
        add(Problem("V017", where, f"records_read {summary.get('records_read')} != written + rejected + duplicates {sum(parts)}"))  # type: ignore[arg-type]
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


# -- command line ------------------------------------------------------------------------


def add_verify_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``verify OUT [--no-audio] [--json]`` to a subparsers object."""
    v = sub.add_parser(
        "verify",
        help="re-read a converted dataset: checksums, row counts, every audio, the card",
        description="Re-read every shard of a converted output: sha256 and sizes against manifest.json, row and clip "
        "counts, every audio decoded (rate, mono, samples, PCM hash), and the dataset card's YAML against the shards.",
        epilog="exit codes: 0 consistent, 1 problems found, 2 usage error (no readable manifest.json)" + FAULT_EXIT,
    )
    v.add_argument("output", metavar="OUT", help="a folder written by audiodata convert")
    v.add_argument("--no-audio", action="store_true", help="do not decode the audio (checksums, counts and card only)")
    v.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    v.add_argument(
        "--decoders",
        action="store_true",
        help="also decode every clip through each decoding path users load with (soundfile; datasets' own Audio "
        "decoding where torchcodec loads) and check that each gives the stored pcm_hash (V018, V019)",
    )
    return v


def cmd_verify(args: argparse.Namespace, console: Console, max_problems: int = 20) -> int:
    """Run ``verify`` for the CLI; ``console`` receives errors. Returns the exit code (0, 1, or 2 on VerifyError)."""
    decoders = None
    if getattr(args, "decoders", False):
        from audiodata.decoding import available_decoders

        why_not = available_decoders()
        decoders = [name for name, why in why_not.items() if why is None]
        for name, why in why_not.items():
            if why is not None:
                console.print(f"[yellow]--decoders: {name} not checked: {escape(why)}[/]", soft_wrap=True)
    try:
        report = verify(args.output, audio=not args.no_audio, decoders=decoders)
    except VerifyError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return report.exit_code
    t = Table(title=f"audiodata verify {args.output}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("shards checked", str(report.shards_checked))
    t.add_row("rows checked", str(report.rows_checked))
    t.add_row("clips decoded", str(report.clips_checked) if report.audio_checked else "- (--no-audio)")
    if report.decoders:
        t.add_row("decoded through", ", ".join(report.decoders))
    t.add_row("problems", f"[red]{len(report.problems)}[/]" if report.problems else "[green]0[/]")
    console.print(t)
    if report.problems:
        p = Table(title="problems" + (f" (first {max_problems})" if len(report.problems) > max_problems else ""))
        for col in ("code", "where", "problem"):
            p.add_column(col, overflow="fold")
        for prob in report.problems[:max_problems]:
            p.add_row(prob.code, escape(prob.where), escape(prob.message))
        console.print(p)
        console.print("[bold red]verify failed:[/] " + ", ".join(f"{c} x{n}" for c, n in report.by_code().items()))
    else:
        console.print("[bold green]ok: shards, audio and card are consistent with manifest.json[/]")
    return report.exit_code


__all__ = ["CHECKS", "Problem", "VerifyError", "VerifyReport", "add_verify_parser", "cmd_verify", "verify"]
