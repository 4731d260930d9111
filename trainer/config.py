"""Training configuration: one dataclass, validated up front (trl-style).

The same object comes from a YAML file (``--config``), from command-line flags or from Python; flags
override the file. As in TRL's configs, each field carries its help text and its other flag spellings in
``field(metadata={"help": ..., "aliases": [...]})``, which is what ``HfArgumentParser``/``TrlParser`` read to
make the flags (trainer/parser.py). Everything a run needs is checked here, before any model is loaded:
unknown keys, values of the wrong type, a data folder that is not a converted dataset, an unsupported
model family, out-of-range numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from audiodata import objstore
from audiodata.errors import UsageError

TASKS = ("sft", "dpo", "kto", "grpo")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LONG_AUDIO = ("split", "skip", "truncate")
CACHE_MODES = ("auto", "require", "off")
#: Every ``loss_type`` TRL 1.16's DPOConfig accepts (its field help and DPOTrainer's "Unknown loss type"
#: list; tests/training/test_trainer_losses.py holds this tuple to the installed TRL).
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
#: Fields written as comma-separated text that a YAML file may give as a list.
LIST_FIELDS = ("loss_type", "loss_weights", "reward_funcs", "reward_weights")
#: KTOConfig's ``loss_type`` choices.
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")
#: GRPOConfig's ``loss_type`` choices (TRL 1.16) but ``luspo``, which needs a sequence-level importance ratio.
GRPO_LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "vespo")
#: GRPOConfig's ``scale_rewards``: per prompt group, over the batch, or not at all (Dr. GRPO).
SCALE_REWARDS = ("group", "batch", "none")
#: The dataset config each task reads by default (GRPO reads the ``rl`` records).
DATA_CONFIG = {"grpo": "rl"}
#: The DPO losses that read ``label_smoothing`` (dpo_trainer.py ``_compute_loss``); the others ignore it.
SMOOTHED_LOSSES = ("robust", "exo_pair", "aot", "aot_unpaired")
#: Shipped DeepSpeed / FSDP configs (``trainer/configs/``) by short name.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEEPSPEED_PRESETS = {"zero2": "ds_zero2.json", "zero3": "ds_zero3.json"}
FSDP_PRESETS = {"full_shard": "fsdp_full_shard.json"}
DEFAULT_LR = {"sft": 1e-4, "dpo": 5e-6, "kto": 5e-6, "grpo": 1e-5}


class ConfigError(UsageError):
    """A bad configuration: the CLI exits 2 with this message."""


@dataclass
class TrainConfig:
    """Everything ``audiodata train sft|dpo|kto|grpo`` can be told. ``None`` means: a sensible default, see ``resolved``."""

    task: str = field(default="sft", metadata={"help": "sft, dpo, kto or grpo (the command line sets it: train TASK)"})
    model: str = field(
        default="", metadata={"help": "local path or Hub id of the base model", "aliases": ["--model_name_or_path"]}
    )
    data: str = field(
        default="",
        metadata={
            "help": "a folder written by `audiodata convert` (on disk, or s3://, gs://, hf://datasets/...), or a Hub dataset id",
            "aliases": ["--dataset_name"],
        },
    )
    output_dir: str = field(
        default="runs/train",
        metadata={"help": "adapter, processor, checkpoints, train_report.json, loss_curve.png", "aliases": ["-o", "--output"]},
    )
    family: str | None = field(
        default=None,
        metadata={"help": "qwen2-audio | qwen2.5-omni; default: from the model's config", "aliases": ["--model-family"]},
    )
    data_config: str | None = field(
        default=None, metadata={"help": "the dataset config to read (sft/dpo/kto when a run wrote several; grpo: rl)"}
    )
    train_split: str = field(default="train", metadata={"help": "the split to train on", "aliases": ["--dataset_train_split"]})
    eval_split: str | None = field(
        default=None, metadata={"help": 'e.g. "validation"; default: none', "aliases": ["--dataset_test_split"]}
    )
    max_steps: int = field(default=-1, metadata={"help": "> 0 overrides num_train_epochs"})
    num_train_epochs: float = field(default=1.0, metadata={"help": "used when max_steps is not set"})
    learning_rate: float | None = field(default=None, metadata={"help": "default 1e-4 (SFT, LoRA), 5e-6 (DPO, KTO), 1e-5 (GRPO)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "any transformers scheduler name"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of the steps spent warming up the learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    per_device_batch_size: int = field(
        default=4,
        metadata={
            "help": "examples per device and step (DPO: pairs; GRPO: completions, num_generations per prompt)",
            "aliases": ["--per_device_train_batch_size", "--per-device-train-batch-size"],
        },
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_clips_per_batch: int = field(default=16, metadata={"help": "the audio encoder's cost scales with clips, not seconds"})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "tokens; longer examples are cut after their last audio token, or skipped",
            "aliases": ["--cutoff-len", "--cutoff_len"],
        },
    )
    use_lora: bool = field(
        default=True,
        metadata={
            "help": "LoRA on the language model; --no-use-lora: full fine-tuning (audio encoder frozen)",
            "aliases": ["--use_peft"],
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA inputs"})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "a regex over module names; default: the family's LM-only regex"}
    )
    train_projector: bool = field(
        default=False, metadata={"help": "also train the audio projector (saved whole with the adapter)"}
    )
    precision: str = field(default="auto", metadata={"help": "auto: bf16 on CUDA when supported, else fp32"})
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "default: on with CUDA"})
    attn_implementation: str | None = field(default=None, metadata={"help": "default: sdpa"})
    system_prompt: str | None = field(
        default=None, metadata={"help": 'for records without one, e.g. "translate all input audio into English"'}
    )
    chat_template: str | None = field(default=None, metadata={"help": "path to a .jinja file replacing the processor's template"})
    beta: float = field(
        default=0.1,
        metadata={"help": "DPO and KTO: deviation from the reference (higher: less); IPO: its tau; GRPO: the KL coefficient "
                  "(0: no reference pass and no KL in the report)"},
    )
    seed: int = field(default=0, metadata={"help": "model init of the adapter, batch order"})
    logging_steps: int = field(default=10, metadata={"help": "steps between log lines (and loss_history points)"})
    save_steps: int = field(default=500, metadata={"help": "steps between checkpoints"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})
    eval_steps: int | None = field(default=None, metadata={"help": "steps between evaluations (default: save_steps)"})
    resume: str | None = field(
        default=None,
        metadata={
            "help": 'a checkpoint folder, or "latest" for the newest one in output_dir',
            "aliases": ["--resume_from_checkpoint"],
        },
    )
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "processes decoding audio and encoding examples", "aliases": ["--num-workers"]}
    )
    report_to: str = field(default="none", metadata={"help": "tensorboard, wandb, ... as transformers knows them"})
    dummy_audio: bool | None = field(
        default=None,
        metadata={"help": "text-only micro-batches get a silent clip: all ranks run the encoder (default: >1 process)"},
    )
    log_batches: bool = field(
        default=True,
        metadata={"help": "write batches.jsonl: record ids, loss, tokens and audio seconds per micro-batch and rank"},
    )
    # -- long clips (see trainer/longaudio.py) ----------------------------------------
    long_audio: str = field(
        default="split",
        metadata={"help": "clips over the 30 s window: split (consecutive windows), skip (the record) or truncate"},
    )
    # -- training-input cache (``audiodata cache``; see trainer/cache.py) ---------------
    cache: str = field(
        default="auto",
        metadata={
            "help": "training input (SFT, DPO, KTO) written by `audiodata cache`: auto (use a fresh one when there is "
            "one), require (fail without one) or off; a stale cache (another tokenizer, template, processor or shards) "
            "is never used",
        },
    )
    # -- preference losses (TRL's DPOConfig / KTOConfig) -------------------------------
    loss_type: str | None = field(
        default=None,
        metadata={"help": "DPO: sigmoid (default), ipo, robust, ... (TRL's; a,b combines); KTO: kto or apo_zero_unpaired"},
    )
    loss_weights: str | None = field(
        default=None, metadata={"help": "DPO: comma-separated weights, one per loss_type (default 1.0 each)"}
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "DPO robust, exo_pair, aot, aot_unpaired: share of wrong preference labels, in [0, 0.5)"}
    )
    rpo_alpha: float | None = field(
        default=None, metadata={"help": "DPO: weight of an NLL loss on the chosen replies (RPO: TRL's \"sft\" loss added)"}
    )
    desirable_weight: float = field(
        default=1.0, metadata={"help": "KTO: weight of the desirable (label true) losses, to balance unequal counts"}
    )
    undesirable_weight: float = field(default=1.0, metadata={"help": "KTO: weight of the undesirable (label false) losses"})
    # -- GRPO (TRL's GRPOConfig; rewards in trainer/rewards.py, the report in trainer/rl_page.py) ---------------
    reward_funcs: str = field(
        default="answer",
        metadata={
            "help": "GRPO rewards, comma-separated: answer (the task's own check), exact_match, mcq_letter, wer, format, "
            "or a function by import path (package.module:function)",
            "aliases": ["--reward-funcs", "--rewards"],
        },
    )
    reward_weights: str | None = field(
        default=None, metadata={"help": "GRPO: comma-separated weights, one per reward function (default 1.0 each)"}
    )
    num_generations: int = field(default=4, metadata={"help": "GRPO: completions sampled per prompt (the group)"})
    max_completion_length: int = field(default=64, metadata={"help": "GRPO: tokens generated per completion at most"})
    temperature: float = field(default=1.0, metadata={"help": "GRPO: sampling temperature of the completions"})
    scale_rewards: str = field(
        default="group", metadata={"help": "GRPO: advantages divided by the reward std of the group, the batch, or none"}
    )
    use_vllm: bool = field(
        default=False,
        metadata={"help": "GRPO: generate with vLLM colocated on the training GPUs, audio included (README: GRPO with vLLM)"},
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "GRPO with use_vllm: the share of each GPU's memory vLLM takes (weights and KV cache)"}
    )
    vllm_tensor_parallel_size: int = field(
        default=1, metadata={"help": "GRPO with use_vllm: GPUs one vLLM copy spans (must divide the number of processes)"}
    )
    rl_samples: int = field(
        default=4, metadata={"help": "GRPO: fixed prompts whose greedy completion and rewards rl.html shows at each sampling"}
    )
    rl_sample_steps: int | None = field(
        default=None, metadata={"help": "GRPO: steps between samplings of the fixed prompts (default: logging_steps)"}
    )
    # -- large models on GPUs (see trainer/configs/) ----------------------------------
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: language model in 4-bit NF4, double quant, bf16 compute (bitsandbytes, CUDA)"}
    )
    deepspeed: str | None = field(
        default=None, metadata={"help": "zero2, zero3 (trainer/configs/ds_zero*.json) or a DeepSpeed JSON path; needs CUDA"}
    )
    fsdp: str | None = field(
        default=None, metadata={"help": "FSDP2: full_shard (trainer/configs/fsdp_full_shard.json) or an FSDP config JSON path"}
    )
    # -- pre-flight (issue 12; see trainer/preflight.py) --------------------------------
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "only the pre-flight checks (versions, loading, longest batches, memory, one step, audio); no training",
        },
    )
    preflight_audio_check: bool = field(
        default=True, metadata={"help": "before training: does the model hear the audio? (real vs zeroed clips; also after)"}
    )
    audio_check_records: int = field(
        default=4, metadata={"help": "records compared by the audio check (and held out for the comparison after training)"}
    )
    audio_check_min_kl: float = field(
        default=0.001, metadata={"help": "the audio check fails below this mean KL (nats/reply token), real vs zeroed clips"}
    )
    # -- evaluation (issue 12; see trainer/evaluate.py) --------------------------------
    eval_strategy: str = field(
        default="steps",
        metadata={"help": "when to evaluate with an eval set: steps (every eval_steps) or epoch; also once at the end"},
    )
    eval_holdout: float = field(
        default=0.0,
        metadata={"help": "without eval_split: hold out this share of the training records (chosen by seed) for evaluation"},
    )
    eval_metric: str = field(
        default="auto",
        metadata={
            "help": "wer, cer, exact_match, bleu or auto (WER when eval prompts ask for transcripts, BLEU for data "
            "converted with --task translate, else exact_match)"
        },
    )
    eval_generate_records: int = field(
        default=256, metadata={"help": "eval records generated and scored at each evaluation (-1: all; 0: none, eval loss only)"}
    )
    eval_samples: int = field(
        default=8,
        metadata={"help": "fixed eval records whose reference and hypotheses the report and eval.html show at every evaluation"},
    )
    max_new_tokens: int = field(
        default=128,
        metadata={"help": "evaluation: greedy generation stops at EOS, the template's end-of-turn token or this many tokens"},
    )
    # -- quarantine (issue 12): which record broke step N (trainer/quarantine.py) -------
    on_bad_batch: str = field(
        default="skip",
        metadata={"help": "non-finite loss/gradient, out of memory, collator error: skip the micro-batch, or stop"},
    )

    # -- loading -------------------------------------------------------------------
    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's help text, from its ``metadata={"help": ...}`` (what HfArgumentParser shows in --help)."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def coerce(cls, values: dict[str, Any], source: str = "config") -> dict[str, Any]:
        """``values`` (from YAML, flags or Python) checked against the fields: an unknown key is an error with a
        "did you mean", each value is converted to its field's type or named in a clear error."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            hint = _closest(unknown[0], cls.field_names())
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}" + (f" (did you mean {hint}?)" if hint else ""))
        return {k: _coerce(cls, k, v, source) for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        cfg = cls(**cls.coerce(values, source))
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """The config a YAML file gives (its ``env:`` set first, as TrlParser does), ``overrides`` on top."""
        return cls.from_dict({**read_yaml(path), **(overrides or {})}, source=str(path))

    # -- checks ----------------------------------------------------------------------
    def validate(self) -> None:
        from audiodata.families import FAMILIES

        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not self.model:
            raise ConfigError("model is required (a local path or a Hub id)")
        if not self.data:
            raise ConfigError("data is required (a folder written by `audiodata convert`, or a Hub dataset id)")
        if self.use_vllm and self.task != "grpo":  # only GRPO generates while it trains
            raise ConfigError(f"use_vllm is a GRPO setting (vLLM generates its completions); {self.task} generates nothing")
        if self.family is not None and self.family not in TRAINABLE_FAMILIES:
            known = ", ".join(TRAINABLE_FAMILIES)
            extra = " (audiodata can lint it, but training it is not supported yet)" if self.family in FAMILIES else ""
            raise ConfigError(f"unsupported model family {self.family!r}{extra}; supported: {known}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        positive = ("per_device_batch_size", "gradient_accumulation_steps", "max_clips_per_batch", "lora_r", "lora_alpha")
        for name in (*positive, "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_train_epochs <= 0):
            raise ConfigError("set max_steps > 0 or num_train_epochs > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.max_length is not None and self.max_length < 16:
            raise ConfigError(f"max_length must be >= 16 tokens, got {self.max_length}")
        if self.lora_target_modules is not None:
            try:
                re.compile(self.lora_target_modules)
            except re.error as exc:
                raise ConfigError(f"lora_target_modules is not a valid regex: {exc}") from None
        if self.chat_template is not None and not Path(self.chat_template).is_file():
            raise ConfigError(f"chat_template {self.chat_template}: no such file")
        if self.task in ("dpo", "kto") and self.beta <= 0:
            raise ConfigError(f"beta must be > 0, got {self.beta}")
        if self.task == "grpo" and self.beta < 0:
            raise ConfigError(f"beta (the KL coefficient) must be >= 0, got {self.beta}")
        if self.long_audio not in LONG_AUDIO:
            raise ConfigError(f"long_audio must be one of {', '.join(LONG_AUDIO)}, got {self.long_audio!r}")
        if self.cache not in CACHE_MODES:
            raise ConfigError(f"cache must be one of {', '.join(CACHE_MODES)}, got {self.cache!r}")
        self._validate_losses()
        self._validate_scale()
        if self.audio_check_records < 1 or not self.audio_check_min_kl >= 0:  # pre-flight (issue 12)
            raise ConfigError("audio_check_records must be >= 1 and audio_check_min_kl >= 0")
        from trainer.evaluate import check_config  # evaluation (issue 12)

        check_config(self)
        if self.on_bad_batch not in ("skip", "stop"):  # quarantine (issue 12)
            raise ConfigError(f"on_bad_batch must be skip or stop, got {self.on_bad_batch!r}")
        check_data(self)

    def _validate_losses(self) -> None:
        """DPO/KTO loss settings, checked against what TRL accepts before anything loads (TRL itself
        checks some only at the first step, and ignores label_smoothing where it does not apply)."""
        prefs = ("loss_type", "loss_weights", "rpo_alpha")
        if self.task == "grpo":
            self._validate_grpo()
            return
        if self.task == "sft":
            given = [n for n in prefs if getattr(self, n) is not None] + [n for n in ("label_smoothing",) if self.label_smoothing]
            if given:
                raise ConfigError(f"{', '.join(given)}: preference-loss settings, for dpo and kto only")
            return
        if self.task == "kto":
            if self.loss_type is not None and self.loss_type not in KTO_LOSS_TYPES:
                raise ConfigError(f"loss_type for kto must be one of {', '.join(KTO_LOSS_TYPES)}, got {self.loss_type!r}")
            if self.loss_weights is not None or self.rpo_alpha is not None or self.label_smoothing:
                raise ConfigError("loss_weights, rpo_alpha and label_smoothing are DPO settings; KTO weighs by desirable_weight")
            if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
                raise ConfigError("desirable_weight and undesirable_weight must be > 0")
            if self.kto_loss_type == "kto" and self.per_device_batch_size < 2:
                raise ConfigError("kto needs per_device_batch_size >= 2: its KL term pairs each prompt with another row's reply")
            return
        types = _names(self.loss_type or "sigmoid")
        unknown = [t for t in types if t not in DPO_LOSS_TYPES]
        if unknown:
            raise ConfigError(f"loss_type {', '.join(unknown)} is not a TRL DPO loss; choose from {', '.join(DPO_LOSS_TYPES)}")
        if len(set(types)) != len(types):
            raise ConfigError(f"loss_type lists a loss twice: {self.loss_type}")
        if self.loss_weights is not None:
            weights = _floats(self.loss_weights, "loss_weights")
            if len(weights) != len(types):
                raise ConfigError(f"loss_weights has {len(weights)} values for {len(types)} loss types ({', '.join(types)})")
        if self.rpo_alpha is not None:
            if self.rpo_alpha <= 0:
                raise ConfigError(f"rpo_alpha must be > 0, got {self.rpo_alpha}")
            if "sft" in types:
                raise ConfigError("rpo_alpha adds the sft loss; loss_type already has it (use loss_weights instead)")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.label_smoothing and not set(types) & set(SMOOTHED_LOSSES):
            used = ", ".join(SMOOTHED_LOSSES)
            raise ConfigError(f"label_smoothing is read only by the {used} losses, not {self.loss_type or 'sigmoid'}")
        if "exo_pair" in types and not self.label_smoothing:
            raise ConfigError("loss_type exo_pair needs label_smoothing > 0 (the EXO paper suggests 1e-3)")

    def _validate_grpo(self) -> None:
        """GRPO settings: the loss, the rewards (each resolvable now, not at the first step), the group size."""
        from trainer.rewards import RewardError, resolve_all

        if self.loss_type is not None and self.loss_type not in GRPO_LOSS_TYPES:
            raise ConfigError(f"loss_type for grpo must be one of {', '.join(GRPO_LOSS_TYPES)}, got {self.loss_type!r}")
        if self.loss_weights is not None or self.rpo_alpha is not None or self.label_smoothing:
            raise ConfigError("loss_weights, rpo_alpha and label_smoothing are DPO settings; GRPO weighs by reward_weights")
        names = self.reward_names
        if not names:
            raise ConfigError("reward_funcs is empty: name at least one reward")
        try:
            resolve_all(names)
        except RewardError as exc:
            raise ConfigError(str(exc)) from None
        if self.reward_weights is not None:
            weights = _floats(self.reward_weights, "reward_weights")
            if len(weights) != len(names):
                raise ConfigError(f"reward_weights has {len(weights)} values for {len(names)} rewards ({', '.join(names)})")
        if self.num_generations < 2:
            raise ConfigError(f"num_generations must be >= 2 (GRPO compares a group's completions), got {self.num_generations}")
        batch = self.per_device_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ConfigError(
                f"per_device_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of num_generations "
                f"({self.num_generations}): each generation batch holds whole groups"
            )
        if self.max_completion_length < 1 or self.temperature <= 0:
            raise ConfigError("max_completion_length must be >= 1 and temperature > 0")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}, got {self.scale_rewards!r}")
        if self.rl_samples < 0 or (self.rl_sample_steps is not None and self.rl_sample_steps < 1):
            raise ConfigError("rl_samples must be >= 0 and rl_sample_steps >= 1")
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0 or self.vllm_tensor_parallel_size < 1:
            raise ConfigError("vllm_gpu_memory_utilization must be in (0, 1] and vllm_tensor_parallel_size >= 1")

    @property
    def reward_names(self) -> list[str]:
        return _names(self.reward_funcs)

    @property
    def reward_weight_list(self) -> list[float]:
        """``reward_weights`` as floats, 1.0 each when not given."""
        if self.reward_weights is None:
            return [1.0] * len(self.reward_names)
        return _floats(self.reward_weights, "reward_weights")

    @property
    def config_name(self) -> str:
        """The dataset config to read: ``data_config``, else the task's own (GRPO: ``rl``)."""
        return self.data_config or DATA_CONFIG.get(self.task, self.task)

    def _validate_scale(self) -> None:
        """QLoRA, DeepSpeed and FSDP settings that are wrong on any machine (what needs CUDA is checked
        in ``trainer.scale.check_environment`` when the run starts, so these YAMLs validate on a laptop)."""
        if self.load_in_4bit and not self.use_lora:
            raise ConfigError("load_in_4bit (QLoRA) trains a LoRA adapter on 4-bit weights: it needs use_lora")
        if self.load_in_4bit and self.precision not in ("auto", "bf16"):
            raise ConfigError(f"load_in_4bit computes in bf16: precision must be bf16 or auto, got {self.precision}")
        if self.deepspeed and self.fsdp:
            raise ConfigError("choose one of deepspeed and fsdp")
        for name, presets in (("deepspeed", DEEPSPEED_PRESETS), ("fsdp", FSDP_PRESETS)):
            value = getattr(self, name)
            if value is None or value in presets:
                continue
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(f"{name} {value}: neither {' nor '.join(presets)} nor a JSON file")
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ConfigError(f"{name} {value}: not valid JSON: {exc}") from None

    @property
    def dpo_loss_types(self) -> list[str]:
        """``loss_type`` as TRL's list (``rpo_alpha`` adds ``sft``)."""
        types = _names(self.loss_type or "sigmoid")
        return [*types, "sft"] if self.rpo_alpha is not None else types

    @property
    def dpo_loss_weights(self) -> list[float] | None:
        """TRL's ``loss_weights`` (None: 1.0 each), with ``rpo_alpha`` as the weight of the added ``sft`` loss."""
        if self.loss_weights is None and self.rpo_alpha is None:
            return None
        types = _names(self.loss_type or "sigmoid")
        weights = _floats(self.loss_weights, "loss_weights") if self.loss_weights is not None else [1.0] * len(types)
        return [*weights, self.rpo_alpha] if self.rpo_alpha is not None else weights

    @property
    def kto_loss_type(self) -> str:
        return self.loss_type or "kto"

    def preset_path(self, name: str) -> str | None:
        """``deepspeed``/``fsdp`` as a file path: a shipped preset's file, or the path given."""
        value = getattr(self, name)
        presets = DEEPSPEED_PRESETS if name == "deepspeed" else FSDP_PRESETS
        if value is None:
            return None
        return str(CONFIG_DIR / presets[value]) if value in presets else str(Path(value).expanduser())

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.task]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Families the trainer can fine-tune (each has an adapter in trainer/families.py).
TRAINABLE_FAMILIES = ("qwen2-audio", "qwen2.5-omni")


def is_local(data: str) -> bool:
    """A converted dataset's folder (on disk, or in an object store: read from its local copy), not a Hub id."""
    return objstore.is_remote(data) or Path(data).exists() or data.startswith((".", "/", "~"))


@functools.cache
def data_root(data: str) -> Path:
    """The folder ``data`` (:func:`is_local`) is read from: itself, or for one in an object store (``s3://``,
    ``gs://``, ``hf://datasets/...``) its local copy, brought to what the store holds once per process (the ranks
    of one machine take turns: the first pulls, the others find the copy current); the run reads that copy."""
    if objstore.is_remote(data):
        return objstore.Mirror(data).read_only(wait=True)
    return Path(data).expanduser()


def check_data(cfg: TrainConfig) -> None:
    """A local ``data`` must be a converted dataset that has the task's config and splits."""
    if not is_local(cfg.data):
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", cfg.data):
            raise ConfigError(f"data {cfg.data!r} is neither a folder nor a Hub dataset id (owner/name)")
        return
    from audiodata.dataset import ConvertedDataset

    root = data_root(cfg.data)
    if cfg.task == "grpo" and not (root / "manifest.json").is_file():
        from trainer.rldata import check_hub_layout

        check_hub_layout(cfg)  # a Hub-layout folder of rl shards (TRL's, or written before `convert` knew rl)
        return
    ds = ConvertedDataset.open(root)  # DatasetError (exit 2): not a converted dataset, damaged, or of a newer format
    name = cfg.config_name
    if ds.find_config(name, exact=cfg.data_config is not None) is None:
        raise ConfigError(f"data {cfg.data} has no {name!r} records (configs: {', '.join(ds.configs) or 'none'})")
    splits = sorted(ds.splits())
    for split in (cfg.train_split, cfg.eval_split):
        if split is not None and split not in splits:
            raise ConfigError(f"data {cfg.data} has no split {split!r} (splits: {', '.join(splits)})")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The settings of a ``--config`` YAML file, as TrlParser reads one: a mapping of TrainConfig fields, and an
    optional ``env:`` mapping of environment variables, set here (before any library that reads them loads)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {p}: no such file")
    try:
        values = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: expected a mapping of settings, got {type(values).__name__}")
    env = values.pop("env", None) or {}
    if not isinstance(env, dict):
        raise ConfigError(f"{p}: env must be a mapping of environment variables, got {type(env).__name__}")
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    return values


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated numbers, got {text!r}") from None


def _closest(word: str, options: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1)
    return found[0] if found else None


@functools.cache
def _kinds(cls: type) -> dict[str, list[str]]:
    """Each field's type as names (``int | None`` -> ``["int", "None"]``), from the annotations: HfArgumentParser
    narrows a dataclass's ``Field.type`` in place (``float | None`` becomes ``float``), so that is not read."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        out[name] = [t.__name__.replace("NoneType", "None") for t in typing.get_args(hint) or (hint,)]
    return out


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    """YAML and flags give strings/ints; check each value against the field's type."""
    kinds = _kinds(cls)[name]
    if value is None:
        if "None" in kinds:
            return None
        raise ConfigError(f"{source}: {name} cannot be empty")
    for k in kinds:
        try:
            if k == "bool":
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                    return value.lower() in ("true", "yes", "1")
                continue
            if k == "int" and not isinstance(value, bool):
                if isinstance(value, float) and not value.is_integer():
                    continue
                return int(value)
            if k == "float" and not isinstance(value, bool):
                return float(value)
            if k == "str" and isinstance(value, list) and name in LIST_FIELDS:  # YAML lists: loss_type: [sigmoid, sft]
                return ",".join(str(v) for v in value)
            if k == "str":
                return str(value)
        except (TypeError, ValueError):
            continue
    raise ConfigError(f"{source}: {name} must be {' or '.join(k for k in kinds if k != 'None')}, got {value!r}")


__all__ = ["TRAINABLE_FAMILIES", "ConfigError", "TrainConfig", "field", "read_yaml"]
