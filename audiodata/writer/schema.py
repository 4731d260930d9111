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

from audiodata.dataset import FORMAT_VERSION
from audiodata.records import RECORD_KINDS, MediaRef, Message, Record, SourceLoc

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


# The version of the on-disk layout lives with the rest of it, in audiodata/dataset.py.

#: The configs a run can write, in the order cards and manifests list them.
KINDS = RECORD_KINDS


@dataclass(frozen=True)
class Column:
    name: str
    kinds: tuple[str, ...]  # which configs carry it: "sft", "dpo", "kto", "rl"
    description: str


_ALL = KINDS

COLUMNS = (
    Column("id", _ALL, "Record id: the input's id, else '<file stem>-<index>'."),
    Column("messages", ("sft",), "Turns {role, content}; content keeps <audio> markers in place (TRL conversational SFT)."),
    Column("prompt", ("dpo", "kto", "rl"), "DPO/KTO/RL: the prompt turns, ending on the user; <audio> markers in place."),
    Column("chosen", ("dpo",), "DPO: the preferred response turns."),
    Column("rejected", ("dpo",), "DPO: the dispreferred response turns."),
    Column("completion", ("kto",), "KTO: the one response turn that the label judges."),
    Column("label", ("kto",), "KTO: true if the completion is desirable, false if undesirable."),
    Column(
        "answer",
        ("rl",),
        "RL: the reference answer the reward functions check completions against; for multiple choice, the choice's text.",
    ),
    Column("choices", ("rl",), "RL: the options of a multiple-choice question in order (A, B, ...), or null."),
    Column("task", ("rl",), "RL: the task tag (mcq, asr, qa, caption, translate, or the input's own); qa when unknown."),
    Column(
        "meta",
        ("rl",),
        "RL: a JSON object (as text) of what else the input said of the record (data source, category, extra "
        "columns), or null; reward functions receive it as the keyword meta.",
    ),
    Column("system", _ALL, "System prompt, or null."),
    Column("tools", _ALL, "Tool definitions as a JSON string, or null."),
    Column("audios", _ALL, "The record's audios in marker order: Hub Audio structs {bytes, path}."),
    Column("audio_info", _ALL, "Per audio: rate, channels, samples, seconds, PCM hash, original reference and format."),
    Column("audio_seconds", _ALL, "Total seconds of audio in the record (for length-grouped batching)."),
    Column("source", _ALL, "Where the record came from: input file as given, 0-based index, 1-based line."),
)


def prompt_column(kind: str, format_version: int = FORMAT_VERSION) -> str:
    """The column holding the prompt turns: ``messages`` for SFT (the whole conversation) and for
    format-1 DPO, ``prompt`` otherwise."""
    return "messages" if kind == "sft" or format_version < 2 else "prompt"


def layout_of(names: list[str] | tuple[str, ...]) -> tuple[str, int]:
    """(kind, format version) of a shard from its column names, for readers that hold a shard
    but not the manifest (resume, ``--against`` on a single file)."""
    kind = "rl" if "answer" in names else "kto" if "label" in names else "dpo" if "chosen" in names else "sft"
    return kind, 2 if "prompt" in names or kind in ("kto", "rl") else 1 if kind == "dpo" else FORMAT_VERSION


def record_columns(kind: str, format_version: int = FORMAT_VERSION) -> list[str]:
    """The text columns a record is rebuilt from (:func:`record_from_row`), in that layout."""
    cols = [prompt_column(kind, format_version), "system", "tools", "source", "id"]
    return cols + {"dpo": ["chosen", "rejected"], "kto": ["completion", "label"], "rl": list(RL_COLUMNS)}.get(kind, [])


#: The columns only the ``rl`` config has (the record's ``answer``, ``choices``, ``task``, ``meta``).
RL_COLUMNS = ("answer", "choices", "task", "meta")


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


#: Only in runs whose records carry metadata (the raw ASR corpora: NeMo, lhotse, subtitles), decided like the
#: visual columns before the first row.
METADATA_COLUMN = Column(
    "metadata",
    RECORD_KINDS,
    "What the source corpus says beyond the conversation, as a JSON object (keys sorted): NeMo's keys other than "
    "the audio path and text (offset, duration, lang, speaker, ...), a lhotse cut (cut_id, recording_id, start, duration, "
    "channel) with its supervisions (start, duration, channel, language, speaker, ...), a window's segments with their "
    "lines; with --normalize-transcripts, transcript_original: the original text of each reply it changed, keyed by its "
    "place in the row (messages[1], chosen[0], rejected[0], completion[0]). Present only when the run has such records "
    "or normalises transcripts; null for the others.",
)


@dataclass(frozen=True)
class Visual:
    """Which optional columns a run writes: images and videos (embedded Hub features, or file references with
    ``refs``), and the raw corpora's ``metadata``."""

    images: bool = False
    videos: bool = False
    refs: bool = False
    metadata: bool = False

    def types(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, feature in (("images", Image()), ("videos", Video())):
            if getattr(self, name):
                out[name] = List(Value("string") if self.refs else feature)
        if self.metadata:
            out["metadata"] = Value("string")
        return out


NO_VISUAL = Visual()


def features(kind: str, sample_rate: int, visual: Visual = NO_VISUAL) -> Features:
    types: dict[str, Any] = {
        "id": Value("string"),
        "messages": List(MESSAGE),
        "prompt": List(MESSAGE),
        "chosen": List(MESSAGE),
        "rejected": List(MESSAGE),
        "completion": List(MESSAGE),
        "label": Value("bool"),
        "answer": Value("string"),
        "choices": List(Value("string")),
        "task": Value("string"),
        "meta": Value("string"),
        "system": Value("string"),
        "tools": Value("string"),
        "audios": List(Audio(sampling_rate=sample_rate)),
        "audio_info": List(AUDIO_INFO),
        "audio_seconds": Value("float64"),
        "source": SOURCE,
        **visual.types(),
    }
    columns = (*COLUMNS, *VISUAL_COLUMNS, METADATA_COLUMN)
    return Features({c.name: types[c.name] for c in columns if kind in c.kinds and c.name in types})


def record_from_row(row: dict[str, Any], kind: str, format_version: int = FORMAT_VERSION) -> Record:
    """A stored row back as a canonical :class:`Record`: text and structure, and the audios, images and
    videos when the row holds those columns (``MediaRef`` of kind ``bytes``, the stored bytes, ``None`` when
    missing; ``path`` for ``--visual refs`` paths).

    The one reader of row layouts: export, dedup ``--against`` and resume go through it, so a
    format change is one diff here."""

    def turns(key: str) -> list[Message] | None:
        value = row.get(key)
        return None if value is None else [Message(m["role"], m["content"]) for m in value]

    def media(key: str) -> list[MediaRef]:
        out = []
        for i, item in enumerate(row.get(key) or []):
            if isinstance(item, str):  # --visual refs: a path relative to the media root
                out.append(MediaRef("path", item, f"{key}[{i}]"))
            else:
                out.append(MediaRef("bytes", (item or {}).get("bytes") or None, f"{key}[{i}]", (item or {}).get("path")))
        return out

    rl = kind == "rl"
    src = row.get("source") or {}
    loc = SourceLoc(str(src.get("file") or ""), int(src.get("index") or 0), src.get("line"))
    return Record(
        id=str(row.get("id") or ""),
        kind=kind,  # type: ignore[arg-type]
        messages=turns(prompt_column(kind, format_version)) or [],
        source=loc,
        system=row.get("system") or None,
        tools=row.get("tools") or None,
        chosen=turns("chosen") if kind == "dpo" else None,
        rejected=turns("rejected") if kind == "dpo" else None,
        completion=turns("completion") if kind == "kto" else None,
        label=row.get("label") if kind == "kto" else None,
        answer=row.get("answer") if rl else None,
        choices=row.get("choices") if rl else None,
        task=(row.get("task") or "qa") if rl else None,
        meta=_meta_of(row.get("meta")) if rl else None,
        audios=media("audios"),
        images=media("images"),
        videos=media("videos"),
    )


def _meta_of(text: Any) -> dict[str, Any] | None:
    """The stored ``meta`` JSON text back as an object (a value that is not one is kept under ``"value"``)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"value": text}
    return value if isinstance(value, dict) else {"value": value}


def meta_text(meta: dict[str, Any] | None) -> str | None:
    """``meta`` as the ``meta`` column stores it: JSON, keys sorted, non-ASCII kept."""
    return None if meta is None else json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)


def arrow_schema(kind: str, sample_rate: int, visual: Visual = NO_VISUAL) -> pa.Schema:
    return features(kind, sample_rate, visual).arrow_schema


_JSON_TYPES = {
    "bool": "boolean",
    "string": "string",
    "int8": "integer",
    "int32": "integer",
    "int64": "integer",
    "float64": "number",
}


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
    """JSON Schema (2020-12) of one output row, SFT, DPO, KTO or RL, generated from :data:`COLUMNS` (required)
    and :data:`VISUAL_COLUMNS` (optional: embedded or references)."""
    variants = []
    for kind in KINDS:
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
        props["metadata"] = {"type": ["string", "null"], "description": METADATA_COLUMN.description}
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
