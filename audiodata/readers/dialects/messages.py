"""``messages`` + ``audios`` (ms-swift, OpenAI style) and chat-template content lists.

Content items ``{"type": "audio", "path"|"audio"|"url": ...}`` become ``<audio>``
markers in place and their audio joins the record's list in order; value-less audio
items are markers whose audio comes from ``audios`` (a list, or one reference as a
string, which ms-swift wraps the same way). Image and video items
(``image``/``image_url``/``video``/``video_url``) work the same way with ``images``
and ``videos`` (or ms-swift's ``image``/``video``). Preference data is TRL's
``prompt``/``chosen``/``rejected`` or one of ms-swift's two forms, read as ms-swift reads
them (:mod:`audiodata.readers.dialects.swift_pairs`): ``rejected_response`` or
``rejected_messages`` (+ ``rejected_audios``). KTO data is ms-swift's boolean ``label``
(judging the last assistant turn) or TRL's ``prompt``/``completion``/``label``; TRL's
``prompt``/``completion`` without a label is SFT. A row with a reference answer (``solution``, ``answer``,
``ground_truth``: TRL's and ms-swift's GRPO data) is an RL record (:mod:`audiodata.readers.dialects.rl`).
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects import rl, swift_pairs
from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    Visual,
    audio_list,
    kto_label,
    merge_audios,
    new_record,
    optional_text,
    pair_and_kto,
    pop_system,
    split_completion,
    turns,
    visual_refs,
)
from audiodata.records import AudioRef, Message, Record


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    if rl.is_rl_row(obj):  # TRL / ms-swift GRPO: a prompt and its reference answer (solution)
        return rl.parse_messages(obj, ctx)
    key = "messages" if obj.get("messages") is not None else "prompt"
    if not isinstance(obj.get(key), list):
        raise ParseError("S001", "missing field 'messages' (a list of {role, content})", "messages")
    inline: list[AudioRef] = []
    bare = [0]
    visual = Visual()
    msgs = turns(obj[key], key, ctx, inline, bare, "role", "content", visual)
    msgs, system = pop_system(msgs, optional_text(obj, "system"))
    chosen = rejected = completion = None
    label = kto_label(obj, "label", False)
    swift = swift_pairs.form(obj)
    if obj.get("completion") is not None:  # TRL prompt-completion: SFT, or KTO with a label
        completion = _responses(obj, "completion", ctx, inline, bare, visual)
        if label is None:
            msgs, completion = msgs + completion, None
    if label is not None:
        if swift is not None or obj.get("chosen") is not None or obj.get("rejected") is not None:
            raise pair_and_kto("label")
        if completion is None:  # ms-swift KTO: the last assistant turn of messages is judged
            msgs, completion = split_completion(msgs, key)
    elif swift is None and (obj.get("chosen") is not None or obj.get("rejected") is not None):
        chosen, rejected = (_responses(obj, name, ctx, inline, bare, visual) for name in ("chosen", "rejected"))
    akey = "audios" if obj.get("audios") is not None else "audio"
    audios = merge_audios(audio_list(obj.get(akey), akey), inline, bare[0], key)
    tools = optional_text(obj, "tools")
    listed = {name: _listed(obj, name) for name in ("images", "videos")}
    if swift is not None:
        pair = swift_pairs.read(obj, ctx, swift, msgs, system, audios, tools)
        msgs, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
    return new_record(
        obj,
        ctx,
        "messages",
        kind="dpo" if chosen is not None else "kto" if label is not None else "sft",
        messages=msgs,
        audios=audios,
        **visual_refs(listed, visual, key),
        system=system,
        tools=tools,
        chosen=chosen,
        rejected=rejected,
        completion=completion,
        label=label,
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
