"""Build and run an SFT, DPO or KTO trainer from a :class:`TrainConfig`: a thin layer over TRL.

TRL has no audio support, so: SFT is ``SFTTrainer`` with our collator and
``skip_prepare_dataset``; DPO and KTO are ``DPOTrainer``/``KTOTrainer`` with ``_prepare_dataset``
left as the identity. All take our length-grouped batch sampler and count what they see (tokens,
audio hours, padding efficiency). The training arguments exist before the model is loaded, so
DeepSpeed ZeRO-3 partitions the weights at load time. Everything else (optimizer, schedule, mixed
precision, gradient checkpointing, checkpoints, resume, ``accelerate launch``) is
transformers' Trainer as users know it.
"""

from __future__ import annotations

import math
import os
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
from trainer.longaudio import LongAudioPlan
from trainer.longaudio import plan as long_audio_plan
from trainer.report import preference_history, write_report
from trainer.sampler import LengthGroupedBatchSampler
from trainer.scale import check_environment, load_kwargs, prepare_quantized, training_args_extras


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


def _trainer_classes() -> dict[str, type]:
    from trl import DPOTrainer, KTOTrainer, SFTTrainer

    class AudioSFTTrainer(_AudioTrainerMixin, SFTTrainer):
        pass

    class AudioDPOTrainer(_AudioTrainerMixin, DPOTrainer):
        pairs = True

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset  # examples are encoded per item by our collator's encode_dpo

    class AudioKTOTrainer(_AudioTrainerMixin, KTOTrainer):
        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset  # encode_kto per item; the KL rows are built per batch by collate_kto

    return {"sft": AudioSFTTrainer, "dpo": AudioDPOTrainer, "kto": AudioKTOTrainer}


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
    long_audio: LongAudioPlan | None = None
    kto_labels: dict[str, int] | None = None


def precision(cfg: TrainConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def build(cfg: TrainConfig) -> Run:
    """Load processor and data, create the training arguments, then the model, and assemble the trainer
    (nothing trained yet). The model comes after the arguments: with DeepSpeed ZeRO-3 the arguments
    switch ``from_pretrained`` to partitioned loading, so no rank ever holds the whole model."""
    family = get_family(cfg.family) if cfg.family else detect_family(cfg.model)
    cuda = torch.cuda.is_available()
    prec = precision(cfg)
    if prec in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"precision {prec} needs a CUDA GPU; use precision fp32 (or auto) on CPU")
    check_environment(cfg, cuda)
    # fp16 keeps fp32 master weights (autocast + loss scaling); bf16 weights train directly
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float32, "fp32": torch.float32}[prec]
    processor = family.load_processor(cfg.model)
    template = read_chat_template(cfg.chat_template)
    if template:
        processor.chat_template = template
    tok = processor.tokenizer
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>" if "<|endoftext|>" in tok.get_vocab() else tok.eos_token

    skips = SkipLog(cfg.output_dir)
    collator = AudioCollator(family, processor, cfg.max_length, cfg.system_prompt, cfg.long_audio)
    encode = {"sft": collator.encode_sft, "dpo": collator.encode_dpo, "kto": collator.encode_kto}[cfg.task]
    rows = load_rows(cfg, cfg.train_split)
    long_plan = long_audio_plan(rows, family.math, cfg.long_audio)
    rows = _drop_skipped(rows, long_plan, skips)
    lengths, clips, seconds = estimate_lengths(rows, family.math, cfg.long_audio)
    sampler = LengthGroupedBatchSampler(lengths, clips, cfg.per_device_batch_size, cfg.max_clips_per_batch, cfg.seed)
    train = encoded(rows, encode, skips)
    evals = None
    if cfg.eval_split:
        eval_rows = load_rows(cfg, cfg.eval_split)
        eval_rows = _drop_skipped(eval_rows, long_audio_plan(eval_rows, family.math, cfg.long_audio), skips)
        evals = encoded(eval_rows, encode, skips)
    kto_labels = _kto_balance(cfg, rows) if cfg.task == "kto" else None

    args = training_arguments(cfg, family, prec, cuda, evals is not None)
    gc = bool(args.gradient_checkpointing)
    model = family.load(cfg.model, dtype, cfg.attn_implementation or "sdpa", **load_kwargs(cfg, family))
    model.config.get_text_config().pad_token_id = tok.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if cfg.load_in_4bit:
        model = prepare_quantized(model, gc)
    elif not cfg.use_lora:
        freeze_for_full_finetune(model, family, cfg.train_projector)
    peft_config = None
    if cfg.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules or family.lora_target_regex(),
            modules_to_save=[family.projector] if cfg.train_projector else None,
        )
    trainer = _trainer_classes()[cfg.task](
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
    return Run(cfg, family, trainer.model, processor, trainer, collator, sampler, skips, sum(seconds), long_plan, kto_labels)


def training_arguments(cfg: TrainConfig, family: Family, prec: str, cuda: bool, has_eval: bool) -> Any:
    """The task's TRL config (SFTConfig, DPOConfig or KTOConfig) from ``cfg``."""
    from trl import DPOConfig, KTOConfig, SFTConfig

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
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": cfg.eval_steps or cfg.save_steps,
        **training_args_extras(cfg, family),
    }
    if cfg.task == "sft":
        return SFTConfig(**common, dataset_kwargs={"skip_prepare_dataset": True})
    if cfg.task == "dpo":
        return DPOConfig(
            **common,
            beta=cfg.beta,
            loss_type=cfg.dpo_loss_types,
            loss_weights=cfg.dpo_loss_weights,
            label_smoothing=cfg.label_smoothing,
        )
    return KTOConfig(
        **common,
        beta=cfg.beta,
        loss_type=cfg.kto_loss_type,
        desirable_weight=cfg.desirable_weight,
        undesirable_weight=cfg.undesirable_weight,
    )


def freeze_for_full_finetune(model: Any, family: Family, train_projector: bool) -> None:
    """``--no-use-lora`` trains the language model (embeddings and head included); the audio (and vision)
    towers stay frozen, and the projector trains only with ``--train-projector``."""
    for name, p in model.named_parameters():
        if _within(name, family.projector):
            p.requires_grad_(train_projector)
        elif any(_within(name, tower) for tower in family.towers):
            p.requires_grad_(False)
        else:
            p.requires_grad_(True)


def _within(name: str, module: str) -> bool:
    """Whether parameter ``name`` belongs to the module path ``module`` (whole name components)."""
    return f".{module}." in f".{name}"


def _drop_skipped(rows: Any, plan: LongAudioPlan, skips: SkipLog) -> Any:
    """``long_audio: skip``: leave out the records with a clip over the window, each logged once (rank 0)."""
    if not plan.skipped_rows:
        return rows
    if int(os.environ.get("RANK", "0")) == 0:
        meta = rows.select_columns([c for c in ("id", "source") if c in rows.column_names])
        window = plan.window_seconds or 0
        for i in plan.skipped_rows:
            skips.add(meta[i], f"audio over the model's {window:.0f} s window (long_audio: skip)")
    drop = set(plan.skipped_rows)
    return rows.select([i for i in range(len(rows)) if i not in drop])


def _kto_balance(cfg: TrainConfig, rows: Any) -> dict[str, int]:
    """Desirable/undesirable counts; warns as TRL's KTOTrainer does (its check sits in the ``_prepare_dataset``
    we bypass) when the weights are outside the range the KTO paper's Eq. 8 suggests for them."""
    labels = rows["label"]
    desirable = sum(1 for x in labels if x)
    undesirable = len(labels) - desirable
    d, u = max(desirable, 1), max(undesirable, 1)
    if d != u:
        des_lo, des_hi = u * cfg.undesirable_weight / d, u * cfg.undesirable_weight / d * 1.33
        und_lo, und_hi = d * cfg.desirable_weight / u / 1.33, d * cfg.desirable_weight / u
        if not (des_lo <= cfg.desirable_weight <= des_hi or und_lo <= cfg.undesirable_weight <= und_hi):
            print(
                f"[audiodata] warning: {desirable} desirable vs {undesirable} undesirable records; the KTO paper suggests "
                f"desirable_weight in [{des_lo:.2f}, {des_hi:.2f}] or undesirable_weight in [{und_lo:.2f}, {und_hi:.2f}]",
                file=sys.stderr,
                flush=True,
            )
    return {"desirable": desirable, "undesirable": undesirable}


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
        "long_audio": run.long_audio.to_dict() if run.long_audio else None,
        "runtime_s": round(time.time() - started, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "precision": precision(cfg),
        "config": cfg.to_dict(),
    }
    if cfg.task in ("dpo", "kto"):
        report.update(preference_history(state.log_history))
    if run.kto_labels is not None:
        report["kto_labels"] = run.kto_labels
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

