"""A fault-injection hook for tests: make named records break a training step on purpose.

Off unless the environment variable ``AUDIODATA_TEST_INJECT_FAULTS`` is set (nothing else turns it
on; a run that injects says so on stderr). Its value is a comma-separated list of ``KIND:RECORD_ID``:

- ``nan_audio``: the record's audio features are NaN (what NaN samples after decoding give), so the
  loss of any batch holding it is NaN;
- ``nan_grad``: any batch holding the record gets a finite loss but NaN gradients;
- ``oom``: the forward pass of any batch holding the record raises ``torch.OutOfMemoryError`` (with CUDA,
  the allocator's own, by asking it for a petabyte);
- ``encode_error``: encoding the record (in the data loader) raises ``RuntimeError``;
- ``collate_error``: the collator raises ``ValueError`` on any batch holding the record.

The tests of :mod:`trainer.quarantine` (and ``audiodata train replay``) use it to produce each fault
deterministically, in one process or several; the faults behave as the real ones do from the point
where they are raised.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.data import META_ID

ENV = "AUDIODATA_TEST_INJECT_FAULTS"
KINDS = ("nan_audio", "nan_grad", "oom", "encode_error", "collate_error")


@dataclass(frozen=True)
class FaultPlan:
    """Which records get which fault (record id -> kinds)."""

    faults: dict[str, frozenset[str]] = field(default_factory=dict)

    def has(self, kind: str, ids: list[str | None] | tuple[str | None, ...]) -> str | None:
        """The first of ``ids`` that gets ``kind``, or None."""
        return next((i for i in ids if i is not None and kind in self.faults.get(i, ())), None)

    # -- where each fault enters ---------------------------------------------------
    def fetched(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Encoded examples as the data loader fetched them: raise (encode_error) or NaN features (nan_audio)."""
        ids = [e.get(META_ID) for e in items]
        hit = self.has("encode_error", ids)
        if hit is not None:
            raise RuntimeError(f"injected encoding error for record {hit}")
        for e in items:
            if self.has("nan_audio", [e.get(META_ID)]) is not None and "input_features" in e:
                e["input_features"] = torch.full_like(e["input_features"], float("nan"))
        return items

    def wrap_collator(self, collator: Any) -> Any:
        return _Collate(self, collator)

    def before_forward(self, ids: list[str | None]) -> None:
        """The forward pass of a batch holding ``ids`` is about to run: out of memory (oom)."""
        hit = self.has("oom", ids)
        if hit is None:
            return
        if torch.cuda.is_available():  # the allocator's own error: a petabyte on the current device
            torch.empty(2**50, dtype=torch.uint8, device=torch.cuda.current_device())
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB (injected for record {hit})")

    def after_forward(self, ids: list[str | None], loss: torch.Tensor, model: Any) -> torch.Tensor:
        """The loss of a batch holding ``ids``: NaN gradients behind it (nan_grad)."""
        if self.has("nan_grad", ids) is not None:
            param = next(p for p in model.parameters() if p.requires_grad)
            loss = loss + _NaNGrad.apply(param)
        return loss


def from_env() -> FaultPlan | None:
    """The plan in ``AUDIODATA_TEST_INJECT_FAULTS``, or None (the normal case)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    faults: dict[str, set[str]] = {}
    for part in text.split(","):
        kind, sep, rid = part.strip().partition(":")
        if not sep or kind not in KINDS or not rid:
            raise ValueError(f"{ENV}: {part!r} is not KIND:RECORD_ID with KIND one of {', '.join(KINDS)}")
        faults.setdefault(rid, set()).add(kind)
    print(f"[audiodata] {ENV} is set: injecting test faults {text}", file=sys.stderr, flush=True)
    return FaultPlan({k: frozenset(v) for k, v in faults.items()})


class _Collate:
    def __init__(self, plan: FaultPlan, collator: Any) -> None:
        self.plan, self.collator = plan, collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        hit = self.plan.has("collate_error", [e.get(META_ID) for e in examples])
        if hit is not None:
            raise ValueError(f"injected collator error for record {hit}")
        return self.collator(examples)

    def __getattr__(self, name: str) -> Any:  # the wrapped collator's attributes (dummy_clip, audio_id, ...)
        if name == "collator":  # not set yet (unpickling in a data-loader worker)
            raise AttributeError(name)
        return getattr(self.collator, name)


class _NaNGrad(torch.autograd.Function):
    """Zero in the forward pass, NaN gradients in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.dtype = x.shape, x.dtype
        return x.new_zeros(())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return torch.full(ctx.shape, float("nan"), dtype=ctx.dtype, device=grad.device)
