"""``export``: a converted dataset out again, in the form a trainer reads directly.

Targets:

* ``llamafactory``: the stored audio as files under ``DEST/audio/<config>/<split>/``,
  one JSON array per config and split (``<name>_<split>.json``) in sharegpt form
  (``conversations`` of ``{from, value}`` with LLaMA-Factory's default tags, ``system``,
  ``tools``, ``audios`` relative to ``DEST``; DPO: a prompt ending on the user plus
  ``chosen``/``rejected`` message objects) or alpaca form, and ``DEST/dataset_info.json``
  with one entry per file, so ``llamafactory-cli train`` with ``dataset_dir=DEST``
  loads it unchanged.
* ``llamafactory-v1``: LLaMA-Factory v1's native rows (``data/v1_*.jsonl``), one
  ``DEST/<name>_<split>.jsonl`` each with the ``DEST/<name>_<split>.yaml`` v1 loads
  (``train_dataset``), the audio as files like ``llamafactory``: messages of typed items
  (``audio_url`` in place of each ``<audio>``, a ``function_call`` turn as ``tool_call``
  items), ``loss_weight`` 1.0 on assistant messages and 0.0 on the others as v1's converters
  set it; DPO as ``chosen_messages``/``rejected_messages`` with the shared prompt on both
  sides. v1 opens every path relative to the working directory: train from ``DEST``.
* ``ms-swift``: ``DEST/<name>_<split>.jsonl`` of ``{"messages", "audios"}`` (system as a
  leading system message; DPO: the chosen reply ends ``messages`` and
  ``rejected_response`` holds the rejected text). Audio paths are absolute, since ms-swift
  resolves a relative one against the folder it runs in (``--relative-paths``: relative to
  ``DEST``, for ``ROOT_IMAGE_DIR=DEST``). Rows ms-swift would drop or misread are skipped and
  counted.
* ``minicpm``: ``DEST/<name>_<split>.jsonl`` of ``{"audio": <base64 FLAC>, "text",
  "prompt"}`` for single-turn, single-audio SFT records; others are skipped and counted.

Images and videos (``images``/``videos`` columns) are written next to the record's audio
and listed under the same keys (LLaMA-Factory: ``columns.images``/``columns.videos``; ms-swift:
its standard keys). The stored audio bytes are written as they are (no re-encoding), so converting an
export back yields the same PCM hashes. Shards are streamed batch by batch; records
that a target cannot express are skipped with a reason, never silently.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import soundfile as sf
import yaml
from rich.console import Console
from rich.table import Table

from audiodata.dataset import ConvertedDataset, DatasetError, batches, load_manifest, open_shard
from audiodata.errors import UsageError
from audiodata.faults import FAULT_EXIT, on_path, write_atomic
from audiodata.lock import WORK, OutputBusy, hold
from audiodata.records import AUDIO_MARKER, IMAGE_MARKER, PROMPT_ROLES, RESPONSE_ROLES, VIDEO_MARKER
from audiodata.writer.schema import FORMAT_VERSION, prompt_column

TARGETS = ("llamafactory", "llamafactory-v1", "ms-swift", "minicpm")
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
    "system", "tools", "audios", "audio_info", "images", "videos",
)  # fmt: skip
VISUAL = ("images", "videos")
_BATCH_ROWS = 64
_MAX_SKIP_LIST = 1000


class ExportError(UsageError):
    """An export that cannot run at all (usage error, exit code 2)."""


class _Skip(Exception):
    """This record does not fit the target: skipped with this reason."""


@dataclass
class ExportResult:
    dest: Path
    target: str
    form: str
    counts: dict[str, int] = field(default_factory=dict)  # "config/split" -> records written
    read: dict[str, int] = field(default_factory=dict)  # "config/split" -> records read
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)  # first records skipped: config, split, id, reason
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


@dataclass(slots=True)
class _Row:
    id: str
    kind: str
    messages: list[dict[str, str]]
    chosen: list[dict[str, str]] | None
    rejected: list[dict[str, str]] | None
    system: str | None
    tools: str | None
    audios: list[bytes | None]
    completion: list[dict[str, str]] | None = None  # KTO: the judged response
    label: bool | None = None  # KTO: desirable or not
    images: list[Any] = field(default_factory=list)  # Hub Image structs {bytes, path}, or path strings (--visual refs)
    videos: list[Any] = field(default_factory=list)  # Hub Video structs {bytes, path}, or path strings

    def responses(self) -> list[list[dict[str, str]]]:
        """The response sides trained against the prompt (as :meth:`Record.responses`)."""
        if self.kind == "dpo":
            return [self.chosen or [], self.rejected or []]
        return [self.completion or []] if self.kind == "kto" else []

    def conversation(self) -> list[dict[str, str]]:
        """SFT: the turns; KTO: the prompt and its completion, as one conversation."""
        return self.messages + (self.completion or []) if self.kind == "kto" else self.messages


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


# -- names and paths ---------------------------------------------------------------------

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


# -- reading the converted output ----------------------------------------------------------------


def _streams(out: Path) -> list[_Stream]:
    ds = ConvertedDataset.open(out)  # its format version and config kinds checked
    streams: dict[tuple[str, str], _Stream] = {}
    for s in ds.shards():
        name, split = s.config, s.split
        stream = streams.setdefault((name, split), _Stream(name, split, ds.kind(name), [], ds.format_version, out))
        stream.files.append(ds.path(s))
    return list(streams.values())


def _rows(stream: _Stream) -> Iterator[_Row]:
    for path in stream.files:
        shown = path.relative_to(stream.root).as_posix() if stream.root is not None else path.name
        where = stream.root if stream.root is not None else path.parent
        pf = open_shard(path, shown, where)
        cols = [c for c in _COLUMNS if c in pf.schema_arrow.names]
        prompt = prompt_column(stream.kind, stream.version)
        for batch in batches(pf, shown, where, _BATCH_ROWS, cols):
            for r in batch.to_pylist():
                yield _Row(
                    id=str(r.get("id") or "record"),
                    kind=stream.kind,
                    messages=r.get(prompt) or [],
                    chosen=r.get("chosen"),
                    rejected=r.get("rejected"),
                    system=r.get("system") or None,
                    tools=r.get("tools") or None,
                    audios=[a.get("bytes") if a else None for a in r.get("audios") or []],
                    completion=r.get("completion"),
                    label=r.get("label"),
                    images=r.get("images") or [],
                    videos=r.get("videos") or [],
                )


# -- audio -----------------------------------------------------------------------------------


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    return None


def _audio_bytes(data: bytes, audio_format: str) -> bytes:
    """The stored bytes as they are when already in ``audio_format``; else a lossless PCM_16 copy."""
    if _format_of(data) == audio_format:
        return data
    try:
        pcm, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError for damaged bytes
        raise _Skip("a stored audio does not decode (damaged shard? run `audiodata verify`)") from exc
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format=audio_format.upper(), subtype="PCM_16")
    return buf.getvalue()


# -- record checks shared by the targets ---------------------------------------------------------


def _markers(text: str | None) -> int:
    return (text or "").count(AUDIO_MARKER)


def _check_common(row: _Row) -> None:
    turns = row.messages + [m for side in row.responses() for m in side]
    for m in turns:
        if m["role"] not in LF_TAGS:
            raise _Skip(f"role {m['role']!r} is not a user/assistant/tool/function_call turn")
        if m["content"] is None:
            raise _Skip("a turn has no text")
    if row.kind == "kto":
        _check_kto(row)
    texts = [m["content"] for m in turns]
    if not row.images and not row.videos and any(IMAGE_MARKER in t or VIDEO_MARKER in t for t in texts):
        raise _Skip("text holds an <image>/<video> placeholder")
    _check_visual(row)
    if _markers(row.system) or _markers(row.tools):
        raise _Skip("<audio> in system or tools")
    if any(a is None for a in row.audios):
        raise _Skip("an audio has no stored bytes")


def _check_visual(row: _Row) -> None:
    """Images/videos: stored bytes, and as many as their markers (LLaMA-Factory's _validate_messages)."""
    extras = [row.chosen or [], row.rejected or []] if row.kind == "dpo" else [[]]
    for name, marker in (("images", IMAGE_MARKER), ("videos", VIDEO_MARKER)):
        items = getattr(row, name)
        if any(isinstance(v, str) for v in items):
            raise _Skip(f"{name} are file references (convert --visual refs): convert with --visual embed to export them")
        if any(not v or not v.get("bytes") for v in items):
            raise _Skip(f"one of the {name} has no stored bytes")
        prompt = sum(m["content"].count(marker) for m in row.messages)
        for extra in extras:
            if prompt + sum(m["content"].count(marker) for m in extra) != len(items):
                raise _Skip(f"{prompt} {marker} markers for {len(items)} {name}")


def _check_pair(row: _Row) -> tuple[dict[str, str], dict[str, str]]:
    """DPO: one response turn each for chosen and rejected, without markers."""
    if len(row.chosen or []) != 1 or len(row.rejected or []) != 1:
        raise _Skip("chosen/rejected must each be one response turn")
    chosen, rejected = row.chosen[0], row.rejected[0]  # type: ignore[index]
    if chosen["role"] not in RESPONSE_ROLES or rejected["role"] not in RESPONSE_ROLES:
        raise _Skip("chosen/rejected must be assistant or function_call turns")
    if _markers(chosen["content"]) or _markers(rejected["content"]):
        raise _Skip("<audio> inside chosen/rejected")
    return chosen, rejected


def _check_kto(row: _Row) -> None:
    """KTO: one response turn and a boolean label, no marker in the response (LLaMA-Factory's KL
    pairs borrow a neighbour's response, so a marker there would be counted against other audio)."""
    if row.label is None:
        raise _Skip("a KTO record has no label")
    if len(row.completion or []) != 1 or row.completion[0]["role"] not in RESPONSE_ROLES:  # type: ignore[index]
        raise _Skip("the KTO completion must be one assistant turn")
    if _markers(row.completion[0]["content"]):  # type: ignore[index]
        raise _Skip("<audio> inside the KTO completion")


def _check_alternation(messages: list[dict[str, str]], ranking: bool) -> None:
    for i, m in enumerate(messages):
        allowed = PROMPT_ROLES if i % 2 == 0 else RESPONSE_ROLES
        if m["role"] not in allowed:
            raise _Skip(f"turn {i} is {m['role']!r}: turns must alternate user/tool and assistant/function_call")
    n = len(messages)
    if ranking and n % 2 != 1:
        raise _Skip("the DPO prompt must end on a user turn")
    if not ranking and (n < 2 or n % 2 != 0):
        raise _Skip("the conversation must end on an assistant turn")


def _check_counts(row: _Row) -> None:
    """``<audio>`` count == number of audios, over prompt+response (DPO: with chosen and with rejected)."""
    prompt = sum(_markers(m["content"]) for m in row.messages)
    extras = row.responses() or [[]]
    for extra in extras:
        if prompt + sum(_markers(m["content"]) for m in extra) != len(row.audios):
            raise _Skip(f"{prompt} <audio> markers for {len(row.audios)} audios")


# -- the targets -------------------------------------------------------------------------------


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


#: ms-swift 4.6.0 (installed wheel) keeps a row only when it can read it, silently dropping the rest
#: (swift/dataset/preprocessor/core.py:243-254): empty messages (core.py:700-701, 88), roles outside its set
#: (core.py:101), None content (core.py:102), a rejected_response equal to the last reply (core.py:159-161),
#: and, as a file is one table, a row lacking a column other rows have (it reads as None: core.py:156-161).
SWIFT_DROPS_EQUAL = "ms-swift drops a row whose rejected reply equals the chosen one"
#: rejected_response replaces every turn after the last user turn (swift/template/template_inputs.py:225-247), so
#: a prompt ending on a tool result would lose it on the rejected side; rejected_messages cannot share its file.
SWIFT_TOOL_PROMPT = "ms-swift's rejected_response would also replace the tool turns that end this DPO prompt"


def _swift(row: _Row, audios: list[_Audio], root: Path | None = None) -> dict[str, Any]:
    """One ms-swift row that its preprocessor keeps as written; ``root``: write audio paths absolute under it."""
    _check_common(row)  # roles in ms-swift's set (via SWIFT_ROLES), no None content
    ranking = row.kind == "dpo"
    _check_alternation(row.conversation(), ranking)  # never empty, SFT/KTO end on the reply, the DPO prompt on user/tool
    _check_counts(row)
    msgs = [{"role": SWIFT_ROLES[m["role"]], "content": m["content"]} for m in row.conversation()]
    if row.system:
        msgs.insert(0, {"role": "system", "content": row.system})
    obj: dict[str, Any] = {"messages": msgs}
    if ranking:
        chosen, rejected = _check_pair(row)
        if chosen["role"] != "assistant" or rejected["role"] != "assistant":
            raise _Skip("ms-swift chosen/rejected must be assistant replies")
        if row.messages[-1]["role"] != "user":
            raise _Skip(SWIFT_TOOL_PROMPT)
        if chosen["content"] == rejected["content"]:
            raise _Skip(SWIFT_DROPS_EQUAL)
        msgs.append({"role": "assistant", "content": chosen["content"]})
        obj["rejected_response"] = rejected["content"]
    if row.kind == "kto":  # ms-swift KTO: the last assistant turn of messages, judged by label
        obj["label"] = row.label
    obj["audios"] = [str(root / a.rel) if root is not None else a.rel for a in audios]
    if row.tools:
        obj["tools"] = row.tools
    obj["id"] = row.id
    return obj


def _minicpm(row: _Row, audios: list[_Audio]) -> dict[str, Any]:
    _check_common(row)
    if row.kind != "sft":
        raise _Skip(f"minicpm: {row.kind.upper()} records are not supported")
    if row.tools:
        raise _Skip("minicpm: records with tools are not supported")
    if [m["role"] for m in row.messages] != ["user", "assistant"]:
        raise _Skip("minicpm: needs one user turn and one assistant reply (multi-turn)")
    if len(row.audios) != 1:
        raise _Skip("minicpm: needs exactly one audio")
    if row.images or row.videos:
        raise _Skip("minicpm: images and videos are not supported")
    user, reply = row.messages[0]["content"], row.messages[1]["content"]
    if _markers(user) != 1 or _markers(reply):
        raise _Skip("minicpm: needs exactly one <audio> marker, in the user turn")
    # A leading marker is implied by the format; one elsewhere stays in place (the reader uses such a prompt as written).
    prompt = user[len(AUDIO_MARKER) :] if user.startswith(AUDIO_MARKER) else user
    obj: dict[str, Any] = {"audio": base64.b64encode(audios[0].data).decode("ascii"), "text": reply, "prompt": prompt}
    if row.system:
        obj["system"] = row.system
    obj["id"] = row.id
    return obj


_Formatter = Callable[[_Row, list[_Audio]], dict[str, Any]]


# -- writing ---------------------------------------------------------------------------------------


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


#: An export in progress: its state file in DEST/.audiodata (an interrupted export is redone by the same command).
EXPORT_STATE = "export.json"


def _check_dest(out: Path, dest: Path, overwrite: bool) -> None:
    """Refuse a destination that cannot take this export, before anything is written there."""
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} exists and is not a folder")
    if dest.resolve() == out.resolve() or out.resolve().is_relative_to(dest.resolve()):
        raise ExportError(f"{dest} would hold or replace the converted dataset {out}; choose another folder")
    if dest.resolve().is_relative_to(out.resolve()):
        raise ExportError(f"{dest} is inside the converted dataset {out}; choose another folder")
    if not overwrite and _holds_files(dest) and not _unfinished(dest):
        raise ExportError(f"{dest} is not empty; choose an empty folder or pass --overwrite")


def _holds_files(dest: Path) -> bool:
    return dest.is_dir() and any(p.name != WORK for p in dest.iterdir())


def _unfinished(dest: Path) -> bool:
    """An export into ``dest`` that stopped before its end (a kill, a full disk): the same command redoes it."""
    try:
        return json.loads((dest / WORK / EXPORT_STATE).read_text(encoding="utf-8")).get("status") == "running"
    except (OSError, ValueError, AttributeError):
        return False


def _prepare_dest(out: Path, dest: Path, overwrite: bool) -> None:
    _check_dest(out, dest, overwrite)
    if _holds_files(dest):
        # only what an export writes: the audio folder, dataset_info.json, top-level data files and their .tmp
        with on_path(dest, "clear"):
            shutil.rmtree(dest / "audio", ignore_errors=True)
            for p in dest.iterdir():
                if p.is_file() and p.suffix == ".yaml" and p.with_suffix(".jsonl").is_file():  # a v1 export's YAML
                    p.unlink()
            for p in dest.iterdir():
                if p.is_file() and p.name.endswith((".json", ".jsonl", ".json.tmp", ".jsonl.tmp", ".yaml.tmp")):
                    p.unlink()
    with on_path(dest, "create"):
        dest.mkdir(parents=True, exist_ok=True)
    _export_state(dest, "running")


def _export_state(dest: Path, status: str) -> None:
    with on_path(dest / WORK, "create"):
        (dest / WORK).mkdir(exist_ok=True)
    write_atomic(dest / WORK / EXPORT_STATE, json.dumps({"status": status}) + "\n")


def export(
    out: Path | str,
    to: str,
    dest: Path | str,
    form: str = "sharegpt",
    audio_format: str = "flac",
    *,
    overwrite: bool = False,
    relative_paths: bool = False,
) -> ExportResult:
    """Export the converted dataset ``out`` to ``dest`` for trainer ``to``.

    ``to``: ``llamafactory`` (``form`` sharegpt or alpaca), ``llamafactory-v1``, ``ms-swift`` or ``minicpm``.
    ``relative_paths`` (ms-swift only): audio paths relative to ``dest`` rather than absolute.
    Raises :class:`ExportError` for usage errors, :class:`DatasetError` for a damaged dataset, :class:`OutputBusy`
    when another export writes ``dest``; records a target cannot express are
    skipped and counted in :attr:`ExportResult.skipped_by_reason`.
    """
    out, dest = Path(out), Path(dest)
    if to not in TARGETS:
        raise ExportError(f"unknown target {to!r}; choose one of {', '.join(TARGETS)}")
    if form not in FORMS:
        raise ExportError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    if form != "sharegpt" and to != "llamafactory":
        raise ExportError("--form applies to --to llamafactory only")
    if audio_format not in AUDIO_FORMATS:
        raise ExportError(f"unknown audio format {audio_format!r}; choose one of {', '.join(AUDIO_FORMATS)}")
    if relative_paths and to != "ms-swift":
        raise ExportError("--relative-paths applies to --to ms-swift only")
    streams = _streams(out)  # DatasetError: not a converted dataset, or a damaged one
    _check_dest(out, dest, overwrite)
    with hold(dest, "export"):  # OutputBusy: another export writes DEST
        _prepare_dest(out, dest, overwrite)
        result = _export(out, streams, dest, to, form, audio_format, relative_paths)
        _export_state(dest, "complete")
    return result


def _export(
    out: Path, streams: list[_Stream], dest: Path, to: str, form: str, audio_format: str, relative_paths: bool
) -> ExportResult:
    result = ExportResult(dest, to, form, relative_paths=relative_paths)
    formatter: _Formatter = {
        "llamafactory": _lf_alpaca if form == "alpaca" else _lf_sharegpt,
        "llamafactory-v1": _lf_v1,
        "ms-swift": functools.partial(_swift, root=None if relative_paths else dest.resolve()),
        "minicpm": _minicpm,
    }[to]
    suffix = ".json" if to == "llamafactory" else ".jsonl"
    info: dict[str, Any] = {}
    used_files: set[str] = set()
    evals = _eval_splits(out)
    for stream in streams:
        stem = _unique(f"{safe_name(stream.config)}_{safe_name(stream.split)}", used_files)
        path = _inside(dest, dest / f"{stem}{suffix}")
        written = _export_stream(stream, path, dest, formatter, to, audio_format, result)
        if not written:
            with on_path(path, "delete"):
                path.unlink()
            continue
        result.files.append(path.name)
        result.streams[path.name] = (stream.kind, stream.split)
        name = stem
        if to == "llamafactory":
            info[stem] = _dataset_info_entry(path.name, form, stream.kind, _visual_columns(stream))
        elif to == "llamafactory-v1":  # the dataset YAML v1 loads (v1/core/data_engine.py: path, source)
            name = f"{stem}.yaml"
            entry = {stem: {"path": path.name, "source": "local"}}
            _atomic_write(_inside(dest, dest / name), yaml.safe_dump(entry, sort_keys=False))
            result.files.append(name)
        if to in ("llamafactory", "llamafactory-v1"):
            keys = ("dataset", "eval_dataset") if to == "llamafactory" else ("train_dataset", "eval_dataset")
            stage = result.train.setdefault(stream.kind, {keys[0]: [], "eval_dataset": []})
            stage[keys[1] if stream.split in evals else keys[0]].append(name)
    if to == "llamafactory":
        _atomic_write(dest / "dataset_info.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        result.files.append("dataset_info.json")
    return result


def _export_stream(
    stream: _Stream, path: Path, dest: Path, formatter: _Formatter, to: str, audio_format: str, result: ExportResult
) -> int:
    audio_dir = f"audio/{safe_name(stream.config)}/{safe_name(stream.split)}"
    stems: set[str] = set()
    skipped: Counter[str] = Counter()
    tmp = path.with_name(path.name + ".tmp")
    columns = _visual_columns(stream)
    with on_path(tmp), open(tmp, "w", encoding="utf-8") as fh:
        writer = _JsonArray(fh) if to == "llamafactory" else _JsonLines(fh)
        n_read = n_written = 0
        for row in _rows(stream):
            n_read += 1
            try:
                stem = _unique(safe_name(row.id), stems) if row.audios or row.images or row.videos else ""
                audios = _audios(row, audio_dir, stem, audio_format)
                obj = formatter(row, audios)
                visual = {name: _visual_files(getattr(row, name), f"{audio_dir}/{stem}_{name[:-1]}") for name in columns}
                obj = _with_visual(obj, visual)
            except _Skip as why:
                skipped[str(why)] += 1
                if len(result.skipped) < _MAX_SKIP_LIST:
                    result.skipped.append({"config": stream.config, "split": stream.split, "id": row.id, "reason": str(why)})
                continue
            if to != "minicpm":  # minicpm carries the audio inline
                for a in [*audios, *(v for files in visual.values() for v in files)]:
                    target = _inside(dest, dest / a.rel)
                    with on_path(target):
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(a.data)
                    result.audio_files += 1
            writer.add(obj)
            n_written += 1
        writer.close()
    with on_path(path, "rename"):
        os.replace(tmp, path)
    result.read[stream.key] = n_read
    result.counts[stream.key] = n_written
    for reason, n in skipped.items():
        result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + n
    return n_written


def _audios(row: _Row, audio_dir: str, stem: str, audio_format: str) -> list[_Audio]:
    if any(a is None for a in row.audios):
        raise _Skip("an audio has no stored bytes")
    return [
        _Audio(f"{audio_dir}/{stem}_{k}.{audio_format}", _audio_bytes(data, audio_format))  # type: ignore[arg-type]
        for k, data in enumerate(row.audios)
    ]


def _visual_columns(stream: _Stream) -> list[str]:
    """The visual columns the stream's shards carry: every exported record then has the key (maybe empty)."""
    if not stream.files:
        return []
    path = stream.files[0]
    shown = path.relative_to(stream.root).as_posix() if stream.root is not None else path.name
    names = open_shard(path, shown, stream.root if stream.root is not None else path.parent).schema_arrow.names
    return [name for name in VISUAL if name in names]


def _visual_files(items: list[Any], prefix: str) -> list[_Audio]:
    """The stored images or videos as files next to the record's audio, under their original extension."""
    out = []
    for k, v in enumerate(items):
        suffix = Path(str(v.get("path") or "")).suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
            suffix = ""
        out.append(_Audio(f"{prefix}{k}{suffix}", v["bytes"]))
    return out


def _with_visual(obj: dict[str, Any], visual: dict[str, list[_Audio]]) -> dict[str, Any]:
    """``images``/``videos`` (paths relative to DEST) right after ``audios``, as LLaMA-Factory and ms-swift read them."""
    if not visual:
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[key] = value
        if key == "audios":
            out.update({name: [f.rel for f in files] for name, files in visual.items()})
    return out


def _unique(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``… when taken (compared case-insensitively)."""
    name, n = stem, 1
    while name.lower() in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name.lower())
    return name


def _eval_splits(out: Path) -> set[str]:
    """The converted dataset's evaluation splits: its ``--val-split`` (when it made one) and the usual names."""
    options = load_manifest(out).options
    named = {options["val_split"]} if options.get("val_ratio") and options.get("val_split") else set()
    return named | set(EVAL_SPLITS)


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


def _atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text)


# -- command line -------------------------------------------------------------------------------


def add_export_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``export OUT --to {llamafactory,llamafactory-v1,ms-swift,minicpm} DIR`` to a subparsers object."""
    e: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export a converted dataset for LLaMA-Factory, ms-swift or MiniCPM",
        description="Write a converted dataset out as audio files plus JSON a trainer reads directly: LLaMA-Factory "
        "(sharegpt or alpaca + dataset_info.json; use dataset_dir=DIR), LLaMA-Factory v1 (typed-content JSONL + the "
        "dataset YAML; train from DIR), ms-swift (messages + audios JSONL) "
        "or MiniCPM ({audio: base64, text} JSONL).",
        epilog="exit codes: 0 all records exported, 1 some skipped (reasons listed), 2 usage error (or DIR held by another "
        "export, or a damaged dataset)" + FAULT_EXIT + "; an interrupted export is redone by the same command",
    )
    e.add_argument("output", metavar="OUT", help="a converted audiodata output folder")
    e.add_argument("--to", required=True, choices=TARGETS, help="the trainer to export for")
    e.add_argument("dest", metavar="DIR", help="folder to write (empty, or pass --overwrite)")
    e.add_argument("--form", choices=FORMS, default="sharegpt", help="LLaMA-Factory formatting (default sharegpt)")
    e.add_argument("--audio-format", choices=AUDIO_FORMATS, default="flac", help="audio file format (default flac: as stored)")
    e.add_argument("--overwrite", action="store_true", help="replace a previous export in DIR")
    e.add_argument(
        "--relative-paths",
        action="store_true",
        help="ms-swift: audio paths relative to DIR (run with ROOT_IMAGE_DIR=DIR) instead of absolute",
    )
    return e


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    try:
        r = export(
            Path(args.output),
            args.to,
            Path(args.dest),
            form=getattr(args, "form", "sharegpt"),
            audio_format=getattr(args, "audio_format", "flac"),
            overwrite=getattr(args, "overwrite", False),
            relative_paths=getattr(args, "relative_paths", False),
        )
    except (ExportError, DatasetError, OutputBusy) as exc:  # printed with the tables; a machine fault goes up (exit 3)
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return exc.exit_code
    title = f"audiodata export -> {r.dest} ({r.target}{', ' + r.form if r.target == 'llamafactory' else ''})"
    t = Table(title=title)
    for col in ("config", "split", "read", "exported", "skipped"):
        t.add_column(col, justify="left" if col in ("config", "split") else "right")
    for key, n in r.counts.items():
        config, split = key.split("/", 1)
        t.add_row(config, split, str(r.read.get(key, n)), str(n), str(r.read.get(key, n) - n))
    console.print(t)
    console.print(f"files: {', '.join(r.files) or 'none'}; audio files: {r.audio_files}")
    if r.skipped_by_reason:
        s = Table(title="skipped records by reason")
        s.add_column("reason")
        s.add_column("records", justify="right")
        for reason, n in sorted(r.skipped_by_reason.items(), key=lambda kv: -kv[1]):
            s.add_row(reason, str(n))
        console.print(s)
    for stage, names in r.train.items():  # a ranking dataset only trains under a ranking stage: one line per stage
        args = "  ".join(f"{key}: {','.join(v)}" for key, v in names.items() if v)
        if r.target == "llamafactory":
            console.print(f"train with: stage: {stage}  dataset_dir: {r.dest}  {args}")
        else:
            console.print(f"train with: cd {r.dest} && USE_V1=1 llamafactory-cli {stage} CONFIG.yaml  with  {args}")
            console.print("  (LLaMA-Factory v1 opens the YAML's path and the audio paths relative to the working directory)")
    if r.target == "ms-swift" and r.files:
        for line in swift_hints(r):
            console.print(line, soft_wrap=True)
    return r.exit_code


#: ms-swift's command per record kind (``swift rlhf --rlhf_type`` accepts dpo and kto).
SWIFT_COMMANDS = {"sft": "swift sft", "dpo": "swift rlhf --rlhf_type dpo", "kto": "swift rlhf --rlhf_type kto"}


def swift_hints(r: ExportResult) -> list[str]:
    """How to train on an ms-swift export: one command per record kind, the train split as ``--dataset``,
    the validation split as ``--val_dataset``. Relative audio paths need ``ROOT_IMAGE_DIR``: ms-swift
    resolves a relative media path against its working folder, then that variable (ms-swift 4.6.0,
    swift/template/vision_utils.py:105-127 ``_check_path``; swift/template/base.py:459-467 for audio)."""
    dest = r.dest.resolve()
    env = f"ROOT_IMAGE_DIR={dest} " if r.relative_paths else ""
    lines = []
    if r.relative_paths:
        lines.append(
            f"audio paths are relative to {dest}: ms-swift reads them from its working folder or from "
            f"$ROOT_IMAGE_DIR, so set ROOT_IMAGE_DIR={dest} (or run swift from that folder)"
        )
    for kind, command in SWIFT_COMMANDS.items():
        train = [f"{dest / f}" for f, (k, split) in r.streams.items() if k == kind and split == "train"]
        val = [f"{dest / f}" for f, (k, split) in r.streams.items() if k == kind and split == "validation"]
        if train:
            tail = f" --val_dataset {' '.join(val)}" if val else ""
            lines.append(f"train with: {env}{command} --dataset {' '.join(train)}{tail}")
    return lines


__all__ = ["ExportError", "ExportResult", "add_export_parser", "cmd_export", "export", "safe_name", "swift_hints"]
