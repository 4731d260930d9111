"""S005: raw records against ``schemas/input/<dialect>.json``, and the shape memo behind it.

``SchemaCheck`` validates a record only when its ``shape()`` has not been seen valid before.
That is sound only if no schema keyword can tell apart two values with the same shape,
so the first test walks every schema and admits only keywords whose outcome depends on
what ``shape`` keeps; the property tests then check the claim on generated records.
"""

from __future__ import annotations

import copy
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from audiodata.pipeline.lint import lint
from audiodata.readers.spec import DialectSpec
from audiodata.records import SourceLoc
from audiodata.rules import schema as schema_mod
from audiodata.rules.schema import (
    LENGTH_CLASSES,
    MAX_ERRORS,
    SchemaCheck,
    documents,
    named_strings,
    schema_dir,
    shape,
    validators,
)

SRC = SourceLoc("in.jsonl", 3, 4)
DIALECTS = ("sharegpt", "alpaca", "messages", "minicpm", "llamafactory-v1")

# ---------------------------------------------------------------------------
# Soundness of the memo: which keywords the schemas may use
# ---------------------------------------------------------------------------

#: Keywords whose outcome depends only on what ``shape`` keeps.
ALLOWED = {
    # annotations / identifiers / references: no assertion of their own ($ref is followed: its target is walked too)
    "$schema", "$id", "$ref", "$defs", "title", "description",
    # type: shape keeps the JSON type (str / dict / list / bool / None verbatim / int vs float).
    # "integer" also accepts integral floats (1.0): shape keeps a float's integrality for that reason
    # (test_integral_float_shares_shape_with_fraction).
    "type",
    # keys are kept verbatim and in order, values by shape: every key-driven keyword is decided
    "properties", "required", "additionalProperties", "dependentRequired", "dependentSchemas",
    "propertyNames", "minProperties", "maxProperties",
    # items: applies one subschema to every element; shape keeps the set of element shapes
    "items",
    # composition: decided when each branch is
    "if", "then", "else", "anyOf", "allOf", "oneOf", "not",
    # const/enum: every string they name is kept verbatim by shape (named_strings); bools and null are verbatim too
    "const", "enum",
    # bounded below (see the bound checks): length classes, empty vs non-empty strings, number classes
    "minItems", "maxItems", "minLength", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
}  # fmt: skip

#: Keywords that look at what shape discards: string contents/lengths, element order/identity, exact numbers.
FORBIDDEN = {
    "pattern", "format", "maxLength", "uniqueItems", "prefixItems", "contains", "minContains", "maxContains",
    "multipleOf", "patternProperties", "unevaluatedItems", "unevaluatedProperties",
}  # fmt: skip

#: Inside ``propertyNames`` the instance is a KEY, which shape keeps verbatim: any string keyword is sound there.
ALLOWED_OVER_KEYS = {"description", "title", "const", "enum", "pattern", "minLength", "maxLength"}

#: Number classes of shape: < 0, == 0, (0, 1), >= 1. A bound is sound when its predicate is constant on each class:
#: x >= 0, x >= 1 | x > 0 | x <= 0 | x < 0, x < 1. (x > 1 or x <= 1 would split the class >= 1.)
SOUND_BOUNDS = {"minimum": {0, 1}, "exclusiveMinimum": {0}, "maximum": {0}, "exclusiveMaximum": {0, 1}}
NUMBER_SAMPLES = [-1e9, -7, -1, -0.5, -1e-9, 0, 0.0, -0.0, 1e-9, 0.25, 0.999, 1, 1.0, 1.5, 2, 16000, 16000.5, 1e12]

_SUBSCHEMA_MAPS = {"properties", "$defs", "dependentSchemas", "patternProperties"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_SUBSCHEMA = {"items", "additionalProperties", "if", "then", "else", "not", "propertyNames", "contains"}
_SUBSCHEMA |= {"unevaluatedItems", "unevaluatedProperties"}


def walk(node: Any, where: str, over_keys: bool = False) -> Iterator[tuple[str, str, Any, bool]]:
    """(location, keyword, value, inside propertyNames) for every keyword of every (sub)schema."""
    if isinstance(node, bool):
        return
    assert isinstance(node, dict), where
    for kw, value in node.items():
        yield where, kw, value, over_keys
        if kw in _SUBSCHEMA_MAPS:
            for name, sub in value.items():
                yield from walk(sub, f"{where}/{kw}/{name}", over_keys)
        elif kw in _SUBSCHEMA_LISTS:
            for i, sub in enumerate(value):
                yield from walk(sub, f"{where}/{kw}/{i}", over_keys)
        elif kw in _SUBSCHEMA:
            yield from walk(value, f"{where}/{kw}", over_keys or kw == "propertyNames")


def all_keywords() -> list[tuple[str, str, Any, bool]]:
    return [k for name, doc in documents().items() for k in walk(doc, name)]


def test_schema_dir_is_the_one_validated() -> None:
    names = {p.stem for p in schema_dir().glob("*.json")}
    assert set(DIALECTS) <= names
    assert set(DIALECTS) <= set(validators())
    assert set(documents()) == names


def test_memo_soundness_keywords() -> None:
    used = all_keywords()
    on_values = {kw for _, kw, _, keys in used if not keys}
    on_keys = {kw for _, kw, _, keys in used if keys}
    assert on_values <= ALLOWED, on_values - ALLOWED
    assert not on_values & FORBIDDEN
    assert on_keys <= ALLOWED_OVER_KEYS, on_keys - ALLOWED_OVER_KEYS
    # Not vacuous: the walker reaches the nested defs and the keyword families the checks below are about.
    assert {"minLength", "minItems", "maxItems", "exclusiveMinimum", "minimum", "propertyNames", "enum", "const"} <= on_values
    assert len(used) > 300


def test_memo_soundness_bounds() -> None:
    found = defaultdict(list)
    for where, kw, value, over_keys in all_keywords():
        if over_keys:
            continue  # keys are verbatim: any bound on them is sound
        found[kw].append(value)
        if kw == "minLength":
            assert value <= 1, where  # shape keeps strings as empty / non-empty only
        elif kw in ("minItems", "maxItems"):
            assert value <= LENGTH_CLASSES - 1, where  # lengths 0..LENGTH_CLASSES-1 are exact, then one class
        elif kw in SOUND_BOUNDS:
            assert value in SOUND_BOUNDS[kw], (where, kw, value)
        elif kw in ("const", "enum"):
            for v in value if kw == "enum" else [value]:
                # numbers are abstracted by shape, strings only kept verbatim if named here
                assert v is None or isinstance(v, (str, bool)), (where, v)
                if isinstance(v, str):
                    assert v in named_strings()
        elif kw == "type":
            types = value if isinstance(value, list) else [value]
            assert set(types) <= {"string", "integer", "number", "object", "array", "boolean", "null"}, where
    assert found["minLength"] and found["minItems"] and found["maxItems"]
    assert found["exclusiveMinimum"] == [0]  # audio_ref sampling_rate > 0
    assert found["minimum"] == [1]  # dataset_info num_samples >= 1


@pytest.mark.parametrize(("kw", "bound"), [(kw, b) for kw, bounds in SOUND_BOUNDS.items() for b in sorted(bounds)])
def test_sound_bounds_are_constant_per_number_class(kw: str, bound: int) -> None:
    # The table above, checked: within one shape class every sample number gets the same verdict.
    v = Draft202012Validator({kw: bound})
    verdicts: dict[Any, set[bool]] = defaultdict(set)
    for x in NUMBER_SAMPLES:
        verdicts[shape(x)[1]].add(v.is_valid(x))
    assert all(len(s) == 1 for s in verdicts.values()), verdicts
    # ... and the unsound neighbours really are unsound, so the table is not arbitrary.
    for bad_kw, bad_bound in [("maximum", 1), ("exclusiveMinimum", 1), ("minimum", 0.5)]:
        bad = Draft202012Validator({bad_kw: bad_bound})
        split: dict[Any, set[bool]] = defaultdict(set)
        for x in NUMBER_SAMPLES:
            split[shape(x)[1]].add(bad.is_valid(x))
        assert any(len(s) == 2 for s in split.values()), (bad_kw, bad_bound)


def test_length_classes_match_shape() -> None:
    # Lists are told apart up to LENGTH_CLASSES, and by the set of element shapes, not their order or count beyond it.
    assert shape([]) != shape(["a"]) != shape(["a", "b"])
    assert shape(["a"] * LENGTH_CLASSES) == shape(["b"] * (LENGTH_CLASSES + 5))
    assert shape([1, "x"]) == shape(["y", 2])
    assert shape(["", "x"]) != shape(["x", "y"])
    # Named strings are verbatim, others only empty / non-empty.
    assert shape("text") == "text" and shape("audio") != shape("text")
    assert shape("hello") == shape("A" * 10_000) != shape("")
    assert shape(True) != shape(1) and shape(None) != shape(0)


# ---------------------------------------------------------------------------
# Property test: same shape => same validity
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


_NUM_CLASSES: dict[tuple[str, int], list[Any]] = defaultdict(list)
for _x in INTS + FLOATS + [-(10**9), 10**6 + 0.25, -1e9 - 0.5]:
    _NUM_CLASSES[shape(_x)].append(_x)


def twin(value: Any, rng: random.Random) -> Any:
    """Another value with the same shape: other strings, other numbers of the same class, other list lengths."""
    if isinstance(value, str):
        if value in named_strings() or not value:
            return value
        return rng.choice(["b", "another string", "y" * rng.randint(1, 2000), "日本語", "UklGRg==" * rng.randint(1, 99)])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return rng.choice(_NUM_CLASSES[shape(value)])
    if isinstance(value, list):
        out = [twin(v, rng) for v in value]
        if len(value) >= LENGTH_CLASSES:  # any length in the top class, same set of element shapes
            out += [twin(rng.choice(value), rng) for _ in range(rng.randint(0, 3))]
            rng.shuffle(out)
        return out
    if isinstance(value, dict):
        return {k: twin(v, rng) for k, v in value.items()}
    raise TypeError(value)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_same_shape_same_validity(dialect: str) -> None:
    rng = random.Random(f"s005-{dialect}")
    is_valid = validators()[dialect].is_valid
    by_shape: dict[Any, dict[bool, str]] = defaultdict(dict)
    n_valid = n_twins = 0
    for _ in range(400):
        rec = generate(dialect, rng)
        ok = is_valid(rec)
        n_valid += ok
        by_shape[shape(rec)].setdefault(ok, json.dumps(rec)[:300])
        other = twin(rec, rng)
        assert shape(other) == shape(rec)
        if other != rec:
            n_twins += 1
            assert is_valid(other) == ok, (rec, other)
    conflicts = {k: v for k, v in by_shape.items() if len(v) > 1}
    assert not conflicts, next(iter(conflicts.values()))
    # Not vacuous: a good mix of valid and invalid records, most with a distinct twin.
    assert 80 <= n_valid <= 320, n_valid
    assert n_twins >= 300


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


def test_integral_float_shares_shape_with_fraction() -> None:
    a = {"id": 3.0, "audio": "a.wav", "text": "hi"}
    b = {"id": 3.5, "audio": "a.wav", "text": "hi"}
    assert SchemaCheck(DialectSpec())(b, "minicpm", SRC)  # on its own, b is rejected
    check = SchemaCheck(DialectSpec())
    assert check(a, "minicpm", SRC) == []
    assert [f.field for f in check(b, "minicpm", SRC)] == ["id"]  # ... and still after a: the memo tells them apart


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


def test_memo_valid_after_invalid_and_back() -> None:
    check = SchemaCheck(DialectSpec())
    bad = {"conversations": [TURNS[0], {"from": "gpt", "value": 5}], "audios": ["a.wav"]}
    good = VALID["sharegpt"]
    assert shape(bad) != shape(good)
    assert check(good, "sharegpt", SRC) == []
    assert [f.field for f in check(bad, "sharegpt", SRC)] == ["conversations[1].value"]
    assert check(good, "sharegpt", SRC) == []
    # An invalid shape is never memoised as valid: the same mistake is reported every time.
    again = {"conversations": [TURNS[1], {"from": "human", "value": 6}], "audios": ["b.wav"]}
    assert shape(again) == shape(bad)
    assert [f.field for f in check(again, "sharegpt", SRC)] == ["conversations[1].value"]
    # A fresh check, invalid first.
    check = SchemaCheck(DialectSpec())
    assert check(bad, "sharegpt", SRC)
    assert check(good, "sharegpt", SRC) == []
    # The memo is per dialect: a shape valid as sharegpt says nothing about minicpm.
    assert check(good, "minicpm", SRC)


def test_memo_skips_the_validator_for_a_seen_valid_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    real = validators()["sharegpt"]
    calls: list[Any] = []

    class Spy:
        def iter_errors(self, obj: Any) -> Iterator[Any]:
            calls.append(obj)
            return real.iter_errors(obj)

    monkeypatch.setattr(schema_mod, "validators", lambda: {"sharegpt": Spy()})
    check = SchemaCheck(DialectSpec())
    good = VALID["sharegpt"]
    same_shape = {"conversations": [{"from": "gpt", "value": "x" * 500}, {"from": "human", "value": "?"}], "audios": ["z.flac"]}
    assert shape(same_shape) == shape(good)
    assert check(good, "sharegpt", SRC) == []
    assert check(same_shape, "sharegpt", SRC) == []
    assert len(calls) == 1
    bad = {"conversations": TURNS, "audios": [""]}
    assert check(bad, "sharegpt", SRC) and check(bad, "sharegpt", SRC)
    assert len(calls) == 3  # invalid shapes are validated each time, to locate the problem


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
