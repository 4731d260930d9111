"""What every export target shares: the options, the skip signal, the result, safe file names and
the streaming JSON writers. Records come from the shards as :class:`Record` (``record_from_row``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from audiodata.errors import UsageError
from audiodata.faults import write_atomic
from audiodata.records import Message, Record
from audiodata.rules.findings import Finding
from audiodata.writer.schema import FORMAT_VERSION

TARGETS = ("llamafactory", "llamafactory-v1", "ms-swift", "minicpm", "align-anything", "trl", "verl", "mmau")
FORMS = ("sharegpt", "alpaca")
AUDIO_FORMATS = ("flac", "wav")

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2

#: Canonical roles -> LLaMA-Factory's default sharegpt tags.
LF_TAGS = {"user": "human", "assistant": "gpt", "tool": "observation", "function_call": "function_call"}
#: Canonical roles -> LLaMA-Factory v1 message roles (a function_call turn is an assistant message of tool_call items).
V1_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function_call": "assistant"}
#: Split names whose data is for evaluation: the training hint puts them in eval_dataset, never in dataset.
EVAL_SPLITS = ("validation", "valid", "val", "eval", "dev", "test")
#: Canonical roles -> ms-swift message roles.
SWIFT_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool_response", "function_call": "tool_call"}

_COLUMNS = (
    "id", "messages", "prompt", "chosen", "rejected", "completion", "label",
    "system", "tools", "audios", "images", "videos", "source", "answer", "choices", "task", "meta",
)  # fmt: skip
VISUAL = ("images", "videos")
_BATCH_ROWS = 64
_MAX_SKIP_LIST = 1000


class ExportError(UsageError):
    """An export that cannot run at all (usage error, exit code 2)."""


class DestinationNotEmpty(ExportError):
    """DEST holds files (a finished export or something else) and ``overwrite`` was not given."""


class _Skip(Exception):
    """This record does not fit the target: skipped with this finding (its code and message)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


@dataclass
class ExportResult:
    dest: Path
    target: str
    form: str
    counts: dict[str, int] = field(default_factory=dict)  # "config/split" -> records written
    read: dict[str, int] = field(default_factory=dict)  # "config/split" -> records read
    skipped_by_reason: dict[str, int] = field(default_factory=dict)  # the rule's message -> records
    skipped_by_code: dict[str, int] = field(default_factory=dict)  # rule code (audiodata rules) -> records
    skipped: list[dict[str, str]] = field(default_factory=list)  # first records skipped: config, split, id, code, reason
    files: list[str] = field(default_factory=list)  # data files and dataset_info.json, relative to dest
    audio_files: int = 0
    streams: dict[str, tuple[str, str]] = field(default_factory=dict)  # data file -> (record kind, split)
    relative_paths: bool = False  # ms-swift: audio paths relative to dest instead of absolute
    #: what to train with, per stage: {"sft": {"dataset": [...], "eval_dataset": [...]}} (v1: train_dataset YAMLs)
    train: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def records_written(self) -> int:
        return sum(self.counts.values())

    @property
    def records_skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def exit_code(self) -> int:
        """0: every record exported; 1: some were skipped (see :attr:`skipped_by_reason`)."""
        return EXIT_SKIPPED if self.records_skipped else EXIT_OK


def conversation(rec: Record) -> list[Message]:
    """SFT: the turns; KTO: the prompt and its completion, as one conversation; DPO: the prompt."""
    return [*rec.messages, *(rec.completion or [])] if rec.kind == "kto" else rec.messages


@dataclass(slots=True)
class _Audio:
    rel: str  # path relative to dest, "/"-separated
    data: bytes


@dataclass(slots=True)
class _Stream:
    config: str
    split: str
    kind: str
    files: list[Path]
    version: int = FORMAT_VERSION  # the manifest's format_version: which column holds the prompt
    root: Path | None = None  # the converted dataset (shards are named relative to it)

    @property
    def key(self) -> str:
        return f"{self.config}/{self.split}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+|\.{2,}")


def safe_name(name: str, limit: int = 100) -> str:
    """A file-name-safe form of ``name``: ASCII letters, digits, ``._-``; no separators, no ``..``,
    no leading dot or dash, bounded length."""
    s = re.sub("_{2,}", "_", _UNSAFE.sub("_", name)).strip("._-")[:limit].rstrip("._-")
    return s or "record"


def _inside(dest: Path, path: Path) -> Path:
    real = path.resolve()
    if not real.is_relative_to(dest.resolve()):
        raise ExportError(f"{path} would be written outside {dest}")
    return path


_Formatter = Callable[[Record, list[_Audio]], dict[str, Any]]


class _JsonArray:
    """A JSON array written one element at a time (never the whole list in memory)."""

    def __init__(self, fh: TextIO) -> None:
        self.fh, self.n = fh, 0

    def add(self, obj: dict[str, Any]) -> None:
        self.fh.write(("[\n" if self.n == 0 else ",\n") + json.dumps(obj, ensure_ascii=False))
        self.n += 1

    def close(self) -> None:
        self.fh.write("\n]\n" if self.n else "[]\n")


class _JsonLines:
    def __init__(self, fh: TextIO) -> None:
        self.fh = fh

    def add(self, obj: dict[str, Any]) -> None:
        self.fh.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def close(self) -> None:
        pass


def _unique(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``… when taken (compared case-insensitively)."""
    name, n = stem, 1
    while name.lower() in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name.lower())
    return name


def _atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text)
