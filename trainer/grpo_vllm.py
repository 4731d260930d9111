"""GRPO generation through vLLM with each prompt's audio (``use_vllm``; colocate mode, GPU).

Why this exists (TRL 1.16, ``trl/generation/vllm_generation.py``): ``VLLMGeneration.generate(prompts, images, ...)``
sends vLLM token ids and, for vision models, ``multi_modal_data={"image": ...}``; there is no way to hand it audio,
so a Qwen2-Audio policy would sample its completions deaf. :class:`trainer.grpo.AudioGRPOTrainer` overrides
``_generate_single_turn`` for ``use_vllm`` and calls :func:`generate_colocated` here, which does what TRL's colocate
branch does (one request per completion, ``n=1``; the tensor-parallel group's prompts gathered and its share kept;
sleep mode woken and put back; the top-1 log-probs kept for TRL's importance-sampling correction) with requests that
carry the audio:

``{"prompt_token_ids": ids, "multi_modal_data": {"audio": [(waveform, 16000), ...]}}``

``ids`` are the prompt exactly as the trainer renders it (:func:`trainer.grpo.encode_prompt`) with each run of audio
placeholder tokens collapsed to one, as the chat template writes it before the processor expands it: vLLM expands
each placeholder itself from the clip it is given (it would otherwise try to expand an already expanded run).
The waveforms are the decoded clips the trainer's own features come from (long clips split into the model's
windows, one placeholder each), at the family's sampling rate.

The audio placeholder token is kept out of sampling as in ``generate`` (``suppress_tokens`` there; vLLM's
``logit_bias`` here). TRL's vLLM *server* mode is refused: its server takes token ids and image features only.

Never run on a GPU in this project's CI (vLLM does not install without one): tests/training/test_grpo_vllm.py
checks, with a stand-in for ``vllm.LLM``, exactly what vLLM would receive and that its completions and log-probs
flow into the rewards and the loss; the README says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.config import ConfigError

#: vLLM clamps logit biases to [-100, 100]: -100 keeps a token out of sampling in practice (p ~ e^-100).
SUPPRESS_BIAS = -100.0


def compact_ids(ids: list[int], audio_id: int) -> list[int]:
    """``ids`` with every run of ``audio_id`` collapsed to one token (one placeholder per clip window)."""
    out: list[int] = []
    for t in ids:
        if t == audio_id and out and out[-1] == audio_id:
            continue
        out.append(t)
    return out


def request(ids: list[int], clips: list[np.ndarray], audio_id: int, rate: int) -> dict[str, Any]:
    """One vLLM prompt: the compact token ids and, when the prompt has audio, its clips as ``(waveform, rate)``."""
    row: dict[str, Any] = {"prompt_token_ids": compact_ids(ids, audio_id)}
    if clips:
        placeholders = row["prompt_token_ids"].count(audio_id)
        if placeholders != len(clips):
            raise ValueError(f"the prompt has {placeholders} audio placeholder runs for {len(clips)} clips")
        row["multi_modal_data"] = {"audio": [(np.asarray(c, dtype=np.float32), rate) for c in clips]}
    return row


def sampling_kwargs(vg: Any) -> dict[str, Any]:
    """The sampling settings TRL's colocate branch gives vLLM (from its ``VLLMGeneration``), one completion per
    request; the trainer's ``suppress_tokens`` (a ``generate`` setting vLLM does not know) become logit biases."""
    kw: dict[str, Any] = {
        "n": 1,
        "repetition_penalty": vg.repetition_penalty,
        "temperature": vg.temperature,
        "top_p": vg.top_p,
        "top_k": vg.top_k,
        "min_p": 0.0 if vg.min_p is None else vg.min_p,
        "max_tokens": vg.max_completion_length,
        "logprobs": vg.logprobs,
    }
    extra = dict(vg.generation_kwargs or {})
    suppress = list(extra.pop("suppress_tokens", None) or [])
    kw.update(extra)
    if suppress:
        kw["logit_bias"] = {**dict(kw.get("logit_bias") or {}), **dict.fromkeys(suppress, SUPPRESS_BIAS)}
    if getattr(vg, "structured_outputs_regex", None) is not None:
        kw["structured_outputs"] = {"regex": vg.structured_outputs_regex}
    return kw


def vllm_sampling_params(kw: dict[str, Any]) -> Any:
    """``vllm.SamplingParams`` from :func:`sampling_kwargs` (the tests replace this: vLLM is not installed there)."""
    from vllm import SamplingParams  # type: ignore[import-not-found]
    from vllm.sampling_params import StructuredOutputsParams  # type: ignore[import-not-found]

    kw = dict(kw)
    if isinstance(kw.get("structured_outputs"), dict):
        kw["structured_outputs"] = StructuredOutputsParams(**kw["structured_outputs"])
    return SamplingParams(**kw)


def generate_colocated(vg: Any, requests: list[dict[str, Any]]) -> tuple[list[list[int]], list[list[float | None]] | None]:
    """Completion ids and their sampled tokens' log-probs (None when vLLM gave none) for ``requests``, one each,
    through the colocated ``vg.llm`` (TRL's ``VLLMGeneration``), as TRL's colocate branch does it."""
    import torch.distributed as td
    from trl.generation.vllm_generation import extract_logprobs

    if vg.mode != "colocate":
        raise ConfigError("use_vllm with audio runs vLLM colocated (vllm_mode colocate): TRL's vLLM server takes no audio")
    if vg.enable_sleep_mode and getattr(vg, "_llm_weights_sleeping", False):
        vg.sync_weights()  # sleep level 2 dropped the weights: push the training weights again (as TRL does)
    params = vllm_sampling_params(sampling_kwargs(vg))
    everything, mine = requests, slice(0, len(requests))
    if vg.tensor_parallel_size > 1:  # every rank of the group generates the group's prompts; each keeps its own
        parts: list[Any] = [None] * vg.tensor_parallel_size
        td.all_gather_object(parts, requests, group=vg.tp_group)
        everything = [r for part in parts for r in part]
        at = td.get_rank(group=vg.tp_group) * len(requests)
        mine = slice(at, at + len(requests))
    if vg.enable_sleep_mode:
        vg.llm.wake_up(tags=["kv_cache"])
    outputs = vg.llm.generate(everything, sampling_params=params, use_tqdm=False)
    if vg.enable_sleep_mode:
        vg.llm.sleep(level=2)
        vg._llm_weights_sleeping = True
    completions = [list(o.token_ids) for out in outputs for o in out.outputs][mine]
    logprobs, _ = extract_logprobs(outputs)
    top1 = None if logprobs is None else [[lp[0] for lp in seq] for seq in logprobs[mine]]
    return completions, top1


def check_available(cuda: bool) -> None:
    """``use_vllm`` needs a CUDA GPU and the ``vllm`` package: one clear line (exit 2) before anything loads."""
    if not cuda:
        raise ConfigError("use_vllm needs a CUDA GPU (vLLM); without one GRPO generates with transformers (the default)")
    from trl.import_utils import is_vllm_available

    if not is_vllm_available():
        raise ConfigError("use_vllm needs the vllm package: pip install vllm (a version TRL 1.16 supports, see trl[vllm])")
