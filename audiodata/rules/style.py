"""Transcript style: how a corpus writes its transcripts, per source and per prompt.

Two ASR corpora rarely write alike: LibriSpeech is upper case without punctuation, Common Voice cased and
punctuated, Switchboard keeps fillers (``uh``, ``um``) and noise tags (``[laughter]``), others spell numbers
out. Concatenated under one prompt, the model is taught a random style: which one it writes for a clip
depends on nothing it can hear. Lint profiles the transcripts (the same replies the R rules measure:
:func:`audiodata.rules.transcript.transcript_of`) per input file and per prompt, and the T002/T003 rules
flag a prompt under which the styles disagree. ``convert --normalize-transcripts`` (:mod:`audiodata.normalize`)
writes one style.

Each transcript gets a few discrete traits (a trait it cannot show, e.g. casing in Chinese, stays None):

* ``case``: ``upper`` (every cased letter), ``cased`` (sentence or true case: the first cased letter is upper
  case) or ``lower`` (the first is lower case: names and "I" inside a lower-case transcript stay ``lower``),
  from 3 cased letters up;
* ``punctuation``: ``none`` or ``punctuated`` (apostrophes and hyphens inside words do not count), judged
  on transcripts of 8 letters or more, since a one-word answer has no punctuation in any style;
* ``numbers``: ``digits`` or ``words`` (English number words: two ... ninety, hundred, thousand, ...; not
  ``one``, which is mostly a pronoun), only where the transcript says a number;
* ``fillers`` (Whisper's list: hmm, mm, mhm, mmm, uh, um; plus er, erm, uhm, uh-huh) and ``tags``
  (``[NOISE]``, ``<laugh>``, ``<|en|>``: the tags the rate rules leave out) found in it.

Memory stays bounded: counts per (prompt, input file) (at most :data:`MAX_PROMPTS` prompts; records under
later new prompts are counted per file only) and the first record of each style.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audiodata.records import Record
from audiodata.rules.transcript import TAGS, transcript_of

#: The traits whose values must agree under one prompt (T002), and the values each can take.
TRAITS: dict[str, tuple[str, ...]] = {
    "case": ("lower", "upper", "cased"),
    "punctuation": ("none", "punctuated"),
    "numbers": ("digits", "words"),
}
#: What the profile counts and T003 compares across files: present in some transcripts only, by nature.
ANNOTATIONS = ("fillers", "tags")

#: A prompt's transcripts need this many votes on a trait before its style is judged ...
MIN_VOTES = 10
#: ... and a style is mixed when the styles other than the most common one hold at least this share.
MIN_SHARE = 0.05
#: T003: a file without a single filler (tag) is at odds with one that has them when it would have shown this
#: many had it been written the same way (records x the other file's rate): the chance of none is then e^-10.
MIN_EXPECTED = 10.0
#: Prompts profiled one by one; records under prompts past these are counted only (corpora with a prompt per record).
MAX_PROMPTS = 1000
#: Distinct tags and fillers counted per profile.
MAX_NAMES = 50
#: Prompts listed in the report (the most frequent).
REPORT_PROMPTS = 20
#: Longer prompts are keyed by their head and a digest.
MAX_PROMPT_KEY = 1000
MIN_CASED = 3
MIN_LETTERS = 8

#: Whisper's fillers (its EnglishTextNormalizer drops hmm, mm, mhm, mmm, uh, um) and a few more spellings.
FILLERS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "hmm", "hm", "mm", "mmm", "mhm", "uh-huh"})
NUMBER_WORDS = frozenset(
    {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen"}
    | {"fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy"}
    | {"eighty", "ninety", "hundred", "thousand", "million", "billion"}
)
_TOKENS = re.compile(r"[\w'’-]+")
_DIGIT = re.compile(r"\d")
_IN_WORD = re.compile(r"(?<=\w)['’‘\-‐](?=\w)")
_ASCII_PUNCT = "!\"#%&'()*,-./:;?@[\\]_{}"
_DROP_PUNCT = str.maketrans("", "", _ASCII_PUNCT)
_ONLY_LETTERS = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isalpha()))  # ASCII text
_PUNCT_TO_SPACE = str.maketrans(_ASCII_PUNCT.replace("'", "").replace("-", ""), " " * (len(_ASCII_PUNCT) - 2))


class Style(NamedTuple):
    """The traits of one transcript (None: it cannot show that trait). A tuple: it crosses from the workers
    for every transcript."""

    case: str | None
    punctuation: str | None
    punct_per_word: float | None
    numbers: str | None
    fillers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def trait(self, name: str) -> str | None:
        return getattr(self, name)


#: The ASCII tables above as bytes tables: on ASCII text ``bytes.translate`` gives what ``str.translate`` gives with
#: the same mapping (tests/rules/test_transcript_style.py checks it), in C without a dictionary lookup per character.
_PUNCT_BYTES = _ASCII_PUNCT.encode()
_NOT_LETTER_BYTES = bytes(c for c in range(128) if not chr(c).isalpha())
_PUNCT_TO_SPACE_BYTES = bytes.maketrans(
    _ASCII_PUNCT.replace("'", "").replace("-", "").encode(), b" " * (len(_ASCII_PUNCT) - 2)
)
_ASCII_CASED = re.compile(r"[A-Za-z]")  # an ASCII character that is lower or upper case


def _punctuation(text: str) -> int:
    if "'" in text or "-" in text or not text.isascii():
        text = _IN_WORD.sub("", text)
    if text.isascii():
        raw = text.encode("ascii")
        return len(raw) - len(raw.translate(None, _PUNCT_BYTES))
    return sum(1 for ch in text if unicodedata.category(ch)[0] == "P")


def style_of(text: str) -> Style:
    """The traits of one transcript. Tags are found first and left out of the rest (``[NOISE]`` is upper
    case by convention, whatever the transcript's casing). Runs for every transcript lint reads: string
    methods in C, one tokenisation, regular expressions only where the text can match them."""
    tags: tuple[str, ...] = ()
    body = text
    if "[" in text or "<" in text:
        tags = tuple(m.group(0) for m in TAGS.finditer(text))
        body = TAGS.sub(" ", text) if tags else text
    is_ascii = body.isascii()
    raw = body.encode("ascii") if is_ascii else b""
    letters = len(raw.translate(None, _NOT_LETTER_BYTES)) if is_ascii else sum(map(str.isalpha, body))
    case = None
    if letters >= MIN_CASED and (is_ascii or sum(1 for ch in body if ch.islower() or ch.isupper()) >= MIN_CASED):
        if body.isupper():
            case = "upper"
        else:
            m = _ASCII_CASED.search(body) if is_ascii else None
            first = m.group() if m is not None else next(ch for ch in body if ch.islower() or ch.isupper())
            case = "cased" if first.isupper() else "lower"
    punctuation = ppw = None
    if letters >= MIN_LETTERS:
        marks = _punctuation(body)
        punctuation = "punctuated" if marks else "none"
        ppw = marks / max(len(body.split()), 1)
    tokens = raw.lower().translate(_PUNCT_TO_SPACE_BYTES).decode("ascii").split() if is_ascii else _TOKENS.findall(body.lower())
    fillers = () if FILLERS.isdisjoint(tokens) else tuple(t for t in tokens if t in FILLERS)
    numbers = None
    if _DIGIT.search(body):
        numbers = "digits"
    elif not NUMBER_WORDS.isdisjoint(tokens) or (
        "-" in body and any(not NUMBER_WORDS.isdisjoint(t.split("-")) for t in tokens if "-" in t)
    ):
        numbers = "words"
    return Style(case, punctuation, ppw, numbers, fillers, tags)


def transcript_style(rec: Record, task: str = "auto") -> tuple[str, str, Style] | None:
    """(prompt, field, style) of a transcription record's transcript, or None for a record that is not one.
    The prompt is what the model is shown before it: the system prompt (if any) and the user turn."""
    reply = transcript_of(rec, task)
    if reply is None or not reply.content.strip():
        return None
    return style_entry(rec.messages[0].content, rec.system, reply.content, reply.field or "messages[1]")


def style_entry(user: str, system: str | None, reply: str, field: str) -> tuple[str, str, Style]:
    """(prompt, field, style) of a transcript ``reply`` (at ``field``) under the user turn ``user`` and the
    ``system`` prompt: :func:`transcript_style` of a record, and of the fused text-only lint pass
    (:mod:`audiodata.pipeline.fused`), which has no :class:`Record`."""
    prompt = f"{system}\n{user}" if system else user
    if len(prompt) > MAX_PROMPT_KEY:  # a long prompt is kept as its head and a digest: bounded memory, same identity
        prompt = prompt[: MAX_PROMPT_KEY // 2] + " … #" + hashlib.blake2b(prompt.encode(), digest_size=8).hexdigest()
    return prompt, field, style_of(reply)


Loc = tuple[int, int, int]  # (file number, index, line or -1)


@dataclass(slots=True)
class Profile:
    """The style counts of a group of transcripts (one file, one prompt, or one file under one prompt),
    with the first record of each style (to locate a finding and give an example). Counted per combination
    of traits: the common path of :meth:`add` is one dictionary increment."""

    records: int = 0
    combos: dict[tuple[str | None, ...], int] = field(default_factory=dict)
    punct_sum: float = 0.0
    punct_n: int = 0
    with_fillers: int = 0
    with_tags: int = 0
    names: dict[str, Counter[str]] = field(default_factory=lambda: {a: Counter() for a in ANNOTATIONS})
    first: dict[tuple[str, str], tuple[Loc, str]] = field(default_factory=dict)
    start: tuple[Loc, str] | None = None  # the group's first record

    def add(self, style: Style, loc: Loc, where: str) -> None:
        self.records += 1
        if self.start is None:
            self.start = (loc, where)
        key = (style.case, style.punctuation, style.numbers)  # the TRAITS, in order
        seen = self.combos.get(key)
        if seen is None:
            self.combos[key] = 1
            for trait, value in zip(TRAITS, key, strict=True):
                if value is not None:
                    self.first.setdefault((trait, value), (loc, where))
        else:
            self.combos[key] = seen + 1
        if style.punct_per_word is not None:
            self.punct_sum += style.punct_per_word
            self.punct_n += 1
        if style.fillers:
            self._annotated("fillers", style.fillers, loc, where)
        if style.tags:
            self._annotated("tags", style.tags, loc, where)

    def _annotated(self, name: str, found: tuple[str, ...], loc: Loc, where: str) -> None:
        if name == "fillers":
            self.with_fillers += 1
        else:
            self.with_tags += 1
        self.first.setdefault((name, "yes"), (loc, where))
        counts = self.names[name]
        for item in found:
            if item in counts or len(counts) < MAX_NAMES:
                counts[item] += 1

    def votes(self, trait: str) -> Counter[str]:
        """Transcripts per style of ``trait`` (those that show it)."""
        k = tuple(TRAITS).index(trait)
        out: Counter[str] = Counter()
        for key, n in self.combos.items():
            value = key[k]
            if value is not None:
                out[value] += n
        return out

    def count(self, annotation: str) -> int:
        return self.with_fillers if annotation == "fillers" else self.with_tags

    def to_dict(self) -> dict[str, object]:
        votes = {t: self.votes(t) for t in TRAITS}
        return {
            "records": self.records,
            **{t: {v: votes[t][v] for v in TRAITS[t] if votes[t][v]} for t in TRAITS},
            "punctuation_per_word": round(self.punct_sum / self.punct_n, 4) if self.punct_n else None,
            "fillers": self.with_fillers,
            "tags": self.with_tags,
            "top_fillers": dict(self.names["fillers"].most_common(5)),
            "top_tags": dict(self.names["tags"].most_common(5)),
        }


@dataclass(frozen=True, slots=True)
class Mix:
    """T002: under ``prompt`` the transcripts disagree on ``trait``; ``at`` is the first record of a style
    other than the most common one (``value``), ``example`` the first of the most common."""

    prompt: str
    trait: str
    counts: tuple[tuple[str, int], ...]  # most common first
    value: str  # the style of the record at ``at``
    at: Loc
    field: str
    example: Loc


@dataclass(frozen=True, slots=True)
class AnnotationMix:
    """T003: under ``prompt``, file ``with_file`` annotates ``annotation`` (fillers or tags) in ``share`` of its
    transcripts, file ``at[0]`` in none of its ``records``; ``at`` is the latter's first record there."""

    prompt: str
    annotation: str
    with_file: int
    count: int
    of: int
    examples: tuple[str, ...]
    at: Loc
    field: str
    records: int


def merged(profiles: Iterable[Profile]) -> Profile:
    """One profile of several groups' transcripts (a file's over its prompts, a prompt's over its files)."""
    out = Profile()
    for p in profiles:
        out.records += p.records
        for key, n in p.combos.items():
            out.combos[key] = out.combos.get(key, 0) + n
        out.punct_sum += p.punct_sum
        out.punct_n += p.punct_n
        out.with_fillers += p.with_fillers
        out.with_tags += p.with_tags
        for name in ANNOTATIONS:
            counts = out.names[name]
            for item, n in p.names[name].items():
                if item in counts or len(counts) < MAX_NAMES:
                    counts[item] += n
        for key, first in p.first.items():
            if key not in out.first or first < out.first[key]:
                out.first[key] = first
        if p.start is not None and (out.start is None or p.start < out.start):
            out.start = p.start
    return out


@dataclass(slots=True)
class _Group:
    """A chunk's transcripts under one prompt: their :class:`Profile` (located by position in the chunk), with what
    merging it exactly into a run's profile needs besides: each punctuation rate in order (the run adds them one by
    one, as floats add) and each filler or tag with its first place and count (the run admits names in that order)."""

    profile: Profile = field(default_factory=Profile)
    punct: list[tuple[int, float]] = field(default_factory=list)  # (position, punctuation per word)
    names: dict[str, dict[str, list[Any]]] = field(default_factory=lambda: {a: {} for a in ANNOTATIONS})


@dataclass(slots=True)
class ChunkStyles:
    """The transcript styles of one chunk of records (a lint worker's job), grouped by prompt in the order each prompt
    first appears, so the parent merges a few groups (:meth:`StyleStats.merge`) where it added every record
    (:meth:`StyleStats.add`), to the very same profiles. Memory: bounded by the chunk."""

    groups: dict[str, _Group] = field(default_factory=dict)

    def add(self, n: int, pos: int, line: int | None, prompt: str, where: str, style: Style) -> None:
        """The transcript of the chunk's record at ``pos`` (of file ``n``, at ``line``)."""
        g = self.groups.get(prompt)
        if g is None:
            g = self.groups[prompt] = _Group()
        g.profile.add(style, (n, pos, -1 if line is None else line), where)
        if style.punct_per_word is not None:
            g.punct.append((pos, style.punct_per_word))
        if style.fillers or style.tags:  # most transcripts have neither
            for name, found in (("fillers", style.fillers), ("tags", style.tags)):
                counts = g.names[name]
                for k, item in enumerate(found):
                    seen = counts.get(item)
                    if seen is None:
                        counts[item] = [(pos, k), 1]
                    else:
                        seen[1] += 1


def _absorb(p: Profile, groups: list[_Group], n: int, locate: Callable[[int], tuple[int, int]]) -> None:
    """Add chunk groups to ``p`` as :meth:`Profile.add` of each of their records in input order would (positions
    relocated by ``locate``: position -> (index, line or -1) in file ``n``)."""
    for g in groups:
        q = g.profile
        p.records += q.records
        for key, count in q.combos.items():
            p.combos[key] = p.combos.get(key, 0) + count
        p.with_fillers += q.with_fillers
        p.with_tags += q.with_tags
        for key, (loc, where) in q.first.items():
            at = ((n, *locate(loc[1])), where)
            if key not in p.first or at < p.first[key]:
                p.first[key] = at
        if q.start is not None:
            at = ((n, *locate(q.start[0][1])), q.start[1])
            if p.start is None or at < p.start:
                p.start = at
    rates = groups[0].punct if len(groups) == 1 else sorted(r for g in groups for r in g.punct)
    for _, rate in rates:  # one by one in input order: the sum a record at a time gives, to the last bit
        p.punct_sum += rate
    p.punct_n += len(rates)
    for name in ANNOTATIONS:
        found: dict[str, list[Any]] = {}
        for g in groups:
            for item, (first, count) in g.names[name].items():
                had = found.get(item)
                found[item] = [first, count] if had is None else [min(had[0], first), had[1] + count]
        counts = p.names[name]
        for item, (_, count) in sorted(found.items(), key=lambda kv: kv[1][0]):  # admitted in order of first place
            if item in counts or len(counts) < MAX_NAMES:
                counts[item] += count


class StyleStats:
    """Style profiles of a lint run. One profile per (prompt, file) is all :meth:`add` updates (it runs for every
    transcript); the per-file and per-prompt profiles are merged from them when asked."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, int], Profile] = {}
        self.prompts: set[str] = set()
        self.untracked: dict[int, Profile] = {}  # per file: records under prompts past MAX_PROMPTS
        self.records = 0

    def add(self, n: int, index: int, line: int | None, prompt: str, where: str, style: Style) -> None:
        self.records += 1
        self._profile(n, prompt).add(style, (n, index, -1 if line is None else line), where)

    def _profile(self, n: int, prompt: str) -> Profile:
        """The profile of ``prompt`` in file ``n``, made on first use; past MAX_PROMPTS prompts, the file's untracked one."""
        key = (prompt, n)
        p = self.pairs.get(key)
        if p is None:
            if prompt not in self.prompts and len(self.prompts) >= MAX_PROMPTS:
                p = self.untracked.get(n)
                if p is None:
                    p = self.untracked[n] = Profile()
            else:
                self.prompts.add(prompt)
                p = self.pairs[key] = Profile()
        return p

    def merge(self, n: int, chunk: ChunkStyles, locate: Callable[[int], tuple[int, int]]) -> None:
        """:meth:`add` of every transcript of a chunk of file ``n`` in input order (``locate``: a chunk position ->
        (index, line or -1)): the prompts met in the order they first appear, so the same pairs, tracked or not."""
        into: dict[int, tuple[Profile, list[_Group]]] = {}
        for prompt, g in chunk.groups.items():
            self.records += g.profile.records
            p = self._profile(n, prompt)
            into.setdefault(id(p), (p, []))[1].append(g)
        for p, groups in into.values():
            _absorb(p, groups, n, locate)

    @property
    def by_prompt(self) -> dict[str, Profile]:
        groups: dict[str, list[Profile]] = {}
        for (prompt, _), p in self.pairs.items():
            groups.setdefault(prompt, []).append(p)
        return {prompt: merged(ps) for prompt, ps in groups.items()}

    @property
    def by_source(self) -> dict[int, Profile]:
        groups: dict[int, list[Profile]] = {n: [p] for n, p in self.untracked.items()}
        for (_, n), p in self.pairs.items():
            groups.setdefault(n, []).append(p)
        return {n: merged(ps) for n, ps in groups.items()}

    def mixes(self) -> Iterator[Mix]:
        """Every (prompt, trait) whose styles disagree: at least :data:`MIN_VOTES` votes, and the minority styles
        together at least :data:`MIN_SHARE` of them."""
        for prompt, group in self.by_prompt.items():
            for trait in TRAITS:
                votes = group.votes(trait)
                total = sum(votes.values())
                if total < MIN_VOTES or len(votes) < 2:
                    continue
                ranked = sorted(votes.items(), key=lambda kv: (-kv[1], TRAITS[trait].index(kv[0])))
                if (total - ranked[0][1]) / total < MIN_SHARE:
                    continue
                (at, where), value = min((group.first[(trait, v)], v) for v, _ in ranked[1:])
                yield Mix(prompt, trait, tuple(ranked), value, at, where, group.first[(trait, ranked[0][0])][0])

    def annotation_mixes(self) -> Iterator[AnnotationMix]:
        """Every (prompt, annotation) where one file writes fillers (tags) and another, that would have shown
        :data:`MIN_EXPECTED` of them at the first file's rate, has none."""
        files: dict[str, list[tuple[int, Profile]]] = {}
        for (prompt, n), p in self.pairs.items():
            files.setdefault(prompt, []).append((n, p))
        for prompt, pairs in files.items():
            if len(pairs) < 2:
                continue
            for annotation in ANNOTATIONS:
                rich = max(pairs, key=lambda t: (t[1].count(annotation) / t[1].records, -t[0]))
                rate = rich[1].count(annotation) / rich[1].records
                if rich[1].count(annotation) < 2:
                    continue
                for _, p in sorted(pairs, key=lambda t: t[0]):
                    if p.count(annotation) == 0 and p.records * rate >= MIN_EXPECTED and p.start is not None:
                        names = tuple(k for k, _ in rich[1].names[annotation].most_common(3))
                        count = rich[1].count(annotation)
                        yield AnnotationMix(prompt, annotation, rich[0], count, rich[1].records, names, *p.start, p.records)

    def summary(self, sources: list[str]) -> dict[str, object]:
        """The profile for the reports: per input file, and per prompt (the most frequent ones)."""
        prompts = sorted(self.by_prompt.items(), key=lambda kv: (-kv[1].records, kv[0]))
        return {
            "records": self.records,
            "by_source": {sources[n]: p.to_dict() for n, p in sorted(self.by_source.items())},
            "prompts": len(self.prompts),
            "prompts_untracked_records": sum(p.records for p in self.untracked.values()),
            "by_prompt": [{"prompt": shown_prompt(k), **p.to_dict()} for k, p in prompts[:REPORT_PROMPTS]],
        }


def shown_prompt(prompt: str, limit: int = 120) -> str:
    """A prompt on one line, cut to ``limit`` characters."""
    one = " ".join(prompt.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"
