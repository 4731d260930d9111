"""``audiodata cache``: the trainer's own SFT encoding stored next to the shards, used only while fresh.

The cached examples must be the ones ``encode_sft`` makes (tokens, labels, assistant texts; the features
exactly, as fp16), a cache built for another tokenizer, template, processor, option set or other shards must
be named and never used, and ``audiodata train`` must train from it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import numpy as np
import torch

from audiodata.cli.main import main as audiodata_main
from tests.training.test_trainer import subset
from trainer import cache
from trainer.collators import LABEL_TEXTS, TRUNCATED, AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import SkipExample, load_rows
from trainer.families import get_family
from trainer.tiny import make_tiny_model
from trainer.train import find_cache

os.environ["HF_HUB_OFFLINE"] = "1"
FAMILY = get_family("qwen2-audio")
ROWS = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


@pytest.fixture(scope="module")
def cached(tiny: str, sample_out, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A copy of the sample dataset with both caches built (tokens only, and with features)."""
    src, _ = sample_out
    root = subset(src, tmp_path_factory.mktemp("cached"), "sft", keep=ROWS)
    processor = FAMILY.training_processor(tiny)
    for features in (False, True):
        result = cache.build(root, FAMILY, processor, features=features)
        assert result.rows == ROWS and result.skipped == 0 and not result.reused
    return root, processor


def rows_with(root: Path, tiny: str, processor: Any, features: bool) -> Any:
    parts = cache.components(FAMILY, processor, None, "split", features)
    found = cache.lookup(root, parts, "sft")
    assert found.path is not None and found.features is features and found.stale == []
    return cache.attach(load_rows(TrainConfig(model=tiny, data=str(root)), "train"), found, "train")


@pytest.mark.parametrize("features", [False, True])
@pytest.mark.parametrize("max_length", [None, 200])
def test_cached_examples_are_the_trainers_own(tiny: str, cached, features: bool, max_length: int | None):
    root, processor = cached
    rows = rows_with(root, tiny, processor, features)
    collator = AudioCollator(FAMILY, processor, max_length)
    truncated = refused = 0
    for row in rows:
        want, got = attempt(collator.encode_sft, row), attempt(collator.encode_cached, row)
        if isinstance(want, str):  # refused (max_length below the audio), for the same reason
            assert got == want
            refused += 1
            continue
        assert isinstance(got, dict)
        assert torch.equal(got["input_ids"], want["input_ids"]) and torch.equal(got["labels"], want["labels"])
        assert got[LABEL_TEXTS] == want[LABEL_TEXTS] and got[TRUNCATED] == want[TRUNCATED]
        truncated += want[TRUNCATED]
        assert torch.equal(got["feature_attention_mask"], want["feature_attention_mask"])
        expected = want["input_features"].half().float() if features else want["input_features"]
        assert got["input_features"].dtype == torch.float32 and torch.equal(got["input_features"], expected)
        collator.check_batch([got])  # labels decode to exactly the assistant turns
    assert (truncated > 0) == (max_length is not None) and refused < len(rows)


def attempt(encode: Any, row: dict[str, Any]) -> dict[str, Any] | str:
    try:
        return encode(row)
    except SkipExample as exc:
        return str(exc)


def test_features_come_back_exactly_and_small(tiny: str, cached):
    _, processor = cached
    clip = np.random.default_rng(0).standard_normal(16000 * 2).astype(np.float32) * 0.1
    enc = FAMILY.features(processor, [clip, clip[:4000]])
    packed = cache.pack_features(enc)
    assert packed[cache.FEATURE_SHAPE] == [128, 3000]
    assert packed[cache.MASK_FRAMES] == [200, 25]
    assert all(k < 3000 // 4 for k in packed[cache.FEATURE_FRAMES])  # the constant padding is not stored
    back = cache.features(packed)
    assert torch.equal(back["input_features"], enc["input_features"].half().float())
    assert torch.equal(back["feature_attention_mask"], enc["feature_attention_mask"])
    assert cache.features({**packed, cache.FEATURES: []}) == {}


def test_lengths_and_refused_rows_come_from_the_cache(tiny: str, cached):
    root, processor = cached
    rows = rows_with(root, tiny, processor, False)
    lengths, clips = cache.lengths(rows, None)
    collator = AudioCollator(FAMILY, processor)
    first = collator.encode_sft(rows[3])
    assert lengths[3] == len(first["input_ids"]) and clips[3] == len(rows[3]["audios"])
    assert cache.lengths(rows, 64)[0][3] == 64
    picked = rows.select([3, 1])  # a selection (holdout, skipped rows) is respected
    assert cache.lengths(picked, None)[0] == [lengths[3], lengths[1]]
    assert cache.skipped_rows(rows) == []


def lookup(root: Path, processor: Any, **kw: Any) -> cache.Lookup:
    opts: dict[str, Any] = {"system_prompt": None, "long_audio": "split", "features": False, **kw}
    return cache.lookup(root, cache.components(FAMILY, processor, **opts), "sft")


def test_a_stale_cache_is_named_and_never_used(tiny: str, cached, tmp_path: Path):
    root, processor = cached
    assert lookup(root, processor).path is not None
    found = lookup(root, processor, system_prompt="Be brief.")
    assert found.path is None and any("system_prompt None (now 'Be brief.')" in s for s in found.stale)
    other = FAMILY.training_processor(tiny)
    other.chat_template = other.chat_template.replace("assistant", "assistant ", 1)
    found = lookup(root, other)
    assert found.path is None and any("another chat template" in s for s in found.stale)
    other = FAMILY.training_processor(tiny)
    other.tokenizer.add_tokens(["<|brand_new|>"])
    assert any("another tokenizer" in s for s in lookup(root, other).stale)
    other = FAMILY.training_processor(tiny)
    other.feature_extractor.dither = 0.5
    assert any("feature-extractor config" in s for s in lookup(root, other).stale)
    with pytest.raises(cache.CacheError, match="dithers"):  # features drawn with noise are never frozen in a cache
        cache.build(root, FAMILY, other, features=True)

    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = "0" * 64  # as a new conversion with other records would have it
    (copy / "manifest.json").write_text(json.dumps(manifest))
    found = lookup(copy, processor)
    assert found.path is None and any("changed since the cache was built" in s for s in found.stale)

    copy2 = tmp_path / "data2"
    shutil.copytree(root, copy2)
    for f in (copy2 / "cache").rglob("*.arrow"):
        f.write_bytes(f.read_bytes()[:100])  # a truncated cache file
    assert all("not the size" in s for s in lookup(copy2, processor).stale)


def test_the_trainer_picks_the_fresh_cache_and_refuses_a_stale_one(tiny: str, cached, capsys):
    root, _ = cached
    cfg = TrainConfig(model=tiny, data=str(root), output_dir="unused")
    processor = FAMILY.training_processor(tiny)
    found = find_cache(cfg, FAMILY, processor, rank=0)
    assert found is not None and found.features  # features preferred
    assert find_cache(TrainConfig(model=tiny, data=str(root), cache="off"), FAMILY, processor, rank=0) is None
    stale = TrainConfig(model=tiny, data=str(root), system_prompt="Be brief.")
    assert find_cache(stale, FAMILY, processor, rank=0) is None
    assert "not using the stale cache" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"no fresh training-input cache.*system_prompt"):
        find_cache(TrainConfig(model=tiny, data=str(root), system_prompt="Be brief.", cache="require"), FAMILY, processor, 0)
    with pytest.raises(ConfigError, match="cache must be one of"):
        TrainConfig.from_dict({"model": tiny, "data": str(root), "cache": "sometimes"})


def test_cli_writes_keeps_and_reports(tiny: str, sample_out, tmp_path: Path, capsys):
    src, _ = sample_out
    root = subset(src, tmp_path / "data", "sft", keep=4)
    assert audiodata_main(["cache", str(root), "--tokenizer", tiny, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["rows"] == 4 and not first["reused"] and Path(first["path"], cache.META).is_file()
    assert audiodata_main(["cache", str(root), "--tokenizer", tiny, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] and again["key"] == first["key"]
    assert audiodata_main(["cache", str(root), "--tokenizer", tiny, "--system-prompt", "Hi.", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["key"] != first["key"] and any("system_prompt" in s for s in other["stale_caches"])
    assert audiodata_main(["cache", str(tmp_path / "nothing"), "--tokenizer", tiny]) == 2
    assert audiodata_main(["cache", str(root), "--tokenizer", tiny, "--data-config", "dpo"]) == 2  # DPO: test_cache_preference
    assert "no shards of config 'dpo'" in capsys.readouterr().err


def test_records_that_cannot_be_encoded_keep_their_reason(tiny: str, sample_out, tmp_path: Path):
    src, _ = sample_out
    broken = subset(src, tmp_path / "broken", "sft", keep=6, corrupt=(2,))
    processor = FAMILY.training_processor(tiny)
    result = cache.build(broken, FAMILY, processor)
    assert result.rows == 6 and result.skipped == 1 and "audio" in next(iter(result.skip_reasons))
    rows = cache.attach(load_rows(TrainConfig(model=tiny, data=str(broken)), "train"), lookup(broken, processor), "train")
    assert cache.skipped_rows(rows) == [2]
    with pytest.raises(SkipExample, match="audio"):
        AudioCollator(FAMILY, processor).encode_cached(rows[2])
    assert cache.lengths(rows, None)[0][2] == 0 and min(cache.lengths(rows, None)[0][:2]) > 0


@pytest.mark.slow
def test_training_from_the_cache_sees_what_the_shards_give(tiny: str, sample_out, tmp_path: Path, capsys, monkeypatch):
    """With the same batch plan, the tokens-only cache gives the very losses that encoding from the shards gives, and
    the features cache (fp16 features) the same within rounding. A record the cache could not encode is left out
    before the plan is made and logged once."""
    import trainer.train as train_module

    src, _ = sample_out
    root = subset(src, tmp_path / "data", "sft", keep=8)
    base = {"model": tiny, "data": str(root), "max_steps": 3, "per_device_batch_size": 2, "logging_steps": 1,
            "save_steps": 1000, "learning_rate": 1e-3, "preflight_audio_check": False}
    processor = FAMILY.training_processor(tiny)
    cache.build(root, FAMILY, processor)
    plain = train_module.train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / "plain"), "cache": "require"}))
    assert "training input from the cache" in capsys.readouterr().err

    exact, _ = cache.lengths(rows_with(root, tiny, processor, False), None)
    estimate = train_module.estimate_lengths

    def same_plan(rows: Any, family: Any, long_audio: str) -> Any:  # the shards' run batched by the cache's lengths
        _, clips, seconds = estimate(rows, family, long_audio)
        return exact, clips, seconds

    monkeypatch.setattr(train_module, "estimate_lengths", same_plan)
    shards = train_module.train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / "shards"), "cache": "off"}))
    cache.build(root, FAMILY, processor, features=True)
    feats = train_module.train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / "feats"), "cache": "require"}))
    assert "tokens and log-mel features" in capsys.readouterr().err
    losses = [[h["loss"] for h in r["loss_history"]] for r in (shards, plain, feats)]
    assert len(losses[0]) == 3 and losses[0] == losses[1] and np.allclose(losses[0], losses[2], rtol=1e-3), losses
    assert shards["tokens_seen"] == plain["tokens_seen"] == feats["tokens_seen"]

    broken = subset(src, tmp_path / "broken", "sft", keep=8, corrupt=(5,))
    cache.build(broken, FAMILY, processor, features=True)
    report = train_module.train(
        TrainConfig.from_dict({**base, "data": str(broken), "output_dir": str(tmp_path / "broken-run"), "cache": "require"})
    )
    assert report["train_records"] == 7 and report["skipped"]["records"] == 1
    log = [json.loads(x) for x in (tmp_path / "broken-run" / "skipped.jsonl").read_text().splitlines()]
    assert len(log) == 1 and "audio" in log[0]["reason"] and log[0]["index"] is not None


def test_shards_encoded_in_parallel_give_the_same_files(tiny: str, tmp_path: Path):
    """Two processes, one shard each (a conversion with small shards): the very bytes one process writes."""
    import audiodata
    from tests.conftest import SAMPLE

    root = tmp_path / "data"
    audiodata.convert([str(SAMPLE / "sharegpt_sft.json")], root, num_workers=1, max_shard_size=80_000)
    shards = [s for s in json.loads((root / "manifest.json").read_text())["shards"] if s["split"] == "train"]
    assert len(shards) >= 2
    processor = FAMILY.training_processor(tiny)
    one = cache.build(root, FAMILY, processor, features=True, num_workers=1)
    written = {p.relative_to(one.path): p.read_bytes() for p in one.path.rglob("*.arrow")}
    seen: list[tuple[int, int]] = []
    two = cache.build(
        root, FAMILY, processor, features=True, num_workers=2, force=True, on_progress=lambda d, t: seen.append((d, t))
    )
    assert two.path == one.path and two.rows == one.rows and len(written) == len(shards)
    assert {p.relative_to(two.path): p.read_bytes() for p in two.path.rglob("*.arrow")} == written
    assert seen[-1] == (two.rows, two.rows) and len(seen) == len(shards)  # one tick per shard from the workers


@pytest.mark.slow
def test_loader_benchmark_smoke(tmp_path: Path):
    """CI-sized run of benchmarks/loader_bench.py: the ratios it prints stay above floors set with margin (measured
    on the 2-core machine: features 36-76x the shards, the cache's lengths thousands of times faster)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "loader.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "loader_bench.py"), "--records", "24", "--repeats", "1"]
    cmd += ["--length-records", "6000", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    fig = json.loads(out.read_text())
    ways = fig["ways"]
    assert set(ways) == {"json", "shards", "cache", "cache+features"} and fig["records"] == 24
    assert ways["cache+features"]["vs_shards"] > 5, run.stdout
    assert ways["cache"]["vs_shards"] > 0.5, run.stdout  # the same decode + features: never much slower
    assert ways["cache+features"]["lengths_s_for_hours"] * 20 < ways["shards"]["lengths_s_for_hours"], run.stdout
    assert "worker-days/epoch" in run.stdout and "x shards" in run.stdout
    dpo = fig["dpo"]["ways"]  # the same four ways for DPO pairs (encode_dpo, encode_dpo_cached)
    assert set(dpo) == set(ways) and dpo["cache+features"]["vs_shards"] > 5 and dpo["cache"]["vs_shards"] > 0.5, run.stdout
    kto = fig["kto"]["ways"]  # and for KTO records (encode_kto, encode_kto_cached)
    assert set(kto) == set(ways) and kto["cache+features"]["vs_shards"] > 5 and kto["cache"]["vs_shards"] > 0.5, run.stdout
    assert fig["kto"]["records"] == 24 and "loader_bench kto" in run.stdout
    first = fig["datasets_first_import"]  # one Arrow copy of the shards on the first load, not two (the cast's)
    assert first["copy_ratio"] < 1.1 and first["with_cast"]["copy_ratio"] > 1.8 and first["hours_for_hours"] > 0, run.stdout


@pytest.mark.slow
def test_the_omni_family_caches_its_own_encoding(sample_out, tmp_path: Path):
    """Qwen2.5-Omni's thinker (its audio-only processor when torchvision is missing): cached examples are its own."""
    src, _ = sample_out
    model = str(make_tiny_model(tmp_path / "omni", family="qwen2.5-omni"))
    omni = get_family("qwen2.5-omni")
    root = subset(src, tmp_path / "data", "sft", keep=4)
    processor = omni.training_processor(model)
    assert cache.build(root, omni, processor, features=True).skipped == 0
    found = cache.lookup(root, cache.components(omni, processor, None, "split", True), "sft")
    rows = cache.attach(load_rows(TrainConfig(model=model, data=str(root)), "train"), found, "train")
    collator = AudioCollator(omni, processor)
    for row in rows:
        want, got = collator.encode_sft(row), collator.encode_cached(row)
        assert torch.equal(got["input_ids"], want["input_ids"]) and torch.equal(got["labels"], want["labels"])
        assert torch.equal(got["input_features"], want["input_features"].half().float())
