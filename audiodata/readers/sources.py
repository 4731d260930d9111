"""Expand what the user typed (files, folders, globs, dataset_info.json) into the
ordered list of input files to read, each with its dialect spec and media root."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path

from audiodata.readers.spec import DialectSpec

JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
DATASET_INFO = "dataset_info.json"


class InputError(ValueError):
    """An input that cannot be used at all (usage error, exit code 2)."""


@dataclass(slots=True)
class InputFile:
    path: Path  # where to read it
    display: str  # how the user named it: the 'source' in records and reports
    media_root: str
    spec: DialectSpec

    @property
    def input_dir(self) -> str | None:
        """The file's own folder, where relative audio paths are looked for when the media root lacks
        them; None for dataset_info entries, whose paths resolve against the media root alone (as
        LLaMA-Factory resolves them against its media_dir)."""
        return None if self.spec.name else str(self.path.parent)

    def describe(self) -> dict[str, object]:
        st = self.path.stat()
        return {
            "file": self.display,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "dialect": self.spec.formatting,
            "entry": self.spec.name,
        }


def _is_json(path: Path) -> bool:
    return path.name.endswith(JSON_SUFFIXES) and path.name != DATASET_INFO


def expand(
    inputs: list[str],
    media_root: str | None = None,
    formatting: str | None = None,
    datasets: list[str] | None = None,
    exclude: list[Path] | None = None,
) -> list[InputFile]:
    """Every input file in a stable order. Raises :class:`InputError` for unusable inputs."""
    out: list[InputFile] = []
    seen: set[Path] = set()
    skip = [p.resolve() for p in exclude or []]

    def add(path: Path, display: str, root: str | None, spec: DialectSpec) -> None:
        real = path.resolve()
        if real in seen or any(real.is_relative_to(s) for s in skip):
            return
        seen.add(real)
        out.append(InputFile(path, display, root or media_root or str(path.parent), spec))

    for given in inputs:
        path = Path(given)
        if any(ch in given for ch in "*?[") and not path.exists():
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                raise InputError(f"{given}: the pattern matches no file")
            for m in matches:
                if Path(m).is_file() and (_is_json(Path(m)) or Path(m).name == DATASET_INFO):
                    _add_file(Path(m), m, add, media_root, formatting, datasets)
            continue
        if not path.exists():
            raise InputError(f"{given}: no such file or folder")
        if path.is_dir():
            _add_dir(path, given, add, media_root, formatting, datasets)
        else:
            _add_file(path, given, add, media_root, formatting, datasets)
    if not out:
        raise InputError("no JSON or JSONL input found in " + ", ".join(inputs))
    return out


def _add_file(path, display, add, media_root, formatting, datasets) -> None:  # type: ignore[no-untyped-def]
    if path.name == DATASET_INFO:
        for f, d, root, spec in dataset_info_files(path, display, datasets):
            add(f, d, media_root or root, spec)
        return
    add(path, display, media_root, DialectSpec(formatting=formatting))


def _add_dir(top: Path, display: str, add, media_root, formatting, datasets) -> None:  # type: ignore[no-untyped-def]
    named: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        rel = os.path.relpath(dirpath, top)
        shown = display if rel == "." else os.path.join(display, rel)
        if DATASET_INFO in filenames:  # a LLaMA-Factory dataset_dir: its entries say how to read its files
            info_display = os.path.join(shown, DATASET_INFO)
            # every file an entry names is read through its entry, or not at all (--dataset filters entries)
            named.update(f.resolve() for f, *_ in dataset_info_files(here / DATASET_INFO, info_display, None))
            for f, d, root, spec in dataset_info_files(here / DATASET_INFO, info_display, datasets):
                add(f, d, media_root or root, spec)
        for name in sorted(filenames):
            p = here / name
            if _is_json(p) and p.resolve() not in named:
                add(p, os.path.join(shown, name), media_root, DialectSpec(formatting=formatting))


def dataset_info_files(info_path: Path, display: str, only: list[str] | None) -> list[tuple[Path, str, str, DialectSpec]]:
    """The local files a LLaMA-Factory ``dataset_info.json`` names, with their specs.

    Media resolve against the dataset_dir (the file's folder), as LLaMA-Factory does
    with its default ``media_dir``. Hub-hosted entries are skipped: they are not local.
    """
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{display}: cannot read dataset_info.json ({exc})") from None
    if not isinstance(info, dict):
        raise InputError(f"{display}: dataset_info.json must be an object of dataset entries")
    if only:
        missing = [n for n in only if n not in info]
        if missing:
            raise InputError(f"{display}: no dataset entry named {', '.join(missing)} (have: {', '.join(sorted(info))})")
    base = info_path.parent
    base_display = os.path.dirname(display)
    out = []
    for name, entry in info.items():
        if only and name not in only:
            continue
        if not isinstance(entry, dict):
            raise InputError(f"{display}: entry {name!r} must be an object")
        if "file_name" not in entry:
            continue
        fmt = entry.get("formatting", "alpaca")
        if fmt not in ("alpaca", "sharegpt", "openai"):
            raise InputError(f"{display}: entry {name!r} has unknown formatting {fmt!r}")
        spec = DialectSpec(
            formatting=fmt,
            ranking=bool(entry.get("ranking", False)),
            columns=dict(entry.get("columns") or {}),
            tags=dict(entry["tags"]) if entry.get("tags") else ({} if fmt == "sharegpt" else None),
            name=name,
        )
        target = base / entry["file_name"]
        if target.is_dir():
            files = sorted(p for p in target.rglob("*") if p.is_file() and _is_json(p))
        elif target.is_file():
            files = [target]
        else:
            raise InputError(f"{display}: entry {name!r} names {entry['file_name']}, which does not exist")
        for f in files:
            out.append((f, os.path.join(base_display, os.path.relpath(f, base)), str(base), spec))
    return out
