"""The README's template example end to end, as written there: a NeMo manifest -> ``convert --task asr`` ->
SFT shards -> ``audiodata train sft`` on the tiny model; each step's output checked, not only its exit code."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from audiodata.readers.templates import PRESETS
from tests.test_readme import ROOT, readme_blocks, shim
from trainer.tiny import make_tiny_model

MANIFEST = "examples/nemo_asr/train_manifest.json"


def example_commands() -> list[str]:
    """The README block that converts the example manifest with --task asr and trains on it."""
    found = [b for b in readme_blocks() if any(MANIFEST in c.text and "--task asr" in c.text for c in b.commands)]
    assert len(found) == 1, "the README holds the NeMo -> train sft example once"
    commands = [c.text for c in found[0].commands]
    assert found[0].skip is None and [shlex.split(c)[:3] for c in commands] == [
        ["audiodata", "convert", MANIFEST],
        ["audiodata", "train", "sft"],
    ]
    return commands


def test_the_example_manifest_names_sample_clips_with_their_transcripts() -> None:
    """The example is real speech: each line's clip exists and its text is the sentence sample_data says it is."""
    table = (ROOT / "sample_data" / "README.md").read_text(encoding="utf-8")
    lines = [json.loads(x) for x in (ROOT / MANIFEST).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 12
    for line in lines:
        assert (ROOT / "sample_data" / "audio" / line["audio_filepath"]).is_file()
        assert f"| `audio/{line['audio_filepath']}` |" in table and f"| {line['text']} |" in table
    assert example_commands()  # and the README runs it


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_nemo_manifest_to_shards_to_train_sft_as_the_readme_says(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copytree(ROOT / "sample_data", work / "sample_data")
    shutil.copytree(ROOT / "examples", work / "examples")
    make_tiny_model(work / "out" / "tiny")  # the README's earlier block makes it
    env = {**shim(tmp_path / "bin"), "HF_HUB_OFFLINE": "1"}
    convert, train = example_commands()

    done = subprocess.run(["bash", "-c", convert], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = work / "out" / "nemo_asr"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["task"] == "asr"
    rows = {
        split: [r for p in sorted((out / "data").rglob(f"{split}-*.parquet")) for r in pq.read_table(p).to_pylist()]
        for split in ("train", "validation")
    }
    assert (len(rows["train"]), len(rows["validation"])) == (8, 4)
    pool = PRESETS["asr"]
    texts = {json.loads(x)["text"] for x in (ROOT / MANIFEST).read_text(encoding="utf-8").splitlines()}
    prompts = set()
    for row in rows["train"] + rows["validation"]:
        user, reply = row["messages"]
        assert user["content"] == "<audio>" + pool.pick(row["id"])  # drawn by id, as the template says
        assert reply["content"] in texts and len(row["audios"]) == 1
        prompts.add(user["content"])
    assert len(prompts) >= 3  # a pool, not one prompt

    done = subprocess.run(["bash", "-c", train], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((work / "out" / "nemo_sft" / "train_report.json").read_text())
    assert report["steps"] == 4 and report["train_records"] == 8
    assert report["evaluation"]["metric"] == "wer" and "--task asr" in report["evaluation"]["metric_reason"]
    assert report["evaluation"]["final"]["scored"] == 4
    samples = report["evaluation"]["samples"]
    assert samples and all(s["prompt"].removeprefix("<audio>") in pool.user for s in samples)
    assert (work / "out" / "nemo_sft" / "eval.html").is_file()
