"""Token budget of one record under a model family: will ``cutoff_len`` cut it, and where?

LLaMA-Factory (and any trainer that truncates to a cutoff) cuts the prompt from its end
when a conversation is too long; if that cut lands inside the expanded audio tokens the
forward pass fails with "Audio features and audio tokens do not match". This module
replays that truncation (``infer_seqlen`` turn by turn for SFT, prompt vs the longest
response for DPO) on estimated lengths, so lint can say so before training.

Text lengths come from a local tokenizer when one is given (``--tokenizer``), otherwise
from a deliberately generous estimate (words / 6-char pieces, digits and CJK characters
one token each), so the estimate errs towards warning, not towards a crash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from audiodata.families import ModelFamily
from audiodata.records import AUDIO_MARKER, ClipStats, Message, Record

DEFAULT_CUTOFF = 2048  # LLaMA-Factory's default cutoff_len

_CJK = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af"
_PIECES = re.compile(rf"[A-Za-z]+|\d|[{_CJK}]|[^\W\d_A-Za-z{_CJK}]+|[^\w\s]|_")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free upper-leaning estimate of BPE tokens (Qwen-style vocabularies)."""
    n = 0
    for piece in _PIECES.findall(text):
        c = piece[0]
        if c.isascii() and c.isalpha():
            n += math.ceil(len(piece) / 6)
        elif len(piece) > 1:  # a run of non-Latin letters (Cyrillic, Arabic, ...)
            n += math.ceil(len(piece) / 3)
        else:
            n += 1
    return n


@lru_cache(maxsize=4)
def _tokenizer(path: str) -> Callable[[str], int]:
    from transformers import AutoTokenizer  # optional: only with --tokenizer

    tok = AutoTokenizer.from_pretrained(path)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    return _tokenizer(tokenizer) if tokenizer else estimate_tokens


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """LLaMA-Factory's split of a budget between a prompt and its response (data/processor/processor_utils.py)."""
    if target_len * 2 < cutoff_len:
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target_len = cutoff_len - source_len
    else:
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    new_source_len = min(max(cutoff_len - new_target_len, 0), source_len)
    return new_source_len, new_target_len


@dataclass
class Segment:
    """A prompt or response as token counts: its length and the audio spans inside it."""

    length: int = 0
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, clip field)

    def add_text(self, n: int) -> None:
        self.length += n

    def add_audio(self, n: int, fld: str) -> None:
        self.spans.append((self.length, self.length + n, fld))
        self.length += n


@dataclass
class BudgetResult:
    total: int  # estimated tokens of the longest sequence the trainer builds
    text: int
    audio: int
    cut_audio: list[str]  # fields of clips whose tokens would be cut
    cut_text: int  # text tokens that would be cut


class _Encoder:
    def __init__(self, family: ModelFamily, clips: list[ClipStats], count: Callable[[str], int]) -> None:
        self.family, self.clips, self.count = family, clips, count
        self.next_clip = 0
        self.text = self.audio = 0

    def turn(self, seg: Segment, m: Message) -> None:
        over = self.family.user_overhead if m.role in ("user", "tool") else self.family.assistant_overhead
        seg.add_text(over)
        self.text += over
        parts = m.content.split(AUDIO_MARKER)
        for k, part in enumerate(parts):
            if part:
                n = self.count(part)
                seg.add_text(n)
                self.text += n
            if k < len(parts) - 1 and self.next_clip < len(self.clips):
                clip = self.clips[self.next_clip]
                n = self.family.audio_tokens(clip.samples_16k)
                seg.add_audio(n, clip.field)
                self.audio += n
                self.next_clip += 1

    def system(self, seg: Segment, rec: Record) -> None:
        n = self.family.system_overhead + self.count(rec.system or self.family.default_system)
        n += self.count(rec.tools) if rec.tools else 0
        seg.add_text(n)
        self.text += n


def _cut(seg: Segment, keep: int) -> tuple[list[str], int]:
    """Clip fields whose tokens fall past ``keep``, and the number of text tokens dropped."""
    if keep >= seg.length:
        return [], 0
    cut_audio = [f for start, end, f in seg.spans if end > keep]
    audio_lost = sum(end - max(start, keep) for start, end, _ in seg.spans if end > keep)
    return cut_audio, seg.length - keep - audio_lost


def check_budget(
    rec: Record, clips: list[ClipStats], family: ModelFamily, cutoff: int, count: Callable[[str], int]
) -> BudgetResult:
    enc = _Encoder(family, clips, count)
    cut_audio: list[str] = []
    cut_text = 0
    if rec.kind == "dpo":
        prompt = Segment()
        enc.system(prompt, rec)
        for m in rec.messages:
            enc.turn(prompt, m)
        responses = []
        for turns in (rec.chosen or [], rec.rejected or []):
            seg = Segment()
            for m in turns:
                enc.turn(seg, m)
            responses.append(seg.length)
        longest = max(responses or [0])
        keep_src, keep_tgt = infer_seqlen(prompt.length, longest, cutoff)
        cut_audio, cut_text = _cut(prompt, keep_src)
        cut_text += longest - keep_tgt
        return BudgetResult(prompt.length + longest, enc.text, enc.audio, cut_audio, cut_text)
    pairs: list[tuple[Segment, Segment]] = []
    msgs = rec.messages
    for i in range(0, len(msgs) - 1, 2):
        src, tgt = Segment(), Segment()
        if i == 0:
            enc.system(src, rec)
        enc.turn(src, msgs[i])
        enc.turn(tgt, msgs[i + 1])
        pairs.append((src, tgt))
    used = 0
    for src, tgt in pairs:
        if used >= cutoff:  # the remaining turns are dropped whole
            cut_audio += [f for _, _, f in src.spans]
            cut_text += src.length + tgt.length - sum(e - s for s, e, _ in src.spans)
            continue
        keep_src, keep_tgt = infer_seqlen(src.length, tgt.length, cutoff - used)
        lost_audio, lost_text = _cut(src, keep_src)
        cut_audio += lost_audio
        cut_text += lost_text + tgt.length - keep_tgt
        used += keep_src + keep_tgt
    total = sum(s.length + t.length for s, t in pairs)
    return BudgetResult(total, enc.text, enc.audio, cut_audio, cut_text)
