"""Where ``lint --fix`` writes its repaired copies, and how their audio paths keep resolving.

One input file: ``--fix`` names the repaired file (JSONL, paths copied as written), as always.
Several input files (a folder, several files, a dataset_info.json): ``--fix`` names a folder, and
each input gets its own copy at the same place relative to the inputs' common folder, in the
input's container (a JSON array stays an array, JSONL stays JSONL, gzip stays gzip) and dialect
(the raw records are copied); a dataset_info.json that names the files is copied along with the
entries that were read, so the copy converts the way the original does. Never one merged file.

A relative audio path is kept when it names the same file from the copy (the copy is read with the
same explicit ``--media-root``); otherwise it becomes the absolute path it named, links kept as
written, since a relative path leading out of the copy's folder would leave its media root (A002).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from audiodata import objstore
from audiodata.audio.load import lexical_target
from audiodata.faults import MachineFault, on_path, write_atomic
from audiodata.pipeline.options import OptionsError
from audiodata.readers.jsonstream import sniff_layout
from audiodata.readers.sources import DATASET_INFO, InputFile
from audiodata.records import Record
from audiodata.rules.fixes import get_at, parse_path, set_at

JSON_NAMES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


@dataclass(frozen=True)
class FixTarget:
    """The repaired copy of one input file."""

    output: Path
    source: str = ""  # the input, as the user named it
    layout: str = "lines"  # "lines" (JSONL) or "array" (a JSON array), as the input is
    gzip: bool = False
    root: str | None = None  # the copy's media root; None: audio paths copied as written


@dataclass
class FixPlan:
    out: Path
    single: bool
    targets: list[FixTarget]
    infos: dict[Path, tuple[Path, list[str]]] = field(default_factory=dict)  # dataset_info.json -> (copy, entries)

    def roots(self) -> tuple[str | None, ...] | None:
        """Per input file, the media root its copy is read with (None everywhere in single mode)."""
        return None if self.single else tuple(t.root for t in self.targets)


def plan(files: list[InputFile], fix_arg: str | os.PathLike[str], media_root: str | None) -> FixPlan:
    """Where each input's repaired copy goes. Raises :class:`OptionsError` when ``fix`` cannot hold them.

    ``fix_arg`` is taken as typed: a trailing slash (``--fix out/``) names a folder even before it exists,
    which a :class:`Path` would forget."""
    fix = Path(fix_arg)
    one = len(files) == 1 and files[0].spec.name is None
    if one and not fix.is_dir() and not os.fspath(fix_arg).endswith(("/", os.sep)):
        return FixPlan(fix, True, [FixTarget(fix, files[0].display)])
    if fix.is_file() or fix.name.endswith(JSON_NAMES):
        raise OptionsError(f"--fix {fix}: each of the {len(files)} input files gets its own repaired copy; name a folder")
    infos: dict[Path, list[str]] = {}
    info_of: list[Path | None] = []
    for f in files:
        info = _dataset_info_of(f) if f.spec.name else None
        info_of.append(info)
        if info is not None and f.spec.name is not None and f.spec.name not in infos.setdefault(info, []):
            infos[info].append(f.spec.name)
    folders = [_abs(f.path.parent) for f in files] + [_abs(i.parent) for i in infos]
    base = os.path.commonpath(folders)
    inputs = {_abs(f.path) for f in files}
    targets = []
    for f, info in zip(files, info_of, strict=True):
        out = fix / os.path.relpath(_abs(f.path), base)
        if _abs(out) in inputs:
            raise OptionsError(f"--fix {fix}: the copy of {f.display} would overwrite an input; name another folder")
        copy_root = out.parent if info is None else fix / os.path.relpath(_abs(info.parent), base)
        root = media_root if media_root is not None else str(copy_root)
        gz = f.path.name.endswith(".gz")
        targets.append(FixTarget(out, f.display, sniff_layout(f.path), gz, root))
    copies = {info: (fix / os.path.relpath(_abs(info), base), names) for info, names in infos.items()}
    return FixPlan(fix, False, targets, copies)


def _abs(p: Path) -> str:
    return os.path.abspath(p)


def _dataset_info_of(f: InputFile) -> Path | None:
    """The dataset_info.json whose entry ``f.spec.name`` names ``f``: the nearest one above it."""
    me = Path(_abs(f.path))
    for folder in me.parents:
        info = folder / DATASET_INFO
        if not info.is_file():
            continue
        try:
            entry = json.loads(info.read_text(encoding="utf-8")).get(f.spec.name)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("file_name"), str):
            named = Path(_abs(folder / entry["file_name"]))
            if named == me or named in me.parents:
                return info
    return None


def relocate(obj: dict[str, Any], rec: Record, root: str) -> int:
    """Rewrite, in the raw record ``obj``, each relative audio path that would name another file when
    read from a copy whose media root is ``root``: it becomes the absolute path it named. Returns how many."""
    moved = 0
    here = Path(os.path.abspath(root))
    for ref in rec.audios:
        if ref.kind != "path":
            continue
        raw = str(ref.value)
        if objstore.is_remote(rec.media_root) and not raw.startswith(("/", "~")):  # a remote input's clip: its URL
            url = objstore.join(rec.media_root, raw)
            if url.startswith(rec.media_root.rstrip("/") + "/"):  # one that left the root stays as written (A002)
                moved += _set_path(obj, ref.field, url)
            continue
        target = lexical_target(raw, rec.media_root, rec.input_dir)
        if target is None or target == here / raw:
            continue
        moved += _set_path(obj, ref.field, str(target))
    return moved


def _set_path(obj: dict[str, Any], fld: str, value: str) -> int:
    path = parse_path(fld)
    current = get_at(obj, path)
    if isinstance(current, str):
        return int(set_at(obj, path, value))
    if isinstance(current, dict) and isinstance(current.get("url"), str):  # {"audio_url": {"url": ...}}
        current["url"] = value
        return 1
    return 0


class FixWriter:
    """Writes repaired records in input order, each file's under a ``.tmp`` name until :meth:`commit`."""

    def __init__(self, plan: FixPlan) -> None:
        self.plan = plan
        self.n = -1
        self.fh: TextIO | None = None
        self.written = 0

    def write(self, n: int, line: str) -> None:
        n = 0 if self.plan.single else n
        while self.n < n:
            self._next()
        assert self.fh is not None
        with on_path(self.plan.targets[self.n].output):
            if self.plan.targets[self.n].layout == "array":
                self.fh.write(("[\n" if self.written == 0 else ",\n") + line)
            else:
                self.fh.write(line + "\n")
        self.written += 1

    def _next(self) -> None:
        self._close()
        self.n += 1
        self.written = 0
        t = self.plan.targets[self.n]
        with on_path(t.output, "create"):
            t.output.parent.mkdir(parents=True, exist_ok=True)
            raw = open(_tmp(t.output), "wb")
        binary: Any = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if t.gzip else raw  # no name or time inside
        self.fh = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")

    def _close(self) -> None:
        if self.fh is None:
            return
        fh, self.fh = self.fh, None
        with on_path(self.plan.targets[self.n].output):
            if self.plan.targets[self.n].layout == "array":
                fh.write("[]\n" if self.written == 0 else "\n]\n")
            inner = fh.buffer
            fh.close()  # closes the GzipFile, which leaves its file object open
            if isinstance(inner, gzip.GzipFile) and inner.fileobj is not None:
                inner.fileobj.close()

    def close(self, complete: bool = True) -> None:
        """Finish the open file; with ``complete``, every later one too (an input with no record
        left gets an empty copy)."""
        while complete and self.n < len(self.plan.targets) - 1:
            self._next()
        self._close()

    def abort(self) -> None:
        """The run failed (a full disk, Ctrl-C): drop the unfinished copies, keep every earlier one."""
        with contextlib.suppress(OSError, MachineFault):
            self._close()
        for t in self.plan.targets:
            with contextlib.suppress(OSError):
                _tmp(t.output).unlink(missing_ok=True)

    def commit(self) -> list[dict[str, str]]:
        """Move every copy into place and write the dataset_info.json copies; which input went where."""
        for t in self.plan.targets:
            with on_path(t.output, "replace"):
                _tmp(t.output).replace(t.output)
        for info, (out, names) in self.plan.infos.items():
            entries = json.loads(info.read_text(encoding="utf-8"))
            kept = {k: v for k, v in entries.items() if k in names}
            with on_path(out, "create"):
                out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(out, json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
        files = [{"input": t.source, "output": str(t.output)} for t in self.plan.targets]
        return files + [{"input": str(info), "output": str(out)} for info, (out, _) in self.plan.infos.items()]


def _tmp(p: Path) -> Path:
    """A temporary name of this process's own: two runs fixing into one place never write the same file."""
    return p.with_name(f".{p.name}.{os.getpid()}.tmp")
