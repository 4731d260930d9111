"""The trainer on CPU, offline: a tiny random Qwen2-Audio, shards converted from sample_data/."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("trl")

import pyarrow.parquet as pq
import torch

from audiodata.dataset import DatasetError
from trainer.collators import IGNORE, AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import load_rows
from trainer.families import get_family
from trainer.sampler import LengthGroupedBatchSampler
from trainer.tiny import make_tiny_model
from trainer.train import build, train

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


def config(model: str, data: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "model": model,
        "data": str(data),
        "output_dir": str(out),
        "max_steps": 4,
        "per_device_batch_size": 4,
        "logging_steps": 1,
        "save_steps": 1000,
        "learning_rate": 1e-3,
    }
    return TrainConfig.from_dict({**base, **kw})


def test_sft_loss_decreases_on_a_tiny_overfit_set(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    small = subset(out, tmp_path / "small", "sft", keep=4)
    cfg = config(tiny, small, tmp_path / "run", max_steps=30, learning_rate=5e-2, warmup_ratio=0.0, lora_r=16, lora_alpha=32)
    report = train(cfg)
    losses = [h["loss"] for h in report["loss_history"]]
    assert len(losses) == 30 and report["steps"] == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    saved = json.loads((tmp_path / "run" / "train_report.json").read_text())
    assert saved["loss_history"][0] == {"step": 1, "loss": losses[0]}
    assert saved["examples_seen"] == 30 * 4 and saved["tokens_seen"] > 0 and saved["audio_hours_seen"] > 0
    assert 0 < saved["padding_efficiency"]["actual"] <= 1
    assert (tmp_path / "run" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_labels_cover_exactly_the_assistant_tokens(tiny: str, sample_out):
    out, _ = sample_out
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    collator = AudioCollator(get_family("qwen2-audio"), processor)
    rows = load_rows(TrainConfig(model=tiny, data=str(out)), "train")
    tok = processor.tokenizer
    for row in rows.select(range(6)):
        enc = collator.encode_sft(row)
        ids, labels = enc["input_ids"], enc["labels"]
        learned = tok.decode(ids[labels != IGNORE])
        want = "".join(m["content"] + "<|im_end|>" for m in row["messages"] if m["role"] == "assistant")
        assert learned == want
        audio_tokens = int((ids == collator.audio_id).sum())
        assert audio_tokens > 0 and not bool((labels[ids == collator.audio_id] != IGNORE).any())
        assert enc["input_features"].shape[0] == len(row["audios"])  # one feature block per clip
        batch = collator([enc, collator.encode_sft(rows[10])])
        assert set(batch) == {"input_ids", "attention_mask", "labels", "input_features", "feature_attention_mask"}


def test_dpo_batch_pairs_chosen_and_rejected_with_the_same_audio(tiny: str, sample_out):
    out, _ = sample_out
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    collator = AudioCollator(get_family("qwen2-audio"), processor)
    rows = load_rows(TrainConfig(model=tiny, data=str(out), task="dpo"), "train")
    examples = [collator.encode_dpo(rows[i]) for i in range(3)]
    batch = collator(examples)
    n = len(examples)
    assert batch["input_ids"].shape[0] == 2 * n
    feats, masks = batch["input_features"], batch["feature_attention_mask"]
    half = feats.shape[0] // 2
    assert torch.equal(feats[:half], feats[half:]) and torch.equal(masks[:half], masks[half:])
    tok = processor.tokenizer
    for i, e in enumerate(examples):
        p = len(e["input_ids"])
        chosen, rejected = batch["input_ids"][i], batch["input_ids"][n + i]
        assert torch.equal(chosen[:p], rejected[:p])  # the same prompt, audio tokens included
        assert int(batch["completion_mask"][i][:p].sum()) == 0 and int(batch["completion_mask"][i][p:].sum()) > 0
        row = rows[i]
        got = tok.decode(chosen[batch["completion_mask"][i].bool()])
        assert got == row["chosen"][0]["content"] + "<|im_end|>"
        assert tok.decode(rejected[batch["completion_mask"][n + i].bool()]) == row["rejected"][0]["content"] + "<|im_end|>"


def test_dpo_trains_and_lora_touches_only_the_language_model(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    run = build(config(tiny, out, tmp_path / "dpo", task="dpo", max_steps=2, per_device_batch_size=2))
    names = [n for n, p in run.trainer.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "language_model" in n for n in names)
    assert not any("audio_tower" in n or "projector" in n for n in names)
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if "lora_B" in n}
    run.trainer.train()
    moved = [n for n, p in run.trainer.model.named_parameters() if "lora_B" in n and not torch.equal(p, before[n])]
    assert moved  # the adapter learned something
    assert run.trainer.state.global_step == 2


def test_adapter_save_and_reload_gives_the_same_outputs(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    from peft import PeftModel
    from transformers import AutoModelForMultimodalLM

    report = train(config(tiny, out, tmp_path / "run", max_steps=3))
    assert report["steps"] == 3
    run = build(config(tiny, out, tmp_path / "probe", max_steps=1))
    batch = run.collator([run.collator.encode_sft(run.trainer.train_dataset.with_format(None)[i]) for i in range(2)])
    batch.pop("labels")
    base = AutoModelForMultimodalLM.from_pretrained(tiny)
    trained = PeftModel.from_pretrained(base, str(tmp_path / "run")).eval()
    fresh = PeftModel.from_pretrained(AutoModelForMultimodalLM.from_pretrained(tiny), str(tmp_path / "run")).eval()
    with torch.no_grad():
        a, b = trained(**batch).logits, fresh(**batch).logits
        plain = AutoModelForMultimodalLM.from_pretrained(tiny).eval()(**batch).logits
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, plain, atol=1e-6)  # the adapter changes the outputs


def test_resume_continues_the_step_count(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    first = train(config(tiny, out, tmp_path / "run", max_steps=4, save_steps=2))
    assert first["steps"] == 4 and (tmp_path / "run" / "checkpoint-4").is_dir()
    second = train(config(tiny, out, tmp_path / "run", max_steps=6, save_steps=2, resume="latest"))
    assert second["resumed_from"].endswith("checkpoint-4")
    assert second["steps"] == 6
    assert [h["step"] for h in second["loss_history"]] == [1, 2, 3, 4, 5, 6]


def test_corrupt_audio_is_skipped_and_counted(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    broken = subset(out, tmp_path / "broken", "sft", keep=6, corrupt=(2,))
    report = train(config(tiny, broken, tmp_path / "run", max_steps=3, per_device_batch_size=2))
    assert report["steps"] == 3
    assert report["skipped"]["records"] == 1 and report["skipped"]["count"] >= 1
    assert "audio" in report["skipped"]["examples"][0]["reason"]
    lines = (tmp_path / "run" / "skipped.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["id"] == report["skipped"]["examples"][0]["id"]


def test_config_is_validated_up_front(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    with pytest.raises(ConfigError, match=r"unknown key.*lora_rank.*did you mean lora_r"):
        TrainConfig.from_dict({"model": tiny, "data": str(out), "lora_rank": 8})
    (tmp_path / "raw").mkdir()
    with pytest.raises(DatasetError, match="not a converted dataset"):  # the dataset model's error: exit 2 too
        TrainConfig.from_dict({"model": tiny, "data": str(tmp_path / "raw")})
    with pytest.raises(ConfigError, match="unsupported model family 'minicpm-o'"):
        TrainConfig.from_dict({"model": tiny, "data": str(out), "family": "minicpm-o"})
    with pytest.raises(ConfigError, match="no split 'validation'"):
        TrainConfig.from_dict({"model": tiny, "data": str(out), "eval_split": "validation"})
    with pytest.raises(ConfigError, match="lora_r must be"):
        TrainConfig.from_dict({"model": tiny, "data": str(out), "lora_r": "many"})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(f"model: {tiny}\ndata: {out}\nlora_r: 4\nmax_steps: 2\n")
    cfg = TrainConfig.from_yaml(yaml_file, overrides={"lora_r": 16})
    assert cfg.lora_r == 16 and cfg.max_steps == 2


def test_cli_train_and_merge(tiny: str, sample_out, tmp_path: Path, capsys):
    from audiodata.cli.main import main

    out, _ = sample_out
    run_dir = tmp_path / "run"
    args = ["train", "sft", "--model", tiny, "--data", str(out), "--output-dir", str(run_dir), "--max-steps", "2"]
    assert main([*args, "--per-device-batch-size", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and report["family"] == "qwen2-audio"
    assert main(["train", "sft", "--model", tiny, "--data", str(tmp_path)]) == 2  # not a converted dataset
    assert main(["train", "merge", str(run_dir), "-o", str(tmp_path / "merged")]) == 0
    from transformers import AutoModelForMultimodalLM

    merged = AutoModelForMultimodalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_sampler_groups_by_length_and_caps_clips():
    lengths = [10, 500, 12, 480, 11, 520, 9, 490] * 8
    clips = [1, 3, 1, 3, 1, 3, 1, 3] * 8
    grouped = LengthGroupedBatchSampler(lengths, clips, batch_size=4, max_clips=6, seed=1)
    plain = LengthGroupedBatchSampler(lengths, clips, batch_size=4, max_clips=6, seed=1, grouped=False)
    batches = grouped.batches()
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every row once
    assert all(sum(clips[i] for i in b) <= 6 or len(b) == 1 for b in batches)
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch first: OOM shows at step 1
    assert grouped.padding_efficiency() > 0.9 > plain.padding_efficiency()
    grouped.set_epoch(1)
    assert grouped.batches() != batches  # reshuffled per epoch, deterministically
    grouped.set_epoch(0)
    assert grouped.batches() == batches


def subset(out: Path, dst: Path, config_name: str, keep: int, corrupt: tuple[int, ...] = ()) -> Path:
    """A converted dataset with the first ``keep`` rows of one config (audio of ``corrupt`` rows garbled)."""
    manifest = json.loads((out / "manifest.json").read_text())
    shard = next(s for s in manifest["shards"] if s["config"] == config_name)
    table = pq.read_table(out / shard["file"]).slice(0, keep)
    if corrupt:
        rows = table.to_pylist()
        for i in corrupt:
            rows[i]["audios"] = [{"bytes": b"not audio at all" * 10, "path": a["path"]} for a in rows[i]["audios"]]
        import pyarrow as pa

        table = pa.Table.from_pylist(rows, schema=table.schema)
    (dst / "data" / config_name).mkdir(parents=True)
    pq.write_table(table, dst / shard["file"])
    shutil.copy(out / "README.md", dst / "README.md")
    manifest["shards"] = [{**shard, "rows": keep}]
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("omni") / "model", family="qwen2.5-omni"))


def test_qwen25_omni_thinker_sft_and_dpo(tiny_omni: str, sample_out, tmp_path: Path):
    """The second family: the thinker trains; LoRA stays off the audio and vision towers; labels are the replies."""
    out, _ = sample_out
    run = build(config(tiny_omni, out, tmp_path / "sft", max_steps=2, per_device_batch_size=2))
    assert run.family.name == "qwen2.5-omni"
    trainable = [n for n, p in run.trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("language_model" in n and "lora_" in n for n in trainable)
    row = run.trainer.train_dataset.with_format(None)[0]
    enc = run.collator.encode_sft(row)
    learned = run.processor.tokenizer.decode(enc["input_ids"][enc["labels"] != IGNORE])
    assert learned == "".join(m["content"] + "<|im_end|>" for m in row["messages"] if m["role"] == "assistant")
    n_audio = int((enc["input_ids"] == run.collator.audio_id).sum())
    frames = enc["feature_attention_mask"].sum(-1).tolist()
    assert n_audio == sum(((f - 1) // 2 + 1 - 2) // 2 + 1 for f in frames)  # tokens match the tower's output
    run.trainer.train()
    assert run.trainer.state.global_step == 2
    report = train(config(tiny_omni, out, tmp_path / "dpo", task="dpo", max_steps=2, per_device_batch_size=2))
    assert report["steps"] == 2 and report["family"] == "qwen2.5-omni"


def test_eval_split_and_trainable_projector(tiny: str, tmp_path: Path):
    import audiodata
    from tests.conftest import SAMPLE

    out = tmp_path / "ds"
    audiodata.convert([str(SAMPLE)], out, num_workers=1, val_ratio=0.3)
    cfg = config(tiny, out, tmp_path / "run", max_steps=2, eval_split="validation", eval_steps=1, train_projector=True)
    cfg.eval_generate_records, cfg.eval_samples, cfg.max_new_tokens = 3, 2, 4  # generation kept cheap here
    run = build(cfg)
    trainable = {n for n, p in run.trainer.model.named_parameters() if p.requires_grad}
    assert any("multi_modal_projector" in n for n in trainable)  # saved whole with the adapter
    assert not any("audio_tower" in n for n in trainable)
    report = train(cfg)
    assert report["eval_history"] and all(e["eval_loss"] > 0 for e in report["eval_history"])
    assert [h["step"] for h in report["evaluation"]["history"]] == [1, 2]  # generated and scored at each evaluation


def test_sft_trains_from_a_dataset_in_an_object_store(
    tiny: str, sample_out, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """``data: s3://.../OUT`` (here fsspec's memory://): the run reads the dataset's local copy, pulled once, and
    names the store's URL; the training cache is not looked for (it lives beside a dataset on disk)."""
    import fsspec

    from trainer.config import data_root

    out, _ = sample_out
    monkeypatch.setenv("AUDIODATA_CACHE", str(tmp_path / "cache"))
    mem = fsspec.filesystem("memory")
    bucket = f"/trainstore{os.getpid()}"
    mem.put(str(out), f"{bucket}/out", recursive=True)
    url = f"memory:/{bucket}/out"
    try:
        report = train(config(tiny, url, tmp_path / "run", max_steps=2))  # type: ignore[arg-type]
        assert report["steps"] == 2 and report["data"] == url
        root = data_root(url)
        assert root.is_relative_to(tmp_path / "cache")
        assert (root / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
        with pytest.raises(ConfigError, match="on disk only"):
            train(config(tiny, url, tmp_path / "run2", max_steps=1, cache="require"))  # type: ignore[arg-type]
        from audiodata.cli.main import main

        assert main(["cache", url, "--tokenizer", str(tmp_path / "no-model")]) == 2  # said before any model loads
        assert "beside a dataset on disk" in capsys.readouterr().err
    finally:
        mem.rm(bucket, recursive=True)
        data_root.cache_clear()
