"""An offline voice-activity detector: short-time energy and zero-crossing rate with hangover, in numpy.

Long recordings are cut into model-sized windows only at pauses (``audiodata.readers.longform``); this
finds them in the audio around a segment boundary whose timestamps leave no gap (subtitle cues that
abut, supervisions that touch). No model, no download: the same samples give the same pauses.

A frame (:data:`FRAME_SECONDS` long, every :data:`HOP_SECONDS`) is **speech** when

- its energy is at least :data:`SPEECH_MARGIN_DB` above the region's noise floor (the
  :data:`FLOOR_PERCENTILE`-th percentile of its frame energies) and above :data:`ABSOLUTE_FLOOR_DBFS`, or
- its zero-crossing rate is at least :data:`FRICATIVE_ZCR` (an unvoiced consonant: s, f, sh, whose energy
  is low) and its energy at least :data:`FRICATIVE_MARGIN_DB` above the floor and above the absolute floor, or
- its energy is above :data:`PAUSE_CEILING_DBFS`: nothing that loud is a pause, whatever the floor says.

Speech then holds for :data:`HANGOVER_SECONDS` after each speech frame (word endings, the release of a
plosive), and a **pause** is a run of non-speech at least :data:`MIN_PAUSE_SECONDS` long (shorter runs are
the closures inside words). The parameters lean towards speech: a missed pause only makes a window
shorter or a record rejected, a false one would cut through a word.
"""

from __future__ import annotations

import numpy as np

FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
FLOOR_PERCENTILE = 10.0
SPEECH_MARGIN_DB = 12.0
FRICATIVE_ZCR = 0.25
FRICATIVE_MARGIN_DB = 4.0
ABSOLUTE_FLOOR_DBFS = -55.0
PAUSE_CEILING_DBFS = -35.0
HANGOVER_SECONDS = 0.080
MIN_PAUSE_SECONDS = 0.150


def frame_features(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: energy in dBFS (RMS, floored at -120) and zero-crossing rate (crossings per sample)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    size, hop = max(1, round(FRAME_SECONDS * rate)), max(1, round(HOP_SECONDS * rate))
    if x.size < size:
        return np.zeros(0), np.zeros(0)
    n = 1 + (x.size - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx]
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    energy = 20 * np.log10(np.maximum(rms, 1e-6))
    signs = np.signbit(frames)
    zcr = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1) / (size - 1)
    return energy, zcr


def speech_mask(samples: np.ndarray, rate: int) -> np.ndarray:
    """True for each frame (hop :data:`HOP_SECONDS`) that is speech, hangover included."""
    energy, zcr = frame_features(samples, rate)
    if not energy.size:
        return np.zeros(0, bool)
    floor = float(np.percentile(energy, FLOOR_PERCENTILE))
    loud = energy >= max(floor + SPEECH_MARGIN_DB, ABSOLUTE_FLOOR_DBFS)
    hiss = (zcr >= FRICATIVE_ZCR) & (energy >= max(floor + FRICATIVE_MARGIN_DB, ABSOLUTE_FLOOR_DBFS))
    speech = loud | hiss | (energy > PAUSE_CEILING_DBFS)
    hang = round(HANGOVER_SECONDS / HOP_SECONDS)
    if hang and speech.any():
        held = speech.copy()
        for k in range(1, hang + 1):
            held[k:] |= speech[:-k]
        speech = held
    return speech


def pauses(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """The pauses in ``samples`` as (start, end) seconds from its first sample, in order."""
    speech = speech_mask(samples, rate)
    out: list[tuple[float, float]] = []
    if not speech.size:
        return out
    edges = np.flatnonzero(np.diff(np.concatenate(([True], speech, [True])).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2], strict=True):  # runs of non-speech frames [a, b)
        start = a * HOP_SECONDS
        end = min((b - 1) * HOP_SECONDS + FRAME_SECONDS, samples.shape[0] / rate)
        if end - start >= MIN_PAUSE_SECONDS:
            out.append((round(float(start), 4), round(float(end), 4)))
    return out
