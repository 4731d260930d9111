"""NeMo ASR manifests: JSONL, one utterance per line.

The keys are NeMo's own (``nemo/collections/common/parts/preprocessing/manifest.py``, ``__parse_item``,
which ``nemo/collections/asr/data/audio_to_text.py`` reads its manifests through): the audio under
``audio_filepath`` (or ``audio_filename``), ``duration`` (required), the transcript under ``text`` (or
``normalized_text``), and optionally ``offset``, ``lang``, ``speaker`` and any other key. A relative
path resolves against the manifest's folder, as NeMo's ``get_full_path`` does (the default media root).

A line with an ``offset`` names a segment of a longer file: NeMo reads ``duration`` seconds from
``offset`` (``AudioSegment.from_file``: ``f.seek(offset * sr)``, ``f.read(duration * sr)``), and so does
the audio stage, by seeking (sample positions rounded, where NeMo truncates: at most one sample apart).
Without an offset the whole file is the clip and ``duration`` is checked against it (A014).

Each line becomes a transcription record: a user turn with ``<audio>`` and the prompt
(:func:`audiodata.readers.dialects.prompts.choose_prompt`), the assistant turn the transcript (or the
template's assistant column: a NeMo SpeechLLM manifest's ``answer``, with ``{question}`` in the prompt). Every key
other than the audio path and the transcript (offset, duration, lang, speaker, anything else) is kept in
the record's metadata.
"""

from __future__ import annotations

import math
from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, audio_ref, new_record
from audiodata.readers.dialects.prompts import choose_prompt, choose_system, template_reply, transcript_turns
from audiodata.readers.longform import CLIPS_KEY
from audiodata.records import MediaRef, Record, Segment

AUDIO_KEYS = ("audio_filepath", "audio_filename")
TEXT_KEYS = ("text", "normalized_text")


def is_nemo_row(obj: dict[str, Any]) -> bool:
    return any(k in obj for k in AUDIO_KEYS)


def seconds(obj: dict[str, Any], key: str, positive: bool = False) -> float | None:
    """A time in seconds under ``key`` (None when absent); a located S001 when it is not a finite number."""
    value = obj.get(key)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        need = "a positive number of seconds" if positive else "a number of seconds, 0 or more"
        raise ParseError("S001", f"{key} must be {need}, got {value!r}", key)
    return float(value)


def clip_refs(ref: MediaRef, obj: dict[str, Any], channels: tuple[int, ...] | None = None) -> list[MediaRef]:
    """The record's audio: ``ref`` itself, or, for a recording kept whole as consecutive clips (an item
    carrying :data:`CLIPS_KEY`), one reference per clip."""
    clips = obj.get(CLIPS_KEY)
    if not clips:
        return [ref]
    out = []
    for k, (start, duration) in enumerate(clips):
        seg = Segment(float(start), float(duration), channels)
        out.append(MediaRef(ref.kind, ref.value, f"{ref.field}#{k}", ref.name, segment=seg, declared_duration=float(duration)))
    return out


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    key = next(k for k in AUDIO_KEYS if k in obj)
    path = obj[key]
    if not isinstance(path, str):
        raise ParseError("S001", f"{key} must be a string, got {type(path).__name__}", key)
    duration = seconds(obj, "duration", positive=True)
    if duration is None:
        raise ParseError("S001", "missing field 'duration' (NeMo requires it)", "duration")
    offset = seconds(obj, "offset")
    text, text_key = template_reply(ctx, obj) or transcript(obj)
    ref = audio_ref(path, key)
    ref.declared_duration = duration
    if offset is not None:
        ref.segment = Segment(offset, duration)
    audios = clip_refs(ref, obj)
    language = obj.get("lang") if isinstance(obj.get("lang"), str) else None
    metadata = {k: v for k, v in obj.items() if k not in (key, text_key)}
    prompt, _ = choose_prompt(ctx, language=language, row=obj, clips=len(audios))
    messages = transcript_turns(len(audios), prompt, "prompt" if prompt else "audio", text, text_key)
    system = choose_system(ctx, obj, language)
    return new_record(obj, ctx, "nemo", kind="sft", messages=messages, audios=audios, metadata=metadata, system=system)


def transcript(obj: dict[str, Any]) -> tuple[str, str]:
    """``(text, key)``: the line's transcript, under NeMo's ``text`` or ``normalized_text``."""
    text_key = next((k for k in TEXT_KEYS if obj.get(k) is not None), None)
    if text_key is None:
        also = "; text_filepath is not read: put the transcript in 'text'" if "text_filepath" in obj else ""
        raise ParseError("S001", f"missing field 'text'{also}", "text")
    text = obj[text_key]
    if not isinstance(text, str):
        raise ParseError("S001", f"{text_key} must be a string, got {type(text).__name__}", text_key)
    return text, text_key
