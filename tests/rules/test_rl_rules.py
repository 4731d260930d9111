"""The RL reader's field rules and the Q rules on single records: letters, numbers, two answer columns, leaks.

(Every Q code also has its firing and quiet case through ``lint`` in tests/rules/test_lint_rules.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from audiodata.readers.dialects import parse_record
from audiodata.readers.dialects.common import ParseContext
from audiodata.readers.spec import DialectSpec
from audiodata.records import Record, SourceLoc
from audiodata.rules.engine import check_record
from audiodata.rules.registry import select


def read(obj: dict[str, Any]) -> tuple[Record | None, list[str]]:
    rec, found = parse_record(obj, ParseContext(DialectSpec(), SourceLoc("in.jsonl", 0, 1), "."))
    return rec, [f.code for f in found]


def q_codes(obj: dict[str, Any]) -> list[str]:
    rec, found = read(obj)
    if rec is None:
        return found
    return sorted(f.code for f in check_record(rec, select(["Q"])) if f.code.startswith("Q"))


def row(answer: Any = "Woman", prompt: str = "<audio>Who speaks?\n(A) Man\n(B) Woman", **extra: Any) -> dict[str, Any]:
    return {"prompt": [{"role": "user", "content": prompt}], "answer": answer, "audios": ["a.wav"], **extra}


@pytest.mark.parametrize(
    ("answer", "stored"),
    [("B", "Woman"), ("(B)", "Woman"), ("B.", "Woman"), ("Woman", "Woman"), ("C", "C"), ("b", "b")],
)
def test_a_letter_names_its_option(answer: str, stored: str) -> None:
    rec, found = read(row(answer, choices=["Man", "Woman"]))
    assert found == [] and rec is not None and rec.answer == stored and rec.task == "mcq"


def test_a_letter_that_is_an_option_stays_itself() -> None:
    rec, _ = read(row("B", choices=["A", "B", "C"]))
    assert rec is not None and rec.answer == "B"


def test_numbers_are_kept_as_their_json_text() -> None:
    rec, _ = read(row(3.5))
    assert rec is not None and rec.answer == "3.5" and rec.task == "qa"
    rec, _ = read(row(None, solution=12, ground_truth="12"))  # equal under two names: one answer
    assert rec is not None and rec.answer == "12"


def test_two_answer_columns_that_differ_are_refused() -> None:
    assert read(row("Woman", solution="Man"))[1] == ["Q006"]
    assert read(row("Woman", choices="Man, Woman"))[1] == ["Q006"]
    assert read(row("Woman", meta="not json"))[1] == ["S001"]


@pytest.mark.parametrize(
    ("prompt", "codes"),
    [
        ("<audio>Who speaks? (The answer is B.)\n(A) Man\n(B) Woman", ["Q004"]),
        ("<audio>Who speaks? Answer: (B) Woman\n(A) Man\n(B) Woman", ["Q004"]),
        ("<audio>Who speaks? answer is woman\n(A) Man\n(B) Woman", ["Q004"]),
        ("<audio>Who speaks? Answer with the letter.\n(A) Man\n(B) Woman", []),  # the options alone give nothing away
        ("<audio>Who speaks? The answer is A or B.\n(A) Man\n(B) Woman", []),  # A is not the answer's letter
    ],
)
def test_a_multiple_choice_leak_is_a_statement_of_the_answer(prompt: str, codes: list[str]) -> None:
    assert q_codes(row("Woman", prompt, choices=["Man", "Woman"])) == codes


def test_short_open_answers_are_not_looked_for_in_the_prompt() -> None:
    """'yes' in 'answer yes or no' is honest; a whole transcript in the prompt is not."""
    assert q_codes(row("yes", "<audio>Is it raining? Answer yes or no.")) == []
    assert q_codes(row("it is raining today", "<audio>Say what you hear: it is raining today.", task="asr")) == ["Q004"]
    assert q_codes(row("it is raining today", "<audio>Say what you hear.", system="Reference: It is raining today!")) == ["Q004"]


def test_unparseable_answers_by_task() -> None:
    assert q_codes(row("...", "<audio>Transcribe.", task="asr")) == ["Q002"]
    assert q_codes(row("...", "<audio>What punctuation ends it?", task="qa")) == []
    assert q_codes(row("Woman", choices=["Woman", "Man", "woman"])) == ["Q002"]  # the answer twice: two right letters
    assert q_codes(row("Woman", choices=["Woman", "Man", "Man"])) == []  # a repeated wrong option: one right letter
    assert q_codes(row("Woman", task="mcq")) == ["Q002"]  # mcq without options (and so no Q003)


def test_a_reply_kept_aside_is_reported_not_written() -> None:
    obj = {
        "messages": [{"role": "user", "content": "<audio>Who?"}, {"role": "assistant", "content": "A man"}],
        "solution": "A man",
        "audios": ["a.wav"],
    }
    rec, _ = read(obj)
    assert rec is not None and [m.role for m in rec.messages] == ["user"] and rec.completion is not None
    assert q_codes(obj) == ["Q005"]


def test_verl_rows_written_by_export_read_back_whole() -> None:
    """``extra_info.meta`` (what ``export --to verl`` writes) is the record's meta; the row's place is not."""
    obj = {
        "data_source": "audiodata",
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<audio>Who?"}],
        "ability": "mcq",
        "reward_model": {"style": "rule", "ground_truth": "Man"},
        "extra_info": {"index": 7, "split": "train", "id": "r1", "task": "mcq", "choices": ["Man", "Woman"],
                       "meta": '{"category": "speech"}'},
        "audios": ["a.wav"],
    }  # fmt: skip
    rec, found = read(obj)
    assert found == [] and rec is not None
    assert (rec.id, rec.system, rec.answer, rec.choices, rec.task, rec.meta) == (
        "r1", "Be brief.", "Man", ["Man", "Woman"], "mcq", {"category": "speech"},
    )  # fmt: skip
