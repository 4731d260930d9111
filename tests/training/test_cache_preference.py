"""``audiodata cache`` for DPO and KTO: the prompt's tokens (audio expanded), the replies' tokens and the audio-token
counts the trainer's own ``preference_tokens`` makes, stored next to the shards and used only while fresh.

The cached examples must be the very ones ``encode_dpo``/``encode_kto`` make (``max_length`` applied at training
time, as from the shards; the features exactly, as fp16), the key must keep an SFT, a DPO and a KTO cache of one
dataset apart, and ``audiodata train dpo|kto`` must train from it with the losses the shards give.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import numpy as np
import torch

from audiodata.cli.main import main as audiodata_main
from tests.training.test_trainer import subset
from tests.training.test_trainer_kto import kto_data  # noqa: F401  (a fixture)
from trainer import cache
from trainer.collators import AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import SkipExample, load_rows
from trainer.families import get_family
from trainer.tiny import make_tiny_model
from trainer.train import find_cache, needs_audio

os.environ["HF_HUB_OFFLINE"] = "1"
FAMILY = get_family("qwen2-audio")
DPO_ROWS = 5  # the sample's good DPO records


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


@pytest.fixture(scope="module")
def dpo_root(sample_out, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, _ = sample_out
    return subset(src, tmp_path_factory.mktemp("dpo"), "dpo", keep=DPO_ROWS)


def built(root: Path, tiny: str, task: str, features: bool) -> tuple[Any, Any]:
    """(the split's rows with the cache's columns beside them, the processor), the cache built first."""
    processor = FAMILY.training_processor(tiny)
    result = cache.build(root, FAMILY, processor, features=features, config=task)
    assert result.skipped == 0 and result.config in (task, "default")  # a run of one kind writes `default`
    found = cache.lookup(root, cache.components(FAMILY, processor, None, "split", features, task), result.config)
    assert found.path == result.path and found.features is features and found.stale == []
    rows = load_rows(TrainConfig(model=tiny, data=str(root), task=task), "train")
    return cache.attach(rows, found, "train"), processor


def attempt(encode: Any, row: dict[str, Any]) -> dict[str, Any] | str:
    try:
        return encode(row)
    except SkipExample as exc:
        return str(exc)


def same_example(got: dict[str, Any], want: dict[str, Any], features: bool) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if key == "input_features" and features:  # stored as fp16, rebuilt exactly as fp16
            assert got[key].dtype == torch.float32 and torch.equal(got[key], value.half().float())
        elif isinstance(value, torch.Tensor):
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("features", [False, True])
@pytest.mark.parametrize("max_length", [None, 130])
def test_cached_dpo_examples_are_the_trainers_own(tiny: str, dpo_root: Path, features: bool, max_length: int | None):
    rows, processor = built(dpo_root, tiny, "dpo", features)
    collator = AudioCollator(FAMILY, processor, max_length)
    cut = refused = 0
    for row in rows:
        want, got = attempt(collator.encode_dpo, row), attempt(collator.encode_dpo_cached, row)
        if isinstance(want, str):  # the prompt alone over max_length: refused for the same reason
            assert got == want
            refused += 1
            continue
        assert isinstance(got, dict)
        same_example(got, want, features)
        untruncated = AudioCollator(FAMILY, processor).encode_dpo(row)
        cut += len(want["chosen_ids"]) < len(untruncated["chosen_ids"]) or len(want["rejected_ids"]) < len(
            untruncated["rejected_ids"]
        )
    assert refused < len(rows) and (cut > 0) == (max_length is not None)
    batch = collator([collator.encode_dpo_cached(r) for r in rows if not isinstance(attempt(collator.encode_dpo, r), str)][:2])
    assert batch["input_ids"].shape[0] == 2 * min(2, len(rows) - refused) and "completion_mask" in batch


@pytest.mark.parametrize("features", [False, True])
@pytest.mark.parametrize("max_length", [None, 150])
def test_cached_kto_examples_are_the_trainers_own(tiny: str, kto_data: Path, features: bool, max_length: int | None):  # noqa: F811
    rows, processor = built(kto_data, tiny, "kto", features)
    collator = AudioCollator(FAMILY, processor, max_length)
    labels, refused, cut = [], 0, 0
    for row in rows:
        want, got = attempt(collator.encode_kto, row), attempt(collator.encode_kto_cached, row)
        if isinstance(want, str):
            assert got == want
            refused += 1
            continue
        assert isinstance(got, dict)
        same_example(got, want, features)
        labels.append((got["label"], row["label"]))
        cut += len(want["completion_ids"]) < len(AudioCollator(FAMILY, processor).encode_kto(row)["completion_ids"])
    assert all(a is b for a, b in labels) and {a for a, _ in labels} == {True, False}
    assert (refused > 0) == (cut > 0) == (max_length is not None)


def test_preference_lengths_count_the_prompt_and_the_longest_reply(tiny: str, dpo_root: Path, kto_data: Path):  # noqa: F811
    rows, processor = built(dpo_root, tiny, "dpo", False)
    collator = AudioCollator(FAMILY, processor)
    lengths, clips = cache.lengths(rows, None)
    for i, row in enumerate(rows):
        ex = collator.encode_dpo(row)
        assert lengths[i] == len(ex["input_ids"]) + max(len(ex["chosen_ids"]), len(ex["rejected_ids"]))
        assert clips[i] == len(row["audios"])
    assert cache.lengths(rows, 50)[0] == [min(n, 50) for n in lengths]
    krows, _ = built(kto_data, tiny, "kto", False)
    klengths, _ = cache.lengths(krows, None)
    ex = collator.encode_kto(krows[2])
    assert klengths[2] == len(ex["input_ids"]) + len(ex["completion_ids"])


def test_sft_dpo_and_kto_caches_are_kept_apart(tiny: str, sample_out, tmp_path: Path):
    """One dataset with an sft and a dpo config: two caches under two keys, each found only for its own config; the
    SFT key is the one it was before DPO and KTO were cached (no SFT cache goes stale)."""
    import shutil

    src, _ = sample_out
    root = tmp_path / "both"
    shutil.copytree(src, root)
    processor = FAMILY.training_processor(tiny)
    sft = cache.build(root, FAMILY, processor, config="sft")
    dpo = cache.build(root, FAMILY, processor, config="dpo")
    assert sft.key != dpo.key and not dpo.reused
    assert json.loads((dpo.path / cache.META).read_text())["kind"] == "dpo"
    assert "kind" not in json.loads(cache.components(FAMILY, processor, None, "split", False)["options_readable"])
    assert cache.lookup(root, cache.components(FAMILY, processor, None, "split", False, "dpo"), "dpo").path == dpo.path
    assert cache.lookup(root, cache.components(FAMILY, processor, None, "split", False), "sft").path == sft.path
    assert cache.build(root, FAMILY, processor, config="dpo").reused
    prompt = cache.lookup(root, cache.components(FAMILY, processor, "Be brief.", "split", False, "dpo"), "dpo")
    assert prompt.path is None and any("system_prompt None (now 'Be brief.')" in s for s in prompt.stale)
    run = TrainConfig(model=tiny, data=str(root), task="dpo", data_config="dpo", output_dir="unused")
    found = find_cache(run, FAMILY, processor, rank=0)
    assert found is not None and found.path == dpo.path
    with pytest.raises(ConfigError, match="--data-config dpo"):
        find_cache(TrainConfig.from_dict({**run.to_dict(), "system_prompt": "Hi.", "cache": "require"}), FAMILY, processor, 0)


def test_cli_caches_dpo_and_kto(tiny: str, dpo_root: Path, kto_data: Path, tmp_path: Path, capsys):  # noqa: F811
    import shutil

    root = tmp_path / "dpo"
    shutil.copytree(dpo_root, root, ignore=shutil.ignore_patterns("cache"))
    assert audiodata_main(["cache", str(root), "--tokenizer", tiny, "--data-config", "dpo", "--features", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == DPO_ROWS and out["features"] and not out["reused"] and out["kind"] == "dpo"
    assert out["stale_caches"] == []  # the cache just written is not reported stale against itself
    meta = json.loads(Path(out["path"], cache.META).read_text())
    assert meta["kind"] == "dpo" and meta["tokens"] == out["tokens"] > 0
    kroot = tmp_path / "kto"
    shutil.copytree(kto_data, kroot, ignore=shutil.ignore_patterns("cache"))
    assert audiodata_main(["cache", str(kroot), "--tokenizer", tiny, "--data-config", "kto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 8
    assert audiodata_main(["cache", str(dpo_root), "--tokenizer", tiny, "--data-config", "kto"]) == 2
    assert "no kto config" in capsys.readouterr().err


def test_a_dpo_record_that_cannot_be_encoded_keeps_its_reason(tiny: str, sample_out, tmp_path: Path):
    src, _ = sample_out
    broken = subset(src, tmp_path / "broken", "dpo", keep=DPO_ROWS, corrupt=(1,))
    processor = FAMILY.training_processor(tiny)
    result = cache.build(broken, FAMILY, processor, config="dpo")
    assert result.rows == DPO_ROWS and result.skipped == 1 and "audio" in next(iter(result.skip_reasons))
    found = cache.lookup(broken, cache.components(FAMILY, processor, None, "split", False, "dpo"), "dpo")
    rows = cache.attach(load_rows(TrainConfig(model=tiny, data=str(broken), task="dpo"), "train"), found, "train")
    assert cache.skipped_rows(rows) == [1] and cache.lengths(rows, None)[0][1] == 0
    with pytest.raises(SkipExample, match="audio"):
        AudioCollator(FAMILY, processor).encode_dpo_cached(rows[1])




@pytest.mark.slow
@pytest.mark.parametrize("task", ["dpo", "kto"])
def test_training_from_the_cache_gives_the_shards_losses(
    task: str, tiny: str, dpo_root: Path, kto_data: Path, tmp_path: Path, capsys, monkeypatch  # noqa: F811
):
    """With the same batch plan, DPO and KTO from the tokens-only cache give the very losses (and rewards) that encoding
    from the shards gives, and from the features cache (rows read from the shards without their audio, nothing
    imported by ``datasets``) the same within fp16 rounding of the features."""
    import shutil

    import trainer.train as train_module

    root = tmp_path / "data"
    shutil.copytree(dpo_root if task == "dpo" else kto_data, root, ignore=shutil.ignore_patterns("cache"))
    base = {"task": task, "model": tiny, "data": str(root), "max_steps": 3, "per_device_batch_size": 2 if task == "dpo" else 4,
            "logging_steps": 1, "save_steps": 1000, "learning_rate": 1e-3, "preflight_audio_check": False, "max_length": 150}
    processor = FAMILY.training_processor(tiny)
    config = cache.build(root, FAMILY, processor, config=task).config
    plain = train_module.train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / "plain"), "cache": "require"}))
    assert "training input from the cache" in capsys.readouterr().err
    found = cache.lookup(root, cache.components(FAMILY, processor, None, "split", False, task), config)
    rows = cache.attach(load_rows(TrainConfig(model=tiny, data=str(root), task=task), "train"), found, "train")
    exact, _ = cache.lengths(rows, 150)
    estimate = train_module.estimate_lengths

    def same_plan(rows: Any, family: Any, long_audio: str) -> Any:  # the shards' run batched by the cache's lengths
        _, clips, seconds = estimate(rows, family, long_audio)
        return exact, clips, seconds

    monkeypatch.setattr(train_module, "estimate_lengths", same_plan)
    shards = train_module.train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / "shards"), "cache": "off"}))
    cache.build(root, FAMILY, processor, features=True, config=task)
    import datasets

    empty = tmp_path / "hf-cache"  # with features the rows come from the shards directly: datasets imports nothing
    empty.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", empty)
    feats = train_module.train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / "feats"), "cache": "require"}))
    assert "tokens and log-mel features" in capsys.readouterr().err
    assert not [f for f in empty.rglob("*") if f.is_file() and f.stat().st_size], "the features run imported the shards"
    runs = (shards, plain, feats)
    losses = [[h["loss"] for h in r["loss_history"]] for r in runs]
    assert len(losses[0]) == 3 and losses[0] == losses[1] and np.allclose(losses[0], losses[2], rtol=1e-3), losses
    assert shards["tokens_seen"] == plain["tokens_seen"] == feats["tokens_seen"] > 0
    assert shards["skipped"] == plain["skipped"]
    rewards = [[{k: v for k, v in h.items() if k.startswith("rewards/")} for h in r["preference_history"]] for r in runs]
    assert rewards[0] == rewards[1] and rewards[0][0], rewards


@pytest.mark.parametrize("task", ["sft", "dpo", "kto"])
def test_rows_without_audio_come_straight_from_the_shards(
    task: str, tiny: str, sample_out, kto_data: Path, tmp_path: Path, monkeypatch  # noqa: F811
):
    """With a features cache the run reads no audio, so the rows come from the shards by pyarrow: the same rows as
    ``datasets`` gives, less ``audios``, and nothing written into ``datasets``' cache (its import copies the split)."""
    import datasets

    root = sample_out[0] if task != "kto" else kto_data
    cfg = TrainConfig(model=tiny, data=str(root), task=task)
    empty = tmp_path / "hf-cache"
    empty.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", empty)
    direct = load_rows(cfg, "train", audio=False)
    assert not any(f.is_file() and f.stat().st_size for f in empty.rglob("*"))  # no import, no copy
    imported = load_rows(cfg, "train")
    assert any(f.suffix == ".arrow" for f in empty.rglob("*"))  # (the import does write one)
    assert "audios" not in direct.column_names and set(direct.column_names) == set(imported.column_names) - {"audios"}
    assert direct.to_list() == imported.remove_columns("audios").to_list() and len(direct) > 0
    assert direct.features == datasets.Features({k: v for k, v in imported.features.items() if k != "audios"})


def test_the_run_reads_audio_only_when_it_needs_it(tiny: str, dpo_root: Path):
    processor = FAMILY.training_processor(tiny)
    cache.build(dpo_root, FAMILY, processor, config="dpo")
    cache.build(dpo_root, FAMILY, processor, config="dpo", features=True)
    cfg = TrainConfig(model=tiny, data=str(dpo_root), task="dpo")
    found = find_cache(cfg, FAMILY, processor, rank=0)
    assert found is not None and found.features and not needs_audio(cfg, found)
    assert needs_audio(cfg, None)  # no cache: the audio is decoded per example
    tokens_only = cache.lookup(dpo_root, cache.components(FAMILY, processor, None, "split", False, "dpo"), "dpo")
    assert needs_audio(cfg, tokens_only)  # tokens only: the features come from the decoded clips
    held = TrainConfig(model=tiny, data=str(dpo_root), task="dpo", eval_holdout=0.2)
    assert needs_audio(held, found)  # held-out evaluation generates from the training records' clips
