"""Dialect parsers, dialect detection, audio reference classification, input expansion."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audiodata.pipeline.process import build_row
from audiodata.readers.dialects import detect, parse_record
from audiodata.readers.dialects.common import ParseContext, ParseError, audio_ref
from audiodata.readers.sources import InputError, expand, expand_inputs
from audiodata.readers.spec import DialectSpec
from audiodata.records import AudioRef, Record, SourceLoc
from audiodata.rules.engine import check_record
from audiodata.writer.schema import prompt_column

SRC = SourceLoc("corpus/part.jsonl", 7, 12)
B64 = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAAZGF0YQAAAAA" * 3  # >= 128 chars, no extension


def ctx(spec: DialectSpec | None = None, prompt: str | None = None, system: str | None = None) -> ParseContext:
    return ParseContext(spec or DialectSpec(), SRC, "/media/root", prompt, system)


def parse(obj, spec: DialectSpec | None = None, **kw) -> Record:
    rec, findings = parse_record(obj, ctx(spec, **kw))
    assert findings == [], findings
    assert rec is not None
    return rec


def parse_fail(obj, spec: DialectSpec | None = None) -> tuple[str, str]:
    rec, findings = parse_record(obj, ctx(spec))
    assert rec is None
    assert len(findings) == 1
    f = findings[0]
    assert f.source == SRC
    return f.code, f.field


def convo(rec: Record) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in rec.messages]


def pair(rec: Record) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return [(m.role, m.content) for m in rec.chosen or []], [(m.role, m.content) for m in rec.rejected or []]


def refs(rec: Record) -> list[tuple[str, str, str]]:
    return [(a.kind, a.value, a.field) for a in rec.audios]


# ---------------------------------------------------------------- record basics


def test_record_carries_source_media_root_and_generated_id():
    rec = parse({"audio": "a.wav", "text": "hi"})
    assert rec.source == SRC
    assert rec.media_root == "/media/root"
    assert rec.id == "part-000007"
    assert parse({"id": 17, "audio": "a.wav", "text": "hi"}).id == "17"
    assert parse({"id": "utt-1", "audio": "a.wav", "text": "hi"}).id == "utt-1"


def test_non_object_is_f002_and_unknown_keys_f003():
    assert parse_fail([1, 2]) == ("F002", "")
    assert parse_fail("text") == ("F002", "")
    assert parse_fail({"foo": 1, "bar": 2}) == ("F003", "")


# ---------------------------------------------------------------- minicpm


def test_minicpm_single_audio():
    rec = parse({"audio": "clips/a.wav", "text": "hello world"})
    assert rec.dialect == "minicpm" and rec.kind == "sft"
    assert convo(rec) == [("user", "<audio>"), ("assistant", "hello world")]
    assert refs(rec) == [("path", "clips/a.wav", "audio")]
    assert rec.system is None


def test_minicpm_audios_list_gets_one_marker_each():
    rec = parse({"audios": ["a.wav", "b.flac"], "text": "t"})
    assert convo(rec)[0] == ("user", "<audio><audio>")
    assert refs(rec) == [("path", "a.wav", "audios[0]"), ("path", "b.flac", "audios[1]")]


def test_minicpm_record_prompt_follows_the_markers():
    rec = parse({"audio": "a.wav", "text": "t", "prompt": "Transcribe."})
    assert convo(rec)[0] == ("user", "<audio>Transcribe.")


def test_minicpm_default_prompt_from_context_and_record_prompt_wins():
    assert convo(parse({"audio": "a.wav", "text": "t"}, prompt="Say it."))[0] == ("user", "<audio>Say it.")
    rec = parse({"audio": "a.wav", "text": "t", "prompt": "Own."}, prompt="Say it.")
    assert convo(rec)[0] == ("user", "<audio>Own.")


def test_minicpm_prompt_with_its_own_markers_is_used_as_written():
    rec = parse({"audios": ["a.wav", "b.wav"], "text": "same", "prompt": "Compare <audio> with <audio>."})
    assert convo(rec)[0] == ("user", "Compare <audio> with <audio>.")
    assert check_record(rec) == []


def test_minicpm_system_from_record_or_context():
    assert parse({"audio": "a.wav", "text": "t", "system": "S"}).system == "S"
    assert parse({"audio": "a.wav", "text": "t"}, system="Default").system == "Default"
    assert parse({"audio": "a.wav", "text": "t", "system": "S"}, system="Default").system == "S"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"audio": "a.wav", "text": 3}, "text"),
        ({"audio": None, "text": "t"}, "audio"),
        ({"audio": "a.wav", "text": "t", "prompt": 5}, "prompt"),
        ({"audio": 12, "text": "t"}, "audio"),
    ],
)
def test_minicpm_type_errors(obj, field):
    assert parse_fail(obj, DialectSpec(formatting="minicpm")) == ("S001", field)


# ---------------------------------------------------------------- sharegpt


def test_sharegpt_leading_system_turn_moves_to_system():
    obj = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "<audio>What is said?"},
            {"from": "gpt", "value": "Hello."},
        ],
        "system": "column system loses",
        "audios": ["a.wav"],
    }
    rec = parse(obj)
    assert rec.dialect == "sharegpt" and rec.kind == "sft"
    assert rec.system == "Be brief."
    assert convo(rec) == [("user", "<audio>What is said?"), ("assistant", "Hello.")]
    assert [m.field for m in rec.messages] == ["conversations[1].value", "conversations[2].value"]
    assert refs(rec) == [("path", "a.wav", "audios[0]")]


def test_sharegpt_system_column_and_tools():
    obj = {
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
        "system": "Sys",
        "tools": [{"name": "f"}],
    }
    rec = parse(obj)
    assert rec.system == "Sys"
    assert json.loads(rec.tools) == [{"name": "f"}]


def test_sharegpt_multi_turn_with_tool_roles():
    obj = {
        "conversations": [
            {"from": "human", "value": "<audio>q1"},
            {"from": "function_call", "value": '{"name": "f"}'},
            {"from": "observation", "value": "42"},
            {"from": "gpt", "value": "a1"},
            {"from": "human", "value": "<audio>q2"},
            {"from": "gpt", "value": "a2"},
        ],
        "audios": ["a.wav", "b.wav"],
    }
    rec = parse(obj)
    assert [m.role for m in rec.messages] == ["user", "function_call", "tool", "assistant", "user", "assistant"]
    assert check_record(rec) == []


def test_sharegpt_ranking_with_chosen_and_rejected_objects():
    obj = {
        "conversations": [{"from": "human", "value": "<audio>Which?"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
        "audios": ["a.wav"],
    }
    rec = parse(obj)
    assert rec.kind == "dpo"
    assert convo(rec) == [("user", "<audio>Which?")]
    assert pair(rec) == ([("assistant", "good")], [("assistant", "bad")])
    assert [rec.chosen[0].field, rec.rejected[0].field] == ["chosen.value", "rejected.value"]
    assert check_record(rec) == []


def test_sharegpt_ranking_needs_message_objects():
    obj = {"conversations": [{"from": "human", "value": "q"}], "chosen": "good", "rejected": {"from": "gpt", "value": "b"}}
    assert parse_fail(obj) == ("S001", "chosen")
    obj = {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "g"}}
    assert parse_fail(obj) == ("S001", "rejected")


# The two entries of sample_data/llamafactory/dataset_info.json, as expand() builds them.
LF_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}


def test_sharegpt_dataset_info_tags_and_columns():
    spec = DialectSpec(formatting="sharegpt", tags=LF_TAGS, columns={"messages": "messages", "audios": "audios"})
    obj = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "<audio>q"},
            {"role": "assistant", "content": "a"},
        ],
        "audios": ["media/x.flac"],
    }
    rec = parse(obj, spec)
    assert rec.dialect == "sharegpt"
    assert rec.system == "S"
    assert convo(rec) == [("user", "<audio>q"), ("assistant", "a")]
    assert refs(rec) == [("path", "media/x.flac", "audios[0]")]


def test_sharegpt_dataset_info_ranking_entry():
    spec = DialectSpec(
        formatting="sharegpt",
        ranking=True,
        tags=LF_TAGS,
        columns={"messages": "messages", "chosen": "chosen", "rejected": "rejected", "audios": "audios"},
    )
    obj = {
        "messages": [{"role": "user", "content": "<audio>q"}],
        "chosen": {"role": "assistant", "content": "c"},
        "rejected": {"role": "assistant", "content": "r"},
        "audios": ["a.wav"],
    }
    rec = parse(obj, spec)
    assert rec.kind == "dpo"
    assert pair(rec) == ([("assistant", "c")], [("assistant", "r")])
    assert rec.chosen[0].field == "chosen.content"


def test_sharegpt_fully_custom_tags_and_columns():
    spec = DialectSpec(
        formatting="sharegpt",
        tags={"role_tag": "speaker", "content_tag": "said", "user_tag": "customer", "assistant_tag": "agent"},
        columns={"messages": "dialog", "audios": "clips", "system": "persona"},
    )
    obj = {
        "dialog": [{"speaker": "customer", "said": "<audio>help"}, {"speaker": "agent", "said": "sure"}],
        "clips": ["c.wav"],
        "persona": "P",
        "audios": ["ignored.wav"],
    }
    rec = parse(obj, spec)
    assert convo(rec) == [("user", "<audio>help"), ("assistant", "sure")]
    assert [m.field for m in rec.messages] == ["dialog[0].said", "dialog[1].said"]
    assert refs(rec) == [("path", "c.wav", "clips[0]")]
    assert rec.system == "P"
    # With custom tags, the default tags are not read.
    assert parse_fail({"dialog": [{"from": "human", "value": "x"}]}, spec) == ("S001", "dialog[0].speaker")


def test_sharegpt_tag_outside_the_custom_map_is_kept_and_flagged():
    spec = DialectSpec(formatting="sharegpt", tags={"user_tag": "customer", "assistant_tag": "agent"})
    rec = parse({"conversations": [{"from": "human", "value": "q"}, {"from": "agent", "value": "a"}]}, spec)
    assert convo(rec) == [("human", "q"), ("assistant", "a")]
    assert [(f.code, f.field) for f in check_record(rec) if f.code == "S002"] == [("S002", "conversations[0].value")]


def test_sharegpt_unknown_role_is_kept_so_s002_fires():
    rec = parse({"conversations": [{"from": "human", "value": "q"}, {"from": "narrator", "value": "a"}]})
    assert convo(rec) == [("user", "q"), ("narrator", "a")]
    s002 = [f for f in check_record(rec) if f.code == "S002"]
    assert [(f.field, f.source) for f in s002] == [("conversations[1].value", SRC)]
    assert "narrator" in s002[0].message


def test_sharegpt_accepts_role_content_turns_without_tags():
    rec = parse({"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    assert convo(rec) == [("user", "q"), ("assistant", "a")]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 5}]}, "conversations[1].value"),
        ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]}, "conversations[1].value"),
        ({"conversations": [{"from": "human", "value": "q"}, {"from": 3, "value": "a"}]}, "conversations[1].from"),
        ({"conversations": [{"from": "human", "value": "q"}, "gpt: a"]}, "conversations[1]"),
        ({"conversations": {"from": "human", "value": "q"}}, "conversations"),
        ({"conversations": [{"from": "human", "value": "q"}], "audios": [5]}, "audios[0]"),
        ({"conversations": [{"from": "human", "value": [{"type": "bogus"}]}]}, "conversations[0].value[0].type"),
    ],
)
def test_sharegpt_wrong_types_are_s001_at_the_field(obj, field):
    assert parse_fail(obj) == ("S001", field)


# ---------------------------------------------------------------- alpaca


def test_alpaca_instruction_and_input_joined_with_newline():
    rec = parse({"instruction": "Transcribe <audio>", "input": "in English", "output": "hi", "audios": ["a.wav"]})
    assert rec.dialect == "alpaca" and rec.kind == "sft"
    assert convo(rec) == [("user", "Transcribe <audio>\nin English"), ("assistant", "hi")]
    assert [m.field for m in rec.messages] == ["instruction", "output"]


@pytest.mark.parametrize(("instruction", "input_", "user"), [("Do it", "", "Do it"), ("", "only input", "only input")])
def test_alpaca_empty_parts_are_skipped(instruction, input_, user):
    rec = parse({"instruction": instruction, "input": input_, "output": "o"})
    assert convo(rec)[0] == ("user", user)


def test_alpaca_history_pairs_come_first():
    obj = {"instruction": "q2", "output": "a2", "history": [["q0", "a0"], ["q1", "a1"]], "system": "S"}
    rec = parse(obj)
    assert convo(rec) == [
        ("user", "q0"),
        ("assistant", "a0"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
    ]
    assert [m.field for m in rec.messages[:2]] == ["history[0][0]", "history[0][1]"]
    assert rec.system == "S"
    assert check_record(rec) == []


def test_alpaca_dpo_strings():
    rec = parse({"instruction": "<audio>Which?", "input": "", "chosen": "good", "rejected": "bad", "audios": ["a.wav"]})
    assert rec.kind == "dpo"
    assert convo(rec) == [("user", "<audio>Which?")]
    assert pair(rec) == ([("assistant", "good")], [("assistant", "bad")])
    assert check_record(rec) == []


def test_alpaca_custom_columns():
    spec = DialectSpec(formatting="alpaca", columns={"prompt": "question", "response": "answer", "audios": "sound"})
    rec = parse({"question": "<audio>q", "answer": "a", "sound": "s.wav"}, spec)
    assert convo(rec) == [("user", "<audio>q"), ("assistant", "a")]
    assert refs(rec) == [("path", "s.wav", "sound")]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"instruction": "q", "output": "a", "history": [["only one"]]}, "history[0]"),
        ({"instruction": "q", "output": "a", "history": [["q", 1]]}, "history[0]"),
        ({"instruction": "q", "output": "a", "history": "q"}, "history"),
        ({"instruction": "q", "output": 1}, "output"),
        ({"instruction": 5, "output": "a"}, "instruction"),
        ({"instruction": "q", "chosen": "c", "rejected": ["r"]}, "rejected"),
        ({"instruction": "q", "chosen": "c"}, "rejected"),
    ],
)
def test_alpaca_type_errors(obj, field):
    assert parse_fail(obj) == ("S001", field)


# ---------------------------------------------------------------- messages


def test_messages_sft_with_audios_list_and_system_turn():
    obj = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "<audio>q"},
            {"role": "assistant", "content": "a"},
        ],
        "audios": ["a.wav"],
    }
    rec = parse(obj)
    assert rec.dialect == "messages" and rec.kind == "sft"
    assert rec.system == "S"
    assert convo(rec) == [("user", "<audio>q"), ("assistant", "a")]


def test_messages_ms_swift_rejected_response_is_dpo():
    obj = {
        "messages": [{"role": "user", "content": "<audio>q"}, {"role": "assistant", "content": "good"}],
        "rejected_response": "bad",
        "audios": ["a.wav"],
    }
    rec = parse(obj)
    assert rec.kind == "dpo"
    assert convo(rec) == [("user", "<audio>q")]
    assert pair(rec) == ([("assistant", "good")], [("assistant", "bad")])
    assert [rec.chosen[0].field, rec.rejected[0].field] == ["messages[1].content", "rejected_response"]
    assert check_record(rec) == []


def test_messages_trl_prompt_chosen_rejected():
    obj = {
        "prompt": [{"role": "user", "content": "<audio>q"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
        "audios": ["a.wav"],
    }
    assert detect(obj) == "messages"
    rec = parse(obj)
    assert rec.kind == "dpo"
    assert convo(rec) == [("user", "<audio>q")]
    assert pair(rec) == ([("assistant", "good")], [("assistant", "bad")])
    assert [rec.messages[0].field, rec.chosen[0].field, rec.rejected[0].field] == [
        "prompt[0].content",
        "chosen[0].content",
        "rejected[0].content",
    ]


def test_messages_trl_string_responses():
    obj = {"messages": [{"role": "user", "content": "q"}], "chosen": "good", "rejected": {"role": "assistant", "content": "bad"}}
    rec = parse(obj)
    assert pair(rec) == ([("assistant", "good")], [("assistant", "bad")])


def test_messages_content_list_audio_items_become_markers_in_place():
    obj = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "First "},
                    {"type": "audio", "audio": "one.wav"},
                    {"type": "text", "text": " then "},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}},
                    {"type": "audio", "path": "three.flac"},
                    "!",
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        ]
    }
    rec = parse(obj)
    assert convo(rec) == [("user", "First <audio> then <audio><audio>!"), ("assistant", "ok")]
    assert refs(rec) == [
        ("path", "one.wav", "messages[0].content[1].audio"),
        ("base64", "AAAA", "messages[0].content[3].input_audio.data"),
        ("path", "three.flac", "messages[0].content[4].path"),
    ]
    assert rec.audios[1].name == "input.mp3"
    assert check_record(rec) == []


def test_messages_image_and_video_items_become_their_markers():
    obj = {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "video_url"}]},
            {"role": "assistant", "content": "a"},
        ]
    }
    assert convo(parse(obj))[0] == ("user", "<image><video>")


def test_messages_value_less_audio_items_take_the_audios_list():
    obj = {
        "messages": [
            {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": " and "}, {"type": "audio"}]},
            {"role": "assistant", "content": "a"},
        ],
        "audios": ["x.wav", "y.wav"],
    }
    rec = parse(obj)
    assert convo(rec)[0] == ("user", "<audio> and <audio>")
    assert refs(rec) == [("path", "x.wav", "audios[0]"), ("path", "y.wav", "audios[1]")]


def test_messages_audio_both_inline_and_listed_is_s001():
    obj = {
        "messages": [{"role": "user", "content": [{"type": "audio", "path": "in.wav"}]}, {"role": "assistant", "content": "a"}],
        "audios": ["listed.wav"],
    }
    code, field = parse_fail(obj)
    assert code == "S001"
    assert field == "messages"


# ms-swift's forms (docs/source_en/Customization/Custom-dataset.md in ms-swift; core.py / template_inputs.py lines
# are those of the installed ms-swift 4.6.0 wheel). tests/export/test_peer_msswift.py runs ms-swift's own code on them.

USER, GOOD, BAD = {"role": "user", "content": "<audio>What is said?"}, "Hello.", "Goodbye."


def swift_row(**extra) -> dict:
    return {"messages": [USER, {"role": "assistant", "content": GOOD}], "audios": ["a.wav"], **extra}


def rejected(*turns_: dict, reply: str = BAD) -> list[dict]:
    return [*(turns_ or (USER,)), {"role": "assistant", "content": reply}]


def test_messages_audios_as_one_string_is_one_clip():
    rec = parse({"messages": [USER, {"role": "assistant", "content": GOOD}], "audios": "a.wav"})
    assert refs(rec) == [("path", "a.wav", "audios")]
    assert check_record(rec) == []


def test_messages_rejected_messages_with_the_same_prompt_and_audios_is_a_pair():
    rec = parse(swift_row(rejected_messages=rejected(), rejected_audios="a.wav"))
    assert rec.kind == "dpo"
    assert convo(rec) == [("user", "<audio>What is said?")]
    assert pair(rec) == ([("assistant", GOOD)], [("assistant", BAD)])
    assert [rec.chosen[0].field, rec.rejected[0].field] == ["messages[1].content", "rejected_messages[1].content"]
    assert refs(rec) == [("path", "a.wav", "audios[0]")]
    assert check_record(rec) == []


def test_messages_rejected_messages_system_turns_and_inline_audio_compare_as_ms_swift_reads_them():
    system = {"role": "system", "content": "Be brief."}
    inline = {"role": "user", "content": [{"type": "audio", "audio": "a.wav"}, {"type": "text", "text": "What is said?"}]}
    obj = {
        "messages": [system, inline, {"role": "assistant", "content": GOOD}],
        "rejected_messages": [system, USER, {"role": "assistant", "content": BAD}],
        "rejected_audios": ["a.wav"],
    }
    rec = parse(obj)
    assert rec.system == "Be brief." and rec.kind == "dpo"
    assert pair(rec) == ([("assistant", GOOD)], [("assistant", BAD)])


_DIFFERS = "ms-swift rows whose prompts differ are not a preference pair audiodata can store"


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        (  # another question on the rejected side
            {"rejected_messages": rejected({"role": "user", "content": "<audio>Who speaks?"}), "rejected_audios": ["a.wav"]},
            "rejected_messages[0].content",
            f"rejected_messages[0].content differs from messages[0].content: {_DIFFERS}",
        ),
        (  # an extra turn before the reply
            {"rejected_messages": rejected(USER, {"role": "assistant", "content": "Hm?"}, USER), "rejected_audios": ["a.wav"]},
            "rejected_messages",
            "rejected_messages has 3 turns before its reply, messages 1",
        ),
        (  # no rejected_audios: ms-swift gives the rejected side no audio at all
            {"rejected_messages": rejected()},
            "rejected_audios",
            "rejected_audios is missing",
        ),
        (  # another clip
            {"rejected_messages": rejected(), "rejected_audios": ["b.wav"]},
            "rejected_audios[0]",
            "rejected_audios[0] differs from audios[0]",
        ),
        (  # the system column reaches messages only
            {"system": "Be brief.", "rejected_messages": rejected(), "rejected_audios": ["a.wav"]},
            "rejected_messages",
            "the row's system column applies to messages only",
        ),
        (  # tools given to one side only
            {"tools": "[]", "rejected_messages": rejected(), "rejected_audios": ["a.wav"]},
            "rejected_tools",
            "rejected_tools is missing",
        ),
        (  # the rejected conversation does not end on a reply
            {"rejected_messages": [USER], "rejected_audios": ["a.wav"]},
            "rejected_messages[0].role",
            "rejected_messages must end on the assistant reply",
        ),
        (  # both forms at once: ms-swift silently keeps rejected_response
            {"rejected_messages": rejected(), "rejected_audios": ["a.wav"], "rejected_response": BAD},
            "rejected_response",
            "both rejected_messages and rejected_response",
        ),
        (  # ms-swift deletes a row whose rejected_response is the chosen reply (core.py:159-161)
            {"rejected_response": GOOD},
            "rejected_response",
            "rejected_response equals the chosen reply (messages[1].content): ms-swift deletes such rows",
        ),
        (  # ... and the list form of it (template_inputs.py:240-246)
            {"rejected_response": [{"role": "assistant", "content": GOOD}]},
            "rejected_response",
            "rejected_response equals the chosen reply",
        ),
        (  # other audio for the rejected side of a rejected_response row
            {"rejected_response": BAD, "rejected_audios": "b.wav"},
            "rejected_audios",
            "rejected_audios differs from audios",
        ),
        (  # a pair that differs only in its audio
            {"rejected_audios": ["b.wav"]},
            "rejected_audios",
            "rejected_audios without rejected_response or rejected_messages",
        ),
        (  # template_inputs.py:233-236 refuses a user turn in rejected_response
            {"rejected_response": [{"role": "user", "content": "again?"}, {"role": "assistant", "content": BAD}]},
            "rejected_response[0].role",
            "a user turn in rejected_response",
        ),
    ],
)
def test_messages_swift_rows_that_are_no_pair_are_s010_with_the_reason(extra, field, says):
    rec, findings = parse_record(swift_row(**extra), ctx())
    assert rec is None
    assert [(f.code, f.field) for f in findings] == [("S010", field)]
    assert says in findings[0].message and findings[0].source == SRC


def test_messages_rejected_response_replaces_the_turns_after_the_last_user_turn():
    """ms-swift's agent DPO form: the tool call and its result belong to the chosen reply, so the rejected
    side skips them (template_inputs.py:225-247); audiodata pairs cannot hold tool results: S010, located."""
    obj = {
        "messages": [
            USER,
            {"role": "tool_call", "content": '{"name": "f"}'},
            {"role": "tool_response", "content": "42"},
            {"role": "assistant", "content": GOOD},
        ],
        "audios": ["a.wav"],
        "rejected_response": BAD,
    }
    rec, findings = parse_record(obj, ctx())
    assert rec is None and [(f.code, f.field) for f in findings] == [("S010", "messages[2].role")]
    assert "(tool_response) included" in findings[0].message
    # a tool call as the whole reply is a pair; a multi-turn prompt keeps its earlier replies
    obj["messages"] = [USER, {"role": "assistant", "content": "Hm?"}, USER, {"role": "tool_call", "content": '{"name": "f"}'}]
    obj["audios"] = ["a.wav", "a.wav"]
    rec = parse(obj)
    assert convo(rec) == [("user", USER["content"]), ("assistant", "Hm?"), ("user", USER["content"])]
    assert pair(rec) == ([("function_call", '{"name": "f"}')], [("assistant", BAD)])
    assert check_record(rec) == []


def test_messages_rejected_response_list_repeating_the_tool_turns_keeps_them_in_the_prompt():
    call, result = {"role": "tool_call", "content": '{"name": "f"}'}, {"role": "tool_response", "content": "42"}
    obj = swift_row(rejected_response=[call, result, {"role": "assistant", "content": BAD}])
    obj["messages"] = [USER, call, result, {"role": "assistant", "content": GOOD}]
    rec = parse(obj)
    assert convo(rec) == [("user", USER["content"]), ("function_call", call["content"]), ("tool", "42")]
    assert pair(rec) == ([("assistant", GOOD)], [("assistant", BAD)])
    assert rec.rejected[0].field == "rejected_response[2].content"
    assert check_record(rec) == []


def test_messages_ms_swift_role_spellings_map_like_ms_swift():
    """core.py:497-500, 541-550: function_call/function-call -> tool_call, observation(s)/function_response -> tool_response."""
    for raw, role in [("function-call", "function_call"), ("observations", "tool"), ("function_response", "tool")]:
        obj = {"messages": [USER, {"role": raw, "content": "x"}, {"role": "assistant", "content": GOOD}], "audios": ["a.wav"]}
        assert parse(obj).messages[1].role == role


def test_messages_openai_formatting_is_the_messages_dialect():
    obj = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert parse(obj, DialectSpec(formatting="openai")).dialect == "messages"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"messages": [{"role": "user", "content": 1}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "audio", "audio": 9}]}]}, "messages[0].content[0].audio"),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected_response": 2},
            "rejected_response",
        ),
        ({"messages": [{"role": "user", "content": "q"}], "chosen": "c"}, "rejected"),
        ({"messages": [{"content": "q"}]}, "messages[0].role"),
    ],
)
def test_messages_type_errors(obj, field):
    assert parse_fail(obj, DialectSpec(formatting="messages")) == ("S001", field)


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("obj", "dialect"),
    [
        ({"audio": "a.wav", "text": "t"}, "minicpm"),
        ({"audios": ["a.wav"], "text": "t"}, "minicpm"),
        ({"conversations": []}, "sharegpt"),
        ({"messages": [{"from": "human", "value": "q"}]}, "sharegpt"),
        ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
        ({"prompt": [{"role": "user", "content": "q"}], "chosen": [], "rejected": []}, "messages"),
        ({"instruction": "q", "output": "a"}, "alpaca"),
        ({"input": "q", "chosen": "c", "rejected": "r"}, "alpaca"),
        ({"input": "q", "audios": ["a.wav"]}, "alpaca"),
        ({"text": "no audio"}, None),
        ({"audio": "a.wav"}, None),
    ],
)
def test_detect(obj, dialect):
    assert detect(obj) == dialect


def test_forced_formatting_overrides_detection():
    obj = {"conversations": [{"from": "human", "value": "q"}], "instruction": "i", "output": "o"}
    assert parse(obj).dialect == "sharegpt"
    assert parse(obj, DialectSpec(formatting="alpaca")).dialect == "alpaca"


# ---------------------------------------------------------------- canonical shape

SAMPLES = [
    {"audio": "a.wav", "text": "t"},
    {
        "conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "<audio>"}, {"from": "gpt", "value": "a"}],
        "audios": ["a.wav"],
    },
    {
        "conversations": [{"from": "human", "value": "<audio>"}],
        "chosen": {"from": "gpt", "value": "c"},
        "rejected": {"from": "gpt", "value": "r"},
        "audios": ["a"],
    },
    {"instruction": "<audio>", "input": "x", "output": "o", "history": [["h", "a"]], "audios": ["a.wav"]},
    {"instruction": "<audio>", "chosen": "c", "rejected": "r", "audios": ["a.wav"]},
    {"messages": [{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}]}, {"role": "assistant", "content": "a"}]},
    {
        "prompt": [{"role": "user", "content": "<audio>"}],
        "chosen": [{"role": "assistant", "content": "c"}],
        "rejected": "r",
        "audios": ["a.wav"],
    },
]


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: "-".join(sorted(o))[:40])
def test_canonical_message_dicts_have_exactly_role_and_content(obj):
    rec = parse(obj)
    turns = rec.messages + (rec.chosen or []) + (rec.rejected or [])
    for m in turns:
        d = m.to_dict()
        assert set(d) == {"role", "content"}
        assert isinstance(d["role"], str) and isinstance(d["content"], str)
    row = build_row(rec, [], "flac")
    for key in ("messages", "prompt", "chosen", "rejected", "completion"):
        for d in row.get(key, []):
            assert set(d) == {"role", "content"}
    assert all(m["role"] != "system" for m in row[prompt_column(rec.kind)])
    assert check_record(rec) == []


# ---------------------------------------------------------------- audio refs


@pytest.mark.parametrize(
    ("value", "kind", "stored", "field", "name"),
    [
        ("clips/a.wav", "path", "clips/a.wav", "audios[0]", None),
        ("/abs/a.flac", "path", "/abs/a.flac", "audios[0]", None),
        ("file:///abs/a.wav", "path", "/abs/a.wav", "audios[0]", None),
        ("data:audio/wav;base64,UklGRg==", "data_uri", "data:audio/wav;base64,UklGRg==", "audios[0]", None),
        (B64, "base64", B64, "audios[0]", None),
        ("x" * 200 + "/long_name.wav", "path", "x" * 200 + "/long_name.wav", "audios[0]", None),
        ("http://host/a.wav", "url", "http://host/a.wav", "audios[0]", None),
        ("https://host/a.wav?x=1", "url", "https://host/a.wav?x=1", "audios[0]", None),
        ("s3://bucket/a.wav", "url", "s3://bucket/a.wav", "audios[0]", None),
        ({"bytes": B64, "path": "orig.wav"}, "base64", B64, "audios[0].bytes", "orig.wav"),
        (
            {"bytes": "data:audio/flac;base64,ZkxhQw==", "path": None},
            "data_uri",
            "data:audio/flac;base64,ZkxhQw==",
            "audios[0].bytes",
            None,
        ),
        ({"bytes": [82, 73, 70, 70]}, "bytes", b"RIFF", "audios[0].bytes", None),
        ({"bytes": None, "path": "p.wav"}, "path", "p.wav", "audios[0].path", None),
        ({"path": "p.wav"}, "path", "p.wav", "audios[0].path", None),
        ({"url": "https://h/a.wav"}, "url", "https://h/a.wav", "audios[0].url", None),
        (
            {"audio_url": {"url": "data:audio/wav;base64,AAAA"}},
            "data_uri",
            "data:audio/wav;base64,AAAA",
            "audios[0].audio_url",
            None,
        ),
        ({"data": "AAAA", "format": "mp3"}, "base64", "AAAA", "audios[0].data", "input.mp3"),
        ({"data": "AAAA"}, "base64", "AAAA", "audios[0].data", "input.wav"),
    ],
)
def test_audio_ref_classification(value, kind, stored, field, name):
    ref = audio_ref(value, "audios[0]")
    assert (ref.kind, ref.value, ref.field, ref.name) == (kind, stored, field, name)


def test_audio_ref_array():
    ref = audio_ref({"array": [0.0, 0.5, -0.5], "sampling_rate": 8000}, "audios[2]")
    assert (ref.kind, ref.value, ref.sampling_rate, ref.field) == ("array", [0.0, 0.5, -0.5], 8000, "audios[2]")
    assert ref.origin() == "inline"


def test_audio_ref_origin():
    assert audio_ref("a/b.wav", "f").origin() == "a/b.wav"
    assert audio_ref("https://h/x.wav", "f").origin() == "https://h/x.wav"
    assert audio_ref(B64, "f").origin() == "inline"
    assert AudioRef("bytes", b"x", "f").origin() == "inline"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("   ", "audios[0]"),
        (5, "audios[0]"),
        ({"array": [0.1], "sampling_rate": 0}, "audios[0]"),
        ({"array": [0.1], "sampling_rate": True}, "audios[0]"),
        ({"array": "0.1", "sampling_rate": 16000}, "audios[0]"),
        ({"bytes": 7}, "audios[0].bytes"),
        ({"bytes": [300, 1]}, "audios[0].bytes"),
        ({"name": "x"}, "audios[0]"),
    ],
)
def test_audio_ref_invalid(value, field):
    with pytest.raises(ParseError) as exc:
        audio_ref(value, "audios[0]")
    assert (exc.value.code, exc.value.field) == ("S001", field)


# ---------------------------------------------------------------- sources.expand


def touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def shown(files) -> list[str]:
    return [f.display for f in files]


def test_expand_folder_sorted_recursive_skipping_hidden_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for p in ["data/b.jsonl", "data/a.json", "data/sub/z.jsonl", "data/sub/c.json.gz", "data/sub/deep/d.jsonl.gz",
              "data/.hidden/h.json", "data/.git/x.jsonl", "data/notes.txt", "data/sub/readme.md"]:  # fmt: skip
        touch(tmp_path / p)
    files = expand(["data"])
    # Each folder's files in name order, then its subfolders in name order.
    assert shown(files) == ["data/a.json", "data/b.jsonl", "data/sub/c.json.gz", "data/sub/z.jsonl", "data/sub/deep/d.jsonl.gz"]
    assert [f.media_root for f in files] == ["data", "data", "data/sub", "data/sub", "data/sub/deep"]
    assert all(f.spec == DialectSpec() for f in files)
    assert shown(expand(["data"])) == shown(files)  # stable


def test_expand_media_root_and_formatting_apply_to_plain_files(tmp_path):
    touch(tmp_path / "d" / "x.jsonl")
    [f] = expand([str(tmp_path / "d" / "x.jsonl")], media_root="/m", formatting="alpaca")
    assert f.media_root == "/m"
    assert f.spec.formatting == "alpaca"
    assert f.path == tmp_path / "d" / "x.jsonl"


def test_expand_glob(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for p in ["g/a.jsonl", "g/b.json", "g/sub/c.jsonl", "g/sub/d.txt"]:
        touch(tmp_path / p)
    assert shown(expand(["g/**/*.jsonl"])) == ["g/a.jsonl", "g/sub/c.jsonl"]
    assert shown(expand(["g/*"])) == ["g/a.jsonl", "g/b.json"]  # folders and non-JSON matches are skipped


def test_expand_same_file_twice_is_read_once(tmp_path):
    p = touch(tmp_path / "a.jsonl")
    assert len(expand([str(p), str(tmp_path), str(tmp_path / "*.jsonl")])) == 1


def make_lf(root: Path) -> Path:
    """A LLaMA-Factory dataset_dir: two file entries, a folder entry, a hub entry, an extra file."""
    lf = root / "lf"
    touch(lf / "chat.json", "[]")
    touch(lf / "rank.json", "[]")
    touch(lf / "parts" / "p1.jsonl")
    touch(lf / "parts" / "p2.jsonl")
    touch(lf / "extra.jsonl")
    info = {
        "chat": {"file_name": "chat.json", "formatting": "sharegpt", "tags": LF_TAGS, "columns": {"messages": "messages"}},
        "rank": {
            "file_name": "rank.json",
            "ranking": True,
            "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"},
        },
        "parts": {"file_name": "parts", "formatting": "sharegpt"},
        "hub": {"hf_hub_url": "org/name"},
    }
    touch(lf / "dataset_info.json", json.dumps(info))
    return lf


def test_expand_folder_holding_dataset_info(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub entry is read through the Hub: offline and not cached here
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    lf = make_lf(tmp_path)
    got = expand_inputs([str(tmp_path)])
    files = got.files
    rel = [os.path.relpath(f.path, tmp_path) for f in files]
    # exactly the files the dataset_info.json names; the others are reported, not read
    assert sorted(rel) == sorted(["lf/chat.json", "lf/rank.json", "lf/parts/p1.jsonl", "lf/parts/p2.jsonl"])
    assert [(s.code, s.source, s.entry) for s in got.skipped] == [  # typed absolute: named from the folder's own name
        ("F006", os.path.join(tmp_path.name, "lf", "dataset_info.json"), "hub"),
        ("F007", os.path.join(tmp_path.name, "lf", "extra.jsonl"), ""),
    ]
    assert "not read: hf://org/name: not in the local Hugging Face cache" in got.skipped[0].reason
    assert "--all-files" in got.skipped[1].reason
    every = expand([str(tmp_path)], all_files=True)
    rel = [os.path.relpath(f.path, tmp_path) for f in every]
    assert sorted(rel) == sorted(["lf/chat.json", "lf/rank.json", "lf/parts/p1.jsonl", "lf/parts/p2.jsonl", "lf/extra.jsonl"])
    assert len(set(rel)) == len(rel)  # not read twice
    files = every
    by = {os.path.relpath(f.path, tmp_path): f for f in files}
    chat, rank, p1 = by["lf/chat.json"], by["lf/rank.json"], by["lf/parts/p1.jsonl"]
    assert (chat.spec.name, chat.spec.formatting, chat.spec.tags, chat.spec.columns) == (
        "chat",
        "sharegpt",
        LF_TAGS,
        {"messages": "messages"},
    )
    assert (rank.spec.name, rank.spec.formatting, rank.spec.ranking) == ("rank", "alpaca", True)
    assert (p1.spec.name, p1.spec.tags) == ("parts", {})
    for f in (chat, rank, p1, by["lf/parts/p2.jsonl"]):
        assert f.media_root == str(lf)  # the dataset_dir, also for files in its subfolders
    assert by["lf/extra.jsonl"].spec.name is None


def test_expand_dataset_info_given_directly_with_filter(tmp_path):
    lf = make_lf(tmp_path)
    files = expand([str(lf / "dataset_info.json")], datasets=["rank", "parts"])
    assert [os.path.relpath(f.path, lf) for f in files] == ["rank.json", "parts/p1.jsonl", "parts/p2.jsonl"]
    assert [f.spec.name for f in files] == ["rank", "parts", "parts"]
    assert all(f.media_root == str(lf) for f in files)
    assert files[1].display == os.path.join("parts", "p1.jsonl")  # typed absolute: relative to the dataset_info.json
    # An explicit --media-root still wins.
    assert {f.media_root for f in expand([str(lf / "dataset_info.json")], media_root="/m")} == {"/m"}


def test_expand_folder_with_dataset_filter_reads_only_that_entry(tmp_path):
    lf = make_lf(tmp_path)
    rel = [os.path.relpath(f.path, lf) for f in expand([str(lf)], datasets=["chat"])]
    assert "chat.json" in rel
    assert not {"rank.json", "parts/p1.jsonl", "parts/p2.jsonl"} & set(rel)


def test_expand_dataset_info_unknown_entry_is_input_error(tmp_path):
    lf = make_lf(tmp_path)
    with pytest.raises(InputError, match="no dataset entry named nope"):
        expand([str(lf / "dataset_info.json")], datasets=["nope"])


@pytest.mark.parametrize(
    ("info", "match"),
    [
        ("{not json", "cannot read"),
        ("[]", "must be an object"),
        ('{"x": {"file_name": "missing.json"}}', "does not exist"),
        ('{"x": {"file_name": "a.json", "formatting": "weird"}}', "unknown formatting"),
    ],
)
def test_expand_bad_dataset_info_is_input_error(tmp_path, info, match):
    touch(tmp_path / "a.json", "[]")
    touch(tmp_path / "dataset_info.json", info)
    with pytest.raises(InputError, match=match):
        expand([str(tmp_path / "dataset_info.json")])


@pytest.mark.parametrize("given", ["missing.jsonl", "missing_dir", "nomatch*.jsonl"])
def test_expand_missing_input_is_input_error(tmp_path, given):
    with pytest.raises(InputError):
        expand([str(tmp_path / given)])


def test_expand_folder_without_json_is_input_error(tmp_path):
    touch(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="no JSON"):
        expand([str(tmp_path)])


def test_expand_exclude(tmp_path):
    touch(tmp_path / "in" / "a.jsonl")
    touch(tmp_path / "out" / "b.jsonl")
    assert [f.path.name for f in expand([str(tmp_path)], exclude=[tmp_path / "out"])] == ["a.jsonl"]


# ---------------------------------------------------------------- LLaMA-Factory v1 rows and dataset YAML
# Forms of the LLaMA-Factory mirror: src/llamafactory/v1/utils/types.py:81-118 (Content, Message, SFTSample,
# DPOSample), data/v1_sft_demo.jsonl:1, data/v1_dpo_demo.jsonl:1, data/v1_sft_demo.yaml:1-9.
# tests/export/test_peer_llamafactory.py holds the same rows against LLaMA-Factory's own code.


def v1(role: str, *items: tuple[str, str], **extra) -> dict:
    return {"role": role, "content": [{"type": t, "value": v} for t, v in items], **extra}


V1_PROMPT = [
    v1("system", ("text", "Be brief."), loss_weight=0.0),
    v1("user", ("audio_url", "a.wav"), ("text", "What?"), loss_weight=0.0),
]


def test_v1_detected_by_shape_not_by_messages_alone():
    assert detect({"messages": [*V1_PROMPT, v1("assistant", ("text", "Hi."))]}) == "llamafactory-v1"
    assert detect({"chosen_messages": V1_PROMPT, "rejected_messages": V1_PROMPT}) == "llamafactory-v1"
    assert detect({"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]}) == "messages"
    assert detect({"messages": [{"role": "user", "content": "q"}], "rejected_messages": []}) == "messages"  # ms-swift's


def test_v1_sft_row():
    rec = parse({"messages": [*V1_PROMPT, v1("assistant", ("text", "Hello."), loss_weight=1.0)], "tools": "[]"})
    assert (rec.dialect, rec.kind, rec.system, rec.tools) == ("llamafactory-v1", "sft", "Be brief.", "[]")
    assert convo(rec) == [("user", "<audio>What?"), ("assistant", "Hello.")]
    assert refs(rec) == [("path", "a.wav", "messages[1].content[0].value")]
    assert [m.field for m in rec.messages] == ["messages[1].content", "messages[2].content"]
    assert check_record(rec) == []


def test_v1_tool_calls_and_media_markers():
    call = '{"name": "f", "arguments": {"x": 1}}'
    rec = parse(
        {
            "messages": [
                v1("user", ("image_url", "p.jpg"), ("text", "and "), ("audio_url", "a.wav")),
                v1("assistant", ("tool_call", call), ("tool_call", call)),
                v1("tool", ("text", "2")),
                v1("assistant", ("text", "Two.")),
            ]
        }
    )
    assert convo(rec) == [
        ("user", "<image>and <audio>"),
        ("function_call", f"[{call}, {call}]"),
        ("tool", "2"),
        ("assistant", "Two."),
    ]
    assert json.loads(rec.messages[1].content) == [json.loads(call)] * 2


def test_v1_pair_shares_its_prompt():
    rec = parse(
        {
            "chosen_messages": [*V1_PROMPT, v1("assistant", ("text", "Yes."))],
            "rejected_messages": [*V1_PROMPT, v1("assistant", ("text", "No."))],
        }
    )
    assert (rec.kind, rec.system, convo(rec)) == ("dpo", "Be brief.", [("user", "<audio>What?")])
    assert pair(rec) == ([("assistant", "Yes.")], [("assistant", "No.")])
    assert [rec.chosen[0].field, rec.rejected[0].field] == ["chosen_messages[2].content", "rejected_messages[2].content"]
    assert len(rec.audios) == 1  # the shared prompt's audio, once


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        # the two sides of a pair with different prompts: not a pair
        (
            {
                "chosen_messages": [*V1_PROMPT, v1("assistant", ("text", "Y"))],
                "rejected_messages": [V1_PROMPT[1], v1("assistant", ("text", "N"))],
            },
            "rejected_messages",
        ),
        (
            {
                "chosen_messages": [*V1_PROMPT, v1("assistant", ("text", "Y"))],
                "rejected_messages": [V1_PROMPT[0], v1("user", ("text", "?")), v1("assistant", ("text", "N"))],
            },
            "rejected_messages[1]",
        ),
        ({"chosen_messages": [*V1_PROMPT, v1("assistant", ("text", "Y"))]}, "rejected_messages"),
        ({"messages": [*V1_PROMPT, v1("assistant", ("text", "Hi"))], "chosen_messages": V1_PROMPT}, "chosen_messages"),
        # what the record cannot hold: refused, not changed
        ({"messages": [*V1_PROMPT, v1("assistant", ("text", "Hi"), loss_weight=0.5)]}, "messages[2].loss_weight"),
        ({"messages": [*V1_PROMPT, v1("assistant", ("reasoning", "hm"), ("text", "Hi"))]}, "messages[2].content[0]"),
        ({"messages": [*V1_PROMPT, v1("assistant", ("text", "Hi"))], "extra_info": "kto_label=false"}, "extra_info"),
        (
            {"messages": [*V1_PROMPT, v1("assistant", ("text", "I call"), ("tool_call", '{"name": "f", "arguments": {}}'))]},
            "messages[2].content",
        ),
        # what v1 fails on or drops
        ({"messages": [v1("user", ("audio", "a.wav")), v1("assistant", ("text", "Hi"))]}, "messages[0].content[0].type"),
        ({"messages": [v1("user", ("text", "q")), v1("assistant", ("tool_call", "f(1)"))]}, "messages[1].content[0].value"),
        ({"messages": [v1("user", ("text", "q")), v1("assistant", ("text", "a"))], "tools": "{not json"}, "tools"),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio_url"}]}, v1("assistant", ("text", "a"))]},
            "messages[0].content[0].value",
        ),
    ],
)
def test_v1_rows_refused_with_the_field(obj, field):
    assert parse_fail(obj, DialectSpec(formatting="llamafactory-v1")) == ("S001", field)


def test_v1_assistant_weight_one_or_absent_is_kept():
    rec = parse({"messages": [v1("user", ("text", "q"), loss_weight=1.0), v1("assistant", ("text", "a"), loss_weight=1)]})
    assert convo(rec) == [("user", "q"), ("assistant", "a")]  # a user turn's weight is never read by v1


def test_v1_format_option_and_yaml_input(tmp_path, monkeypatch):
    from audiodata.pipeline.options import ConvertOptions

    assert ConvertOptions(format="llamafactory-v1").format == "llamafactory-v1"
    touch(tmp_path / "data" / "rows.jsonl", json.dumps({"messages": [v1("user", ("text", "q")), v1("assistant", ("text", "a"))]}))
    touch(tmp_path / "data" / "alpaca.json", json.dumps([{"instruction": "Say", "input": " hi.", "output": "Hi."}]))
    spec = {
        "rows": {"path": "data/rows.jsonl", "source": "local"},
        "alp": {"path": "data/alpaca.json", "source": "local", "converter": "alpaca", "size": 10},
        "hub": {"path": "org/name"},
    }
    touch(tmp_path / "mix.yaml", json.dumps(spec))  # JSON is YAML
    monkeypatch.chdir(tmp_path)
    got = expand_inputs(["mix.yaml"])
    assert [(f.display, f.spec.formatting, f.spec.converter, f.media_root) for f in got.files] == [
        ("data/rows.jsonl", "llamafactory-v1", None, str(tmp_path)),
        ("data/alpaca.json", "alpaca", "alpaca", str(tmp_path)),
    ]
    assert [(s.code, s.entry) for s in got.skipped] == [("F006", "hub")]
    rec = parse({"instruction": "Say", "input": " hi.", "output": "Hi."}, got.files[1].spec)
    assert convo(rec)[0] == ("user", "Say hi.")  # v1's alpaca converter joins them as they are
    assert parse_fail({"instruction": "Say", "output": "Hi.", "history": [["a", "b"]]}, got.files[1].spec) == ("S001", "history")
    assert [f.spec.name for f in expand(["mix.yaml"], datasets=["alp"])] == ["alp"]
    with pytest.raises(InputError, match="no dataset entry named nope"):
        expand(["mix.yaml"], datasets=["nope"])


def test_dataset_info_reads_only_the_columns_an_entry_maps(tmp_path):
    """DatasetAttr.join (LLaMA-Factory data/parser.py): with columns, unlisted columns are not read; without, only
    prompt/query/response/messages have defaults. A filled column LLaMA-Factory would not read is refused."""
    for name in ("a", "b", "c"):
        touch(tmp_path / f"{name}.json", "[]")
    info = {
        "mapped": {"file_name": "a.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "audios": "audios"}},
        "bare": {"file_name": "b.json", "formatting": "sharegpt"},
        "partial": {"file_name": "c.json", "columns": {"prompt": "instruction", "response": "output"}},
    }
    touch(tmp_path / "dataset_info.json", json.dumps(info))
    specs = {f.spec.name: f.spec for f in expand([str(tmp_path / "dataset_info.json")])}
    turns = [{"from": "human", "value": "<audio>q"}, {"from": "gpt", "value": "a"}]
    assert len(parse({"conversations": turns, "audios": ["x.wav"]}, specs["mapped"]).audios) == 1
    assert parse_fail({"conversations": turns, "audios": ["x.wav"]}, specs["bare"]) == ("S001", "audios")
    assert parse_fail({"conversations": turns[1:], "system": "S"}, specs["bare"]) == ("S001", "system")
    assert parse({"conversations": turns[1:], "system": ""}, specs["bare"]).system is None  # empty: nothing lost
    assert parse_fail({"instruction": "q", "input": "more", "output": "a"}, specs["partial"]) == ("S001", "input")
    assert convo(parse({"instruction": "q", "input": "", "output": "a"}, specs["partial"])) == [("user", "q"), ("assistant", "a")]
    # and an entry LLaMA-Factory cannot read at all
    for entry, match in [
        ({"file_name": "a.json", "formatting": "sharegpt", "columns": {"audios": "audios"}}, "do not map messages"),
        ({"file_name": "a.json", "ranking": True}, "must map the chosen and rejected"),
    ]:
        touch(tmp_path / "dataset_info.json", json.dumps({"x": entry}))
        with pytest.raises(InputError, match=match):
            expand([str(tmp_path / "dataset_info.json")])


def test_glob_takes_yaml_only_when_asked(tmp_path, monkeypatch):
    touch(tmp_path / "rows.jsonl", json.dumps({"messages": [v1("user", ("text", "q")), v1("assistant", ("text", "a"))]}))
    touch(tmp_path / "train_config.yaml", "model: some/model\nlearning_rate: 1.0e-4\n")  # not a dataset YAML
    monkeypatch.chdir(tmp_path)
    assert [f.display for f in expand(["*"])] == ["rows.jsonl"]
    with pytest.raises(InputError, match=r"train_config\.yaml: dataset 'model'"):
        expand(["*.yaml"])
