"""``audiodata train kto`` on the kto config convert writes: TRL's KTOTrainer with our audio collator.

Records are written here in TRL's unpaired preference format (``prompt``, ``completion``, boolean
``label``: ``trl/trainer/kto_trainer.py``, ``DataCollatorForUnpairedPreference``), with audio from sample_data/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch

import audiodata
from tests.conftest import SAMPLE, write_jsonl
from trainer.collators import AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import load_rows
from trainer.families import get_family
from trainer.tiny import make_tiny_model
from trainer.train import build, train

os.environ["HF_HUB_OFFLINE"] = "1"

CLIPS = ("clip07_16k.flac", "clip08_16k.flac", "clip09_16k.flac", "clip01_22k.wav")
ANSWERS = [
    ("She sells sea shells by the sea shore.", True),
    ("Something about the weather.", False),
    ("The meeting has been moved to Thursday.", True),
    ("I could not hear anything.", False),
    ("Please call me back tomorrow.", True),
    ("Bananas.", False),
    ("The train leaves at nine.", True),
    ("A dog barking.", False),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


@pytest.fixture(scope="module")
def kto_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kto")
    (root / "audio").mkdir()
    for name in CLIPS:
        shutil.copy(SAMPLE / "audio" / name, root / "audio" / name)
    records = [
        {
            "prompt": [{"role": "user", "content": "<audio>What does the speaker say?"}],
            "completion": [{"role": "assistant", "content": answer}],
            "label": label,
            "audios": [f"audio/{CLIPS[i % len(CLIPS)]}"],
        }
        for i, (answer, label) in enumerate(ANSWERS)
    ]
    write_jsonl(root / "kto.jsonl", records)
    result = audiodata.convert([str(root / "kto.jsonl")], root / "out", num_workers=1)
    assert (result.records_written, result.records_rejected) == (len(ANSWERS), 0)
    return root / "out"


def config(model: str, data: Path, out: Path, **kw: object) -> TrainConfig:
    base = {"task": "kto", "model": model, "data": str(data), "output_dir": str(out), "max_steps": 2,
            "per_device_batch_size": 4, "logging_steps": 1, "save_steps": 1000, "learning_rate": 1e-3}  # fmt: skip
    return TrainConfig.from_dict({**base, **kw})


def test_kto_examples_label_only_the_completion_and_batches_hold_both_labels(tiny: str, kto_data: Path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    collator = AudioCollator(get_family("qwen2-audio"), processor)
    rows = load_rows(TrainConfig(model=tiny, data=str(kto_data), task="kto"), "train")
    examples = [collator.encode_kto(rows[i]) for i in range(4)]
    batch = collator(examples)
    assert batch["label"].dtype == torch.bool and set(batch["label"].tolist()) == {True, False}
    assert batch["label"].tolist() == [rows[i]["label"] for i in range(4)]
    tok = processor.tokenizer
    n = len(examples)
    for i, e in enumerate(examples):
        p = len(e["input_ids"])
        mask = batch["completion_mask"][i]
        assert int(mask[:p].sum()) == 0  # the prompt (audio included) is never a target
        assert tok.decode(batch["input_ids"][i][mask.bool()]) == rows[i]["completion"][0]["content"] + "<|im_end|>"
        # KL rows, as TRL builds them: the same prompt with the previous row's completion (rotated by one)
        kl_mask = batch["KL_completion_mask"][i]
        assert torch.equal(batch["KL_input_ids"][i][:p], batch["input_ids"][i][:p])
        previous = rows[(i - 1) % n]["completion"][0]["content"]
        assert tok.decode(batch["KL_input_ids"][i][kl_mask.bool()]) == previous + "<|im_end|>"
    assert batch["input_features"].shape[0] == n  # one clip per prompt, shared by the KL forward
    assert set(batch) == {"input_ids", "attention_mask", "completion_mask", "KL_input_ids", "KL_attention_mask",
                          "KL_completion_mask", "label", "input_features", "feature_attention_mask"}  # fmt: skip


@pytest.mark.slow
def test_kto_trains_and_reports_rewards_and_labels(tiny: str, kto_data: Path, tmp_path: Path):
    run = build(config(tiny, kto_data, tmp_path / "probe", desirable_weight=1.0, undesirable_weight=1.2))
    from trl import KTOTrainer

    assert isinstance(run.trainer, KTOTrainer)
    assert run.trainer.args.desirable_weight == 1.0 and run.trainer.args.undesirable_weight == 1.2
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if "lora_B" in n}
    run.trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in run.trainer.model.named_parameters() if "lora_B" in n)
    report = train(config(tiny, kto_data, tmp_path / "run", max_steps=3))
    assert report["task"] == "kto" and report["steps"] == 3
    assert report["kto_labels"] == {"desirable": 4, "undesirable": 4}
    assert report["examples_seen"] > 0 and report["audio_hours_seen"] > 0
    hist = report["preference_history"]
    assert [h["step"] for h in hist] == [1, 2, 3]
    assert all("kl" in h and "rewards/chosen" in h and "rewards/rejected" in h for h in hist)
    assert report["final_preference"] == hist[-1]
    saved = json.loads((tmp_path / "run" / "train_report.json").read_text())
    assert saved["preference_history"] == hist
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_kto_config_is_checked(tiny: str, kto_data: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="per_device_batch_size >= 2"):
        config(tiny, kto_data, tmp_path, per_device_batch_size=1)
    with pytest.raises(ConfigError, match="loss_type for kto must be one of kto, apo_zero_unpaired"):
        config(tiny, kto_data, tmp_path, loss_type="sigmoid")
    with pytest.raises(ConfigError, match="DPO settings"):
        config(tiny, kto_data, tmp_path, rpo_alpha=0.5)
    with pytest.raises(ConfigError, match="must be > 0"):
        config(tiny, kto_data, tmp_path, undesirable_weight=0)
    apo = config(tiny, kto_data, tmp_path, loss_type="apo_zero_unpaired", per_device_batch_size=1)  # no KL term: 1 is fine
    assert apo.kto_loss_type == "apo_zero_unpaired"
    sft = TrainConfig.from_dict({"task": "kto", "model": tiny, "data": str(_sft_only(tmp_path))})  # one config: "default"
    with pytest.raises(ConfigError, match=r"not an audiodata kto dataset \(missing columns completion, label\)"):
        load_rows(sft, "train")


@pytest.mark.slow
def test_cli_train_kto(tiny: str, kto_data: Path, tmp_path: Path, capsys):
    from audiodata.cli.main import main

    args = ["train", "kto", "--model", tiny, "--data", str(kto_data), "--output-dir", str(tmp_path / "run"), "--max-steps", "1"]
    assert main([*args, "--per-device-batch-size", "2", "--undesirable-weight", "1.5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "kto" and report["steps"] == 1 and report["config"]["undesirable_weight"] == 1.5


def _sft_only(tmp_path: Path) -> Path:
    out = tmp_path / "sft"
    audiodata.convert([str(SAMPLE / "sharegpt_sft.json")], out, num_workers=1)
    return out
