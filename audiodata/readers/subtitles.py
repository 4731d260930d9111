"""Subtitles next to a recording (``talk.srt`` or ``talk.vtt`` beside ``talk.wav``), read as its timed transcript.

SubRip (``.srt``): numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text lines, a blank line. WebVTT
(``.vtt``): a ``WEBVTT`` header, optional cue ids, ``[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm`` with cue
settings after, ``NOTE``/``STYLE``/``REGION`` blocks (skipped). Markup is dropped from the text (``<i>``,
``<b>``, ``{\\an8}``, VTT ``<c.x>`` and timestamps); a VTT voice span ``<v Alice>`` names the cue's speaker.

The audio is the file with the same name and an audio extension (:data:`AUDIO_EXTENSIONS`, in that
order) in the same folder; a language tag before the extension (``talk.en.srt``) is the transcript's
language and is dropped to find the audio. Cues are display units, not utterances (a sentence spans
several, they often abut), so they are always packed into windows (:mod:`audiodata.readers.longform`),
each rendered as one NeMo manifest line (``audio_filepath``, ``offset``, ``duration``, ``text``,
``lang``, and the cues under ``segments`` with their lines) and read by the NeMo reader. A cue whose
timing line cannot be read, or that ends before it starts, is ``F010`` at its line; the other cues are
read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiodata.readers.jsonstream import RawItem
from audiodata.readers.longform import LongForm, PauseFinder, Timed, plan_windows, settle_long
from audiodata.readers.nemo import window_line
from audiodata.readers.rawfile import FileFailure, open_regular, wrong_encoding

SUFFIXES = (".srt", ".vtt")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".webm", ".mka", ".mkv", ".mp4")
#: A subtitle file is small; more than this is not one.
MAX_BYTES = 64 * 2**20

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_VOICE = re.compile(r"<v(?:\.[^ >]*)?\s+([^>]+)>")
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str
    line: int  # 1-based line of its timing line
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class BadCue:
    line: int
    why: str


def is_subtitles(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_cues(text: str) -> list[Cue | BadCue]:
    """The cues of an SRT or WebVTT text, in file order, with the problems of the ones that cannot be read."""
    lines = text.splitlines()
    out: list[Cue | BadCue] = []
    i = 0
    if lines and lines[0].lstrip("\ufeff").startswith("WEBVTT"):
        i = 1
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        while i < len(lines) and lines[i].strip():
            i += 1
        block = lines[block_start:i]
        if block[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        timing = next((k for k, ln in enumerate(block[:2]) if "-->" in ln), None)
        if timing is None:
            out.append(BadCue(block_start + 1, f"no timing line ('start --> end') in the cue: {block[0][:60]!r}"))
            continue
        m = _TIMING.match(block[timing])
        where = block_start + timing + 1
        if m is None:
            out.append(BadCue(where, f"cannot read the timing line {block[timing].strip()[:60]!r}"))
            continue
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        if end <= start:
            out.append(BadCue(where, f"the cue ends ({end:.3f} s) before it starts ({start:.3f} s)"))
            continue
        raw = " ".join(ln.strip() for ln in block[timing + 1 :])
        voice = _VOICE.search(raw)
        clean = " ".join(_TAG.sub("", raw).split())
        out.append(Cue(start, end, clean, where, voice.group(1).strip() if voice else None))
    return out


def audio_for(path: Path) -> tuple[Path | None, str | None, list[str]]:
    """(the recording next to a subtitle file, the language its name gives, the names looked for)."""
    stem = path.name[: -len(path.suffix)]
    stems: list[tuple[str, str | None]] = [(stem, None)]
    base, dot, tag = stem.rpartition(".")
    if dot and base and _LANG.match(tag):
        stems.insert(0, (base, tag))
    tried: list[str] = []
    for s, lang in stems:
        for ext in AUDIO_EXTENSIONS:
            candidate = path.with_name(s + ext)
            tried.append(candidate.name)
            if candidate.is_file():
                return candidate, lang, tried
    return None, stems[0][1], tried


def _read(path: Path) -> str:
    with open_regular(path) as fh:
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES >> 20} MiB: not a subtitle file")
    why = wrong_encoding(data[:8])
    if why is not None:
        raise ValueError(why)
    return data.decode("utf-8-sig", "replace")


def items(path: Path, media_root: str, lf: LongForm, finder: Any) -> Iterator[RawItem]:
    """The records one subtitle file makes: its cues packed into windows of its recording, one NeMo line each."""
    try:
        text = _read(path)
    except (OSError, ValueError, FileFailure) as exc:
        code = "F009" if "UTF-16" in str(exc) or "UTF-32" in str(exc) else "F004"
        yield RawItem(-1, 0, code=code, error=f"cannot read the subtitles: {exc}")
        return
    audio, lang, tried = audio_for(path)
    if audio is None:
        yield RawItem(-1, 0, code="A001", error=f"no recording next to the subtitles (looked for {', '.join(tried[:6])}, ...)")
        return
    rel = os.path.relpath(audio, media_root) if audio.resolve().is_relative_to(Path(media_root).resolve()) else str(audio)
    cues: list[Cue] = []
    index = 0
    for c in parse_cues(text):
        if isinstance(c, BadCue):
            yield RawItem(index, c.line, code="F010", error=f"subtitles: {c.why}")
            index += 1
        elif c.text:
            cues.append(c)
    if not cues:
        return
    pause_in: PauseFinder | None = finder(rel) if finder is not None else None
    windows = plan_windows([Timed(c.start, c.end, c.text) for c in cues], lf.window, pause_in)
    for w in windows:
        members = [cues[m] for m in sorted(w.members)]
        rows = [RawItem(0, c.line, obj=_cue_line(rel, c)) for c in members]
        obj = {"audio_filepath": rel, **window_line(rows, w.start, w.end)}
        obj["subtitles"] = path.name
        if lang:
            obj["lang"] = lang
        why = None
        if not w.fits:
            what = f"cues at lines {members[0].line}-{members[-1].line}: a stretch of"
            obj, why = settle_long(obj, w.start, w.end, lf, pause_in, what)
        yield RawItem(index, members[0].line, obj=obj, code="A017" if why else None, error=why, field="duration")
        index += 1


def _cue_line(audio: str, c: Cue) -> dict[str, Any]:
    """One cue as a NeMo line (how a window keeps it under ``segments``)."""
    row: dict[str, Any] = {"audio_filepath": audio, "offset": c.start, "duration": round(c.end - c.start, 6), "text": c.text}
    if c.speaker:
        row["speaker"] = c.speaker
    return row
