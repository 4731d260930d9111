"""The LLaMA-Factory targets: sharegpt and alpaca JSON with dataset_info.json, and v1's typed JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from audiodata.export.base import LF_TAGS, V1_ROLES, _Audio, _Row, _Skip
from audiodata.export.checks import _check_alternation, _check_common, _check_counts, _check_pair
from audiodata.records import AUDIO_MARKER, RESPONSE_ROLES


def _lf_sharegpt(row: _Row, audios: list[_Audio]) -> dict[str, Any]:
    _check_common(row)
    ranking = row.kind == "dpo"
    turns = row.conversation()
    _check_alternation(turns, ranking)
    _check_counts(row)
    obj: dict[str, Any] = {"conversations": [{"from": LF_TAGS[m["role"]], "value": m["content"]} for m in turns]}
    if ranking:
        chosen, rejected = _check_pair(row)
        obj["chosen"] = {"from": LF_TAGS[chosen["role"]], "value": chosen["content"]}
        obj["rejected"] = {"from": LF_TAGS[rejected["role"]], "value": rejected["content"]}
    if row.kind == "kto":
        obj["kto_tag"] = row.label
    obj.update(system=row.system or "", tools=row.tools or "", audios=[a.rel for a in audios], id=row.id)
    return obj


def _lf_alpaca(row: _Row, audios: list[_Audio]) -> dict[str, Any]:
    _check_common(row)
    ranking = row.kind == "dpo"
    msgs = row.conversation()
    if any(m["role"] != ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(msgs)):
        raise _Skip("alpaca holds only alternating user/assistant turns")
    _check_alternation(msgs, ranking)
    _check_counts(row)
    last = len(msgs) - 1 if ranking else len(msgs) - 2
    history = [[msgs[i]["content"], msgs[i + 1]["content"]] for i in range(0, last, 2)]
    obj: dict[str, Any] = {"instruction": msgs[last]["content"], "input": ""}
    if ranking:
        chosen, rejected = _check_pair(row)
        if chosen["role"] != "assistant" or rejected["role"] != "assistant":
            raise _Skip("alpaca chosen/rejected must be assistant replies")
        obj.update(chosen=chosen["content"], rejected=rejected["content"])
    else:
        obj["output"] = msgs[-1]["content"]
    if row.kind == "kto":
        obj["kto_tag"] = row.label
    obj.update(system=row.system or "", tools=row.tools or "", history=history, audios=[a.rel for a in audios], id=row.id)
    return obj


def _lf_v1(row: _Row, audios: list[_Audio]) -> dict[str, Any]:
    """A v1 row (``v1/utils/types.py`` SFTSample / DPOSample), as v1's converters would write it."""
    if row.kind not in ("sft", "dpo"):
        raise _Skip(f"LLaMA-Factory v1 has no {row.kind.upper()} rows")
    _check_common(row)
    ranking = row.kind == "dpo"
    _check_alternation(row.messages, ranking)
    _check_counts(row)
    if row.tools:
        try:
            json.loads(row.tools)
        except json.JSONDecodeError:
            raise _Skip("tools is not valid JSON: LLaMA-Factory v1 parses it") from None
    paths = iter([a.rel for a in audios])
    prompt = [_v1_message("system", row.system, paths)] if row.system else []
    prompt += [_v1_message(m["role"], m["content"], paths) for m in row.messages]
    obj: dict[str, Any] = {}
    if ranking:
        chosen, rejected = _check_pair(row)
        obj["chosen_messages"] = [*prompt, _v1_message(chosen["role"], chosen["content"], paths)]
        obj["rejected_messages"] = [*prompt, _v1_message(rejected["role"], rejected["content"], paths)]
    else:
        obj["messages"] = prompt
    if row.tools:
        obj["tools"] = row.tools
    obj["id"] = row.id
    return obj


def _v1_message(role: str, text: str | None, paths: Iterator[str]) -> dict[str, Any]:
    """``{"role", "content": [items], "loss_weight"}``: text split at each ``<audio>`` into an ``audio_url`` item
    taking the next path (``_to_content_blocks`` in v1's converter.py); a function_call turn as ``tool_call`` items."""
    text = text or ""
    if role == "function_call":
        items = [{"type": "tool_call", "value": v} for v in _tool_calls(text)]
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


def _tool_calls(text: str) -> list[str]:
    """One ``{name, arguments}`` JSON text per call: the turn's text as it is for one call, each element for a list."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    calls = value if isinstance(value, list) else [value]
    if not calls or not all(isinstance(c, dict) and "name" in c and "arguments" in c for c in calls):
        raise _Skip("a function_call turn is not a JSON tool call {name, arguments}: LLaMA-Factory v1 needs one")
    return [text] if isinstance(value, dict) else [json.dumps(c, ensure_ascii=False) for c in calls]


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
