"""DPO loss settings as TrainConfig fields, held to TRL 1.16's own lists, and TRL's metrics in the report."""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import fields
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch

from trainer.config import DPO_LOSS_TYPES, KTO_LOSS_TYPES, SMOOTHED_LOSSES, ConfigError, TrainConfig
from trainer.tiny import make_tiny_model
from trainer.train import build, train

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


def dpo(model: str, data: Path, out: Path, **kw: object) -> TrainConfig:
    base = {"task": "dpo", "model": model, "data": str(data), "output_dir": str(out), "max_steps": 2,
            "per_device_batch_size": 2, "logging_steps": 1, "save_steps": 1000, "learning_rate": 1e-3}  # fmt: skip
    return TrainConfig.from_dict({**base, **kw})


def test_the_loss_lists_are_trls():
    """DPO_LOSS_TYPES is what the installed TRL documents for DPOConfig.loss_type and what DPOTrainer accepts."""
    from trl import DPOConfig, KTOConfig
    from trl.trainer import dpo_trainer

    documented = next(f for f in fields(DPOConfig) if f.name == "loss_type").metadata["help"]
    assert tuple(re.findall(r"`'(\w+)'`", documented)) == DPO_LOSS_TYPES
    accepted = re.search(r"Should be one of \[(.*?)\]", inspect.getsource(dpo_trainer), re.S)
    assert accepted and tuple(re.findall(r"'(\w+)'", accepted.group(1))) == DPO_LOSS_TYPES
    smoothed = re.findall(r"self\.label_smoothing", inspect.getsource(dpo_trainer.DPOTrainer._compute_loss))
    assert len(smoothed) >= len(SMOOTHED_LOSSES)
    assert tuple(next(f for f in fields(KTOConfig) if f.name == "loss_type").metadata["choices"]) == KTO_LOSS_TYPES


def test_loss_settings_are_validated(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    with pytest.raises(ConfigError, match="loss_type cosine is not a TRL DPO loss; choose from sigmoid, hinge, ipo"):
        dpo(tiny, out, tmp_path, loss_type="cosine")
    with pytest.raises(ConfigError, match="exo_pair needs label_smoothing > 0"):
        dpo(tiny, out, tmp_path, loss_type="exo_pair")
    with pytest.raises(ConfigError, match="read only by the robust, exo_pair, aot, aot_unpaired losses, not ipo"):
        dpo(tiny, out, tmp_path, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ConfigError, match=r"label_smoothing must be in \[0, 0.5\)"):
        dpo(tiny, out, tmp_path, loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ConfigError, match="rpo_alpha adds the sft loss; loss_type already has it"):
        dpo(tiny, out, tmp_path, loss_type="sigmoid,sft", rpo_alpha=1.0)
    with pytest.raises(ConfigError, match="loss_weights has 1 values for 2 loss types"):
        dpo(tiny, out, tmp_path, loss_type="sigmoid,bco_pair", loss_weights="0.5")
    with pytest.raises(ConfigError, match="preference-loss settings, for dpo and kto only"):
        TrainConfig.from_dict({"model": tiny, "data": str(out), "loss_type": "ipo"})
    with pytest.raises(ConfigError, match="beta must be > 0"):
        dpo(tiny, out, tmp_path, beta=0)
    rpo = dpo(tiny, out, tmp_path, rpo_alpha=0.5)
    assert (rpo.dpo_loss_types, rpo.dpo_loss_weights) == (["sigmoid", "sft"], [1.0, 0.5])
    mpo = dpo(tiny, out, tmp_path, loss_type="sigmoid, bco_pair,sft", loss_weights="0.8,0.2,1")
    assert (mpo.dpo_loss_types, mpo.dpo_loss_weights) == (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0])
    assert dpo(tiny, out, tmp_path).dpo_loss_weights is None  # TRL's default: 1.0 each
    listed = dpo(tiny, out, tmp_path, loss_type=["sigmoid", "sft"], loss_weights=[1, 0.3])  # YAML lists
    assert (listed.dpo_loss_types, listed.dpo_loss_weights) == (["sigmoid", "sft"], [1.0, 0.3])
    helps = TrainConfig.field_help()
    assert all(helps.get(f) for f in ("loss_type", "loss_weights", "label_smoothing", "rpo_alpha", "beta"))


@pytest.mark.slow
def test_every_trl_dpo_loss_runs_on_an_audio_batch(tiny: str, sample_out, tmp_path: Path):
    """One trainer, every loss TRL accepts, on the same audio batch: TRL computes each and it is finite."""
    out, _ = sample_out
    run = build(dpo(tiny, out, tmp_path / "probe", loss_type="robust", label_smoothing=0.1, rpo_alpha=0.5, beta=0.2))
    trainer = run.trainer
    assert (trainer.loss_types, trainer.loss_weights) == (["robust", "sft"], [1.0, 0.5])
    assert (trainer.beta, trainer.label_smoothing) == (0.2, 0.1)
    rows = trainer.train_dataset.with_format(None)
    batch = run.collator([run.collator.encode_dpo(rows[i]) for i in range(2)])
    trainer.model.train()
    losses = {}
    for loss_type in DPO_LOSS_TYPES:
        trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
        trainer.label_smoothing = 0.1 if loss_type in SMOOTHED_LOSSES else 0.0
        losses[loss_type] = float(trainer.compute_loss(trainer.model, dict(batch)))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert losses["sigmoid"] == pytest.approx(torch.nn.functional.softplus(torch.tensor(0.0)).item(), abs=1e-4)  # policy == ref


@pytest.mark.slow
def test_dpo_report_and_plot_carry_rewards_margins_accuracies(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    report = train(dpo(tiny, out, tmp_path / "run", max_steps=3, loss_type="ipo", beta=0.5, rpo_alpha=0.2))
    hist = report["preference_history"]
    assert [h["step"] for h in hist] == [1, 2, 3]
    for h in hist:
        assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(h)
        assert h["rewards/margins"] == pytest.approx(h["rewards/chosen"] - h["rewards/rejected"], abs=1e-5)
        assert 0.0 <= h["rewards/accuracies"] <= 1.0
    assert report["final_preference"] == hist[-1]
    assert report["config"]["loss_type"] == "ipo" and report["config"]["rpo_alpha"] == 0.2
    from PIL import Image

    tall = Image.open(tmp_path / "run" / "loss_curve.png").size
    sft = train(TrainConfig.from_dict({"model": tiny, "data": str(out), "output_dir": str(tmp_path / "sft"), "max_steps": 1,
                                       "per_device_batch_size": 2, "save_steps": 1000}))  # fmt: skip
    assert "preference_history" not in sft
    flat = Image.open(tmp_path / "sft" / "loss_curve.png").size
    assert tall[0] == flat[0] and tall[1] > 1.5 * flat[1]  # the second panel
