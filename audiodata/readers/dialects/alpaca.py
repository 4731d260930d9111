"""LLaMA-Factory alpaca: ``instruction``/``input``/``output`` with ``history``.

The user turn is instruction and input joined by a newline (empty parts skipped),
as LLaMA-Factory builds it; ranking data has ``chosen``/``rejected`` strings; KTO data a
boolean ``kto_tag`` judging ``output``. Media come from the ``audios``, ``images`` and
``videos`` columns.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    Visual,
    audio_list,
    kto_label,
    new_record,
    optional,
    optional_text,
    pair_and_kto,
    visual_refs,
)
from audiodata.records import Message, Record


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    spec = ctx.spec
    msgs: list[Message] = []
    hkey = spec.column("history")
    history = optional(obj, hkey, list)
    for i, pair in enumerate(history or []):
        fld = f"{hkey}[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise ParseError("S001", "each history item must be a [prompt, response] pair of strings", fld)
        msgs += [Message("user", pair[0], f"{fld}[0]"), Message("assistant", pair[1], f"{fld}[1]")]
    pkey, qkey = spec.column("prompt"), spec.column("query")
    parts = [p for p in (optional(obj, pkey, str), optional(obj, qkey, str)) if p]
    join = "" if spec.converter == "alpaca" else "\n"  # v1's alpaca converter concatenates instruction and input as they are
    msgs.append(Message("user", join.join(parts), pkey))
    ck, rk, okey = spec.column("chosen"), spec.column("rejected"), spec.column("response")
    ranking = spec.ranking if spec.ranking is not None else (ck in obj or rk in obj)
    chosen = rejected = None
    if ranking:
        chosen = [Message("assistant", _text(obj, ck), ck)]
        rejected = [Message("assistant", _text(obj, rk), rk)]
    kto_key = spec.column("kto_tag")
    label = None if ranking else kto_label(obj, kto_key, "kto_tag" in spec.columns)
    completion = None
    if label is not None:  # LLaMA-Factory KTO: ``output`` is the response the tag judges
        completion = [Message("assistant", _text(obj, okey), okey)]
    elif ranking:
        if kto_key in obj:
            raise pair_and_kto(kto_key)
    else:
        msgs.append(Message("assistant", _text(obj, okey), okey))
    akey = spec.column("audios")
    listed = {name: (obj.get(spec.column(name)), spec.column(name)) for name in ("images", "videos")}
    return new_record(
        obj,
        ctx,
        "alpaca",
        kind="dpo" if ranking else "kto" if label is not None else "sft",
        messages=msgs,
        completion=completion,
        label=label,
        audios=audio_list(obj.get(akey), akey),
        **visual_refs(listed, Visual(), pkey),
        system=optional_text(obj, spec.column("system")),
        tools=optional_text(obj, spec.column("tools")),
        chosen=chosen,
        rejected=rejected,
    )


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        got = "missing" if value is None else type(value).__name__
        raise ParseError("S001", f"{key} must be a string ({got})", key)
    return value
