"""ms-swift preference rows, read the way ms-swift 4.6.0 reads them, as one audiodata pair.

ms-swift gives the rejected side in two ways (docs/source_en/Customization/Custom-dataset.md,
section "DPO/ORPO/CPO/SimPO/RM"):

* ``rejected_response``, a string or a list of messages, replaces every turn after the last
  user turn of ``messages`` (swift/template/template_inputs.py:219-247; the last user turn is
  found by swift/template/utils.py:181-186 with ``include_tool=False``, so tool calls and their
  results belong to the chosen reply). The rejected side keeps the row's audios and tools unless
  ``rejected_audios``/``rejected_tools`` are given (template_inputs.py:268-275). Turns a list
  ``rejected_response`` repeats from the start of the chosen reply (the same tool call and result)
  weigh alike on both sides of the DPO loss, so audiodata moves them into the prompt.
* ``rejected_messages`` is a whole second conversation. Its media are ``rejected_audios`` etc.
  and nothing else: nothing is copied from the chosen side (template_inputs.py:253 and 268), and
  the row's ``system`` column applies to ``messages`` only (swift/dataset/preprocessor/core.py:
  693-695 normalises rejected_messages without it, lines 710-714 give it to messages).

audiodata stores one prompt, system, audio list and tools for both sides of a pair. So a row is a
pair only when ms-swift would train both sides on the same ones; otherwise it is refused (S010)
with the first difference named. Rows ms-swift deletes itself, a rejected reply equal to the
chosen one (core.py:154-161, template_inputs.py:239-246), are refused as well.
(Line numbers are those of the installed ms-swift 4.6.0 wheel.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    audio_list,
    merge_audios,
    optional_text,
    pop_system,
    turns,
)
from audiodata.records import RESPONSE_ROLES, AudioRef, Message

CODE = "S010"
NOT_A_PAIR = "ms-swift rows whose {what} differ are not a preference pair audiodata can store"
#: Columns that give the rejected side its own media or tools (ms-swift's ``rejected_`` + pair keys, core.py:24-30).
SIDE_KEYS = ("rejected_audios", "rejected_tools", "rejected_images", "rejected_videos")


@dataclass(slots=True)
class Pair:
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]


def form(obj: dict[str, Any]) -> str | None:
    """Which ms-swift preference form ``obj`` uses: ``rejected_messages``, ``rejected_response``,
    a lone rejected side column (``rejected_audios``…), or None for none."""
    has_messages, has_response = obj.get("rejected_messages") is not None, obj.get("rejected_response") is not None
    if has_messages and has_response:
        msg = "both rejected_messages and rejected_response: ms-swift silently replaces the first with the second "
        raise ParseError(CODE, msg + "(swift/template/template_inputs.py:247); keep one", "rejected_response")
    if has_messages:
        return "rejected_messages"
    if has_response:
        return "rejected_response"
    return next((k for k in SIDE_KEYS if obj.get(k) is not None), None)


def read(
    obj: dict[str, Any],
    ctx: ParseContext,
    how: str,
    msgs: list[Message],
    system: str | None,
    audios: list[AudioRef],
    tools: str | None,
) -> Pair:
    """The pair an ms-swift preference row stands for, or a :class:`ParseError` saying why it is none."""
    if how in SIDE_KEYS:
        msg = (
            f"{how} without rejected_response or rejected_messages: ms-swift trains the same reply against other "
            f"{how[9:]} (swift/template/template_inputs.py:268-275); audiodata pairs share them and differ in the reply"
        )
        raise ParseError(CODE, msg, how)
    if not msgs:
        raise ParseError("S001", "messages is empty", "messages")
    if how == "rejected_response":
        pair = _from_response(obj, ctx, msgs)
        _same_sides(obj, audios, tools, own_side=False)
        return pair
    pair, rsystem, raudios = _from_messages(obj, ctx, msgs)
    if rsystem != system:
        hint = ""
        if rsystem is None and obj.get("system") is not None:
            hint = (
                "; the row's system column applies to messages only (swift/dataset/preprocessor/core.py:693-695), "
                "so start both messages and rejected_messages with the system turn"
            )
        raise ParseError(CODE, f"the system of rejected_messages differs from that of messages{hint}", "rejected_messages")
    _same_audios(audios, raudios)
    _same_sides(obj, audios, tools, own_side=True)
    return pair


def _from_response(obj: dict[str, Any], ctx: ParseContext, msgs: list[Message]) -> Pair:
    value = obj["rejected_response"]
    if isinstance(value, str):
        rejected = [Message("assistant", value, "rejected_response")]
    elif isinstance(value, list):
        stray: list[AudioRef] = []
        rejected = turns(value, "rejected_response", ctx, stray, [0], "role", "content")
        user = next((m for m in rejected if m.role in ("user", "system")), None)
        if user is not None:  # template_inputs.py:233-236 raises for a user turn
            raise ParseError(CODE, f"a {user.role} turn in rejected_response: it holds the reply only", user.role_field)
        if stray:
            raise ParseError(CODE, "audio inside rejected_response: the reply cannot carry audio", stray[0].field)
    else:
        raise ParseError("S001", "rejected_response must be a string or a list of messages", "rejected_response")
    cut = next((i + 1 for i in range(len(msgs) - 1, -1, -1) if msgs[i].role == "user"), 0)
    # Turns both replies open with (the same tool call and result) train alike on both sides: they join the prompt.
    while cut + 1 < len(msgs) and len(rejected) > 1 and _same_turn(msgs[cut], rejected[0]):
        cut, rejected = cut + 1, rejected[1:]
    prompt, chosen = msgs[:cut], msgs[cut:]
    tool = next((m for m in chosen if m.role not in RESPONSE_ROLES), None)
    if tool is not None:
        msg = (
            f"rejected_response replaces every turn after the last user turn, {tool.role_field} "
            f"({tool.raw_role or tool.role}) included (swift/template/template_inputs.py:225-226): "
            "a reply holding tool results is not a pair audiodata can store"
        )
        raise ParseError(CODE, msg, tool.role_field)
    same_last = isinstance(value, str) and value == msgs[-1].content  # core.py:159-160
    same_single = len(chosen) == len(rejected) == 1 and chosen[0].content == rejected[0].content  # template_inputs.py:240-246
    if same_last or same_single:
        where = msgs[-1].field or "messages"
        msg = f"rejected_response equals the chosen reply ({where}): ms-swift deletes such rows"
        raise ParseError(CODE, msg, "rejected_response")
    return Pair(prompt, chosen, rejected)


def _from_messages(obj: dict[str, Any], ctx: ParseContext, msgs: list[Message]) -> tuple[Pair, str | None, list[AudioRef]]:
    value = obj["rejected_messages"]
    if not isinstance(value, list) or not value:
        raise ParseError(CODE, "rejected_messages must be a non-empty list of messages", "rejected_messages")
    inline: list[AudioRef] = []
    bare = [0]
    rmsgs = turns(value, "rejected_messages", ctx, inline, bare, "role", "content")
    rmsgs, rsystem = pop_system(rmsgs, None)
    for name, side in (("messages", msgs), ("rejected_messages", rmsgs)):
        if not side or side[-1].role not in RESPONSE_ROLES:
            where = side[-1].role_field if side else name
            raise ParseError(CODE, f"{name} must end on the assistant reply the pair compares", where)
    prompt, rprompt = msgs[:-1], rmsgs[:-1]
    for c, r in zip(prompt, rprompt, strict=False):
        theirs, ours = (r.role_field, c.role_field) if c.role != r.role else (r.field, c.field)
        if c.role != r.role or c.content != r.content:
            raise ParseError(CODE, f"{theirs} differs from {ours}: {NOT_A_PAIR.format(what='prompts')}", theirs)
    if len(prompt) != len(rprompt):
        msg = f"rejected_messages has {len(rprompt)} turns before its reply, messages {len(prompt)}: "
        raise ParseError(CODE, msg + NOT_A_PAIR.format(what="prompts"), "rejected_messages")
    raudios = merge_audios(audio_list(obj.get("rejected_audios"), "rejected_audios"), inline, bare[0], "rejected_messages")
    return Pair(prompt, [msgs[-1]], [rmsgs[-1]]), rsystem, raudios


def _same_turn(a: Message, b: Message) -> bool:
    return a.role == b.role and a.content == b.content


def _refs(audios: list[AudioRef]) -> list[tuple[str, Any, int | None]]:
    return [(a.kind, a.value, a.sampling_rate) for a in audios]


def _same_audios(audios: list[AudioRef], raudios: list[AudioRef]) -> None:
    """The rejected side's clips are the row's, reference for reference; else S010 at the first that is not."""
    if _refs(raudios) == _refs(audios):
        return
    if audios and not raudios:
        msg = (
            "rejected_audios is missing: with rejected_messages ms-swift gives the rejected side no audio "
            "(swift/template/template_inputs.py:253,268; the docs say to pass rejected_audios too); "
            "add rejected_audios equal to audios"
        )
        raise ParseError(CODE, msg, "rejected_audios")
    if len(audios) != len(raudios):
        msg = f"rejected_audios holds {len(raudios)} clip(s), audios {len(audios)}: {NOT_A_PAIR.format(what='audios')}"
        raise ParseError(CODE, msg, "rejected_audios")
    k = next(i for i, (a, b) in enumerate(zip(_refs(audios), _refs(raudios), strict=True)) if a != b)
    theirs = raudios[k].field
    raise ParseError(CODE, f"{theirs} differs from {audios[k].field}: {NOT_A_PAIR.format(what='audios')}", theirs)


def _same_sides(obj: dict[str, Any], audios: list[AudioRef], tools: str | None, own_side: bool) -> None:
    """Tools, images and videos of the rejected side equal the row's. ``own_side``: the rejected side has
    only its own columns (rejected_messages); otherwise a missing one means the row's (rejected_response)."""
    if not own_side and obj.get("rejected_audios") is not None:
        _same_audios(audios, audio_list(obj["rejected_audios"], "rejected_audios"))
    rtools = optional_text(obj, "rejected_tools")
    if (rtools is not None or own_side) and _json_or_text(rtools) != _json_or_text(tools):
        msg = f"rejected_tools differs from tools: {NOT_A_PAIR.format(what='tools')}"
        if rtools is None:
            msg = "rejected_tools is missing: with rejected_messages ms-swift gives the rejected side no tools; add it"
        raise ParseError(CODE, msg, "rejected_tools")
    for media in ("images", "videos"):
        rvalue = obj.get(f"rejected_{media}")
        if (rvalue is not None or own_side) and _listed(rvalue) != _listed(obj.get(media)):
            raise ParseError(CODE, f"rejected_{media} differs from {media}: {NOT_A_PAIR.format(what=media)}", f"rejected_{media}")


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _listed(value: Any) -> list[Any]:
    """A media column as ms-swift reads it: None is none, a scalar is a list of one (core.py:111-125)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
