"""The Align-Anything target: text-audio-to-text rows exactly as its ``AA_TA2T`` template reads them.

``align_anything/configs/format_dataset.py`` (PKU-Alignment/align-anything, commit 3f9decc): ``AA_TA2T`` builds
every conversation as its own system prompt, a user turn of the audio then the ``prompt`` text, and the answer;
``format_preference_sample`` takes ``better_id = int(raw_sample['overall_response'])`` and pairs
``response_{better_id}`` (chosen) with the other response; ``format_supervised_sample`` trains on
``response_{better_id}``. The audio is ``raw_sample['audio_path']['array']`` and ``['sampling_rate']``: a
``datasets`` ``Audio`` feature, which is why the rows are Parquet (AA loads them with ``load_dataset(path,
data_files=..., split=...)``) with the feature in the schema's ``huggingface`` metadata, the stored FLAC bytes
inline, as a dataset on the Hub holds them.

DPO rows: ``prompt``, ``audio_path``, ``response_1`` (chosen), ``response_2`` (rejected), ``overall_response`` 1.
SFT rows: ``prompt``, ``audio_path``, ``response_1``, ``overall_response`` 1 (the columns the SFT template reads).
Each row keeps the record's ``id``. Records AA_TA2T cannot express (X401-X405: KTO, another system prompt, more
than one exchange or audio, the audio not leading the user turn, tools, images or videos) are skipped and counted.
``audiodata convert`` reads the files back (``readers/dialects/align_anything.py``): the same records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Audio, Features, Value

from audiodata.export.base import _Audio
from audiodata.records import AUDIO_MARKER, Record

#: Rows per Parquet row group (each holds its clips' bytes inline).
ROW_GROUP = 64


def features(kind: str) -> Features:
    """The columns AA_TA2T reads, for SFT or DPO rows (``audio_path`` decodes to ``{'array', 'sampling_rate'}``)."""
    cols: dict[str, Any] = {"id": Value("string"), "prompt": Value("string"), "audio_path": Audio()}
    cols["response_1"] = Value("string")
    if kind == "dpo":
        cols["response_2"] = Value("string")
    cols["overall_response"] = Value("int64")
    return Features(cols)


def _align_anything(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    """One row; the target's rules ran first (one audio leading the one user turn, one reply per side)."""
    prompt = rec.messages[0].content[len(AUDIO_MARKER) :]
    row: dict[str, Any] = {
        "id": rec.id,
        "prompt": prompt,
        "audio_path": {"bytes": audios[0].data, "path": audios[0].rel.rsplit("/", 1)[-1]},
    }
    if rec.kind == "dpo":
        row["response_1"] = (rec.chosen or [])[0].content
        row["response_2"] = (rec.rejected or [])[0].content
    else:
        row["response_1"] = rec.messages[1].content
    row["overall_response"] = 1
    return row


class ParquetRows:
    """Rows written to one Parquet file a row group at a time, with the ``datasets`` features in its schema
    metadata (so ``load_dataset`` decodes ``audio_path`` as audio); never the whole file in memory."""

    def __init__(self, path: Path, feats: Features) -> None:
        meta = {"huggingface": json.dumps({"info": {"features": feats.to_dict()}})}
        self.schema = feats.arrow_schema.with_metadata(meta)
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows: list[dict[str, Any]] = []

    def add(self, obj: dict[str, Any]) -> None:
        self.rows.append(obj)
        if len(self.rows) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.writer.close()
