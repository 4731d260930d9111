"""The output schema, defined once.

From this one table come the ``datasets.Features`` (and so the Parquet schema with
its ``huggingface`` metadata and the card's ``dataset_info``) and the JSON Schema in
``schemas/output.schema.json``; a test keeps the committed file in sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datasets import Audio, Features, Image, List, Value, Video

from audiodata.records import RECORD_KINDS

MESSAGE = {"role": Value("string"), "content": Value("string")}

AUDIO_INFO = {
    "sampling_rate": Value("int32"),
    "channels": Value("int8"),
    "num_samples": Value("int64"),
    "duration": Value("float64"),
    "pcm_hash": Value("string"),
    "origin": Value("string"),
    "source_format": Value("string"),
    "source_sampling_rate": Value("int32"),
    "source_channels": Value("int32"),
}

SOURCE = {"file": Value("string"), "index": Value("int64"), "line": Value("int64")}


@dataclass(frozen=True)
class Column:
    name: str
    kinds: tuple[str, ...]  # which configs carry it: "sft", "dpo"
    description: str


COLUMNS = (
    Column("id", ("sft", "dpo"), "Record id: the input's id, else '<file stem>-<index>'."),
    Column("messages", ("sft", "dpo"), "Turns {role, content}; content keeps <audio> markers in place. For DPO: the prompt."),
    Column("chosen", ("dpo",), "DPO: the preferred response turns."),
    Column("rejected", ("dpo",), "DPO: the dispreferred response turns."),
    Column("system", ("sft", "dpo"), "System prompt, or null."),
    Column("tools", ("sft", "dpo"), "Tool definitions as a JSON string, or null."),
    Column("audios", ("sft", "dpo"), "The record's audios in marker order: Hub Audio structs {bytes, path}."),
    Column("audio_info", ("sft", "dpo"), "Per audio: rate, channels, samples, seconds, PCM hash, original reference and format."),
    Column("audio_seconds", ("sft", "dpo"), "Total seconds of audio in the record (for length-grouped batching)."),
    Column("source", ("sft", "dpo"), "Where the record came from: input file as given, 0-based index, 1-based line."),
)


#: Image and video columns: only in runs whose records carry images / videos (decided before the first
#: row, the same for every shard). Audio-only outputs stay without them: TRL treats any dataset with an
#: ``images`` column as a vision dataset and refuses it for an audio model.
VISUAL_COLUMNS = (
    Column(
        "images",
        RECORD_KINDS,
        "The record's images in <image> marker order: Hub Image structs {bytes, path} with the original file bytes, "
        "or (--visual refs) paths relative to the media root. Present only when the run has images.",
    ),
    Column(
        "videos",
        RECORD_KINDS,
        "The record's videos in <video> marker order: Hub Video structs {bytes, path} with the original file bytes, "
        "or (--visual refs) paths relative to the media root. Present only when the run has videos.",
    ),
)


@dataclass(frozen=True)
class Visual:
    """Which visual columns a run writes, and how: embedded Hub features, or file references (``refs``)."""

    images: bool = False
    videos: bool = False
    refs: bool = False

    def types(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, feature in (("images", Image()), ("videos", Video())):
            if getattr(self, name):
                out[name] = List(Value("string") if self.refs else feature)
        return out


NO_VISUAL = Visual()


def features(kind: str, sample_rate: int, visual: Visual = NO_VISUAL) -> Features:
    types: dict[str, Any] = {
        "id": Value("string"),
        "messages": List(MESSAGE),
        "chosen": List(MESSAGE),
        "rejected": List(MESSAGE),
        "system": Value("string"),
        "tools": Value("string"),
        "audios": List(Audio(sampling_rate=sample_rate)),
        "audio_info": List(AUDIO_INFO),
        "audio_seconds": Value("float64"),
        "source": SOURCE,
        **visual.types(),
    }
    return Features({c.name: types[c.name] for c in (*COLUMNS, *VISUAL_COLUMNS) if kind in c.kinds and c.name in types})


def arrow_schema(kind: str, sample_rate: int, visual: Visual = NO_VISUAL) -> pa.Schema:
    return features(kind, sample_rate, visual).arrow_schema


_JSON_TYPES = {"string": "string", "int8": "integer", "int32": "integer", "int64": "integer", "float64": "number"}


def _json_type(feature: Any) -> dict[str, Any]:
    if isinstance(feature, Value):
        return {"type": [_JSON_TYPES[feature.dtype], "null"]}
    if isinstance(feature, Audio):
        return {
            "type": "object",
            "properties": {"bytes": {"type": "string", "contentEncoding": "base64"}, "path": {"type": "string"}},
            "required": ["bytes", "path"],
            "description": f"Hub Audio struct; FLAC or WAV at {feature.sampling_rate} Hz mono",
        }
    if isinstance(feature, (Image, Video)):
        what = type(feature).__name__
        return {
            "type": "object",
            "properties": {"bytes": {"type": "string", "contentEncoding": "base64"}, "path": {"type": "string"}},
            "required": ["bytes", "path"],
            "description": f"Hub {what} struct: the original {what.lower()} file, as the input gave it",
        }
    if isinstance(feature, List):
        return {"type": "array", "items": _json_type(feature.feature)}
    if isinstance(feature, dict):
        return {
            "type": "object",
            "properties": {k: _json_type(v) for k, v in feature.items()},
            "required": list(feature),
            "additionalProperties": False,
        }
    raise TypeError(feature)


def output_json_schema(sample_rate: int = 16000) -> dict[str, Any]:
    """JSON Schema (2020-12) of one output row, SFT or DPO, generated from :data:`COLUMNS` (required)
    and :data:`VISUAL_COLUMNS` (optional: embedded or references)."""
    variants = []
    for kind in ("sft", "dpo"):
        feats = features(kind, sample_rate)
        props = {}
        for c in COLUMNS:
            if kind in c.kinds:
                props[c.name] = {**_json_type(feats[c.name]), "description": c.description}
        required = list(props)
        embed, refs = features(kind, sample_rate, Visual(True, True)), features(kind, sample_rate, Visual(True, True, True))
        for c in VISUAL_COLUMNS:
            if kind in c.kinds:
                forms = [_json_type(embed[c.name].feature), _json_type(refs[c.name].feature)]
                props[c.name] = {"type": "array", "items": {"oneOf": forms}, "description": c.description}
        variants.append(
            {
                "title": f"{kind} row",
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://audiodata.dev/schemas/output.schema.json",
        "title": "audiodata output row",
        "description": "One row of an audiodata Parquet shard, as datasets.load_dataset(..., decode=False) returns it. "
        "Generated from audiodata/writer/schema.py; do not edit by hand.",
        "oneOf": variants,
    }


def dump_output_schema() -> str:
    return json.dumps(output_json_schema(), indent=2) + "\n"
