"""The sample corpus end to end: every dialect and reference form, every planted defect."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from audiodata.audio.transform import pcm_hash
from tests.conftest import SAMPLE


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def test_accounting_adds_up(sample_out, expected):
    _out, result = sample_out
    total = expected["total_good"] + expected["total_broken"]
    assert result.records_read == total
    assert result.records_written == expected["total_good"]
    assert result.records_rejected == expected["total_broken"]
    assert result.records_read == result.records_written + result.records_rejected
    assert result.exit_code == 1


def test_every_planted_defect_is_rejected_where_it_is(sample_out, expected):
    out, _ = sample_out
    found = set()
    for r in _rejects(out):
        rel = os.path.relpath(r["source"], SAMPLE)
        found.add((rel, "line", r["line"]))
        found.add((rel, "index", r["index"]))
        assert r["reasons"] and all(x["code"] and x["message"] for x in r["reasons"])
        assert ("record" in r) != ("raw" in r)  # the original is kept, parsed or raw
    for b in expected["broken"]:
        key = ("line", b["line"]) if "line" in b else ("index", b["index"])
        assert (b["file"], *key) in found, b


def test_reasons_name_the_field(sample_out):
    out, _ = sample_out
    by_code = {x["code"]: x for r in _rejects(out) for x in r["reasons"]}
    assert {"A001", "A002", "A003", "A004", "A005", "A006", "F001", "F002", "F003", "M001"} <= set(by_code)
    assert by_code["A002"]["field"] == "audios[0]"
    assert by_code["M001"]["field"] == "messages"
    malformed = next(r for r in _rejects(out) if r["reasons"][0]["code"] == "F001")
    assert malformed["raw"].startswith("{")  # the raw line is kept when it does not parse


def test_hub_layout_and_names(sample_out):
    out, result = sample_out
    files = sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*.parquet"))
    assert files == ["data/dpo/train-00000-of-00001.parquet", "data/sft/train-00000-of-00001.parquet"]
    assert not list(out.rglob("*.tmp"))
    assert {s.file for s in result.shards} == set(files)


def test_manifest_matches_the_files(sample_out):
    out, _ = sample_out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["sample_rate"] == 16000 and "num_workers" not in manifest["options"]
    for s in manifest["shards"]:
        blob = (out / s["file"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == s["sha256"]
        assert len(blob) == s["bytes"]
        assert pq.ParquetFile(out / s["file"]).metadata.num_rows == s["rows"]


def test_card_yaml_describes_the_shards(sample_out):
    out, _ = sample_out
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    names = [c["config_name"] for c in meta["configs"]]
    assert names == ["sft", "dpo"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/sft/train-*"}]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    rows = pq.ParquetFile(out / "data/sft/train-00000-of-00001.parquet").metadata.num_rows
    assert infos["sft"]["splits"][0] == {"name": "train", "num_bytes": infos["sft"]["download_size"], "num_examples": rows}
    audio = next(f for f in infos["sft"]["features"] if f["name"] == "audios")
    assert audio == {"name": "audios", "list": {"audio": {"sampling_rate": 16000}}}
    assert "audio hours" in text and "M001" in text  # the human summary, with rejects by reason


def test_parquet_schema_carries_datasets_features(sample_out):
    out, _ = sample_out
    schema = pq.read_schema(out / "data/sft/train-00000-of-00001.parquet")
    feats = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert feats["audios"] == {"feature": {"sampling_rate": 16000, "_type": "Audio"}, "_type": "List"}
    assert list(schema.names) == ["id", "messages", "system", "tools", "audios", "audio_info", "audio_seconds", "source"]


def test_rows_are_faithful(sample_out):
    out, _ = sample_out
    rows = pq.read_table(out / "data/sft/train-00000-of-00001.parquet").to_pylist()
    for row in rows:
        markers = sum(m["content"].count("<audio>") for m in row["messages"])
        assert markers == len(row["audios"]) == len(row["audio_info"])
        assert all(set(m) == {"role", "content"} for m in row["messages"])  # no spurious keys
        for audio, info in zip(row["audios"], row["audio_info"], strict=False):
            pcm, rate = sf.read(io.BytesIO(audio["bytes"]), dtype="int16")
            assert rate == info["sampling_rate"] == 16000 and pcm.ndim == 1
            assert pcm_hash(pcm) == info["pcm_hash"]
            assert abs(info["duration"] - len(pcm) / 16000) < 1e-6
            assert audio["path"].endswith(".flac")
    multi = [r for r in rows if len(r["audios"]) == 2]
    assert multi, "the voice-cloning sample (two audios) must survive"
    systems = {r["system"] for r in rows}
    assert "translate all input audio into English" in systems


def test_load_dataset_decodes_audio_at_16k(sample_out):
    pytest.importorskip("torchcodec")
    from datasets import load_dataset

    out, _ = sample_out
    ds = load_dataset(str(out), "sft", split="train")
    raw = pq.read_table(out / "data/sft/train-00000-of-00001.parquet").to_pylist()
    assert ds.num_rows == len(raw)
    row = ds[0]
    audio = row["audios"][0]
    assert audio["sampling_rate"] == 16000
    assert audio["array"].shape[0] == raw[0]["audio_info"][0]["num_samples"]
    assert row["messages"] == raw[0]["messages"]
    dpo = load_dataset(str(out), "dpo", split="train", streaming=True)
    first = next(iter(dpo))
    assert first["chosen"][0]["role"] == "assistant" and first["audios"][0]["sampling_rate"] == 16000


def test_every_dialect_and_reference_form_reaches_the_output(sample_out):
    out, _ = sample_out
    rows = [r for f in sorted((out / "data").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    sources = {Path(r["source"]["file"]).name for r in rows}
    assert {
        "minicpm.jsonl",
        "sharegpt_sft.json",
        "sharegpt_dpo.jsonl",
        "alpaca.json",
        "alpaca_dpo.jsonl",
        "swift.jsonl",
        "chat_content.jsonl",
        "audio_chat.json",
        "audio_rank.json",
        "more.jsonl.gz",
    } <= sources
    origins = [i["origin"] for r in rows for i in r["audio_info"]]
    assert "inline" in origins and any(o.endswith(".wav") for o in origins)
    formats = {i["source_format"] for r in rows for i in r["audio_info"]}
    assert {"WAV", "FLAC", "OGG", "MP3"} <= formats
    assert len(formats) >= 5  # m4a/opus through ffmpeg or libsndfile
