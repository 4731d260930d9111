"""``audiodata train grpo``: TRL's GRPOTrainer on ``rl`` records, with their audio, on the tiny model or a real one.

The run: the ``rl`` rows (trainer/rldata.py), the reward functions (trainer/rewards.py, weighted), TRL's
``GRPOConfig`` from :class:`~trainer.config.TrainConfig`, LoRA on the language model as for SFT/DPO/KTO, and
:class:`AudioGRPOTrainer` (a thin subclass, its docstring says why). Generation runs through transformers'
``generate`` (CPU or GPU), or through vLLM with each prompt's audio (``use_vllm``, GPU; trainer/grpo_vllm.py).

Distributed rules, as for the other trainers: every prompt is trained on at least once per epoch across the ranks
(:class:`CoveringRepeatSampler`; the prompts repeated to fill the last generation batch are counted in the report),
rewards are gathered across ranks by TRL before the group advantages, and rank 0 alone writes the report,
``train_report.json`` and ``rl.html`` (trainer/rl_page.py). The fixed prompts of the page are generated greedily,
each rank its share, gathered as the evaluation does (trainer/evaluate.py).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer import dist
from trainer.collators import AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import SkipExample, SkipLog
from trainer.families import Family, detect_family, get_family
from trainer.rewards import RewardFunc, resolve_all

#: Keys the generation batch carries the rows' audio under (padded per row, so TRL's shuffle and split keep them
#: aligned with their completions); never handed to the model under these names.
FEATURES, FEATURE_MASK, CLIP_MASK = "audio_features", "audio_feature_mask", "audio_clip_mask"


@dataclass
class Prompt:
    """One row's prompt as the model sees it: token ids (audio placeholders expanded) and its clips' features."""

    ids: list[int]
    features: torch.Tensor | None  # (clips, mel, frames)
    mask: torch.Tensor | None  # (clips, frames)
    broken: str | None = None  # why its audio could not be used (its clips are silence; its group is not learned from)
    clips: list[np.ndarray] = field(default_factory=list)  # the decoded waveforms, one per placeholder (for vLLM)


def encode_prompt(collator: AudioCollator, row: dict[str, Any]) -> Prompt:
    """The prompt rendered exactly as SFT/DPO/KTO render theirs (system prompt, long clips split, the family's
    chat template with the generation prompt), the processor expanding each clip's placeholder.

    A clip that does not decode (damaged since convert checked it, a disk error that returned bad bytes) must not
    stop a run at step N, and a GRPO group cannot lose a row: the prompt gets silence of the stored duration in
    its place and ``broken`` says why; the trainer logs it and gives its completions no reward (TRL then gives
    the group no advantage, so nothing is learned from it)."""
    broken = None
    try:
        clips, windows = collator.audios(row)
    except SkipExample as exc:
        broken = str(exc)
        rate = collator.family.math.sampling_rate
        seconds = [min(float(a.get("duration") or 1.0), 30.0) for a in row.get("audio_info") or []]
        markers = sum(str(m.get("content") or "").count("<audio>") for m in row["prompt"])
        seconds = (seconds + [1.0] * markers)[:markers]
        clips, windows = [np.zeros(max(1, int(s * rate)), dtype=np.float32) for s in seconds], [1] * markers
    conv = collator.family.conversation(row["prompt"], collator.system(row), windows)
    text = collator.render(conv, True)
    enc = collator.family.process(collator.processor, text, clips)
    ids = enc["input_ids"][0].tolist()
    return Prompt(ids, enc.get("input_features"), enc.get("feature_attention_mask"), broken, list(clips))


def stack_audio(prompts: list[Prompt]) -> dict[str, torch.Tensor] | None:
    """Per-row audio as padded tensors: features (rows, clips, mel, frames), their frame masks, and which clip slots
    are real; None when no row has audio."""
    real = [p for p in prompts if p.features is not None and len(p.features)]
    if not real:
        return None
    k = max(len(p.features) for p in real)  # type: ignore[arg-type]
    mel = real[0].features.shape[1]  # type: ignore[union-attr]
    frames = max(p.features.shape[2] for p in real)  # type: ignore[union-attr]
    feats = torch.zeros((len(prompts), k, mel, frames), dtype=real[0].features.dtype)  # type: ignore[union-attr]
    masks = torch.zeros((len(prompts), k, frames), dtype=torch.long)
    slots = torch.zeros((len(prompts), k), dtype=torch.bool)
    for i, p in enumerate(prompts):
        if p.features is None or not len(p.features):
            continue
        n, _, t = p.features.shape
        feats[i, :n, :, :t] = p.features
        masks[i, :n, :t] = p.mask if p.mask is not None else 1
        slots[i, :n] = True
    return {FEATURES: feats, FEATURE_MASK: masks, CLIP_MASK: slots}


def audio_inputs(
    audio: dict[str, torch.Tensor] | None, start: int, end: int, dtype: Any, device: Any = None
) -> dict[str, torch.Tensor]:
    """The model's audio kwargs for rows ``start:end``: their real clips, in row order (the order of their
    placeholder runs in the batch), on ``device`` (None: where they are)."""
    if audio is None:
        return {}
    slots = audio[CLIP_MASK][start:end]
    if not bool(slots.any()):
        return {}
    return {
        "input_features": audio[FEATURES][start:end][slots].to(device=device, dtype=dtype),
        "feature_attention_mask": audio[FEATURE_MASK][start:end][slots].to(device=device),
    }


def dedup_audio_tower(model: Any, family: Family) -> bool:
    """Run the audio encoder once per distinct clip of a call instead of once per row.

    GRPO repeats every prompt ``num_generations`` times (and TRL's shuffle scatters the copies), so generation and
    every log-prob pass would encode each clip that many times: on the tiny model 90% of a step went there. The
    wrapper finds equal rows of ``input_features`` (and of the encoder's attention mask), encodes each once and
    gathers the output back to every row. Exact: the encoder is deterministic (its dropout is 0; a ``dropout`` > 0
    would give copies one dropout mask instead of several) and encodes each clip on its own, and the gather is
    differentiable, so a trained projector gets the same gradient.

    Qwen2-Audio: the ``audio_tower``'s forward takes one row per clip, its output one row per clip. Qwen2.5-Omni:
    the thinker packs the clips' valid frames into one sequence before its encoder, so the wrapper sits one level
    up, on the thinker model's ``get_audio_features`` (padded rows + frame mask in, the clips' encodings packed
    out): distinct rows in, the packed output split per clip by the encoder's own output lengths and gathered back
    to every row."""
    if family.name == "qwen2-audio":
        return _dedup_tower_rows(model)
    if family.name == "qwen2.5-omni":
        return _dedup_packed_audio(model)
    return False


def _dedup_tower_rows(model: Any) -> bool:
    tower = model.get_submodule("model.audio_tower") if _has(model, "model.audio_tower") else getattr(model, "audio_tower", None)
    if tower is None:
        return False
    original = tower.forward

    def forward(input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw: Any) -> Any:
        keep, inverse = distinct_rows(input_features, attention_mask)
        if len(keep) == input_features.shape[0]:
            return original(input_features, attention_mask=attention_mask, **kw)
        idx = torch.tensor(keep, device=input_features.device)
        out = original(input_features[idx], attention_mask=None if attention_mask is None else attention_mask[idx], **kw)
        out.last_hidden_state = out.last_hidden_state[torch.tensor(inverse, device=input_features.device)]
        return out

    forward.original = original  # type: ignore[attr-defined]
    tower.forward = forward
    return True


def _dedup_packed_audio(model: Any) -> bool:
    thinker = next((m for m in model.modules() if type(m).__name__ == "Qwen2_5OmniThinkerModel"), None)
    if thinker is None:
        return False
    original = thinker.get_audio_features

    def get_audio_features(
        input_features: torch.Tensor,
        feature_attention_mask: torch.Tensor | None = None,
        audio_feature_lengths: torch.Tensor | None = None,
        **kw: Any,
    ) -> Any:
        if feature_attention_mask is None or input_features.dim() != 3:
            return original(input_features, feature_attention_mask, audio_feature_lengths, **kw)
        keep, inverse = distinct_rows(input_features, feature_attention_mask)
        if len(keep) == input_features.shape[0]:
            return original(input_features, feature_attention_mask, audio_feature_lengths, **kw)
        idx = torch.tensor(keep, device=input_features.device)
        mask = feature_attention_mask[idx]
        out = original(input_features[idx], mask, None, **kw)
        _, lengths = thinker.audio_tower._get_feat_extract_output_lengths(mask.sum(-1))
        pieces = torch.split(out.last_hidden_state, [int(n) for n in lengths.tolist()])
        out.last_hidden_state = torch.cat([pieces[j] for j in inverse])
        return out

    get_audio_features.original = original  # type: ignore[attr-defined]
    thinker.get_audio_features = get_audio_features
    return True


def _has(model: Any, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def distinct_rows(x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[list[int], list[int]]:
    """(the first row of each distinct value, each row's index among those): rows are fingerprinted by the bytes of a
    few thousand of their values, and a fingerprint match is confirmed by comparing the rows (and masks) exactly."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    probe = flat[:, :: max(1, flat.shape[1] // 4096)].detach().cpu().contiguous()  # ~4k evenly spaced values
    # their bytes: no arithmetic, no rounding; viewed as bytes because numpy has no bfloat16 (bf16 features on a GPU)
    raw = probe.view(torch.uint8) if probe.numel() else probe
    prints = [hash(raw[i].numpy().tobytes()) for i in range(n)]
    keep: list[int] = []
    inverse: list[int] = []
    seen: dict[int, list[int]] = {}
    for i in range(n):
        found = None
        for j in seen.get(prints[i], []):
            if torch.equal(flat[i], flat[keep[j]]) and (mask is None or torch.equal(mask[i], mask[keep[j]])):
                found = j
                break
        if found is None:
            found = len(keep)
            keep.append(i)
            seen.setdefault(prints[i], []).append(found)
        inverse.append(found)
    return keep, inverse


def covering_sampler_class() -> type:
    from trl.trainer.utils import RepeatSampler

    class CoveringRepeatSampler(RepeatSampler):
        """TRL's RepeatSampler, but the last generation batch of an epoch is filled up with prompts from the start
        of the epoch's order instead of being dropped (RepeatSampler keeps only full chunks): every prompt is
        trained on at least once per epoch, across all ranks. ``repeated`` counts the fillers."""

        repeated = 0

        def __iter__(self) -> Any:
            n = self.num_samples
            order = torch.randperm(n, generator=self.generator).tolist() if self.shuffle else list(range(n))
            short = -n % self.batch_size
            self.repeated = short
            order += [order[k % n] for k in range(short)]
            for c in range(0, len(order), self.batch_size):
                chunk = order[c : c + self.batch_size]
                for _ in range(self.repeat_count):
                    for index in chunk:
                        for _ in range(self.mini_repeat_count):
                            yield index

        def __len__(self) -> int:
            chunks = math.ceil(self.num_samples / self.batch_size)
            return chunks * self.batch_size * self.mini_repeat_count * self.repeat_count

    return CoveringRepeatSampler


def trainer_class() -> type:
    from trl import GRPOTrainer

    sampler_cls = covering_sampler_class()

    class AudioGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer, fed the audio of each prompt.

        Why a subclass (TRL 1.16, ``trl/trainer/grpo_trainer.py``): its multimodal path is for images only.

        1. ``_tokenize_prompts`` collects ``{"type": "image"}`` parts of the prompt and lets
           ``apply_chat_template(tokenize=True)`` process them. Our prompts carry ``<audio>`` markers with the clips
           in the separate ``audios`` column (stored bytes), which TRL never reads: generation would run deaf.
        2. The log-prob passes (``_get_per_token_logps_and_entropies``, for the old, the reference and the current
           policy) hand the model only image keys (``pixel_values``, ``image_grid_thw``, ...), and
           ``_generate_and_score_completions`` builds those from ``images`` with ``processing_class(images=...)``:
           ``input_features``/``feature_attention_mask`` never reach the model, so completions would be scored
           (and the loss computed) without the audio they were generated from. Nothing fails: without features
           Qwen2-Audio embeds the placeholder tokens as text (tests/training/test_grpo.py shows the log-probs
           differ), so the policy would silently learn deaf.
        3. Given a processor (``ProcessorMixin``), ``__init__`` suppresses ``model.config.image_token_id`` in
           generation, which an audio model's config does not have (AttributeError). So the trainer gets the
           tokenizer as ``processing_class`` (everything TRL does with it here is tokenizer work: padding ids, EOS,
           decoding completions) and the generation config suppresses the audio placeholder token instead: a
           sampled ``<|AUDIO|>`` would not match any audio features, the same reason TRL suppresses image tokens.
        4. ``RepeatSampler`` drops the last, incomplete generation batch of every epoch, so some prompts would never
           be trained on (the distributed rule of this trainer: every prompt once per epoch).

        The overrides: ``_generate_and_score_completions`` renders each row's prompt and decodes its clips once
        (:func:`encode_prompt`, as SFT/DPO/KTO do) and keeps the features with the generation batch as padded
        per-row tensors (TRL's ``shuffle_sequence_dict``/``split_tensor_dict`` permute and split every tensor
        along the rows, so they stay with their completions); ``_tokenize_prompts`` returns those ids and
        features for ``generate``; ``_get_per_token_logps_and_entropies`` is TRL's loop with the rows' audio
        added to each forward (and without the image branches); ``_compute_loss`` points it at the batch's
        audio; ``_generate_single_turn`` hands vLLM the clips (``use_vllm``: trainer/grpo_vllm.py says why TRL's
        own vLLM call cannot); ``_get_train_sampler`` covers every prompt; ``_calculate_rewards`` gives no reward to the
        completions of a prompt whose clip did not decode (:func:`encode_prompt`), so its group teaches nothing.
        """

        def __init__(self, *args: Any, audio_collator: AudioCollator, skips: SkipLog, **kwargs: Any) -> None:
            self.audio_collator, self.skips = audio_collator, skips
            self._broken: list[bool] = []
            self.broken_logged: set[str] = set()
            self._prompts: list[Prompt] | None = None
            self._audio: dict[str, torch.Tensor] | None = None
            self.completions_per_prompt: Counter[str] = Counter()  # this rank's, by record id (the coverage check)
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, dataset: Any = None) -> Any:
            base: Any = super()._get_train_sampler(dataset)
            sampler = sampler_cls(
                data_source=base.data_source,
                mini_repeat_count=base.mini_repeat_count,
                batch_size=base.batch_size,
                repeat_count=base.repeat_count,
                shuffle=base.shuffle,
                seed=base.seed,
            )
            self.covering_sampler = sampler
            return sampler

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            memo: dict[Any, Prompt] = {}
            prompts = []
            for x in inputs:  # each prompt comes num_generations times in a row: decode it once
                if self.model is not None and self.model.training:
                    self.completions_per_prompt[str(x.get("id"))] += 1
                key = x.get("id") if x.get("id") is not None else id(x)
                if key not in memo:
                    memo[key] = encode_prompt(self.audio_collator, x)
                    why = memo[key].broken
                    if why is not None and str(x.get("id")) not in self.broken_logged:
                        self.broken_logged.add(str(x.get("id")))
                        self.skips.add(x, f"{why}; trained on as silence with no reward (its group learns nothing)")
                prompts.append(memo[key])
            self._prompts, self._audio = prompts, stack_audio(prompts)
            self._broken = [p.broken is not None for p in prompts]
            try:
                out = super()._generate_and_score_completions(inputs)
                if self._audio is not None:
                    out.update({k: v.to(self.accelerator.device) for k, v in self._audio.items()})
                return out
            finally:
                self._prompts, self._audio = None, None

        def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> Any:
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            mine = torch.tensor(self._broken or [False] * len(inputs), device=rewards.device, dtype=torch.int32)
            broken = self.accelerator.gather(mine).bool()  # every rank's rows, in the order TRL gathered the rewards
            if bool(broken.any()):
                rewards[broken] = float("nan")  # unscorable: TRL keeps them out of the baseline, advantage 0
            return rewards

        def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], None, dict[str, Any]]:
            if self._prompts is None or len(self._prompts) != len(prompts):
                raise RuntimeError("AudioGRPOTrainer: prompts tokenized outside a generation batch")
            dtype = getattr(self.model, "dtype", torch.float32)
            fields = audio_inputs(self._audio, 0, len(prompts), dtype)
            return [p.ids for p in self._prompts], None, fields

        def _generate_single_turn(
            self, prompt_ids: Any, images: Any, multimodal_fields: Any, num_generations: int, has_tool_images: bool = False
        ) -> Any:
            if not self.use_vllm:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
            from trainer.grpo_vllm import generate_colocated, request

            if self._prompts is None or len(self._prompts) != len(prompt_ids):
                raise RuntimeError("AudioGRPOTrainer: vLLM generation outside a generation batch")
            if self.state.global_step != self._last_loaded_step:  # the policy changed: vLLM gets its weights (as TRL)
                self.vllm_generation.sync_weights()
                self._last_loaded_step = self.state.global_step
            audio_id, rate = self.audio_collator.audio_id, self.audio_collator.family.math.sampling_rate
            requests = [request(ids, p.clips, audio_id, rate) for ids, p in zip(prompt_ids, self._prompts, strict=True)]
            return generate_colocated(self.vllm_generation, requests)

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            self._audio = {k: inputs[k] for k in (FEATURES, FEATURE_MASK, CLIP_MASK)} if FEATURES in inputs else None
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self._audio = None

        def _get_per_token_logps_and_entropies(
            self,
            model: Any,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            logits_to_keep: int,
            batch_size: int | None = None,
            compute_entropy: bool = False,
            compute_aux_loss: bool = False,
            **images: Any,
        ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
            batch_size = batch_size or input_ids.size(0)
            dtype = getattr(self.accelerator.unwrap_model(model), "dtype", torch.float32)
            logps, entropies, aux = [], [], []
            for start in range(0, input_ids.size(0), batch_size):
                end = min(start + batch_size, input_ids.size(0))
                ids, mask = input_ids[start:end], attention_mask[start:end]
                inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
                inputs.update(audio_inputs(self._audio, start, end, dtype, ids.device))
                if compute_aux_loss:
                    inputs["output_router_logits"] = True
                labels = ids.masked_fill(mask == 0, -100)  # only the completion tokens are scored
                labels[:, :-logits_to_keep] = -100
                with self.accelerator.autocast():
                    out = model(**inputs, labels=labels, fused_lm_head=True)
                logps.append(out.log_probs[:, -logits_to_keep:])
                if compute_entropy:
                    entropies.append(out.entropy[:, -logits_to_keep:])
                if compute_aux_loss:
                    aux.append(out.aux_loss)
            return (
                torch.cat(logps, dim=0),
                torch.cat(entropies, dim=0) if compute_entropy else None,
                torch.stack(aux).mean() if compute_aux_loss else None,
            )

    return AudioGRPOTrainer


def grpo_arguments(cfg: TrainConfig, family: Family, prec: str, cuda: bool, audio_token: int, has_eval: bool = False) -> Any:
    from trl import GRPOConfig

    from trainer.scale import training_args_extras

    gc = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else cuda
    return GRPOConfig(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        # held-out prompts: TRL generates num_generations completions each, with the audio (our override), and logs
        # eval_reward and each function's mean; rl.html charts them
        eval_strategy=cfg.eval_strategy if has_eval else "no",
        eval_steps=cfg.eval_steps or cfg.save_steps,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_train_epochs,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        use_cpu=not cuda,
        gradient_checkpointing=gc,
        gradient_checkpointing_kwargs={"use_reentrant": False} if gc else None,
        remove_unused_columns=False,
        report_to=cfg.report_to,
        dataloader_num_workers=cfg.dataloader_num_workers,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        loss_type=cfg.loss_type or "dapo",
        scale_rewards=cfg.scale_rewards,
        reward_weights=cfg.reward_weight_list,
        use_vllm=cfg.use_vllm,  # colocated; AudioGRPOTrainer._generate_single_turn hands vLLM the audio
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=cfg.vllm_tensor_parallel_size,
        generation_kwargs={"suppress_tokens": [audio_token]},
        # the audio tower is frozen; only a trained projector can go without gradient (a text-only batch)
        ddp_find_unused_parameters=bool(cfg.train_projector),
        **training_args_extras(cfg, family),
    )


@dataclass
class GRPORun:
    cfg: TrainConfig
    family: Family
    processor: Any
    trainer: Any
    collator: AudioCollator
    rows: Any
    rewards: list[RewardFunc]
    skips: SkipLog
    sampler: Any  # trainer/rl_page.py's FixedPrompts callback
    eval_rows: Any = None  # the held-out prompts (eval_split, or eval_holdout of the training records), or None

    @property
    def model(self) -> Any:
        return self.trainer.model


def build(cfg: TrainConfig) -> GRPORun:
    from trainer.evaluate import holdout
    from trainer.rl_samples import FixedPrompts
    from trainer.rldata import drop_unusable, load_rl_rows
    from trainer.scale import check_environment, load_kwargs
    from trainer.train import precision

    if cfg.task != "grpo":
        raise ConfigError(f"trainer.grpo trains grpo, not {cfg.task}")
    family = get_family(cfg.family) if cfg.family else detect_family(cfg.model)
    cuda = torch.cuda.is_available()
    prec = precision(cfg)
    if prec in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"precision {prec} needs a CUDA GPU; use precision fp32 (or auto) on CPU")
    check_environment(cfg, cuda)
    if cfg.use_vllm:
        from trainer.grpo_vllm import check_available

        check_available(cuda)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float32, "fp32": torch.float32}[prec]
    processor = family.training_processor(cfg.model, cfg.chat_template)
    tok = processor.tokenizer
    skips = SkipLog(cfg.output_dir)
    collator = AudioCollator(family, processor, None, cfg.system_prompt, cfg.long_audio)
    rows = drop_unusable(load_rl_rows(cfg, cfg.train_split), skips)
    if len(rows) == 0:
        raise ConfigError(f"{cfg.data}: no usable rl records in split {cfg.train_split} (see {skips.path})")
    rows, eval_rows = holdout(rows, cfg.eval_holdout, cfg.seed)
    if cfg.eval_split:
        eval_rows = drop_unusable(load_rl_rows(cfg, cfg.eval_split), skips)
        if len(eval_rows) == 0:
            raise ConfigError(f"{cfg.data}: no usable rl records in eval split {cfg.eval_split} (see {skips.path})")
    rewards = resolve_all(cfg.reward_names)
    args = grpo_arguments(cfg, family, prec, cuda, collator.audio_id, eval_rows is not None)
    model = family.load(cfg.model, dtype, cfg.attn_implementation or "sdpa", **load_kwargs(cfg, family))
    model.config.get_text_config().pad_token_id = tok.pad_token_id
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.pad_token_id = tok.pad_token_id
        stops = _stop_ids(family, processor, collator)
        have = [] if gen.eos_token_id is None else [gen.eos_token_id] if isinstance(gen.eos_token_id, int) else gen.eos_token_id
        gen.eos_token_id = list(dict.fromkeys([*have, *stops]))  # TRL cuts completions at these (the end of turn too)
    dedup_audio_tower(model, family)
    from trainer.train import lora_config

    peft_config = lora_config(cfg, family)
    if peft_config is None:
        from trainer.train import freeze_for_full_finetune

        freeze_for_full_finetune(model, family, cfg.train_projector)
    trainer = trainer_class()(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=rows,
        eval_dataset=eval_rows,
        processing_class=tok,  # not the processor: see AudioGRPOTrainer's docstring, point 3
        peft_config=peft_config,
        audio_collator=collator,
        skips=skips,
    )
    # the fixed prompts of rl.html: held-out ones when there are (how the policy answers what it never trained on)
    sampler = FixedPrompts(cfg, family, processor, collator, eval_rows if eval_rows is not None else rows, rewards)
    trainer.add_callback(sampler)
    return GRPORun(cfg, family, processor, trainer, collator, rows, rewards, skips, sampler, eval_rows)


def _stop_ids(family: Family, processor: Any, collator: AudioCollator) -> list[int]:
    from trainer.generation import Generator

    return Generator(family, processor, collator, 1, 1).stop_ids


def train_grpo(cfg: TrainConfig) -> dict[str, Any]:
    """Train, save the adapter and processor, write ``train_report.json``, ``loss_curve.png`` and ``rl.html``."""
    from trainer import grpo_preflight
    from trainer.report import write_report
    from trainer.rl_page import eval_history, history, write_rl_page
    from trainer.train import precision, resume_point

    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    checkpoint = resume_point(cfg)
    started = time.time()
    run = build(cfg)
    rank, world = dist.world()
    checks = grpo_preflight.before_training(run)  # stops here (exit 2) on a failing check
    result = run.trainer.train(resume_from_checkpoint=checkpoint)
    if run.eval_rows is not None and not any(
        e.get("step") == run.trainer.state.global_step and "eval_reward" in e for e in run.trainer.state.log_history
    ):
        run.trainer.evaluate()  # the held-out reward at the last step too
    run.sampler.sample(run.trainer.model, run.trainer.state.global_step, final=True)
    run.trainer.save_model(cfg.output_dir)
    state = run.trainer.state
    hist = history(state.log_history)
    rewards = [h["reward"] for h in hist if h.get("reward") is not None]
    covering = getattr(run.trainer, "covering_sampler", None)
    report: dict[str, Any] = {
        "task": "grpo",
        "model": cfg.model,
        "family": run.family.name,
        "data": cfg.data,
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0), 4),
        "resumed_from": checkpoint,
        "loss_history": [{"step": e["step"], "loss": e["loss"]} for e in state.log_history if "loss" in e],
        "final_loss": next((e["loss"] for e in reversed(state.log_history) if "loss" in e), None),
        "rewards": {"functions": [getattr(f, "__name__", str(f)) for f in run.rewards], "weights": cfg.reward_weight_list},
        "rl_history": hist,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "train_records": len(run.rows),
        "repeated_prompts_per_epoch": getattr(covering, "repeated", 0),
        "coverage": coverage(run.trainer, run.rows, cfg.num_generations),
        "num_generations": cfg.num_generations,
        "skipped": _skipped(run.skips),
        "samples": run.sampler.section(),
        "samples_from": "eval" if run.eval_rows is not None else "train",
        "runtime_s": round(time.time() - started, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "precision": precision(cfg),
        "processes": world,
        "config": cfg.to_dict(),
    }
    report.update(grpo_preflight.report_entries(run, checks))  # the hearing comparison after training too
    if run.eval_rows is not None:
        held = f"eval_holdout {cfg.eval_holdout:g} of the training records"
        source = f"eval split {cfg.eval_split!r}" if cfg.eval_split else held
        report["evaluation"] = {"records": len(run.eval_rows), "source": source, "history": eval_history(state.log_history)}
    if rank == 0:
        run.processor.save_pretrained(cfg.output_dir)
        write_report(report, Path(cfg.output_dir))
        write_rl_page(report, Path(cfg.output_dir), run.sampler.page_audio())
        print(f"[audiodata] GRPO report: {Path(cfg.output_dir) / 'rl.html'}", file=sys.stderr, flush=True)
    return report


def coverage(trainer: Any, rows: Any, num_generations: int) -> dict[str, Any]:
    """How often each prompt was trained on, over all ranks (completions / num_generations): every prompt at least
    once per epoch is the rule; ``missing`` names any that never were (ids, at most 50)."""
    import torch.distributed as td

    counts = Counter(trainer.completions_per_prompt)
    if td.is_available() and td.is_initialized() and td.get_world_size() > 1:
        parts: list[Any] = [None] * td.get_world_size()
        td.all_gather_object(parts, dict(counts))
        counts = Counter()
        for part in parts:
            counts.update(part)
    ids = [str(x) for x in rows["id"]] if "id" in rows.column_names else []
    groups = {k: v / num_generations for k, v in counts.items()}
    missing = [i for i in ids if i not in groups]
    return {
        "prompts": len(ids),
        "trained": sum(1 for i in ids if i in groups),
        "missing": missing[:50],
        "groups": sum(groups.values()),
        "most_times": max(groups.values(), default=0),
    }


def _skipped(skips: SkipLog) -> dict[str, Any]:
    entries = skips.read()
    keys = ("id", "source", "index", "reason")
    return {"records": len(entries), "examples": [{k: e.get(k) for k in keys} for e in entries[:50]]}
