"""Running an export: the destination folder (checked, cleared, resumable) and the stream-by-stream write."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from audiodata import objstore
from audiodata.dataset import ConvertedDataset
from audiodata.export.alignanything import ParquetRows, _align_anything, features
from audiodata.export.base import (
    _MAX_SKIP_LIST,
    AUDIO_FORMATS,
    FORMS,
    TARGETS,
    DestinationNotEmpty,
    ExportError,
    ExportResult,
    _atomic_write,
    _Audio,
    _Formatter,
    _inside,
    _JsonArray,
    _JsonLines,
    _Skip,
    _Stream,
    _unique,
    safe_name,
)
from audiodata.export.llamafactory import _dataset_info_entry, _lf_alpaca, _lf_sharegpt, _lf_v1
from audiodata.export.media import _audios, _visual_files, _with_visual
from audiodata.export.minicpm import _minicpm
from audiodata.export.msswift import _swift
from audiodata.export.rl import VerlRows, _mmau, _trl, _verl
from audiodata.export.source import _eval_splits, _rows, _streams, _visual_columns
from audiodata.faults import on_path, write_atomic
from audiodata.lock import WORK, hold
from audiodata.rules.engine import check_export
from audiodata.rules.export_rules import target_rules

#: An export in progress: its state file in DEST/.audiodata (an interrupted export is redone by the same command).
EXPORT_STATE = "export.json"


def _check_dest(out: Path, dest: Path, overwrite: bool) -> None:
    """Refuse a destination that cannot take this export, before anything is written there."""
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} exists and is not a folder")
    if dest.resolve() == out.resolve() or out.resolve().is_relative_to(dest.resolve()):
        raise ExportError(f"{dest} would hold or replace the converted dataset {out}; choose another folder")
    if dest.resolve().is_relative_to(out.resolve()):
        raise ExportError(f"{dest} is inside the converted dataset {out}; choose another folder")
    if not overwrite and _holds_files(dest) and not _unfinished(dest):
        raise DestinationNotEmpty(f"{dest} is not empty; choose an empty folder or pass --overwrite")


def _holds_files(dest: Path) -> bool:
    return dest.is_dir() and any(p.name != WORK for p in dest.iterdir())


def _unfinished(dest: Path) -> bool:
    """An export into ``dest`` that stopped before its end (a kill, a full disk): the same command redoes it."""
    try:
        return json.loads((dest / WORK / EXPORT_STATE).read_text(encoding="utf-8")).get("status") == "running"
    except (OSError, ValueError, AttributeError):
        return False


def _prepare_dest(out: Path, dest: Path, overwrite: bool) -> None:
    _check_dest(out, dest, overwrite)
    if _holds_files(dest):
        # only what an export writes: the audio folder, dataset_info.json, top-level data files and their .tmp
        with on_path(dest, "clear"):
            shutil.rmtree(dest / "audio", ignore_errors=True)
            for p in dest.iterdir():
                if p.is_file() and p.suffix == ".yaml" and p.with_suffix(".jsonl").is_file():  # a v1 export's YAML
                    p.unlink()
            for p in dest.iterdir():
                if p.is_file() and p.name.endswith(
                    (".json", ".jsonl", ".parquet", ".json.tmp", ".jsonl.tmp", ".yaml.tmp", ".parquet.tmp")
                ):
                    p.unlink()
    with on_path(dest, "create"):
        dest.mkdir(parents=True, exist_ok=True)
    _export_state(dest, "running")


def _export_state(dest: Path, status: str) -> None:
    with on_path(dest / WORK, "create"):
        (dest / WORK).mkdir(exist_ok=True)
    write_atomic(dest / WORK / EXPORT_STATE, json.dumps({"status": status}) + "\n")


def export(
    out: Path | str,
    to: str,
    dest: Path | str,
    form: str = "sharegpt",
    audio_format: str = "flac",
    *,
    overwrite: bool = False,
    relative_paths: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Export the converted dataset ``out`` to ``dest`` for trainer ``to``.

    ``to``: ``llamafactory`` (``form`` sharegpt or alpaca), ``llamafactory-v1``, ``ms-swift``, ``minicpm``,
    ``align-anything``, or for RL records ``trl``, ``verl``, ``mmau`` (:mod:`audiodata.export.rl`).
    ``relative_paths`` (ms-swift only): audio paths relative to ``dest`` rather than absolute.
    ``on_progress(rows_done, rows_total)`` is called as rows are exported (after ``dest`` was checked).
    Raises :class:`ExportError` for usage errors, :class:`DatasetError` for a damaged dataset, :class:`OutputBusy`
    when another export writes ``dest``; records a target cannot express are
    skipped and counted in :attr:`ExportResult.skipped_by_reason`.
    """
    dest = Path(dest)
    if to not in TARGETS:
        raise ExportError(f"unknown target {to!r}; choose one of {', '.join(TARGETS)}")
    if form not in FORMS:
        raise ExportError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    if form != "sharegpt" and to != "llamafactory":
        raise ExportError("--format (form=) applies to --to llamafactory only")
    if audio_format not in AUDIO_FORMATS:
        raise ExportError(f"unknown audio format {audio_format!r}; choose one of {', '.join(AUDIO_FORMATS)}")
    if relative_paths and to != "ms-swift":
        raise ExportError("--relative-paths applies to --to ms-swift only")
    out = objstore.readable(out)  # a dataset in an object store: read from its local copy (a Path either way)
    ds = ConvertedDataset.open(out)  # DatasetError: not a converted dataset, or a damaged one (read once, here)
    streams = _streams(ds)
    _check_dest(out, dest, overwrite)
    with hold(dest, "export"):  # OutputBusy: another export writes DEST
        _prepare_dest(out, dest, overwrite)
        tick = _ticker(on_progress, sum(s.rows for s in ds.manifest.shards))
        result = _export(ds, streams, dest, to, form, audio_format, relative_paths, tick)
        _export_state(dest, "complete")
    return result


def _ticker(on_progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    """One call per row read: ``on_progress(rows_done, rows_total)``."""
    done = [0]

    def tick() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], total)

    return tick


def _export(
    ds: ConvertedDataset,
    streams: list[_Stream],
    dest: Path,
    to: str,
    form: str,
    audio_format: str,
    relative_paths: bool,
    tick: Callable[[], None] = lambda: None,
) -> ExportResult:
    result = ExportResult(dest, to, form, relative_paths=relative_paths)
    formatters: dict[str, _Formatter] = {
        "llamafactory": _lf_alpaca if form == "alpaca" else _lf_sharegpt,
        "llamafactory-v1": _lf_v1,
        "ms-swift": functools.partial(_swift, root=None if relative_paths else dest.resolve()),
        "minicpm": _minicpm,
        "align-anything": _align_anything,
        "trl": _trl,
        "verl": _verl,
        "mmau": _mmau,
    }
    formatter = formatters[to]
    rules = target_rules(to, form)
    suffix = {"llamafactory": ".json", "align-anything": ".parquet", "verl": ".parquet", "mmau": ".json"}.get(to, ".jsonl")
    info: dict[str, Any] = {}
    used_files: set[str] = set()
    evals = _eval_splits(ds)
    for stream in streams:
        stem = _unique(f"{safe_name(stream.config)}_{safe_name(stream.split)}", used_files)
        path = _inside(dest, dest / f"{stem}{suffix}")
        written = _export_stream(stream, path, dest, formatter, rules, to, audio_format, result, tick)
        if not written:
            with on_path(path, "delete"):
                path.unlink()
            continue
        result.files.append(path.name)
        result.streams[path.name] = (stream.kind, stream.split)
        name = stem
        if to == "llamafactory":
            info[stem] = _dataset_info_entry(path.name, form, stream.kind, _visual_columns(stream))
        elif to == "llamafactory-v1":  # the dataset YAML v1 loads (v1/core/data_engine.py: path, source)
            name = f"{stem}.yaml"
            entry = {stem: {"path": path.name, "source": "local"}}
            _atomic_write(_inside(dest, dest / name), yaml.safe_dump(entry, sort_keys=False))
            result.files.append(name)
        if to in ("llamafactory", "llamafactory-v1"):
            keys = ("dataset", "eval_dataset") if to == "llamafactory" else ("train_dataset", "eval_dataset")
            stage = result.train.setdefault(stream.kind, {keys[0]: [], "eval_dataset": []})
            stage[keys[1] if stream.split in evals else keys[0]].append(name)
        elif to == "align-anything":  # AA's trainers take --train_data_files / --eval_data_files (and --*_split train)
            stage = result.train.setdefault(stream.kind, {"train_data_files": [], "eval_data_files": []})
            stage["eval_data_files" if stream.split in evals else "train_data_files"].append(path.name)
    if to == "llamafactory":
        _atomic_write(dest / "dataset_info.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        result.files.append("dataset_info.json")
    return result


class _MediaFiles:
    """Writes an export's audio/image/video files under ``dest``: each folder made and checked once, not per file.

    A file's name comes from :func:`safe_name` parts (no separators, no ``..``), so only its folder can lead
    elsewhere (a symbolic link): that is resolved once, when the folder is first used. Per-file ``resolve`` and
    ``mkdir`` calls were a cost per row on top of the bytes copied (``benchmarks/export_bench.py``).
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.folders: dict[str, Path] = {}

    def write(self, item: _Audio) -> None:
        folder, _, name = item.rel.rpartition("/")
        where = self.folders.get(folder)
        target = (where or self.dest / folder) / name
        with on_path(target):
            if where is None:
                where = _inside(self.dest, self.dest / folder)
                where.mkdir(parents=True, exist_ok=True)
                _inside(self.dest, where)  # again, now that it exists: a link made there leads nowhere else
                self.folders[folder] = where
            with open(target, "wb") as fh:
                fh.write(item.data)


@contextlib.contextmanager
def _output(to: str, tmp: Path, kind: str, split: str = "") -> Iterator[Any]:
    """The data file's writer: a JSON array (LLaMA-Factory, MMAU), Parquet row groups (Align-Anything, verl), else
    JSON lines."""
    if to in ("align-anything", "verl"):
        rows: ParquetRows = ParquetRows(tmp, features(kind)) if to == "align-anything" else VerlRows(tmp, split)
        try:
            yield rows
        finally:
            rows.writer.close()  # after close(): a no-op; on an error: the file is let go
        return
    with open(tmp, "w", encoding="utf-8") as fh:
        yield _JsonArray(fh) if to in ("llamafactory", "mmau") else _JsonLines(fh)


def _export_stream(
    stream: _Stream,
    path: Path,
    dest: Path,
    formatter: _Formatter,
    rules: frozenset[str],
    to: str,
    audio_format: str,
    result: ExportResult,
    tick: Callable[[], None] = lambda: None,
) -> int:
    audio_dir = f"audio/{safe_name(stream.config)}/{safe_name(stream.split)}"
    stems: set[str] = set()
    skipped: Counter[tuple[str, str]] = Counter()
    tmp = path.with_name(path.name + ".tmp")
    columns = _visual_columns(stream)
    files = _MediaFiles(dest)
    with on_path(tmp), _output(to, tmp, stream.kind, stream.split) as writer:
        n_read = n_written = 0
        for rec in _rows(stream):
            n_read += 1
            tick()
            try:
                stem = _unique(safe_name(rec.id), stems) if rec.audios or rec.images or rec.videos else ""
                found = check_export(rec, rules)  # the target's rule set: any finding skips the record
                if found:
                    raise _Skip(found[0])
                audios = _audios(rec, audio_dir, stem, audio_format)
                obj = formatter(rec, audios)
                visual = {name: _visual_files(getattr(rec, name), f"{audio_dir}/{stem}_{name[:-1]}") for name in columns}
                obj = _with_visual(obj, visual)
            except _Skip as why:
                f = why.finding
                skipped[(f.code, f.message)] += 1
                if len(result.skipped) < _MAX_SKIP_LIST:
                    entry = {"config": stream.config, "split": stream.split, "id": rec.id, "code": f.code, "reason": f.message}
                    result.skipped.append(entry)
                continue
            if to not in ("minicpm", "align-anything", "verl"):  # these carry the audio inline
                for a in [*audios, *(v for files in visual.values() for v in files)]:
                    files.write(a)
                    result.audio_files += 1
            writer.add(obj)
            n_written += 1
        writer.close()
    with on_path(path, "rename"):
        os.replace(tmp, path)
    result.read[stream.key] = n_read
    result.counts[stream.key] = n_written
    for (code, reason), n in skipped.items():
        result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + n
        result.skipped_by_code[code] = result.skipped_by_code.get(code, 0) + n
    return n_written
