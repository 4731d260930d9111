"""The transcript style profile's ASCII fast paths (issue 15: lint runs style_of on every transcript) give what
the plain str-table version gives, for any text."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from audiodata.rules import style


def _reference_style(text: str) -> style.Style:
    """style_of as written before its ASCII fast paths: str.translate with the module's str tables, a
    generator for the first cased character."""
    tags: tuple[str, ...] = ()
    body = text
    if "[" in text or "<" in text:
        tags = tuple(m.group(0) for m in style.TAGS.finditer(text))
        body = style.TAGS.sub(" ", text) if tags else text
    is_ascii = body.isascii()
    letters = len(body.translate(style._ONLY_LETTERS)) if is_ascii else sum(map(str.isalpha, body))
    case = None
    if letters >= style.MIN_CASED and (is_ascii or sum(1 for ch in body if ch.islower() or ch.isupper()) >= style.MIN_CASED):
        if body.isupper():
            case = "upper"
        else:
            first = next(ch for ch in body if ch.islower() or ch.isupper())
            case = "cased" if first.isupper() else "lower"
    punctuation = ppw = None
    if letters >= style.MIN_LETTERS:
        t = body
        if "'" in t or "-" in t or not t.isascii():
            t = style._IN_WORD.sub("", t)
        if t.isascii():
            marks = len(t) - len(t.translate(style._DROP_PUNCT))
        else:
            marks = sum(1 for ch in t if unicodedata.category(ch)[0] == "P")
        punctuation = "punctuated" if marks else "none"
        ppw = marks / max(len(body.split()), 1)
    tokens = body.lower().translate(style._PUNCT_TO_SPACE).split() if is_ascii else style._TOKENS.findall(body.lower())
    fillers = () if style.FILLERS.isdisjoint(tokens) else tuple(t for t in tokens if t in style.FILLERS)
    numbers = None
    if style._DIGIT.search(body):
        numbers = "digits"
    elif not style.NUMBER_WORDS.isdisjoint(tokens) or (
        "-" in body and any(not style.NUMBER_WORDS.isdisjoint(t.split("-")) for t in tokens if "-" in t)
    ):
        numbers = "words"
    return style.Style(case, punctuation, ppw, numbers, fillers, tags)


_WORDS = ["uh", "Um", "TWENTY", "twenty-one", "don't", "a-b", "[NOISE]", "<laugh>", "Hello", "WORLD", "x", "mm-hmm", "uh-huh"]
_MARKS = ["3", ".", ",", "!", "?", "'", "-", "\x1c", "\x1f", " ", "\t", "\n", "\x0b", "_", "#", "(", ")", "Erm,", "é", "Ж", "中"]
_BITS = st.sampled_from(_WORDS + _MARKS)
_TEXTS = st.one_of(st.lists(_BITS, max_size=20).map(" ".join), st.lists(_BITS, max_size=20).map("".join), st.text(max_size=60))


@settings(max_examples=3000, deadline=None)
@given(_TEXTS)
def test_style_of_equals_the_str_table_version(text: str) -> None:
    assert style.style_of(text) == _reference_style(text)
