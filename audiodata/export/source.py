"""Reading the converted dataset an export starts from: its streams (config, split, shards) and rows."""

from __future__ import annotations

from collections.abc import Iterator

from audiodata.dataset import ConvertedDataset, batches, open_shard
from audiodata.export.base import _BATCH_ROWS, _COLUMNS, EVAL_SPLITS, VISUAL, _Stream
from audiodata.records import Record
from audiodata.writer.schema import record_from_row


def _streams(ds: ConvertedDataset) -> list[_Stream]:
    """One stream per config and split, its shard files in manifest order."""
    out = ds.root
    streams: dict[tuple[str, str], _Stream] = {}
    for s in ds.shards():
        name, split = s.config, s.split
        stream = streams.setdefault((name, split), _Stream(name, split, ds.kind(name), [], ds.format_version, out))
        stream.files.append(ds.path(s))
    return list(streams.values())


def _rows(stream: _Stream) -> Iterator[Record]:
    """Each stored row back as a :class:`Record` (``record_from_row``: the one reader of row layouts)."""
    for path in stream.files:
        shown = path.relative_to(stream.root).as_posix() if stream.root is not None else path.name
        where = stream.root if stream.root is not None else path.parent
        pf = open_shard(path, shown, where)
        cols = [c for c in _COLUMNS if c in pf.schema_arrow.names]
        for batch in batches(pf, shown, where, _BATCH_ROWS, cols):
            for r in batch.to_pylist():
                rec = record_from_row(r, stream.kind, stream.version)
                rec.id = rec.id or "record"
                yield rec


def _visual_columns(stream: _Stream) -> list[str]:
    """The visual columns the stream's shards carry: every exported record then has the key (maybe empty)."""
    if not stream.files:
        return []
    path = stream.files[0]
    shown = path.relative_to(stream.root).as_posix() if stream.root is not None else path.name
    names = open_shard(path, shown, stream.root if stream.root is not None else path.parent).schema_arrow.names
    return [name for name in VISUAL if name in names]


def _eval_splits(ds: ConvertedDataset) -> set[str]:
    """The converted dataset's evaluation splits: its ``--val-split`` (when it made one) and the usual names."""
    options = ds.options
    named = {options["val_split"]} if options.get("val_ratio") and options.get("val_split") else set()
    return named | set(EVAL_SPLITS)
