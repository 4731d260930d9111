"""LLaMA-Factory v1 (``data/v1_*.jsonl``): messages whose ``content`` is a list of typed items.

The shapes are those of ``src/llamafactory/v1/utils/types.py`` (``Content``, ``Message``,
``SFTSample``, ``DPOSample``): a row is ``{"messages", "tools"?}`` for SFT or
``{"chosen_messages", "rejected_messages", "tools"?}`` for DPO; each message is
``{"role", "content": [{"type", "value"}], "loss_weight"?}``. Items become text with
markers in place (``audio_url`` -> ``<audio>`` and its value an audio reference,
``image_url``/``video_url`` -> ``<image>``/``<video>``), an assistant message made of
``tool_call`` items a ``function_call`` turn.

How v1 trains a row decides what can be kept (``core/rendering/rendering.py``): each side of
a pair is rendered alone and only its last message is supervised, everything before it
being the prompt (``_render_messages``: ``prompt_ids`` from ``messages[:-1]``). So a pair
is an ordinary DPO record only when both sides share that prompt; otherwise it is refused
here, located at the first message that differs. An assistant turn's ``loss_weight``
(``core/data_engine.py`` ``_prefix_cuts``) says whether and how much it is trained; the
canonical record trains every assistant turn fully, so any other weight is refused
rather than silently changed.

Rows read through a v1 dataset YAML's ``converter`` (``plugins/data_plugins/converter.py``)
are alpaca/sharegpt rows (read by those dialects, after :func:`check_converter_row`) or
``pair`` rows (``chosen``/``rejected`` OpenAI message lists), read here.
"""

from __future__ import annotations

import json
from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    Visual,
    audio_list,
    content_item,
    new_record,
    pop_system,
    require,
    visual_refs,
)
from audiodata.records import AudioRef, Message, Record

DIALECT = "llamafactory-v1"
#: ``Content.type`` and ``Message.role`` of ``v1/utils/types.py``.
ITEM_TYPES = ("text", "reasoning", "tool_call", "image_url", "video_url", "audio_url")
ROLES = ("system", "user", "assistant", "tool")  # kept as written: any other role is S002's to report
CONVERTERS = ("alpaca", "sharegpt", "pair")
#: Raw columns each v1 converter never reads: a value there would be lost, so it is refused.
CONVERTER_IGNORES = {
    "alpaca": ("history", "tools", "chosen", "rejected"),
    "sharegpt": ("system", "chosen", "rejected", "messages"),
}
SIDES = ("chosen_messages", "rejected_messages")


def is_v1_row(obj: dict[str, Any]) -> bool:
    """A v1 row: a pair of ``*_messages`` lists, or messages whose content items carry ``value``."""
    if "chosen_messages" in obj:
        return True
    msgs = obj.get("messages")
    first = msgs[0] if isinstance(msgs, list) and msgs else None
    content = first.get("content") if isinstance(first, dict) else None  # v1 content is always an item list
    item = content[0] if isinstance(content, list) and content else None
    return isinstance(item, dict) and "value" in item and "text" not in item


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    if ctx.spec.converter == "pair":
        return _parse_pair(obj, ctx)
    pair = [k for k in SIDES if k in obj]
    if obj.get("messages") is not None and pair:
        raise ParseError(
            "S001", f"both messages and {pair[0]}: LLaMA-Factory v1 would train it as SFT and drop the pair", pair[0]
        )
    if obj.get("extra_info") not in (None, ""):
        raise ParseError(
            "S001", "extra_info cannot be kept (v1 hands it to the trainer as is; the record has no field for it)", "extra_info"
        )
    tools = _tools(obj)
    inline: list[AudioRef] = []
    visual = Visual()
    if pair:
        return _parse_dpo(obj, ctx, tools, inline, visual)
    if obj.get("messages") is None:
        raise ParseError("S001", "missing field 'messages' (or chosen_messages and rejected_messages)", "messages")
    msgs = _turns(obj["messages"], "messages", inline, True, visual)
    msgs, system = pop_system(msgs, None)
    media = visual_refs({}, visual, "messages")
    return new_record(obj, ctx, DIALECT, kind="sft", messages=msgs, audios=inline, **media, system=system, tools=tools)


def _parse_dpo(obj: dict[str, Any], ctx: ParseContext, tools: str | None, inline: list[AudioRef], visual: Visual) -> Record:
    sides = []
    for key in SIDES:
        value = obj.get(key)
        if value is None:
            raise ParseError("S001", f"missing field {key!r} (a v1 pair needs chosen_messages and rejected_messages)", key)
        if not isinstance(value, list) or not value:
            raise ParseError("S001", f"{key} must be a non-empty list of messages", key)
        sides.append(value)
    chosen, rejected = sides
    same_prompt(chosen, rejected, SIDES)
    prompt = _turns(chosen[:-1], "chosen_messages", inline, False, visual)
    answers = [
        [_message(side[-1], f"{key}[{len(side) - 1}]", inline, True, visual)] for key, side in zip(SIDES, sides, strict=True)
    ]
    prompt, system = pop_system(prompt, None)
    return new_record(
        obj,
        ctx,
        DIALECT,
        kind="dpo",
        messages=prompt,
        audios=inline,
        **visual_refs({}, visual, "chosen_messages"),
        system=system,
        tools=tools,
        chosen=answers[0],
        rejected=answers[1],
    )


def same_prompt(chosen: list[Any], rejected: list[Any], names: tuple[str, str]) -> None:
    """Both sides of a pair must share their prompt: everything before the last message, compared by role and
    content (a prompt message's loss_weight is never read: only the last message is trained)."""
    a, b = chosen[:-1], rejected[:-1]
    if len(a) != len(b):
        raise ParseError(
            "S001",
            f"{names[1]} has {len(b)} prompt messages, {names[0]} {len(a)}: the two sides of a pair share one prompt "
            "(everything before the last message)",
            names[1],
        )
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if _said(x) != _said(y):
            raise ParseError(
                "S001",
                f"{names[1]}[{i}] differs from {names[0]}[{i}]: the two sides of a pair share one prompt "
                "(everything before the last message)",
                f"{names[1]}[{i}]",
            )


def _said(m: Any) -> Any:
    return (m.get("role"), m.get("content")) if isinstance(m, dict) else m


def _turns(raw: Any, field: str, inline: list[AudioRef], weighted: bool, visual: Visual) -> list[Message]:
    if not isinstance(raw, list):
        raise ParseError("S001", f"{field} must be a list of messages, got {type(raw).__name__}", field)
    return [_message(m, f"{field}[{i}]", inline, weighted, visual) for i, m in enumerate(raw)]


def _message(m: Any, fld: str, inline: list[AudioRef], weighted: bool, visual: Visual) -> Message:
    """One v1 message. ``weighted``: its ``loss_weight`` decides training (SFT turns, the last turn of a pair)."""
    if not isinstance(m, dict):
        raise ParseError("S001", "a message must be an object", fld)
    role = require(m, "role", str, f"{fld}.role")
    items = m.get("content")
    if not isinstance(items, list):
        got = "missing" if items is None else type(items).__name__
        raise ParseError("S001", f"content must be a list of {{type, value}} items ({got})", f"{fld}.content")
    texts: list[str] = []
    calls: list[str] = []
    for i, item in enumerate(items):
        ifld = f"{fld}.content[{i}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(item, dict) and kind not in ITEM_TYPES:
            raise ParseError("S001", f"unknown content item type {kind!r} (v1 knows {', '.join(ITEM_TYPES)})", f"{ifld}.type")
        if kind == "reasoning":
            raise ParseError("S001", "a reasoning item cannot be kept: the record has no reasoning field", ifld)
        if kind == "tool_call":
            calls.append(_tool_call(item, ifld))
        else:
            texts.append(content_item(item, ifld, inline, [0], "value", visual))
    canonical = role
    if calls:
        if role != "assistant" or texts:
            raise ParseError(
                "S001", "tool_call items must make up a whole assistant message (a function_call turn)", f"{fld}.content"
            )
        canonical = "function_call"
    if weighted and canonical in ("assistant", "function_call"):
        _check_weight(m, fld)
    content = calls[0] if len(calls) == 1 else "[" + ", ".join(calls) + "]" if calls else "".join(texts)
    return Message(canonical, content, f"{fld}.content", "", f"{fld}.role")


def _tool_call(item: dict[str, Any], fld: str) -> str:
    """A tool call's JSON text, kept verbatim; v1 needs an object with name and arguments (``_to_hf_messages``)."""
    value = require(item, "value", str, f"{fld}.value")
    try:
        call = json.loads(value)
    except json.JSONDecodeError:
        call = None
    if not isinstance(call, dict) or "name" not in call or "arguments" not in call:
        raise ParseError("S001", "a tool_call value must be a JSON object with name and arguments", f"{fld}.value")
    return value


def _check_weight(m: dict[str, Any], fld: str) -> None:
    weight = m.get("loss_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ParseError("S001", f"loss_weight must be a number, got {type(weight).__name__}", f"{fld}.loss_weight")
    if weight != 1:
        raise ParseError(
            "S001",
            f"loss_weight {weight} on an assistant turn cannot be kept: the record trains every assistant turn "
            "with weight 1 (0: v1 does not train it)",
            f"{fld}.loss_weight",
        )


def _tools(obj: dict[str, Any]) -> str | None:
    """``tools``: a JSON string, as v1 parses it before rendering (``tools is not valid JSON`` otherwise)."""
    value = obj.get("tools")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError("S001", f"tools must be a JSON string, got {type(value).__name__}", "tools")
    try:
        json.loads(value)
    except json.JSONDecodeError:
        raise ParseError("S001", "tools is not valid JSON", "tools") from None
    return value


# -- rows read through a v1 dataset YAML's converter --------------------------------------------------


def check_converter_row(obj: dict[str, Any], converter: str) -> None:
    """Refuse values the v1 converter would drop (``converter.py``: each converter reads fixed keys)."""
    for key in CONVERTER_IGNORES.get(converter, ()):
        if obj.get(key) not in (None, "", []):
            raise ParseError(
                "S001", f"{key}: LLaMA-Factory v1's {converter} converter does not read it, so it would be lost", key
            )


def _parse_pair(obj: dict[str, Any], ctx: ParseContext) -> Record:
    """The ``pair`` converter's rows: ``chosen``/``rejected`` lists of ``{role, content: str}``, each a whole
    conversation, media in ``audios`` consumed by each side's markers (``pair_converter``)."""
    sides = []
    for key in ("chosen", "rejected"):
        value = obj.get(key)
        if not isinstance(value, list) or not value:
            got = "missing" if value is None else type(value).__name__
            raise ParseError("S001", f"{key} must be a non-empty list of messages ({got})", key)
        sides.append(value)
    same_prompt(sides[0], sides[1], ("chosen", "rejected"))
    prompt = [_text_message(m, f"chosen[{i}]") for i, m in enumerate(sides[0][:-1])]
    answers = [
        [_text_message(side[-1], f"{key}[{len(side) - 1}]")] for key, side in zip(("chosen", "rejected"), sides, strict=True)
    ]
    prompt, system = pop_system(prompt, None)
    return new_record(
        obj,
        ctx,
        DIALECT,
        kind="dpo",
        messages=prompt,
        audios=audio_list(obj.get("audios"), "audios"),
        system=system,
        tools=_tools(obj),
        chosen=answers[0],
        rejected=answers[1],
    )


def _text_message(m: Any, fld: str) -> Message:
    if not isinstance(m, dict):
        raise ParseError("S001", "a message must be an object", fld)
    role = require(m, "role", str, f"{fld}.role")
    content = require(m, "content", str, f"{fld}.content")
    return Message(role, content, f"{fld}.content", "", f"{fld}.role")
