"""A Parquet input is split across ranks by row group (each row group to the rank its first byte falls in), numbered
as in the whole file, and ranks + merge still give the local run's answer: the same rows in order, the same rejects
(located by their row in the whole file) and duplicate clusters."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.pipeline import ranks
from audiodata.readers.hfdataset import iter_rows, row_group_starts
from audiodata.readers.sources import expand
from tests.conftest import SAMPLE
from tests.pipeline.test_ranks import rows

CLIPS = ["clip01_22k.wav", "clip03_22k.wav", "clip07_16k.flac", "clip09_16k.flac", "clip05_8k.wav", "clip10_48k.flac"]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """13 rows in row groups of 3 (5 groups): clips embedded as push_to_hub embeds them, an empty transcript (a
    reject) and a copy of row 0 in a later group (a duplicate across ranks)."""
    from datasets import Audio, Dataset

    root = tmp_path_factory.mktemp("pq")
    names = CLIPS + CLIPS + [CLIPS[0]]
    texts = [f"clip {k}" for k in range(len(names))]
    texts[4] = ""  # rejected: no transcript
    texts[12] = texts[0]  # an exact copy of row 0
    audio = [{"bytes": (SAMPLE / "audio" / n).read_bytes(), "path": n} for n in names]
    ds = Dataset.from_dict({"audio": audio, "sentence": texts}).cast_column("audio", Audio())
    ds.to_parquet(str(root / "whole.parquet"))
    pq.write_table(pq.read_table(root / "whole.parquet"), root / "corpus.parquet", row_group_size=3)
    return root / "corpus.parquet"


def test_row_group_starts_cut_the_file(parquet: Path) -> None:
    starts = row_group_starts(parquet)
    assert [row for _, row in starts] == [0, 3, 6, 9, 12]
    assert starts[0][0] == 0 and all(a < b for (a, _), (b, _) in itertools.pairwise(starts))
    assert starts[-1][0] < parquet.stat().st_size
    whole = [item.member for item in iter_rows(parquet, "x")]
    parts = [(at, starts[k + 1][0] if k + 1 < len(starts) else parquet.stat().st_size) for k, (at, _) in enumerate(starts)]
    pieces = [[item.member for item in iter_rows(parquet, "x", part)] for part in parts]
    assert pieces == [whole[0:3], whole[3:6], whole[6:9], whole[9:12], whole[12:13]]  # numbered as in the whole file
    assert list(iter_rows(parquet, "x", (parts[1][0] + 1, parts[2][0]))) == []  # no row group starts there


@pytest.mark.parametrize("count", [2, 3, 5])
def test_parquet_ranks_merge_to_the_local_answer(parquet: Path, tmp_path: Path, count: int) -> None:
    opts = {"num_workers": 1, "dedup": "exact", "val_ratio": 0.3}
    local = tmp_path / "local"
    audiodata.convert([str(parquet)], local, **opts)
    files = expand([str(parquet)])
    plans = [ranks.plan(files, count, i) for i in range(count)]
    assert sum(1 for p in plans if p) >= 2 and all(p.start is not None for plan in plans for p in plan)  # really split
    out = tmp_path / "ranked"
    for i in range(count):
        audiodata.convert([str(parquet)], out, num_shards=count, shard_index=i, **opts)
    merged = audiodata.merge(out)
    assert rows(out) == rows(local)
    assert (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()
    entries = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(e.get("member"), "duplicate" in e) for e in entries] == [("row 4", False), ("row 12", True)]
    assert merged.records_read == 13 and merged.records_duplicate == 1
