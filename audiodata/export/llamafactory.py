"""The LLaMA-Factory targets: sharegpt and alpaca JSON with dataset_info.json, and v1's typed JSONL.

Records reach the formatters after the target's rules passed (``export_rules.TARGET_RULES``): roles
alternate, marker counts match, DPO/KTO responses are one turn, alpaca holds only user/assistant turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from audiodata.export.base import LF_TAGS, V1_ROLES, _Audio, conversation
from audiodata.records import AUDIO_MARKER, RESPONSE_ROLES, Message, Record
from audiodata.rules.export_rules import tool_calls


def _pair(rec: Record) -> tuple[Message, Message]:
    return (rec.chosen or [])[0], (rec.rejected or [])[0]


def _lf_sharegpt(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    turns = conversation(rec)
    obj: dict[str, Any] = {"conversations": [{"from": LF_TAGS[m.role], "value": m.content} for m in turns]}
    if rec.kind == "dpo":
        chosen, rejected = _pair(rec)
        obj["chosen"] = {"from": LF_TAGS[chosen.role], "value": chosen.content}
        obj["rejected"] = {"from": LF_TAGS[rejected.role], "value": rejected.content}
    if rec.kind == "kto":
        obj["kto_tag"] = rec.label
    obj.update(system=rec.system or "", tools=rec.tools or "", audios=[a.rel for a in audios], id=rec.id)
    return obj


def _lf_alpaca(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    ranking = rec.kind == "dpo"
    msgs = conversation(rec)
    last = len(msgs) - 1 if ranking else len(msgs) - 2
    history = [[msgs[i].content, msgs[i + 1].content] for i in range(0, last, 2)]
    obj: dict[str, Any] = {"instruction": msgs[last].content, "input": ""}
    if ranking:
        chosen, rejected = _pair(rec)
        obj.update(chosen=chosen.content, rejected=rejected.content)
    else:
        obj["output"] = msgs[-1].content
    if rec.kind == "kto":
        obj["kto_tag"] = rec.label
    obj.update(system=rec.system or "", tools=rec.tools or "", history=history, audios=[a.rel for a in audios], id=rec.id)
    return obj


def _lf_v1(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    """A v1 row (``v1/utils/types.py`` SFTSample / DPOSample), as v1's converters would write it."""
    paths = iter([a.rel for a in audios])
    prompt = [_v1_message("system", rec.system, paths)] if rec.system else []
    prompt += [_v1_message(m.role, m.content, paths) for m in rec.messages]
    obj: dict[str, Any] = {}
    if rec.kind == "dpo":
        chosen, rejected = _pair(rec)
        obj["chosen_messages"] = [*prompt, _v1_message(chosen.role, chosen.content, paths)]
        obj["rejected_messages"] = [*prompt, _v1_message(rejected.role, rejected.content, paths)]
    else:
        obj["messages"] = prompt
    if rec.tools:
        obj["tools"] = rec.tools
    obj["id"] = rec.id
    return obj


def _v1_message(role: str, text: str | None, paths: Iterator[str]) -> dict[str, Any]:
    """``{"role", "content": [items], "loss_weight"}``: text split at each ``<audio>`` into an ``audio_url`` item
    taking the next path (``_to_content_blocks`` in v1's converter.py); a function_call turn as ``tool_call`` items."""
    text = text or ""
    if role == "function_call":
        items = [{"type": "tool_call", "value": v} for v in tool_calls(text)]  # valid: rule X104 ran first
    else:
        items = []
        for i, part in enumerate(text.split(AUDIO_MARKER)):
            if i:
                items.append({"type": "audio_url", "value": next(paths)})
            if part:
                items.append({"type": "text", "value": part})
        items = items or [{"type": "text", "value": ""}]
    weight = 1.0 if role in RESPONSE_ROLES else 0.0
    return {"role": V1_ROLES.get(role, role), "content": items, "loss_weight": weight}


def _dataset_info_entry(file_name: str, form: str, kind: str, visual: list[str] | None = None) -> dict[str, Any]:
    ranking = kind == "dpo"
    if form == "alpaca":
        columns = {"prompt": "instruction", "query": "input"}
        if not ranking:
            columns["response"] = "output"
        columns.update(history="history", system="system", tools="tools", audios="audios")
    else:
        columns = {"messages": "conversations", "system": "system", "tools": "tools", "audios": "audios"}
    if ranking:
        columns.update(chosen="chosen", rejected="rejected")
    if kind == "kto":
        columns["kto_tag"] = "kto_tag"
    columns.update({name: name for name in visual or []})
    return {"file_name": file_name, "formatting": form, "ranking": ranking, "columns": columns}
