"""Deduplication: every variant type of real (espeak-ng) speech found, hard negatives left alone,
deterministic clusters, convert's accounting, and leakage against a converted dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

import audiodata
from audiodata.cli.main import main
from audiodata.dedup.fingerprint import fingerprint, similarity
from audiodata.pipeline.dedup import dedup
from tests.conftest import SAMPLE

AUDIO = SAMPLE / "audio"
BASE = "clip02_22k.wav"  # 3.95 s, "Please call Stella ..."
OTHERS = ["clip01_22k.wav", "clip03_22k.wav", "clip07_16k.flac", "clip09_16k.flac"]  # other sentences
TEXT = "Please call Stella and ask her to bring these things with her."


def load(path: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x[:, 0], sr


def noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(x[np.abs(x) > 1e-4] ** 2))
    return np.clip(x + rng.standard_normal(x.size).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10)), -1, 1)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base clip and its variants, made the way they happen in the wild."""
    root = tmp_path_factory.mktemp("dedup")
    x, sr = load(AUDIO / BASE)
    shutil.copy(AUDIO / BASE, root / "base.wav")
    shutil.copy(AUDIO / BASE, root / "copy.wav")  # same bytes, another name
    sf.write(root / "container.flac", x, sr, subtype="PCM_16")  # lossless container change
    sf.write(root / "up44.wav", soxr.resample(x, sr, 44100), 44100)  # 22.05 -> 44.1 kHz
    sf.write(root / "lossy.mp3", x, sr, format="MP3")  # libsndfile's LAME encoder
    sf.write(root / "gain.wav", x * 0.5, sr)
    sf.write(root / "noise35.wav", noise(x, 35.0), sr)
    sf.write(root / "fast.wav", soxr.resample(x, sr, int(sr / 1.12)), sr)  # same words, 12% faster (hard negative)
    for name in OTHERS:
        shutil.copy(AUDIO / name, root / name)
    return root


VARIANTS = {"copy.wav": "exact", "container.flac": "exact", "up44.wav": "near", "lossy.mp3": "near", "gain.wav": "near"}
VARIANTS["noise35.wav"] = "near"
NEGATIVES = ["fast.wav", *OTHERS]


def sft(audio: str, text: str = TEXT, prompt: str = "<audio>Transcribe.") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}], "audios": [audio]}


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_fingerprint_similarity_separates_copies_from_other_speech(variants: Path):
    from audiodata.audio.decode import decode
    from audiodata.audio.load import AudioSource
    from audiodata.audio.transform import to_pcm16

    def fp(name: str):  # decode and resample exactly as the pipeline does
        return fingerprint(to_pcm16(decode(AudioSource(path=variants / name, name=name), 100.0), 16000))

    base = fp("base.wav")
    for name in VARIANTS:
        assert similarity(base, fp(name)) >= 0.85, name
    for name in NEGATIVES:
        assert similarity(base, fp(name)) < 0.75, name


def test_every_variant_type_is_found_and_no_hard_negative(variants: Path, tmp_path: Path):
    names = ["base.wav", *VARIANTS, *NEGATIVES]
    path = write(tmp_path / "in.jsonl", [sft(str(variants / n)) for n in names])
    report = dedup([str(path)], num_workers=1).to_dict()
    [cluster] = report["clusters"]
    members = {m["index"]: m for m in cluster["members"]}
    assert members[0].get("match") is None  # the first one is kept
    for i, name in enumerate(names):
        if name in VARIANTS:
            assert members[i]["match"] == VARIANTS[name], name
        elif i:
            assert i not in members, f"{name} flagged as a duplicate"
    assert report["summary"]["exact"] == 2 and report["summary"]["near"] == 4
    assert report["summary"]["comparisons"] < len(names) * (len(names) - 1) // 2  # not all pairs


def test_exact_mode_finds_only_exact_copies(variants: Path, tmp_path: Path):
    path = write(tmp_path / "in.jsonl", [sft(str(variants / n)) for n in ["base.wav", *VARIANTS]])
    report = dedup([str(path)], num_workers=1, mode="exact").to_dict()
    [cluster] = report["clusters"]
    assert sorted(m["index"] for m in cluster["members"]) == [0, 1, 2]  # copy + lossless container change


def test_same_audio_other_transcript_is_a_conflict_and_tasks_are_not(variants: Path, tmp_path: Path):
    records = [
        sft(str(variants / "base.wav")),
        sft(str(variants / "gain.wav"), text="Please call Stella and ask her to bring those things."),  # conflict
        sft(str(variants / "base.wav"), prompt="<audio>Translate to French.", text="Appelez Stella."),  # another task
    ]
    report = dedup([str(write(tmp_path / "in.jsonl", records))], num_workers=1).to_dict()
    assert report["clusters"] == []
    assert [[m["index"] for m in c["members"]] for c in report["conflicts"]] == [[0, 1]]


def test_dpo_pairs_stay_together(variants: Path, tmp_path: Path):
    def dpo(chosen: str) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": "<audio>Summarise."}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": "No idea."}],
            "audios": [str(variants / "base.wav")],
        }

    records = [dpo("Stella is asked to bring things."), dpo("Stella is asked to bring things."), dpo("A call to Stella.")]
    report = dedup([str(write(tmp_path / "in.jsonl", records))], num_workers=1).to_dict()
    assert [[m["index"] for m in c["members"]] for c in report["clusters"]] == [[0, 1]]  # whole pairs, not halves
    assert report["conflicts"] == []  # another preference pair on the same prompt is normal


def test_clusters_are_deterministic_across_runs_and_workers(variants: Path, tmp_path: Path):
    names = ["base.wav", *VARIANTS, *NEGATIVES] * 2
    path = write(tmp_path / "in.jsonl", [sft(str(variants / n)) for n in names])
    one = dedup([str(path)], num_workers=1, batch_size=3).to_dict()
    two = dedup([str(path)], num_workers=2, batch_size=3).to_dict()
    again = dedup([str(path)], num_workers=1).to_dict()
    assert one["clusters"] == two["clusters"] == again["clusters"] and one["clusters"]


def test_convert_dedup_keeps_the_first_and_accounts_for_every_record(variants: Path, tmp_path: Path):
    names = ["base.wav", *VARIANTS, *NEGATIVES]
    records = [sft(str(variants / n)) for n in names] + ['{"broken']
    path = write(tmp_path / "in.jsonl", [r for r in records if isinstance(r, dict)])
    path.write_text(path.read_text() + '{"broken\n')
    result = audiodata.convert([str(path)], tmp_path / "out", num_workers=1, dedup="near")
    assert result.records_read == result.records_written + result.records_rejected + result.records_duplicate
    assert (result.records_duplicate, result.records_rejected) == (len(VARIANTS), 1)
    assert result.duplicates_by_kind == {"exact": 2, "near": 4}
    assert result.exit_code == 1  # the broken line, not the duplicates
    entries = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    dups = [e for e in entries if "duplicate" in e]
    assert {e["duplicate"]["cluster"] for e in dups} == {"in.jsonl#0"}  # the input typed absolute, named by its file
    assert all(e["record"]["audios"][0].endswith(tuple(VARIANTS)) and e["reasons"][0]["code"] in ("D001", "D002") for e in dups)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["summary"]["duplicates"] == len(VARIANTS)
    off = audiodata.convert([str(path)], tmp_path / "off", num_workers=1)
    assert off.records_written == result.records_written + len(VARIANTS)


def test_against_finds_leakage_into_a_test_split(variants: Path, tmp_path: Path, capsys):
    test_set = write(tmp_path / "test.jsonl", [sft(str(variants / "base.wav")), sft(str(variants / OTHERS[0]), text="Fox.")])
    audiodata.convert([str(test_set)], tmp_path / "test_out", num_workers=1)
    train = write(
        tmp_path / "train.jsonl",
        [
            sft(str(variants / "lossy.mp3")),
            sft(str(variants / OTHERS[1]), text="Rain."),
            sft(str(variants / OTHERS[0]), text="Fox."),
        ],
    )
    report = dedup([str(train)], num_workers=1, against=tmp_path / "test_out").to_dict()
    leaks = [c for c in report["clusters"] if c["leak"]]
    leaked = sorted(m["index"] for c in leaks for m in c["members"] if not m.get("reference"))
    assert leaked == [0, 2] and report["summary"]["leaks"] == 2 and report["summary"]["duplicates"] == 0
    out = tmp_path / "r.json"
    assert main(["dedup", str(train), "--against", str(tmp_path / "test_out"), "--report-json", str(out), "--no-progress"]) == 1
    assert json.loads(out.read_text())["summary"]["leaks"] == 2
    clean = write(tmp_path / "clean.jsonl", [sft(str(variants / OTHERS[2]), text="Shells.")])
    assert main(["dedup", str(clean), "--against", str(tmp_path / "test_out"), "--no-progress"]) == 0
    assert main(["dedup", str(clean), "--against", str(tmp_path)]) == 2  # not a converted dataset
    capsys.readouterr()


class Boom(Exception):
    pass


def test_convert_dedup_resumes_to_the_uninterrupted_output(variants: Path, tmp_path: Path):
    from tests.conftest import tree_bytes

    names = ["base.wav", *OTHERS, "fast.wav"] * 3 + list(VARIANTS)  # later copies of records written before the crash
    records = [sft(str(variants / n), text=f"{TEXT} ({n})" if n in OTHERS else TEXT) for n in names]
    path = write(tmp_path / "in.jsonl", records)
    ref = audiodata.convert([str(path)], tmp_path / "ref", num_workers=1, dedup="near", max_shard_size=64 * 1024)

    def crash(p: Any) -> None:
        if p.records + p.duplicates >= 14:
            raise Boom

    out = tmp_path / "out"
    with pytest.raises(Boom):
        audiodata.convert([str(path)], out, num_workers=1, dedup="near", max_shard_size=64 * 1024, on_progress=crash)
    assert json.loads((out / ".audiodata/state.json").read_text())["shards"], "some shards were durable before the crash"
    resumed = audiodata.convert([str(path)], out, num_workers=1, dedup="near", max_shard_size=64 * 1024)
    assert resumed.resumed_from > 0
    assert resumed.records_duplicate == ref.records_duplicate == len(names) - 6
    assert tree_bytes(out) == tree_bytes(tmp_path / "ref")


def test_near_dedup_works_at_any_output_rate(variants: Path, tmp_path: Path):
    """Fingerprints compare at 16 kHz whatever --sample-rate the shards are stored at."""
    path = write(tmp_path / "in.jsonl", [sft(str(variants / n)) for n in ("base.wav", "lossy.mp3", OTHERS[0])])
    result = audiodata.convert([str(path)], tmp_path / "out", num_workers=1, dedup="near", sample_rate=24000)
    assert (result.records_written, result.records_duplicate) == (2, 1)
    again = dedup([str(path)], num_workers=1, against=tmp_path / "out").to_dict()
    assert again["summary"]["leaks"] == 3  # the stored 24 kHz FLAC fingerprints match the inputs
