"""LLaMA-Factory sharegpt: ``conversations`` of ``{from, value}`` plus ``audios``.

Custom role/content tags come from a ``dataset_info.json`` entry; without one both
``from/value`` and ``role/content`` turns are accepted. Ranking data carries
``chosen``/``rejected`` message objects after a prompt that ends on the user.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    audio_list,
    merge_audios,
    message,
    new_record,
    optional_text,
    pop_system,
    turns,
)
from audiodata.records import AudioRef, Record


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    spec = ctx.spec
    key = spec.column("messages")
    if key not in obj and key == "conversations" and "messages" in obj and spec.name is None:  # detected, not declared
        key = "messages"
    if obj.get(key) is None:
        raise ParseError("S001", f"missing field {key!r}", key)
    inline: list[AudioRef] = []
    bare = [0]
    msgs = turns(obj[key], key, ctx, inline, bare)
    msgs, system = pop_system(msgs, optional_text(obj, spec.column("system")))
    ck, rk = spec.column("chosen"), spec.column("rejected")
    ranking = spec.ranking if spec.ranking is not None else (ck in obj or rk in obj)
    chosen = rejected = None
    if ranking:
        pair = []
        for name in (ck, rk):
            value = obj.get(name)
            if value is None:
                raise ParseError("S001", f"missing field {name!r} (ranking data needs chosen and rejected)", name)
            if not isinstance(value, dict):
                raise ParseError("S001", f"{name} must be a message object like {{'from': 'gpt', 'value': ...}}", name)
            pair.append([message(value, name, ctx, inline, bare)])
        chosen, rejected = pair
    audios = merge_audios(audio_list(obj.get(spec.column("audios")), spec.column("audios")), inline, bare[0], key)
    return new_record(
        obj,
        ctx,
        "sharegpt",
        kind="dpo" if ranking else "sft",
        messages=msgs,
        audios=audios,
        system=system,
        tools=optional_text(obj, spec.column("tools")),
        chosen=chosen,
        rejected=rejected,
    )
