"""Clips over the model's 30 s window: split into windows (default), skipped, or truncated, and counted.

The long clip is real speech from sample_data/ repeated to 65 s; the short one is a sample clip as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("trl")

import audiodata
from tests.conftest import SAMPLE, write_jsonl
from trainer.collators import AudioCollator
from trainer.config import ConfigError, TrainConfig
from trainer.data import estimate_lengths, load_rows
from trainer.families import get_family
from trainer.longaudio import plan, split_clip, window_lengths
from trainer.tiny import make_tiny_model
from trainer.train import train

os.environ["HF_HUB_OFFLINE"] = "1"
LONG_SECONDS = 65.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


@pytest.fixture(scope="module")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("long")
    speech, rate = sf.read(SAMPLE / "audio" / "clip07_16k.flac", dtype="float32")
    reps = int(np.ceil(LONG_SECONDS * rate / len(speech)))
    sf.write(root / "long.flac", np.tile(speech, reps)[: int(LONG_SECONDS * rate)], rate)
    sf.write(root / "short.flac", speech, rate)
    turn = [{"from": "human", "value": "<audio>Transcribe."}, {"from": "gpt", "value": "She sells sea shells."}]
    records = [
        {"id": "long-0", "conversations": turn, "audios": ["long.flac"]},
        {"id": "short-1", "conversations": turn, "audios": ["short.flac"]},
        {"id": "both-2", "conversations": [{"from": "human", "value": "<audio>Compare with <audio>."}, turn[1]],
         "audios": ["short.flac", "long.flac"]},
        {"id": "short-3", "conversations": turn, "audios": ["short.flac"]},
    ]
    write_jsonl(root / "sft.jsonl", records)
    result = audiodata.convert([str(root / "sft.jsonl")], root / "out", num_workers=1)
    assert result.records_written == 4
    return root / "out"


def test_windows_are_equal_consecutive_and_cover_every_sample():
    window = 480_000
    pcm = np.arange(65 * 16000, dtype=np.float32)
    pieces = split_clip(pcm, window)
    assert len(pieces) == 3 and all(len(p) <= window for p in pieces)
    assert np.array_equal(np.concatenate(pieces), pcm)  # in order, nothing lost, nothing twice
    assert [len(p) for p in pieces] == window_lengths(len(pcm), window)
    assert max(len(p) for p in pieces) - min(len(p) for p in pieces) <= 1  # no sliver at the end
    assert len(split_clip(pcm[:window], window)) == 1  # exactly 30 s fits


def test_split_puts_each_window_in_place_as_its_own_audio_segment(tiny: str, long_data: Path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    family = get_family("qwen2-audio")
    rows = load_rows(TrainConfig(model=tiny, data=str(long_data)), "train")
    row = next(r for r in rows if r["id"] == "both-2")
    enc = AudioCollator(family, processor).encode_sft(row)
    assert enc["input_features"].shape[0] == 1 + 3  # the short clip, then the long one's three windows
    frames = enc["feature_attention_mask"].sum(-1).tolist()
    assert frames[0] < 3000 and all(2100 <= f <= 2200 for f in frames[1:])  # 65 s / 3 = 21.7 s each
    counts = family.audio_token_counts(enc)
    ids = enc["input_ids"]
    assert int((ids == processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")).sum()) == sum(counts)
    text = processor.tokenizer.decode(ids)
    assert text.count("<|audio_bos|>") == 4 and "Audio 4:" in text
    assert text.index("Audio 1:") < text.index("Compare with") < text.index("Audio 2:")  # the windows stand where the clip stood
    truncated = AudioCollator(family, processor, long_audio="truncate").encode_sft(row)
    assert truncated["input_features"].shape[0] == 2
    assert truncated["feature_attention_mask"].sum(-1).tolist()[1] == 3000  # the old behaviour: cut at 30 s


def test_plan_and_length_estimates_count_windows(long_data: Path):
    rows = load_rows(TrainConfig(model="m", data=str(long_data)), "train")
    fam = get_family("qwen2-audio").math
    split = plan(rows, fam, "split")
    assert (split.records, split.clips, split.windows) == (2, 2, 6)
    assert split.seconds_over == pytest.approx(2 * 35.0, abs=0.01)
    assert plan(rows, fam, "skip").skipped_rows == [i for i, rid in enumerate(rows["id"]) if rid in ("long-0", "both-2")]
    tokens_split, clips_split, _ = estimate_lengths(rows, fam, "split")
    tokens_cut, clips_cut, _ = estimate_lengths(rows, fam, "truncate")
    i = rows["id"].index("long-0")
    assert clips_split[i] == 3 and clips_cut[i] == 1
    assert tokens_split[i] - tokens_cut[i] > 800  # the 35 s past the window are now trained on, ~25 tokens/s


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["split", "skip", "truncate"])
def test_each_policy_is_counted_in_the_report(tiny: str, long_data: Path, tmp_path: Path, policy: str):
    cfg = TrainConfig.from_dict({"model": tiny, "data": str(long_data), "output_dir": str(tmp_path / "run"), "max_steps": 1,
                                 "per_device_batch_size": 4, "long_audio": policy, "save_steps": 100})  # fmt: skip
    report = train(cfg)
    la = report["long_audio"]
    assert la["policy"] == policy and la["window_seconds"] == 30.0
    assert (la["records_over_window"], la["clips_over_window"]) == (2, 2)
    skipped = tmp_path / "run" / "skipped.jsonl"
    if policy == "split":
        assert la["windows_from_split"] == 6 and report["train_records"] == 4
        assert report["audio_hours_seen"] * 3600 > LONG_SECONDS * 2  # every second of both long clips was seen
    elif policy == "skip":
        assert la["records_skipped"] == 2 and report["train_records"] == 2
        ids = sorted(json.loads(line)["id"] for line in skipped.read_text().splitlines())
        assert ids == ["both-2", "long-0"] and report["skipped"]["records"] == 2
        assert "over the model's 30 s window (long_audio: skip)" in report["skipped"]["examples"][0]["reason"]
    else:
        assert la["seconds_truncated"] == pytest.approx(70.0, abs=0.01) and report["train_records"] == 4
        short = sf.info(SAMPLE / "audio" / "clip07_16k.flac").duration
        assert report["audio_hours_seen"] * 3600 == pytest.approx(2 * 30.0 + 3 * short, abs=0.1)  # what the processor kept
    if policy != "skip":
        assert not skipped.exists()


def test_long_audio_is_validated(tiny: str, long_data: Path):
    with pytest.raises(ConfigError, match="long_audio must be one of split, skip, truncate"):
        TrainConfig.from_dict({"model": tiny, "data": str(long_data), "long_audio": "chunk"})
