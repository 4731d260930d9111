"""GRPO's pre-flight (trainer/grpo_preflight.py): ``train grpo --dry-run`` runs every check and trains nothing, a
prompt too long for the model fails before anything is generated (exit 2), a clip that does not decode is named,
and the pieces (which prompts are checked, the hearing batch of prompt + reference answer) are right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.training.rl_fixture import CLIPS, asr_row, mcq_row, write_rl_dataset
from trainer.preflight import GRPO_CHECKS

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.tiny import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


def flags(tiny: str, data: Path, out: Path, *extra: str, completion: int = 4) -> list[str]:
    return ["train", "grpo", "--model", tiny, "--data", str(data), "--output-dir", str(out), "--per-device-batch-size", "8",
            "--num-generations", "4", "--max-completion-length", str(completion), *extra]  # fmt: skip


def test_the_costliest_prompts_are_checked(tmp_path: Path):
    from trainer.grpo_preflight import pick_prompts

    rows = [mcq_row(0, None), asr_row(1, CLIPS[0]), mcq_row(2, CLIPS[1]), mcq_row(3, None), asr_row(4, CLIPS[2])]
    import datasets

    shard = next((write_rl_dataset(tmp_path / "d", rows) / "data" / "rl").glob("*.parquet"))
    ds = datasets.Dataset.from_parquet(str(shard))
    picked = pick_prompts(ds, 3)
    assert len(picked) == 3 and set(picked) <= {0, 1, 2, 3, 4}
    assert 2 in picked  # the mcq on the longest clip: the most text and the most audio
    assert pick_prompts(ds.select([]), 3) == []


@pytest.mark.slow
def test_dry_run_checks_everything_and_trains_nothing(tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from trainer.cli import main

    rows = [mcq_row(0, CLIPS[0]), asr_row(1, CLIPS[1]), mcq_row(2, None), mcq_row(3, "corrupt.wav")]
    data = write_rl_dataset(tmp_path / "data", rows)
    out = tmp_path / "out"
    assert main([*flags(tiny, data, out, "--dry-run", "--json")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "grpo" and doc["dry_run"] and doc["exit_code"] == 0
    checks = {c["name"]: c for c in doc["checks"]}
    assert list(checks) == list(GRPO_CHECKS)
    assert checks["prompts"]["status"] == "warn" and "record 'mcq-003'" in checks["prompts"]["detail"]
    assert "trained on as silence" in checks["prompts"]["detail"]
    tokens = checks["audio_tokens"]["data"]["records"]
    assert tokens and all(r["text"] == r["features"] == r["lint"] > 0 for r in tokens)
    assert checks["memory"]["status"] == "ok" and checks["memory"]["data"]["micro_batch"]["clips"] == 8
    rollout = checks["rollout"]
    assert rollout["status"] in ("ok", "warn") and rollout["data"]["completions"] == 8
    assert set(rollout["data"]["rewards"]) == {"answer"} and rollout["data"]["non_finite"] == []
    assert checks["hearing"]["status"] == "ok" and checks["hearing"]["data"]["kl_zeroed"] > 0.001
    assert json.loads((out / "preflight.json").read_text())["checks"] == doc["checks"]
    assert not (out / "adapter_config.json").exists() and not list(out.glob("checkpoint-*"))
    assert not (out / "skipped.jsonl").exists() or "mcq-003" not in (out / "skipped.jsonl").read_text()
    from trainer.config import TrainConfig
    from trainer.train import train

    cfg = {"task": "grpo", "model": tiny, "data": str(data), "output_dir": str(tmp_path / "api"), "dry_run": True,
           "per_device_batch_size": 8, "num_generations": 4, "max_completion_length": 4}  # fmt: skip
    api = train(TrainConfig.from_dict(cfg))  # the Python API: the checks too, never a training run
    assert api["dry_run"] and [c["name"] for c in api["checks"]] == list(GRPO_CHECKS)
    assert not (tmp_path / "api" / "adapter_config.json").exists()


@pytest.mark.slow
def test_a_prompt_too_long_for_the_model_fails_before_generating(tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from trainer.cli import main

    data = write_rl_dataset(tmp_path / "data", [mcq_row(0, CLIPS[0]), asr_row(1, CLIPS[1])])
    assert main(flags(tiny, data, tmp_path / "out", "--dry-run", "--json", completion=9000)) == 2
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["prompts"]["status"] == "fail" and "exceed the model's 8192 positions" in checks["prompts"]["detail"]
    assert all(checks[n]["status"] == "skip" for n in ("audio_tokens", "memory", "rollout", "hearing"))


def test_hearing_batch_scores_the_reference_answer_only():
    """The batch trainer/hearing.py measures: the prompt as GRPO renders it, then the answer (an MCQ's letter and
    text) and the end of turn as the only labelled tokens."""
    import torch

    from trainer.data import BATCH_META

    class Tok:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [ord(c) for c in text]

    class Run:
        processor = type("P", (), {"tokenizer": Tok()})()
        family = collator = None

    import trainer.grpo as grpo
    import trainer.grpo_preflight as gp

    prompt = grpo.Prompt([1, 2, 3], torch.ones(1, 4, 6), torch.ones(1, 6, dtype=torch.long))
    orig = (grpo.encode_prompt, grpo._stop_ids)
    grpo.encode_prompt, grpo._stop_ids = (lambda c, r: prompt), (lambda f, p, c: [99, 98])
    try:
        batch = gp.answer_batch(Run(), {"id": "q", "answer": "a woman", "choices": ["a man", "a woman"]})
        text = gp.answer_batch(Run(), {"id": "t", "answer": "hi", "choices": None})
    finally:
        grpo.encode_prompt, grpo._stop_ids = orig
    reply = [ord(c) for c in "B. a woman"] + [99]
    assert batch["input_ids"].tolist() == [[1, 2, 3, *reply]]
    assert batch["labels"].tolist() == [[-100, -100, -100, *reply]]
    assert batch["input_features"].shape == (1, 4, 6) and batch[BATCH_META]["ids"] == ["q"]
    assert text["labels"].tolist()[0][3:] == [ord("h"), ord("i"), 99]
