"""``lint`` and ``dedup`` as ranks of a job array (``--num-shards N --shard-index I --parts DIR``), then merged
(``--parts DIR``): the local report byte for byte, text only and with audio, dedup exact and near with ``--against``;
the merge refuses missing ranks, parts of another run and inputs changed since the ranks ran (issue 16)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from audiodata.cli.main import main
from audiodata.pipeline import lint as lint_mod
from audiodata.pipeline.dedup import dedup
from audiodata.pipeline.lint import lint
from audiodata.pipeline.rankparts import PartsError
from tests.pipeline import test_lint_ranges
from tests.pipeline.test_ranks import corpus, inputs, local

__all__ = ["corpus", "local"]  # the ranks test's module fixtures, used here


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    return test_lint_ranges.corpus.__wrapped__(tmp_path_factory)  # type: ignore[attr-defined]


def _ranked(run: Any, parts: Path, n: int, **kwargs: Any) -> Any:
    command = "dedup" if "mode" in kwargs else "lint"
    for i in range(n):
        report = run(num_shards=n, shard_index=i, parts=parts, **kwargs)
        assert report.part == str(parts / f"{command}-rank-{i:05d}-of-{n:05d}.parts")
        assert not report.records  # a rank reports nothing itself: the merge does
    assert not [p for p in parts.iterdir() if ".tmp" in p.name]  # parts are renamed into place when whole
    return run(parts=parts, **kwargs)


def _json(report: Any) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


@pytest.mark.parametrize("n", [2, 3])
def test_text_lint_ranks_merge_into_the_local_report(
    text_corpus: tuple[list[Path], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    files, exclude = text_corpus
    monkeypatch.setattr(lint_mod, "RANGE_BYTES", 7000)  # many byte ranges, dealt round robin to the ranks
    for k, options in enumerate(({}, {"exclude": [str(exclude)]})):
        kwargs: dict[str, Any] = {"max_record_bytes": 4000, "num_workers": 1, "progress": False, "audio": False, **options}
        here = lint([str(f) for f in files], **kwargs)
        merged = _ranked(lambda **kw: lint([str(f) for f in files], **kw), tmp_path / f"p{k}", n, **kwargs)
        assert here.records > 4000 and {"D001", "D003", "F001", "F005"} <= {f.code for f in here.findings}
        assert _json(merged) == _json(here)


def test_audio_lint_ranks_merge_into_the_local_report(corpus: Path, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False}
    here = lint(inputs(corpus), **kwargs)
    merged = _ranked(lambda **kw: lint(inputs(corpus), **kw), tmp_path / "parts", 3, **kwargs)
    assert here.to_dict()["summary"]["clips"] > 20 and {"D001", "A001"} <= {f.code for f in here.findings}
    assert _json(merged) == _json(here) and list(merged.durations) == list(here.durations)


@pytest.mark.parametrize("mode", ["near", "exact"])
def test_dedup_ranks_merge_into_the_local_report(corpus: Path, local: Path, tmp_path: Path, mode: str) -> None:
    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False, "mode": mode}
    for k, against in enumerate((None, local)):
        here = dedup(inputs(corpus), against=against, **kwargs).to_dict()
        merged = _ranked(lambda **kw: dedup(inputs(corpus), **kw), tmp_path / f"p{k}", 3, against=against, **kwargs)
        assert json.dumps(merged.to_dict()) == json.dumps(here)
        s = here["summary"]
        assert s["clusters"] >= 4 and (s["leaks"] > 10 if against else s["duplicates"] >= 5)


def test_the_merge_refuses_what_it_cannot_merge(corpus: Path, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False}
    parts = tmp_path / "parts"
    with pytest.raises(PartsError, match="no lint parts"):
        lint(inputs(corpus), parts=parts, **kwargs)
    for i in (0, 2):
        lint(inputs(corpus), num_shards=3, shard_index=i, parts=parts, **kwargs)
    with pytest.raises(PartsError, match=r"lint-rank-00001-of-00003.parts is missing \(rank 1"):
        lint(inputs(corpus), parts=parts, **kwargs)
    lint(inputs(corpus), num_shards=3, shard_index=1, parts=parts, **{**kwargs, "select": "M"})  # other options
    with pytest.raises(PartsError, match=r"rank-00001-of-00003\.parts is of another run"):
        lint(inputs(corpus), parts=parts, **kwargs)
    lint(inputs(corpus), num_shards=3, shard_index=1, parts=parts, **kwargs)
    assert lint(inputs(corpus), parts=parts, **kwargs).records == lint(inputs(corpus), **kwargs).records
    with pytest.raises(PartsError, match="another run"):  # a merge of other options (text only) than its ranks'
        lint(inputs(corpus), parts=parts, **{**kwargs, "audio": False})


def test_inputs_changed_since_the_ranks_ran(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "c.jsonl"
    data.write_bytes((corpus / "c.jsonl").read_bytes())
    kwargs: dict[str, Any] = {"num_workers": 1, "progress": False, "audio": False, "media_root": str(corpus)}
    parts = tmp_path / "parts"
    for i in range(2):
        lint([str(data)], num_shards=2, shard_index=i, parts=parts, **kwargs)
    stat = data.stat()
    data.write_bytes(data.read_bytes().replace(b"ten", b"TEN"))  # same size, same time: only the contents tell
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(PartsError, match="of another run"):
        lint([str(data)], parts=parts, **kwargs)


def test_cli_ranks(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    parts = tmp_path / "parts"
    base = ["lint", *inputs(corpus), "--num-workers", "1", "--no-progress"]
    assert main([*base, "--json"]) == 1
    here = capsys.readouterr().out
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")  # a job array's task: rank 1
    assert main([*base, "--num-shards", "2", "--parts", str(parts)]) == 0
    assert "rank 1 of 2: saved" in capsys.readouterr().err
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert main([*base, "--num-shards", "2", "--shard-index", "0", "--parts", str(parts)]) == 0
    capsys.readouterr()
    assert main([*base, "--parts", str(parts), "--json"]) == 1
    assert capsys.readouterr().out == here
    for bad in (["--num-shards", "2", "--shard-index", "0"], ["--shard-index", "1"], ["--parts", str(parts), "--engine", "ray"]):
        assert main([*base, *bad]) == 2
        capsys.readouterr()
    fix = ["--num-shards", "2", "--shard-index", "0", "--parts", str(tmp_path / "p2"), "--fix", str(tmp_path / "fixed")]
    assert main([*base, *fix]) == 2 and "--fix writes its copies when the ranks are merged" in capsys.readouterr().err


def test_a_job_that_differs_from_its_ranks_is_refused(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each saved job carries a digest of its input: a merge that would read another job there stops, naming the part."""
    from audiodata.pipeline import rankparts

    kwargs: dict[str, Any] = {"num_workers": 1, "batch_size": 2, "progress": False, "audio": False}
    parts = tmp_path / "parts"
    for i in range(2):
        lint(inputs(corpus), num_shards=2, shard_index=i, parts=parts, **kwargs)
    monkeypatch.setattr(rankparts, "_digest", lambda args: b"\0" * 16)  # as if each job's input were another
    with pytest.raises(PartsError, match=r"lint-rank-00000-of-00002.parts: job 0 is not the one this run reads"):
        lint(inputs(corpus), parts=parts, **kwargs)
