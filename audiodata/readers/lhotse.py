"""Long lhotse cuts cut into windows, and supervisions manifests joined with their recordings manifests
(see :mod:`audiodata.readers.dialects.lhotse` for the shapes, which that dialect parses)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.readers.dialects.common import ParseError
from audiodata.readers.dialects.lhotse import CUT_TYPES, channel_list, recording_ref, supervision_seconds
from audiodata.readers.dialects.nemo import seconds
from audiodata.readers.jsonstream import RawItem, iter_file, parse_text
from audiodata.readers.longform import LongForm, PauseFinder, Timed, plan_windows, settle_long
from audiodata.readers.rawfile import GzipBounds

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
            "supervisions": [_within(s, w.start, w.end) for s in members],
        }
        if w.fits:
            yield RawItem(item.index, item.line, obj=sub)
            continue
        obj, why = settle_long(sub, start + w.start, start + w.end, lf, in_file, f"cut {sub['id']}: a stretch of")
        yield RawItem(item.index, item.line, obj=obj, code="A017" if why else None, error=why, field="supervisions")


def _within(sup: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """A supervision in a window's time (seconds into the window), trimmed to it: a window cut at a pause the
    detector found may end inside the silence a supervision's annotated span still covers (lhotse's
    ``truncate`` shifts supervisions the same way)."""
    s0, s1 = float(sup["start"]), float(sup["start"]) + float(sup["duration"])
    a, b = max(s0, start), min(s1, end)
    return {**sup, "start": round(a - start, 6), "duration": round(max(b - a, 0.0), 6)}


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
            supervision_seconds(s, "start", "", allow_negative=True)
            supervision_seconds(s, "duration", "")
        ref, columns = recording_ref(cut.get("recording"), channel_list(cut.get("channel"), "channel"))
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
    supervisions: Path, recordings: Path, max_bytes: int, bounds: GzipBounds | None, lf: LongForm, finder: Any
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
