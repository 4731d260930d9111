"""LLaMA-Factory's dataset registries: which local files a ``dataset_info.json`` (0.9.x) or a
v1 dataset YAML names, how each is read, and which entries are not read, and why.

Every key is judged against the keys LLaMA-Factory itself reads: ``DatasetAttr.join`` in
``src/llamafactory/data/parser.py`` (with ``data/loader.py`` for what applies to local files),
and ``DatasetInfo`` in ``src/llamafactory/v1/utils/types.py`` with ``DataEngine`` in
``v1/core/data_engine.py``. Each is honoured, ignored for a reason given below, or refused
with a message naming the entry and the key. LLaMA-Factory ignores keys it does not know,
so a misspelt column (``"audio"`` for ``"audios"``) silently drops the audio there; here it
is an error. Entries that are not local, or not SFT/DPO/KTO data, are reported (F006), not
read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodata.errors import InputDataError
from audiodata.errtext import library_error
from audiodata.readers.jsonstream import iter_file
from audiodata.readers.rawfile import FileFailure, open_regular, wrong_encoding
from audiodata.readers.spec import DEFAULT_COLUMNS, DialectSpec
from audiodata.records import SourceLoc
from audiodata.rules.findings import Finding

JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
DATASET_INFO = "dataset_info.json"
YAML_SUFFIXES = (".yaml", ".yml")


class InputError(InputDataError):
    """An input that cannot be used at all (usage error, exit code 2)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something an input names that is not read: a registry entry (F006) or a file no entry names (F007)."""

    code: str
    source: str  # the registry (or the unnamed file) as shown
    entry: str  # the dataset name; "" for a file
    reason: str

    @property
    def message(self) -> str:
        return f"dataset {self.entry!r}: {self.reason}" if self.entry else self.reason

    def finding(self) -> Finding:
        """As a lint finding: located to the registry, the entry as the field (index -1: not a record)."""
        return Finding(self.code, self.message, self.entry, SourceLoc(self.source, -1))

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "source": self.source, "entry": self.entry, "reason": self.reason}


@dataclass(slots=True)
class Named:
    """What a registry names: ``(path, display, media root, spec)`` per file, and what is not read."""

    files: list[tuple[Path, str, str, DialectSpec]] = field(default_factory=list)
    hubs: list[tuple[Any, str, DialectSpec]] = field(default_factory=list)  # (HubRef, media root, spec): entries read from a hub
    skipped: list[Skipped] = field(default_factory=list)
    covered: set[Path] = field(default_factory=set)  # every local file an entry names, read or not


def is_json(path: Path) -> bool:
    return path.name.endswith(JSON_SUFFIXES) and path.name != DATASET_INFO


def is_registry(path: Path) -> bool:
    return path.name == DATASET_INFO or path.name.endswith(YAML_SUFFIXES)


def read_registry(path: Path, display: str, only: list[str] | None) -> Named:
    """The files a ``dataset_info.json`` or a v1 YAML names (entries in ``only``, or all)."""
    if path.name.endswith(YAML_SUFFIXES):
        return v1_yaml_files(path, display, only)
    return dataset_info_files(path, display, only)


# -- dataset_info.json (LLaMA-Factory 0.9.x) ----------------------------------------------------

#: Where an entry's data lives when it is not a local file; LLaMA-Factory prefers these over file_name (parser.py).
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
#: Read by DatasetAttr.join but without effect on a local file (loader.py passes them to hub and script loads only),
#: or a choice of how many rows to draw per training run rather than part of the data: every row is converted.
IGNORED_KEYS = {
    "subset": "a hub/script subset",
    "folder": "a hub/script sub-folder",
    "num_samples": "how many rows a training run draws",
}
ENTRY_KEYS = ("file_name", *HUB_KEYS, "formatting", "ranking", "split", "columns", "tags", *IGNORED_KEYS)
FORMATTINGS = ("alpaca", "sharegpt", "openai")
COMMON_COLUMNS = ("system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag")
COLUMNS = {
    "alpaca": ("prompt", "query", "response", "history", *COMMON_COLUMNS),
    "sharegpt": ("messages", *COMMON_COLUMNS),
    "openai": ("messages", *COMMON_COLUMNS),
}
TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
#: DatasetAttr's column defaults (parser.py): an entry with ``columns`` replaces them all (join sets unlisted ones to None).
LF_DEFAULT_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "messages": "conversations"}


def dataset_info_files(info_path: Path, display: str, only: list[str] | None) -> Named:
    """The local files a LLaMA-Factory ``dataset_info.json`` names, with their specs.

    Media resolve against the dataset_dir (the file's folder), as LLaMA-Factory does with its
    default ``media_dir``. Every entry is checked, also those ``only`` leaves out.
    """
    try:
        info = json.loads(_registry_text(info_path))
    except (OSError, ValueError, RecursionError, FileFailure) as exc:  # ValueError: bad JSON, UTF-8 or a 5000-digit number
        raise InputError(f"{display}: cannot read dataset_info.json ({_reason(exc)})") from None
    if not isinstance(info, dict):
        raise InputError(f"{display}: dataset_info.json must be an object of dataset entries")
    _check_only(display, info, only)
    base = info_path.parent
    base_display = os.path.dirname(display)
    out = Named()
    for name, entry in info.items():
        spec = _entry_spec(display, name, entry)
        if only and name not in only:
            continue
        if "file_name" in entry and (base / entry["file_name"]).exists():
            target = base / entry["file_name"]
            out.covered.update(p.resolve() for p in (target.rglob("*") if target.is_dir() else [target]))
        hub = [k for k in HUB_KEYS if k in entry]
        ref = hub_ref(entry)
        if ref is not None:  # read from the hub as LLaMA-Factory loads it, subset, split and folder included
            from audiodata.readers.hfhub import unavailable

            why = unavailable(ref)
            if why is not None:
                out.skipped.append(Skipped("F006", display, name, f"not read: {why}"))
            else:
                out.hubs.append((ref, str(base), spec))
            continue
        if hub:  # LLaMA-Factory loads these from a script or the cloud (or om_hub), even when file_name is also given
            also = "; its file_name is not what LLaMA-Factory loads either" if "file_name" in entry else ""
            out.skipped.append(Skipped("F006", display, name, f"not local ({hub[0]} {entry[hub[0]]}): skipped{also}"))
            continue
        target = base / entry["file_name"]
        if not target.exists():
            raise InputError(f"{display}: dataset {name!r} names {entry['file_name']}, which does not exist")
        files = sorted(p for p in target.rglob("*") if not p.is_dir() and is_json(p)) if target.is_dir() else [target]
        files = [f for f in files if is_json(f)]
        why = _not_read(entry, spec, target, files)
        if why:
            out.skipped.append(Skipped("F006", display, name, why))
            continue
        for f in files:
            out.files.append((f, os.path.join(base_display, os.path.relpath(f, base)), str(base), spec))
    return out


def hub_ref(entry: dict[str, Any]) -> Any:
    """The hub dataset an entry names (``hf_hub_url``, or ``ms_hub_url`` where LLaMA-Factory takes it: with
    ``USE_MODELSCOPE_HUB`` set or no ``hf_hub_url``, parser.py ``get_dataset_list``), or None."""
    from audiodata.readers.hfhub import HubRef

    use_ms = os.environ.get("USE_MODELSCOPE_HUB", "0").lower() in ("true", "y", "1")
    if "ms_hub_url" in entry and (use_ms or "hf_hub_url" not in entry):
        hub, url = "ms", entry["ms_hub_url"]
    elif "hf_hub_url" in entry:
        hub, url = "hf", entry["hf_hub_url"]
    else:
        return None
    return HubRef(hub, str(url), entry.get("subset"), entry.get("split", "train"), entry.get("folder"))


def _check_only(display: str, names: dict[str, Any], only: list[str] | None) -> None:
    missing = [n for n in only or [] if n not in names]
    if missing:
        raise InputError(f"{display}: no dataset entry named {', '.join(missing)} (have: {', '.join(sorted(names))})")


def _entry_spec(display: str, name: str, entry: Any) -> DialectSpec:
    """Check one entry's keys; its spec (or an :class:`InputError` naming the entry and the key)."""
    where = f"{display}: dataset {name!r}"
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be an object")
    for key in entry:
        if key not in ENTRY_KEYS:
            raise InputError(f"{where}: unknown key {key!r} (LLaMA-Factory reads {', '.join(ENTRY_KEYS)})")
    if "file_name" not in entry and not any(k in entry for k in HUB_KEYS):
        raise InputError(f"{where}: no file_name (nor {', '.join(HUB_KEYS)})")
    fmt = entry.get("formatting", "alpaca")
    if fmt not in FORMATTINGS:
        raise InputError(f"{where}: unknown formatting {fmt!r} (LLaMA-Factory knows {', '.join(FORMATTINGS)})")
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise InputError(f"{where}: ranking must be true or false, got {ranking!r}")
    local = not any(k in entry for k in HUB_KEYS)
    if local and entry.get("split", "train") != "train":  # loader.py: load_dataset(data_files=..., split=split)
        raise InputError(
            f"{where}: split {entry['split']!r}: a local file is one 'train' split to LLaMA-Factory (and a slice such as "
            "train[:100] would take part of it); audiodata converts whole files: drop the key"
        )
    columns = _names(where, "columns", entry.get("columns"), COLUMNS[fmt], f"with formatting {fmt}")
    tags = _names(where, "tags", entry.get("tags"), TAGS if fmt != "alpaca" else (), f"with formatting {fmt}")
    read = columns if "columns" in entry else {k: v for k, v in LF_DEFAULT_COLUMNS.items() if k in COLUMNS[fmt]}
    if fmt != "alpaca" and "messages" not in read:
        raise InputError(f"{where}: its columns do not map messages, so LLaMA-Factory reads no conversation (add \"messages\")")
    if ranking and not {"chosen", "rejected"} <= set(read):
        raise InputError(f"{where}: a ranking entry must map the chosen and rejected columns (LLaMA-Factory looks both up)")
    taken = set(read.values())
    unread = tuple(DEFAULT_COLUMNS[k] for k in COLUMNS[fmt] if k not in read and DEFAULT_COLUMNS[k] not in taken)
    return DialectSpec(
        formatting=fmt,
        ranking=ranking,
        columns=columns,
        tags=tags if fmt == "sharegpt" else (tags or None),
        name=name,
        unread=unread,
    )


def _names(where: str, key: str, value: Any, allowed: tuple[str, ...], context: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: {key} must be an object of names")
    for k, v in value.items():
        if k not in allowed:
            known = f"(LLaMA-Factory reads {', '.join(allowed)} {context})" if allowed else f"(none apply {context})"
            raise InputError(f"{where}: unknown {key} key {k!r} {known}")
        if not isinstance(v, str) or not v:
            raise InputError(f"{where}: {key}.{k} must be a non-empty string")
    return dict(value)


def _not_read(entry: dict[str, Any], spec: DialectSpec, target: Path, files: list[Path]) -> str | None:
    """Why a local entry is not read, or None. Pretraining text (LLaMA-Factory's ``c4_demo``/``wiki_demo``:
    alpaca mapping only the prompt column, rows without a response) trains with stage pt, not SFT/DPO/KTO."""
    prompt_only = spec.formatting == "alpaca" and not spec.ranking and set(spec.columns) == {"prompt"}
    if prompt_only and spec.columns["prompt"] != "instruction" and not (files and _has_column(files[0], spec.column("response"))):
        return f"not an SFT/DPO/KTO dataset (text-only, prompt column {spec.columns['prompt']!r}: pretraining data): skipped"
    if not files:
        kind = "holds no JSON/JSONL file" if target.is_dir() else f"is a {target.suffix or 'suffix-less'} file"
        return f"{entry['file_name']} {kind}; audiodata reads JSON and JSONL: skipped"
    return None


def _has_column(path: Path, column: str) -> bool:
    """Whether the file's first record has ``column`` (an unreadable first record: assume it has)."""
    first = next(iter_file(path, 1 << 26), None)  # never raises: an unreadable file is an item with its finding
    return first is None or not isinstance(first.obj, dict) or column in first.obj


#: A registry is a small text file; more than this is not one.
MAX_REGISTRY_BYTES = 64 * 2**20


def _registry_text(path: Path) -> str:
    """A dataset_info.json or YAML as text: a regular file (a FIFO is refused, not waited on),
    UTF-8, bounded in size."""
    with open_regular(path) as fh:
        data = fh.read(MAX_REGISTRY_BYTES + 1)
    if len(data) > MAX_REGISTRY_BYTES:
        raise ValueError(f"larger than {MAX_REGISTRY_BYTES >> 20} MiB: not a dataset registry")
    why = wrong_encoding(data[:8])
    if why is not None:
        raise ValueError(why)
    return data.decode("utf-8-sig")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep"
    if isinstance(exc, OSError):
        return library_error(exc)
    return str(exc)


# -- v1 dataset YAML ------------------------------------------------------------------------------

#: ``DatasetInfo`` (v1/utils/types.py). size, weight: how many rows DataEngine draws per run
#: (``adjust_data_index``), streaming: how it loads them; neither is part of the data, every row is converted.
V1_KEYS = ("path", "source", "split", "converter", "size", "weight", "streaming")
V1_SOURCES = ("hf_hub", "ms_hub", "local")
V1_CONVERTERS = ("alpaca", "sharegpt", "pair")


def v1_yaml_files(yaml_path: Path, display: str, only: list[str] | None) -> Named:
    """The local files a LLaMA-Factory v1 dataset YAML names (``data/v1_*.yaml``).

    v1 opens ``path`` and the media paths inside the rows as they are written, so relative
    ones resolve against the working directory (``DataEngine``, ``load_data_from_file``);
    so do they here, and media too unless ``--media-root`` says otherwise.
    """
    import yaml

    try:
        info = yaml.safe_load(_registry_text(yaml_path))
    except (OSError, ValueError, RecursionError, FileFailure, yaml.YAMLError) as exc:
        raise InputError(f"{display}: cannot read the v1 dataset YAML ({_reason(exc)})") from None
    if not isinstance(info, dict) or not info:
        raise InputError(f"{display}: a v1 dataset YAML must map dataset names to {{path, source, ...}}")
    _check_only(display, {str(k): v for k, v in info.items()}, only)
    cwd = os.getcwd()
    out = Named()
    for key, entry in info.items():
        name = str(key)
        spec = _v1_spec(display, name, entry)
        if only and name not in only:
            continue
        source = entry.get("source", "hf_hub")
        if source != "local":
            hint = " (the default when no source is given; write source: local for a local file)" if "source" not in entry else ""
            out.skipped.append(Skipped("F006", display, name, f"not local (source {source}{hint}): skipped"))
            continue
        target = Path(entry["path"])
        if not target.exists():
            raise InputError(
                f"{display}: dataset {name!r}: path {entry['path']} does not exist (LLaMA-Factory v1 resolves it against "
                f"the working directory, here {cwd}: run from the folder you train in)"
            )
        files = sorted(p for p in target.rglob("*") if not p.is_dir() and is_json(p)) if target.is_dir() else [target]
        if not files or not is_json(files[0]):
            out.skipped.append(Skipped("F006", display, name, f"{entry['path']}: audiodata reads JSON and JSONL: skipped"))
            continue
        for f in files:
            shown = entry["path"] if f == target else os.path.join(entry["path"], os.path.relpath(f, target))
            out.files.append((f, shown, cwd, spec))
    return out


def _v1_spec(display: str, name: str, entry: Any) -> DialectSpec:
    where = f"{display}: dataset {name!r}"
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be a mapping of {', '.join(V1_KEYS)}")
    for key in entry:
        if key not in V1_KEYS:
            raise InputError(f"{where}: unknown key {key!r} (LLaMA-Factory v1 reads {', '.join(V1_KEYS)})")
    if not isinstance(entry.get("path"), str) or not entry["path"]:
        raise InputError(f"{where}: path must be a non-empty string")
    if entry.get("source", "hf_hub") not in V1_SOURCES:
        raise InputError(f"{where}: unknown source {entry['source']!r} (LLaMA-Factory v1 knows {', '.join(V1_SOURCES)})")
    if entry.get("split", "train") != "train" and entry.get("source") == "local":
        raise InputError(f"{where}: split {entry['split']!r}: a local file is one 'train' split; audiodata converts whole files")
    converter = entry.get("converter")
    if converter is None:
        return DialectSpec(formatting="llamafactory-v1", name=name)
    if converter not in V1_CONVERTERS:
        raise InputError(f"{where}: unknown converter {converter!r} (LLaMA-Factory v1 has {', '.join(V1_CONVERTERS)})")
    if converter == "alpaca":
        return DialectSpec(formatting="alpaca", ranking=False, name=name, converter=converter)
    if converter == "sharegpt":
        return DialectSpec(formatting="sharegpt", ranking=False, tags={}, name=name, converter=converter)
    return DialectSpec(formatting="llamafactory-v1", ranking=True, name=name, converter=converter)
