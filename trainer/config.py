"""Training configuration: one dataclass, validated up front (trl-style).

The same object comes from a YAML file (``--config``), from command-line flags (one flag per
field, generated from the dataclass) or from Python; flags override the file. Everything a
run needs is checked before any model is loaded: unknown keys, a data folder that is not a
converted dataset, an unsupported model family, out-of-range numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

TASKS = ("sft", "dpo")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEFAULT_LR = {"sft": 1e-4, "dpo": 5e-6}


class ConfigError(ValueError):
    """A bad configuration: the CLI exits 2 with this message."""


@dataclass
class TrainConfig:
    """Everything ``audiodata train sft|dpo`` can be told. ``None`` means: a sensible default, see ``resolved``."""

    task: str = "sft"
    model: str = ""  # local path or Hub id of the base model
    data: str = ""  # a folder written by `audiodata convert`, or a Hub dataset id
    output_dir: str = "runs/train"  # adapter, processor, checkpoints, train_report.json, loss_curve.png
    family: str | None = None  # qwen2-audio | qwen2.5-omni; default: from the model's config
    data_config: str | None = None  # the dataset config to read (sft/dpo when a run wrote both)
    train_split: str = "train"  # the split to train on
    eval_split: str | None = None  # e.g. "validation"; default: none
    max_steps: int = -1  # > 0 overrides num_train_epochs
    num_train_epochs: float = 1.0  # used when max_steps is not set
    learning_rate: float | None = None  # default 1e-4 (SFT, LoRA) or 5e-6 (DPO)
    lr_scheduler_type: str = "cosine"  # any transformers scheduler name
    warmup_ratio: float = 0.03  # share of the steps spent warming up the learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping
    per_device_batch_size: int = 4  # examples per device and step (DPO: pairs)
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    max_clips_per_batch: int = 16  # the audio encoder's cost scales with clips, not seconds
    max_length: int | None = None  # tokens; longer examples are cut after their last audio token, or skipped
    use_lora: bool = True  # LoRA on the language model; --no-use-lora: full fine-tuning (audio encoder frozen)
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling
    lora_dropout: float = 0.05  # dropout on the LoRA inputs
    lora_target_modules: str | None = None  # a regex over module names; default: the family's LM-only regex
    train_projector: bool = False  # also train the audio projector (saved whole with the adapter)
    precision: str = "auto"  # auto: bf16 on CUDA when supported, else fp32
    gradient_checkpointing: bool | None = None  # default: on with CUDA
    attn_implementation: str | None = None  # default: sdpa
    system_prompt: str | None = None  # for records without one, e.g. "translate all input audio into English"
    chat_template: str | None = None  # path to a .jinja file replacing the processor's template
    beta: float = 0.1  # DPO
    seed: int = 0  # model init of the adapter, batch order
    logging_steps: int = 10  # steps between log lines (and loss_history points)
    save_steps: int = 500  # steps between checkpoints
    save_total_limit: int | None = 2  # checkpoints kept
    eval_steps: int | None = None  # steps between evaluations (default: save_steps)
    resume: str | None = None  # a checkpoint folder, or "latest" for the newest one in output_dir
    dataloader_num_workers: int = 0  # processes decoding audio and encoding examples
    report_to: str = "none"  # tensorboard, wandb, ... as transformers knows them
    dummy_audio: bool | None = None  # text-only micro-batches get a silent clip: all ranks run the encoder (default: >1 process)
    log_batches: bool = True  # write batches.jsonl: record ids, loss, tokens and audio seconds per micro-batch and rank

    # -- loading -------------------------------------------------------------------
    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's trailing comment above: the flag help text, written once, next to the field."""
        import inspect

        found = re.findall(r"^    (\w+): [^=\n]+= [^#\n]+#\s*(.+)$", inspect.getsource(cls), re.MULTILINE)
        return dict(found)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            hint = _closest(unknown[0], cls.field_names())
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}" + (f" (did you mean {hint}?)" if hint else ""))
        cfg = cls(**{k: _coerce(cls, k, v, source) for k, v in values.items()})
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config {p}: no such file")
        try:
            values = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{p}: expected a mapping of settings, got {type(values).__name__}")
        return cls.from_dict({**values, **(overrides or {})}, source=str(p))

    # -- checks ----------------------------------------------------------------------
    def validate(self) -> None:
        from audiodata.families import FAMILIES

        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not self.model:
            raise ConfigError("model is required (a local path or a Hub id)")
        if not self.data:
            raise ConfigError("data is required (a folder written by `audiodata convert`, or a Hub dataset id)")
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
        if self.task == "dpo" and self.beta <= 0:
            raise ConfigError(f"beta must be > 0, got {self.beta}")
        check_data(self)

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.task]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Families the trainer can fine-tune (each has an adapter in trainer/families.py).
TRAINABLE_FAMILIES = ("qwen2-audio", "qwen2.5-omni")


def is_local(data: str) -> bool:
    return Path(data).exists() or data.startswith((".", "/", "~"))


def check_data(cfg: TrainConfig) -> None:
    """A local ``data`` must be a converted dataset that has the task's config and splits."""
    if not is_local(cfg.data):
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", cfg.data):
            raise ConfigError(f"data {cfg.data!r} is neither a folder nor a Hub dataset id (owner/name)")
        return
    root = Path(cfg.data).expanduser()
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(f"data {root} is not a converted dataset (no manifest.json); run `audiodata convert` first")
    shards = json.loads(manifest.read_text(encoding="utf-8")).get("shards", [])
    configs = sorted({s["config"] for s in shards})
    name = cfg.data_config or cfg.task
    if name not in configs and not (cfg.data_config is None and len(configs) == 1 and configs[0] == "default"):
        raise ConfigError(f"data {root} has no {name!r} records (configs: {', '.join(configs) or 'none'})")
    splits = sorted({s["split"] for s in shards})
    for split in (cfg.train_split, cfg.eval_split):
        if split is not None and split not in splits:
            raise ConfigError(f"data {root} has no split {split!r} (splits: {', '.join(splits)})")


def _closest(word: str, options: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1)
    return found[0] if found else None


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    """YAML and flags give strings/ints; check each value against the field's type."""
    kind = {f.name: f.type for f in fields(cls)}[name]
    kinds = str(kind).replace(" ", "").split("|")
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
            if k == "str":
                return str(value)
        except (TypeError, ValueError):
            continue
    raise ConfigError(f"{source}: {name} must be {' or '.join(k for k in kinds if k != 'None')}, got {value!r}")


__all__ = ["TRAINABLE_FAMILIES", "ConfigError", "TrainConfig", "field"]
