"""A 7B on real GPUs: QLoRA (bitsandbytes 4-bit), DeepSpeed ZeRO-2/3 and FSDP2, as config fields.

What is checked where:

* ``TrainConfig.validate`` (any machine): combinations that are always wrong (QLoRA without LoRA,
  DeepSpeed and FSDP together, a config path that is not JSON). The shipped YAMLs in
  ``trainer/configs/`` validate on a laptop.
* :func:`check_environment` (when a run starts, before anything loads): what the machine must have:
  CUDA and the bitsandbytes package for QLoRA, the deepspeed package for DeepSpeed. A missing one is a
  configuration error (exit 2) that says what to install, not a traceback from deep inside transformers.
* :func:`training_args_extras`: the DeepSpeed / FSDP settings handed to TrainingArguments. The training
  arguments are created *before* the model, so that ZeRO-3 partitions the weights while they load
  (``from_pretrained`` under ``deepspeed.zero.Init``) instead of every rank first holding all of them.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from trainer.config import FSDP_PRESETS, ConfigError, TrainConfig
from trainer.families import Family


def check_environment(cfg: TrainConfig, cuda: bool) -> None:
    """Raise a ConfigError naming what this machine lacks for ``cfg`` (QLoRA, DeepSpeed)."""
    if cfg.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("load_in_4bit (QLoRA) needs the bitsandbytes package: pip install 'bitsandbytes>=0.46'")
        if not cuda:
            raise ConfigError("load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit training kernels run on CUDA")
    if cfg.deepspeed:
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("deepspeed needs the deepspeed package: pip install deepspeed (on a machine with CUDA)")
        if not cuda:
            raise ConfigError("deepspeed needs CUDA GPUs; on CPU train without it")


def quantization_config(family: Family) -> Any:
    """QLoRA's BitsAndBytesConfig: NF4 weights with double quantization, bf16 compute and storage.

    Only the language model's linear layers are quantized: the audio encoder and the projector (and Omni's
    vision tower) stay in higher precision, as does ``lm_head`` (which TRL's fused loss reads directly).
    Storage in bf16 lets FSDP/ZeRO-3 shard the packed 4-bit weights along with the bf16 ones."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_quant_storage=torch.bfloat16,
        llm_int8_skip_modules=["lm_head", *family.unquantized],  # despite its name, 4-bit loading reads it too
    )


def load_kwargs(cfg: TrainConfig, family: Family) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments: the quantization config and one GPU per process for QLoRA."""
    if not cfg.load_in_4bit:
        return {}
    return {"quantization_config": quantization_config(family), "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def prepare_quantized(model: Any, gradient_checkpointing: bool) -> Any:
    """PEFT's k-bit preparation: freeze the base, upcast the non-4-bit parameters to fp32 (layer norms,
    embeddings, the audio encoder), make the input embeddings carry gradients for checkpointing."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def training_args_extras(cfg: TrainConfig, family: Family) -> dict[str, Any]:
    """TrainingArguments settings for DeepSpeed (a JSON path) or FSDP2 (``fsdp=True`` and its config). The
    ``full_shard`` preset wraps the family's decoder and audio-encoder layers; a path is passed as it is."""
    if cfg.deepspeed:
        return {"deepspeed": cfg.preset_path("deepspeed")}
    if cfg.fsdp in FSDP_PRESETS:
        fsdp_config = json.loads(Path(cfg.preset_path("fsdp") or "").read_text(encoding="utf-8"))
        fsdp_config["transformer_layer_cls_to_wrap"] = list(family.layer_classes)
        return {"fsdp": True, "fsdp_config": fsdp_config}
    if cfg.fsdp:
        return {"fsdp": True, "fsdp_config": cfg.preset_path("fsdp")}
    return {}
