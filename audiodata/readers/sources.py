"""Expand what the user typed (files, folders, globs, a LLaMA-Factory dataset_info.json or v1
dataset YAML) into the ordered list of input files to read, each with its dialect spec and
media root, and what was named but is not read (reported, never silently dropped)."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from audiodata import objstore
from audiodata.dataset import MANIFEST
from audiodata.privacy import input_base
from audiodata.readers import corpus, hfdataset, hfhub
from audiodata.readers import items as raw_items
from audiodata.readers.rawfile import file_kind
from audiodata.readers.registry import (
    DATASET_INFO,
    JSON_SUFFIXES,
    YAML_SUFFIXES,
    InputError,
    Skipped,
    dataset_info_files,
    is_json,
    is_registry,
    read_registry,
)
from audiodata.readers.spec import DialectSpec
from audiodata.readers.webdataset import expand_braces

__all__ = ["DATASET_INFO", "JSON_SUFFIXES", "Expanded", "InputError", "InputFile", "Skipped", "expand", "expand_inputs"]


@dataclass(slots=True)
class InputFile:
    path: Path  # where to read it
    display: str  # how the user named it: the 'source' in records and reports
    media_root: str
    spec: DialectSpec
    kind: str = raw_items.JSON  # how it is read: JSON/JSONL, or a raw corpus (audiodata.readers.items.file_kind)
    companion: Path | None = None  # a file read with it: the recordings manifest of a lhotse supervisions manifest
    hub: Any = None  # a Hub dataset (audiodata.readers.hfhub.HubRef) when kind is "hub"
    part: tuple[int, int] | None = None  # a rank's byte range of a JSONL file (audiodata.pipeline.ranks); None: all of it
    sha256: str | None = None  # a file staged from an object store (audiodata.objstore): what it is, on any machine

    @property
    def input_dir(self) -> str | None:
        """The file's own folder, where relative audio paths are looked for when the media root lacks
        them; None for dataset_info entries, whose paths resolve against the media root alone (as
        LLaMA-Factory resolves them against its media_dir)."""
        return None if self.spec.name or self.kind == "hub" else str(self.path.parent)

    @property
    def size(self) -> int:
        """Bytes on disk (progress only); 0 when the file is gone: reading it says so (F004)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def describe(self) -> dict[str, object]:
        try:
            st = self.path.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # gone since the inputs were listed: reading it is that file's F004, not a crash here
            size, mtime = None, None
        if self.sha256 is not None:  # staged from a store: its content names it (a local copy's mtime differs per machine)
            mtime = None
        return {
            **({"sha256": self.sha256} if self.sha256 is not None else {}),
            "file": self.display,
            "size": size,
            "mtime_ns": mtime,
            "dialect": self.spec.formatting,
            "entry": self.spec.name,
            **({"converter": self.spec.converter} if self.spec.converter else {}),
            **({"kind": self.kind} if self.kind != raw_items.JSON else {}),
            **({"columns": self.spec.columns} if self.kind in corpus.KINDS else {}),
            **({"companion": _stat(self.companion)} if self.companion is not None else {}),
        }


def _stat(path: Path) -> dict[str, object]:
    try:
        st = path.stat()
        return {"file": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"file": path.name}


@dataclass(slots=True)
class Expanded:
    files: list[InputFile]
    skipped: list[Skipped] = field(default_factory=list)  # named but not read: registry entries, unnamed files


def expand(
    inputs: list[str],
    media_root: str | None = None,
    formatting: str | None = None,
    datasets: list[str] | None = None,
    exclude: list[Path] | None = None,
    all_files: bool = False,
    absolute_paths: bool = False,
    columns: dict[str, str] | None = None,
) -> list[InputFile]:
    """Every input file in a stable order. Raises :class:`InputError` for unusable inputs."""
    return expand_inputs(inputs, media_root, formatting, datasets, exclude, all_files, absolute_paths, columns).files


def expand_inputs(
    inputs: list[str],
    media_root: str | None = None,
    formatting: str | None = None,
    datasets: list[str] | None = None,
    exclude: list[Path] | None = None,
    all_files: bool = False,
    absolute_paths: bool = False,
    columns: dict[str, str] | None = None,
) -> Expanded:
    """The input files and what they name that is not read. A folder holding a ``dataset_info.json``
    reads exactly the files it names, unless ``all_files``. Each file's ``display`` (the ``source`` of
    records, rejects and reports) is the path as typed, or relative to its folder when typed absolute
    (:func:`audiodata.privacy.input_base`; ``absolute_paths`` keeps it absolute). Raw corpora (Hugging Face
    datasets, WebDataset tars, ``hf://`` and ``ms://`` ids, brace patterns) are read through
    :mod:`audiodata.readers.corpus`, their rows by ``columns`` (``--column``) or detected ones."""
    out: list[InputFile] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    skip = [p.resolve() for p in exclude or []]
    given_columns = dict(columns or {})

    def add(path: Path, display: str, root: str | None, spec: DialectSpec, kind: str | None = None, hub: Any = None) -> None:
        """One input; ``kind`` None: told by its name (JSON, subtitles, a lhotse manifest: ``items.file_kind``)."""
        real = path.resolve() if hub is None else Path("/") / "hub:" / hub.shown
        if real in seen or any(real.is_relative_to(s) for s in skip):
            return
        companion = None
        if kind is None:
            kind, companion = raw_items.file_kind(path) if spec.name is None else (raw_items.JSON, None)
            if kind == raw_items.RECORDINGS:  # read through its supervisions manifest
                return
        seen.add(real)
        out.append(InputFile(path, display, root or media_root or str(path.parent), spec, kind, companion, hub))

    def add_file(path: Path, display: str) -> None:
        kind = corpus.file_kind(path)
        if kind is not None:
            spec = corpus.tar_spec(formatting, given_columns) if kind == "webdataset" else corpus.table_spec(
                path, display, formatting, given_columns
            )
            add(path, display, media_root, spec, kind)
        elif is_registry(path):
            named = read_registry(path, display, datasets)
            for f, d, root, spec in named.files:
                add(f, d, media_root or root, spec)
            for ref, root, spec in named.hubs:
                add(Path(ref.shown), ref.shown, media_root or root, spec, "hub", ref)
            skipped.extend(named.skipped)
        else:
            add(path, display, media_root, DialectSpec(formatting=formatting))

    def take_remote(given: str) -> None:
        """An object-store file, folder or glob: staged into the local cache (audiodata.objstore), then read as a
        local one is; records name it by its URL, and relative media paths resolve in its remote folder."""
        name = given.rstrip("/").rsplit("/", 1)[-1]
        registry = name == DATASET_INFO or name.endswith(YAML_SUFFIXES)  # the files it names lie beside it: stage them too
        try:
            if registry and objstore.info(given).get("type") == "file":
                staged = objstore.stage(objstore.parent(given))
            else:
                staged = objstore.stage(given)
        except FileNotFoundError:  # a store that keeps failing is a fault (RemoteFault, exit 3), not this
            raise InputError(f"{given}: no such object or folder") from None
        first = len(out)
        if registry and staged.path.is_dir() and (staged.path / name).is_file():
            add_file(staged.path / name, given)
        elif not staged.path.is_dir():
            add_file(staged.path, given)
        elif any(ch in given for ch in "*?["):
            for local in sorted(staged.digests, key=lambda f: staged.url_of(f) or f):
                add_file(Path(local), staged.url_of(local) or local)
        else:
            _add_dir(staged.path, given.rstrip("/"), add, skipped, media_root, formatting, datasets, all_files, skip)
        for f in out[first:]:
            f.sha256 = staged.digests.get(str(f.path))
            remote_root = staged.url_of(f.media_root) if not objstore.is_remote(f.media_root) else None
            if remote_root is not None:
                f.media_root = remote_root

    def take(given: str) -> None:
        if objstore.is_remote(given):
            take_remote(given)
            return
        ref = hfhub.parse_hub_id(given)
        if ref is not None:
            why = hfhub.unavailable(ref)
            if why is not None:
                raise InputError(why)
            spec = corpus.hub_spec(ref, formatting, given_columns)
            add(Path(ref.shown), ref.shown, media_root or os.getcwd(), spec, "hub", ref)
            return
        path = Path(given)
        if "{" in given and "}" in given and not path.exists():
            try:
                names = expand_braces(given)
            except ValueError as exc:
                raise InputError(str(exc)) from None
            if names != [given]:
                for name in names:
                    take(name)
                return
        if any(ch in given for ch in "*?[") and not path.exists():
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                raise InputError(f"{given}: the pattern matches no file")
            yaml_asked = given.endswith(YAML_SUFFIXES)  # a glob over a folder does not take every YAML in it for a v1 registry
            for m in matches:
                found = Path(m)
                if found.is_dir():
                    continue
                wanted = is_json(found) or raw_items.is_input(found) or found.name == DATASET_INFO
                if wanted or (yaml_asked and is_registry(found)) or corpus.file_kind(found):
                    add_file(found, m)  # a FIFO or device among them is its own F004 when read, never a hang
            return
        if not path.exists():
            raise InputError(f"{given}: no such file or folder")
        if path.is_dir():
            if (path / MANIFEST).is_file():  # its manifest and rejects would be read as records (F003 each)
                raise InputError(
                    f"{given}: a converted dataset ({MANIFEST}), not a raw corpus; `audiodata verify {given}` checks it, "
                    f"`audiodata export {given} --to ...` writes it back out as a trainer's JSON"
                )
            if hfdataset.is_dataset_folder(path):  # as ``datasets`` wrote it: its Parquet/Arrow files
                for f in hfdataset.dataset_files(path):
                    shown = os.path.join(given, os.path.relpath(f, path))
                    spec = corpus.table_spec(f, shown, formatting, given_columns)
                    add(f, shown, media_root, spec, corpus.file_kind(f) or "arrow")
                return
            _add_dir(path, given, add, skipped, media_root, formatting, datasets, all_files, skip)
            return
        kind = file_kind(path.stat().st_mode)
        if kind is not None:  # /dev/zero, a FIFO, a socket named on the command line: a usage error
            raise InputError(f"{given}: not a regular file ({kind}); audiodata reads JSON and JSONL files")
        add_file(path, given)

    spans: list[tuple[str, int, int]] = []  # each input as typed, with where its files and skips start
    for given in inputs:
        spans.append((given, len(out), len(skipped)))
        take(given)
    if not out:
        why = "; ".join(s.message for s in skipped[:3])
        raise InputError("no JSON or JSONL input found in " + ", ".join(inputs) + (f" ({why})" if why else ""))
    if not absolute_paths:  # errors above name inputs as typed; what is written names them relative
        ends = [(f, k) for _, f, k in spans[1:]] + [(len(out), len(skipped))]
        for (given, f0, k0), (f1, k1) in zip(spans, ends, strict=True):
            if os.path.isabs(given):
                _relative_to(input_base(given), out[f0:f1], skipped, k0, k1)
    return Expanded(out, skipped)


def _relative_to(base: str, files: list[InputFile], skipped: list[Skipped], k0: int, k1: int) -> None:
    """Rename what one absolutely typed input expanded to relative to ``base`` (its folder)."""
    for f in files:
        f.display = _rel(f.display, base)
    for k in range(k0, k1):
        s = skipped[k]
        skipped[k] = replace(s, source=_rel(s.source, base), reason=s.reason.replace(base.rstrip(os.sep) + os.sep, ""))


def _rel(display: str, base: str) -> str:
    return os.path.relpath(display, base) if os.path.isabs(display) else display


def _add_dir(
    top: Path,
    display: str,
    add: Callable[[Path, str, str | None, DialectSpec], None],
    skipped: list[Skipped],
    media_root: str | None,
    formatting: str | None,
    datasets: list[str] | None,
    all_files: bool,
    exclude: list[Path],
) -> None:
    named: set[Path] = set()
    governed: list[tuple[Path, str]] = []  # LLaMA-Factory dataset_dirs and their dataset_info.json: it says which files are data
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        rel = os.path.relpath(dirpath, top)
        shown = display if rel == "." else os.path.join(display, rel)
        if DATASET_INFO in filenames:  # every file an entry names is read through its entry, or not at all
            info_display = os.path.join(shown, DATASET_INFO)
            everything = dataset_info_files(here / DATASET_INFO, info_display, None)
            named.update(everything.covered)
            governed.append((here, info_display))
            chosen = dataset_info_files(here / DATASET_INFO, info_display, datasets) if datasets else everything
            for f, d, root, spec in chosen.files:
                add(f, d, media_root or root, spec)
            skipped.extend(chosen.skipped)
        for name in sorted(filenames):
            p = here / name
            if not (is_json(p) or raw_items.is_input(p)) or p.resolve() in named:
                continue
            owner = next((info for g, info in reversed(governed) if here.is_relative_to(g)), None)
            if owner is not None and not all_files:
                if not any(p.resolve().is_relative_to(x) for x in exclude):
                    why = f"not named in {owner}: not read (pass --all-files to read it)"
                    skipped.append(Skipped("F007", os.path.join(shown, name), "", why))
                continue
            add(p, os.path.join(shown, name), media_root, DialectSpec(formatting=formatting))
