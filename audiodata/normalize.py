"""``--normalize-transcripts``: write every transcript of a run in one style, keeping the original.

Corpora concatenated under one prompt often disagree on casing, punctuation, numbers, fillers and tags (lint's
T002/T003, :mod:`audiodata.rules.style`); the model then learns a random style. Normalising the transcripts
writes one. It touches only the replies of transcription records (:func:`~audiodata.rules.transcript.
transcription_replies`: the same records the R rules measure, both sides of a DPO pair), before the rules
run, so a transcript that normalises to nothing (``[noise]`` alone) is rejected as an empty reply (S004)
rather than written empty. The original text of every changed reply goes into the row's ``metadata``
column as ``transcript_original``, keyed by its place in the row (``{"messages[1]": "Hello, World."}``).
The reference answer of an ``rl`` record tagged ``asr`` (what a WER reward scores against) is rewritten too, its
original kept in the record's ``meta`` (the ``rl`` config has no ``metadata`` column).

* ``basic``: for any language. Unicode NFKC; tags (``[noise]``, ``<laugh>``, ``<|en|>``) and short
  parenthesised notes (``(inaudible)``) removed; lower case; punctuation and symbols removed, except an
  apostrophe or hyphen inside a word (``don't``, ``well-known``) and a point, comma or colon between digits
  (``3.5``, ``10:30``); whitespace collapsed. Like Whisper's ``BasicTextNormalizer``, minus what would spoil a
  training target: that one splits ``don't`` into ``don t``, ``3.5`` into ``3 5`` and drops combining marks
  (the vowel signs of Indic scripts).
* ``whisper-en``: Whisper's English normaliser for real: transformers' ``EnglishTextNormalizer`` (the code
  OpenAI's ``whisper/normalizers/english.py`` has) with OpenAI's British-to-American spelling table
  ``english.json``. transformers ships the code but not the table: it reads it from a Whisper tokenizer's
  ``normalizer.json`` on the Hub. Offline, the table is taken from an installed package that ships it:
  ``whisper-normalizer`` (MIT, 56 kB of data and small code) or ``openai-whisper``. Numbers become digits,
  fillers (hmm, mm, mhm, uh, um) and contractions go (``can't`` -> ``can not``), ``Mr`` -> ``mister``,
  ``colour`` -> ``color``; leading and trailing spaces are stripped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

from audiodata.errors import UsageError
from audiodata.records import Record
from audiodata.rules.transcript import TAGS, transcription_replies

NORMALIZERS = ("none", "basic", "whisper-en")
#: The metadata key that keeps the original replies a normaliser changed.
ORIGINAL_KEY = "transcript_original"

_NOTES = re.compile(r"\([^()]{1,30}\)")
_KEEP_IN_WORD = frozenset("'’-‐")
_KEEP_IN_NUMBER = frozenset(".,:")
#: Where an installed package keeps OpenAI's British-to-American spelling table (package, path inside it).
SPELLING_TABLES = (("whisper_normalizer", "normalizers/english.json"), ("whisper", "normalizers/english.json"))


class NormalizerError(UsageError):
    """The chosen normaliser cannot run here (a package is missing): a usage error, exit 2, before any record."""


def basic(text: str) -> str:
    """The ``basic`` style: lower case, no punctuation, no tags, for any script (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = _NOTES.sub(" ", TAGS.sub(" ", text)).lower()
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch.isalnum() or ch.isspace() or unicodedata.category(ch)[0] not in "PS":
            out.append(ch)
            continue
        prev, nxt = (text[i - 1] if i else ""), (text[i + 1] if i < last else "")
        if ch in _KEEP_IN_WORD and prev.isalnum() and nxt.isalnum():
            out.append("'" if ch in "'’" else "-")
        elif ch in _KEEP_IN_NUMBER and prev.isdigit() and nxt.isdigit():
            out.append(ch)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


def spelling_table() -> dict[str, str]:
    """OpenAI's British-to-American spelling table, from the first installed package that ships it."""
    for package, path in SPELLING_TABLES:
        try:
            text = resources.files(package).joinpath(path).read_text(encoding="utf-8")
        except Exception:  # not installed, or a different package of that name (ModuleNotFoundError, OSError, TypeError)
            continue
        table = json.loads(text)
        if isinstance(table, dict) and table:
            return table
    raise NormalizerError(
        "--normalize-transcripts whisper-en needs Whisper's English spelling table, which transformers reads from the "
        "Hub: pip install whisper-normalizer (or openai-whisper), which ship it"
    )


@lru_cache(maxsize=1)
def whisper_en() -> Callable[[str], str]:
    """transformers' ``EnglishTextNormalizer`` with OpenAI's spelling table, output stripped (built once per process)."""
    try:
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer
    except ImportError as exc:
        raise NormalizerError(
            f"--normalize-transcripts whisper-en needs transformers ({exc}): pip install 'audiodata[train]'"
        ) from None
    normalizer = EnglishTextNormalizer(spelling_table())

    def run(text: str) -> str:
        return str(normalizer(text)).strip()

    return run


def normalizer(name: str) -> Callable[[str], str] | None:
    """The function a ``--normalize-transcripts`` value names (None for ``none``); raises NormalizerError when it
    cannot run here, so a run says so before it reads a record."""
    if name == "none":
        return None
    if name == "basic":
        return basic
    if name == "whisper-en":
        return whisper_en()
    raise NormalizerError(f"--normalize-transcripts must be one of {', '.join(NORMALIZERS)}, got {name!r}")


def normalize_record(rec: Record, fn: Callable[[str], str], task: str = "auto") -> bool:
    """Rewrite the transcript replies of ``rec`` with ``fn``, keeping each changed original in its metadata
    (``transcript_original``). True when anything changed. An ``rl`` record of task ``asr`` has no reply: its
    ``answer`` is the transcript a WER reward scores completions against, rewritten here (see :func:`_rl_answer`)."""
    if rec.kind == "rl":
        return _rl_answer(rec, fn, task)
    originals: dict[str, str] = {}
    for place, message in transcription_replies(rec, task):
        new = fn(message.content)
        if new != message.content:
            originals[place] = message.content
            message.content = new
    if not originals:
        return False
    rec.metadata = {**(rec.metadata or {}), ORIGINAL_KEY: originals}
    rec._texts = None  # the text rules must see the written text
    return True


def _rl_answer(rec: Record, fn: Callable[[str], str], task: str) -> bool:
    """An ``rl`` ASR record's reference transcript in the run's style, so a WER or exact-match reward compares
    completions with the style the SFT targets were written in. The ``rl`` config has no ``metadata`` column, so
    the original is kept in the record's ``meta`` (written as JSON, handed to reward functions) under
    ``transcript_original``: ``{"answer": "Hello, World."}``."""
    if task == "none" or rec.task != "asr" or not rec.audios or not isinstance(rec.answer, str):
        return False
    new = fn(rec.answer)
    if new == rec.answer:
        return False
    rec.meta = {**(rec.meta or {}), ORIGINAL_KEY: {"answer": rec.answer}}
    rec.answer = new
    rec._texts = None
    return True
