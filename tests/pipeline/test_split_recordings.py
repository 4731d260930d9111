"""``--val-ratio`` keys segments and windows on the recording they are cut from: the parts of one recording never
land in both train and validation (keyed per clip, 7 segments of one file at 0.5 would almost always straddle)."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.audio.load import AudioSource
from audiodata.pipeline.process import recording_key
from tests.conftest import write_audio, write_jsonl
from tests.raw_asr_audio import make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_corpus(tmp_path_factory.mktemp("split") / "c")
    shutil.copy(root / "long.wav", root / "other.wav")  # a second recording (same sound, another file)
    lines = [json.loads(x) for x in (root / "long.nemo.jsonl").read_text().splitlines()]
    both = lines + [{**x, "audio_filepath": "other.wav"} for x in lines]
    (root / "two.nemo.jsonl").write_text("".join(json.dumps(x) + "\n" for x in both))
    return root


def splits_by_recording(out: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for shard in json.loads((out / "manifest.json").read_text())["shards"]:
        for row in pq.read_table(out / shard["file"], columns=["audio_info"]).to_pylist():
            found[row["audio_info"][0]["origin"].split("#", 1)[0]].add(shard["split"])
    return found


def test_segments_of_one_recording_share_a_split(corpus: Path, tmp_path: Path) -> None:
    seen: set[str] = set()
    for seed in range(6):
        out = tmp_path / f"s{seed}"
        r = audiodata.convert([str(corpus / "two.nemo.jsonl")], out, num_workers=1, val_ratio=0.5, seed=seed)
        assert r.records_written == 14
        by_recording = splits_by_recording(out)
        assert set(by_recording) == {"long.wav", "other.wav"}
        assert all(len(s) == 1 for s in by_recording.values()), (seed, by_recording)
        seen |= {s for splits in by_recording.values() for s in splits}
    assert seen == {"train", "validation"}  # the split does happen: per recording


def test_lhotse_windows_and_cuts_of_one_recording_share_a_split(corpus: Path, tmp_path: Path) -> None:
    for seed in range(3):
        out = tmp_path / f"s{seed}"
        kw = {"window_seconds": 8.0, "val_ratio": 0.5, "seed": seed}
        assert audiodata.convert([str(corpus / "cuts.jsonl")], out, num_workers=1, **kw).records_written == 6
        assert all(len(s) == 1 for s in splits_by_recording(out).values())


def test_whole_clips_stay_keyed_on_their_content(tmp_path: Path) -> None:
    """A whole file is keyed on its PCM as before: the same audio under two names never lands in two splits, and
    the recording key is only for segments."""
    write_audio(tmp_path / "a.wav", 1.0)
    shutil.copy(tmp_path / "a.wav", tmp_path / "b.wav")
    recs = [{"conversations": [{"from": "human", "value": "<audio>Hi"}, {"from": "gpt", "value": t}], "audios": [n]}
            for n, t in (("a.wav", "One."), ("b.wav", "Two."))]  # fmt: skip
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    for seed in range(4):
        out = tmp_path / f"o{seed}"
        audiodata.convert([str(src)], out, num_workers=1, val_ratio=0.5, seed=seed)
        assert len({s["split"] for s in json.loads((out / "manifest.json").read_text())["shards"]}) == 1


def test_the_recording_key_does_not_depend_on_where_the_corpus_sits(tmp_path: Path) -> None:
    for root in (tmp_path / "x", tmp_path / "y" / "z"):
        write_audio(root / "sub" / "rec.wav", 0.5)
        assert recording_key(AudioSource(path=root / "sub" / "rec.wav"), str(root)) == "rec:sub/rec.wav"
    assert recording_key(AudioSource(data=b"abc"), str(tmp_path)).startswith("rec:")
