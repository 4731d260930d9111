"""S005: raw records against ``schemas/input/<dialect>.json``: the compiled schemas and jsonschema agree.

``SchemaCheck`` accepts a record when the schema compiled once by jsonschema-rs accepts it, and asks
jsonschema (which locates every finding) otherwise. That is sound only if the compiled schema never
accepts what jsonschema rejects, so the property tests below generate records of every dialect, valid
and broken in every way the generators know (Hypothesis drives their choices and shrinks a
counterexample), and require the same verdict from both; the keyword test keeps the generators in step
with the schemas.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiodata.pipeline.lint import lint
from audiodata.readers.spec import DialectSpec
from audiodata.records import SourceLoc
from audiodata.rules import schema as schema_mod
from audiodata.rules.schema import MAX_ERRORS, SchemaCheck, compiled, documents, fast_valid, schema_dir, validators

SRC = SourceLoc("in.jsonl", 3, 4)
DIALECTS = ("sharegpt", "alpaca", "messages", "minicpm", "llamafactory-v1")

# ---------------------------------------------------------------------------
# The keywords the schemas use: the ones the generators below exercise
# ---------------------------------------------------------------------------

#: Every keyword the schemas use today. A new one may be read differently by jsonschema-rs and jsonschema:
#: teach the generators values that pass and fail it, then add it here.
KNOWN = {
    "$schema", "$id", "$ref", "$defs", "title", "description", "type", "properties", "required",
    "additionalProperties", "dependentRequired", "dependentSchemas", "propertyNames", "minProperties",
    "maxProperties", "items", "if", "then", "else", "anyOf", "allOf", "not", "const", "enum", "minItems",
    "maxItems", "minLength", "minimum", "exclusiveMinimum",
}  # fmt: skip

_SUBSCHEMA_MAPS = {"properties", "$defs", "dependentSchemas", "patternProperties"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_SUBSCHEMA = {"items", "additionalProperties", "if", "then", "else", "not", "propertyNames", "contains"}
_SUBSCHEMA |= {"unevaluatedItems", "unevaluatedProperties"}


def walk(node: Any, where: str) -> Iterator[tuple[str, str, Any]]:
    """(location, keyword, value) for every keyword of every (sub)schema."""
    if isinstance(node, bool):
        return
    assert isinstance(node, dict), where
    for kw, value in node.items():
        yield where, kw, value
        if kw in _SUBSCHEMA_MAPS:
            for name, sub in value.items():
                yield from walk(sub, f"{where}/{kw}/{name}")
        elif kw in _SUBSCHEMA_LISTS:
            for i, sub in enumerate(value):
                yield from walk(sub, f"{where}/{kw}/{i}")
        elif kw in _SUBSCHEMA:
            yield from walk(value, f"{where}/{kw}")


def all_keywords() -> list[tuple[str, str, Any]]:
    return [k for name, doc in documents().items() for k in walk(doc, name)]


def test_schema_dir_is_the_one_validated() -> None:
    names = {p.stem for p in schema_dir().glob("*.json")}
    assert set(DIALECTS) <= names
    assert set(DIALECTS) <= set(validators())
    assert set(documents()) == names == set(compiled())


def test_schemas_use_only_keywords_the_generators_know() -> None:
    used = all_keywords()
    assert {kw for _, kw, _ in used} <= KNOWN, {kw for _, kw, _ in used} - KNOWN
    assert len(used) > 300  # not vacuous: the walker reaches the nested defs


# ---------------------------------------------------------------------------
# Property tests: the compiled schema and jsonschema give the same verdict
# ---------------------------------------------------------------------------

TEXTS = [
    "", " ", "a", "hello world", "<audio>", "<audio> What is said?", "x" * 300, "你好 ünïcödé",
    "data:audio/wav;base64,UklGRg==", "UklGRiQAAABXQVZFZm10IBAAAAAB" * 40, "true", "image",
    # named strings: the ones the schemas compare against
    "text", "audio", "input_audio", "path", "array", "sampling_rate", "url", "audio_url", "type",
]  # fmt: skip
INTS = [-7, -1, 0, 1, 2, 3, 16000, 44100, 10**12]
# Integral floats included: "integer" accepts 3.0 but not 3.5, and shape must tell them apart.
FLOATS = [-2.5, -0.5, 0.0, -0.0, 1e-9, 0.25, 0.999, 1.5, 3.0, 16000.0, 16000.5]
KEYS = ["type", "text", "path", "bytes", "array", "sampling_rate", "from", "value", "role", "content", "data", "format"]
KEYS += ["input_audio", "audio", "url", "audio_url", "meta", "x"]


NON_EMPTY = [t for t in TEXTS if t]


class Gen:
    """Random raw records; ``bad`` is the chance of each choice going wrong (wrong type, missing or extra key, ...)."""

    def __init__(self, rng: random.Random, bad: float) -> None:
        self.rng, self.bad = rng, bad

    def oops(self, scale: float = 1.0) -> bool:
        return self.rng.random() < self.bad * scale

    def scalar(self) -> Any:
        rng = self.rng
        return rng.choice([rng.choice(TEXTS), rng.choice(INTS), rng.choice(FLOATS), True, False, None])

    def value(self, depth: int = 2) -> Any:
        k = self.rng.random()
        if depth <= 0 or k < 0.6:
            return self.scalar()
        if k < 0.8:
            return [self.value(depth - 1) for _ in range(self.rng.randint(0, 4))]
        return {self.rng.choice(KEYS): self.value(depth - 1) for _ in range(self.rng.randint(0, 3))}

    def text(self, non_empty: bool = False) -> Any:
        if self.oops(0.5):
            return self.value()
        return self.rng.choice(TEXTS if not non_empty or self.oops() else NON_EMPTY)

    def n(self, low: int = 1) -> int:
        """A list length in 0..4, below ``low`` only by mistake."""
        return self.rng.randint(0, 4) if self.oops() else self.rng.randint(low, 4)

    def number(self) -> Any:
        return self.rng.choice(INTS + FLOATS)

    def audio(self) -> Any:
        rng = self.rng
        if self.oops(2):  # anything an audio reference might wrongly be
            obj: dict[str, Any] = {}
            for key in rng.sample(["bytes", "path", "array", "sampling_rate", "meta"], rng.randint(0, 3)):
                if key == "array":
                    obj[key] = [self.number() for _ in range(rng.randint(0, 4))] + (["nan"] if rng.random() < 0.1 else [])
                elif key == "sampling_rate":
                    obj[key] = rng.choice([*INTS, *FLOATS, "16000"])
                else:
                    obj[key] = rng.choice(TEXTS)
            return rng.choice([obj, obj, "", self.value()])
        form = rng.randrange(5)
        if form == 0:
            return rng.choice(["a.wav", "/abs/b.flac", "https://x/y.mp3", "UklGRiQAAABXQVZF" * 30, "audio"])
        if form == 1:
            return {"path": rng.choice(NON_EMPTY)}
        if form == 2:
            return {"bytes": rng.choice(NON_EMPTY), **({"path": "c.wav"} if rng.random() < 0.5 else {})}
        arr = {"array": [self.number() for _ in range(rng.randint(1, 4))], "sampling_rate": rng.choice([1, 16000, 44100, 10**12])}
        return {**arr, "path": "d.wav"} if form == 3 else arr

    def audios(self, single: bool = True, low: int = 0) -> Any:
        if single and self.rng.random() < 0.2:
            return self.audio()
        return [self.audio() for _ in range(self.n(low))]

    def sharegpt_msg(self) -> Any:
        rng = self.rng
        keys: list[str] = ["from", "value"] if rng.random() < 0.6 else ["role", "content"]
        if self.oops():
            keys = rng.sample([*keys, rng.choice(KEYS)], rng.randint(0, 2))
        msg = {k: self.text(non_empty=k in ("from", "role")) for k in keys}
        if rng.random() < 0.1:
            msg["loss"] = self.scalar()
        return self.value() if self.oops(0.3) else msg

    def sharegpt(self) -> dict[str, Any]:
        rng = self.rng
        rec: dict[str, Any] = {}
        if not self.oops(0.3):
            rec["conversations"] = self.value() if self.oops(0.3) else [self.sharegpt_msg() for _ in range(self.n())]
        if rng.random() < 0.6:
            rec["audios"] = self.audios()
        if rng.random() < 0.25:
            rec["id"] = self.text() if self.oops() else rng.choice([rng.choice(NON_EMPTY), rng.choice(INTS)])
        for key in ("system", "tools", "meta"):
            if rng.random() < 0.25:
                rec[key] = self.text()
        if rng.random() < 0.25:
            rec["chosen"], rec["rejected"] = self.sharegpt_msg(), self.sharegpt_msg()
            if self.oops():
                del rec[rng.choice(["chosen", "rejected"])]
        if rng.random() < 0.2:
            rec["kto_tag"] = rng.choice(["true", 1, None]) if self.oops(2) else rng.choice([True, False])
        return rec

    def alpaca(self) -> dict[str, Any]:
        rng = self.rng
        rec: dict[str, Any] = {}
        user = rng.choice([["instruction"], ["input"], ["instruction", "input"]])
        for key in [] if self.oops(0.3) else user:
            rec[key] = self.text()
        for key in ("system", "id"):
            if rng.random() < 0.2:
                rec[key] = rng.choice([*INTS, *FLOATS]) if key == "id" else self.text()
        targets = [["output"], ["chosen", "rejected"]][rng.random() < 0.3]
        if self.oops(0.5):
            targets = rng.sample(["output", "chosen", "rejected"], rng.randint(0, 3))
        for key in targets:
            rec[key] = self.text()
        if rng.random() < 0.3:
            turns = [[self.text() for _ in range(2 if not self.oops() else rng.randint(0, 4))] for _ in range(rng.randint(0, 4))]
            rec["history"] = self.value() if self.oops(0.3) else turns
        if rng.random() < 0.5:
            rec["audios"] = self.audios()
        if rng.random() < 0.1:
            rec["kto_tag"] = rng.choice(["false", 0]) if self.oops(2) else True
        return rec

    def part(self) -> Any:
        rng = self.rng
        kind = rng.choice(["text", "audio", "input_audio"]) if not self.oops() else rng.choice(["document", None, "audio"])
        part: dict[str, Any] = {} if kind is None else {"type": kind}
        if kind == "text" or self.oops(0.3):
            part["text"] = self.text()
        if kind in ("audio", "document"):
            n_keys = rng.choice([0, 1, 1, 1]) if not self.oops() else 2
            for key in rng.sample(["path", "audio", "url", "audio_url"], n_keys):
                part[key] = self.audio()
        if kind == "input_audio" or self.oops(0.3):
            inner = {"data": self.text(non_empty=True), "format": rng.choice(["wav", "mp3"]) if not self.oops() else ""}
            if self.oops(0.5):
                inner = rng.choice([{"data": "QUJD"}, {"data": "QUJD", "format": "wav", "x": 1}, "QUJD"])
            part["input_audio"] = inner
        return self.value() if self.oops(0.2) else part

    def message(self) -> Any:
        rng = self.rng
        m: dict[str, Any] = {}
        if not self.oops(0.3):
            m["role"] = rng.choice(["user", "assistant", "system", "tool"]) if not self.oops() else rng.choice(["", 3])
        if not self.oops(0.3):
            m["content"] = self.text() if rng.random() < 0.5 else [self.part() for _ in range(self.n())]
        if rng.random() < 0.1:
            m["name"] = self.text()
        return self.value() if self.oops(0.2) else m

    def messages(self) -> dict[str, Any]:
        rng = self.rng
        rec: dict[str, Any] = {}
        if not self.oops(0.3):
            rec["messages"] = self.value() if self.oops(0.2) else [self.message() for _ in range(self.n())]
        if rng.random() < 0.4:
            rec["audios"] = self.audios(single=self.oops())
        if rng.random() < 0.15:
            rec["rejected_response"] = self.text()
        if rng.random() < 0.2:
            tools = [{"type": "function"}] * rng.randint(0, 4)
            rec["tools"] = rng.choice([[{"a": 1}, "f"], {"a": 1}, 3]) if self.oops() else rng.choice([tools, "[]"])
        if rng.random() < 0.2:
            rec["id"] = rng.choice([rng.choice(TEXTS), *INTS]) if not self.oops() else rng.choice([2.5, None, [1]])
        return rec

    def v1_message(self) -> Any:
        """A LLaMA-Factory v1 message (v1/utils/types.py Message, Content)."""
        rng = self.rng
        m: dict[str, Any] = {}
        if not self.oops(0.3):
            m["role"] = rng.choice(["system", "user", "assistant", "tool"]) if not self.oops() else rng.choice(["", 3])
        if not self.oops(0.3):
            items = []
            for _ in range(self.n()):
                kinds = ["text", "audio_url", "tool_call", "image_url"] if not self.oops() else ["audio", None]
                kind = rng.choice(kinds)
                item: dict[str, Any] = {"type": kind} if kind is not None else {}
                if not self.oops(0.5):
                    item["value"] = self.text()
                items.append(self.value() if self.oops(0.2) else item)
            m["content"] = self.text() if self.oops(0.3) else items
        if rng.random() < 0.3:
            m["loss_weight"] = rng.choice([0.0, 1.0, 1]) if not self.oops() else rng.choice(["1", None, True])
        return self.value() if self.oops(0.2) else m

    def llamafactory_v1(self) -> dict[str, Any]:
        rng = self.rng
        rec: dict[str, Any] = {}
        keys = [["messages"], ["chosen_messages", "rejected_messages"]][rng.random() < 0.3]
        if self.oops(0.5):
            keys = rng.sample(["messages", "chosen_messages", "rejected_messages"], rng.randint(0, 2))
        for key in keys:
            rec[key] = self.value() if self.oops(0.2) else [self.v1_message() for _ in range(self.n())]
        if rng.random() < 0.2:
            rec["tools"] = rng.choice(["[]", '[{"name": "f"}]']) if not self.oops() else rng.choice([[{"a": 1}], 3])
        if rng.random() < 0.2:
            rec["id"] = rng.choice([rng.choice(TEXTS), *INTS])
        return rec

    def minicpm(self) -> dict[str, Any]:
        rng = self.rng
        rec: dict[str, Any] = {}
        which = rng.choice(["audio", "audios"]) if not self.oops() else rng.choice(["both", "neither"])
        if which in ("audio", "both"):
            rec["audio"] = self.audio()
        if which in ("audios", "both"):
            rec["audios"] = self.audios(single=False, low=1)
        if not self.oops(0.5):
            rec["text"] = self.text()
        prompt = rng.choice([[], ["prompt"], ["instruction"]]) if not self.oops() else ["prompt", "instruction"]
        for key in prompt:
            rec[key] = self.text()
        if rng.random() < 0.2:
            rec["system"] = self.text()
        if rng.random() < 0.2:
            rec["id"] = rng.choice([rng.choice(TEXTS), *INTS]) if not self.oops() else rng.choice([0.5, None])
        if rng.random() < 0.1:
            rec["duration"] = rng.choice(FLOATS)
        return rec


def generate(dialect: str, rng: random.Random) -> dict[str, Any]:
    """One record; a third of them clean, the rest with rising chances of mistakes."""
    gen = Gen(rng, rng.choice([0.0, 0.0, 0.03, 0.1, 0.3]))
    return getattr(gen, dialect.replace("-", "_"))()


def agree(dialect: str, rec: Any) -> bool:
    """The verdict both validators give ``rec``; fails the test where they differ."""
    slow = validators()[dialect].is_valid(rec)
    assert fast_valid(dialect, rec) == slow, (dialect, json.dumps(rec, default=repr)[:500])
    return slow


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compiled_schema_agrees_with_jsonschema(dialect: str) -> None:
    rng = random.Random(f"s005-{dialect}")
    n_valid = sum(agree(dialect, generate(dialect, rng)) for _ in range(600))
    assert 120 <= n_valid <= 480, n_valid  # not vacuous: a good mix of valid and invalid records


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.sampled_from(DIALECTS), st.randoms(use_true_random=False), st.sampled_from([0.0, 0.03, 0.1, 0.3, 0.6]))
def test_compiled_schema_agrees_on_generated_records(dialect: str, rng: random.Random, bad: float) -> None:
    """Hypothesis drives the generators' every choice (and shrinks a disagreement to its smallest record)."""
    agree(dialect, getattr(Gen(rng, bad), dialect.replace("-", "_"))())


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*TEXTS, *KEYS, 3.0, -0.0, 16000.0]),
    st.text(max_size=5),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from([*KEYS, "conversations", "messages",
        "audios", "audio", "instruction", "output", "chosen", "rejected", "kto_tag", "id", "history", "tools", "system",
        "loss_weight", "chosen_messages", "rejected_messages", "prompt"]), inner, max_size=5)),
    max_leaves=25,
)  # fmt: skip


TOP_KEYS = ["conversations", "messages", "audios", "audio", "text", "instruction", "output", "chosen", "rejected"]
TOP_KEYS += ["kto_tag", "id", "system", "chosen_messages"]


@PROPERTY
@given(st.sampled_from(DIALECTS), st.dictionaries(st.sampled_from(TOP_KEYS), JSONISH, max_size=5))
def test_compiled_schema_agrees_on_any_json(dialect: str, rec: dict[str, Any]) -> None:
    """Values of every JSON type under the schemas' keys, NaN, infinities and ints past 64 bits included."""
    agree(dialect, rec)


def test_generators_hit_the_enum_and_conditional_branches() -> None:
    # The content-part "type" enum and the audio_ref if/then/else forms: each passes and fails somewhere,
    # so the property test above really exercises them.
    rng = random.Random(7)
    parts = validators()["messages"]
    audio = validators()["minicpm"]
    seen: dict[tuple[Any, bool], int] = defaultdict(int)
    for _ in range(400):
        rec = generate("messages", rng)
        msgs = rec.get("messages")
        for m in msgs if isinstance(msgs, list) else []:
            content = m.get("content") if isinstance(m, dict) else None
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict):
                    one = {"messages": [{"role": "user", "content": [part]}]}
                    seen[(part.get("type"), parts.is_valid(one))] += 1
        ref = Gen(rng, 0.2).audio()
        form = type(ref).__name__ if not isinstance(ref, dict) else "array" if {"array", "sampling_rate"} & set(ref) else "file"
        seen[(form, audio.is_valid({"audio": ref, "text": "x"}))] += 1
    for kind in ("text", "audio", "input_audio", "str", "array", "file"):
        assert seen[(kind, True)] and seen[(kind, False)], kind
    assert not seen[("document", True)] and seen[("document", False)]


def test_integral_float_is_an_integer_to_both() -> None:
    a = {"id": 3.0, "audio": "a.wav", "text": "hi"}
    b = {"id": 3.5, "audio": "a.wav", "text": "hi"}
    assert agree("minicpm", a) and not agree("minicpm", b)
    check = SchemaCheck(DialectSpec())
    assert check(a, "minicpm", SRC) == []
    assert [f.field for f in check(b, "minicpm", SRC)] == ["id"]


@pytest.mark.parametrize(
    "rec",
    [
        {"audio": {"array": [math.nan, 0.1], "sampling_rate": 16000}, "text": "x"},
        {"audio": {"array": [math.inf], "sampling_rate": 16000}, "text": "x"},
        {"audio": "a.wav", "text": "x", "id": 2**70},
        {"audio": "a.wav", "text": "x", "id": -(2**64)},
        {"audio": "a.wav", "text": type("Sub", (str,), {})("x")},
    ],
)
def test_values_the_compiled_schema_cannot_take_go_to_jsonschema(rec: dict[str, Any]) -> None:
    """NaN, infinities, huge ints, str subclasses: whatever jsonschema-rs makes of them, jsonschema's verdict stands."""
    want = validators()["minicpm"].is_valid(rec)
    assert (SchemaCheck(DialectSpec())(rec, "minicpm", SRC) == []) == want


# ---------------------------------------------------------------------------
# SchemaCheck: findings located in the user's terms
# ---------------------------------------------------------------------------

TURNS = [{"from": "human", "value": "<audio>What is said?"}, {"from": "gpt", "value": "Hello."}]
V1_AUDIO = {"type": "audio", "value": "a.wav"}  # ms-swift's item type with v1's key: v1 knows "audio_url" only
VALID = {
    "sharegpt": {"conversations": TURNS, "audios": ["a.wav"]},
    "alpaca": {"instruction": "<audio>Transcribe.", "output": "hi", "audios": [{"path": "a.wav"}]},
    "messages": {
        "messages": [
            {"role": "user", "content": [{"type": "audio", "path": "a.wav"}, {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": "Hello."},
        ]
    },
    "minicpm": {"audio": {"array": [0.0, 0.1], "sampling_rate": 16000}, "text": "hello"},
    "llamafactory-v1": {  # data/v1_sft_demo.jsonl:1 with an audio item (types.py Content "audio_url")
        "messages": [
            {
                "role": "user",
                "content": [{"type": "audio_url", "value": "a.wav"}, {"type": "text", "value": "What?"}],
                "loss_weight": 0.0,
            },
            {"role": "assistant", "content": [{"type": "text", "value": "Hello."}], "loss_weight": 1.0},
        ]
    },
}


def fields(obj: Any, dialect: str, spec: DialectSpec | None = None) -> list[str]:
    found = SchemaCheck(spec or DialectSpec())(obj, dialect, SRC)
    assert all(f.code == "S005" and f.source == SRC and f.is_error for f in found)
    assert all(f.message.startswith(f"{dialect} schema: ") for f in found)
    return [f.field for f in found]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_valid_records_have_no_findings(dialect: str) -> None:
    assert fields(VALID[dialect], dialect) == []


@pytest.mark.parametrize(
    ("dialect", "obj", "expected"),
    [
        ("sharegpt", {"conversations": [TURNS[0], {"from": "gpt", "value": 5}], "audios": ["a.wav"]}, ["conversations[1].value"]),
        ("sharegpt", {"conversations": TURNS, "audios": ["a.wav"], "kto_tag": "true"}, ["kto_tag"]),
        ("sharegpt", {"conversations": TURNS, "audios": [""]}, ["audios[0]"]),
        ("sharegpt", {"conversations": TURNS, "audios": ["a.wav", {"array": [0.1]}]}, ["audios[1]"]),
        ("sharegpt", {"conversations": TURNS, "audios": [{"path": "a.wav", "codec": "wav"}]}, ["audios[0]"]),
        ("sharegpt", {"conversations": TURNS, "audios": [{}]}, ["audios[0]"]),
        ("sharegpt", {"conversations": TURNS, "audios": [{"array": [0.1], "sampling_rate": 0}]}, ["audios[0].sampling_rate"]),
        ("sharegpt", {"conversations": TURNS, "audios": ""}, ["audios"]),
        ("sharegpt", {"conversations": [], "audios": []}, ["conversations"]),
        ("sharegpt", {"conversations": [{"from": "human"}, {"role": "gpt"}]}, ["conversations[0]", "conversations[1]"]),
        ("alpaca", {"instruction": 3, "output": "x"}, ["instruction"]),
        ("alpaca", {"instruction": "q", "output": "x", "history": [["a"]]}, ["history[0]"]),
        ("alpaca", {"instruction": "q", "output": "x", "audios": [5]}, ["audios[0]"]),
        ("messages", {"messages": [{"role": "user", "content": [{"type": "document"}]}]}, ["messages[0].content[0].type"]),
        (
            "messages",
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
            ["messages[0].content[0].input_audio.data"],
        ),
        ("minicpm", {"audio": {"array": [0.1], "sampling_rate": "16000"}, "text": "x"}, ["audio.sampling_rate"]),
        ("minicpm", {"audios": [], "text": "x"}, ["audios"]),
        ("minicpm", {"audio": "a.wav", "text": 7}, ["text"]),
        ("llamafactory-v1", {"messages": [{"role": "user", "content": [V1_AUDIO]}]}, ["messages[0].content[0].type"]),
        ("llamafactory-v1", {"messages": [{"role": "user", "content": [{"type": "text", "x": 1}]}]}, ["messages[0].content[0]"]),
        ("llamafactory-v1", {"messages": [{"role": "user", "content": "hi"}]}, ["messages[0].content"]),
        ("llamafactory-v1", {"chosen_messages": [{"role": "user", "content": []}]}, [""]),
        ("llamafactory-v1", {"messages": [{"role": "user", "content": [], "loss_weight": "1"}]}, ["messages[0].loss_weight"]),
    ],
)
def test_findings_are_located(dialect: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert fields(obj, dialect) == expected


def test_valid_records_skip_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    real = validators()["sharegpt"]
    calls: list[Any] = []

    class Spy:
        def iter_errors(self, obj: Any) -> Iterator[Any]:
            calls.append(obj)
            return real.iter_errors(obj)

    monkeypatch.setattr(schema_mod, "validators", lambda: {"sharegpt": Spy()})
    check = SchemaCheck(DialectSpec())
    good = VALID["sharegpt"]
    other = {"conversations": [{"from": "gpt", "value": "x" * 500}, {"from": "human", "value": "?"}], "audios": ["z.flac"]}
    assert check(good, "sharegpt", SRC) == [] and check(other, "sharegpt", SRC) == []
    assert calls == []  # the compiled schema accepted both
    bad = {"conversations": TURNS, "audios": [""]}
    assert check(bad, "sharegpt", SRC) and check(bad, "sharegpt", SRC)
    assert len(calls) == 2  # a rejected record goes to jsonschema each time, to locate the problem
    assert check(good, "sharegpt", SRC) == [] and len(calls) == 2


def test_verdicts_are_per_dialect() -> None:
    check = SchemaCheck(DialectSpec())
    good = VALID["sharegpt"]
    assert check(good, "sharegpt", SRC) == []
    assert check(good, "minicpm", SRC)  # valid as sharegpt says nothing about minicpm


def test_at_most_max_errors() -> None:
    obj = {"conversations": [{"from": "human", "value": i} for i in range(MAX_ERRORS * 3)], "kto_tag": "yes", "system": 1}
    found = fields(obj, "sharegpt")
    assert len(found) == MAX_ERRORS
    assert len(set(found)) == MAX_ERRORS  # one finding per field


def test_one_finding_per_field() -> None:
    # An object failing several keywords at once is reported once.
    obj = {"audio": {"array": [], "sampling_rate": -1, "bytes": "x"}, "text": "x"}
    found = fields(obj, "minicpm")
    assert len(found) == len(set(found))
    assert "audio" in found or any(f.startswith("audio.") for f in found)


@pytest.mark.parametrize(
    ("dialect", "obj"),
    [
        ("minicpm", {"audio": "UklGRiQAAABXQVZF" * 5000, "audios": ["UklGRiQAAABXQVZF" * 5000], "text": "x"}),
        ("messages", {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": "QUJD" * 20000}]}]}),
        ("sharegpt", {"conversations": [{"from": "human", "value": ["QUJD" * 20000]}]}),
        ("alpaca", {"instruction": "q", "output": "x", "audios": {"bytes": "QUJD" * 20000, "array": [0.1]}}),
    ],
)
def test_long_values_give_short_messages(dialect: str, obj: dict[str, Any]) -> None:
    found = SchemaCheck(DialectSpec())(obj, dialect, SRC)
    assert found
    for f in found:
        assert len(f.message) <= 200 + len(f"{dialect} schema: "), len(f.message)
    if dialect == "sharegpt":  # the long value is elided in the middle: the reason at the end is kept
        assert found[0].message.endswith(" ... is not of type 'string'"), found[0].message


# ---------------------------------------------------------------------------
# Custom columns and tags from dataset_info.json
# ---------------------------------------------------------------------------

CUSTOM = DialectSpec(formatting="sharegpt", columns={"messages": "dialog", "audios": "sounds"})


def test_custom_columns_valid() -> None:
    assert fields({"dialog": TURNS, "sounds": ["a.wav"]}, "sharegpt", CUSTOM) == []


def test_custom_columns_reported_in_user_names() -> None:
    assert fields({"dialog": [{"from": "human", "value": 3}], "sounds": ["a.wav"]}, "sharegpt", CUSTOM) == ["dialog[0].value"]
    assert fields({"dialog": TURNS, "sounds": ["a.wav", ""]}, "sharegpt", CUSTOM) == ["sounds[1]"]
    assert fields({"dialog": []}, "sharegpt", CUSTOM) == ["dialog"]
    # The renamed column is required under its own name: without "dialog" the default "conversations" is missing.
    assert fields({"sounds": ["a.wav"]}, "sharegpt", CUSTOM) == [""]


def test_custom_alpaca_columns() -> None:
    spec = DialectSpec(formatting="alpaca", columns={"prompt": "question", "response": "answer", "query": "instruction"})
    assert fields({"question": "q", "answer": "a"}, "alpaca", spec) == []
    assert fields({"question": 3, "answer": "a"}, "alpaca", spec) == ["question"]
    # "instruction" is the user's query column here: a wrong type there is reported under that name.
    assert fields({"question": "q", "instruction": 1, "answer": "a"}, "alpaca", spec) == ["instruction"]


def test_unmapped_default_named_key_is_ignored() -> None:
    spec = DialectSpec(formatting="sharegpt", columns={"audios": "sounds"})
    # LLaMA-Factory (and audiodata's parser) only read "sounds"; "audios" is an unused extra column.
    assert fields({"conversations": TURNS, "sounds": ["a.wav"], "audios": 5}, "sharegpt", spec) == []


def test_custom_tags_skip_validation() -> None:
    spec = DialectSpec(formatting="sharegpt", tags={"role_tag": "speaker", "content_tag": "text"})
    assert fields({"conversations": [{"speaker": "human", "text": 5}]}, "sharegpt", spec) == []
    assert fields({"conversations": 5, "kto_tag": "true"}, "sharegpt", spec) == []


def test_known_tags_are_validated() -> None:
    role_content = DialectSpec(formatting="sharegpt", tags={"role_tag": "role", "content_tag": "content", "user_tag": "user"})
    assert fields({"conversations": [{"role": "user", "content": "hi"}]}, "sharegpt", role_content) == []
    assert fields({"conversations": [{"role": "user", "content": 5}]}, "sharegpt", role_content) == ["conversations[0].content"]
    # Only role values changed: from/value still apply.
    values_only = DialectSpec(formatting="sharegpt", tags={"user_tag": "user"})
    assert fields({"conversations": [{"from": "user", "value": 5}]}, "sharegpt", values_only) == ["conversations[0].value"]


def test_non_objects_and_unknown_dialects_are_left_to_the_parser() -> None:
    check = SchemaCheck(DialectSpec())
    assert check([1, 2], "sharegpt", SRC) == []
    assert check({"conversations": 5}, "no-such-dialect", SRC) == []


# ---------------------------------------------------------------------------
# End to end through lint's read stage
# ---------------------------------------------------------------------------


def test_lint_reports_s005_and_falls_back_to_s001(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]}
    bad = copy.deepcopy(good)
    bad["conversations"][1]["value"] = 5
    path.write_text("\n".join(json.dumps(r) for r in (good, bad, good)) + "\n")

    report = lint([path], audio=False, num_workers=1)
    assert report.records == 3
    found = [(f.code, f.field, f.source.index) for f in report.findings if f.source and f.code in ("S001", "S005")]
    assert found == [("S005", "conversations[1].value", 1)]
    assert report.exit_code == 1

    # With S005 ignored the parser's own S001 shows: the record still fails, it never vanishes.
    report = lint([path], audio=False, num_workers=1, ignore=["S005"])
    found = [(f.code, f.field, f.source.index) for f in report.findings if f.source and f.code in ("S001", "S005")]
    assert found == [("S001", "conversations[1].value", 1)]
    assert report.exit_code == 1
    assert report.to_dict()["summary"]["records_with_errors"] == 1
