"""Local Hugging Face datasets as ``datasets`` writes them, read with pyarrow alone.

- ``save_to_disk``: a folder with ``dataset_info.json`` + ``state.json`` (its ``_data_files`` list the
  Arrow files, IPC stream format, in order), or ``dataset_dict.json`` with one such folder per split;
- ``to_parquet`` / ``push_to_hub`` layouts: Parquet files (``data/train-00000-of-00001.parquet``);
- one ``.parquet`` or ``.arrow`` file named directly.

Every file carries the dataset's features in its schema metadata (``huggingface``): an ``Audio``
column is stored as ``{bytes, path}``, and its bytes are taken as stored (never decoded by
``datasets``, which needs torchcodec for that), so the audio stage sees the original encoded file.
Rows are read a batch at a time and located as ``row N`` of their file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.errtext import library_error
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.registry import DATASET_INFO, is_json

SUFFIXES = (".parquet", ".arrow")
STATE, DICT = "state.json", "dataset_dict.json"
BATCH_ROWS = 16


def is_table(path: Path) -> bool:
    return path.name.endswith(SUFFIXES) and not path.name.startswith(("cache-", "."))


def is_saved(folder: Path) -> bool:
    """A ``save_to_disk`` folder (one dataset or a DatasetDict)."""
    return (folder / DICT).is_file() or ((folder / STATE).is_file() and (folder / DATASET_INFO).is_file())


def is_dataset_folder(folder: Path) -> bool:
    """A folder ``datasets`` wrote: saved with ``save_to_disk``, or Parquet/Arrow files and no JSON data."""
    if is_saved(folder):
        return True
    if (folder / DATASET_INFO).is_file():  # LLaMA-Factory's dataset_dir: its registry says which files are data
        return False
    tables = False
    for dirpath, dirnames, filenames in os.walk(folder):  # names only, no stat: a JSON corpus folder stops at its first JSON
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if is_json(Path(name)):
                return False
            tables = tables or is_table(Path(dirpath, name))
    return tables


def _walk(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts):
            yield p


def dataset_files(folder: Path) -> list[Path]:
    """The data files of a dataset folder, in the order ``datasets`` reads them: a saved dataset's
    ``state.json`` order, a DatasetDict's splits in its own order, else sorted paths."""
    if (folder / DICT).is_file():
        splits = _json(folder / DICT).get("splits") or []
        return [f for s in splits if isinstance(s, str) for f in dataset_files(folder / s)]
    if (folder / STATE).is_file():
        names = [d.get("filename") for d in _json(folder / STATE).get("_data_files") or [] if isinstance(d, dict)]
        return [folder / n for n in names if isinstance(n, str)]
    return [p for p in _walk(folder) if is_table(p)]


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        from audiodata.readers.registry import InputError

        raise InputError(f"{path}: cannot read it ({library_error(exc)})") from None
    return value if isinstance(value, dict) else {}


# -- schema ----------------------------------------------------------------------------------------


def schema(path: Path) -> Any:
    """The file's Arrow schema (raises OSError/pyarrow errors for an unreadable file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.name.endswith(".parquet"):
        return pq.read_schema(path)
    with pa.memory_map(str(path)) as src:
        try:
            return pa.ipc.open_stream(src).schema
        except pa.ArrowInvalid:
            return pa.ipc.open_file(src).schema


def features(sch: Any) -> dict[str, Any]:
    """The ``datasets`` features stored in a schema's metadata ({} when it has none)."""
    raw = (sch.metadata or {}).get(b"huggingface")
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    feats = info.get("info", {}).get("features") if isinstance(info, dict) else None
    return feats if isinstance(feats, dict) else {}


def audio_columns(feats: dict[str, Any]) -> list[str]:
    """Top-level columns typed ``Audio``, or a list of ``Audio`` (``audios`` in chat datasets)."""

    def is_audio(f: Any) -> bool:
        if isinstance(f, list) and f:
            return is_audio(f[0])
        if not isinstance(f, dict):
            return False
        return f.get("_type") == "Audio" or (f.get("_type") in ("Sequence", "List", "LargeList") and is_audio(f.get("feature")))

    return [name for name, f in feats.items() if is_audio(f)]


def sample_row(sch: Any) -> dict[str, Any]:
    """A stand-in row from the schema alone (lists as [], structs as {}, strings as text): for detection."""
    import pyarrow as pa

    out: dict[str, Any] = {}
    for field in sch:
        t = field.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            out[field.name] = []
        elif pa.types.is_struct(t):
            out[field.name] = {}
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            out[field.name] = "text"
        else:
            out[field.name] = 0
    return out


# -- rows ------------------------------------------------------------------------------------------


def row_group_starts(path: Path) -> list[tuple[int, int]]:
    """Where each row group of a Parquet file starts: ``(byte, first row)``, the first at byte 0 (before the
    magic) so that the starts cut ``[0, size)``; a row group's byte is its first column chunk's first page. A rank
    cuts a Parquet input at these bytes (:mod:`audiodata.pipeline.ranks`). Raises what pyarrow raises on a file it
    cannot read."""
    import pyarrow.parquet as pq

    starts: list[tuple[int, int]] = []
    row = 0
    meta = pq.read_metadata(path)
    for k in range(meta.num_row_groups):
        rg = meta.row_group(k)
        offsets = [
            min(o for o in (c.dictionary_page_offset, c.data_page_offset) if o is not None and o > 0)
            for c in (rg.column(j) for j in range(rg.num_columns))
        ]
        starts.append((0 if k == 0 else min(offsets), row))
        row += rg.num_rows
    return starts


def iter_rows(path: Path, display: str, part: tuple[int, int] | None = None) -> Iterator[RawItem]:
    """Every row of one Parquet or Arrow file as a parsed item (``row N``). A file that cannot be read
    (or stops part way) is one item with its F004, located where reading stopped; never an exception.
    ``part``: bytes ``[start, end)`` of a Parquet file: the row groups that start in it (:func:`row_group_starts`),
    numbered as in the whole file."""
    index = 0
    try:
        groups: list[int] | None = None
        if part is not None:
            starts = row_group_starts(path)
            groups = [k for k, (at, _) in enumerate(starts) if part[0] <= at < part[1]]
            index = starts[groups[0]][1] if groups else 0
        for batch in _batches(path, groups):
            for row in batch.to_pylist():
                yield RawItem(index, 0, obj=row, member=f"row {index}")
                index += 1
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError) for a damaged or foreign file
        reason = f"cannot read the {'Parquet' if path.name.endswith('.parquet') else 'Arrow'} file: " + library_error(
            exc, path.name, (str(path),)
        )
        if index:
            reason += " (reading stopped here; the rows before it are kept)"
        yield RawItem(index if index else -1, 0, code="F004", error=reason, member=f"row {index}" if index else None)


def _batches(path: Path, groups: list[int] | None = None) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.name.endswith(".parquet"):
        if groups == []:
            return
        with pq.ParquetFile(path) as pf:
            yield from pf.iter_batches(batch_size=BATCH_ROWS, row_groups=groups)
        return
    with pa.memory_map(str(path)) as src:
        try:
            reader: Any = pa.ipc.open_stream(src)
            batches: Iterator[Any] = iter(reader)
        except pa.ArrowInvalid:
            src.seek(0)
            reader = pa.ipc.open_file(src)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        for batch in batches:
            for start in range(0, batch.num_rows, BATCH_ROWS):
                yield batch.slice(start, BATCH_ROWS)
