"""``convert --engine ray`` gives the local pool's answer: the same rows in the same order, the same
rejects.jsonl (rejects and duplicate clusters, in order) and accounting, on the ranks test's corpus (rejects,
exact and near duplicates, SFT, DPO and KTO, a validation split, a JSONL split by bytes), on a local Ray
cluster of 2 CPUs; without ray, ``--engine ray`` is a usage error that says what to install."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from audiodata.cli.main import main
from audiodata.dataset import ConvertedDataset
from audiodata.pipeline.options import ConvertOptions
from tests.pipeline.ray_cluster import cluster
from tests.pipeline.test_ranks import OPTS, corpus, inputs, local, rows, without_bytes

__all__ = ["cluster", "corpus", "local"]  # module fixtures imported here (the shared cluster, the ranks test's corpus)


@pytest.mark.slow
@pytest.mark.parametrize("num_shards", [1, 3])  # 1: as many ranks as the cluster's CPUs (2); 3: more ranks than CPUs
def test_ray_engine_gives_the_local_answer(cluster: Any, corpus: Path, local: Path, tmp_path: Path, num_shards: int) -> None:
    from audiodata.pipeline.rayengine import convert_on_ray

    out = tmp_path / "out"
    seen: list[tuple[str | None, int]] = []
    done: list[int] = []
    options = ConvertOptions(**{**OPTS, "num_shards": num_shards})
    result = convert_on_ray(
        inputs(corpus), out, options=options, on_start=lambda d, n: seen.append((d, n)), on_rank=lambda k, n: done.append(k)
    )
    count = 2 if num_shards == 1 else num_shards
    assert [n for _, n in seen] == [count] and done == list(range(1, count + 1))
    assert len(list((out / "ranks").iterdir())) == count  # really ranks, run as Ray tasks
    assert (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()  # rejects and clusters, in order
    assert rows(out) == rows(local)  # every row, in order, byte for byte
    merged, alone = ConvertedDataset.open(out).manifest, ConvertedDataset.open(local).manifest
    assert without_bytes(merged.summary) == without_bytes(alone.summary)
    assert merged.options == alone.options and merged.inputs == alone.inputs and merged.rank is None
    assert result.records_duplicate == ConvertedDataset.open(local).manifest.summary.duplicates
    again = convert_on_ray(inputs(corpus), out, options=options)  # a rerun: every rank complete, the merge too
    assert again.already_complete and rows(out) == rows(local)


@pytest.mark.slow
def test_cli_engine_ray(cluster: Any, corpus: Path, local: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "out"
    argv = ["convert", *inputs(corpus), "-o", str(out), "--engine", "ray", "--num-workers", "1", "--dedup", "near"]
    argv += ["--val-ratio", "0.3", "--max-shard-size", "64KiB", "--no-progress", "--json"]
    assert main(argv) == 1  # records were rejected, as in the local run
    assert json.loads(capsys.readouterr().out)["records_rejected"] == ConvertedDataset.open(local).manifest.summary.rejected
    assert rows(out) == rows(local) and (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()
    assert cluster.is_initialized()  # the CLI leaves a cluster it did not start alone
    assert main([*argv, "--shard-index", "1", "--num-shards", "2"]) == 2  # ray runs every rank itself
    capsys.readouterr()
    missing = ["convert", str(tmp_path / "nothing.jsonl"), "-o", str(tmp_path / "o2"), "--engine", "ray", "--no-progress"]
    assert main(missing) == 2  # a rank's own error, said in one line as a local run says it
    err = capsys.readouterr().err
    assert "nothing.jsonl: no such file or folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_engine_ray_data(cluster: Any, corpus: Path, local: Path, tmp_path: Path, capsys: Any) -> None:
    """``--engine ray-data``: the streaming Ray Data engine from the command line, the same answer."""
    out = tmp_path / "out"
    argv = ["convert", *inputs(corpus), "-o", str(out), "--engine", "ray-data", "--num-shards", "3", "--dedup", "near"]
    argv += ["--val-ratio", "0.3", "--max-shard-size", "64KiB", "--no-progress", "--json"]
    assert main(argv) == 1  # records were rejected, as in the local run
    assert json.loads(capsys.readouterr().out)["records_rejected"] == ConvertedDataset.open(local).manifest.summary.rejected
    assert len(list((out / "ranks").iterdir())) == 3  # three pieces, each a rank merge assembled
    assert rows(out) == rows(local) and (out / "rejects.jsonl").read_bytes() == (local / "rejects.jsonl").read_bytes()


def test_ray_data_engine_refuses_an_object_store_output(corpus: Path, capsys: Any) -> None:
    code = main(["convert", str(corpus / "c.jsonl"), "-o", "memory://bucket/out", "--engine", "ray-data", "--no-progress"])
    assert code == 2 and "--engine ray" in capsys.readouterr().err


def test_without_ray_the_engine_is_a_usage_error(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    code = main(["convert", str(corpus / "c.jsonl"), "-o", str(tmp_path / "out"), "--engine", "ray", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "audiodata[ray]" in err and "--engine local" in err
    assert not (tmp_path / "out").exists()


def test_ray_address_needs_the_ray_engine(corpus: Path, tmp_path: Path, capsys: Any) -> None:
    code = main(["convert", str(corpus / "c.jsonl"), "-o", str(tmp_path / "out"), "--ray-address", "auto", "--no-progress"])
    assert code == 2 and "--engine ray" in capsys.readouterr().err
