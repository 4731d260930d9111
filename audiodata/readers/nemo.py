"""Long NeMo manifests: lines with offsets into one recording, packed into windows, and lines longer
than the model's window (see :mod:`audiodata.readers.longform`). Lines are parsed by the ``nemo`` dialect
(:mod:`audiodata.readers.dialects.nemo`); here they are only regrouped, before parsing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from audiodata.readers.dialects.common import ParseError
from audiodata.readers.dialects.nemo import AUDIO_KEYS, TEXT_KEYS, seconds
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.longform import LongForm, PauseFinder, Timed, plan_windows, settle_long


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
