"""Dialect detection and dispatch: raw JSON object -> canonical :class:`Record`."""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects import (
    align_anything,
    alpaca,
    lhotse,
    llamafactory_v1,
    messages,
    minicpm,
    nemo,
    rl,
    sharegpt,
    transcription,
)
from audiodata.readers.dialects.common import ParseContext, ParseError
from audiodata.records import Record
from audiodata.rules.findings import Finding

PARSERS = {
    "minicpm": minicpm.parse,
    "sharegpt": sharegpt.parse,
    "alpaca": alpaca.parse,
    "messages": messages.parse,
    "llamafactory-v1": llamafactory_v1.parse,
    "nemo": nemo.parse,
    "lhotse": lhotse.parse,
    "transcription": transcription.parse,
    "align-anything": align_anything.parse,
    "align-anything-sft": align_anything.parse_sft,
    "verl": rl.parse_verl,
    "audio-qa": rl.parse_audio_qa,
}


def detect(obj: dict[str, Any]) -> str | None:
    """Name the dialect a record is written in, from its keys."""
    if "conversations" in obj:
        return "sharegpt"
    if llamafactory_v1.is_v1_row(obj):
        return "llamafactory-v1"
    if rl.is_verl_row(obj):
        return "verl"
    msgs = obj.get("messages")
    if msgs is None and isinstance(obj.get("prompt"), list):
        msgs = obj["prompt"]
    elif msgs is None and isinstance(obj.get("prompt"), str) and rl.is_rl_row(obj):  # TRL GRPO, standard prompt
        return "messages"
    if isinstance(msgs, list):
        first = next((m for m in msgs if isinstance(m, dict)), {})
        return "sharegpt" if "from" in first else "messages"
    if align_anything.is_row(obj):
        return "align-anything"
    if rl.is_audio_qa(obj):  # MMAU-style audio QA: question, choices, answer, audio_id
        return "audio-qa"
    if "instruction" in obj or "output" in obj or ("input" in obj and ("chosen" in obj or "audios" in obj)):
        return "alpaca"
    if ("audio" in obj or "audios" in obj) and "text" in obj:
        return "minicpm"
    if nemo.is_nemo_row(obj):  # ASR corpora last: their keys never make one of the chat dialects above
        return "nemo"
    if lhotse.is_cut(obj):
        return "lhotse"
    return None


def dialect_of(obj: dict[str, Any], formatting: str | None) -> str | None:
    """The dialect a record is read as: the declared formatting, else detected from its keys."""
    if formatting == "openai":
        return "messages"
    return formatting or detect(obj)


def parse_record(obj: Any, ctx: ParseContext) -> tuple[Record | None, list[Finding]]:
    """Parse one JSON value; on failure return no record and a located finding."""
    if not isinstance(obj, dict):
        return None, [Finding("F002", f"record is a JSON {type(obj).__name__}, not an object", "", ctx.source)]
    dialect = ctx.dialect or dialect_of(obj, ctx.spec.formatting)
    if dialect is None:
        keys = ", ".join(sorted(obj)[:8]) or "no keys"
        return None, [Finding("F003", f"no dialect matches keys ({keys})", "", ctx.source)]
    try:
        if ctx.spec.converter in llamafactory_v1.CONVERTER_IGNORES:  # a v1 YAML's alpaca/sharegpt converter
            llamafactory_v1.check_converter_row(obj, ctx.spec.converter)
        for key in ctx.spec.unread:  # a dataset_info.json entry that does not map a column the record fills
            if obj.get(key) not in (None, "", [], {}):
                why = f"dataset {ctx.spec.name!r} does not map the {key!r} column, so LLaMA-Factory does not read it"
                raise ParseError("S001", f"{why}: map it in the entry's columns, or drop it", key)
        return PARSERS[dialect](obj, ctx), []
    except ParseError as exc:
        return None, [Finding(exc.code, f"{dialect}: {exc.message}", exc.field, ctx.source)]
