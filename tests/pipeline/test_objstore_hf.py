"""``hf://`` for real: huggingface_hub's ``HfFileSystem`` talking HTTP to a local mock of the Hub
(``tests/hub_mock.py``, through ``HF_ENDPOINT``): a dataset repo as the input folder gives the local run's answer,
and a dataset repo as the output is written (one commit per replicated file), verified and found complete."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.cli.main import main
from tests.conftest import SAMPLE
from tests.hub_mock import Hub, hub  # noqa: F401  (the fixture)


@pytest.fixture
def api(hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    from huggingface_hub import HfApi

    monkeypatch.setenv("AUDIODATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_mock")
    return HfApi(endpoint=hub.url, token="hf_mock")


LOCAL = f"{os.path.relpath(SAMPLE)}/"  # how a local run names its inputs (relative to the working folder)


def shard_rows(folder: Path) -> list[dict[str, Any]]:
    man = json.loads((folder / "manifest.json").read_text())
    return [r for s in man["shards"] for r in pq.read_table(folder / s["file"]).to_pylist()]


def test_a_dataset_repo_as_input_gives_the_local_answer(api: Any, tmp_path: Path) -> None:
    api.create_repo("me/corpus", repo_type="dataset")
    api.upload_folder(folder_path=str(SAMPLE), repo_id="me/corpus", repo_type="dataset")
    remote = audiodata.convert(["hf://datasets/me/corpus"], tmp_path / "remote", num_workers=1)
    local = audiodata.convert([str(SAMPLE)], tmp_path / "local", num_workers=1)
    assert (remote.records_written, remote.records_rejected) == (local.records_written, local.records_rejected) == (63, 10)
    got, want = shard_rows(tmp_path / "remote"), shard_rows(tmp_path / "local")
    def where(rows: list[dict[str, Any]], root: str) -> list[tuple[str, int, int]]:
        return [(r["source"]["file"].removeprefix(root), r["source"]["index"], r["source"]["line"]) for r in rows]

    assert [{**r, "source": None} for r in got] == [{**r, "source": None} for r in want]
    assert where(got, "hf://datasets/me/corpus/") == where(want, LOCAL)  # named by URL, same places

    def rejects(folder: Path, root: str) -> list[tuple[str, int, list[str]]]:
        lines = [json.loads(x) for x in (folder / "rejects.jsonl").read_text().splitlines()]
        return [(r["source"].removeprefix(root), r["line"], [x["code"] for x in r["reasons"]]) for r in lines]

    assert rejects(tmp_path / "remote", "hf://datasets/me/corpus/") == rejects(tmp_path / "local", LOCAL)


def test_a_dataset_repo_as_output_is_written_verified_and_found_complete(
    api: Any, hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    api.create_repo("me/out", repo_type="dataset")
    remote = audiodata.convert([str(SAMPLE)], "hf://datasets/me/out", num_workers=1)
    audiodata.convert([str(SAMPLE)], tmp_path / "local", num_workers=1)
    assert remote.records_written == 63
    repo = next(p.parent for p in hub.root.rglob("manifest.json") if "out" in p.parts)
    man = json.loads((repo / "manifest.json").read_text())
    for shard in man["shards"]:  # the Hub holds the bytes a local run writes
        assert (repo / shard["file"]).read_bytes() == (tmp_path / "local" / shard["file"]).read_bytes()
    assert (repo / "README.md").is_file() and not (repo / ".audiodata" / "lock").exists()
    capsys.readouterr()
    assert main(["verify", "hf://datasets/me/out"]) == 0
    commits = hub.counts["commit"]
    again = audiodata.convert([str(SAMPLE)], "hf://datasets/me/out", num_workers=1)  # complete: nothing to upload
    assert again.records_written == 63 and hub.counts["commit"] == commits
