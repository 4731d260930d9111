"""GRPO generation through vLLM with the audio (trainer/grpo_vllm.py, ``use_vllm``). vLLM does not install without a
GPU, so a stand-in ``LLM`` records exactly what vLLM would receive: one request per completion, the prompt's token
ids with one placeholder per clip, and the clips themselves as ``multi_modal_data={"audio": [(waveform, rate)]}``;
its completions and log-probs must then flow into the rewards and the loss as TRL's own vLLM path makes them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from trainer import grpo_vllm
from trainer.config import ConfigError, TrainConfig

pytest.importorskip("trl")

AUDIO = 9  # a stand-in audio placeholder id for the pure-function tests


class FakeLLM:
    """``vllm.LLM``'s ``generate`` as TRL calls it: records the requests; answers each with ``reply`` token ids and a
    log-prob per token (``rank`` as vLLM's ``Logprob`` has it)."""

    def __init__(self, reply: list[int]) -> None:
        self.reply = reply
        self.calls: list[dict[str, Any]] = []
        self.slept: list[str] = []

    def generate(self, requests: list[dict[str, Any]], sampling_params: Any = None, use_tqdm: bool = True) -> list[Any]:
        self.calls.append({"requests": requests, "params": sampling_params, "use_tqdm": use_tqdm})
        lp = [{t: SimpleNamespace(logprob=-0.25, rank=1)} for t in self.reply]
        out = [SimpleNamespace(token_ids=list(self.reply), logprobs=lp)]
        return [SimpleNamespace(prompt_token_ids=r["prompt_token_ids"], outputs=out) for r in requests]

    def wake_up(self, tags: list[str]) -> None:
        self.slept.append(f"wake {tags}")

    def sleep(self, level: int) -> None:
        self.slept.append(f"sleep {level}")


def fake_generation(llm: FakeLLM, **kw: Any) -> SimpleNamespace:
    """TRL's ``VLLMGeneration`` as far as the colocate branch reads it."""
    base = {
        "mode": "colocate", "llm": llm, "enable_sleep_mode": False, "tensor_parallel_size": 1, "repetition_penalty": 1.0,
        "temperature": 0.9, "top_p": 1.0, "top_k": 0, "min_p": None, "max_completion_length": 7, "logprobs": 0,
        "generation_kwargs": {"suppress_tokens": [AUDIO]}, "structured_outputs_regex": None, "synced": 0,
    }  # fmt: skip
    vg = SimpleNamespace(**{**base, **kw})
    vg.sync_weights = lambda: setattr(vg, "synced", vg.synced + 1)
    return vg


@pytest.fixture
def params(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``vllm.SamplingParams`` replaced by the keyword dict it would be built from (recorded)."""
    seen: list[dict[str, Any]] = []

    def build(kw: dict[str, Any]) -> dict[str, Any]:
        seen.append(kw)
        return kw

    monkeypatch.setattr(grpo_vllm, "vllm_sampling_params", build)
    return seen


# -- fast: the pieces ----------------------------------------------------------------------------------------------


def test_each_run_of_placeholders_becomes_one_for_vllm_to_expand():
    ids = [1, 2, AUDIO, AUDIO, AUDIO, 3, 4, AUDIO, AUDIO, 5, AUDIO]
    assert grpo_vllm.compact_ids(ids, AUDIO) == [1, 2, AUDIO, 3, 4, AUDIO, 5, AUDIO]
    assert grpo_vllm.compact_ids([1, 2], AUDIO) == [1, 2]
    clips = [np.ones(160, dtype=np.float64), np.zeros(80, dtype=np.float32)]
    req = grpo_vllm.request([7, AUDIO, AUDIO, 8, AUDIO, 6], clips, AUDIO, 16000)
    assert req["prompt_token_ids"] == [7, AUDIO, 8, AUDIO, 6]
    (first, r1), (second, r2) = req["multi_modal_data"]["audio"]
    assert r1 == r2 == 16000 and first.dtype == np.float32 and first.shape == (160,) and second.shape == (80,)
    assert grpo_vllm.request([7, 8], [], AUDIO, 16000) == {"prompt_token_ids": [7, 8]}  # text-only: no audio key
    with pytest.raises(ValueError, match="1 audio placeholder runs for 2 clips"):
        grpo_vllm.request([7, AUDIO, AUDIO], clips, AUDIO, 16000)


def test_sampling_settings_are_trls_with_the_placeholder_kept_out():
    vg = fake_generation(FakeLLM([]), generation_kwargs={"suppress_tokens": [AUDIO], "seed": 3})
    kw = grpo_vllm.sampling_kwargs(vg)
    assert kw == {
        "n": 1, "repetition_penalty": 1.0, "temperature": 0.9, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "max_tokens": 7,
        "logprobs": 0, "seed": 3, "logit_bias": {AUDIO: -100.0},
    }  # fmt: skip
    vg.structured_outputs_regex = "[A-D]"
    assert grpo_vllm.sampling_kwargs(vg)["structured_outputs"] == {"regex": "[A-D]"}


def test_colocated_generation_hands_vllm_the_audio_and_keeps_its_log_probs(params: list[dict[str, Any]]):
    llm = FakeLLM([40, 41, 2])
    vg = fake_generation(llm, enable_sleep_mode=True, _llm_weights_sleeping=True)
    clip = np.linspace(-1, 1, 320, dtype=np.float32)
    requests = [grpo_vllm.request([1, AUDIO, AUDIO, 3], [clip], AUDIO, 16000), grpo_vllm.request([1, 3], [], AUDIO, 16000)]
    completions, logprobs = grpo_vllm.generate_colocated(vg, requests)
    assert llm.calls[0]["requests"] is requests and llm.calls[0]["params"] == params[0] and params[0]["n"] == 1
    assert completions == [[40, 41, 2], [40, 41, 2]] and logprobs == [[-0.25] * 3] * 2
    assert vg.synced == 1 and llm.slept == ["wake ['kv_cache']", "sleep 2"]  # weights pushed back after sleep level 2
    audio, rate = llm.calls[0]["requests"][0]["multi_modal_data"]["audio"][0]
    assert rate == 16000 and np.array_equal(audio, clip)
    with pytest.raises(ConfigError, match="colocate"):
        grpo_vllm.generate_colocated(fake_generation(llm, mode="server"), requests)


def test_use_vllm_is_checked_before_anything_loads(tmp_path: Path):
    from tests.training.rl_fixture import mcq_row, write_rl_dataset

    data = write_rl_dataset(tmp_path / "rl", [mcq_row(0, "clip01_22k.wav")])
    cfg = TrainConfig.from_dict({"task": "grpo", "model": "m", "data": str(data), "use_vllm": True})
    assert cfg.use_vllm and cfg.vllm_gpu_memory_utilization == 0.3 and cfg.vllm_tensor_parallel_size == 1
    with pytest.raises(ConfigError, match="use_vllm is a GRPO setting"):
        TrainConfig.from_dict({**cfg.to_dict(), "task": "sft"})
    with pytest.raises(ConfigError, match="vllm_gpu_memory_utilization"):
        TrainConfig.from_dict({**cfg.to_dict(), "vllm_gpu_memory_utilization": 1.5})
    with pytest.raises(ConfigError, match="use_vllm needs a CUDA GPU"):
        grpo_vllm.check_available(False)
    from trl.import_utils import is_vllm_available

    if not is_vllm_available():
        with pytest.raises(ConfigError, match="pip install vllm"):
            grpo_vllm.check_available(True)


def test_cli_use_vllm_without_a_gpu_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import torch

    from tests.training.rl_fixture import mcq_row, write_rl_dataset
    from trainer.cli import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: use_vllm goes on to need the vllm package")
    data = write_rl_dataset(tmp_path / "rl", [mcq_row(0, "clip01_22k.wav")])
    args = ["train", "grpo", "--model", str(tmp_path / "none"), "--family", "qwen2-audio", "--data", str(data),
            "--output-dir", str(tmp_path / "out"), "--use-vllm"]  # fmt: skip
    assert main(args) == 2
    assert "use_vllm needs a CUDA GPU" in capsys.readouterr().err


# -- slow: the tiny model, one training step with vLLM standing in ---------------------------------------------------


@pytest.mark.slow
def test_a_grpo_step_generates_through_vllm_with_each_prompts_clips(tmp_path: Path, params: list[dict[str, Any]]):
    from tests.training.rl_fixture import CLIPS, mcq_row, write_rl_dataset
    from trainer import grpo
    from trainer.tiny import make_tiny_model

    tiny = str(make_tiny_model(tmp_path / "model", family="qwen2-audio"))
    data = write_rl_dataset(tmp_path / "data", [mcq_row(0, CLIPS[0]), mcq_row(1, CLIPS[2]), mcq_row(2, None)])
    cfg = TrainConfig.from_dict({
        "task": "grpo", "model": tiny, "data": str(data), "output_dir": str(tmp_path / "out"), "logging_steps": 1,
        "save_steps": 1000, "per_device_batch_size": 8, "num_generations": 4, "max_completion_length": 4,
        "rl_samples": 0, "max_steps": 1, "reward_funcs": "mcq_letter", "seed": 1,
    })  # fmt: skip
    run = grpo.build(cfg)
    t, tok = run.trainer, run.processor.tokenizer
    reply = [*tok.encode("B", add_special_tokens=False), tok.convert_tokens_to_ids("<|im_end|>")]
    llm = FakeLLM(reply)
    t.use_vllm, t.vllm_generation, t._last_loaded_step = True, fake_generation(llm, max_completion_length=4), -1
    t.vllm_generation.generation_kwargs = t.args.generation_kwargs
    t.train()

    (call,) = llm.calls  # one generation batch: 2 prompts x 4 completions, one request each (n=1)
    requests = call["requests"]
    assert len(requests) == 8 and call["params"]["n"] == 1 and call["use_tqdm"] is False
    audio_id = run.collator.audio_id
    assert call["params"]["logit_bias"] == {audio_id: -100.0}  # the placeholder is never sampled
    assert t.vllm_generation.synced == 1  # the policy's weights pushed before generating
    rows = {r["id"]: r for r in run.rows}
    expected = {k: grpo.encode_prompt(run.collator, r) for k, r in rows.items()}
    clips = {k: run.collator.audios(r)[0] for k, r in rows.items()}
    heard: list[str] = []
    for req in requests:  # each request is one row's prompt, compact, with that row's own clip
        if "multi_modal_data" not in req:  # the text-only question
            assert req["prompt_token_ids"] == expected["mcq-002"].ids and audio_id not in req["prompt_token_ids"]
            heard.append("mcq-002")
            continue
        ((wave, rate),) = req["multi_modal_data"]["audio"]
        (row_id,) = [k for k, c in clips.items() if c and len(c[0]) == len(wave) and np.array_equal(c[0], wave)]
        assert rate == 16000 and req["prompt_token_ids"] == grpo_vllm.compact_ids(expected[row_id].ids, audio_id)
        assert req["prompt_token_ids"].count(audio_id) == 1 and expected[row_id].ids.count(audio_id) > 1
        heard.append(row_id)
    assert sorted(Counter(heard).values()) == [4, 4]  # two prompts of the step, each num_generations times
    logs = t._logs  # vLLM's completions are what got rewarded: every one answered B
    assert logs["rewards"]["mcq_letter"] and all(r == 1.0 for r in logs["rewards"]["mcq_letter"])
    assert all(c.strip() == "B" for c in (x[0]["content"] if isinstance(x, list) else x for x in logs["completion"]))
    assert t.state.global_step == 1
