"""The pieces long recordings are cut with: the offline pause detector, the window planner, consecutive
clips, and the SRT/WebVTT parser."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
import soxr

from audiodata.audio import vad
from audiodata.readers.longform import LEAD_SECONDS, Timed, plan_windows, split_clips
from audiodata.readers.subtitles import BadCue, Cue, parse_cues
from tests.conftest import SAMPLE

SPEECH = ["clip01_22k.wav", "clip02_22k.wav", "clip03_22k.wav", "clip07_16k.flac", "clip08_16k.flac"]


def _speech(name: str) -> np.ndarray:
    x, rate = sf.read(SAMPLE / "audio" / name, dtype="float32", always_2d=True)
    return soxr.resample(x.mean(axis=1), rate, 16000).astype(np.float32)


def _voiced(x: np.ndarray) -> tuple[float, float]:
    """Where a clip's sound starts and ends (espeak pads its clips with silence)."""
    loud = np.flatnonzero(np.abs(x) > 1e-3)
    return loud[0] / 16000, loud[-1] / 16000


@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_pauses_between_sentences_and_none_inside_them(noise: float):
    """Sentences abutting (their own trailing silence the only gap): a pause between each two, none within one."""
    clips = [_speech(n) for n in SPEECH]
    signal = np.concatenate(clips)
    signal = signal + np.random.default_rng(0).normal(0, noise, signal.size).astype(np.float32)
    found = vad.pauses(signal, 16000)
    at, spans = 0.0, []
    for c in clips:
        a, b = _voiced(c)
        spans.append((at + a, at + b))
        at += c.size / 16000
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert any(p0 >= end - 0.05 and p1 <= start + 0.05 for p0, p1 in found), (end, start, found)
    for p0, p1 in found:  # no pause inside a sentence's sound
        assert not any(a + 0.05 < p0 and p1 < b - 0.05 for a, b in spans), (p0, p1)
    assert len(found) == len(clips)  # the one after each sentence (the last one's trailing silence included)


def test_a_fricative_is_not_a_pause():
    """Hiss (an 's': low energy, high zero-crossing rate) over a hum between two vowels stays speech, though it
    is well under the energy a vowel needs; the hum alone (low zero-crossing rate) is a pause."""
    rng = np.random.default_rng(1)
    t = np.arange(40000) / 16000
    hum = (0.0045 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)  # -50 dBFS, 100 crossings a second
    signal = hum.copy()
    for a in (8000, 20000):  # vowels at 0.5-1.0 s and 1.25-1.75 s
        signal[a : a + 8000] += (0.3 * np.sin(2 * np.pi * 200 * t[:8000])).astype(np.float32)
    signal[16000:20000] += (0.0063 * rng.standard_normal(4000)).astype(np.float32)  # -44 dBFS hiss, 1.0-1.25 s
    found = vad.pauses(signal, 16000)
    assert not any(p0 < 1.2 and p1 > 1.05 for p0, p1 in found), found  # no pause inside the hiss
    assert found[0][0] == 0.0 and found[-1][1] == pytest.approx(2.5, abs=0.01)  # the hum before and after is
    hushed = signal.copy()
    hushed[16000:20000] = hum[16000:20000]
    assert any(p0 <= 1.1 and p1 >= 1.2 for p0, p1 in vad.pauses(hushed, 16000))  # without the hiss: a pause (hangover 80 ms)


def test_windows_cut_at_gaps_and_pauses_never_past_the_length():
    segs = [Timed(0.5, 3.0, "a"), Timed(3.0, 6.0, "b"), Timed(6.0, 9.0, "c"), Timed(9.8, 12.0, "d")]
    windows = plan_windows(segs, 8.0)  # no detector: the boundaries at 3 s and 6 s (no gap) are no cuts
    assert [(w.members, w.fits) for w in windows] == [([0, 1, 2], False), ([3], True)]
    assert windows[0].end == pytest.approx(9.0 + LEAD_SECONDS)  # into the gap before d, by LEAD_SECONDS
    assert windows[1].start == pytest.approx(9.8 - LEAD_SECONDS)

    def finder(lo: float, hi: float) -> list[tuple[float, float]]:
        return [(5.8, 6.1)] if lo < 6.0 < hi else []

    windows = plan_windows(segs, 8.0, finder)
    assert [(w.members, w.fits) for w in windows] == [([0, 1], True), ([2, 3], True)]
    assert windows[0].end == windows[1].start == pytest.approx(5.95)  # the middle of a short pause
    assert all(w.duration <= 8.0 for w in windows)


def test_a_segment_longer_than_the_window_is_marked_not_fitting():
    segs = [Timed(0.0, 2.0, "a"), Timed(3.0, 40.0, "long"), Timed(41.0, 43.0, "b")]
    windows = plan_windows(segs, 30.0)
    assert [(w.members, w.fits) for w in windows] == [([0], True), ([1], False), ([2], True)]
    assert plan_windows([], 30.0) == []
    overlapping = plan_windows([Timed(0.0, 5.0, "a"), Timed(4.0, 6.0, "b"), Timed(7.0, 9.0, "c")], 7.0)
    assert [w.members for w in overlapping] == [[0, 1], [2]]  # the boundary is after the latest end so far


def test_consecutive_clips_cover_the_recording_and_move_to_pauses():
    clips = split_clips(0.0, 24.0, 10.0, lambda lo, hi: [(8.3, 8.6), (16.8, 17.4)])
    assert [round(a, 2) for a, _ in clips] == [0.0, 8.45, 17.1]
    assert sum(d for _, d in clips) == pytest.approx(24.0) and all(d <= 10.0 for _, d in clips)
    even = split_clips(0.0, 25.0, 10.0)
    assert [a for a, _ in even] == [0.0, 8.333333, 16.666667] and sum(d for _, d in even) == pytest.approx(25.0)
    tight = split_clips(0.0, 30.0, 10.0, lambda lo, hi: [(11.0, 11.5)])  # no slack: a pause past 10 s cannot be used
    assert [d for _, d in tight] == [10.0, 10.0, 10.0]


SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there,
{\\an8}general Kenobi.

2
00:00:03,000 --> 00:00:02,000
backwards

3
00:00:04,000 -> 00:00:05,000
no arrow

4
01:00:04,5 --> 01:00:06,25
late
"""

VTT = """WEBVTT - a title

NOTE a comment
over two lines

STYLE
::cue { color: red }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v.loud Alice>Hi <c.yellow>Bob</c></v>

00:00:03.000 --> 00:00:04.000
<00:00:03.500>Bye.
"""


def test_srt_cues_markup_and_located_problems():
    cues = parse_cues(SRT)
    assert cues[0] == Cue(1.0, 2.5, "Hello there, general Kenobi.", 2)
    assert isinstance(cues[1], BadCue) and cues[1].line == 7 and "ends (2.000 s) before it starts (3.000 s)" in cues[1].why
    assert isinstance(cues[2], BadCue) and cues[2].line == 10 and "no timing line" in cues[2].why
    assert cues[3] == Cue(3604.5, 3606.25, "late", 15)


def test_webvtt_headers_notes_voices_and_short_times():
    cues = parse_cues(VTT)
    assert cues == [Cue(1.0, 2.0, "Hi Bob", 10, "Alice"), Cue(3.0, 4.0, "Bye.", 13)]
