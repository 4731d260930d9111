"""Records of a converted dataset as dedup sees them: clip hashes, fingerprints of the stored
audio (decoded from the shards' FLAC) and conversation keys. ``--against`` compares new
inputs with them; ``convert --dedup`` re-reads its own durable shards when it resumes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.audio.transform import decode_bytes
from audiodata.dedup.fingerprint import fingerprint
from audiodata.dedup.index import RecordInfo, conversation_keys
from audiodata.writer.schema import layout_of, record_columns, record_from_row


class StoredDataError(ValueError):
    """The folder is not a converted dataset."""


def stored_records(out: Path, near: bool, reference: bool = False) -> Iterator[RecordInfo]:
    """The records of a converted dataset as dedup sees them: clip hashes (and fingerprints of the
    stored audio when ``near``) plus conversation keys. Used for ``--against`` and to resume
    ``convert --dedup``."""

    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise StoredDataError(f"{out}: not a converted dataset (no manifest.json)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for shard in manifest["shards"]:
        yield from shard_records(out / shard["file"], near, reference)


def shard_records(path: Path, near: bool, reference: bool = False) -> Iterator[RecordInfo]:
    import pyarrow.parquet as pq

    kind, version = layout_of(pq.read_schema(path).names)
    cols = [*record_columns(kind, version), "audio_info"] + (["audios"] if near else [])
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64, columns=cols):
        for row in batch.to_pylist():
            rec = record_from_row(row, kind, version)
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


def _print(audio: dict[str, Any]) -> Any:
    pcm, rate = decode_bytes(audio["bytes"], name=audio.get("path") or "clip.flac")
    return fingerprint(pcm, rate)
