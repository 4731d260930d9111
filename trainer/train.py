"""Build and run an SFT or DPO trainer from a :class:`TrainConfig`: a thin layer over TRL.

TRL has no audio support, so: SFT is ``SFTTrainer`` with our collator and
``skip_prepare_dataset``; DPO is ``DPOTrainer`` with ``_prepare_dataset`` left as the
identity. Both take our length-grouped batch sampler and count what they see (tokens,
audio hours, padding efficiency). Everything else (optimizer, schedule, mixed
precision, gradient checkpointing, checkpoints, resume, ``accelerate launch``) is
transformers' Trainer as users know it.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.collators import AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import SkipLog, encoded, estimate_lengths, load_rows
from trainer.families import AudioTextProcessor, Family, detect_family, get_family, read_chat_template
from trainer.report import write_report
from trainer.sampler import LengthGroupedBatchSampler


@dataclass
class SeenStats:
    """What the optimizer actually saw in this run (main process, after collation)."""

    examples: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    audio_seconds: float = 0.0

    def add(self, batch: dict[str, Any], pairs: bool) -> None:
        mask = batch.get("attention_mask")
        if mask is None:
            return
        rows = mask.shape[0] // 2 if pairs else mask.shape[0]
        self.examples += rows
        self.tokens += int(mask.sum())
        self.padded_tokens += int(mask.numel())
        fam = batch.get("feature_attention_mask")
        if fam is not None:  # 100 mel frames per second; DPO batches carry each clip twice
            frames = int(fam.sum())
            self.audio_seconds += (frames / 2 if pairs else frames) / 100.0

    @property
    def padding_efficiency(self) -> float:
        return self.tokens / self.padded_tokens if self.padded_tokens else 1.0


class _AudioTrainerMixin:
    """Length-grouped batches in, statistics out; mixed into TRL's trainers."""

    batch_sampler: LengthGroupedBatchSampler
    seen: SeenStats
    pairs: bool = False

    def get_train_dataloader(self) -> Any:
        from torch.utils.data import DataLoader

        args = self.args  # type: ignore[attr-defined]
        loader = DataLoader(
            self.train_dataset,  # type: ignore[attr-defined]
            batch_sampler=self.batch_sampler,
            collate_fn=self.data_collator,  # type: ignore[attr-defined]
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)  # type: ignore[attr-defined]

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.seen.add(inputs, self.pairs)
        return super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs["padding_efficiency"] = round(self.seen.padding_efficiency, 4)
            logs["audio_hours_seen"] = round(self.seen.audio_seconds / 3600, 6)
        super().log(logs, start_time)  # type: ignore[misc]


def _trainer_classes() -> tuple[type, type]:
    from trl import DPOTrainer, SFTTrainer

    class AudioSFTTrainer(_AudioTrainerMixin, SFTTrainer):
        pass

    class AudioDPOTrainer(_AudioTrainerMixin, DPOTrainer):
        pairs = True

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset  # examples are encoded per item by our collator's encode_dpo

    return AudioSFTTrainer, AudioDPOTrainer


@dataclass
class Run:
    cfg: TrainConfig
    family: Family
    model: Any
    processor: Any
    trainer: Any
    collator: AudioCollator
    sampler: LengthGroupedBatchSampler
    skips: SkipLog
    audio_seconds_per_epoch: float


def precision(cfg: TrainConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def build(cfg: TrainConfig) -> Run:
    """Load model, processor and data, and assemble the trainer (nothing trained yet)."""
    from peft import LoraConfig
    from trl import DPOConfig, SFTConfig

    family = get_family(cfg.family) if cfg.family else detect_family(cfg.model)
    cuda = torch.cuda.is_available()
    prec = precision(cfg)
    if prec in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"precision {prec} needs a CUDA GPU; use precision fp32 (or auto) on CPU")
    # fp16 keeps fp32 master weights (autocast + loss scaling); bf16 weights train directly
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float32, "fp32": torch.float32}[prec]
    processor = family.load_processor(cfg.model)
    template = read_chat_template(cfg.chat_template)
    if template:
        processor.chat_template = template
    model = family.load(cfg.model, dtype, cfg.attn_implementation or "sdpa")
    tok = processor.tokenizer
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>" if "<|endoftext|>" in tok.get_vocab() else tok.eos_token
    model.config.get_text_config().pad_token_id = tok.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if not cfg.use_lora:  # full fine-tuning still keeps the audio encoder frozen
        for name, p in model.named_parameters():
            if "audio_tower" in name and not (cfg.train_projector and family.projector in name):
                p.requires_grad_(False)

    skips = SkipLog(cfg.output_dir)
    collator = AudioCollator(family, processor, cfg.max_length, cfg.system_prompt)
    encode = collator.encode_sft if cfg.task == "sft" else collator.encode_dpo
    rows = load_rows(cfg, cfg.train_split)
    lengths, clips, seconds = estimate_lengths(rows, family.math)
    sampler = LengthGroupedBatchSampler(lengths, clips, cfg.per_device_batch_size, cfg.max_clips_per_batch, cfg.seed)
    train = encoded(rows, encode, skips)
    evals = encoded(load_rows(cfg, cfg.eval_split), encode, skips) if cfg.eval_split else None

    gc = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else cuda
    common: dict[str, Any] = {
        "output_dir": cfg.output_dir,
        "per_device_train_batch_size": cfg.per_device_batch_size,
        "per_device_eval_batch_size": cfg.per_device_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.lr,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (transformers 5)
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "max_steps": cfg.max_steps,
        "num_train_epochs": cfg.num_train_epochs,
        "logging_steps": cfg.logging_steps,
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "seed": cfg.seed,
        "bf16": prec == "bf16",
        "fp16": prec == "fp16",
        "use_cpu": not cuda,
        "gradient_checkpointing": gc,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if gc else None,
        "remove_unused_columns": False,
        "max_length": None,  # our collator truncates, safely
        "report_to": cfg.report_to,
        "dataloader_num_workers": cfg.dataloader_num_workers,
        "eval_strategy": "steps" if evals is not None else "no",
        "eval_steps": cfg.eval_steps or cfg.save_steps,
    }
    if cfg.task == "sft":
        args = SFTConfig(**common, dataset_kwargs={"skip_prepare_dataset": True})
    else:
        args = DPOConfig(**common, beta=cfg.beta)
    peft_config = None
    if cfg.use_lora:
        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules or family.lora_target_regex(),
            modules_to_save=[family.projector] if cfg.train_projector else None,
        )
    sft_cls, dpo_cls = _trainer_classes()
    cls = sft_cls if cfg.task == "sft" else dpo_cls
    trainer = cls(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evals,
        # TRL accepts a tokenizer or a ProcessorMixin; the audio-only Omni processor passes its tokenizer
        processing_class=processor.tokenizer if isinstance(processor, AudioTextProcessor) else processor,
        data_collator=collator,
        peft_config=peft_config,
    )
    trainer.batch_sampler = sampler
    trainer.seen = SeenStats()
    return Run(cfg, family, trainer.model, processor, trainer, collator, sampler, skips, sum(seconds))


def resume_point(cfg: TrainConfig) -> str | None:
    if cfg.resume is None:
        return None
    if cfg.resume != "latest":
        if not Path(cfg.resume).is_dir():
            raise ConfigError(f"resume {cfg.resume}: no such checkpoint folder")
        return cfg.resume
    found = sorted(Path(cfg.output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not found:
        raise ConfigError(f"resume latest: no checkpoint-* folder in {cfg.output_dir}")
    return str(found[-1])


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, save the adapter (or model), the processor and the training report; return the report."""
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    checkpoint = resume_point(cfg)
    started = time.time()
    run = build(cfg)
    planned = run.sampler.padding_efficiency()
    print(f"[audiodata] {len(run.sampler)} batches/epoch, planned padding efficiency {planned:.3f}", file=sys.stderr, flush=True)
    result = run.trainer.train(resume_from_checkpoint=checkpoint)
    run.trainer.save_model(cfg.output_dir)
    run.processor.save_pretrained(cfg.output_dir)
    state = run.trainer.state
    report = {
        "task": cfg.task,
        "model": cfg.model,
        "family": run.family.name,
        "data": cfg.data,
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0), 4),
        "resumed_from": checkpoint,
        "loss_history": [{"step": e["step"], "loss": e["loss"]} for e in state.log_history if "loss" in e],
        "final_loss": next((e["loss"] for e in reversed(state.log_history) if "loss" in e), None),
        "eval_history": [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in state.log_history if "eval_loss" in e],
        "examples_seen": run.trainer.seen.examples,
        "tokens_seen": run.trainer.seen.tokens,
        "audio_hours_seen": round(run.trainer.seen.audio_seconds / 3600, 6),
        "padding_efficiency": {"planned": round(planned, 4), "actual": round(run.trainer.seen.padding_efficiency, 4)},
        "train_records": len(run.sampler.lengths),
        "train_audio_hours": round(run.audio_seconds_per_epoch / 3600, 6),
        "skipped": _skipped(run.skips),
        "runtime_s": round(time.time() - started, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "precision": precision(cfg),
        "config": cfg.to_dict(),
    }
    if not math.isfinite(report["final_loss"] or 0.0):
        print("[audiodata] warning: the final loss is not finite", file=sys.stderr, flush=True)
    write_report(report, Path(cfg.output_dir))
    return report


def _skipped(skips: SkipLog) -> dict[str, Any]:
    entries = skips.read()
    unique = {(e.get("source"), e.get("index")): e for e in entries}
    return {
        "count": len(entries),
        "records": len(unique),
        "examples": [{k: e[k] for k in ("id", "source", "index", "reason")} for e in list(unique.values())[:50]],
    }

