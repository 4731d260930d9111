"""trainer/verl_dataset.py: verl's RLHFDataset interface over ``export --to verl`` Parquet, each ``<audio>`` marker an
audio content part with its clip, and the processor (a tiny Qwen2-Audio one) given the clips: its placeholders
expanded to exactly the clips' features. verl itself is not installed (it needs a GPU stack): the interface is the
one ``verl/utils/dataset/rl_dataset.py`` defines and its agent loop reads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audiodata.export import export
from tests.pipeline.test_rl import converted, corpus, rows  # noqa: F401  (module fixtures: the converted rl corpus)


@pytest.fixture(scope="module")
def verl_files(converted: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:  # noqa: F811
    out = tmp_path_factory.mktemp("verl") / "verl"
    export(converted, "verl", out)
    return [str(p) for p in sorted(out.glob("*.parquet"))]


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoProcessor

    from trainer.tiny import make_tiny_model

    return AutoProcessor.from_pretrained(str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "m", family="qwen2-audio")))


@pytest.mark.slow
def test_each_marker_becomes_its_clip_and_the_processor_gets_them(verl_files: list[str], processor: Any, converted: Path):  # noqa: F811
    from trainer.data import decode_clip
    from trainer.verl_dataset import AudioRLHFDataset, audio_model_inputs

    ds = AudioRLHFDataset(verl_files, processor.tokenizer, {"max_prompt_length": 100000}, processor=processor)
    assert len(ds) == 14 and ds.dropped == []
    stored = {r["id"]: r for r in stored_rows(converted)}
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    seen_audio = seen_text = 0
    for i in range(len(ds)):
        row = ds[i]
        assert row["index"] == i and "audios" not in row and row["dummy_tensor"].tolist() == [0]
        assert row["reward_model"]["ground_truth"] == stored[row["extra_info"]["id"]]["answer"]
        clips = AudioRLHFDataset.process_audio_info(row["raw_prompt"])
        original = stored[row["extra_info"]["id"]]
        if not original["audios"]:
            assert clips is None and all(isinstance(m["content"], str) for m in row["raw_prompt"])
            seen_text += 1
            continue
        seen_audio += 1
        expected = [decode_clip(a, 16000) for a in original["audios"]]
        assert len(clips) == len(expected) and all(np.array_equal(c, e) for c, e in zip(clips, expected, strict=True))
        text = "".join(
            p.get("text", "<audio>") for m in row["raw_prompt"] for p in m["content"] if isinstance(m["content"], list)
        )
        assert "<audio>" in text  # the marker's place kept as an audio part between the text parts
        inputs = audio_model_inputs(processor, row["raw_prompt"])
        assert inputs["input_features"].shape[0] == len(clips)
        frames = inputs["feature_attention_mask"].sum(-1).tolist()
        tokens = sum(((int(n) - 1) // 2 + 1 - 2) // 2 + 1 for n in frames)
        assert int((inputs["input_ids"] == audio_id).sum()) == tokens > 0  # every clip expanded to its own features
        assert ds.prompt_tokens(i) == inputs["input_ids"].shape[-1]
    assert seen_audio == 14 and seen_text == 0  # every fixture item has its clip
    assert asyncio.run(AudioRLHFDataset.process_vision_info(ds[0]["raw_prompt"])) == (None, None)


@pytest.mark.slow
def test_prompts_too_long_with_their_audio_are_left_out_and_named(verl_files: list[str], processor: Any, capsys: Any):
    from trainer.verl_dataset import AudioRLHFDataset

    full = AudioRLHFDataset(verl_files, processor.tokenizer, {"filter_overlong_prompts": False}, processor=processor)
    lengths = sorted(full.prompt_tokens(i) for i in range(len(full)))
    limit = lengths[len(lengths) // 2]
    ds = AudioRLHFDataset(verl_files, processor.tokenizer, {"max_prompt_length": limit}, processor=processor)
    assert len(ds) == sum(1 for n in lengths if n <= limit) and len(ds.dropped) == len(full) - len(ds)
    assert all(f"over max_prompt_length {limit}" in why for _, why in ds.dropped)
    assert "left out: " in capsys.readouterr().err
    assert len(AudioRLHFDataset(verl_files, processor.tokenizer, {}, processor=processor, max_samples=3)) <= 3


def test_markers_and_clips_must_match_and_text_only_prompts_stay_text(tmp_path: Path, processor: Any):
    import datasets

    from trainer.verl_dataset import AudioRLHFDataset

    clip = (Path(__file__).parents[2] / "sample_data" / "audio" / "clip07_16k.flac").read_bytes()
    rows_ = [
        {"data_source": "x", "prompt": [{"role": "user", "content": "<audio><audio>Two?"}], "ability": "qa",
         "reward_model": {"style": "rule", "ground_truth": "a"}, "extra_info": {"index": 0},
         "audios": [{"bytes": clip, "path": "a.flac"}]},
        {"data_source": "x", "prompt": [{"role": "user", "content": "<audio>One."}], "ability": "qa",
         "reward_model": {"style": "rule", "ground_truth": "b"}, "extra_info": {"index": 1},
         "audios": [{"bytes": clip, "path": "a.flac"}]},
        {"data_source": "x", "prompt": [{"role": "user", "content": "No audio."}], "ability": "qa",
         "reward_model": {"style": "rule", "ground_truth": "c"}, "extra_info": {"index": 2}, "audios": []},
    ]  # fmt: skip
    text = datasets.Value("string")
    feats = datasets.Features({
        "data_source": text, "prompt": datasets.List({"role": text, "content": text}), "ability": text,
        "reward_model": {"style": text, "ground_truth": text}, "extra_info": {"index": datasets.Value("int64")},
        "audios": datasets.List(datasets.Audio(decode=False)),
    })  # fmt: skip
    path = tmp_path / "two.parquet"
    datasets.Dataset.from_list(rows_, features=feats).to_parquet(str(path))
    ds = AudioRLHFDataset([str(path)], processor.tokenizer, {}, processor=processor)
    assert len(ds) == 2 and [ds[i]["reward_model"]["ground_truth"] for i in range(2)] == ["b", "c"]
    assert ds.dropped[0][0] == 0 and "more <audio> markers than clips" in ds.dropped[0][1]
    one, plain = ds[0]["raw_prompt"], ds[1]["raw_prompt"]
    assert [p["type"] for p in one[0]["content"]] == ["audio", "text"] and one[0]["content"][1]["text"] == "One."
    assert plain == [{"role": "user", "content": "No audio."}] and AudioRLHFDataset.process_audio_info(plain) is None
    assert one[0]["content"][0]["audio"].dtype == np.float32 and len(one[0]["content"][0]["audio"]) > 16000


def stored_rows(out: Path) -> list[dict[str, Any]]:
    """The converted rows with their stored audio (the verl export's source)."""
    from audiodata.dataset import ConvertedDataset

    return list(ConvertedDataset.open(out).iter_rows())
