"""Rules over a record and its decoded clips: window, rate, level, duration, token budget.

They run inside the audio stage (in the worker that decoded the clips) on
:class:`ClipStats`, so every clip is decoded once and measured once, whether
lint or convert asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from audiodata.budget import DEFAULT_CUTOFF, BudgetResult, check_budget, estimate_tokens
from audiodata.families import DEFAULT_WINDOW, ModelFamily
from audiodata.records import AUDIO_MARKER, ClipStats, Record
from audiodata.rules.findings import Finding
from audiodata.rules.registry import Severity, audio_rule

E, W = Severity.ERROR, Severity.WARNING

MIN_SOURCE_RATE = 16000
SILENCE_DBFS = -60.0  # RMS below this: nothing a speech model can use
CLIPPED_FRACTION = 0.001  # 0.1% of samples at full scale: audible distortion
MIN_CLIPPED_SAMPLES = 16
DURATION_TOLERANCE = (0.25, 0.02)  # seconds, fraction: whichever is larger


@dataclass
class AudioContext:
    clips: list[ClipStats]
    family: ModelFamily | None = None
    cutoff_len: int = DEFAULT_CUTOFF
    count_tokens: Callable[[str], int] = field(default=estimate_tokens)
    cache: dict[str, Any] = field(default_factory=dict)  # shared work between rules (the budget)
    task: str = "auto"  # auto | asr | none: which records the transcript-rate rules measure

    @property
    def window(self) -> float | None:
        return self.family.window_seconds if self.family else DEFAULT_WINDOW


@audio_rule(
    "A008", "audio-over-window", W, "Longer than the model's audio window (30 s for Qwen2-Audio): silently truncated; split it."
)
def over_window(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    window = ctx.window
    for c in ctx.clips:
        if window is not None and c.seconds > window:
            yield Finding("A008", f"{c.seconds:.1f} s clip; the encoder keeps the first {window:g} s", c.field)


@audio_rule("A009", "low-sample-rate", W, "Source rate under 16 kHz: upsampling cannot restore the missing band.")
def low_rate(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    for c in ctx.clips:
        if c.source_sampling_rate < MIN_SOURCE_RATE:
            yield Finding("A009", f"source sample rate {c.source_sampling_rate} Hz is under {MIN_SOURCE_RATE} Hz", c.field)


@audio_rule("A012", "silent-audio", W, "The clip is silent (RMS under -60 dBFS); check the recording or drop it.")
def silent(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    for c in ctx.clips:
        if c.rms_dbfs < SILENCE_DBFS:
            yield Finding("A012", f"RMS level {c.rms_dbfs:.0f} dBFS (peak {c.peak_dbfs:.0f} dBFS): silent", c.field)


@audio_rule("A013", "clipping", W, "Samples at full scale: the clip is distorted; re-record or lower the gain at the source.")
def clipping(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    for c in ctx.clips:
        n = c.clipped_fraction * c.seconds * c.source_sampling_rate * c.source_channels
        if c.clipped_fraction >= CLIPPED_FRACTION and n >= MIN_CLIPPED_SAMPLES:
            yield Finding("A013", f"{c.clipped_fraction:.2%} of samples at full scale", c.field)


@audio_rule(
    "A014", "duration-mismatch", W, "The stated duration differs from the decoded audio: a truncated file or a stale manifest."
)
def duration_mismatch(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    abs_tol, rel_tol = DURATION_TOLERANCE
    for c in ctx.clips:
        for by, declared in c.declared:
            if abs(declared - c.seconds) > max(abs_tol, rel_tol * declared):
                what = "the record's duration field" if by == "record" else "the file header"
                yield Finding("A014", f"{what} says {declared:.2f} s but {c.seconds:.2f} s decode", c.field)


def _budget(rec: Record, ctx: AudioContext) -> BudgetResult | None:
    if ctx.family is None:
        return None
    if "budget" not in ctx.cache:
        markers = sum(m.content.count(AUDIO_MARKER) for m in rec.messages)
        ok = markers == len(ctx.clips)  # otherwise the marker rules already reject the record
        ctx.cache["budget"] = check_budget(rec, ctx.clips, ctx.family, ctx.cutoff_len, ctx.count_tokens) if ok else None
    return ctx.cache["budget"]


@audio_rule(
    "B001",
    "audio-tokens-truncated",
    E,
    "cutoff_len would cut through audio tokens ('Audio features and audio tokens do not match'); raise --cutoff-len or trim.",
)
def audio_truncated(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    b = _budget(rec, ctx)
    if b is not None and b.cut_audio:
        msg = (
            f"~{b.total} tokens ({b.text} text + {b.audio} audio) exceed --cutoff-len {ctx.cutoff_len}; "
            f"the tokens of {', '.join(b.cut_audio)} would be cut"
        )
        yield Finding("B001", msg, b.cut_audio[0])


@audio_rule(
    "B002", "text-truncated", W, "cutoff_len would silently cut text (usually the response); raise --cutoff-len or shorten."
)
def text_truncated(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    b = _budget(rec, ctx)
    if b is not None and not b.cut_audio and b.cut_text > 0:
        msg = f"~{b.total} tokens exceed --cutoff-len {ctx.cutoff_len}; about {b.cut_text} text tokens would be cut"
        yield Finding("B002", msg, "messages")
