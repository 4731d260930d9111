"""Does the model hear the audio? Its predictions with the real clips against the same records with the clips zeroed.

A model that is not conditioned on its audio trains without an error: the loss falls (it learns the
text), and only the evaluation, hours later, shows transcripts that ignore the clip. The causes are
quiet: a renamed processor argument (no features, one placeholder token), a template that puts the
audio after the reply, an attention mask over the audio positions, a projector whose output never
reaches the language model. All of them leave the model's predictions on the reply unchanged when
the clips change, so: one forward with the real clips and one with the clips' features zeroed (and
one with each clip's frames replaced by another record's clip), on the reply
positions only (the tokens the loss trains), compared as the mean KL divergence of the next-token
distributions, in nats per token.

Why the KL and not the loss: a model with random weights (the tiny test models) predicts nearly
uniformly whatever it hears, so its loss moves little and either way (the tiny Qwen2-Audio on four
sample records: 7.022 with the real clips, 6.949 zeroed: lower without the audio) while its
distributions move a lot (mean KL 1.1 nats per reply token). The KL is never negative and counts
any change of the predicted distribution, not just of the target's probability. An unconditioned
model gives exactly 0 (the computation does not depend on the features at all: the tests' projector
times zero, dropped features and masked audio positions all measure 0), so a small threshold
(``audio_check_min_kl``, default 1e-3) separates the two with margin on both sides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.data import BATCH_META
from trainer.labels import IGNORE

MODEL_INPUTS = ("input_ids", "attention_mask", "input_features", "feature_attention_mask")


class NoAudioFeatures(RuntimeError):
    """Records with clips reached the model without any audio features."""


@dataclass
class Hearing:
    """The comparison over a few records."""

    records: list[str | None] = field(default_factory=list)
    targets: int = 0  # reply tokens compared
    kl_zeroed: float = 0.0  # mean KL(real || zeroed clips), nats per reply token
    kl_swapped: float | None = None  # mean KL(real || another record's clips), with >= 2 clips in all
    loss_real: float = 0.0
    loss_zeroed: float = 0.0
    per_record: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "reply_tokens": self.targets,
            "kl_zeroed": _round(self.kl_zeroed),
            "kl_swapped": None if self.kl_swapped is None else _round(self.kl_swapped),
            "loss_real": _round(self.loss_real),
            "loss_zeroed": _round(self.loss_zeroed),
            "per_record": self.per_record,
        }


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def target_mask(batch: dict[str, Any]) -> torch.Tensor:
    """The positions the loss trains: SFT labels, or DPO/KTO completion masks."""
    if "labels" in batch:
        return batch["labels"] != IGNORE
    if "completion_mask" in batch:
        return batch["completion_mask"].bool()
    raise ValueError("the batch has neither labels nor a completion_mask")


def zeroed(batch: dict[str, Any]) -> dict[str, Any]:
    return {**batch, "input_features": torch.zeros_like(batch["input_features"])}


def clips_of(batch: dict[str, Any]) -> list[torch.Tensor]:
    """Each clip's valid mel frames, (mels, frames)."""
    feats, mask = batch["input_features"], batch.get("feature_attention_mask")
    frames = mask.sum(-1).tolist() if mask is not None else [feats.shape[-1]] * feats.shape[0]
    return [feats[i, :, : max(1, int(n))] for i, n in enumerate(frames)]


def swapped(batch: dict[str, Any], donors: list[torch.Tensor]) -> dict[str, Any]:
    """Each clip's valid frames replaced by a donor clip's (another record's), repeated or cut to the same
    length, so every placeholder count stays what the text has."""
    feats, mask = batch["input_features"], batch.get("feature_attention_mask")
    frames = mask.sum(-1).tolist() if mask is not None else [feats.shape[-1]] * feats.shape[0]
    out = feats.clone()
    for i, n in enumerate(frames):
        src, want = donors[i % len(donors)], int(n)
        out[i, :, :want] = src.repeat(1, -(-want // src.shape[-1]))[:, :want]
    return {**batch, "input_features": out}


def measure(model: Any, batches: list[dict[str, Any]], autocast: Any = None) -> Hearing:
    """Compare ``model``'s reply predictions on collated one-record ``batches`` with and without their audio."""
    h = Hearing()
    total_zero = total_swap = 0.0
    swap_tokens = 0
    loss_real = loss_zero = 0.0
    metas = [b.pop(BATCH_META, None) for b in batches]
    ids = [m["ids"][0] if m else None for m in metas]
    for rid, batch in zip(ids, batches, strict=True):
        if "input_features" not in batch:
            raise NoAudioFeatures(
                f"record {rid!r} has audio but its collated batch carries no input_features: the processor or the "
                "collator dropped the clips, and the model would train on the placeholder tokens alone"
            )
    pool = [clips_of(b) for b in batches]
    with _eval(model), torch.no_grad():
        for r, (rid, batch) in enumerate(zip(ids, batches, strict=True)):
            h.records.append(rid)
            mask = target_mask(batch)[:, 1:]
            real = _logits(model, batch, mask, autocast)
            zero = _logits(model, zeroed(batch), mask, autocast)
            kl = _kl(real, zero)
            entry: dict[str, Any] = {"id": rid, "reply_tokens": int(mask.sum()), "kl_zeroed": _round(float(kl.mean()))}
            targets = _targets(batch, mask)
            loss_real += float(torch.nn.functional.cross_entropy(real, targets, reduction="sum"))
            loss_zero += float(torch.nn.functional.cross_entropy(zero, targets, reduction="sum"))
            total_zero += float(kl.sum())
            donors = pool[(r + 1) % len(pool)] if len(pool) > 1 else pool[r][1:] + pool[r][:1]
            if len(pool) > 1 or len(pool[r]) > 1:  # another record's clips, else this record's clips in another order
                ks = _kl(real, _logits(model, swapped(batch, donors), mask, autocast))
                entry["kl_swapped"] = _round(float(ks.mean()))
                total_swap += float(ks.sum())
                swap_tokens += ks.numel()
            h.targets += kl.numel()
            h.per_record.append(entry)
    if h.targets:
        h.kl_zeroed = total_zero / h.targets
        h.loss_real, h.loss_zeroed = loss_real / h.targets, loss_zero / h.targets
    if swap_tokens:
        h.kl_swapped = total_swap / swap_tokens
    return h


@contextlib.contextmanager
def _eval(model: Any) -> Iterator[None]:
    """Dropout off for the comparison; the training mode and the RNG state come back as they were."""
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        model.train(was)


def _device(model: Any) -> torch.device:
    return next(p.device for p in model.parameters() if p.device.type != "meta")


def _logits(model: Any, batch: dict[str, Any], mask: torch.Tensor, autocast: Any) -> torch.Tensor:
    """fp32 logits at the positions that predict a reply token: (n, vocab)."""
    dev = _device(model)
    inputs = {k: batch[k].to(dev) for k in MODEL_INPUTS if k in batch}
    with autocast() if autocast is not None else contextlib.nullcontext():
        out = model(**inputs, use_cache=False)
    return out.logits[:, :-1][mask.to(dev)].float().cpu()


def _targets(batch: dict[str, Any], mask: torch.Tensor) -> torch.Tensor:
    return batch["input_ids"][:, 1:][mask]


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, nats."""
    lp, lq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (lp.exp() * (lp - lq)).sum(-1).clamp(min=0.0)
