"""LLaMA-Factory sharegpt: ``conversations`` of ``{from, value}`` plus ``audios`` (and ``images``/``videos``).

Custom role/content tags come from a ``dataset_info.json`` entry; without one both
``from/value`` and ``role/content`` turns are accepted. Ranking data carries
``chosen``/``rejected`` message objects after a prompt that ends on the user; KTO data
carries a boolean ``kto_tag`` (or the column ``columns.kto_tag`` names) judging the last turn.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    Visual,
    audio_list,
    kto_label,
    merge_audios,
    message,
    new_record,
    optional_text,
    pair_and_kto,
    pop_system,
    split_completion,
    turns,
    visual_refs,
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
    visual = Visual()
    msgs = turns(obj[key], key, ctx, inline, bare, visual=visual)
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
            pair.append([message(value, name, ctx, inline, bare, visual=visual)])
        chosen, rejected = pair
    kto_key = spec.column("kto_tag")
    label = None if ranking else kto_label(obj, kto_key, "kto_tag" in spec.columns)
    completion = None
    if label is not None:  # LLaMA-Factory KTO: the last turn is the response the tag judges
        msgs, completion = split_completion(msgs, key)
    elif ranking and kto_key in obj:
        raise pair_and_kto(kto_key)
    audios = merge_audios(audio_list(obj.get(spec.column("audios")), spec.column("audios")), inline, bare[0], key)
    listed = {name: (obj.get(spec.column(name)), spec.column(name)) for name in ("images", "videos")}
    return new_record(
        obj,
        ctx,
        "sharegpt",
        kind="dpo" if ranking else "kto" if label is not None else "sft",
        messages=msgs,
        completion=completion,
        label=label,
        audios=audios,
        **visual_refs(listed, visual, key),
        system=system,
        tools=optional_text(obj, spec.column("tools")),
        chosen=chosen,
        rejected=rejected,
    )
