"""GRPO rewards: small named functions over completions and the columns of the ``rl`` config.

Every function has TRL's reward signature, ``f(prompts, completions, **columns) -> list[float | None]``: TRL's
``GRPOTrainer`` calls it with one entry per completion and hands every dataset column but ``prompt`` as a keyword
(the ``rl`` contract's ``answer``, ``choices``, ``task``, ``meta``), plus ``completion_ids``, ``trainer_state``,
``log_extra`` and ``log_metric``. ``None`` means "does not apply to this completion" (TRL leaves it out of that
function's mean and of the weighted sum), so a reward that only makes sense for one task never scores the others 0.

Which text is judged: the completion, or when it holds an ``<answer>...</answer>`` span (the R1 format the
``format`` reward asks for) only the inside of the last such span. Text comparisons use the normalisation of
``trainer.metrics`` (the evaluation's: case, punctuation and spacing do not count).

Built in (``reward_funcs`` in the config; comma-separated, weighted by ``reward_weights``):

* ``answer``: the task's own check: ``mcq_letter`` for ``mcq`` rows (and any row with choices), ``wer`` for ``asr``,
  ``exact_match`` otherwise. The default.
* ``exact_match``: 1.0 when the judged text equals ``answer`` (normalised), else 0.0.
* ``mcq_letter``: multiple choice: 1.0 when the letter given (``B``, ``(B)``, ``B.``, ``answer: B``, or the choice's
  text itself) is the letter of ``answer`` among ``choices`` (A for the first); None for a row without choices.
* ``wer``: ``1 - WER`` (jiwer, clipped at 0) against ``answer``: 1.0 for a perfect transcript; None when the
  reference normalises to nothing.
* ``format``: 1.0 when the whole completion matches ``FORMAT`` (``<think>...</think><answer>...</answer>``).

A user reward is given by import path, ``package.module:function`` (or ``package.module.function``); it gets the
same arguments and is logged under its function's name.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from trainer.metrics import normalize

RewardFunc = Callable[..., list[float | None]]

#: The R1-style layout the ``format`` reward asks for: reasoning in <think>, the answer in <answer>.
FORMAT = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)
ANSWER_SPAN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
#: A choice letter said outright ("the answer is b", "Answer: (B)"), else a capital standing alone ("B", "(B)", "B.").
EXPLICIT = re.compile(r"answer\s*(?:is|:)?\s*\(?([A-Za-z])(?![A-Za-z])", re.IGNORECASE)
STANDALONE = re.compile(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z])")


def completion_text(completion: Any) -> str:
    """The generated text: a plain string, or the assistant turn(s) TRL hands for conversational prompts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion or "")


def judged(completion: Any) -> str:
    """What the answer rewards compare: the last ``<answer>`` span when there is one, else the whole text."""
    text = completion_text(completion)
    spans = ANSWER_SPAN.findall(text)
    return spans[-1] if spans else text


def _column(values: Sequence[Any] | None, n: int) -> list[Any]:
    return list(values) if values is not None else [None] * n


def exact_match(completions: list[Any], answer: Sequence[str | None] | None = None, **_: Any) -> list[float | None]:
    """1.0 when the judged text equals the reference answer (normalised), else 0.0; None without a reference."""
    refs = _column(answer, len(completions))
    out: list[float | None] = []
    for c, ref in zip(completions, refs, strict=True):
        out.append(None if ref is None else float(normalize(judged(c)) == normalize(str(ref))))
    return out


def choice_letter(text: str, choices: Sequence[str]) -> str | None:
    """The letter a completion picks: the first standalone letter among the choices' (A, B, ...), else the letter of
    the choice whose text the completion is (normalised); None when it picks none."""
    letters = {chr(65 + k) for k in range(len(choices))}
    for pattern in (EXPLICIT, STANDALONE):
        for m in pattern.finditer(text):
            if m.group(1).upper() in letters:
                return m.group(1).upper()
    said = normalize(text)
    for k, choice in enumerate(choices):
        if said and said == normalize(choice):
            return chr(65 + k)
    return None


def answer_letter(answer: str | None, choices: Sequence[str] | None) -> str | None:
    """The letter of the reference: ``answer`` is the choice TEXT (the ``rl`` contract); a bare letter is accepted."""
    if answer is None or not choices:
        return None
    for k, choice in enumerate(choices):
        if normalize(choice) == normalize(answer):
            return chr(65 + k)
    bare = answer.strip().strip("().").upper()
    return bare if len(bare) == 1 and 0 <= ord(bare) - 65 < len(choices) else None


def mcq_letter(
    completions: list[Any],
    answer: Sequence[str | None] | None = None,
    choices: Sequence[Sequence[str] | None] | None = None,
    **_: Any,
) -> list[float | None]:
    """Multiple choice: 1.0 when the completion picks the reference's letter, 0.0 otherwise; None without choices."""
    refs, opts = _column(answer, len(completions)), _column(choices, len(completions))
    out: list[float | None] = []
    for c, ref, ch in zip(completions, refs, opts, strict=True):
        want = answer_letter(ref, ch)
        out.append(None if want is None else float(choice_letter(judged(c), ch or []) == want))
    return out


def wer(completions: list[Any], answer: Sequence[str | None] | None = None, **_: Any) -> list[float | None]:
    """``1 - WER`` of the judged text against ``answer`` (jiwer, normalised text), clipped to [0, 1]."""
    import jiwer

    refs = _column(answer, len(completions))
    out: list[float | None] = []
    for c, ref in zip(completions, refs, strict=True):
        r = normalize(str(ref or ""))
        if not r:
            out.append(None)
            continue
        h = normalize(judged(c))
        rate = jiwer.wer(r, h) if h else 1.0
        out.append(max(0.0, 1.0 - float(rate)))
    return out


def format(completions: list[Any], **_: Any) -> list[float | None]:
    """1.0 when the completion is ``<think>...</think><answer>...</answer>`` and nothing else, else 0.0."""
    return [float(FORMAT.fullmatch(completion_text(c)) is not None) for c in completions]


def answer(
    completions: list[Any],
    answer: Sequence[str | None] | None = None,
    choices: Sequence[Sequence[str] | None] | None = None,
    task: Sequence[str | None] | None = None,
    **_: Any,
) -> list[float | None]:
    """Each row's own check: mcq_letter for rows with choices (task ``mcq``), wer for ``asr``, exact_match otherwise."""
    n = len(completions)
    refs, opts, tasks = _column(answer, n), _column(choices, n), _column(task, n)
    out: list[float | None] = []
    for c, ref, ch, t in zip(completions, refs, opts, tasks, strict=True):
        if ch:
            out += mcq_letter([c], [ref], [ch])
        elif t == "asr":
            out += wer([c], [ref])
        else:
            out += exact_match([c], [ref])
    return out


BUILTIN: dict[str, RewardFunc] = {
    "answer": answer,
    "exact_match": exact_match,
    "mcq_letter": mcq_letter,
    "wer": wer,
    "format": format,
}


class RewardError(ValueError):
    """A reward name that is neither built in nor an importable function."""


def resolve(name: str) -> RewardFunc:
    """A built-in reward by name, or a user function by import path (``pkg.mod:func`` or ``pkg.mod.func``)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        module, _, attr = name.partition(":")
    elif "." in name:
        module, _, attr = name.rpartition(".")
    else:
        raise RewardError(f"reward {name!r} is not built in ({', '.join(BUILTIN)}) nor an import path (package.module:function)")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise RewardError(f"reward {name!r}: cannot import {module} ({exc})") from None
    func = getattr(mod, attr, None)
    if not callable(func):
        raise RewardError(f"reward {name!r}: {module} has no function {attr!r}")
    return func


def resolve_all(names: Sequence[str]) -> list[RewardFunc]:
    funcs = [resolve(n) for n in names]
    labels = [getattr(f, "__name__", n) for f, n in zip(funcs, names, strict=True)]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise RewardError(f"reward {', '.join(dup)} given twice (TRL logs each reward under its function's name)")
    return funcs


def score(
    funcs: Sequence[RewardFunc], weights: Sequence[float], completions: list[Any], columns: dict[str, list[Any]]
) -> list[dict[str, Any]]:
    """Each completion's reward per function and their weighted sum (None where no function applies), outside
    TRL (the report's fixed prompts); ``columns`` are the rows' dataset columns, as TRL passes them."""
    prompts: list[Any] = [None] * len(completions)
    per = {getattr(f, "__name__", str(f)): f(prompts=prompts, completions=completions, **columns) for f in funcs}
    out = []
    for i in range(len(completions)):
        values = {name: (None if (x := v[i]) is None else float(x)) for name, v in per.items()}
        given = [(w, x) for w, x in zip(weights, values.values(), strict=True) if x is not None]
        out.append({"rewards": values, "reward": sum(w * x for w, x in given) if given else None})
    return out
