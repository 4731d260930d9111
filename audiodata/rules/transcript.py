"""Transcript rate: how much text the reply holds for each second of its clip.

A speech-recognition record whose transcript has far more (or far fewer) characters than the
clip could carry is almost always a transcript that belongs to another clip, a truncated one,
or a clip cut wrong. NeMo's speech data processor (SDP) drops such utterances with fixed
per-corpus thresholds on characters and words per second (its ``DropHighLowCharrate`` and
``DropHighLowWordrate`` processors). audiodata borrows the idea, with two changes: the bounds
depend on the text's script (a Mandarin speaker says 4-6 characters a second, an English one
12-15 letters), and, since fixed bounds only catch the impossible, a dataset-relative check
(median and MAD of the rate per script) catches what is merely far off for this corpus.

Only ASR-like records are measured: one clip, one user turn holding nothing but the marker or
a transcription prompt, one reply; or any single-exchange record when ``--task asr`` says so.
"""

from __future__ import annotations

import array
import bisect
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from audiodata.records import AUDIO_MARKER, Message, Record

#: ``auto``: measure records that look like transcription; ``asr``: every single-exchange record
#: is a transcription; ``none``: never measure (the R rules stay quiet).
TASKS = ("auto", "asr", "none")


@dataclass(frozen=True, slots=True)
class Bounds:
    """Plausible rates for one script: characters per second, and words per second where the
    script separates words with spaces (None: no word rate)."""

    chars: tuple[float, float]
    words: tuple[float, float] | None


#: Absolute bounds per script. Characters are letters and digits (no spaces or punctuation).
#: Typical read speech: English 12-15 letters/s (2.5-3 words/s), Mandarin 4-6 characters/s,
#: Korean 5-7 syllables/s. The upper bounds sit well above the fastest natural speech, the
#: lower ones well below a slow speaker with pauses: outside them the text cannot be this clip's.
BOUNDS: dict[str, Bounds] = {
    "latin": Bounds((1.0, 25.0), (0.2, 7.0)),
    "cyrillic": Bounds((1.0, 25.0), (0.2, 6.0)),
    "greek": Bounds((1.0, 25.0), (0.2, 7.0)),
    "arabic": Bounds((0.7, 20.0), (0.2, 7.0)),
    "hebrew": Bounds((0.7, 20.0), (0.2, 7.0)),
    "indic": Bounds((0.7, 20.0), (0.2, 7.0)),
    "thai": Bounds((0.7, 25.0), None),  # Thai, Lao, Khmer, Myanmar: no spaces between words
    "hangul": Bounds((0.5, 12.0), (0.2, 5.0)),
    "cjk": Bounds((0.5, 12.0), None),  # Han and kana
    "other": Bounds((0.5, 25.0), None),
}

#: Below this many characters a rate says little (a one-word answer on a padded clip).
MIN_CHARS = 5
#: Low rates are only judged on clips at least this long: short clips carry relatively more silence.
LOW_MIN_SECONDS = 3.0

# (first code point, last code point, script) for letters; everything else is "other".
_RANGES = sorted(
    [
        (0x41, 0x5A, "latin"),
        (0x61, 0x7A, "latin"),
        (0xC0, 0x24F, "latin"),
        (0x1E00, 0x1EFF, "latin"),
        (0xFF21, 0xFF3A, "latin"),
        (0xFF41, 0xFF5A, "latin"),
        (0x370, 0x3FF, "greek"),
        (0x1F00, 0x1FFF, "greek"),
        (0x400, 0x52F, "cyrillic"),
        (0x590, 0x5FF, "hebrew"),
        (0x600, 0x6FF, "arabic"),
        (0x750, 0x77F, "arabic"),
        (0x8A0, 0x8FF, "arabic"),
        (0xFB50, 0xFDFF, "arabic"),
        (0xFE70, 0xFEFF, "arabic"),
        (0x900, 0xDFF, "indic"),
        (0xE00, 0xEFF, "thai"),
        (0x1000, 0x109F, "thai"),
        (0x1780, 0x17FF, "thai"),
        (0x1100, 0x11FF, "hangul"),
        (0x3130, 0x318F, "hangul"),
        (0xAC00, 0xD7AF, "hangul"),
        (0x3040, 0x30FF, "cjk"),
        (0x31F0, 0x31FF, "cjk"),
        (0x3400, 0x4DBF, "cjk"),
        (0x4E00, 0x9FFF, "cjk"),
        (0xF900, 0xFAFF, "cjk"),
        (0xFF66, 0xFF9F, "cjk"),
        (0x20000, 0x3134F, "cjk"),
    ]
)
_STARTS = [r[0] for r in _RANGES]
#: Scripts whose characters are each about a syllable: a run of Latin letters or digits inside
#: such text is read as a word, so it counts as one character, not five.
_SYLLABIC = {"cjk", "hangul"}


def char_script(ch: str) -> str:
    """The script of one letter, from its Unicode block."""
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and cp <= _RANGES[i][1]:
        return _RANGES[i][2]
    return "other"


# Annotations that are not speech: [noise], <laugh>, <|en|>, (inaudible) tags up to 30 characters.
TAGS = _TAGS = re.compile(r"<\|[^|>]{0,30}\|>|<[^<>\s]{1,30}>|\[[^\[\]]{1,30}\]")


@dataclass(frozen=True, slots=True)
class TextCount:
    script: str
    chars: int
    words: int | None  # None where the script has no word spaces


def count_text(text: str) -> TextCount:
    """Characters (letters and digits) and words of a transcript, with its dominant script: the one
    most of its syllables are written in (a CJK character or a Latin word each count once)."""
    text = _TAGS.sub(" ", text)
    if text.isascii():  # the common case, ten times faster than the general one below
        script = "latin" if any(map(str.isalpha, text)) else "other"
        words = sum(1 for w in text.split() if any(map(str.isalnum, w))) if script == "latin" else None
        return TextCount(script, sum(map(str.isalnum, text)), words)
    votes: dict[str, int] = {}
    prev = None
    for ch in text:  # one vote per syllabic character, one per run of alphabetic letters (about a word each)
        s = char_script(ch) if ch.isalpha() else None
        if s is not None and (s in _SYLLABIC or s != prev):
            votes[s] = votes.get(s, 0) + 1
        prev = s
    script = max(votes, key=lambda s: (votes[s], s)) if votes else "other"
    if script in _SYLLABIC:
        chars, run = 0, False
        for ch in text:
            own = ch.isalpha() and char_script(ch) in _SYLLABIC
            if own or (ch.isalnum() and not run):
                chars += 1
            run = ch.isalnum() and not own
    else:
        chars = sum(1 for ch in text if ch.isalnum())
    words = None
    if BOUNDS[script].words is not None:
        words = sum(1 for w in text.split() if any(c.isalnum() for c in w))
    return TextCount(script, chars, words)


# A user turn that asks for a transcript and nothing else. English, Chinese, Japanese, Korean
# and a few European languages; anything asking for more (translate, summarise) is not ASR.
_ASR_PROMPT = re.compile(
    r"transcri|transkri|speech[\s-]*(?:to|2)[\s-]*text|\bstt\b|\basr\b|recogni[sz]e\s+(?:the\s+)?(?:speech|audio)"
    r"|speech\s+recognition|(?:write\s+down|repeat|type\s+out)\s+what\s+(?:you\s+hear|is\s+said|they\s+say)|write\s+down\s+what"
    r"|dictation|what\s+is\s+(?:being\s+)?said"
    r"|what\s+(?:does|did|do|is|was|are|were)\s+(?:the\s+|this\s+|that\s+)?"
    r"(?:person|speaker|man|woman|he|she|they|someone|people|voice|audio|clip|recording)?\s*(?:say|saying|said)\b"
    r"|转写|转录|轉錄|听写|語音識別|语音识别|识别.{0,8}(?:语音|音频|内容)|语音转文字|说了什么|说的什么|说的是什么|讲了什么|说了啥"
    r"|文字起こし|書き起こし|音声認識|받아쓰기|전사|음성\s*인식"
    r"|транскриб|расшифр|распознай|что\s+говорит|qu[eé]\s+dice|que\s+dit",
    re.IGNORECASE,
)
_NOT_ASR = re.compile(
    r"translat|traduc|übersetz|перевед|翻译|翻譯|翻訳|번역|summar|总结|摘要|概括|要約|요약|emotion|情感|情绪|describ|描述"
    r"|answer|回答|respond|reply|classif|分类",
    re.IGNORECASE,
)
MAX_PROMPT_CHARS = 200


def is_transcription_prompt(text: str) -> bool:
    """True for a user turn that is only the audio marker(s), or a short transcription request. Corpora repeat a
    few prompts over every record: short ones are judged once (lint's style profile asks for every record)."""
    return _judged(text) if len(text) <= 4 * MAX_PROMPT_CHARS else _judge(text)


def _judge(text: str) -> bool:
    prompt = text.replace(AUDIO_MARKER, " ").strip()
    if not prompt:
        return True
    return len(prompt) <= MAX_PROMPT_CHARS and bool(_ASR_PROMPT.search(prompt)) and not _NOT_ASR.search(prompt)


_judged = lru_cache(maxsize=1024)(_judge)


def transcript_of(rec: Record, task: str = "auto") -> Message | None:
    """The reply that should be a transcript of the record's audio, or None when the record is
    not a transcription (then the R rules say nothing). DPO: the chosen reply; KTO: the completion
    when it is labelled desirable (rejected and undesirable replies are meant to be wrong); RL: the answer of a
    record tagged ``asr`` (field ``answer``)."""
    if task == "none" or not rec.audios or len(rec.messages) < 1:
        return None
    if rec.kind == "sft":
        if len(rec.messages) != 2:
            return None
        prompt, reply = rec.messages
    elif rec.kind == "dpo":
        if len(rec.messages) != 1 or not rec.chosen or len(rec.chosen) != 1:
            return None
        prompt, reply = rec.messages[0], rec.chosen[0]
    elif rec.kind == "kto":
        if len(rec.messages) != 1 or not rec.completion or len(rec.completion) != 1 or rec.label is not True:
            return None
        prompt, reply = rec.messages[0], rec.completion[0]
    elif rec.kind == "rl":  # an ASR task's reference answer: the transcript a WER reward scores against
        if rec.task != "asr" or len(rec.messages) != 1 or not rec.answer or rec.messages[0].role != "user":
            return None
        return Message("assistant", rec.answer, "answer")
    else:
        return None
    if prompt.role != "user" or reply.role != "assistant":
        return None
    if task == "asr":
        return reply
    if len(rec.audios) != 1 or not is_transcription_prompt(prompt.content):
        return None
    return reply


def transcription_replies(rec: Record, task: str = "auto") -> list[tuple[str, Message]]:
    """Every reply of a transcription record, each with its place in the output row (``messages[1]``,
    ``chosen[0]``, ``rejected[0]``, ``completion[0]``): the records :func:`transcript_of` measures, with the
    sides it leaves out (a DPO pair's rejected reply, an undesirable KTO completion). What
    ``--normalize-transcripts`` rewrites: both sides of a pair in one style, or the pair teaches a style."""
    if task == "none" or not rec.audios or len(rec.messages) < 1:
        return []
    if rec.kind == "sft":
        if len(rec.messages) != 2:
            return []
        prompt, sides = rec.messages[0], [("messages[1]", rec.messages[1])]
    elif rec.kind == "dpo":
        if len(rec.messages) != 1 or not rec.chosen or len(rec.chosen) != 1 or len(rec.rejected or []) > 1:
            return []
        prompt, sides = rec.messages[0], [("chosen[0]", rec.chosen[0])] + [("rejected[0]", m) for m in rec.rejected or []]
    elif rec.kind == "kto":
        if len(rec.messages) != 1 or not rec.completion or len(rec.completion) != 1:
            return []
        prompt, sides = rec.messages[0], [("completion[0]", rec.completion[0])]
    else:
        return []
    if prompt.role != "user" or any(m.role != "assistant" for _, m in sides):
        return []
    if task != "asr" and (len(rec.audios) != 1 or not is_transcription_prompt(prompt.content)):
        return []
    return sides


@dataclass(frozen=True, slots=True)
class TranscriptRate:
    """One record's transcript against its audio."""

    script: str
    chars: int
    words: int | None
    seconds: float
    field: str  # where the transcript sits in the input

    @property
    def char_rate(self) -> float:
        return self.chars / self.seconds

    @property
    def word_rate(self) -> float | None:
        return None if self.words is None else self.words / self.seconds


def measure(rec: Record, seconds: list[float], task: str = "auto") -> TranscriptRate | None:
    """The transcript rate of ``rec`` given its clips' decoded durations, or None when the record
    is not a transcription or has nothing to measure."""
    reply = transcript_of(rec, task)
    total = sum(seconds)
    if reply is None or total <= 0 or len(seconds) != len(rec.audios):
        return None
    c = count_text(reply.content)
    if c.chars == 0:
        return None  # an empty reply is S004's business
    return TranscriptRate(c.script, c.chars, c.words, total, reply.field or "messages[1]")


# --------------------------------------------------------------------------- across the dataset

#: Scripts need this many measured records before the dataset's own rate is trusted.
MIN_RECORDS = 10
#: A record is an outlier beyond K robust standard deviations of log(chars/s) from the median (3.5:
#: Iglewicz and Hoaglin's cut-off for the MAD-based modified z-score) ...
K = 3.5
#: ... where the standard deviation is 1.4826 * MAD, but never under this: speakers' natural rates
#: vary by about 20%, so a corpus of one synthetic voice must not flag a slightly slower clip.
MIN_SIGMA = 0.15


@dataclass
class ScriptRates:
    """The measured records of one script: where each is and its rate, nothing else (bounded memory:
    about 30 bytes a record)."""

    files: array.array = field(default_factory=lambda: array.array("i"))
    indices: array.array = field(default_factory=lambda: array.array("q"))
    lines: array.array = field(default_factory=lambda: array.array("q"))
    rates: array.array = field(default_factory=lambda: array.array("d"))
    low_ok: array.array = field(default_factory=lambda: array.array("b"))  # long enough to judge a low rate
    fields: array.array = field(default_factory=lambda: array.array("I"))  # into RateStats.field_names


@dataclass(frozen=True, slots=True)
class Band:
    """The dataset's own plausible range of chars/s for one script."""

    median: float
    low: float
    high: float
    records: int


@dataclass(frozen=True, slots=True)
class Outlier:
    file: int
    index: int
    line: int | None
    script: str
    rate: float
    band: Band
    field: str


class RateStats:
    """Collects (record location, script, chars/s) and finds the records far from their script's
    median: a robust z-score on log rates (rates are ratios, so a transcript twice too long and
    one half too short are equally far), median and MAD so the outliers themselves do not move
    the band."""

    def __init__(self) -> None:
        self.scripts: dict[str, ScriptRates] = {}
        self.field_names: list[str] = []  # a dialect writes its transcript in a few places: stored once each
        self._field_ids: dict[str, int] = {}

    def add(self, file: int, index: int, line: int | None, script: str, rate: float, seconds: float, field: str = "") -> None:
        s = self.scripts.setdefault(script, ScriptRates())
        fid = self._field_ids.setdefault(field, len(self._field_ids))
        if fid == len(self.field_names):
            self.field_names.append(field)
        s.fields.append(fid)
        s.files.append(file)
        s.indices.append(index)
        s.lines.append(-1 if line is None else line)
        s.rates.append(rate)
        s.low_ok.append(seconds >= LOW_MIN_SECONDS)

    def band(self, script: str) -> Band | None:
        s = self.scripts.get(script)
        if s is None or len(s.rates) < MIN_RECORDS:
            return None
        logs = np.log(np.frombuffer(s.rates, dtype=np.float64))
        med = float(np.median(logs))
        sigma = max(1.4826 * float(np.median(np.abs(logs - med))), MIN_SIGMA)
        return Band(math.exp(med), math.exp(med - K * sigma), math.exp(med + K * sigma), len(logs))

    def outliers(self) -> Iterator[Outlier]:
        for script in sorted(self.scripts):
            band = self.band(script)
            if band is None:
                continue
            s = self.scripts[script]
            for i, rate in enumerate(s.rates):
                if rate > band.high or (rate < band.low and s.low_ok[i]):
                    line = s.lines[i]
                    name = self.field_names[s.fields[i]]
                    yield Outlier(s.files[i], s.indices[i], None if line < 0 else line, script, rate, band, name)

    def summary(self) -> dict[str, dict[str, object]]:
        """Per script: records measured, median chars/s, the dataset band (None when too few
        records) and the absolute bounds, for the reports."""
        out: dict[str, dict[str, object]] = {}
        for script in sorted(self.scripts, key=lambda k: -len(self.scripts[k].rates)):
            band = self.band(script)
            rates = self.scripts[script].rates
            out[script] = {
                "records": len(rates),
                "median": round(float(np.median(np.frombuffer(rates, dtype=np.float64))), 3),
                "band": None if band is None else [round(band.low, 3), round(band.high, 3)],
                "bounds": list(BOUNDS[script].chars),
            }
        return out

    def values(self, script: str) -> list[float]:
        return list(self.scripts[script].rates) if script in self.scripts else []
