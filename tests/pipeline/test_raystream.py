"""The streaming Ray Data engine (read tasks -> ``process_batch`` as ``map_batches`` -> our writer as a Datasink in
the workers -> merge on the driver) gives the local pool's answer on the ranks test's corpus (rejects, exact and near
duplicates, SFT, DPO, KTO, a validation split, a JSONL split by bytes), resumes, and survives a killed worker; the fed
rank (the writer's half) is the rank's own convert, proven without Ray."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import audiodata
from audiodata.dataset import ConvertedDataset
from audiodata.pipeline.convert import FeedError, convert_fed, rank_feed_items
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.pipeline.process import process_batch
from audiodata.rules.registry import select
from tests.pipeline.ray_cluster import cluster
from tests.pipeline.test_ranks import OPTS, corpus, inputs, local, rows, without_bytes

__all__ = ["cluster", "corpus", "local"]  # module fixtures imported here (the shared cluster, the ranks test's corpus)


def _fed_pairs(paths: list[str], out: Path, options: ConvertOptions) -> list[Any]:
    settings = options.audio_settings(frozenset(select(None, None)))
    pairs = []
    for p, needs in rank_feed_items(paths, out, options):
        done = process_batch([(p.seq, p.record)], settings) if needs and p.record is not None else []
        pairs.append((p, done[0] if done else None))
    return pairs


def test_fed_ranks_merge_to_the_local_answer(corpus: Path, local: Path, tmp_path: Path) -> None:
    """Each rank read by ``rank_feed_items``, processed apart, written by ``convert_fed``: merge gives the local run."""
    out = tmp_path / "out"
    count = 3
    for i in range(count):
        options = ConvertOptions(**{**OPTS, "num_shards": count, "shard_index": i})
        convert_fed(inputs(corpus), out, options, iter(_fed_pairs(inputs(corpus), out, options)))
    audiodata.merge(out)
    assert (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()
    assert rows(out) == rows(local)
    assert without_bytes(ConvertedDataset.open(out).manifest.summary) == without_bytes(
        ConvertedDataset.open(local).manifest.summary
    )


def test_a_fed_rank_refuses_records_out_of_order(corpus: Path, tmp_path: Path) -> None:
    options = ConvertOptions(**{**OPTS, "num_shards": 2, "shard_index": 0})
    pairs = _fed_pairs(inputs(corpus), tmp_path / "out", options)
    pairs[1], pairs[2] = pairs[2], pairs[1]
    with pytest.raises(FeedError, match="fed record 2 where record 1 was due"):
        convert_fed(inputs(corpus), tmp_path / "out", options, iter(pairs))


def test_a_fed_rank_resumes_past_its_durable_shards(corpus: Path, tmp_path: Path) -> None:
    """A writer killed after some shards closed: fed again from the first record, the rank skips what is durable and
    ends equal to an uninterrupted rank (no reject listed twice)."""
    options = ConvertOptions(**{**OPTS, "num_shards": 2, "shard_index": 0, "max_shard_size": 64 * 1024})
    paths = inputs(corpus)
    pairs = _fed_pairs(paths, tmp_path / "whole", options)
    convert_fed(paths, tmp_path / "whole", options, iter(pairs))

    def dies(after: int) -> Iterator[Any]:
        for n, pair in enumerate(pairs):
            if n == after:
                raise KeyboardInterrupt  # a kill mid-rank
            yield pair

    with pytest.raises(KeyboardInterrupt):
        convert_fed(paths, tmp_path / "cut", options, dies(len(pairs) - 3))
    rank = "ranks/rank-00000-of-00002"
    assert (tmp_path / "cut" / rank / ".audiodata" / "state.json").is_file()
    result = convert_fed(paths, tmp_path / "cut", options, iter(pairs))
    assert result.resumed_from > 0
    assert rows(tmp_path / "cut" / rank) == rows(tmp_path / "whole" / rank)
    assert (tmp_path / "cut" / rank / "rejects.jsonl").read_bytes() == (tmp_path / "whole" / rank / "rejects.jsonl").read_bytes()


def test_convert_fed_is_for_ranks(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="num_shards"):
        convert_fed(inputs(corpus), tmp_path / "o", ConvertOptions(**OPTS), iter([]))


@pytest.mark.slow
@pytest.mark.parametrize("num_shards", [1, 5])  # 1: PIECES_PER_CPU pieces per CPU (8); 5: five pieces
def test_streaming_gives_the_local_answer(cluster: Any, corpus: Path, local: Path, tmp_path: Path, num_shards: int) -> None:
    from audiodata.pipeline.raystream import PIECES_PER_CPU, stream_on_ray

    out = tmp_path / "out"
    seen: list[int] = []
    done: list[int] = []
    stats: dict[str, Any] = {}
    options = ConvertOptions(**{**OPTS, "num_shards": num_shards, "batch_size": 2})  # pieces of several jobs
    result = stream_on_ray(
        inputs(corpus), out, options=options, on_start=lambda d, n: seen.append(n), on_rank=lambda k, n: done.append(k),
        stats=stats,
    )  # fmt: skip
    assert stats["rows_moved"] == 0  # every row written by the process that made it: process and writer fused
    assert sorted(p["piece"] for p in stats["pieces"]) == list(range(PIECES_PER_CPU * 2 if num_shards == 1 else num_shards))
    count = PIECES_PER_CPU * 2 if num_shards == 1 else num_shards
    assert seen == [count] and done[-1] == count and done == sorted(done)
    assert len(list((out / "ranks").iterdir())) == count  # every piece written as its own rank by the sink
    assert (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()
    assert rows(out) == rows(local)
    merged, alone = ConvertedDataset.open(out).manifest, ConvertedDataset.open(local).manifest
    assert without_bytes(merged.summary) == without_bytes(alone.summary)
    assert merged.options == alone.options and merged.inputs == alone.inputs and merged.rank is None
    assert result.records_duplicate == alone.summary.duplicates
    again = stream_on_ray(inputs(corpus), out, options=options)  # a rerun: every piece complete, the merge too
    assert again.already_complete and rows(out) == rows(local)


@pytest.mark.slow
def test_streaming_survives_a_killed_worker(cluster: Any, corpus: Path, local: Path, tmp_path: Path) -> None:
    """The first process-and-write task of piece 2 kills its own worker process (SIGKILL) mid-piece: Ray retries the
    task, the retried writer resumes the piece's rank, and the answer is the local one."""
    import ray.cloudpickle

    from audiodata.pipeline import raystream

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # pytest's module name is not importable in workers
    marker = tmp_path / "killed-once"
    options = ConvertOptions(**{**OPTS, "num_shards": 4, "batch_size": 1, "max_shard_size": 64 * 1024})
    raystream.stream_on_ray(inputs(corpus), tmp_path / "out", options=options, _fault=partial(_kill_once, str(marker)))
    assert marker.is_file()  # the worker really died once
    assert rows(tmp_path / "out") == rows(local)
    assert (tmp_path / "out" / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()


def _kill_once(marker: str, piece: int, done: int) -> None:
    """In a Ray worker: piece 2, after its third record, the first time only: SIGKILL this very process."""
    if piece == 2 and done == 3 and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)


def test_stream_on_ray_without_ray_is_a_usage_error(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audiodata.pipeline.rayengine import RayMissing
    from audiodata.pipeline.raystream import stream_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayMissing, match=r"audiodata\[ray\]"):
        stream_on_ray(inputs(corpus), tmp_path / "out", options=replace(ConvertOptions(**OPTS)))
    assert not (tmp_path / "out").exists()
