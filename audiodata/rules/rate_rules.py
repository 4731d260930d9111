"""R rules: a transcript that cannot belong to its clip, judged by characters and words per second.

R001-R004 run in the audio stage on the decoded durations (absolute bounds per script, see
:mod:`audiodata.rules.transcript`); R005 compares each record with the rest of the dataset and
runs in ``lint`` once every record is measured. All are warnings: convert keeps the records.
"""

from __future__ import annotations

from collections.abc import Iterator

from audiodata.records import Record
from audiodata.rules.audio_rules import AudioContext
from audiodata.rules.findings import Finding
from audiodata.rules.registry import RuleDoc, Severity, audio_rule, register
from audiodata.rules.transcript import BOUNDS, LOW_MIN_SECONDS, MIN_CHARS, TranscriptRate, measure

W = Severity.WARNING

_SDP = (
    "NeMo's speech data processor drops such utterances with fixed per-corpus thresholds "
    "(its DropHighLowCharrate and DropHighLowWordrate processors); audiodata reports them instead and sets the "
    "bounds per script."
)
_SCOPE = (
    "Only transcription records are measured: one clip, one user turn holding only the audio marker or a "
    "transcription prompt ('Transcribe the audio', 'What does the person say?', '语音转文字', ...), one reply; "
    "or every single-exchange record with `--task asr` (`--task none` turns the check off). "
    "Characters are letters and digits, without spaces, punctuation or tags such as [noise]; "
    "the script is the one most of the letters belong to (Unicode blocks)."
)


def rate_of(rec: Record, ctx: AudioContext) -> TranscriptRate | None:
    """The record's transcript rate, measured once and shared by the R rules and the dataset stage."""
    if "rate" not in ctx.cache:
        ctx.cache["rate"] = measure(rec, [c.seconds for c in ctx.clips], ctx.task)
    return ctx.cache["rate"]


def _bounds_table() -> str:
    return "; ".join(f"{s} {lo:g}-{hi:g}" for s, b in BOUNDS.items() for lo, hi in [b.chars])


@audio_rule(
    "R001",
    "transcript-too-fast",
    W,
    "More characters per second than anyone speaks: the transcript belongs to a longer clip, or the clip is cut short.",
    RuleDoc(
        what="The reply of a transcription record holds more letters per second of audio than the upper bound "
        f"for its script (chars/s: {_bounds_table()}), e.g. 200 characters on a 0.5 s clip. " + _SCOPE,
        why="The model is taught to hear words that are not in the audio: hallucinated continuations. " + _SDP,
        fix="Check the clip against its transcript (the HTML report has a player): re-pair a swapped transcript, "
        "re-cut a clip that lost its end, or drop the record.",
        example="`<audio>Transcribe the audio.` on a 2 s clip answered with a 60-letter sentence (30 letters/s).",
    ),
)
def chars_too_fast(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    r = rate_of(rec, ctx)
    if r is None or r.chars < MIN_CHARS:
        return
    high = BOUNDS[r.script].chars[1]
    if r.char_rate > high:
        msg = f"{r.chars} characters in {r.seconds:.2f} s of audio: {r.char_rate:.1f}/s, over the {high:g}/s {r.script} bound"
        yield Finding("R001", msg, r.field)


@audio_rule(
    "R002",
    "transcript-too-slow",
    W,
    "Far fewer characters per second than speech has: the transcript is truncated or belongs to a shorter clip.",
    RuleDoc(
        what="The reply of a transcription record holds fewer letters per second than the lower bound for its "
        f"script (chars/s: {_bounds_table()}); judged on clips of {LOW_MIN_SECONDS:g} s or more only, since short "
        "clips carry relatively more silence. Measured on the same records as R001.",
        why="The model is taught to stay silent over speech it hears: dropped words at inference.",
        fix="Listen to the clip: complete a truncated transcript, trim long silence or music from the clip, "
        "re-pair a swapped transcript, or drop the record.",
        example="A 10 s clip transcribed as 'Yes okay.'",
    ),
)
def chars_too_slow(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    r = rate_of(rec, ctx)
    if r is None or r.seconds < LOW_MIN_SECONDS:
        return
    low = BOUNDS[r.script].chars[0]
    if r.char_rate < low:
        msg = f"{r.chars} characters in {r.seconds:.2f} s of audio: {r.char_rate:.2f}/s, under the {low:g}/s {r.script} bound"
        yield Finding("R002", msg, r.field)


def _words_table() -> str:
    return "; ".join(f"{s} {b.words[0]:g}-{b.words[1]:g}" for s, b in BOUNDS.items() if b.words is not None)


@audio_rule(
    "R003",
    "words-too-fast",
    W,
    "More words per second than anyone speaks: the transcript belongs to a longer clip, or the clip is cut short.",
    RuleDoc(
        what="For scripts that separate words with spaces, the reply holds more words per second than the upper "
        f"bound (words/s: {_words_table()}). Catches what letter counts miss when words are short. Measured on the "
        "same records as R001.",
        why="As R001: the model learns to hear words that are not there.",
        fix="As R001: re-pair, re-cut or drop the record.",
        example="A 2 s clip transcribed as 16 one-letter words (8 words/s).",
    ),
)
def words_too_fast(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    r = rate_of(rec, ctx)
    b = BOUNDS[r.script].words if r is not None else None
    if r is None or b is None or r.words is None or r.chars < MIN_CHARS or r.words < 2:
        return
    rate = r.words / r.seconds
    if rate > b[1]:
        msg = f"{r.words} words in {r.seconds:.2f} s of audio: {rate:.1f}/s, over the {b[1]:g}/s {r.script} bound"
        yield Finding("R003", msg, r.field)


@audio_rule(
    "R004",
    "words-too-slow",
    W,
    "Far fewer words per second than speech has: the transcript is truncated or belongs to a shorter clip.",
    RuleDoc(
        what="For scripts that separate words with spaces, the reply holds fewer words per second than the lower "
        f"bound (words/s: {_words_table()}), on clips of {LOW_MIN_SECONDS:g} s or more. Measured on the same records "
        "as R001.",
        why="As R002: the model learns to drop speech it hears.",
        fix="As R002: complete the transcript, trim the clip, re-pair or drop the record.",
        example="A 10 s clip transcribed as one 34-letter word.",
    ),
)
def words_too_slow(rec: Record, ctx: AudioContext) -> Iterator[Finding]:
    r = rate_of(rec, ctx)
    b = BOUNDS[r.script].words if r is not None else None
    if r is None or b is None or r.words is None or r.seconds < LOW_MIN_SECONDS:
        return
    rate = r.words / r.seconds
    if rate < b[0]:
        msg = f"{r.words} words in {r.seconds:.2f} s of audio: {rate:.2f}/s, under the {b[0]:g}/s {r.script} bound"
        yield Finding("R004", msg, r.field)


register(
    "R005",
    "transcript-rate-outlier",
    W,
    "Characters per second far from the rest of the dataset (same script): check that the transcript is this clip's.",
    stage="dataset",
    doc=RuleDoc(
        what="Across the dataset, per script, the median and the median absolute deviation (MAD) of log(chars/s) "
        "over the transcription records; a record further than 3.5 robust standard deviations (1.4826 x MAD, at "
        "least 0.15: a factor of 1.7 or more) from the median is flagged. Low outliers only on clips of "
        f"{LOW_MIN_SECONDS:g} s or more; a script needs 10 measured records before it has a band. `lint` only: "
        "the band needs every record, and `convert` writes as it reads. " + _SCOPE,
        why="Fixed bounds only catch the impossible; a transcript swapped with another clip's is usually merely "
        "twice too long or too short for its clip, which is plausible speech in general but not for this "
        "corpus's speakers. Median and MAD stay put however many outliers there are. " + _SDP,
        fix="Listen to the flagged records (HTML report): re-pair swapped transcripts, fix clip boundaries, or "
        "drop the records. The chars/s histogram per script in the HTML report shows the band.",
        example="Ten transcripts at 9-13 letters/s and one at 23 letters/s: the eleventh is likely another clip's transcript.",
    ),
)
