"""Resume state: what an interrupted run had made durable.

After every closed shard the run writes ``.audiodata/state.json`` (atomically):
the closed shards, and for each stream the input position below which all of its
records are in closed shards. A re-run with the same inputs and options starts at
the lowest such position, drops what is already written, and so produces the same
shards as an uninterrupted run. An output in an object store is replicated at each save
(:func:`audiodata.objstore.saved`), so a resume on another machine starts from the same point.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodata import objstore
from audiodata.faults import on_path
from audiodata.lock import WORK
from audiodata.writer.shards import ShardInfo


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced ``.tmp``: a kill or a full disk leaves the old file whole."""
    tmp = path.with_name(path.name + ".tmp")
    with on_path(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@dataclass
class RunState:
    fingerprint: str
    status: str = "running"  # running | finalizing | complete
    position: int = 0  # input position (seq) at the last checkpoint
    durable: dict[str, int] = field(default_factory=dict)  # stream -> first seq not yet durable
    shards: list[ShardInfo] = field(default_factory=list)

    @property
    def resume_at(self) -> int:
        return min([self.position, *self.durable.values()])

    def is_durable(self, stream: str, seq: int) -> bool:
        return seq < self.durable.get(stream, self.position)

    def save(self, out: Path) -> None:
        with on_path(out / WORK, "create"):
            (out / WORK).mkdir(parents=True, exist_ok=True)
        data = {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "position": self.position,
            "durable": self.durable,
            "shards": [s.to_dict() for s in self.shards],
        }
        atomic_write(out / WORK / "state.json", json.dumps(data, indent=1))
        objstore.saved(out)  # a folder that mirrors an object store is replicated at each durable point

    @classmethod
    def load(cls, out: Path) -> RunState | None:
        path = out / WORK / "state.json"
        if not path.is_file():
            return None
        try:
            with on_path(path, "read"):
                text = path.read_text(encoding="utf-8")
            data: dict[str, Any] = json.loads(text)
            return cls(
                data["fingerprint"], data["status"], data["position"], data["durable"], [ShardInfo(**s) for s in data["shards"]]
            )
        except (ValueError, KeyError, TypeError):
            return None
