"""Records of a converted dataset as dedup sees them: clip hashes, fingerprints of the stored
audio (decoded from the shards' FLAC) and conversation keys. ``--against`` compares new
inputs with them; ``convert --dedup`` re-reads its own durable shards when it resumes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audiodata import objstore
from audiodata.audio.analyse import rms_dbfs
from audiodata.audio.transform import decode_bytes
from audiodata.dataset import ConvertedDataset, DatasetError, batches, open_shard, reading
from audiodata.dedup.fingerprint import Fingerprint, fingerprint
from audiodata.dedup.index import RecordInfo, clip_identity, conversation_keys
from audiodata.writer.schema import layout_of, record_columns, record_from_row

StoredDataError = DatasetError  # the folder is not a converted dataset, or a damaged one


def stored_records(out: Path, near: bool, reference: bool = False) -> Iterator[RecordInfo]:
    """The records of a converted dataset as dedup sees them: clip hashes (and fingerprints of the
    stored audio when ``near``) plus conversation keys. Used for ``--against`` and to resume
    ``convert --dedup``."""

    ds = ConvertedDataset.open(out)
    for shard in ds.shards():
        yield from shard_records(ds.path(shard), near, reference, shown=shard.file, out=out)


def shard_records(
    path: Path, near: bool, reference: bool = False, shown: str | None = None, out: str | os.PathLike[str] | None = None
) -> Iterator[RecordInfo]:
    """The records of one shard; a damaged shard is a :class:`DatasetError` naming ``shown`` (and the row group)."""
    shown = shown or path.name
    where = out if out is not None else path.parent
    pf = open_shard(path, shown, where)
    with reading(path, shown, where):
        kind, version = layout_of(pf.schema_arrow.names)
        cols = [*record_columns(kind, version), "audio_info"] + (["audios"] if near else [])
    audio = None if near else _StoredAudio(path)
    row_number = 0
    for batch in batches(pf, shown, where, 64, cols):
        for row in batch.to_pylist():
            with reading(path, shown, where):
                rec = record_from_row(row, kind, version)
                hashes = [a["pcm_hash"] for a in row["audio_info"] or []]
                clips: list[tuple[str | None, Fingerprint | None]] = (
                    [_clip(h, a) for h, a in zip(hashes, row["audios"], strict=True)] if near else [(h, None) for h in hashes]
                )
            prompt, response = conversation_keys(rec)
            src = row["source"] or {}
            yield RecordInfo(
                src.get("file", shown),
                int(src.get("index", -1)),
                src.get("line"),
                rec.kind,
                clips,
                prompt,
                response,
                reference,
                probe=audio.probe(row_number) if audio is not None else None,
            )
            row_number += 1


def reference_records(out: str | os.PathLike[str], near: bool) -> Iterator[RecordInfo]:
    """The records of the ``--against`` dataset ``out`` (a folder, or one in an object store: its local copy,
    brought to what the store holds where this runs, so a Ray task on another node pulls its own)."""
    return stored_records(objstore.readable(out), near, reference=True)


class _StoredAudio:
    """Exact mode reads no stored audio; whether a stored clip is silent is asked only when its hash
    was already seen (two equal PCMs: possibly two silent clips), so the clip is decoded on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def probe(self, row: int) -> Callable[[int], bool]:
        return lambda k: self.silent(row, k)

    def silent(self, row: int, k: int) -> bool:
        import pyarrow.parquet as pq

        with reading(self.path, self.path.name, self.path.parent):
            pf = pq.ParquetFile(self.path)
            start = 0
            for g in range(pf.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if row < start + n:
                    stored = pf.read_row_group(g, columns=["audios"]).column("audios")[row - start].as_py()[k]
                    pcm, _ = decode_bytes(stored["bytes"], name=stored.get("path") or "clip.flac")
                    return clip_identity("", None, rms_dbfs(pcm))[0] is None
                start += n
        return False


def _clip(pcm_hash: str, audio: dict[str, Any]) -> tuple[str | None, Fingerprint | None]:
    """A stored clip as near dedup compares it: fingerprinted, or without identity when silent."""
    pcm, rate = decode_bytes(audio["bytes"], name=audio.get("path") or "clip.flac")
    return clip_identity(pcm_hash, fingerprint(pcm, rate), rms_dbfs(pcm))
