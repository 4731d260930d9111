"""Rules of RL records (family ``Q``): a reward can only be as right as the reference answer it checks against.

GRPO scores the model's own completions with reward functions that compare them to the row's ``answer``
(TRL hands every column but ``prompt`` to them: ``trl/trainer/grpo_trainer.py`` ``_calculate_rewards``). A
missing answer scores everything 0 (no signal, or a crash in the reward), a multiple-choice answer that is not
one of the choices can never be matched, and an answer written into the prompt is copied rather than learned.
Conflicting answers for the same audio and prompt are the dedup conflict rule ``D003``; an answer that is a
benchmark's test item is ``D004`` (``--against``), as for every other kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from audiodata.records import AUDIO_MARKER, Record
from audiodata.rules.findings import Finding
from audiodata.rules.registry import RuleDoc, Severity, record_rule, register

E, W = Severity.ERROR, Severity.WARNING

_RL = '`{"prompt": [{"role": "user", "content": "<audio>Who is speaking?"}], '


@record_rule(
    "Q001",
    "rl-answer-missing",
    E,
    "An RL record has no reference answer (answer / solution / reward_model.ground_truth): its rewards have nothing to check.",
    doc=RuleDoc(
        what="An `rl` record (a prompt read with `answer`, `solution`, `reward_model`, or an audio-QA question) has a "
        "non-empty reference answer.",
        why="Accuracy rewards compare each completion with the answer: without one every completion scores the same, "
        "so the group's advantages are zero and the record trains nothing (or the reward function fails on None).",
        fix="Fill in the answer, or drop the record.",
        example=_RL + '"solution": "", "audios": ["a.wav"]}`',
    ),
)
def answer_missing(rec: Record) -> Iterator[Finding]:
    if rec.kind == "rl" and (rec.answer is None or not rec.answer.strip()):
        yield Finding("Q001", "no reference answer (empty or missing)", "answer")


_WORD = re.compile(r"\w", re.UNICODE)


@record_rule(
    "Q002",
    "rl-answer-unparseable",
    E,
    "The answer cannot be checked for its task: a multiple-choice record without two distinct options or whose answer is "
    "two of them, or an ASR, translation or caption answer without a word.",
    doc=RuleDoc(
        what="For `mcq`: at least two distinct options, none empty, the answer's text only one of them (a repeated wrong "
        "option is left alone: the answer's letter stays one). For `asr`, `translate` and `caption`: the answer holds "
        "at least one word character (a WER over no words is undefined).",
        why="A multiple-choice reward maps the completion to an option's letter or text: with one option every completion "
        "is right, and with the answer listed twice two letters are right and a letter reward scores one of them wrong "
        "(MMAU's test-mini has such items). A WER reward divides by the reference's words.",
        fix="Give the options (at least two distinct), or correct the answer, or tag the record with its real task.",
        example=_RL + '"choices": ["Man"], "answer": "Man", "audios": ["a.wav"]}`',
    ),
)
def answer_unparseable(rec: Record) -> Iterator[Finding]:
    if rec.kind != "rl" or rec.answer is None or not rec.answer.strip():
        return
    if rec.task == "mcq":
        choices = rec.choices or []
        if len(choices) < 2:
            yield Finding("Q002", f"a multiple-choice record needs at least 2 options, has {len(choices)}", "choices")
        elif any(not c.strip() for c in choices):
            yield Finding("Q002", "an option is empty", "choices")
        elif sum(c.strip().casefold() == rec.answer.strip().casefold() for c in choices) > 1:
            msg = f"the answer {rec.answer[:60]!r} is more than one of the options: its letter is ambiguous"
            yield Finding("Q002", msg, "choices")
        elif len({c.strip().casefold() for c in choices}) < 2:
            yield Finding("Q002", "the options are all the same text", "choices")
    elif rec.task in ("asr", "translate", "caption") and not _WORD.search(rec.answer):
        yield Finding("Q002", f"a {rec.task} answer holds no word: {rec.answer!r}", "answer")


@record_rule(
    "Q003",
    "mcq-answer-not-a-choice",
    E,
    "A multiple-choice answer is not one of its choices: no completion can be scored right.",
    doc=RuleDoc(
        what="The answer of a record with `choices` is exactly one of them (its text; a bare letter such as `B` is "
        "read as the option at that place when the record is read).",
        why="The multiple-choice rewards match a completion's letter or text against the answer's place among the "
        "choices: an answer outside them matches nothing, so the record only ever teaches failure.",
        fix="Write the answer as the option's text (or its letter), or fix the options.",
        example=_RL + '"choices": ["Man", "Woman"], "answer": "Child", "audios": ["a.wav"]}`',
    ),
)
def answer_not_a_choice(rec: Record) -> Iterator[Finding]:
    if rec.kind == "rl" and rec.choices and rec.answer is not None and rec.answer.strip() and rec.answer not in rec.choices:
        near = [c for c in rec.choices if c.strip().casefold() == rec.answer.strip().casefold()]
        hint = f" (differs from {near[0]!r} only in case or spaces)" if near else ""
        yield Finding("Q003", f"answer {rec.answer!r} is not one of the {len(rec.choices)} choices{hint}", "answer")


_NORM = re.compile(r"[^\w]+", re.UNICODE)
#: A non-multiple-choice answer is looked for in the prompt only from this length on (letters and digits): "yes",
#: "3" or "dog" turn up in honest prompts ("answer yes or no").
MIN_LEAK_CHARS = 8


def _norm(text: str) -> str:
    return " " + " ".join(_NORM.sub(" ", text.replace(AUDIO_MARKER, " ")).casefold().split()) + " "


def _leak_patterns(rec: Record) -> list[re.Pattern[str]]:
    """What gives a multiple-choice answer away: "answer: B", "correct answer is (B) Woman", "answer is Woman"."""
    assert rec.choices is not None and rec.answer is not None
    idx = rec.choices.index(rec.answer)
    letter = chr(ord("A") + idx)
    said = r"(?i:answer|solution)\s*(?i:is|:|=)\s*"
    return [
        re.compile(said + rf"\(?{letter}\)?(?!\w)"),
        re.compile(said + r"(?:\(?[A-Z]\)?\s*)?" + re.escape(rec.answer) + r"(?!\w)", re.IGNORECASE),
    ]


@record_rule(
    "Q004",
    "answer-in-prompt",
    W,
    "The reference answer is written in the prompt: the model can copy it, and the reward teaches nothing.",
    doc=RuleDoc(
        what="The prompt's text (system and turns) does not give the answer away. Multiple choice: no 'answer: B' / "
        "'the answer is <option>' in the prompt (the options themselves are of course listed). Other tasks: the "
        f"answer (from {MIN_LEAK_CHARS} letters and digits on, compared without case and punctuation) does not "
        "appear in the prompt as a whole phrase, as in 'Transcribe: hello world' with the answer 'hello world'.",
        why="GRPO rewards completions that match the answer; if the prompt holds it, the policy learns to copy text "
        "from its context, which says nothing about the audio (and inflates the reward curve).",
        fix="Remove the answer from the prompt (a template that pasted the reference in, a leftover few-shot example).",
        example=_RL.replace("Who is speaking?", "Transcribe. Reference: hello there world")
        + '"answer": "hello there world", "task": "asr", "audios": ["a.wav"]}`',
    ),
)
def answer_in_prompt(rec: Record) -> Iterator[Finding]:
    if rec.kind != "rl" or not rec.answer or not rec.answer.strip():
        return
    texts = [("system", rec.system or ""), *((m.field or f"messages[{i}]", m.content) for i, m in enumerate(rec.messages))]
    if rec.choices and rec.answer in rec.choices:
        patterns = _leak_patterns(rec)
        for fld, text in texts:
            if any(p.search(text) for p in patterns):
                yield Finding("Q004", "the prompt says which option is the answer", fld)
                return
        return
    needle = _norm(rec.answer)
    if len(needle.replace(" ", "")) < MIN_LEAK_CHARS:
        return
    for fld, text in texts:
        if needle in _norm(text):
            yield Finding("Q004", f"the prompt holds the answer {rec.answer[:60]!r}", fld)
            return


@record_rule(
    "Q005",
    "rl-reply-dropped",
    W,
    "The RL record carries a reply after its prompt (ms-swift GRPO rows may): GRPO discards it, and so does convert.",
    doc=RuleDoc(
        what="An `rl` record read with an assistant reply after its last user turn (or a `completion`).",
        why="GRPO generates the replies itself: ms-swift's GRPOTrainer removes a trailing assistant turn "
        "(`swift/utils/utils.py` `remove_response`) and TRL never reads one, so convert writes the prompt alone. If "
        "the reply was meant as the reference, it is lost unless it is also the `solution`/`answer`.",
        fix="Nothing, if the answer column holds the reference; otherwise move the reply to `solution`.",
        example='`{"messages": [{"role": "user", "content": "<audio>Who?"}, {"role": "assistant", "content": "A man"}], '
        '"solution": "A man", "audios": ["a.wav"]}`',
    ),
)
def reply_dropped(rec: Record) -> Iterator[Finding]:
    if rec.kind == "rl" and rec.completion:
        same = rec.answer is not None and [m.content.strip() for m in rec.completion] == [rec.answer.strip()]
        what = "it equals the answer" if same else "the answer column is the reference"
        yield Finding("Q005", f"a reply after the prompt is dropped, as GRPO drops it ({what})", "completion")


register(
    "Q006",
    "rl-field-malformed",
    E,
    "An RL field has the wrong type: answer/solution/ground_truth not a string or number, choices not a list of "
    "strings, meta not an object, or two answer columns that differ.",
    doc=RuleDoc(
        what="`answer` (`solution`, `reward_model.ground_truth`) is one string or number; `choices` a list of strings; "
        "`meta` an object (or its JSON text); when a row has both `answer` and `solution`, they are equal.",
        why="The output's `answer` column is one string that every reward function reads: a list of answers, or two "
        "columns that disagree, would leave the reward to guess which is meant.",
        fix="Write one answer as text (several acceptable answers: put them in `meta` for a reward of your own).",
        example='`{"prompt": [...], "solution": ["A", "B"], "audios": ["a.wav"]}`',
    ),
)
