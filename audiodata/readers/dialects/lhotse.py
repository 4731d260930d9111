"""lhotse manifests: cuts (``cuts.jsonl(.gz)``), or recordings + supervisions.

The shapes are lhotse's own ``to_dict`` output: a cut is ``{"id", "start", "duration", "channel",
"supervisions": [...], "recording": {...}, "type": "MonoCut"}`` (``lhotse/cut/data.py`` ``DataCut.to_dict``,
``lhotse/cut/mono.py``), a supervision ``{"id", "recording_id", "start", "duration", "channel", "text",
"language", "speaker", "gender", "custom", "alignment"}`` (``lhotse/supervision.py``), a recording
``{"id", "sources": [{"type", "channels", "source"}], "sampling_rate", "num_samples", "duration",
"channel_ids"}`` (``lhotse/audio/recording.py``). A cut's ``start`` is seconds into its recording; its
supervisions' ``start`` are seconds into the cut.

A cut becomes one transcription record: its part of the recording (decoded by seeking: the record's
audio reference carries the cut's :class:`~audiodata.records.Segment`, with the cut's channel), the
supervisions' texts joined in time order as the transcript, and the cut (id, start, duration, channel,
recording id) with every supervision (start, duration, channel, language, speaker, gender, custom,
alignment) in the record's metadata. A cut longer than the model's window is cut into windows at its
supervisions' boundaries and pauses (:mod:`audiodata.readers.longform`).

A ``supervisions`` manifest is read with the ``recordings`` manifest next to it (the same name with
``recordings`` for ``supervisions``, as lhotse's recipes write them), joined the way lhotse's
``CutSet.from_manifests(...).trim_to_supervisions()`` does: one cut per supervision (``segments``), or
with ``--long-form windows`` one cut per recording (consecutive supervisions of one recording and
channel), cut into windows.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, media_ref, new_record
from audiodata.readers.dialects.nemo import clip_refs, seconds
from audiodata.readers.dialects.prompts import choose_prompt, choose_system, reply_column, transcript_turns
from audiodata.records import MediaRef, Record, Segment

CUT_TYPES = ("MonoCut", "MultiCut")
#: lhotse's other cut types, which hold no single recording part: refused with what to do instead.
OTHER_CUTS = ("MixedCut", "PaddingCut")
#: How far (seconds) a supervision may reach past its cut before its text is taken not to match the audio.
SUPERVISION_TOLERANCE = 0.01


def is_cut(obj: dict[str, Any]) -> bool:
    return obj.get("type") in (*CUT_TYPES, *OTHER_CUTS) or ("recording" in obj and "supervisions" in obj)


def channel_list(value: Any, field: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in values):
        raise ParseError("S001", f"{field} must be a channel number or a list of them, got {value!r}", field)
    return tuple(values)


def recording_ref(
    rec: Any, channels: tuple[int, ...] | None, field: str = "recording"
) -> tuple[MediaRef, tuple[int, ...] | None]:
    """The audio reference of a lhotse recording and the columns of that file to take for ``channels``."""
    if not isinstance(rec, dict):
        raise ParseError("S001", f"{field} must be an object (a lhotse Recording)", field)
    if rec.get("transforms"):
        names = ", ".join(str(t.get("name", t)) if isinstance(t, dict) else str(t) for t in rec["transforms"])
        raise ParseError(
            "S001",
            f"recording transforms ({names}) are not applied here; save the transformed audio first (cut.save_audio)",
            field,
        )
    sources = rec.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, dict) for s in sources):
        raise ParseError("S001", "a lhotse recording needs a list of sources", f"{field}.sources")
    chosen, k = sources[0], 0
    if channels is not None and len(sources) > 1:
        k = next((i for i, s in enumerate(sources) if set(channels) <= set(s.get("channels") or [])), -1)
        if k < 0:
            raise ParseError("S001", f"no single source of the recording holds channel(s) {list(channels)}", f"{field}.sources")
        chosen = sources[k]
    where = f"{field}.sources[{k}]"
    kind, value = chosen.get("type"), chosen.get("source")
    if kind in ("command", "memory", "shar"):
        why = {"command": "a command is never run", "memory": "in-memory audio", "shar": "a lhotse Shar field"}[kind]
        raise ParseError(
            "S001", f"a {kind!r} audio source is not read ({why}); write the audio to a file (cut.save_audio)", where
        )
    if kind not in ("file", "url") or not isinstance(value, str):
        raise ParseError("S001", f"an audio source must be of type 'file' or 'url' with a 'source' string, got {kind!r}", where)
    ref = media_ref(value, f"{where}.source")  # a URL is classified as one: the audio stage refuses it (A003)
    held = chosen.get("channels")
    if channels is None or not isinstance(held, list):
        return ref, None
    missing = [c for c in channels if c not in held]
    if missing:
        raise ParseError("S001", f"channel {missing[0]} is not among the recording's channels {held}", "channel")
    columns = tuple(held.index(c) for c in channels)
    return ref, None if list(columns) == list(range(len(held))) else columns


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    kind = obj.get("type", "MonoCut")
    if kind in OTHER_CUTS:
        raise ParseError(
            "S001",
            f"a lhotse {kind} is not read (no single part of one recording); save it first (cut.save_audio)",
            "type",
        )
    if kind not in CUT_TYPES:
        raise ParseError("S001", f"unknown lhotse cut type {kind!r} (audiodata reads {', '.join(CUT_TYPES)})", "type")
    start = seconds(obj, "start") or 0.0
    duration = seconds(obj, "duration", positive=True)
    if duration is None:
        raise ParseError("S001", "missing field 'duration'", "duration")
    channels = channel_list(obj.get("channel"), "channel")
    ref, columns = recording_ref(obj.get("recording"), channels)
    sups = obj.get("supervisions")
    if not isinstance(sups, list) or not sups:
        raise ParseError("S001", "the cut has no supervisions, so no transcript", "supervisions")
    texts: list[tuple[float, str]] = []
    reply, key = reply_column(ctx), "supervisions"
    for i, sup in enumerate(sups):
        where = f"supervisions[{i}]"
        if not isinstance(sup, dict):
            raise ParseError("S001", "a supervision must be an object", where)
        s0 = supervision_seconds(sup, "start", where, allow_negative=True)
        d = supervision_seconds(sup, "duration", where)
        if s0 < -SUPERVISION_TOLERANCE or s0 + d > duration + SUPERVISION_TOLERANCE:
            raise ParseError(
                "S001",
                f"supervision {sup.get('id')!r} ({s0:g}-{s0 + d:g} s) reaches outside the cut (0-{duration:g} s): its text would "
                "not match the audio; trim the cut to its supervisions (cut.trim_to_supervisions) or drop the overlap",
                where,
            )
        text, key = supervision_text(sup, reply, where)
        texts.append((s0, text))
    text = " ".join(t.strip() for _, t in sorted(texts, key=lambda p: p[0]) if t.strip())
    ref.segment = Segment(start, duration, columns)
    ref.declared_duration = duration
    audios = clip_refs(ref, obj, columns)
    rec = obj.get("recording") or {}
    metadata = {
        "cut_id": obj.get("id"),
        "recording_id": rec.get("id"),
        "start": start,
        "duration": duration,
        "channel": obj.get("channel"),
        "supervisions": sups,
        **({"custom": obj["custom"]} if obj.get("custom") else {}),
    }
    language = next((s.get("language") for s in sups if isinstance(s.get("language"), str)), None)
    row = columns_of(obj, sups)
    prompt, _ = choose_prompt(ctx, language=language, row=row, clips=len(audios))
    messages = transcript_turns(len(audios), prompt, "prompt" if prompt else "audio", text, key)
    system = choose_system(ctx, row, language)
    return new_record(obj, ctx, "lhotse", kind="sft", messages=messages, audios=audios, metadata=metadata, system=system)


def supervision_text(sup: dict[str, Any], column: str | None, where: str) -> tuple[str, str]:
    """``(text, field)`` of one supervision: its ``text``, or the template's assistant column (a supervision
    key, or a key of its ``custom``, where lhotse recipes keep a translation)."""
    if column is None:
        text = sup.get("text")
        if not isinstance(text, str):
            raise ParseError("S001", f"supervision {sup.get('id')!r} has no text", f"{where}.text")
        return text, "supervisions"
    own = sup.get("custom")
    custom: dict[str, Any] = own if isinstance(own, dict) else {}
    field = f"{where}.{column}" if column in sup else f"{where}.custom.{column}"
    value = sup.get(column, custom.get(column))
    if not isinstance(value, str):
        got = "none" if value is None else type(value).__name__
        why = f"supervision {sup.get('id')!r} has no text under {column!r} (the template's assistant column; got {got})"
        raise ParseError("S001", why, field)
    return value, f"supervisions.{column}"


def columns_of(cut: dict[str, Any], sups: list[dict[str, Any]]) -> dict[str, Any]:
    """A cut's columns for a template's placeholders: the cut's own values and ``custom``, and the first
    supervision's (speaker, gender, language, its ``custom``); the cut's ``id`` draws its prompt."""
    first = sups[0]
    out: dict[str, Any] = {}
    for source in (first.get("custom"), first, cut.get("custom"), cut):
        if isinstance(source, dict):
            out.update({k: v for k, v in source.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
    out["id"] = cut.get("id")
    return out


def supervision_seconds(sup: dict[str, Any], key: str, where: str, allow_negative: bool = False) -> float:
    value = sup.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (allow_negative or value >= 0)
    if not ok:
        raise ParseError("S001", f"supervision {key} must be a number of seconds, got {value!r}", f"{where}.{key}")
    return float(value)  # type: ignore[arg-type]  # checked just above: an int or float, not a bool
