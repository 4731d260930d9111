"""How to read a file: its dialect, column names and role tags.

Defaults follow LLaMA-Factory's ``dataset_info.json`` vocabulary so a user's existing
entry (``formatting``, ``ranking``, ``columns``, ``tags``) maps onto it one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DIALECTS = ("minicpm", "sharegpt", "alpaca", "messages", "llamafactory-v1")

DEFAULT_COLUMNS = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": "history",
    "messages": "conversations",
    "system": "system",
    "tools": "tools",
    "audios": "audios",
    "chosen": "chosen",
    "rejected": "rejected",
    "kto_tag": "kto_tag",
    "images": "images",
    "videos": "videos",
}

DEFAULT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}

#: Role names seen across dialects, mapped to the canonical roles.
ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
    "tool_response": "tool",
    "ipython": "tool",
    "function": "tool",
    "function_call": "function_call",
    "tool_call": "function_call",
}


@dataclass(slots=True)
class DialectSpec:
    """``formatting`` None means: detect per record. ``ranking`` None: detect from keys."""

    formatting: str | None = None
    ranking: bool | None = None
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] | None = None  # None: accept from/value and role/content
    name: str | None = None  # the dataset_info.json entry, when there is one
    converter: str | None = None  # a LLaMA-Factory v1 dataset YAML's converter (alpaca, sharegpt, pair) the file is read through
    #: record keys the dataset_info.json entry leaves unmapped, so LLaMA-Factory never reads them: a value there is refused
    unread: tuple[str, ...] = ()

    def column(self, key: str) -> str:
        return self.columns.get(key) or DEFAULT_COLUMNS[key]

    def role_map(self) -> dict[str, str]:
        if self.tags is None:
            return ROLE_ALIASES
        t = {**DEFAULT_TAGS, **self.tags}
        return {
            t["user_tag"]: "user",
            t["assistant_tag"]: "assistant",
            t["observation_tag"]: "tool",
            t["function_tag"]: "function_call",
            t["system_tag"]: "system",
        }
