"""Ranks + merge give the local run's answer: the same rows in the same order, the same rejects.jsonl, the
same duplicate clusters and accounting, on a corpus with rejects, exact and near duplicates across ranks,
SFT, DPO and KTO, a validation split and a JSONL file split by byte range; merge refuses what it cannot merge."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

import audiodata
from audiodata.cli.main import main
from audiodata.dataset import ConvertedDataset, Summary
from audiodata.pipeline import ranks
from audiodata.pipeline.merge import MergeError, merge
from audiodata.readers.sources import expand
from tests.conftest import SAMPLE

AUDIO = SAMPLE / "audio"
BASE = "clip02_22k.wav"
OTHERS = ["clip01_22k.wav", "clip03_22k.wav", "clip07_16k.flac", "clip09_16k.flac", "clip05_8k.wav", "clip10_48k.flac"]
TEXT = "Please call Stella and ask her to bring these things with her."
OPTS: dict[str, Any] = {"num_workers": 1, "dedup": "near", "val_ratio": 0.3, "max_shard_size": 64 * 1024}


def sft(audio: str, text: str = TEXT) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "<audio>Transcribe."}, {"role": "assistant", "content": text}],
        "audios": [audio],
    }


def dpo(audio: str, chosen: str = TEXT, rejected: str = "Please call Bella.") -> dict[str, Any]:
    return {
        "conversations": [{"from": "human", "value": "<audio>What is said?"}],
        "chosen": {"from": "gpt", "value": chosen},
        "rejected": {"from": "gpt", "value": rejected},
        "audios": [audio],
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three inputs: a JSONL that ranks split by bytes, a JSON array (read whole), another JSONL; copies of one
    clip (exact and near) spread over all three, records that are rejected, DPO pairs and one DPO copy."""
    root = tmp_path_factory.mktemp("ranks")
    x, sr = sf.read(AUDIO / BASE, dtype="float32", always_2d=True)
    x = x[:, 0]
    shutil.copy(AUDIO / BASE, root / "base.wav")
    shutil.copy(AUDIO / BASE, root / "copy.wav")
    sf.write(root / "up44.wav", soxr.resample(x, sr, 44100), 44100)
    sf.write(root / "gain.wav", x * 0.5, sr)
    for name in OTHERS:
        shutil.copy(AUDIO / name, root / name)
    a = [sft("base.wav"), sft("clip01_22k.wav", "one"), sft("missing.wav", "missing"), dpo("clip03_22k.wav")]
    a += [sft(n, f"other {k}") for k, n in enumerate(OTHERS)]
    a += [sft("copy.wav"), sft("gain.wav"), dpo("clip07_16k.flac", "seven"), sft("clip09_16k.flac", "nine")]
    a += [kto("clip10_48k.flac", True)]
    lines = [json.dumps(r) for r in a]
    lines.insert(3, "{not json")
    lines.insert(6, "")
    (root / "a.jsonl").write_text("\n".join(lines) + "\n")
    (root / "b.json").write_text(json.dumps([dpo("clip03_22k.wav"), sft("up44.wav"), sft("clip05_8k.wav", "five"), {"bad": 1}]))
    c = [sft("clip10_48k.flac", "ten"), sft("copy.wav"), dpo("up44.wav"), sft("clip01_22k.wav", "one"), sft("base.wav", "other")]
    c += [kto("clip10_48k.flac", True), kto("clip10_48k.flac", False)]  # a KTO copy (dropped), the other label (kept)
    (root / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in c))
    return root


def kto(audio: str, label: bool) -> dict[str, Any]:
    turns = [{"role": "user", "content": "<audio>Is this clear?"}, {"role": "assistant", "content": "Yes, clear."}]
    return {"messages": turns, "label": label, "audios": [audio]}


def inputs(root: Path) -> list[str]:
    return [str(root / "a.jsonl"), str(root / "b.json"), str(root / "c.jsonl")]


@pytest.fixture(scope="module")
def local(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = audiodata.convert(inputs(corpus), out, **OPTS)
    assert result.records_duplicate >= 4 and result.records_rejected >= 3
    assert set(ConvertedDataset.open(out).configs) == {"sft", "dpo", "kto"}
    assert result.duplicates_by_kind["exact"] >= 4 and result.duplicates_by_kind["near"] >= 2
    return out


def run_ranks(corpus: Path, out: Path, n: int, **extra: Any) -> None:
    for i in range(n):
        audiodata.convert(inputs(corpus), out, num_shards=n, shard_index=i, **{**OPTS, **extra})


def rows(out: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    ds = ConvertedDataset.open(out)
    return {(c, s): list(ds.iter_rows(config=c, split=s)) for c in ds.configs for s in ds.splits(c)}


def without_bytes(summary: Summary) -> Summary:
    """A summary less the shard bytes of each split: ranks cut shards elsewhere (README: what may differ)."""
    configs = {k: replace(c, splits={s: replace(v, bytes=0) for s, v in c.splits.items()}) for k, c in summary.configs.items()}
    return replace(summary, configs=configs)


def test_slices_cover_every_byte_once(corpus: Path) -> None:
    files = expand(inputs(corpus))
    for n in (1, 2, 3, 5, 8):
        got: dict[int, list[tuple[int, int]]] = {}
        for i in range(n):
            for p in ranks.plan(files, n, i):
                size = files[p.file].size
                got.setdefault(p.file, []).append((p.start or 0, p.end if p.end is not None else size))
        for k, f in enumerate(files):
            spans = sorted(got[k])
            assert spans[0][0] == 0 and spans[-1][1] == f.size and all(a[1] == b[0] for a, b in itertools.pairwise(spans))
            if not ranks.splittable(f):
                assert len(spans) == 1
    assert ranks.splittable(files[0]) and not ranks.splittable(files[1])
    assert len({ranks.plan(files, 3, i)[0] for i in range(3)}) == 3  # a.jsonl really is split


@pytest.fixture(scope="module")
def local_big(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of many rows: merge rewrites those that lose rows to dedup."""
    out = tmp_path_factory.mktemp("local_big") / "out"
    audiodata.convert(inputs(corpus), out, **{**OPTS, "max_shard_size": 10**7})
    return out


@pytest.mark.parametrize(("n", "shard_size"), [(2, 64 * 1024), (3, 64 * 1024), (5, 64 * 1024), (3, 10**7)])
def test_ranks_and_merge_give_the_local_answer(
    corpus: Path, local: Path, local_big: Path, tmp_path: Path, n: int, shard_size: int
) -> None:
    out = tmp_path / "out"
    run_ranks(corpus, out, n, max_shard_size=shard_size)
    local = local if shard_size == OPTS["max_shard_size"] else local_big
    rewritten = []
    result = merge(out, on_progress=lambda done, total: rewritten.append(len(list((out / ".audiodata").rglob("*.parquet")))))
    assert (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()  # rejects and clusters, in order
    assert rows(out) == rows(local)  # every row, in order, byte for byte
    merged, alone = ConvertedDataset.open(out).manifest, ConvertedDataset.open(local).manifest
    assert without_bytes(merged.summary) == without_bytes(alone.summary)  # read = written + rejected + duplicates, by code, kind
    if shard_size == OPTS["max_shard_size"]:  # shards of one row: the same files, to the byte
        assert merged.summary == alone.summary and merged.shards == alone.shards
    assert merged.options == alone.options and merged.inputs == alone.inputs and merged.rank is None
    assert result.records_read == result.records_written + result.records_rejected + result.records_duplicate
    card = ConvertedDataset.open(out).card()
    assert card.meta["configs"] == ConvertedDataset.open(local).card().meta["configs"]
    assert all(s.file.startswith("data/") for s in merged.shards)
    for s in merged.shards:
        assert (out / s.file).stat().st_size == s.bytes
    if shard_size > OPTS["max_shard_size"]:
        assert max(rewritten) > 0  # shards that lost rows to dedup were rewritten (and the merge still equals the local run)
        assert audiodata.verify(out, audio=False).problems == []  # their sizes and checksums are the manifest's


def test_merge_is_idempotent_and_leaves_the_ranks_alone(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_ranks(corpus, out, 2)
    before = {p: p.read_bytes() for p in (out / "ranks").rglob("*") if p.is_file() and "lock" not in p.name}
    merge(out)
    manifest = (out / "manifest.json").read_bytes()
    again = merge(out)
    assert again.already_complete and (out / "manifest.json").read_bytes() == manifest
    after = {p: p.read_bytes() for p in (out / "ranks").rglob("*") if p.is_file() and "lock" not in p.name}
    assert after == before
    (out / "manifest.json").unlink()  # an interrupted merge: done again, the same
    merge(out)
    assert (out / "manifest.json").read_bytes() == manifest


def test_merge_refuses_missing_unfinished_and_mismatched_ranks(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    audiodata.convert(inputs(corpus), out, num_shards=4, shard_index=0, **OPTS)
    audiodata.convert(inputs(corpus), out, num_shards=4, shard_index=2, **{**OPTS, "sample_rate": 22050})
    with pytest.raises(MergeError) as exc:
        merge(out)
    text = str(exc.value)
    assert "rank 1 of 4 is missing" in text and "rank 3 of 4 is missing" in text
    assert "rank 2 is of another conversion" in text and "option sample_rate: 16000 vs 22050" in text
    assert not (out / "manifest.json").exists()


def test_an_interrupted_rank_resumes_to_the_same_answer(corpus: Path, local: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen = {"n": 0}

    def crash(p: Any) -> None:
        seen["n"] += 1
        if seen["n"] == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audiodata.convert(inputs(corpus), out, num_shards=2, shard_index=0, on_progress=crash, **OPTS)
    audiodata.convert(inputs(corpus), out, num_shards=2, shard_index=1, **OPTS)
    with pytest.raises(MergeError, match="rank-00000-of-00002: unfinished"):
        merge(out)
    audiodata.convert(inputs(corpus), out, num_shards=2, shard_index=0, **OPTS)
    merge(out)
    assert (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()
    assert rows(out) == rows(local)


def test_cli_merge_of_rank_folders_into_another_output(corpus: Path, local: Path, tmp_path: Path, capsys: Any) -> None:
    parts = tmp_path / "parts"
    for i in range(2):
        args = ["convert", *inputs(corpus), "-o", str(parts), "--num-shards", "2", "--shard-index", str(i), "--no-progress"]
        args += ["--num-workers", "1", "--dedup", "near", "--val-ratio", "0.3", "--max-shard-size", "64KiB"]
        assert main(args) == 1  # some records rejected
    folders = [str(p) for p in sorted((parts / "ranks").iterdir())]
    assert [Path(f).name for f in folders] == ["rank-00000-of-00002", "rank-00001-of-00002"]
    capsys.readouterr()
    assert main(["merge", *folders, "-o", str(tmp_path / "merged"), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["records_duplicate"] == ConvertedDataset.open(local).summary.duplicates
    assert rows(tmp_path / "merged") == rows(local)
    assert main(["merge", folders[0], "-o", str(tmp_path / "half")]) == 2
    assert "rank 1 of 2 is missing" in capsys.readouterr().err


def test_without_dedup_shards_are_linked_not_rewritten(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_ranks(corpus, out, 3, dedup="off")
    merge(out)
    ds = ConvertedDataset.open(out)
    inodes = {p.stat().st_ino for p in (out / "ranks").rglob("*.parquet")}
    assert all(ds.path(s).stat().st_ino in inodes for s in ds.shards())
    assert not (out / "ranks" / "rank-00000-of-00003" / ".audiodata" / ranks.KEYS).exists()
    assert np.isfinite(ds.summary.audio_seconds)


def test_a_slurm_array_task_finds_its_rank(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "2")  # --array=0-2 for 2 ranks: a mistake
    base = ["convert", *inputs(corpus), "-o", str(tmp_path / "out"), "--no-progress", "--num-workers", "1"]
    assert main([*base, "--num-shards", "2"]) == 2
    assert "this Slurm array's task ids reach 2" in capsys.readouterr().err
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "1")  # --array=1: rank 1 resubmitted alone
    assert main([*base, "--num-shards", "2"]) in (0, 1)
    assert ConvertedDataset.open(tmp_path / "out" / "ranks" / "rank-00001-of-00002").manifest.rank is not None
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert main([*base, "--num-shards", "2"]) == 2
    assert "needs --shard-index" in capsys.readouterr().err


def test_merge_refuses_slices_that_do_not_tile_the_inputs(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_ranks(corpus, out, 3, dedup="off")
    path = out / "ranks" / "rank-00001-of-00003" / "manifest.json"
    manifest = json.loads(path.read_text())
    first = manifest["rank"]["parts"][0]
    assert first["start"] is not None  # a.jsonl is split: rank 1 continues rank 0's range
    first["start"] += 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(MergeError, match="input 0 is read again or with a gap"):
        merge(out)


def test_ranks_on_another_filesystem_are_copied(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    out = tmp_path / "out"
    run_ranks(corpus, out, 2, dedup="off")

    def no_link(src: Any, dst: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    merge(out)
    ds = ConvertedDataset.open(out)
    inodes = {p.stat().st_ino for p in (out / "ranks").rglob("*.parquet")}
    assert ds.shards() and not any(ds.path(s).stat().st_ino in inodes for s in ds.shards())
    ds.check_shards()


def test_a_utf16_jsonl_goes_whole_to_one_rank(tmp_path: Path) -> None:
    """A UTF-16 .jsonl is refused whole (one F009); were it split, each of N ranks would report that F009 again.
    Its UTF-8 twin is split (the check is the encoding, not the name)."""
    text = "".join(json.dumps({"a": i}) + "\n" for i in range(200))
    (tmp_path / "u16.jsonl").write_bytes(text.encode("utf-16"))
    (tmp_path / "u8.jsonl").write_text(text, encoding="utf-8")
    for name, split in (("u16.jsonl", False), ("u8.jsonl", True)):
        files = expand([str(tmp_path / name)])
        assert ranks.splittable(files[0]) is split
        owners = [i for i in range(3) if ranks.plan(files, 3, i)]
        assert len(owners) == (3 if split else 1), name
