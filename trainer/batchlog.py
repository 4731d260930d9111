"""``batches.jsonl``: what every rank trained on at every step, one line per micro-batch.

Each line: ``step`` (the optimizer step the micro-batch belongs to, 1-based as in the logs),
``micro`` (its place among the step's gradient-accumulation micro-batches), ``epoch``, ``rank``,
``rows`` (dataset rows) and ``ids`` (record ids) in batch order, ``repeat`` (per row: a repeat
that evens out the ranks' step counts, see :mod:`trainer.sampler`), ``loss`` (this
micro-batch's share of the step's loss, as the trainer adds it up: summed over the micro-batches
and averaged over the ranks it is the logged loss; null when not finite or skipped), ``tokens`` and
``padded_tokens``, ``clips`` and ``audio_seconds`` (real clips only), ``dummy_audio`` (the batch
carried the silent clip) and ``audio_encoder_ran``; ``num_items_in_batch`` (the label tokens of the
whole optimizer step, over its micro-batches and, when transformers averages tokens across devices,
over the ranks: what the SFT loss is divided by; null for DPO/KTO), and ``fault`` (null, or why
the micro-batch was skipped: see :mod:`trainer.quarantine`).

``grad_norm`` is the optimizer step's total gradient norm before clipping, as transformers computes it
for clipping and logging. It belongs to the step, not to one micro-batch: the gradient it measures is
the sum over the step's ``step_micro_batches`` micro-batches (``micro`` 0 to ``step_micro_batches - 1``)
averaged over the ranks, so every line of a step carries the same value, on every rank. A step's lines
are written when its optimizer step is reached (the norm is known then); lines of a step that never
reached it (the run stopped or crashed inside it) are written with ``grad_norm`` null.

Ranks append with ``O_APPEND`` and one ``write`` per step, as ``skipped.jsonl`` does per line. A fresh
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
        self._pending: list[dict[str, Any]] = []  # this step's lines, until its grad norm is known

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
        if self._pending and self._pending[0]["step"] != step:
            self.flush()  # a step that never reached its optimizer step
        line = {"step": step, "micro": self._micro, "epoch": epoch, "rank": self.rank, **entry}
        line["loss"] = loss if math.isfinite(loss) and not entry.get("fault") else None  # a skipped micro-batch has none
        self._micro += 1
        self._pending.append(line)

    def end_step(self, grad_norm: float | None, step_fault: dict[str, Any] | None = None) -> None:
        """The optimizer step is reached: its lines, with the step's pre-clip gradient norm (null when not
        finite) and, when the step was dropped, why (``step_fault``, see :mod:`trainer.quarantine`)."""
        self.flush(grad_norm, step_fault)

    def flush(self, grad_norm: float | None = None, step_fault: dict[str, Any] | None = None) -> None:
        """Write the pending lines (``grad_norm`` null unless given): at a step's end, and when training ends."""
        if not self.enabled or not self._pending:
            self._pending = []
            return
        norm = grad_norm if grad_norm is None or math.isfinite(grad_norm) else None
        extra: dict[str, Any] = {"grad_norm": norm, "step_micro_batches": len(self._pending)}
        if step_fault is not None:
            extra["step_fault"] = step_fault
        lines = [{**e, **extra} for e in self._pending]
        self._pending = []
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines).encode()
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
