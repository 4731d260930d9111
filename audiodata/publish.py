"""``audiodata publish``: a converted dataset to the Hugging Face Hub, in resumable commits.

What goes up is planned from ``manifest.json`` (shards with their sha256, then the card and the
manifest last, so a half-finished upload never shows a card for data that is not there). Files the
repo already holds with the same content (LFS sha256, or the git blob id of small files) are
skipped, so a re-run after a network failure uploads only what is missing and a second run
uploads nothing. Shards go in commits of bounded size: each commit is atomic on the Hub.

The upload path is ``huggingface_hub``'s own; tests run it end to end against a local endpoint
that speaks the parts of the Hub API it uses (tests/hub_mock.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodata import objstore
from audiodata.dataset import CARD, MANIFEST, ConvertedDataset, verify_hint
from audiodata.errors import DatasetFormatError
from audiodata.faults import on_path

DEFAULT_COMMIT_BYTES = 2 * 10**9  # per commit: large datasets go up in several atomic commits


class PublishError(DatasetFormatError):
    """A dataset that cannot go up as it is (no card, a shard not the one the manifest records): exit 2."""


@dataclass(frozen=True)
class UploadItem:
    path_in_repo: str
    local: Path
    size: int
    sha256: str | None = None  # known for shards (from the manifest); computed on demand otherwise

    def content_sha256(self) -> str:
        if self.sha256:
            return self.sha256
        h = hashlib.sha256()
        with open(self.local, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def git_blob_id(self) -> str:
        """The id git (and the Hub, for non-LFS files) gives this content."""
        h = hashlib.sha1(usedforsecurity=False)
        h.update(f"blob {self.size}\0".encode())
        with open(self.local, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


@dataclass
class PublishResult:
    repo_id: str
    planned: list[UploadItem]
    uploaded: list[UploadItem] = field(default_factory=list)
    skipped: list[UploadItem] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    pr_url: str | None = None
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "dry_run": self.dry_run,
            "planned": [{"path": i.path_in_repo, "bytes": i.size} for i in self.planned],
            "uploaded": [i.path_in_repo for i in self.uploaded],
            "skipped": [i.path_in_repo for i in self.skipped],
            "commits": self.commits,
            "pr_url": self.pr_url,
        }


def plan(
    out: str | os.PathLike[str], include_rejects: bool = False, on_progress: Callable[[str, int, int], None] | None = None
) -> list[UploadItem]:
    """Shards first (as the manifest lists them), then the card and the manifest.

    Reads no audio (the manifest holds each shard's sha256): one footer per shard, so the cost is per shard.
    ``on_progress("checking", bytes_done, bytes_total)`` after each shard (bytes as the manifest lists them)."""
    root = objstore.readable(out)  # a dataset in an object store: its local copy, brought to what the store holds
    ds = ConvertedDataset.open(root)  # DatasetError: not a converted dataset, or a damaged one
    if not (root / CARD).is_file():
        raise PublishError(f"{objstore.shown(root)}: no {CARD} dataset card")
    items: list[UploadItem] = []
    shards = list(ds.shards())
    total, done = sum(s.bytes for s in shards), 0
    for shard in shards:
        local = ds.path(shard)  # present
        ds.open_shard(shard).close()  # and its Parquet footer reads
        items.append(UploadItem(shard.file, local, local.stat().st_size, shard.sha256))
        done += shard.bytes
        if on_progress is not None:
            on_progress("checking", done, total)
    extra = ["rejects.jsonl"] if include_rejects and (root / "rejects.jsonl").is_file() else []
    for name in (*extra, CARD, MANIFEST):
        local = root / name
        items.append(UploadItem(name, local, local.stat().st_size))
    return items


def _operation(item: UploadItem, out: str | os.PathLike[str], make: Any) -> Any:
    """The upload of ``item``; huggingface_hub hashes the file for it, so a shard whose content is not the one
    the manifest records is caught here at no extra read (and nothing of the dataset is committed)."""
    with on_path(item.local, "read"):
        op = make(path_in_repo=item.path_in_repo, path_or_fileobj=str(item.local))
    got = op.upload_info.sha256.hex()
    if item.sha256 and got != item.sha256:
        raise PublishError(
            f"shard {item.path_in_repo}: its sha256 {got} is not the manifest's {item.sha256} (damaged or replaced); "
            f"{verify_hint(out)}"
        )
    return op


def batches(items: list[UploadItem], max_bytes: int = DEFAULT_COMMIT_BYTES) -> Iterator[list[UploadItem]]:
    """Consecutive groups of at most ``max_bytes`` (a single larger file gets a commit of its own)."""
    batch: list[UploadItem] = []
    size = 0
    for item in items:
        if batch and size + item.size > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch


def already_there(item: UploadItem, remote: Any) -> bool:
    """Same content on the Hub: LFS files by sha256, regular files by git blob id."""
    if remote is None or getattr(remote, "size", None) != item.size:
        return False
    lfs = getattr(remote, "lfs", None)
    if lfs is not None:
        return bool(getattr(lfs, "sha256", None) == item.content_sha256())
    return bool(getattr(remote, "blob_id", None) == item.git_blob_id())


def publish(
    out: str | os.PathLike[str],
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    dry_run: bool = False,
    max_commit_bytes: int = DEFAULT_COMMIT_BYTES,
    include_rejects: bool = False,
    endpoint: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> PublishResult:
    """Upload ``out`` to the dataset repo ``repo_id``; only what the repo does not already hold.

    ``on_progress(phase, bytes_done, bytes_total)``: ``"checking"`` as each shard's footer is read (a dry run
    stops there), ``"hashing"`` as each file to upload is hashed, then ``"uploading"`` as each commit lands
    (after the dataset was checked and the repo listed)."""
    items = plan(out, include_rejects, on_progress)
    result = PublishResult(repo_id, items, dry_run=dry_run)
    if dry_run:
        result.uploaded = list(items)
        return result
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint, token=token or os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision and not revision.startswith("refs/"):  # a branch, created if needed (a PR against it too); refs/pr/N: a PR
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    remote = {
        f.path: f
        for f in api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
        if isinstance(f, RepoFile)
    }
    todo: list[UploadItem] = []
    for item in items:
        (result.skipped if already_there(item, remote.get(item.path_in_repo)) else todo).append(item)
    total, done = sum(i.size for i in todo), 0
    ops_of = {}
    for item in todo:  # hashed (and checked) before any commit
        ops_of[item.path_in_repo] = _operation(item, out, CommitOperationAdd)
        done += item.size
        if on_progress is not None:
            on_progress("hashing", done, total)
    target, done = revision, 0
    for n, batch in enumerate(batches(todo, max_commit_bytes)):
        ops = [ops_of[i.path_in_repo] for i in batch]
        info = api.create_commit(
            repo_id,
            operations=ops,
            commit_message=f"audiodata publish: {len(batch)} file(s) ({n + 1})",
            repo_type="dataset",
            revision=target,
            create_pr=create_pr and n == 0,
        )
        result.commits.append(info.oid)
        result.uploaded += batch
        done += sum(i.size for i in batch)
        if on_progress is not None:
            on_progress("uploading", done, total)
        if create_pr and n == 0 and info.pr_revision:
            result.pr_url = info.pr_url
            target = info.pr_revision  # later commits go to the same pull request
    return result
