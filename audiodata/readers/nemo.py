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
(:func:`audiodata.readers.prompts.transcript_turns`), the assistant turn the transcript. Every key
other than the audio path and the transcript (offset, duration, lang, speaker, anything else) is kept in
the record's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, audio_ref, new_record
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.longform import CLIPS_KEY, LongForm, PauseFinder, Timed, plan_windows, settle_long
from audiodata.readers.prompts import transcript_turns
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
    text_key = next((k for k in TEXT_KEYS if obj.get(k) is not None), None)
    if text_key is None:
        also = "; text_filepath is not read: put the transcript in 'text'" if "text_filepath" in obj else ""
        raise ParseError("S001", f"missing field 'text'{also}", "text")
    text = obj[text_key]
    if not isinstance(text, str):
        raise ParseError("S001", f"{text_key} must be a string, got {type(text).__name__}", text_key)
    ref = audio_ref(path, key)
    ref.declared_duration = duration
    if offset is not None:
        ref.segment = Segment(offset, duration)
    audios = clip_refs(ref, obj)
    language = obj.get("lang") if isinstance(obj.get("lang"), str) else None
    metadata = {k: v for k, v in obj.items() if k not in (key, text_key)}
    messages = transcript_turns(len(audios), text, ctx, text_key, language)
    return new_record(obj, ctx, "nemo", kind="sft", messages=messages, audios=audios, metadata=metadata)


def _span(obj: dict[str, Any]) -> tuple[str, float, float] | None:
    """(audio path, start, end) of a line that names a segment, or None (whole file, or not readable here:
    the parser reports what is wrong)."""
    key = next((k for k in AUDIO_KEYS if k in obj), None)
    try:
        offset, duration = seconds(obj, "offset"), seconds(obj, "duration", positive=True)
    except ParseError:
        return None
    if key is None or not isinstance(obj[key], str) or duration is None:
        return None
    return obj[key], offset or 0.0, (offset or 0.0) + duration


def rewrite(items: list[RawItem], lf: LongForm, finder: Any) -> Iterator[RawItem]:
    """One run of consecutive NeMo lines of one audio file (``items``, parsed) as the records they make.

    ``segments``: each line as it is; one longer than the window is settled (A017, or consecutive clips).
    ``windows``: lines with offsets packed into windows (:func:`plan_windows`), each rendered as one NeMo
    line: ``offset``/``duration`` of the window, the texts joined, and the lines it holds under ``segments``."""
    spans = [_span(it.obj) for it in items]
    timed = all(s is not None and "offset" in it.obj for s, it in zip(spans, items, strict=True))
    if lf.mode != "windows" or not timed or len(items) < 2:
        for it, span in zip(items, spans, strict=True):
            yield _single(it, span, lf, finder)
        return
    path = spans[0][0]  # type: ignore[index]
    pause_in: PauseFinder | None = finder(path) if finder is not None else None
    segs = [Timed(s[1], s[2], _text(it.obj)) for s, it in zip(spans, items, strict=True)]  # type: ignore[index]
    for w in plan_windows(segs, lf.window, pause_in):
        members = [items[m] for m in w.members]
        obj = window_line(members, w.start, w.end)
        first = members[0]
        if w.fits:
            yield RawItem(first.index, first.line, obj=obj)
            continue
        lines = f"lines {members[0].line}-{members[-1].line}" if len(members) > 1 else f"line {first.line}"
        obj, why = settle_long(obj, w.start, w.end, lf, pause_in, f"{lines}: a stretch of")
        yield RawItem(first.index, first.line, obj=obj, code="A017" if why else None, error=why, field="duration")


def _single(it: RawItem, span: tuple[str, float, float] | None, lf: LongForm, finder: Any) -> RawItem:
    if span is None or span[2] - span[1] <= lf.window + 1e-9:
        return it
    pause_in = finder(span[0]) if finder is not None else None
    obj, why = settle_long(it.obj, span[1], span[2], lf, pause_in, "a recording of")
    return RawItem(it.index, it.line, obj=obj, code="A017" if why else None, error=why, field="duration")


def _text(obj: dict[str, Any]) -> str:
    value = next((obj[k] for k in TEXT_KEYS if obj.get(k) is not None), "")
    return value if isinstance(value, str) else ""


def window_line(members: list[RawItem], start: float, end: float) -> dict[str, Any]:
    """A window of NeMo lines as one NeMo line. Keys every member shares with the same value (lang, speaker)
    stay at the top; each member's line is kept under ``segments`` with its ``line``."""
    objs = [m.obj for m in members]
    shared = {k: v for k, v in objs[0].items() if all(o.get(k) == v for o in objs[1:])}
    for k in ("offset", "duration", *TEXT_KEYS):
        shared.pop(k, None)
    audio = next(k for k in AUDIO_KEYS if k in objs[0])
    texts = [t for t in (_text(o).strip() for o in objs) if t]
    segments = [{"line": m.line, **{k: v for k, v in m.obj.items() if k != audio}} for m in members]
    return {**shared, "offset": round(start, 6), "duration": round(end - start, 6), "text": " ".join(texts), "segments": segments}
