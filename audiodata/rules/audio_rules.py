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
from audiodata.rules.registry import RuleDoc, Severity, audio_rule

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
    "A008",
    "audio-over-window",
    W,
    "Longer than the model's audio window (30 s for Qwen2-Audio): silently truncated; split it.",
    doc=RuleDoc(
        what="Each clip is no longer than the model family's audio window (30 s for Qwen2-Audio and "
        "Whisper-style encoders; `--model-family` picks it).",
        why="The encoder keeps the first 30 s and drops the rest without a warning: a transcript of a 45 s "
        "clip trains the model to hear words that were never encoded.",
        fix="Split long clips (and their transcripts) into pieces under the window.",
        example="A 31 s clip under the default 30 s window.",
    ),
)
def over_window(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    window = ctx.window
    for c in ctx.clips:
        if window is not None and c.seconds > window:
            yield Finding("A008", f"{c.seconds:.1f} s clip; the encoder keeps the first {window:g} s", c.field)


@audio_rule(
    "A009",
    "low-sample-rate",
    W,
    "Source rate under 16 kHz: upsampling cannot restore the missing band.",
    doc=RuleDoc(
        what="Each source clip is sampled at 16 kHz or more.",
        why="Upsampling an 8 kHz telephone recording to 16 kHz cannot restore the missing band; the model "
        "sees muffled audio unlike what it meets at inference (fine when that is the domain).",
        fix="Use the original recording at a higher rate, or keep the warning as a note that this is narrowband audio.",
        example="An 8 kHz telephone WAV.",
    ),
)
def low_rate(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    for c in ctx.clips:
        if c.source_sampling_rate < MIN_SOURCE_RATE:
            yield Finding("A009", f"source sample rate {c.source_sampling_rate} Hz is under {MIN_SOURCE_RATE} Hz", c.field)


@audio_rule(
    "A012",
    "silent-audio",
    W,
    "The clip is silent (RMS under -60 dBFS); check the recording or drop it.",
    doc=RuleDoc(
        what="Each clip's RMS level is above -60 dBFS.",
        why="A silent clip is a failed recording or a wrong file; its transcript trains the model to "
        "hallucinate speech from silence.",
        fix="Check the recording; replace it or drop the record.",
        example="Two seconds of digital silence.",
    ),
)
def silent(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    for c in ctx.clips:
        if c.rms_dbfs < SILENCE_DBFS:
            yield Finding("A012", f"RMS level {c.rms_dbfs:.0f} dBFS (peak {c.peak_dbfs:.0f} dBFS): silent", c.field)


@audio_rule(
    "A013",
    "clipping",
    W,
    "Samples at full scale: the clip is distorted; re-record or lower the gain at the source.",
    doc=RuleDoc(
        what="At most 0.1% of a clip's source samples sit at full scale.",
        why="Clipped audio is distorted; a little is harmless, a lot teaches the model recording artefacts.",
        fix="Re-record, or lower the gain at the source (normalising afterwards does not undo clipping).",
        example="A square wave at full scale.",
    ),
)
def clipping(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    for c in ctx.clips:
        n = c.clipped_fraction * c.seconds * c.source_sampling_rate * c.source_channels
        if c.clipped_fraction >= CLIPPED_FRACTION and n >= MIN_CLIPPED_SAMPLES:
            yield Finding("A013", f"{c.clipped_fraction:.2%} of samples at full scale", c.field)


@audio_rule(
    "A014",
    "duration-mismatch",
    W,
    "The stated duration differs from the decoded audio: a truncated file or a stale manifest.",
    doc=RuleDoc(
        what="The duration a record states (a `duration` field) or the container header claims matches the "
        "decoded audio (within 0.25 s or 2%).",
        why="A mismatch means a truncated download or a manifest made for other files: the transcript no longer fits the audio.",
        fix="Re-download the file, or fix the stated duration.",
        example='A record with `"duration": 9.0` whose clip decodes to 2.0 s.',
    ),
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
    doc=RuleDoc(
        what="With `--model-family`, the record's tokens (text plus the audio tokens of each clip) fit the "
        "trainer's `--cutoff-len` without cutting through a clip's audio tokens.",
        why="LLaMA-Factory truncates to cutoff_len; cutting inside the audio tokens leaves fewer tokens than "
        "features and stops training with 'Audio features and audio tokens do not match'.",
        fix="Raise `--cutoff-len` (and the trainer's cutoff_len), or shorten the text or the clip.",
        example="A 400-word prompt before `<audio>` with `--model-family qwen2-audio --cutoff-len 256`.",
    ),
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
    "B002",
    "text-truncated",
    W,
    "cutoff_len would silently cut text (usually the response); raise --cutoff-len or shorten.",
    doc=RuleDoc(
        what="With `--model-family`, the record's tokens fit `--cutoff-len` without cutting text.",
        why="The trainer cuts from the end: usually the response, so the model learns answers that stop mid-sentence.",
        fix="Raise `--cutoff-len`, or shorten the response.",
        example="A 400-word answer with `--cutoff-len 256`.",
    ),
)
def text_truncated(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    b = _budget(rec, ctx)
    if b is not None and not b.cut_audio and b.cut_text > 0:
        msg = f"~{b.total} tokens exceed --cutoff-len {ctx.cutoff_len}; about {b.cut_text} text tokens would be cut"
        yield Finding("B002", msg, "messages")
