"""``conversation_keys`` (what exact dedup and the D001/D003 rules compare, computed for every record lint reads)
gives the digests of the plain definition: SFT's prompt is every turn before the last reply, the response the rest."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audiodata.dedup.index import conversation_keys
from audiodata.records import Message, Record, SourceLoc


def _h(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _flat(turns: Any) -> list[str]:
    return [x for m in turns for x in (m.role, m.content, "\x1e")]


def reference(rec: Record) -> tuple[bytes, bytes]:
    if rec.kind == "dpo":
        prompt_turns: Any = rec.messages
        response = ["c", *_flat(rec.chosen or ()), "r", *_flat(rec.rejected or ())]
    elif rec.kind == "kto":
        prompt_turns = [*rec.messages, *(rec.completion or ())]
        response = ["k", str(bool(rec.label))]
    else:
        last = max((i for i, m in enumerate(rec.messages) if m.role in ("assistant", "function_call")), default=-1)
        prompt_turns = rec.messages[:last] if last >= 0 else rec.messages
        response = _flat(rec.messages[last:]) if last >= 0 else []
    return _h("\x1f".join([rec.system or "", rec.tools or "", *_flat(prompt_turns)])), _h("\x1f".join(response))


ROLES = st.sampled_from(["user", "assistant", "function_call", "tool_response", "system", "narrator"])
TURNS = st.lists(st.builds(Message, ROLES, st.text(max_size=8)), max_size=6)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["sft", "dpo", "kto"]), TURNS, TURNS, TURNS, st.none() | st.text(max_size=5), st.none() | st.booleans())
def test_conversation_keys_are_the_plain_definitions(
    kind: str, messages: list[Message], chosen: list[Message], rejected: list[Message], system: str | None, label: bool | None
) -> None:
    rec = Record(id="r", kind=kind, messages=messages, source=SourceLoc("f", 0, 1), system=system)  # type: ignore[arg-type]
    if kind == "dpo":
        rec.chosen, rec.rejected = chosen, rejected
    elif kind == "kto":
        rec.completion, rec.label = chosen, label
    assert conversation_keys(rec) == reference(rec)
