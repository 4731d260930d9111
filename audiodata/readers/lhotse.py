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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, media_ref, new_record
from audiodata.readers.jsonstream import RawItem, iter_file, parse_text
from audiodata.readers.longform import LongForm, PauseFinder, Timed, plan_windows, settle_long
from audiodata.readers.nemo import clip_refs, seconds
from audiodata.readers.prompts import transcript_turns
from audiodata.readers.rawfile import GzipBounds
from audiodata.records import MediaRef, Record, Segment

CUT_TYPES = ("MonoCut", "MultiCut")
#: lhotse's other cut types, which hold no single recording part: refused with what to do instead.
OTHER_CUTS = ("MixedCut", "PaddingCut")
#: How far (seconds) a supervision may reach past its cut before its text is taken not to match the audio.
SUPERVISION_TOLERANCE = 0.01


def is_cut(obj: dict[str, Any]) -> bool:
    return obj.get("type") in (*CUT_TYPES, *OTHER_CUTS) or ("recording" in obj and "supervisions" in obj)


def _channels(value: Any, field: str) -> tuple[int, ...] | None:
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
    columns = tuple(held.index(c) for c in channels if c in held)
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
    channels = _channels(obj.get("channel"), "channel")
    ref, columns = recording_ref(obj.get("recording"), channels)
    sups = obj.get("supervisions")
    if not isinstance(sups, list) or not sups:
        raise ParseError("S001", "the cut has no supervisions, so no transcript", "supervisions")
    texts: list[tuple[float, str]] = []
    for i, sup in enumerate(sups):
        where = f"supervisions[{i}]"
        if not isinstance(sup, dict):
            raise ParseError("S001", "a supervision must be an object", where)
        s0 = _sup_seconds(sup, "start", where, allow_negative=True)
        d = _sup_seconds(sup, "duration", where)
        if s0 < -SUPERVISION_TOLERANCE or s0 + d > duration + SUPERVISION_TOLERANCE:
            raise ParseError(
                "S001",
                f"supervision {sup.get('id')!r} ({s0:g}-{s0 + d:g} s) reaches outside the cut (0-{duration:g} s): its text would "
                "not match the audio; trim the cut to its supervisions (cut.trim_to_supervisions) or drop the overlap",
                where,
            )
        text = sup.get("text")
        if not isinstance(text, str):
            raise ParseError("S001", f"supervision {sup.get('id')!r} has no text", f"{where}.text")
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
    messages = transcript_turns(len(audios), text, ctx, "supervisions", language)
    return new_record(obj, ctx, "lhotse", kind="sft", messages=messages, audios=audios, metadata=metadata)


def _sup_seconds(sup: dict[str, Any], key: str, where: str, allow_negative: bool = False) -> float:
    value = sup.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (allow_negative or value >= 0)
    if not ok:
        raise ParseError("S001", f"supervision {key} must be a number of seconds, got {value!r}", f"{where}.{key}")
    return float(value)


# -- long cuts: windows ---------------------------------------------------------------------------


def rewrite(item: RawItem, lf: LongForm, finder: Any) -> Iterator[RawItem]:
    """A cut (parsed ``item``) as the records it makes: itself when it fits the window, else its windows
    (sub-cuts holding the supervisions inside each, times shifted as lhotse's ``truncate`` shifts them)."""
    cut = item.obj
    span = _cut_span(cut)
    if span is None or span[1] <= lf.window + 1e-9:
        yield item
        return
    start, _duration, sups, path, channels = span
    in_file: PauseFinder | None = finder(path, channels) if finder is not None and path is not None else None
    in_cut = _shift(in_file, -start)
    segs = [Timed(float(s["start"]), float(s["start"]) + float(s["duration"]), str(s.get("text") or "")) for s in sups]
    for k, w in enumerate(plan_windows(segs, lf.window, in_cut)):
        members = [sups[m] for m in w.members]
        sub = {
            **cut,
            "id": f"{cut.get('id')}-{k}",
            "start": round(start + w.start, 6),
            "duration": round(w.duration, 6),
            "supervisions": [{**s, "start": round(float(s["start"]) - w.start, 6)} for s in members],
        }
        if w.fits:
            yield RawItem(item.index, item.line, obj=sub)
            continue
        obj, why = settle_long(sub, start + w.start, start + w.end, lf, in_file, f"cut {sub['id']}: a stretch of")
        yield RawItem(item.index, item.line, obj=obj, code="A017" if why else None, error=why, field="supervisions")


def _shift(pause_in: PauseFinder | None, by: float) -> PauseFinder | None:
    """A finder whose times are ``by`` seconds later than ``pause_in``'s."""
    if pause_in is None:
        return None
    return lambda lo, hi: [(a + by, b + by) for a, b in pause_in(lo - by, hi - by)]


def _cut_span(cut: Any) -> tuple[float, float, list[dict[str, Any]], str | None, tuple[int, ...] | None] | None:
    """(start, duration, supervisions, audio path, file columns) of a well-formed cut, else None (the parser
    reports what is wrong)."""
    try:
        if cut.get("type", "MonoCut") not in CUT_TYPES:
            return None
        start, duration = seconds(cut, "start") or 0.0, seconds(cut, "duration", positive=True)
        sups = cut.get("supervisions")
        if duration is None or not isinstance(sups, list) or not sups:
            return None
        for s in sups:
            if not isinstance(s, dict):
                return None
            _sup_seconds(s, "start", "", allow_negative=True)
            _sup_seconds(s, "duration", "")
        ref, columns = recording_ref(cut.get("recording"), _channels(cut.get("channel"), "channel"))
    except ParseError:
        return None
    return start, duration, sups, str(ref.value) if ref.kind == "path" else None, columns


# -- recordings + supervisions ---------------------------------------------------------------------


def recordings_for(supervisions: Path) -> Path | None:
    """The recordings manifest lhotse's recipes write next to a supervisions manifest, if there is one."""
    name = supervisions.name
    if "supervisions" not in name:
        return None
    other = supervisions.with_name(name.replace("supervisions", "recordings"))
    return other if other.is_file() else None


def is_supervisions(path: Path) -> bool:
    return "supervisions" in path.name and path.name.endswith((".jsonl", ".jsonl.gz")) and recordings_for(path) is not None


def is_recordings(path: Path) -> bool:
    """A recordings manifest whose supervisions manifest lies next to it (read through that one)."""
    name = path.name
    return (
        "recordings" in name
        and name.endswith((".jsonl", ".jsonl.gz"))
        and path.with_name(name.replace("recordings", "supervisions")).is_file()
    )


def _recordings(path: Path, max_bytes: int, bounds: GzipBounds | None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Recordings by id, and why an id cannot be found (a line that did not parse: its line number)."""
    found: dict[str, dict[str, Any]] = {}
    broken: dict[str, str] = {}
    for item in iter_file(path, max_bytes, bounds=bounds):
        item = parse_text(item, max_bytes)
        obj = item.obj
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            found.setdefault(obj["id"], obj)
        else:
            broken[f"line {item.line}"] = item.error or "not a recording object"
    return found, broken


def joined_items(
    supervisions: Path, recordings: Path, display: str, max_bytes: int, bounds: GzipBounds | None, lf: LongForm, finder: Any
) -> Iterator[RawItem]:
    """The cuts a supervisions manifest and its recordings manifest make (see the module docstring), each
    located to its (first) supervision's line. A supervision whose recording is missing is its own S001."""
    recs, broken = _recordings(recordings, max_bytes, bounds)
    run: list[RawItem] = []
    for item in iter_file(supervisions, max_bytes, bounds=bounds):
        item = parse_text(item, max_bytes)
        sup = item.obj
        if item.code is not None or not isinstance(sup, dict):
            yield from _flush(run, recs, broken, recordings, lf, finder)
            run = []
            yield item
            continue
        if (
            lf.mode == "windows"
            and run
            and (run[-1].obj.get("recording_id"), run[-1].obj.get("channel"))
            != (
                sup.get("recording_id"),
                sup.get("channel"),
            )
        ):
            yield from _flush(run, recs, broken, recordings, lf, finder)
            run = []
        run.append(item)
        if lf.mode != "windows":
            yield from _flush(run, recs, broken, recordings, lf, finder)
            run = []
    yield from _flush(run, recs, broken, recordings, lf, finder)


def _flush(
    run: list[RawItem], recs: dict[str, dict[str, Any]], broken: dict[str, str], recordings: Path, lf: LongForm, finder: Any
) -> Iterator[RawItem]:
    if not run:
        return
    first = run[0]
    sup = first.obj
    rec = recs.get(sup.get("recording_id")) if isinstance(sup.get("recording_id"), str) else None
    if rec is None:
        also = f" (unreadable there: {', '.join(list(broken)[:3])})" if broken else ""
        why = f"recording {sup.get('recording_id')!r} is not in {recordings.name}{also}"
        for it in run:
            yield RawItem(it.index, it.line, obj=it.obj, code="S001", error=f"lhotse: {why}", field="recording_id")
        return
    sups = [it.obj for it in run]
    if len(run) == 1 and lf.mode != "windows":  # trim_to_supervisions: the cut is the supervision
        start = sup.get("start")
        shifted = {**sup, "start": 0.0} if isinstance(start, (int, float)) else sup
        cut = {"id": sup.get("id"), "start": start, "duration": sup.get("duration"), "channel": sup.get("channel", 0)}
        cut.update(supervisions=[shifted], recording=rec, type="MonoCut")
    else:  # one recording, whole (CutSet.from_manifests)
        cut = {"id": rec.get("id"), "start": 0, "duration": rec.get("duration"), "channel": sup.get("channel", 0)}
        cut.update(supervisions=sups, recording=rec, type="MonoCut")
    yield from rewrite(RawItem(first.index, first.line, obj=cut), lf, finder)
