"""Scores for generated replies: WER and CER (jiwer), exact match, corpus BLEU; and which one a task gets.

Text is normalised before WER, CER and exact match, the usual way for speech recognition: Unicode NFKC,
lower case, apostrophes inside words dropped ("don't" -> "dont"), every other punctuation mark or
symbol made a space, whitespace collapsed. So "Hello, world!" and "hello world" score as equal, and
a leaked template marker such as ``<|im_start|>`` still costs words ("im start").

WER and CER are corpus figures (all edits over all reference words or characters, as jiwer computes
for lists), never a mean of per-sample rates, which would let a two-word reply weigh as much as a long
one. A reference that normalises to nothing has no error rate: it is left out of WER/CER and counted.

BLEU is sacreBLEU's default corpus BLEU (BLEU-4, the 13a tokenizer, case kept, "exp" smoothing of
zero n-gram counts, brevity penalty over the corpus, 0 without any matching token), implemented here (tests hold it to values
sacreBLEU 2.6 gives) rather than adding sacrebleu and its dependencies for a few dozen lines.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

METRICS = ("wer", "cer", "exact_match", "bleu")
#: Lower is better for these; higher for the others (the page and the report say which).
LOWER_IS_BETTER = ("wer", "cer")
NORMALISATION = (
    "NFKC, lower case, apostrophes inside words dropped, other punctuation and symbols as spaces, whitespace collapsed"
)

_APOSTROPHES = "'’ʼ`"


def normalize(text: str) -> str:
    """The text as WER, CER and exact match compare it (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    out = []
    for i, c in enumerate(text):
        if c in _APOSTROPHES and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
            continue  # don't -> dont
        out.append(" " if unicodedata.category(c)[0] in "PSZC" else c)
    return " ".join("".join(out).split())


@dataclass
class Score:
    """One metric over a set of (reference, hypothesis) pairs: the corpus value and each pair's own."""

    metric: str
    value: float | None  # None when nothing could be scored
    per_sample: list[float | None]  # aligned with the inputs; None where a pair has no score
    scored: int = 0  # pairs that entered ``value``
    unscored: int = 0  # pairs left out (an empty reference for WER/CER)
    details: dict[str, float | int] = field(default_factory=dict)  # edit counts, BLEU's precisions, ...

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "value": self.value, "scored": self.scored, "unscored": self.unscored, **self.details}


def score(metric: str, references: Sequence[str], hypotheses: Sequence[str]) -> Score:
    """``metric`` (one of :data:`METRICS`) over aligned references and hypotheses."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if metric in ("wer", "cer"):
        return error_rate(metric, references, hypotheses)
    if metric == "exact_match":
        return exact_match(references, hypotheses)
    if metric == "bleu":
        return corpus_bleu(references, hypotheses)
    raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


def error_rate(metric: str, references: Sequence[str], hypotheses: Sequence[str]) -> Score:
    """WER (words) or CER (characters, spaces included, as jiwer counts them) of normalised text."""
    import jiwer

    process = jiwer.process_words if metric == "wer" else jiwer.process_characters
    edits = {"substitutions": 0, "deletions": 0, "insertions": 0, "hits": 0}
    per: list[float | None] = []
    unscored = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = normalize(ref), normalize(hyp)
        if not r:
            per.append(None)
            unscored += 1
            continue
        out = process(r, h)
        for k in edits:
            edits[k] += int(getattr(out, k))
        n = out.substitutions + out.deletions + out.hits
        per.append((out.substitutions + out.deletions + out.insertions) / n)
    total = edits["substitutions"] + edits["deletions"] + edits["hits"]
    value = (edits["substitutions"] + edits["deletions"] + edits["insertions"]) / total if total else None
    unit = "words" if metric == "wer" else "chars"
    return Score(metric, value, per, len(per) - unscored, unscored, {**edits, f"reference_{unit}": total})


def exact_match(references: Sequence[str], hypotheses: Sequence[str]) -> Score:
    """The share of hypotheses equal to their reference after normalisation."""
    per: list[float | None] = [float(normalize(r) == normalize(h)) for r, h in zip(references, hypotheses, strict=True)]
    hits = sum(p for p in per if p is not None)
    return Score("exact_match", hits / len(per) if per else None, per, len(per), 0, {"matches": int(hits)})


# -- BLEU ------------------------------------------------------------------------------------------------

_13A = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # most punctuation and symbols stand alone
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # a period or comma not after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... nor before one
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
)


def tokenize_13a(text: str) -> list[str]:
    """mteval-v13a tokenization, as sacreBLEU's default tokenizer applies it."""
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in text:
        text = text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    text = f" {text} "
    for pattern, repl in _13A:
        text = pattern.sub(repl, text)
    return text.split()


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references: Sequence[str], hypotheses: Sequence[str], max_order: int = 4) -> Score:
    """Corpus BLEU (0-100) with one reference per hypothesis, and each pair's own (smoothed) sentence BLEU."""
    correct, total = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    per: list[float | None] = []
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = tokenize_13a(ref), tokenize_13a(hyp)
        c, t = [0] * max_order, [0] * max_order
        for n in range(1, max_order + 1):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            c[n - 1] = sum(min(k, rn[g]) for g, k in hn.items())
            t[n - 1] = max(len(h) - n + 1, 0)
        per.append(_bleu(c, t, len(h), len(r))[0])
        correct = [a + b for a, b in zip(correct, c, strict=True)]
        total = [a + b for a, b in zip(total, t, strict=True)]
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
    value, precisions, bp = _bleu(correct, total, hyp_len, ref_len)
    details = {"precisions": [round(p, 4) for p in precisions], "brevity_penalty": round(bp, 6), "hyp_len": hyp_len}
    return Score("bleu", value if per else None, per, len(per), 0, {**details, "ref_len": ref_len})  # type: ignore[dict-item]


def _bleu(correct: list[int], total: list[int], hyp_len: int, ref_len: int) -> tuple[float, list[float], float]:
    """(BLEU, n-gram precisions in %, brevity penalty): an order with no matches gets 100 / (2^k * total)
    for its k-th such order ("exp" smoothing); an order the hypothesis is too short for makes BLEU 0."""
    precisions = [0.0] * len(correct)
    if not any(correct):  # not a single matching token: 0, whatever the smoothing would make of it
        return 0.0, precisions, 0.0
    halvings = 1.0
    for n, (c, t) in enumerate(zip(correct, total, strict=True)):
        if t == 0:
            break
        if c == 0:
            halvings *= 2
            precisions[n] = 100.0 / (halvings * t)
        else:
            precisions[n] = 100.0 * c / t
    if min(precisions) <= 0:
        return 0.0, precisions, _brevity(hyp_len, ref_len)
    bp = _brevity(hyp_len, ref_len)
    return bp * math.exp(sum(math.log(p) for p in precisions) / len(precisions)), precisions, bp


def _brevity(hyp_len: int, ref_len: int) -> float:
    if hyp_len >= ref_len:
        return 1.0
    return math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
