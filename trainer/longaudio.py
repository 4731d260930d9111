"""Clips longer than the model's audio window (``long_audio``): split, skip or truncate.

Qwen2-Audio and Qwen2.5-Omni see 30 s per clip: their Whisper feature extractor pads every clip to
30 s and silently drops the rest (``truncation=True``, ``n_samples=480000``), so a 70 s lecture trains
as its first 30 s while the transcript covers all 70. Both processors take several audios per turn,
each ``<|AUDIO|>`` expanded for its own clip, in order; so the default splits a long clip into equal
consecutive windows (ceil(seconds / 30) of them, none longer than the window and none a sliver) that
stand in the conversation where the clip stood, one audio segment each. ``skip`` drops the record
(logged to ``skipped.jsonl``), ``truncate`` keeps the old behaviour, counted.

The plan is made from the stored ``audio_info`` durations (nothing decoded), the same numbers the
sampler's length estimates use; the collator applies the same rule to the decoded samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiodata.families import ModelFamily


def window_samples(family: ModelFamily) -> int | None:
    """Samples per window at the family's rate, or None for families that never truncate."""
    if family.window_seconds is None:
        return None
    return round(family.window_seconds * family.sampling_rate)


def n_windows(samples: int, window: int | None) -> int:
    """How many equal windows a clip of ``samples`` becomes (1 when it fits)."""
    if window is None or samples <= window:
        return 1
    return math.ceil(samples / window)


def window_lengths(samples: int, window: int | None) -> list[int]:
    """Lengths of the windows ``split_clip`` cuts, without cutting (for length estimates)."""
    n = n_windows(samples, window)
    base, extra = divmod(samples, n)
    return [base + 1] * extra + [base] * (n - extra)


def split_clip(pcm: np.ndarray, window: int | None) -> list[np.ndarray]:
    """Equal consecutive windows covering every sample once, each at most ``window`` long."""
    n = n_windows(len(pcm), window)
    return [pcm] if n == 1 else list(np.array_split(pcm, n))


@dataclass
class LongAudioPlan:
    """What ``long_audio`` does to one split of the data, for the report."""

    policy: str
    window_seconds: float | None
    records: int = 0  # records with at least one clip over the window
    clips: int = 0  # clips over the window
    windows: int = 0  # split: windows those clips became
    seconds_over: float = 0.0  # audio past the window: trained on (split), dropped (truncate) or skipped (skip)
    skipped_rows: list[int] = field(default_factory=list)  # skip: row indices left out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "policy": self.policy,
            "window_seconds": self.window_seconds,
            "records_over_window": self.records,
            "clips_over_window": self.clips,
            "seconds_over_window": round(self.seconds_over, 3),
        }
        if self.policy == "split":
            out["windows_from_split"] = self.windows
        elif self.policy == "skip":
            out["records_skipped"] = len(self.skipped_rows)
        else:
            out["seconds_truncated"] = round(self.seconds_over, 3)
        return out


def plan(ds: Any, family: ModelFamily, policy: str) -> LongAudioPlan:
    """Find the long clips of ``ds`` from the stored durations and say what ``policy`` makes of them."""
    window = window_samples(family)
    out = LongAudioPlan(policy, family.window_seconds)
    if window is None or "audio_info" not in ds.column_names:
        return out
    row = 0
    for batch in ds.select_columns(["audio_info"]).iter(batch_size=1000):
        for info in batch["audio_info"]:
            long = [clip_samples(a, family) for a in info or [] if clip_samples(a, family) > window]
            if long:
                out.records += 1
                out.clips += len(long)
                out.windows += sum(n_windows(n, window) for n in long)
                out.seconds_over += sum(n - window for n in long) / family.sampling_rate
                if policy == "skip":
                    out.skipped_rows.append(row)
            row += 1
    return out


def clip_samples(info: dict[str, Any], family: ModelFamily) -> int:
    """A stored clip's length in samples at the family's rate (what decoding gives)."""
    if info.get("num_samples") and info.get("sampling_rate"):
        return round(int(info["num_samples"]) * family.sampling_rate / int(info["sampling_rate"]))
    return round(float(info["duration"]) * family.sampling_rate)
