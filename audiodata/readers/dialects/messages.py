"""``messages`` + ``audios`` (ms-swift, OpenAI style) and chat-template content lists.

Content items ``{"type": "audio", "path"|"audio"|"url": ...}`` become ``<audio>``
markers in place and their audio joins the record's list in order; value-less audio
items are markers whose audio comes from ``audios``. Image and video items
(``image``/``image_url``/``video``/``video_url``) work the same way with ``images``
and ``videos`` (or ms-swift's ``image``/``video``). Preference data is either
ms-swift's ``rejected_response`` (the last assistant turn is the chosen one) or
TRL's ``prompt``/``chosen``/``rejected``.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    Visual,
    audio_list,
    merge_audios,
    new_record,
    optional_text,
    pop_system,
    turns,
    visual_refs,
)
from audiodata.records import AudioRef, Message, Record


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    key = "messages" if obj.get("messages") is not None else "prompt"
    if not isinstance(obj.get(key), list):
        raise ParseError("S001", "missing field 'messages' (a list of {role, content})", "messages")
    if obj.get("rejected_messages") is not None:
        raise ParseError("S001", "rejected_messages is not supported; use rejected_response", "rejected_messages")
    inline: list[AudioRef] = []
    bare = [0]
    visual = Visual()
    msgs = turns(obj[key], key, ctx, inline, bare, "role", "content", visual)
    msgs, system = pop_system(msgs, optional_text(obj, "system"))
    chosen = rejected = None
    kind = "sft"
    if obj.get("rejected_response") is not None:
        kind = "dpo"
        if not isinstance(obj["rejected_response"], str):
            raise ParseError("S001", "rejected_response must be a string", "rejected_response")
        if not msgs:
            raise ParseError("S001", "messages is empty", key)
        chosen = [msgs.pop()]
        rejected = [Message("assistant", obj["rejected_response"], "rejected_response")]
    elif obj.get("chosen") is not None or obj.get("rejected") is not None:
        kind = "dpo"
        chosen, rejected = (_responses(obj, name, ctx, inline, bare, visual) for name in ("chosen", "rejected"))
    akey = "audios" if obj.get("audios") is not None else "audio"
    audios = merge_audios(audio_list(obj.get(akey), akey), inline, bare[0], key)
    listed = {name: _listed(obj, name) for name in ("images", "videos")}
    return new_record(
        obj,
        ctx,
        "messages",
        kind=kind,
        messages=msgs,
        audios=audios,
        **visual_refs(listed, visual, key),
        system=system,
        tools=optional_text(obj, "tools"),
        chosen=chosen,
        rejected=rejected,
    )


def _listed(obj: dict[str, Any], name: str) -> tuple[Any, str]:
    """ms-swift reads ``images``/``videos`` and their singular spellings (``image``, ``video``)."""
    key = name if obj.get(name) is not None else name[:-1]
    return obj.get(key), key


def _responses(
    obj: dict[str, Any], name: str, ctx: ParseContext, inline: list[AudioRef], bare: list[int], visual: Visual
) -> list[Message]:
    value = obj.get(name)
    if value is None:
        raise ParseError("S001", f"missing field {name!r} (preference data needs chosen and rejected)", name)
    if isinstance(value, str):
        return [Message("assistant", value, name)]
    if isinstance(value, dict):
        value = [value]
    return turns(value, name, ctx, inline, bare, "role", "content", visual)
