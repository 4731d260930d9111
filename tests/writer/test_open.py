"""The decoding contract for what audiodata publishes (audiodata/decoding.py): ``audiodata.open`` yields
records with float32 numpy clips through soundfile alone, ``verify --decoders`` holds every decoding path to
the stored ``pcm_hash``, and the card's loading snippets run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import audiodata
from audiodata import decoding
from audiodata.audio.transform import pcm_hash
from audiodata.cli.main import main
from audiodata.dataset import ConvertedDataset, DatasetError
from audiodata.decoding import DECODERS, Decoder, available_decoders, pcm16
from audiodata.errors import UsageError
from audiodata.verify import verify
from audiodata.writer.card import SOURCE_PLACEHOLDER

REPO = Path(__file__).resolve().parents[2]
#: Blocks every decoder but libsndfile: what "through soundfile alone" means.
NO_TORCHCODEC = "import sys\nfor m in ('torchcodec', 'av', 'librosa'):\n    sys.modules[m] = None\n"


def test_open_yields_float32_clips_whose_pcm_is_the_stored_pcm(sample_out):
    out, _ = sample_out
    records = audiodata.open(out, "sft", split="train")
    assert len(records) == 50 and records.sampling_rate == 16000
    seen = 0
    for record in records:
        assert len(record["audios"]) == len(record["audio_info"]) >= 1
        assert isinstance(record["messages"], list) and record["id"]
        for clip, info in zip(record["audios"], record["audio_info"], strict=True):
            assert clip["array"].dtype == np.float32 and clip["array"].ndim == 1
            assert clip["sampling_rate"] == info["sampling_rate"] == 16000
            assert len(clip["array"]) == info["num_samples"]
            assert pcm_hash(pcm16(clip["array"])) == info["pcm_hash"]  # the contract: the stored PCM, exactly
            seen += 1
    assert seen == 53


def test_open_reads_only_the_asked_columns_and_always_the_audio(sample_out):
    out, _ = sample_out
    record = next(iter(audiodata.open(out, "dpo", columns=["id"])))
    assert set(record) == {"id", "audios"} and record["audios"][0]["array"].dtype == np.float32


def test_open_decodes_without_torchcodec_or_ffmpeg(sample_out):
    out, _ = sample_out
    code = NO_TORCHCODEC + (
        "import audiodata\n"
        f"records = list(audiodata.open({str(out)!r}, 'dpo'))\n"
        "print(len(records), records[0]['audios'][0]['array'].dtype)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["13", "float32"]


def test_open_asks_for_a_config_it_has(sample_out, tmp_path: Path):
    out, _ = sample_out
    with pytest.raises(UsageError, match=r"several configs \(sft, dpo\)"):
        audiodata.open(out)
    with pytest.raises(UsageError, match="no config 'kto'"):
        audiodata.open(out, "kto")
    with pytest.raises(UsageError, match=r"no split 'test' \(splits: train\)"):
        audiodata.open(out, "sft", split="test")
    with pytest.raises(DatasetError, match="not a converted dataset"):
        audiodata.open(tmp_path)


def test_open_names_a_clip_that_does_not_decode(sample_out, tmp_path: Path):
    import pyarrow.parquet as pq

    out, _ = sample_out
    ds = tmp_path / "ds"
    shutil.copytree(out, ds)
    shard = ds / ConvertedDataset.open(ds).shards("dpo")[0].file
    table = pq.read_table(shard)
    audios = table.column("audios").to_pylist()
    audios[2][0]["bytes"] = b"not audio at all" * 8
    idx = table.schema.get_field_index("audios")
    table = table.set_column(idx, table.schema.field(idx), [audios])
    pq.write_table(table, shard)
    with pytest.raises(DatasetError, match=r"shard data/dpo/train-00000-of-00001.parquet row 2 audios\[0\] does not decode"):
        list(audiodata.open(ds, "dpo"))


def test_open_downloads_a_hub_dataset_config_by_config(sample_out, tmp_path: Path, monkeypatch):
    """A Hub id goes through huggingface_hub's snapshot_download: the manifest and card first, then only
    the shards of the asked config and split (here a local copy stands in for the Hub)."""
    out, _ = sample_out
    asked: list[list[str]] = []
    local = tmp_path / "snapshot"

    def snapshot(repo_id: str, files: list[str], revision: str | None, token: str | None) -> Path:
        assert repo_id == "me/audio-sft" and revision == "v1"
        asked.append(files)
        for name in files:
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / name, local / name)
        return local

    monkeypatch.setattr(decoding, "_snapshot", snapshot)
    records = list(audiodata.open("me/audio-sft", "dpo", revision="v1"))
    assert len(records) == 13 and records[0]["audios"][0]["sampling_rate"] == 16000
    assert asked == [["manifest.json", "README.md"], ["data/dpo/train-00000-of-00001.parquet"]]


# -- verify --decoders -----------------------------------------------------------------------------------------


def test_verify_decoders_agree_on_a_converted_dataset(sample_out, capsys):
    out, _ = sample_out
    paths = [name for name, why in available_decoders().items() if why is None]
    assert "soundfile" in paths
    assert main(["verify", str(out), "--decoders", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["decoders"] == paths and report["problems"] == []


def test_verify_decoders_checks_datasets_own_decoding_where_it_runs(sample_out):
    if available_decoders()["datasets"] is not None:
        pytest.skip(available_decoders()["datasets"])
    out, _ = sample_out
    report = verify(out, audio=False, decoders=["datasets"])
    assert report.decoders == ["datasets"] and report.problems == []


def _shifted(blob: bytes) -> tuple[np.ndarray, int]:
    """A decoder that is one LSB off on one sample: what a resampling or dithering decoder would give."""
    array, rate = decoding.decode_soundfile(blob)
    array = array.copy()
    array[len(array) // 2] += 1 / 32768
    return array, rate


def _failing(blob: bytes) -> tuple[np.ndarray, int]:
    raise RuntimeError("Could not load libtorchcodec: FFmpeg libraries not found")


def test_verify_decoders_reports_a_path_that_disagrees_or_fails(sample_out, monkeypatch):
    out, _ = sample_out
    monkeypatch.setitem(DECODERS, "shifted", Decoder("shifted", _shifted))
    monkeypatch.setitem(DECODERS, "failing", Decoder("failing", _failing))
    report = verify(out, audio=False, decoders=["soundfile", "shifted", "failing"])
    assert report.by_code() == {"V018": 66, "V019": 66}  # every clip, through each bad path; soundfile agrees
    first: dict = {}
    for problem in report.problems:
        first.setdefault(problem.code, problem)
    assert first["V018"].where == "data/sft/train-00000-of-00001.parquet row 0 audios[0]"
    assert "shifted decodes it to pcm_hash" in first["V018"].message and "audio_info says" in first["V018"].message
    assert first["V019"].message.startswith("does not decode through failing: RuntimeError: Could not load libtorchcodec")


# -- the card's loading snippets ---------------------------------------------------------------------------------


def card_snippets(out: Path) -> list[str]:
    text = (out / "README.md").read_text(encoding="utf-8")
    loading = text[text.index("## Loading") :]
    blocks = re.findall(r"```python\n(.*?)```", loading, flags=re.S)
    assert len(blocks) == 2 and all(f'"{SOURCE_PLACEHOLDER}"' in b for b in blocks)
    return [b.replace(SOURCE_PLACEHOLDER, str(out)) for b in blocks]


def test_the_cards_loading_snippets_run_as_written(sample_out):
    out, _ = sample_out
    with_audiodata, with_datasets = card_snippets(out)
    scope: dict = {}
    exec(compile(with_audiodata, "card-snippet-audiodata", "exec"), scope)
    assert scope["clip"]["array"].dtype == np.float32 and scope["clip"]["sampling_rate"] == 16000
    scope = {}
    exec(compile(with_datasets, "card-snippet-datasets", "exec"), scope)
    assert scope["array"].dtype == np.float32 and scope["sampling_rate"] == 16000
    first = next(iter(ConvertedDataset.open(out).iter_rows(["audio_info"], config="sft")))
    assert pcm_hash(pcm16(scope["array"])) == first["audio_info"][0]["pcm_hash"]


def test_the_cards_snippets_need_no_torchcodec(sample_out, tmp_path: Path):
    """Run both snippets in a fresh interpreter where torchcodec, PyAV and librosa cannot be imported."""
    out, _ = sample_out
    script = tmp_path / "snippets.py"
    script.write_text(NO_TORCHCODEC + "\n".join(card_snippets(out)) + "\nprint(array.dtype, sampling_rate)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's audiodata, as the script lies elsewhere
    done = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["float32", "16000"]


def test_a_one_config_card_loads_without_a_config_name(tmp_path: Path):
    out = tmp_path / "one"
    audiodata.convert([str(REPO / "sample_data" / "minicpm.jsonl")], out, num_workers=1)
    with_audiodata, with_datasets = card_snippets(out)
    assert 'audiodata.open(source, split="train")' in with_audiodata and 'load_dataset(source, split="train")' in with_datasets
    scope: dict = {}
    exec(compile(with_audiodata, "card-snippet-audiodata", "exec"), scope)
    assert scope["clip"]["array"].dtype == np.float32
