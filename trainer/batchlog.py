"""``batches.jsonl``: what every rank trained on at every step, one line per micro-batch.

Each line: ``step`` (the optimizer step the micro-batch belongs to, 1-based as in the logs),
``micro`` (its place among the step's gradient-accumulation micro-batches), ``epoch``, ``rank``,
``rows`` (dataset rows) and ``ids`` (record ids) in batch order, ``repeat`` (per row: a repeat
that evens out the ranks' step counts, see :mod:`trainer.sampler`), ``loss`` (this
micro-batch's share of the step's loss, as the trainer adds it up: summed over the micro-batches
and averaged over the ranks it is the logged loss; null when not finite), ``tokens`` and
``padded_tokens``, ``clips`` and ``audio_seconds`` (real clips only), ``dummy_audio`` (the batch
carried the silent clip) and ``audio_encoder_ran``.

Ranks append with ``O_APPEND`` and one ``write`` per line, as ``skipped.jsonl`` does. A fresh
run starts the file anew; a resumed run keeps the lines up to its checkpoint's step and
continues them, so the file always describes one history of the run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from trainer import dist

BATCH_LOG = "batches.jsonl"


class BatchLog:
    def __init__(self, output_dir: str, rank: int, enabled: bool = True) -> None:
        self.path = Path(output_dir) / BATCH_LOG
        self.rank, self.enabled = rank, enabled
        self._step, self._micro = -1, 0

    def start(self, resumed_step: int | None) -> None:
        """Rank 0 truncates (fresh run) or cuts back to ``resumed_step`` (resume); all ranks then wait."""
        if self.enabled and self.rank == 0:
            kept = [e for e in read_batch_log(self.path) if e["step"] <= resumed_step] if resumed_step is not None else []
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
            tmp.replace(self.path)
        dist.barrier()

    def write(self, step: int, epoch: int, entry: dict[str, Any], loss: float) -> None:
        if not self.enabled:
            return
        if step != self._step:
            self._step, self._micro = step, 0
        line = {"step": step, "micro": self._micro, "epoch": epoch, "rank": self.rank, **entry}
        line["loss"] = loss if math.isfinite(loss) else None
        self._micro += 1
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def read_batch_log(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
