"""Long recordings with timed transcripts, cut into model-sized windows at pauses, never through a word.

A recording longer than the model's audio window (30 s for Qwen2-Audio: ``audiodata.families``) cannot
be one record: the encoder drops what lies past its window, and the transcript would then name words
the model never heard. When the transcript is timed (lhotse supervisions, NeMo offsets, subtitle cues),
:func:`plan_windows` packs consecutive segments into windows of at most the window length, cut only

- in a **gap** between two segments that the timestamps leave (at least :data:`MIN_GAP_SECONDS`: no one
  speaks there), or
- at a **pause** the voice-activity detector finds (``audiodata.audio.vad``, offline) around a boundary
  the timestamps close (subtitle cues often abut).

A window ends :data:`LEAD_SECONDS` into its pause (or at its middle, if shorter) and the next begins as
far before the following speech, so no window starts or ends on a sound. Each window's transcript is
its segments' texts, in order. Where no such cut fits (one segment longer than the window, or segments
that run on without a pause), nothing is cut blindly: a transcription record is rejected (``A017``),
and any other task keeps the audio whole as consecutive clips (:func:`split_clips`), each with its
``<audio>`` marker, cut at the pause nearest to an even split.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: A gap the timestamps leave between two segments, at least this long, is a pause (nobody speaks there).
MIN_GAP_SECONDS = 0.3
#: How far into a pause a window ends (and before the next speech the next one starts).
LEAD_SECONDS = 0.2
#: Where the timestamps leave no gap, the detector looks this far on either side of the boundary.
SEARCH_SECONDS = 0.4
#: Consecutive clips of a recording kept whole are cut at a pause within this distance of an even split.
CLIP_SEARCH_SECONDS = 1.5
#: The key an item carries to say its audio is kept whole as consecutive clips: ``[[start, duration], ...]``
#: in seconds from the beginning of the audio file (audiodata's own, in the rejects it may appear in).
CLIPS_KEY = "audiodata_clips"

#: ``pause_in(lo, hi)``: the pauses the detector finds in the audio between ``lo`` and ``hi`` seconds.
PauseFinder = Callable[[float, float], list[tuple[float, float]]]


@dataclass(frozen=True, slots=True)
class Timed:
    """One timed segment of a recording's transcript, in seconds from the start of the audio."""

    start: float
    end: float
    text: str


@dataclass(slots=True)
class Window:
    """Consecutive segments (``members``: indices into the planned list) and the audio they are cut with."""

    start: float
    end: float
    members: list[int] = field(default_factory=list)
    fits: bool = True  # False: no cut fits within the window length (see the module docstring)

    @property
    def duration(self) -> float:
        return self.end - self.start


def _cut(pause: tuple[float, float]) -> tuple[float, float]:
    """Where the window before a pause ends and the next one starts."""
    p0, p1 = pause
    mid = (p0 + p1) / 2
    return min(p0 + LEAD_SECONDS, mid), max(p1 - LEAD_SECONDS, mid)


def boundary_pause(end: float, start: float, pause_in: PauseFinder | None) -> tuple[float, float] | None:
    """The pause between a segment that ends at ``end`` and the next that starts at ``start``: the gap
    itself when the timestamps leave one, else a pause the detector finds around the boundary (the one
    nearest to it), else None (no cut here)."""
    if start - end >= MIN_GAP_SECONDS:
        return end, start
    if pause_in is None:
        return None
    lo, hi = min(end, start) - SEARCH_SECONDS, max(end, start) + SEARCH_SECONDS
    centre = (end + start) / 2
    found = [p for p in pause_in(max(lo, 0.0), hi) if p[1] - p[0] > 0]
    if not found:
        return None
    return min(found, key=lambda p: (0.0 if p[0] <= centre <= p[1] else min(abs(p[0] - centre), abs(p[1] - centre)), p[0]))


def plan_windows(segments: list[Timed], window: float, pause_in: PauseFinder | None = None) -> list[Window]:
    """Pack ``segments`` (in time order) into windows of at most ``window`` seconds, cut at gaps and pauses.

    Greedy: each window takes as many segments as fit up to a cut; a window with no cut inside the
    length is the shortest run up to the next cut, marked ``fits=False``."""
    if not segments:
        return []
    order = sorted(range(len(segments)), key=lambda k: (segments[k].start, segments[k].end))
    segs = [segments[k] for k in order]
    ends: list[float] = []
    reach = -math.inf
    for s in segs:  # overlapping segments: a boundary is after the latest end so far
        reach = max(reach, s.end)
        ends.append(reach)
    cuts: list[tuple[float, float] | None] = []
    for j in range(len(segs) - 1):
        pause = boundary_pause(ends[j], segs[j + 1].start, pause_in)
        cuts.append(_cut(pause) if pause is not None else None)
    out: list[Window] = []
    i, ws = 0, segs[0].start
    while i < len(segs):
        last_end = ends[-1]
        if last_end - ws <= window + 1e-9:
            out.append(Window(ws, last_end, list(range(i, len(segs)))))
            break
        fit = [j for j in range(i, len(segs) - 1) if cuts[j] is not None and cuts[j][0] - ws <= window + 1e-9]  # type: ignore[index]
        if fit:
            j, fits = fit[-1], True
        else:
            j = next((j for j in range(i, len(segs) - 1) if cuts[j] is not None), len(segs) - 1)
            fits = False
        if j == len(segs) - 1:
            out.append(Window(ws, last_end, list(range(i, len(segs))), fits=False))
            break
        a, b = cuts[j]  # type: ignore[misc]
        out.append(Window(ws, a, list(range(i, j + 1)), fits=fits))
        i, ws = j + 1, b
    for w in out:
        w.members = [order[m] for m in w.members]
    return out


def split_clips(start: float, end: float, window: float, pause_in: PauseFinder | None = None) -> list[tuple[float, float]]:
    """``[start, end]`` as consecutive clips of at most ``window`` seconds, as few as can be: cut at the pause
    nearest to each even split point (within :data:`CLIP_SEARCH_SECONDS`), else at the split point itself."""
    n = max(1, math.ceil((end - start) / window - 1e-9))
    cuts = [start]
    for k in range(1, n):
        target = start + k * (end - start) / n
        lo = max(cuts[-1] + 0.1, end - (n - k) * window, target - CLIP_SEARCH_SECONDS)  # every later clip must still fit
        hi = min(cuts[-1] + window, target + CLIP_SEARCH_SECONDS)
        point = target
        if pause_in is not None and hi > lo:
            found = [(max(p0, lo), min(p1, hi)) for p0, p1 in pause_in(lo, hi) if min(p1, hi) > max(p0, lo)]
            if found:
                p0, p1 = min(found, key=lambda p: abs((p[0] + p[1]) / 2 - target))
                point = (p0 + p1) / 2
        cuts.append(min(max(point, lo), hi))
    cuts.append(end)
    return [(round(a, 6), round(b - a, 6)) for a, b in itertools.pairwise(cuts)]


@dataclass(frozen=True, slots=True)
class LongForm:
    """How the readers of raw ASR corpora treat long recordings (from the convert/lint options)."""

    mode: str = "segments"  # segments: one record per timed segment; windows: segments packed into windows
    window: float = 30.0  # the model's audio window, seconds (--window-seconds, else the family's)
    transcription: bool = True  # the records are transcripts (--task / the prompt): a recording too long is A017
    reject_long: bool = True  # A017 enabled; ignored (--ignore A017), a recording too long is kept as one clip
    max_audio_bytes: int = 256 * 2**20  # for the pause detector's reads (the audio stage's bounds)
    allow_absolute_paths: bool = True
    detect_pauses: bool = True  # False: cut only where timestamps leave a gap (no audio read while reading inputs)


MODES = ("segments", "windows")


def settle_long(
    obj: dict[str, Any], start: float, end: float, lf: LongForm, pause_in: PauseFinder | None, what: str
) -> tuple[dict[str, Any], str | None]:
    """An item whose audio ``[start, end]`` is longer than the window and cannot be cut at its transcript's
    timestamps: ``(obj, why)`` with the A017 reason for a transcription, else ``(obj with its clips, None)``;
    unchanged (one long clip, A008 warns) when A017 is ignored."""
    if not lf.reject_long:
        return obj, None
    if lf.transcription:
        why = (
            f"{what} {end - start:.1f} s with one transcript and no timestamps inside is longer than the model's "
            f"{lf.window:g} s audio window: cutting it would cut its transcript blindly; give segment times (NeMo "
            "offset/duration lines, lhotse supervisions, an SRT/VTT file next to the audio), or --task none (or a "
            "prompt that is not a transcription) to keep it whole as consecutive clips"
        )
        return obj, why
    return {**obj, CLIPS_KEY: [list(c) for c in split_clips(start, end, lf.window, pause_in)]}, None
