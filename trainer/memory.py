"""Memory per GPU, estimated before any weight loads: the arithmetic of the headers of ``trainer/configs/*.yaml`` as code.

Parameters are counted on the model's own class built on the ``meta`` device from its config (nothing
allocated, a 7B in a second or two), split the way the arithmetic needs: the language model's linear
layers (what LoRA targets and QLoRA quantizes), embeddings, ``lm_head``, the encoders and the projector.
The trainable set of full fine-tuning is the trainer's own (:func:`trainer.train.freeze_for_full_finetune`
run on the meta model), LoRA's is PEFT's rule (``target_modules`` as a regex full match, ``r * (in + out)``
per matched linear).

Per device (GB = 1e9 bytes): weights (bf16 2 B, fp32 4 B; QLoRA: NF4 0.5 B + 0.0159 B of double-quantized
constants per 4-bit weight, the rest upcast to fp32 by ``prepare_model_for_kbit_training``); trainable
states (LoRA in fp32: weight, gradient, AdamW m and v = 16 B per parameter, bf16 under QLoRA = 8 B; full
fine-tuning: a gradient in the weights' dtype and AdamW m, v in it too, or DeepSpeed's fp32 master + m + v
= 12 B); ZeRO-3 / FSDP divide weights, gradients and optimizer states by the number of processes and
gather up to ``stage3_max_live_parameters`` (FSDP: two decoder layers) at a time; ZeRO-2 divides
gradients and optimizer states only; activations per token (gradient checkpointing:
every layer's input, ``layers x hidden``, plus one layer recomputed, ``6 hidden + 4 intermediate``;
without it every layer's ``7 hidden + 4 intermediate``), TRL's fused LM head (a ``tokens x 32768`` fp32
logit tile), the frozen audio encoder's transient (clips x 1500 positions x (4 d_model + ffn)), and the
CUDA context with allocator slack (1.5 GB, 3 GB with several processes: NCCL buffers). DPO's full
fine-tuning adds the reference model's weights; with LoRA the reference is the adapter-disabled base.
Arithmetic, not a measurement: the pre-flight compares it with the device's memory and, on CUDA, with the
peak its forward and backward measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from trainer.families import Family

GB = 1e9
NF4_BYTES = 0.5
DOUBLE_QUANT_BYTES = 1 / 64 + 4 / (256 * 64)  # one 8-bit absmax per 64 weights, one fp32 per 256 of those
LOGIT_TILE = 32768  # TRL's fused LM head scores the vocabulary in chunks of this many (_CHUNKED_LOGPROB_CHUNK_SIZE)
AUDIO_POSITIONS = 1500  # Whisper-style encoders: 3000 mel frames, stride 2
MAX_LIVE_PARAMETERS = 1e9  # trainer/configs/ds_zero3.json stage3_max_live_parameters


@dataclass
class ParamCounts:
    """Parameters by role (counted on the meta model)."""

    lm_linear: int = 0  # the language model's nn.Linear weights (LoRA targets, QLoRA's 4-bit layers)
    embeddings: int = 0
    lm_head: int = 0
    towers: int = 0  # audio (and vision) encoders, projector not included
    projector: int = 0
    other: int = 0  # norms, biases
    trainable_full: int = 0  # trainable under full fine-tuning (the trainer's own freeze)
    lora: int = 0  # LoRA adapter parameters for the run's target regex and rank
    layer_params: int = 0  # one decoder layer (what FSDP gathers at a time)

    @property
    def total(self) -> int:
        return self.lm_linear + self.embeddings + self.lm_head + self.towers + self.projector + self.other

    def to_dict(self) -> dict[str, int]:
        return {**{k: v for k, v in vars(self).items()}, "total": self.total}


@dataclass
class Dims:
    """The sizes the activation arithmetic reads from the model config."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    audio_width: int = 0  # encoder d_model
    audio_ffn: int = 0

    @classmethod
    def of(cls, config: Any) -> Dims:
        text = config.get_text_config()
        audio = getattr(config, "audio_config", None)
        return cls(
            layers=int(text.num_hidden_layers),
            hidden=int(text.hidden_size),
            intermediate=int(getattr(text, "intermediate_size", 4 * text.hidden_size)),
            vocab=int(text.vocab_size),
            audio_width=int(getattr(audio, "d_model", 0) or 0),
            audio_ffn=int(getattr(audio, "encoder_ffn_dim", 0) or 0),
        )


@dataclass
class Setup:
    """The run's settings the arithmetic depends on (from TrainConfig and the machine)."""

    method: str  # lora | qlora | full
    precision: str  # bf16 | fp16 | fp32
    processes: int = 1
    zero_stage: int = 0  # 0 (none), 2 or 3; FSDP full_shard counts as 3
    gradient_checkpointing: bool = False
    task: str = "sft"
    train_projector: bool = False
    cuda: bool = True
    fsdp: bool = False  # zero_stage 3 by FSDP: it gathers one wrapped layer at a time (and prefetches the next)


@dataclass
class Estimate:
    items: list[tuple[str, float, str]] = field(default_factory=list)  # (what, bytes, how)

    def add(self, what: str, nbytes: float, how: str) -> None:
        self.items.append((what, float(nbytes), how))

    @property
    def total(self) -> float:
        return sum(b for _, b, _ in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_gb": round(self.total / GB, 3),
            "items": [{"what": w, "gb": round(b / GB, 3), "how": h} for w, b, h in self.items],
        }


def meta_model(config: Any, family: Family) -> Any:
    """The family's training class built on the meta device (no memory) from ``config``."""
    import torch
    import transformers

    config = getattr(config, "thinker_config", None) or config  # a full Qwen2.5-Omni config: the thinker trains
    cls = getattr(transformers, family.model_class)
    with torch.device("meta"):
        return cls._from_config(config)


def count_parameters(model: Any, family: Family, lora_regex: str | None, lora_r: int, train_projector: bool) -> ParamCounts:
    """Split the (meta) model's parameters by role; the trainable set is the trainer's own rule."""
    import torch

    from trainer.train import _within, freeze_for_full_finetune

    c = ParamCounts()
    linears: dict[str, Any] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linears[name] = module
            if lora_regex and re.fullmatch(lora_regex, name):
                c.lora += lora_r * (module.in_features + module.out_features)
    lm_linear_weights = {
        f"{n}.weight"
        for n in linears
        if not _within(f"{n}.weight", "lm_head") and not any(_within(f"{n}.weight", m) for m in family.unquantized)
    }
    first_layer = None
    for name, p in model.named_parameters():
        n = p.numel()
        if _within(name, family.projector):
            c.projector += n
        elif any(_within(name, t) for t in family.towers):
            c.towers += n
        elif name.startswith("lm_head."):
            c.lm_head += n
        elif "embed_tokens" in name:
            c.embeddings += n
        elif name in lm_linear_weights:
            c.lm_linear += n
        else:
            c.other += n
        m = re.search(r"language_model\.layers\.(\d+)\.", name)
        if m and (first_layer is None or m.group(1) == first_layer):
            first_layer = m.group(1)
            c.layer_params += n
    freeze_for_full_finetune(model, family, train_projector)
    c.trainable_full = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return c


def estimate(counts: ParamCounts, dims: Dims, setup: Setup, tokens: int, clips: int) -> Estimate:
    """Bytes per device for one micro-batch of ``tokens`` padded tokens (all its rows) and ``clips`` clips."""
    e = Estimate()
    n = max(1, setup.processes)
    shard = n if setup.zero_stage == 3 else 1
    wb = 2 if setup.precision == "bf16" else 4  # fp16 keeps fp32 weights (autocast), see trainer.train.build
    ab = 4 if setup.precision == "fp32" else 2
    dtype = {2: "bf16", 4: "fp32"}[wb]
    total = counts.total
    part = f" / {n} ranks" if shard > 1 else ""
    if setup.method == "qlora":
        kept = total - counts.lm_linear
        e.add("weights: LM linears in NF4", counts.lm_linear * NF4_BYTES, f"{counts.lm_linear:.4g} x 0.5 B")
        e.add("weights: double-quantized constants", counts.lm_linear * DOUBLE_QUANT_BYTES, f"{counts.lm_linear:.4g} x 0.0159 B")
        e.add("weights: kept out of 4-bit, upcast to fp32", kept * 4, f"{kept:.4g} x 4 B")
    else:
        e.add(f"weights, {dtype}", total * wb / shard, f"{total:.4g} x {wb} B{part}")
    if setup.method in ("lora", "qlora"):
        lb = 2 if setup.method == "qlora" else 4
        e.add("LoRA weights, gradients, AdamW m and v", counts.lora * 4 * lb, f"{counts.lora:.4g} x 4 x {lb} B")
        if setup.train_projector:
            e.add("projector trained whole", counts.projector * 4 * wb, f"{counts.projector:.4g} x 4 x {wb} B")
    else:
        t = counts.trainable_full
        grad_shard = n if setup.zero_stage >= 2 else 1
        gpart = f" / {n} ranks" if grad_shard > 1 else ""
        e.add(f"gradients, {dtype}", t * wb / grad_shard, f"{t:.4g} x {wb} B{gpart}")
        if setup.zero_stage:
            e.add("optimizer: fp32 master + AdamW m, v", t * 12 / grad_shard, f"{t:.4g} x 12 B{gpart}")
        else:
            e.add(f"optimizer: AdamW m, v ({dtype})", t * 2 * wb, f"{t:.4g} x 2 x {wb} B")
        if setup.task == "dpo":
            e.add("DPO reference model", total * wb / shard, f"{total:.4g} x {wb} B{part}")
    if setup.zero_stage == 3 and shard > 1 and setup.fsdp:
        live: float = 2 * counts.layer_params
        e.add("gathered parameters in flight", live * wb, f"2 decoder layers x {counts.layer_params:.4g} x {wb} B (FSDP)")
    elif setup.zero_stage == 3 and shard > 1:
        live = min(MAX_LIVE_PARAMETERS, total)
        e.add("gathered parameters in flight", live * wb, f"{live:.4g} x {wb} B (stage3_max_live_parameters)")
    h, i, layers = dims.hidden, dims.intermediate, dims.layers
    if setup.gradient_checkpointing:
        per_token = (layers * h + 6 * h + 4 * i) * ab
        how = f"{tokens} tokens x ({layers} x {h} layer inputs + one layer recomputed 6 x {h} + 4 x {i}) x {ab} B"
    else:
        per_token = layers * (7 * h + 4 * i) * ab
        how = f"{tokens} tokens x {layers} layers x (7 x {h} + 4 x {i}) x {ab} B (no gradient checkpointing)"
    e.add("activations", tokens * per_token, how)
    tile = min(dims.vocab, LOGIT_TILE)
    e.add("fused LM head logit tile, fp32", tokens * tile * 4, f"{tokens} x {tile} x 4 B")
    if clips and dims.audio_width:
        per_clip = AUDIO_POSITIONS * (4 * dims.audio_width + dims.audio_ffn) * ab
        how = f"{clips} clips x 1500 x (4 x {dims.audio_width} + {dims.audio_ffn}) x {ab} B"
        e.add("audio encoder transient (frozen)", clips * per_clip, how)
    if setup.cuda:
        slack = 3.0 if n > 1 else 1.5
        e.add("CUDA context, allocator slack" + (", NCCL buffers" if n > 1 else ""), slack * GB, "assumed")
    return e


def setup_of(cfg: Any, precision: str, processes: int, gradient_checkpointing: bool, cuda: bool) -> Setup:
    """The :class:`Setup` of a TrainConfig."""
    method = "qlora" if cfg.load_in_4bit else ("lora" if cfg.use_lora else "full")
    stage = 0
    if cfg.fsdp:
        stage = 3
    elif cfg.deepspeed:
        stage = {"zero2": 2, "zero3": 3}.get(cfg.deepspeed, 0) or _stage_of(cfg.preset_path("deepspeed"))
    return Setup(method, precision, processes, stage, gradient_checkpointing, cfg.task, cfg.train_projector, cuda, bool(cfg.fsdp))


def _stage_of(path: str | None) -> int:
    import json
    from pathlib import Path

    try:
        return int(json.loads(Path(path or "").read_text(encoding="utf-8"))["zero_optimization"]["stage"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def device_memory(local_rank: int = 0) -> tuple[str, float | None, str]:
    """(device name, total bytes or None, what the figure is): this process's CUDA device, else host RAM."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(local_rank % torch.cuda.device_count())
        return f"cuda:{local_rank} {props.name}", float(props.total_memory), "GPU memory"
    try:
        import os

        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "cpu", None, "host RAM (unknown)"
    return "cpu", float(ram), "host RAM"
