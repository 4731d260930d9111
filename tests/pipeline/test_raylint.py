"""``lint`` and ``dedup`` with ``--engine ray`` give the local answer (issue 16): the same lint report, byte for byte
(text only, over byte ranges and parent-read inputs, with an --exclude list; with audio), and the same dedup report
(clusters, matches, similarities, conflicts, comparisons, leaks into ``--against``) in exact and near mode, with the
records cut into many blocks so that copies meet only across blocks in the band shuffle; a key too crowded to shuffle
falls back to the local index with the same answer; a worker killed mid-job is retried. On a local 2-CPU Ray cluster."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from audiodata.cli.main import main
from audiodata.dedup import index as dedup_index
from audiodata.pipeline import lint as lint_mod
from audiodata.pipeline import raydedup
from audiodata.pipeline.dedup import dedup
from audiodata.pipeline.lint import lint
from tests.pipeline import test_lint_ranges
from tests.pipeline.ray_cluster import cluster
from tests.pipeline.test_ranks import corpus, inputs, local

__all__ = ["cluster", "corpus", "local"]  # module fixtures imported here (the shared cluster, the ranks test's corpus)


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """The byte-range test's corpus: every kind of text input, hostile lines, KTO both ways, an --exclude list."""
    return test_lint_ranges.corpus.__wrapped__(tmp_path_factory)  # type: ignore[attr-defined]


def _json(report: Any) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["ranges", "records"])
def test_text_lint_on_ray_is_the_local_report(
    cluster: Any, text_corpus: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    files, exclude = text_corpus
    monkeypatch.setattr(lint_mod, "RANGE_BYTES", 7000)  # many byte ranges, each read by a Ray worker
    if path == "records":
        monkeypatch.setattr(lint_mod, "_by_chunks", lambda task: False)  # the per-record path: the driver reads
    for options in ({}, {"exclude": [str(exclude)]}):
        kwargs: dict[str, Any] = {"max_record_bytes": 4000, "num_workers": 2, "progress": False, **options}
        here = lint([str(f) for f in files], audio=False, **kwargs)
        there = lint([str(f) for f in files], audio=False, engine="ray", **kwargs)
        assert here.records > 4000 and {"D001", "D003", "F001", "F005"} <= {f.code for f in here.findings}
        assert _json(there) == _json(here)


@pytest.mark.slow
def test_audio_lint_on_ray_is_the_local_report(cluster: Any, corpus: Path, tmp_path: Path) -> None:
    """With audio, and with --fix: the repaired copies the workers prepare are written by the driver, the same files."""
    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False}
    here = lint(inputs(corpus), fix=tmp_path / "here", **kwargs)
    there = lint(inputs(corpus), fix=tmp_path / "there", engine="ray", **kwargs)
    assert here.to_dict()["summary"]["clips"] > 20 and {"D001", "A001"} <= {f.code for f in here.findings}
    assert _json(there).replace("there", "here") == _json(here)
    assert list(there.durations) == list(here.durations) and there.sample_rates == here.sample_rates
    copies = sorted(p.relative_to(tmp_path / "here") for p in (tmp_path / "here").rglob("*") if p.is_file())
    assert copies and all((tmp_path / "there" / c).read_bytes() == (tmp_path / "here" / c).read_bytes() for c in copies)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["near", "exact"])
def test_dedup_on_ray_is_the_local_report(
    cluster: Any, corpus: Path, local: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Blocks of 2 records: near copies of one clip sit in different blocks and input files, so they meet only in the
    shuffle; ``--against`` the converted corpus makes every record a leak, found through the reference block."""
    monkeypatch.setattr(raydedup, "BLOCK_RECORDS", 2)
    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False, "mode": mode}
    for against in (None, local):
        here = dedup(inputs(corpus), against=against, **kwargs).to_dict()
        stages: list[str] = []
        there = dedup(inputs(corpus), against=against, engine="ray", on_stage=stages.append, **kwargs).to_dict()
        assert json.dumps(there) == json.dumps(here)
        s = here["summary"]
        if against is None:
            assert s["clusters"] >= 4 and s["conflicts"] >= 1
            assert (s["near"] >= 2 and s["comparisons"] >= 2) if mode == "near" else s["exact"] >= 4
        else:
            assert s["reference_records"] > 10 and s["leaks"] > 10
        assert stages == (["fingerprint", "band shuffle", "verify", "keep-first"] if mode == "near" else [])


@pytest.mark.slow
def test_a_crowded_key_falls_back_to_the_local_index(cluster: Any, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key shared by more clips than a local bucket is searched at: the driver resolves the run from the
    fingerprints as the local index does (here every bucket is "full": no near candidate at all, as locally)."""
    monkeypatch.setattr(dedup_index, "MAX_BUCKET", 0)
    monkeypatch.setattr(raydedup, "BLOCK_RECORDS", 2)
    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False}
    here = dedup(inputs(corpus), **kwargs).to_dict()
    stages: list[str] = []
    there = dedup(inputs(corpus), engine="ray", on_stage=stages.append, **kwargs).to_dict()
    assert "verify" not in stages and json.dumps(there) == json.dumps(here)
    monkeypatch.undo()
    assert dedup(inputs(corpus), **kwargs).to_dict()["summary"]["near"] > here["summary"]["near"]  # the limit mattered


@pytest.mark.slow
def test_a_killed_worker_is_retried(cluster: Any, tmp_path: Path) -> None:
    from audiodata.pipeline.raymap import ray_ordered_map

    def die_once(marker: str, x: int) -> int:  # nested: pickled by value (the workers cannot import a test module)
        """A job whose worker dies the first time it runs it (a node lost, an OOM kill)."""
        if x == 3 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return x * x

    marker = str(tmp_path / "died")
    got = list(ray_ordered_map(die_once, ((x, (marker, x)) for x in range(8)), 2, ray=cluster))
    assert os.path.exists(marker) and got == [(x, x * x) for x in range(8)]


@pytest.mark.slow
def test_cli_engine_ray(cluster: Any, corpus: Path, local: Path, capsys: Any) -> None:
    for command in (["lint", "--no-audio"], ["dedup"]):
        argv = [*command, *inputs(corpus), "--num-workers", "1", "--no-progress", "--json"]
        code = main(argv)
        here = capsys.readouterr().out
        assert main([*argv, "--engine", "ray"]) == code == 1
        assert capsys.readouterr().out == here
    assert cluster.is_initialized()  # the CLI leaves a cluster it did not start alone


def test_ray_address_needs_the_ray_engine(corpus: Path, capsys: Any) -> None:
    for command in ("lint", "dedup"):
        assert main([command, str(corpus / "c.jsonl"), "--ray-address", "auto", "--no-progress"]) == 2
        assert "--engine ray" in capsys.readouterr().err


def test_without_ray_the_engine_is_a_usage_error(corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    for command in ("lint", "dedup"):
        assert main([command, str(corpus / "c.jsonl"), "--engine", "ray", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "audiodata[ray]" in err and "--engine local" in err


def test_the_dashboard_link_is_said_and_a_started_cluster_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--engine ray`` says Ray's dashboard link when the cluster runs one, and stops a cluster it started itself."""
    import argparse
    import io

    from rich.console import Console

    from audiodata.cli.engine import cluster
    from audiodata.pipeline import rayengine

    stopped: list[bool] = []
    monkeypatch.setitem(sys.modules, "ray", None)  # no cluster connected in this process before the command
    monkeypatch.setattr(rayengine, "start", lambda address, num_cpus=None: (None, "http://127.0.0.1:8265"))
    monkeypatch.setattr(rayengine, "shutdown", lambda: stopped.append(True))
    out = io.StringIO()
    args = argparse.Namespace(engine="ray", ray_address=None, json=False)
    with cluster(args, Console(file=out, width=200)):
        assert not stopped
    assert out.getvalue() == "Ray dashboard: http://127.0.0.1:8265\n" and stopped == [True]
    with cluster(argparse.Namespace(engine="ray", ray_address=None, json=True), Console(file=out)):
        pass  # --json: stdout is the report, and the link is not said at all
    assert out.getvalue().count("dashboard") == 1
