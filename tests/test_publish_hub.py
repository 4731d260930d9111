"""``audiodata publish`` end to end, against a local mock of the Hub (tests/hub_mock.py): no network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub.errors import HfHubHTTPError

from audiodata.cli.main import main
from audiodata.publish import PublishResult, UploadItem, plan, publish
from tests.hub_mock import Hub, hub

__all__ = ["hub"]  # the fixture, imported for pytest

# huggingface_hub's legacy LFS upload hands httpx a file object: a deprecation warning that is not ours
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

REPO_ID = "someone/audio-sft"
TOKEN = "hf_mock"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(out: Path, hub: Hub, **kw: object) -> PublishResult:
    kw.setdefault("token", TOKEN)
    return publish(out, REPO_ID, endpoint=hub.url, **kw)  # type: ignore[arg-type]


def names(items: list[UploadItem]) -> list[str]:
    return [i.path_in_repo for i in items]


def shards(out: Path) -> list[UploadItem]:
    return [i for i in plan(out) if i.path_in_repo.endswith(".parquet")]


def one_shard_per_commit(out: Path) -> int:
    """A commit size that fits any one shard but never two, nor a shard and the card; card + manifest fit together."""
    items = plan(out)
    smallest = min(i.size for i in shards(out))
    assert items[-1].size + items[-2].size <= smallest  # README.md + manifest.json
    return smallest


def assert_mirrors(out: Path, hub: Hub, revision: str = "main") -> None:
    """The repo holds exactly the planned files, byte-identical to OUT."""
    expected = {i.path_in_repo: sha256(i.local) for i in plan(out)}
    assert {p: sha256(f) for p, f in hub.files(REPO_ID, revision).items()} == expected


def test_publish_creates_the_repo_and_uploads_everything(sample_out, hub: Hub):
    out, _ = sample_out
    items = plan(out)
    assert len(shards(out)) >= 2
    result = run(out, hub, private=True)
    assert hub.exists(REPO_ID) and hub.private[REPO_ID]
    assert names(result.uploaded) == names(items) and result.skipped == []
    assert_mirrors(out, hub)
    assert hub.counts["create_repo"] == 1 and hub.counts["validate_yaml"] == 1  # the card's YAML was checked
    assert hub.counts["lfs_upload"] == hub.counts["lfs_verify"] == len(shards(out))
    assert len(hub.commits) == 1 and result.commits == [hub.commits[0].oid]
    assert sorted(hub.commits[0].lfs_files) == sorted(names(shards(out)))
    assert sorted(hub.commits[0].files) == ["README.md", "manifest.json"]  # small text files go as regular git blobs
    assert result.pr_url is None
    tree = {e["path"]: e for p, f in hub.files(REPO_ID).items() for e in [hub.entry(p, f)]}
    assert all("lfs" in tree[n] for n in names(shards(out))) and "lfs" not in tree["README.md"]


def test_commits_are_split_by_size_with_the_card_last(sample_out, hub: Hub):
    out, _ = sample_out
    result = run(out, hub, max_commit_bytes=one_shard_per_commit(out))
    n = len(shards(out))
    assert len(hub.commits) == n + 1 and result.commits == [c.oid for c in hub.commits]
    for commit, shard in zip(hub.commits, shards(out), strict=False):
        assert commit.lfs_files == [shard.path_in_repo] and commit.files == []
    assert hub.commits[-1].files == ["README.md", "manifest.json"] and hub.commits[-1].lfs_files == []
    assert {c.revision for c in hub.commits} == {"main"}
    assert_mirrors(out, hub)


def test_a_second_run_uploads_nothing(sample_out, hub: Hub):
    out, _ = sample_out
    run(out, hub, max_commit_bytes=one_shard_per_commit(out))
    before = hub.counts.copy()
    again = run(out, hub)
    assert names(again.skipped) == names(plan(out))
    assert again.uploaded == [] and again.commits == []
    new = hub.counts - before
    assert new["lfs_upload"] == new["lfs_batch"] == new["preupload"] == new["commit"] == 0
    assert new["create_repo"] == 1 and new["tree"] == 1  # 409 -> exist_ok, then one listing
    assert_mirrors(out, hub)


@pytest.mark.parametrize("lfs_object_stored", [False, True], ids=["never-uploaded", "uploaded-not-committed"])
def test_a_rerun_after_an_interrupted_upload_sends_only_the_missing_shard(sample_out, hub: Hub, lfs_object_stored: bool):
    out, _ = sample_out
    run(out, hub, max_commit_bytes=one_shard_per_commit(out))
    missing = shards(out)[-1].path_in_repo
    hub.delete_file(REPO_ID, missing, drop_lfs_object=not lfs_object_stored)
    before, n_commits = hub.counts.copy(), len(hub.commits)
    result = run(out, hub, max_commit_bytes=one_shard_per_commit(out))
    assert names(result.uploaded) == [missing]
    assert sorted(names(result.skipped)) == sorted(set(names(plan(out))) - {missing})
    new = hub.counts - before
    assert new["lfs_batch_object"] == 1  # only the missing shard is even offered
    assert new["lfs_upload"] == (0 if lfs_object_stored else 1)
    assert len(hub.commits) == n_commits + 1 and hub.commits[-1].lfs_files == [missing]
    assert_mirrors(out, hub)


def test_publish_to_a_branch(sample_out, hub: Hub, tmp_path: Path):
    from huggingface_hub import hf_hub_download

    out, _ = sample_out
    result = run(out, hub, revision="dev", max_commit_bytes=one_shard_per_commit(out))
    assert hub.counts["create_branch"] == 1
    assert {c.revision for c in hub.commits} == {"dev"} and len(result.commits) == len(hub.commits) > 1
    assert_mirrors(out, hub, "dev")
    assert hub.files(REPO_ID, "main") == {}  # main untouched
    shard = shards(out)[0].path_in_repo
    got = hf_hub_download(REPO_ID, shard, repo_type="dataset", revision="dev", token=TOKEN, cache_dir=tmp_path)
    assert sha256(Path(got)) == sha256(out / shard)  # and it downloads back (resolve) from the branch
    again = run(out, hub, revision="dev")  # the branch exists: 409 is fine, and everything is there
    assert again.uploaded == [] and names(again.skipped) == names(plan(out))


def test_create_pr_opens_one_pull_request_for_all_commits(sample_out, hub: Hub):
    out, _ = sample_out
    result = run(out, hub, create_pr=True, max_commit_bytes=one_shard_per_commit(out))
    assert hub.prs[REPO_ID] == 1
    assert result.pr_url == f"{hub.url}/datasets/{REPO_ID}/discussions/1"
    assert len(hub.commits) == len(shards(out)) + 1
    assert {c.revision for c in hub.commits} == {"refs/pr/1"}
    assert [c.pr_num for c in hub.commits] == [1] + [None] * (len(hub.commits) - 1)  # one PR opened, then pushed to
    assert_mirrors(out, hub, "refs/pr/1")
    assert hub.files(REPO_ID, "main") == {}


def test_create_pr_against_a_new_branch_creates_the_branch_first(sample_out, hub: Hub):
    """``--revision dev --create-pr`` (the README's example): the Hub opens a pull request against an existing
    branch only; without the branch it said "Revision dev not found" and the run failed."""
    out, _ = sample_out
    result = run(out, hub, revision="dev", create_pr=True)
    assert hub.counts["create_branch"] == 1 and hub.prs[REPO_ID] == 1 and result.pr_url
    assert {c.revision for c in hub.commits} == {"refs/pr/1"}
    assert hub.files(REPO_ID, "main") == {}


def test_tokens(sample_out, hub: Hub, monkeypatch: pytest.MonkeyPatch):
    out, _ = sample_out
    with pytest.raises(HfHubHTTPError) as err:
        run(out, hub, token="hf_wrong")
    assert err.value.response.status_code == 401
    assert not hub.exists(REPO_ID) and hub.counts["commit"] == 0
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # no --token: HF_TOKEN is used
    result = run(out, hub, token=None)
    assert names(result.uploaded) == names(plan(out))


def test_cli_publish_with_token(sample_out, hub: Hub, capsys: pytest.CaptureFixture[str]):
    """The CLI has no endpoint option: it reaches the mock through HF_ENDPOINT, as a user would."""
    out, _ = sample_out
    assert main(["publish", str(out), REPO_ID, "--token", "hf_wrong"]) == 1  # the Hub says 401: upload failed
    assert "401" in capsys.readouterr().err and not hub.exists(REPO_ID)
    assert main(["publish", str(out), REPO_ID, "--token", TOKEN, "--max-commit-size", "1KB", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["uploaded"] == names(plan(out)) and report["skipped"] == []
    assert len(report["commits"]) == len(hub.commits) == len(shards(out)) + 2  # 1 KB: even card and manifest apart
    assert_mirrors(out, hub)
    assert main(["publish", str(out), REPO_ID, "--token", TOKEN, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["uploaded"] == []


def test_the_uploaded_repo_loads_with_datasets(sample_out, hub: Hub, tmp_path: Path):
    import datasets

    out, _ = sample_out
    run(out, hub, max_commit_bytes=one_shard_per_commit(out))
    path = str(hub.repo_dir(REPO_ID))
    assert datasets.get_dataset_config_names(path) == ["sft", "dpo"]  # configs read from the card's YAML
    sft = next(i for i in shards(out) if "/sft/" in i.path_in_repo)
    rows = pq.read_metadata(sft.local).num_rows

    ds = datasets.load_dataset(path, "sft", split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == rows
    assert isinstance(ds.features["audios"], datasets.List) and isinstance(ds.features["audios"].feature, datasets.Audio)
    audio = ds[0]["audios"][0]
    assert audio["sampling_rate"] == 16000 and audio["array"].ndim == 1 and audio["array"].size > 0

    streamed = datasets.load_dataset(path, "sft", split="train", streaming=True)
    row = next(iter(streamed))
    assert row["id"] == ds[0]["id"]
    audio2 = row["audios"][0]
    assert audio2["sampling_rate"] == 16000
    np.testing.assert_array_equal(audio2["array"], audio["array"])
