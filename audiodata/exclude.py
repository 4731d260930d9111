"""``--exclude FILE`` for ``lint`` and ``convert``: leave out the records a list names, by their stable id.

The lists are the ones audiodata writes about records:

- ``quarantine.jsonl`` (``audiodata train``: the records that broke a training step) and ``skipped.jsonl``
  (records the trainer could not use): each line carries the record's ``id``, the shards' ``id`` column,
  which is the id the readers give the record in the source corpus;
- ``rejects.jsonl`` (``convert``): each line carries the record as read and its ``source``/``index``, and the
  id is recomputed from them the way the readers compute it (``readers.dialects.common.stable_id``).
  Lines about input that never parsed (``raw``) name no record and are passed over.

A record is excluded when its id is listed (so a corpus that repeats an id loses every record with it).
Excluded records are not checked or written: lint and convert count them per list ("excluded by
quarantine.jsonl: N"), and convert lists each in ``rejects.jsonl`` with ``excluded`` instead of reasons,
so none vanishes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodata.readers.dialects.common import stable_id


class ExcludeError(ValueError):
    """An ``--exclude`` file that cannot be read as a list of records (a usage error: exit 2)."""


@dataclass(frozen=True)
class ExcludeList:
    """Record ids to leave out, each with the name of the list that named it first."""

    ids: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ids)

    def by(self, record_id: str) -> str | None:
        """The list (file name) that excludes ``record_id``, or None."""
        return self.ids.get(record_id)

    def digest(self) -> str:
        """What the lists exclude, for the run fingerprint: a resumed convert must leave out the same records."""
        blob = json.dumps(sorted(self.ids), ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_exclude(paths: Sequence[str | os.PathLike[str]]) -> ExcludeList:
    """Read every list; a missing file or a line that names no record is an :class:`ExcludeError`."""
    ids: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ExcludeError(f"--exclude {path}: no such file")
        name = path.name
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ExcludeError(f"--exclude {path}: cannot be read ({exc})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise ExcludeError(f"--exclude {path}:{n}: not a JSON line") from None
            rid = listed_id(entry)
            if rid is None and not (isinstance(entry, dict) and "raw" in entry):
                raise ExcludeError(
                    f"--exclude {path}:{n}: names no record (expected a quarantine.jsonl or skipped.jsonl line with "
                    '"id", or a rejects.jsonl line with "source", "index" and "record")'
                )
            if rid is not None:
                ids.setdefault(rid, name)
    return ExcludeList(ids, tuple(str(p) for p in paths))


def listed_id(entry: Any) -> str | None:
    """The record id one line names: its ``id``, or (a rejects.jsonl line) the id its record gets when read."""
    if not isinstance(entry, dict):
        return None
    rid = entry.get("id")
    if isinstance(rid, (str, int)) and not isinstance(rid, bool) and str(rid):
        return str(rid)
    source, index = entry.get("source"), entry.get("index")
    if "record" in entry and isinstance(source, str) and isinstance(index, int) and not isinstance(index, bool):
        return stable_id(entry["record"], source, index)
    return None
