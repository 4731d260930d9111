"""Publishing, offline: what gets uploaded, in which commits, and what a re-run skips."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from audiodata.dataset import DatasetError
from audiodata.publish import UploadItem, already_there, batches, plan, publish


def test_plan_lists_shards_then_card_and_manifest(sample_out, tmp_path: Path):
    out, _ = sample_out
    items = plan(out)
    names = [i.path_in_repo for i in items]
    assert names[-2:] == ["README.md", "manifest.json"]  # the card goes up only once the data is there
    assert all(n.startswith("data/") and n.endswith(".parquet") for n in names[:-2])
    for item in items[:-2]:
        assert item.sha256 == hashlib.sha256(item.local.read_bytes()).hexdigest()
    assert "rejects.jsonl" in [i.path_in_repo for i in plan(out, include_rejects=True)]
    with pytest.raises(DatasetError, match=r"no manifest\.json"):
        plan(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    next((copy / "data").rglob("*.parquet")).unlink()
    with pytest.raises(DatasetError, match="missing"):
        plan(copy)


def test_commits_are_bounded_in_size():
    items = [UploadItem(f"f{i}", Path("x"), size) for i, size in enumerate([40, 40, 30, 100, 5])]
    groups = [[i.path_in_repo for i in b] for b in batches(items, max_bytes=80)]
    assert groups == [["f0", "f1"], ["f2"], ["f3"], ["f4"]]  # an oversized file goes alone


def test_a_rerun_skips_what_the_repo_already_holds(tmp_path: Path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"hello audio")
    item = UploadItem("a.bin", f, f.stat().st_size)
    same_lfs = SimpleNamespace(size=item.size, lfs=SimpleNamespace(sha256=hashlib.sha256(b"hello audio").hexdigest()))
    other_lfs = SimpleNamespace(size=item.size, lfs=SimpleNamespace(sha256="0" * 64))
    git_id = hashlib.sha1(b"blob 11\0hello audio").hexdigest()
    assert already_there(item, same_lfs) and not already_there(item, other_lfs)
    assert already_there(item, SimpleNamespace(size=item.size, lfs=None, blob_id=git_id))
    assert not already_there(item, SimpleNamespace(size=item.size + 1, lfs=None, blob_id=git_id))
    assert not already_there(item, None)


def test_dry_run_touches_nothing(sample_out):
    out, _ = sample_out
    result = publish(out, "someone/dataset", dry_run=True)
    assert result.dry_run and [i.path_in_repo for i in result.uploaded] == [i.path_in_repo for i in plan(out)]
    assert result.commits == []
