"""Record rules through the one engine, and ruff-style rule selection."""

from __future__ import annotations

import pytest

from audiodata.records import AudioRef, Message, Record, SourceLoc
from audiodata.rules.engine import check_record, has_error, keep_enabled
from audiodata.rules.registry import REGISTRY, Severity, select

SRC = SourceLoc("c.jsonl", 4, 5)


def audios(n: int) -> list[AudioRef]:
    return [AudioRef("path", f"a{i}.wav", f"audios[{i}]") for i in range(n)]


def sft(*turns: tuple[str, str], n_audio: int | None = None, system: str | None = None, tools: str | None = None) -> Record:
    msgs = [Message(role, text, f"messages[{i}].content") for i, (role, text) in enumerate(turns)]
    n = sum(t.count("<audio>") for _, t in turns) if n_audio is None else n_audio
    return Record("r", "sft", msgs, SRC, audios=audios(n), system=system, tools=tools)


def dpo(prompt: list[tuple[str, str]], chosen: list[tuple[str, str]], rejected: list[tuple[str, str]], n_audio: int) -> Record:
    msgs = [Message(r, t, f"messages[{i}].content") for i, (r, t) in enumerate(prompt)]
    ch = [Message(r, t, f"chosen[{i}].content") for i, (r, t) in enumerate(chosen)]
    rj = [Message(r, t, f"rejected[{i}].content") for i, (r, t) in enumerate(rejected)]
    return Record("r", "dpo", msgs, SRC, audios=audios(n_audio), chosen=ch, rejected=rj)


CLEAN_SFT = sft(("user", "<audio>What is said?"), ("assistant", "Hello."))
CLEAN_DPO = dpo([("user", "<audio>Which?")], [("assistant", "good")], [("assistant", "bad")], 1)


def fired(rec: Record, code: str) -> list[tuple[str, str]]:
    return [(f.code, f.field) for f in check_record(rec) if f.code == code]


@pytest.mark.parametrize("rec", [CLEAN_SFT, CLEAN_DPO], ids=["sft", "dpo"])
def test_clean_records_have_no_findings(rec):
    assert check_record(rec) == []


def test_clean_multi_turn_with_tools_and_system():
    rec = sft(
        ("user", "<audio>call it"),
        ("function_call", '{"name": "f"}'),
        ("tool", "42"),
        ("assistant", "It is 42."),
        ("user", "and <audio>?"),
        ("assistant", "Same."),
        system="You are helpful.",
        tools='[{"name": "f"}]',
    )
    assert check_record(rec) == []


def test_findings_are_located_to_the_record_source():
    rec = sft(("user", "q"), ("narrator", "a"))
    [f] = [f for f in check_record(rec) if f.code == "S002"]
    assert f.source == SRC
    assert f.to_dict() == {
        "code": "S002",
        "severity": "error",
        "message": "unknown role 'narrator'",
        "field": "messages[1].content",
        "source": "c.jsonl",
        "index": 4,
        "line": 5,
    }


# ---------------------------------------------------------------- structure


def test_s002_unknown_role():
    assert fired(sft(("user", "q"), ("narrator", "a")), "S002") == [("S002", "messages[1].content")]
    rec = dpo([("user", "q")], [("bot?", "c")], [("assistant", "r")], 0)
    assert fired(rec, "S002") == [("S002", "chosen[0].content")]
    assert fired(CLEAN_SFT, "S002") == []


def test_s003_role_order():
    assert fired(sft(("assistant", "a"), ("user", "q")), "S003") == [("S003", "messages[0].content")]
    assert fired(sft(("user", "q"), ("user", "q2"), ("assistant", "a"), ("assistant", "b")), "S003") == [
        ("S003", "messages[1].content")
    ]
    assert ("S003", "messages[2].content") in fired(
        sft(("user", "q"), ("assistant", "a"), ("system", "s"), ("assistant", "b")), "S003"
    )
    assert fired(CLEAN_SFT, "S003") == []
    assert fired(CLEAN_DPO, "S003") == []


def test_s003_system_turn_left_in_messages():
    rec = sft(("system", "s"), ("user", "q"), ("assistant", "a"), ("user", "q2"))
    assert ("S003", "messages[0].content") in fired(rec, "S003")


def test_s004_empty_content():
    assert fired(sft(("user", "<audio>"), ("assistant", "  \n")), "S004") == [("S004", "messages[1].content")]
    rec = dpo([("user", "<audio>q")], [("assistant", "")], [("assistant", "r")], 1)
    assert fired(rec, "S004") == [("S004", "chosen[0].content")]
    assert fired(sft(("user", "<audio>"), ("assistant", "a")), "S004") == []  # a marker alone is content
    assert fired(CLEAN_DPO, "S004") == []


def test_s006_pair_must_be_assistant():
    rec = dpo([("user", "q")], [("user", "c")], [("assistant", "r")], 0)
    assert fired(rec, "S006") == [("S006", "chosen[0].content")]
    rec = dpo([("user", "q")], [("assistant", "c")], [], 0)
    assert fired(rec, "S006") == [("S006", "rejected")]
    ok = dpo([("user", "q")], [("function_call", "{}")], [("assistant", "r")], 0)
    assert fired(ok, "S006") == []
    assert fired(CLEAN_DPO, "S006") == []
    assert fired(sft(("user", "q"), ("assistant", "a")), "S006") == []


@pytest.mark.parametrize("n", [0, 1, 3])
def test_s007_sft_turn_count(n):
    turns = [("user", "q"), ("assistant", "a"), ("user", "q2")][:n]
    assert fired(sft(*turns), "S007") == [("S007", "messages")]


def test_s007_dpo_prompt_must_end_on_user():
    rec = dpo([("user", "q"), ("assistant", "a")], [("assistant", "c")], [("assistant", "r")], 0)
    assert fired(rec, "S007") == [("S007", "messages")]
    ok = dpo([("user", "q"), ("assistant", "a"), ("user", "q2")], [("assistant", "c")], [("assistant", "r")], 0)
    assert fired(ok, "S007") == []
    assert fired(CLEAN_SFT, "S007") == []


# ---------------------------------------------------------------- pairs


def test_p001_identical_pair_is_a_warning():
    rec = dpo([("user", "<audio>q")], [("assistant", "same")], [("assistant", "same")], 1)
    found = [f for f in check_record(rec) if f.code == "P001"]
    assert [(f.code, f.field) for f in found] == [("P001", "chosen")]
    assert found[0].severity is Severity.WARNING
    assert not has_error(check_record(rec))
    assert fired(CLEAN_DPO, "P001") == []


# ---------------------------------------------------------------- markers


def test_m001_sft_marker_count():
    assert fired(sft(("user", "<audio>q"), ("assistant", "a"), n_audio=2), "M001") == [("M001", "messages")]
    assert fired(sft(("user", "<audio><audio>q"), ("assistant", "a"), n_audio=1), "M001") == [("M001", "messages")]
    assert fired(sft(("user", "q"), ("assistant", "a"), n_audio=1), "M001") == [("M001", "messages")]
    # Markers in the response count too (prompt + response).
    assert fired(sft(("user", "q"), ("assistant", "<audio>"), n_audio=1), "M001") == []
    assert fired(CLEAN_SFT, "M001") == []


def test_m001_dpo_counts_prompt_plus_each_response_separately():
    # prompt (0) + chosen (1) = 1 audio: fine; prompt (0) + rejected (0) = 0: M001 on rejected only.
    rec = dpo([("user", "q")], [("assistant", "<audio>c")], [("assistant", "r")], 1)
    assert fired(rec, "M001") == [("M001", "rejected")]
    # Both responses holding one marker each: each side counts 1, not 2 over the whole record.
    both = dpo([("user", "q")], [("assistant", "<audio>c")], [("assistant", "<audio>r")], 1)
    assert fired(both, "M001") == []
    # Prompt markers count on both sides.
    assert fired(dpo([("user", "<audio>")], [("assistant", "c")], [("assistant", "r")], 2), "M001") == [
        ("M001", "chosen"),
        ("M001", "rejected"),
    ]
    assert fired(CLEAN_DPO, "M001") == []


def test_m002_marker_in_dpo_response():
    rec = dpo([("user", "q")], [("assistant", "<audio>c")], [("assistant", "<audio>r")], 1)
    assert fired(rec, "M002") == [("M002", "chosen[0].content"), ("M002", "rejected[0].content")]
    assert fired(CLEAN_DPO, "M002") == []
    assert fired(sft(("user", "q"), ("assistant", "<audio>"), n_audio=1), "M002") == []  # SFT is M001's business


def test_m003_marker_in_system_or_tools_is_a_warning():
    rec = sft(("user", "<audio>q"), ("assistant", "a"), system="Listen to <audio>", tools="<audio>")
    found = [f for f in check_record(rec) if f.code == "M003"]
    assert [f.field for f in found] == ["system", "tools"]
    assert all(f.severity is Severity.WARNING for f in found)
    assert fired(sft(("user", "<audio>q"), ("assistant", "a"), system="Be brief.", tools="[]"), "M003") == []


@pytest.mark.parametrize("marker", ["<image>", "<video>"])
def test_m004_image_video_marker(marker):
    rec = sft(("user", f"<audio>{marker} q"), ("assistant", "a"))
    assert fired(rec, "M004") == [("M004", "messages[0].content")]
    rec = dpo([("user", "<audio>q")], [("assistant", marker)], [("assistant", "r")], 1)
    assert fired(rec, "M004") == [("M004", "chosen[0].content")]
    assert fired(sft(("user", "<audio> an <img> tag"), ("assistant", "a")), "M004") == []


@pytest.mark.parametrize(
    "token",
    [
        "<|AUDIO|>",
        "<|audio_bos|>",
        "<|audio_eos|>",
        "<|audio_pad|>",
        "<|IMAGE|>",
        "(<audio>./</audio>)",
        "<audio_start>",
        "</spk_end>",
    ],
)
def test_m005_raw_special_token(token):
    rec = sft(("user", "<audio>q"), ("assistant", f"text {token} more"), n_audio=1)
    assert fired(rec, "M005") == [("M005", "messages[1].content")]


def test_m005_in_system_and_not_on_ordinary_text():
    rec = sft(("user", "<audio>q"), ("assistant", "a"), system="<|audio_bos|>")
    assert fired(rec, "M005") == [("M005", "system")]
    plain = sft(("user", "<audio>q <|endoftext|> </audio> <audio_x>"), ("assistant", "<b>bold</b> | pipes |"))
    assert fired(plain, "M005") == []


# ---------------------------------------------------------------- engine and selection


def test_check_record_runs_only_enabled_rules():
    rec = sft(("assistant", "<image>"), ("narrator", ""), n_audio=1)
    assert {f.code for f in check_record(rec)} == {"S002", "S003", "S004", "M001", "M004"}
    assert {f.code for f in check_record(rec, select(["S"]))} == {"S002", "S003", "S004"}
    assert {f.code for f in check_record(rec, ["M004"])} == {"M004"}
    assert check_record(rec, []) == []


def test_keep_enabled_and_has_error():
    found = check_record(dpo([("user", "q")], [("assistant", "x")], [("assistant", "x")], 0))
    assert [f.code for f in found] == ["P001"]
    assert keep_enabled(found, None) == found
    assert keep_enabled(found, {"S002"}) == []
    assert not has_error(found)
    assert has_error(check_record(sft(("user", "q"))))


def test_select_everything_by_default():
    assert select() == set(REGISTRY)
    assert select([], []) == set(REGISTRY)


# no record without them (or without an image or video it names, or a pair without its hypothesis): never ignorable
ALWAYS = {c for c in REGISTRY if c.startswith("F")} | {"S001", "S010", "S030", "S031", "S032", "S033", "S034", "P005", "Q006"}


def test_select_by_prefix():
    assert select(["M"]) == {"M001", "M002", "M003", "M004", "M005", "M006"} | ALWAYS
    assert select(["A01"]) == {"A010", "A011", "A012", "A013", "A014", "A015", "A016", "A017"} | ALWAYS
    structure = {"S001", "S002", "S003", "S004", "S005", "S006", "S007", "S008"}
    assert select(["S00", "P"]) == structure | {"P001", "P002", "P003", "P004"} | ALWAYS
    assert select(["M003"]) == {"M003"} | ALWAYS
    assert select(["Z"]) == ALWAYS


def test_select_with_ignore():
    assert select(["A"], ["A01"]) == {"A001", "A002", "A003", "A004", "A005", "A006", "A007", "A008", "A009"} | ALWAYS
    assert select(["M"], ["M003", "M005"]) == {"M001", "M002", "M004", "M006"} | ALWAYS
    everything_but_audio = select(None, ["A"])
    assert everything_but_audio == {c for c in REGISTRY if not c.startswith("A")}
    assert select(None, ["S03"]) == set(REGISTRY)  # nor be written without an image or video it names
    assert select(["A009"], ["A"]) == ALWAYS  # ignore wins
    assert select(None, ["F", "S001"]) == set(REGISTRY)  # unparsable records can never vanish


def test_every_rule_with_a_check_runs_in_a_checking_stage():
    stages = ("read", "record", "audio", "dataset", "export", "output")
    by_stage = {stage: {c for c, r in REGISTRY.items() if r.stage == stage} for stage in stages}
    record = {"S002", "S003", "S004", "S006", "S007", "S008", "P001", "M001", "M002", "M003", "M004", "M005", "M006", "T001"}
    record |= {"Q001", "Q002", "Q003", "Q004", "Q005"}  # RL answers (rules/rl_rules.py)
    assert by_stage["record"] == record
    assert by_stage["audio"] == {"A008", "A009", "A012", "A013", "A014", "B001", "B002", "R001", "R002", "R003", "R004"}
    assert by_stage["dataset"] == {"D001", "D002", "D003", "D004", "P003", "R005", "T002", "T003"}
    assert all(REGISTRY[c].check is not None for c in record | by_stage["audio"])
    assert all(REGISTRY[c].check is None for c in by_stage["read"] | by_stage["dataset"] | by_stage["output"])
    assert by_stage["export"] == {c for c in REGISTRY if c.startswith("X")} and REGISTRY["X003"].check is None
    assert by_stage["output"] == {c for c in REGISTRY if c.startswith("V")}
    assert all(r.summary and r.family for r in REGISTRY.values())


# -- S008: aliases judged per dialect, from the one table in audiodata.readers.spec ----------------------------------


def _one_turn(dialect: str, form: str, raw: str) -> Record:
    """A record of ``dialect`` whose second turn is written with role ``raw``."""
    from audiodata.readers.dialects import parse_record
    from audiodata.readers.dialects.common import ParseContext
    from audiodata.readers.spec import DialectSpec

    role_key, content_key = ("from", "value") if form == "from" else ("role", "content")
    turns = [{role_key: "human" if form == "from" else "user", content_key: "q"}, {role_key: raw, content_key: "x"}]
    obj = {"messages": turns} if dialect == "messages" else {"conversations": turns}
    rec, findings = parse_record(obj, ParseContext(DialectSpec(), SRC, "."))
    assert rec is not None and rec.dialect == dialect, findings
    return rec


def _aliases(rec: Record) -> list[str]:
    return [f.message for f in check_record(rec, {"S008"})]


def test_s008_every_standard_spelling_is_quiet_and_every_alias_fixes_to_one():
    """What ``lint --fix`` writes for an alias reads back as the same role, with no S008, in the record's own dialect."""
    from audiodata.readers.spec import ROLE_ALIASES, STANDARD_ROLES, standard_spelling

    for (dialect, form), table in STANDARD_ROLES.items():
        for raw in {*table.spell.values(), *table.also}:
            assert _aliases(_one_turn(dialect, form, raw)) == [], (dialect, form, raw)
        for raw, role in ROLE_ALIASES.items():
            rec = _one_turn(dialect, form, raw)
            assert rec.messages[1].role == role
            want = standard_spelling(dialect, form, role, raw)
            assert (want is None) == table.is_standard(raw)
            if want is not None:
                assert _aliases(rec) == [f"role {raw!r} is an alias in {dialect}; write {want!r}"]
                fixed = _one_turn(dialect, form, want)
                assert fixed.messages[1].role == role and _aliases(fixed) == [], (dialect, form, raw, want)


def test_s008_is_judged_per_dialect():
    # ms-swift's canonical tool roles are not aliases in messages (swift/dataset/preprocessor/core.py:101, ms-swift 4.6.0) ...
    assert _aliases(_one_turn("messages", "role", "tool_call")) == []
    assert _aliases(_one_turn("messages", "role", "tool_response")) == []
    # ... but they are where LLaMA-Factory reads them, and sharegpt's function_call is one in messages
    lf_call = "role 'tool_call' is an alias in sharegpt; write 'function_call'"
    assert _aliases(_one_turn("sharegpt", "role", "tool_call")) == [lf_call]
    swift_call = "role 'function_call' is an alias in messages; write 'tool_call'"
    assert _aliases(_one_turn("messages", "role", "function_call")) == [swift_call]
    assert _aliases(_one_turn("sharegpt", "from", "bot")) == ["role 'bot' is an alias in sharegpt; write 'gpt'"]
    assert _aliases(_one_turn("messages", "role", "bot")) == ["role 'bot' is an alias in messages; write 'assistant'"]
