"""How to read a file: its dialect, column names and role tags.

Defaults follow LLaMA-Factory's ``dataset_info.json`` vocabulary so a user's existing
entry (``formatting``, ``ranking``, ``columns``, ``tags``) maps onto it one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DIALECTS = (
    *("minicpm", "sharegpt", "alpaca", "messages", "llamafactory-v1"),
    *("nemo", "lhotse"),  # raw ASR manifests (audiodata.readers.nemo, audiodata.readers.lhotse)
    *("transcription", "align-anything", "align-anything-sft"),  # rows of raw corpora; Align-Anything's AA_TA2T
    *("verl", "audio-qa"),  # RL data: verl's Parquet rows, MMAU-style audio-QA JSON (readers/dialects/rl.py)
)

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

#: Role names seen across dialects, mapped to the canonical roles (what an untagged turn may say).
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
    "observations": "tool",
    "tool_response": "tool",
    "function_response": "tool",
    "ipython": "tool",
    "function": "tool",
    "function_call": "function_call",
    "tool_call": "function_call",
}


@dataclass(frozen=True, slots=True)
class RoleSpelling:
    """How one dialect's own consumer spells each canonical role, for one message form.

    ``spell`` is what ``lint --fix`` writes; ``also`` are further spellings that consumer
    reads as they are. Any other spelling is an alias (S008): it converts, but the tool the
    data was written for would skip or rename the turn.
    """

    spell: dict[str, str]
    also: frozenset[str] = frozenset()

    def is_standard(self, raw: str) -> bool:
        return raw in self.also or raw in self.spell.values()


#: The one table of standard role spellings, per (dialect, key the role sits under). Aliases are
#: judged per dialect: sharegpt ``bot`` is an alias, ms-swift ``tool_call`` is not.
STANDARD_ROLES: dict[tuple[str, str], RoleSpelling] = {
    # LLaMA-Factory's default tags (data/README.md: human, gpt, observation, function_call, system).
    ("sharegpt", "from"): RoleSpelling(
        {"user": "human", "assistant": "gpt", "tool": "observation", "function_call": "function_call", "system": "system"}
    ),
    # LLaMA-Factory sharegpt written with role/content (its OpenAI-style tags).
    ("sharegpt", "role"): RoleSpelling(
        {"user": "user", "assistant": "assistant", "tool": "tool", "function_call": "function_call", "system": "system"},
        frozenset({"observation"}),
    ),
    # ms-swift: the roles its MessagesPreprocessor passes through unchanged (swift 4.6.0,
    # swift/dataset/preprocessor/core.py:101 asserts this set; lines 497-500 and 541-550 rename
    # human/gpt/bot/function_call/observation into it). "tool" and "tool_response" mean the same there.
    ("messages", "role"): RoleSpelling(
        {"user": "user", "assistant": "assistant", "tool": "tool_response", "function_call": "tool_call", "system": "system"},
        frozenset({"tool"}),
    ),
}


def standard_spelling(dialect: str, form: str, role: str, raw: str) -> str | None:
    """The spelling ``dialect`` wants for canonical ``role`` when ``raw`` is an alias there, else None."""
    table = STANDARD_ROLES.get((dialect, form))
    if table is None or table.is_standard(raw):
        return None
    return table.spell.get(role)


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
