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

import functools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from audiodata import objstore
from audiodata.dataset import ConvertedDataset
from trainer import cache, dist
from trainer import evaluate as evaluation
from trainer.batchlog import BatchLog
from trainer.collators import AudioCollator
from trainer.config import ConfigError, TrainConfig, is_local
from trainer.data import BATCH_META, PlannedRows, SkipLog, encoded, estimate_lengths, load_rows
from trainer.families import AudioTextProcessor, Family, detect_family, get_family
from trainer.longaudio import LongAudioPlan
from trainer.longaudio import plan as long_audio_plan
from trainer.quarantine import GuardHooks, attach_guard, batch_fields
from trainer.report import preference_history, write_report
from trainer.sampler import LengthGroupedBatchSampler
from trainer.scale import check_environment, load_kwargs, prepare_quantized, training_args_extras


@dataclass
class BatchStats:
    """One collated micro-batch, counted (DPO batches carry each pair's clips twice, counted once)."""

    rows: int = 0
    repeats: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    clips: int = 0
    audio_seconds: float = 0.0
    dummy_audio: bool = False

    @classmethod
    def of(cls, batch: dict[str, Any], pairs: bool, meta: dict[str, Any] | None) -> BatchStats:
        mask = batch.get("attention_mask")
        if mask is None:
            return cls()
        dummy = bool(meta and meta.get("dummy_audio"))
        out = cls(
            rows=mask.shape[0] // 2 if pairs else mask.shape[0],
            repeats=sum(meta["repeat"]) if meta else 0,
            tokens=int(mask.sum()),
            padded_tokens=int(mask.numel()),
            dummy_audio=dummy,
        )
        fam = batch.get("feature_attention_mask")
        if fam is not None and not dummy:  # 100 mel frames per second
            out.clips = fam.shape[0] // 2 if pairs else fam.shape[0]
            frames = int(fam.sum())
            out.audio_seconds = (frames / 2 if pairs else frames) / 100.0
        return out


@dataclass
class SeenStats:
    """What the optimizer actually saw in this run: this rank's until ``reduced`` sums all ranks."""

    examples: int = 0  # rows trained, repeats not included
    tokens: int = 0
    padded_tokens: int = 0
    audio_seconds: float = 0.0
    repeated_rows: int = 0  # rows trained again to even out the ranks' step counts
    micro_batches: int = 0
    dummy_audio_batches: int = 0

    def add(self, b: BatchStats) -> None:
        self.examples += b.rows - b.repeats
        self.repeated_rows += b.repeats
        self.tokens += b.tokens
        self.padded_tokens += b.padded_tokens
        self.audio_seconds += b.audio_seconds
        self.micro_batches += 1
        self.dummy_audio_batches += int(b.dummy_audio)

    def reduced(self, device: Any = "cpu") -> SeenStats:
        """The sums over all ranks (every rank must call this: it is a collective)."""
        names = [f.name for f in fields(self)]
        totals = dist.all_reduce_sum([float(getattr(self, n)) for n in names], device)
        summed: dict[str, Any] = {n: (v if n == "audio_seconds" else round(v)) for n, v in zip(names, totals, strict=True)}
        return SeenStats(**summed)

    @property
    def padding_efficiency(self) -> float:
        return self.tokens / self.padded_tokens if self.padded_tokens else 1.0


class _AudioTrainerMixin(GuardHooks):
    """Length-grouped batches in, statistics out, bad micro-batches caught (trainer.quarantine); mixed into TRL's trainers."""

    batch_sampler: LengthGroupedBatchSampler
    planned_rows: PlannedRows | None = None
    seen: SeenStats
    batch_log: BatchLog | None = None
    encoder_runs: list[int] | None = None
    pairs: bool = False

    def get_train_dataloader(self) -> Any:
        from torch.utils.data import DataLoader

        args = self.args  # type: ignore[attr-defined]
        rows = self.planned_rows if self.planned_rows is not None else self.train_dataset  # type: ignore[attr-defined]
        rows, collate = self.guarded_loader_parts(rows, self.data_collator)  # type: ignore[attr-defined]
        loader = DataLoader(
            rows,  # arg-type: torch annotates a Dataset subclass; DataLoader takes any map-style object
            batch_sampler=self.batch_sampler,
            collate_fn=collate,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
        )
        accelerator = self.accelerator  # type: ignore[attr-defined]
        prepared = accelerator.prepare(loader)
        check_dealing(prepared, self.batch_sampler, accelerator.process_index, accelerator.num_processes)
        return prepared

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        meta = inputs.pop(BATCH_META, None)
        stats = BatchStats.of(inputs, self.pairs, meta)
        runs = self.encoder_runs[0] if self.encoder_runs else 0
        step = functools.partial(super().training_step, model, inputs, *args, **kwargs)  # type: ignore[misc]
        loss, fault = self.guarded_step(model, meta, step)
        if fault is None:
            self.seen.add(stats)
        if self.batch_log is not None:
            entry = {
                "rows": meta["rows"] if meta else None,
                "ids": meta["ids"] if meta else None,
                "repeat": meta["repeat"] if meta else None,
                "tokens": stats.tokens,
                "padded_tokens": stats.padded_tokens,
                "clips": stats.clips,
                "audio_seconds": round(stats.audio_seconds, 3),
                "dummy_audio": stats.dummy_audio,
                "audio_encoder_ran": None if self.encoder_runs is None else self.encoder_runs[0] > runs,
                **batch_fields(fault, meta, args, kwargs),
            }
            state = self.state  # type: ignore[attr-defined]
            self.batch_log.write(state.global_step + 1, self.batch_sampler.epoch, entry, float(loss))
        return loss

    def prediction_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        inputs.pop(BATCH_META, None)
        return super().prediction_step(model, inputs, *args, **kwargs)  # type: ignore[misc]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # this rank's running figures; the report sums all ranks
            logs["padding_efficiency"] = round(self.seen.padding_efficiency, 4)
            logs["audio_hours_seen"] = round(self.seen.audio_seconds / 3600, 6)
        super().log(logs, start_time)


def check_dealing(loader: Any, sampler: LengthGroupedBatchSampler, rank: int, processes: int) -> None:
    """Fail before step 1 unless accelerate deals this rank exactly its share of the plan (see trainer.sampler)."""
    if processes != sampler.num_replicas:
        raise RuntimeError(
            f"the batch plan is for {sampler.num_replicas} processes (WORLD_SIZE) but accelerate runs {processes} "
            "data-parallel processes; tensor/context parallelism is not supported by the audiodata trainer"
        )
    if len(loader) != sampler.steps_per_epoch:
        raise RuntimeError(
            f"accelerate deals {len(loader)} batches per epoch to rank {rank}, the plan has {sampler.steps_per_epoch}: "
            "this accelerate version shards batch samplers differently; please report it"
        )
    if processes > 1 and sampler.steps_per_epoch:
        first = next(iter(loader.batch_sampler), None)
        if first != sampler.rank_batches(rank)[0]:
            raise RuntimeError(f"accelerate deals rank {rank} another first batch than the plan ({first}); please report it")


class EpochSync(TrainerCallback):
    """Sets the sampler's epoch at every epoch start, from the step count as transformers computes it.

    transformers reaches our sampler through accelerate's wrappers, except on a resume in the
    middle of an epoch with several processes (``SkipBatchSampler`` around ``BatchSamplerShard``:
    neither forwards ``set_epoch``), where epoch 0's order came back. This callback runs right
    before the epoch's data loader is iterated, whatever wraps it.
    """

    def __init__(self, sampler: LengthGroupedBatchSampler, grad_accum: int) -> None:
        self.sampler, self.grad_accum = sampler, grad_accum

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        steps = self.sampler.steps_per_epoch
        updates = max(steps // self.grad_accum + int(steps % self.grad_accum > 0), 1)
        self.sampler.set_epoch(state.global_step // updates)


def count_encoder_runs(model: Any) -> list[int] | None:
    """A counter of the audio encoder's forward calls (a hook), or None when there is no ``audio_tower``."""
    tower = next((m for n, m in model.named_modules() if n.endswith("audio_tower")), None)
    if tower is None:
        return None
    runs = [0]

    def hook(*_: Any) -> None:
        runs[0] += 1

    tower.register_forward_hook(hook)
    return runs


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
    evaluator: evaluation.Evaluator | None = None


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
    processor = family.training_processor(cfg.model, cfg.chat_template)
    tok = processor.tokenizer

    skips = SkipLog(cfg.output_dir)
    rank, world = dist.world()
    dummy = cfg.dummy_audio if cfg.dummy_audio is not None else world > 1
    collator = AudioCollator(family, processor, cfg.max_length, cfg.system_prompt, cfg.long_audio, dummy_audio=dummy)
    encode = {"sft": collator.encode_sft, "dpo": collator.encode_dpo, "kto": collator.encode_kto}[cfg.task]
    cached = find_cache(cfg, family, processor, rank)
    rows = load_rows(cfg, cfg.train_split, audio=needs_audio(cfg, cached))
    if cached is not None:  # the input written by `audiodata cache`: no template or tokenizer per example
        rows = cache.attach(rows, cached, cfg.train_split)
        encode = {"sft": collator.encode_cached, "dpo": collator.encode_dpo_cached, "kto": collator.encode_kto_cached}[cfg.task]
    rows, eval_rows = evaluation.holdout(rows, cfg.eval_holdout, cfg.seed)
    long_plan = long_audio_plan(rows, family.math, cfg.long_audio)
    rows = _drop_skipped(rows, long_plan, skips)
    if cached is not None:
        rows = _drop_refused(rows, skips)
        lengths, clips = cache.lengths(rows, cfg.max_length)
        seconds = _audio_seconds(rows)
    else:
        lengths, clips, seconds = estimate_lengths(rows, family.math, cfg.long_audio)
    sampler = LengthGroupedBatchSampler(
        lengths, clips, cfg.per_device_batch_size, cfg.max_clips_per_batch, cfg.seed, num_replicas=world
    )
    note = modality_note(clips, world, dummy)
    if note and rank == 0:  # a warning only when text-only steps will not run the encoder
        print(f"[audiodata] {'note' if dummy else 'warning'}: {note}", file=sys.stderr, flush=True)
    train = encoded(rows, encode, skips)
    evals = None
    if cfg.eval_split:
        eval_rows = load_rows(cfg, cfg.eval_split)
        if cached is not None and cfg.eval_split in cache.splits(cached):
            eval_rows = cache.attach(eval_rows, cached, cfg.eval_split)
    if eval_rows is not None:
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
    peft_config = lora_config(cfg, family)
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
    attach_plan(trainer, cfg, sampler, train, rank)
    evaluator = evaluation.attach(trainer, cfg, family, processor, collator, eval_rows)
    attach_guard(trainer, cfg, rows)
    return Run(
        cfg, family, trainer.model, processor, trainer, collator, sampler, skips, sum(seconds), long_plan, kto_labels, evaluator
    )


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
        "eval_strategy": cfg.eval_strategy if has_eval else "no",
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


def lora_config(cfg: TrainConfig, family: Family) -> Any:
    """The LoRA adapter every trainer (SFT, DPO, KTO, GRPO) puts on the language model, or None (``use_lora: false``)."""
    if not cfg.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules or family.lora_target_regex(),
        modules_to_save=[family.projector] if cfg.train_projector else None,
    )


def find_cache(cfg: TrainConfig, family: Family, processor: Any, rank: int) -> cache.Lookup | None:
    """The fresh ``audiodata cache`` output for this run (features preferred), or None: ``cache: off``, not a local
    dataset, or none fresh (each stale one named on rank 0, never used; ``cache: require`` then fails)."""
    if cfg.cache == "off":
        return None
    if not is_local(cfg.data) or objstore.is_remote(cfg.data):
        if cfg.cache == "require":
            raise ConfigError("cache: require: the training-input cache is written next to a converted dataset on disk only")
        return None
    root = Path(cfg.data).expanduser()
    data = ConvertedDataset.open(root)
    config = data.find_config(cfg.config_name) or cfg.config_name
    stale: list[str] = []
    for features in (True, False):
        parts = cache.components(family, processor, cfg.system_prompt, cfg.long_audio, features, data.kind(config))
        found = cache.lookup(root, parts, config)
        stale = stale or found.stale
        if found.path is not None:
            if rank == 0:
                what = "tokens and log-mel features" if features else "tokens (audio decoded per example)"
                print(f"[audiodata] training input from the cache {found.path} ({what})", file=sys.stderr, flush=True)
            return found
    if rank == 0:
        for line in stale:
            print(f"[audiodata] not using the stale cache {line}", file=sys.stderr, flush=True)
    if cfg.cache == "require":
        why = "; ".join(stale) if stale else f"none in {root / cache.CACHE_DIR}"
        raise ConfigError(f"cache: require, but no fresh training-input cache for this model and settings ({why}); "
                          f"write one with `audiodata cache {cfg.data} --tokenizer {cfg.model}{_config_flag(cfg, config)}`")
    return None


def needs_audio(cfg: TrainConfig, cached: cache.Lookup | None) -> bool:
    """Whether the training rows must carry their audio: not with a features cache (every example comes from it)
    unless evaluation holds out training records (it generates from their clips). Without it the shards are read
    directly, and ``datasets`` never imports (copies) the split."""
    return cached is None or not cached.features or bool(cfg.eval_holdout)


def _config_flag(cfg: TrainConfig, config: str) -> str:
    """The ``--data-config`` a cache command for this run needs (none for SFT's default)."""
    return "" if config == "sft" or (config == "default" and cfg.task == "sft") else f" --data-config {config}"


def _drop_refused(rows: Any, skips: SkipLog) -> Any:
    """Leave out the records ``audiodata cache`` could not encode, each logged once with its reason (rank 0)."""
    refused = cache.skipped_rows(rows)
    if not refused:
        return rows
    if int(os.environ.get("RANK", "0")) == 0:
        meta = rows.select(refused).select_columns([c for c in ("id", "source", cache.SKIP) if c in rows.column_names])
        for row in meta:
            skips.add(row, row[cache.SKIP])
    drop = set(refused)
    return rows.select([i for i in range(len(rows)) if i not in drop])


def _audio_seconds(rows: Any) -> list[float]:
    """Seconds of audio per row, from the stored ``audio_seconds`` column (0 where there is none)."""
    if "audio_seconds" not in rows.column_names:
        return [0.0] * len(rows)
    return [float(x or 0.0) for x in cache.column(rows, "audio_seconds").to_pylist()]


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


def attach_plan(trainer: Any, cfg: TrainConfig, sampler: LengthGroupedBatchSampler, train: Any, rank: int) -> None:
    """What the mixin needs: the batch plan and its rows, the counters, the batch log, the epoch sync."""
    trainer.batch_sampler = sampler
    trainer.planned_rows = PlannedRows(train, sampler.repeats)
    trainer.seen = SeenStats()
    trainer.batch_log = BatchLog(cfg.output_dir, rank, cfg.log_batches)
    trainer.encoder_runs = count_encoder_runs(trainer.model)
    trainer.add_callback(EpochSync(sampler, cfg.gradient_accumulation_steps))


def modality_note(clips: list[int], world: int, dummy: bool) -> str | None:
    """What a distributed run does with a corpus that mixes text-only and audio records (None otherwise)."""
    text = sum(1 for c in clips if c == 0)
    if world < 2 or not text or text == len(clips):
        return None
    note = (
        f"{text} of {len(clips)} training records have no audio and {world} processes train: every step is planned "
        "modality-homogeneous (every rank's micro-batch holds a clip, or none does)"
    )
    if dummy:
        return note + "; text-only micro-batches carry a silent dummy clip, so every rank runs the audio encoder"
    return note + (
        "; dummy_audio is off, so in text-only steps no rank runs the audio encoder (a trained projector then gets "
        "no gradient there: DDP needs find_unused_parameters, which TRL sets for processors)"
    )


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
    """Train, save the adapter (or model), the processor and the training report; return the report.

    With several processes every rank trains and returns the same report (counters summed over
    the ranks); only rank 0 writes the processor, the report and the plot.
    """
    from trainer import preflight

    if cfg.dry_run:  # the checks only, nothing trained (trainer/preflight.py; GRPO's: trainer/grpo_preflight.py)
        return preflight.dry_run(cfg).to_dict()
    if cfg.task == "grpo":  # TRL's GRPOTrainer, its own report and page (trainer/grpo.py)
        from trainer.grpo import train_grpo

        return train_grpo(cfg)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    checkpoint = resume_point(cfg)
    started = time.time()
    run = build(cfg)
    rank, world = dist.world()
    run.trainer.batch_log.start(checkpoint_step(checkpoint))
    if run.evaluator is not None:
        run.evaluator.start(checkpoint_step(checkpoint))
    run.trainer.guard.start(checkpoint_step(checkpoint), run.collator.dummy_audio)
    planned = run.sampler.padding_efficiency()
    if rank == 0:
        per_rank = f" ({run.sampler.steps_per_epoch} on each of {world} processes)" if world > 1 else ""
        print(
            f"[audiodata] {len(run.sampler)} batches/epoch{per_rank}, planned padding efficiency {planned:.3f}",
            file=sys.stderr,
            flush=True,
        )
    checks = preflight.before_training(run)  # stops here (exit 2) on a failing check
    result = run.trainer.train(resume_from_checkpoint=checkpoint)
    evaluation.final_evaluation(run.trainer, run.evaluator)  # generate and score at the last step too
    run.trainer.save_model(cfg.output_dir)  # every rank calls it (ZeRO-3 gathers); transformers writes on rank 0
    seen = run.trainer.seen.reduced(run.trainer.args.device)
    state = run.trainer.state
    audio_rows = sum(1 for c in run.sampler.clips if c > 0)
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
        "examples_seen": seen.examples,
        "tokens_seen": seen.tokens,
        "audio_hours_seen": round(seen.audio_seconds / 3600, 6),
        "padding_efficiency": {"planned": round(planned, 4), "actual": round(seen.padding_efficiency, 4)},
        "train_records": len(run.sampler.lengths),
        "train_audio_hours": round(run.audio_seconds_per_epoch / 3600, 6),
        "skipped": _skipped(run.skips),
        "long_audio": run.long_audio.to_dict() if run.long_audio else None,
        "runtime_s": round(time.time() - started, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "precision": precision(cfg),
        "processes": world,
        "steps_per_epoch": run.sampler.steps_per_epoch,
        "micro_batches": seen.micro_batches,
        "repeated_rows": seen.repeated_rows,
        "modality": {"audio": audio_rows, "text_only": len(run.sampler.clips) - audio_rows},
        "dummy_audio_batches": seen.dummy_audio_batches,
        "quarantine": run.trainer.guard.summary(run.trainer.args.device),
        "config": cfg.to_dict(),
    }
    if cfg.task in ("dpo", "kto"):
        report.update(preference_history(state.log_history))
    if run.kto_labels is not None:
        report["kto_labels"] = run.kto_labels
    report.update(preflight.report_entries(run, checks))  # hearing before/after on held-out records
    if run.evaluator is not None:
        report["evaluation"] = run.evaluator.section(run.trainer.model)
    if not math.isfinite(report["final_loss"] or 0.0) and rank == 0:
        print("[audiodata] warning: the final loss is not finite", file=sys.stderr, flush=True)
    if rank == 0:
        run.processor.save_pretrained(cfg.output_dir)
        write_report(report, Path(cfg.output_dir))
        if run.evaluator is not None:
            run.evaluator.write_page(report)
    return report


def checkpoint_step(checkpoint: str | None) -> int | None:
    """The global step a checkpoint was saved at (its trainer_state.json, else its folder name)."""
    if checkpoint is None:
        return None
    state = Path(checkpoint) / "trainer_state.json"
    if state.is_file():
        return int(json.loads(state.read_text(encoding="utf-8"))["global_step"])
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def _skipped(skips: SkipLog) -> dict[str, Any]:
    entries = skips.read()
    unique = {(e.get("source"), e.get("index")): e for e in entries}
    return {
        "count": len(entries),
        "records": len(unique),
        "examples": [{k: e[k] for k in ("id", "source", "index", "reason")} for e in list(unique.values())[:50]],
    }

