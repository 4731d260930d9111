"""A local stand-in for the Hugging Face Hub: just the HTTP API ``audiodata publish`` drives.

``huggingface_hub`` (legacy LFS transfer, ``HF_HUB_DISABLE_XET=1``) talks to it as to the real Hub:

- ``POST /api/repos/create``: 200 with ``{"url"}``, 409 if the repo exists;
- ``POST /api/datasets/{repo}/branch/{branch}``: copies ``startingPoint`` (default main), 409 if it exists;
- ``GET /api/datasets/{repo}/tree/{rev}[/{path}]``: files (``oid`` = git blob id; LFS files also carry
  ``lfs: {oid: sha256, size, pointerSize}`` and their ``oid`` is the blob id of the pointer) and folders;
- ``GET /api/datasets/{repo}[/revision/{rev}]``: repo info with the head ``sha`` and ``siblings``;
- ``POST /api/validate-yaml``: the card's YAML front matter must parse to a mapping (400 otherwise);
- ``POST /api/datasets/{repo}/preupload/{rev}``: ``lfs`` for parquet files or files over 10 MB, else ``regular``;
- ``POST /datasets/{repo}.git/info/lfs/objects/batch``: upload + verify actions pointing back here, none for
  objects already stored; ``PUT /lfs-upload/{repo}/{oid}`` (sha256 and size checked); ``POST /lfs-verify/...``;
- ``POST /api/datasets/{repo}/commit/{rev}[?create_pr=1]``: NDJSON header / file (base64) / lfsFile / deletedFile
  lines; writes the files; returns ``commitUrl``, ``commitOid`` and, for a PR, a ``pullRequestUrl`` whose revision is
  ``refs/pr/N``;
- ``GET|HEAD /datasets/{repo}/resolve/{rev}/{path}``: the file's bytes (a ``Range: bytes=a-b`` read: 206 and that slice).

Repos live on disk: ``root/<repo_id>/<revision>/<path>`` (``refs/pr/1`` is a folder path too), LFS objects in
``root/.lfs/<repo_id>/<sha256>``. Hashes are computed from the files on disk, so deleting a file there is seen by
the next request. Every request is counted by kind in ``Hub.counts`` (``create_repo``, ``create_branch``, ``tree``,
``repo_info``, ``validate_yaml``, ``preupload``, ``lfs_batch``, ``lfs_batch_object`` per object offered, ``lfs_upload``,
``lfs_verify``, ``commit``, ``resolve``, ``unknown``), and commits are recorded in ``Hub.commits``.
With ``token`` set, API calls need ``Authorization: Bearer <token>`` (401 otherwise); LFS ``PUT``s are pre-signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import yaml

LFS_THRESHOLD = 10 * 10**6
LFS_SUFFIXES = (".parquet", ".arrow", ".wav", ".flac", ".mp3", ".bin")


def is_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class Commit:
    repo_id: str
    revision: str
    oid: str
    summary: str
    files: list[str]
    lfs_files: list[str]
    deleted: list[str]
    pr_num: int | None = None


@dataclass
class Hub:
    """The mock's state; ``url`` is the endpoint to give ``HfApi``."""

    root: Path
    token: str | None = None
    url: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    commits: list[Commit] = field(default_factory=list)
    prs: dict[str, int] = field(default_factory=dict)  # repo_id -> last PR number
    heads: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo_id, revision) -> commit oid
    private: dict[str, bool] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- storage -------------------------------------------------------------------------------------------------
    def repo_dir(self, repo_id: str, revision: str = "main") -> Path:
        return self.root / repo_id / revision

    def lfs_dir(self, repo_id: str) -> Path:
        return self.root / ".lfs" / repo_id

    def exists(self, repo_id: str, revision: str | None = None) -> bool:
        if repo_id not in self.private:
            return False
        return revision is None or self.repo_dir(repo_id, revision).is_dir()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, Path]:
        base = self.repo_dir(repo_id, revision)
        return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*")) if p.is_file()}

    def entry(self, path: str, local: Path) -> dict[str, Any]:
        data = local.read_bytes()
        if not is_lfs(path, len(data)):
            return {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}
        sha = hashlib.sha256(data).hexdigest()
        pointer = lfs_pointer(sha, len(data))
        return {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": git_blob_id(pointer),
            "lfs": {"oid": sha, "size": len(data), "pointerSize": len(pointer)},
        }

    def delete_file(self, repo_id: str, path: str, revision: str = "main", drop_lfs_object: bool = True) -> None:
        """Simulate an upload that never made it: the file is gone from the tree (and its LFS object, by default)."""
        local = self.repo_dir(repo_id, revision) / path
        sha = hashlib.sha256(local.read_bytes()).hexdigest()
        local.unlink()
        if drop_lfs_object:
            (self.lfs_dir(repo_id) / sha).unlink(missing_ok=True)

    def new_commit_oid(self, repo_id: str, revision: str, summary: str) -> str:
        parent = self.heads.get((repo_id, revision), "")
        return hashlib.sha1(f"{parent}\0{repo_id}\0{revision}\0{summary}\0{len(self.commits)}".encode()).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.extra = extra  # more fields of the JSON error body


API = re.compile(r"^/api/datasets/(?P<repo>[^/]+(?:/[^/]+)?)/(?P<action>tree|preupload|commit|branch|revision)/(?P<rest>.+)$")
INFO = re.compile(r"^/api/datasets/(?P<repo>[^/]+(?:/[^/]+)?)$")
LFS_BATCH = re.compile(r"^/datasets/(?P<repo>.+)\.git/info/lfs/objects/batch$")
LFS_OBJECT = re.compile(r"^/lfs-(?P<kind>upload|verify)/(?P<repo>.+)/(?P<oid>[0-9a-f]{64})$")
RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    @property
    def hub(self) -> Hub:
        return self.server.hub

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing ----------------------------------------------------------------------------------------------
    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, payload: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def check_auth(self) -> None:
        if self.hub.token is None:
            return
        if self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            raise HubError(401, "Invalid credentials in Authorization header")

    def require_repo(self, repo_id: str, revision: str | None = None) -> None:
        if not self.hub.exists(repo_id):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        if revision is not None and not self.hub.exists(repo_id, revision):
            raise HubError(404, f"Revision {revision} not found", "RevisionNotFound")

    def dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        raw = url.path
        body = self.body() if self.command in ("POST", "PUT") else b""
        try:
            with self.hub.lock:
                self.route(self.command, path, raw, query, body)
        except HubError as e:
            headers = {"X-Error-Message": e.message}
            if e.error_code:
                headers["X-Error-Code"] = e.error_code
            self.reply(e.status, {"error": e.message, **e.extra}, headers=headers)

    do_GET = do_POST = do_PUT = do_HEAD = dispatch

    # --- routes ------------------------------------------------------------------------------------------------
    def route(self, method: str, path: str, raw: str, query: dict[str, list[str]], body: bytes) -> None:
        hub = self.hub
        if method == "PUT" and (m := LFS_OBJECT.match(path)) and m["kind"] == "upload":
            hub.counts["lfs_upload"] += 1
            return self.lfs_put(m["repo"], m["oid"], body)
        self.check_auth()
        if method == "POST" and path == "/api/repos/create":
            hub.counts["create_repo"] += 1
            return self.create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            hub.counts["validate_yaml"] += 1
            return self.validate_yaml(json.loads(body))
        if method == "POST" and (m := LFS_BATCH.match(path)):
            hub.counts["lfs_batch"] += 1
            return self.lfs_batch(m["repo"], json.loads(body))
        if method == "POST" and (m := LFS_OBJECT.match(path)):
            hub.counts["lfs_verify"] += 1
            return self.lfs_verify(m["repo"], m["oid"], json.loads(body))
        if method in ("GET", "HEAD") and (m := RESOLVE.match(path)):
            hub.counts["resolve"] += 1
            return self.resolve(m["repo"], m["rev"], m["path"])
        if method == "GET" and (m := INFO.match(path)):
            hub.counts["repo_info"] += 1
            return self.repo_info(m["repo"], "main")
        # the revision is quoted by huggingface_hub ('refs%2Fpr%2F1'): split the raw path, then unquote
        if m := API.match(raw):
            repo_id, action = unquote(m["repo"]), m["action"]
            rest = m["rest"].split("/", 1)
            revision, sub = unquote(rest[0]), unquote(rest[1]) if len(rest) > 1 else ""
            hub.counts[{"branch": "create_branch", "revision": "repo_info"}.get(action, action)] += 1
            if method == "GET" and action == "tree":
                return self.tree(repo_id, revision, sub, query)
            if method == "GET" and action == "revision":
                return self.repo_info(repo_id, revision)
            if method == "POST" and action == "branch":
                return self.create_branch(repo_id, revision, json.loads(body or b"{}"))
            if method == "POST" and action == "preupload":
                return self.preupload(repo_id, revision, json.loads(body))
            if method == "POST" and action == "commit":
                return self.commit(repo_id, revision, body, create_pr=query.get("create_pr") == ["1"])
        hub.counts["unknown"] += 1
        raise HubError(404, f"mock hub: no route for {method} {path}")

    def create_repo(self, payload: dict[str, Any]) -> None:
        if payload.get("type") != "dataset":
            raise HubError(400, "mock hub: dataset repos only")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if self.hub.exists(repo_id):
            # the Hub's 409 carries the url: huggingface_hub's create_repo(exist_ok=True) returns it
            raise HubError(409, "You already created this dataset repo", url=f"{self.hub.url}/datasets/{repo_id}")
        self.hub.repo_dir(repo_id, "main").mkdir(parents=True)
        self.hub.private[repo_id] = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.hub.heads[(repo_id, "main")] = self.hub.new_commit_oid(repo_id, "main", "initial commit")
        self.reply(200, {"url": f"{self.hub.url}/datasets/{repo_id}", "name": repo_id, "id": repo_id})

    def create_branch(self, repo_id: str, branch: str, payload: dict[str, Any]) -> None:
        start = payload.get("startingPoint") or "main"
        self.require_repo(repo_id, start)
        if self.hub.exists(repo_id, branch):
            raise HubError(409, f"Reference refs/heads/{branch} already exists")
        shutil.copytree(self.hub.repo_dir(repo_id, start), self.hub.repo_dir(repo_id, branch))
        self.hub.heads[(repo_id, branch)] = self.hub.heads[(repo_id, start)]
        self.reply(200, {})

    def tree(self, repo_id: str, revision: str, sub: str, query: dict[str, list[str]]) -> None:
        self.require_repo(repo_id, revision)
        recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
        prefix = f"{sub.rstrip('/')}/" if sub else ""
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path, local in self.hub.files(repo_id, revision).items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self.hub.entry(path, local))
        for folder in sorted(folders):
            if recursive or "/" not in folder[len(prefix) :]:
                oid = hashlib.sha1(folder.encode(), usedforsecurity=False).hexdigest()
                entries.append({"type": "directory", "path": folder, "size": 0, "oid": oid})
        if sub and not entries:
            raise HubError(404, f"{sub} does not exist on {revision}", "EntryNotFound")
        self.reply(200, sorted(entries, key=lambda e: e["path"]))

    def repo_info(self, repo_id: str, revision: str) -> None:
        self.require_repo(repo_id, revision)
        siblings = [{"rfilename": p} for p in self.hub.files(repo_id, revision)]
        sha = self.hub.heads[(repo_id, revision)]
        self.reply(200, {"id": repo_id, "sha": sha, "private": self.hub.private[repo_id], "siblings": siblings})

    def validate_yaml(self, payload: dict[str, Any]) -> None:
        content: str = payload["content"]
        if content.startswith("---"):
            front = content.split("\n---", 1)[0].removeprefix("---")
            try:
                meta = yaml.safe_load(front)
            except yaml.YAMLError as e:
                self.reply(400, {"errors": [{"message": str(e)}]})
                return
            if meta is not None and not isinstance(meta, dict):
                self.reply(400, {"errors": [{"message": "metadata must be a mapping"}]})
                return
        self.reply(200, {"warnings": []})

    def preupload(self, repo_id: str, revision: str, payload: dict[str, Any]) -> None:
        self.require_repo(repo_id, revision)
        remote = self.hub.files(repo_id, revision)
        files = []
        for f in payload["files"]:
            lfs = is_lfs(f["path"], f["size"])
            oid = None
            if f["path"] in remote:  # what huggingface_hub compares with its _local_oid: sha256 (LFS) or blob id
                data = remote[f["path"]].read_bytes()
                oid = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self.reply(200, {"files": files, "commitOid": self.hub.heads[(repo_id, revision)]})

    def lfs_batch(self, repo_id: str, payload: dict[str, Any]) -> None:
        self.require_repo(repo_id)
        if payload.get("operation") != "upload":
            raise HubError(400, "mock hub: upload batches only")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            self.hub.counts["lfs_batch_object"] += 1
            out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            stored = self.hub.lfs_dir(repo_id) / oid
            if not (stored.is_file() and stored.stat().st_size == size):
                href = f"{self.hub.url}/lfs-{{}}/{quote(repo_id)}/{oid}"
                out["actions"] = {
                    "upload": {"href": href.format("upload"), "header": {}},
                    "verify": {"href": href.format("verify"), "header": {}},
                }
            objects.append(out)
        self.reply(200, {"transfer": "basic", "objects": objects})

    def lfs_put(self, repo_id: str, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "mock hub: uploaded content does not match its oid")
        target = self.hub.lfs_dir(repo_id) / oid
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        self.reply(200, raw=b"")

    def lfs_verify(self, repo_id: str, oid: str, payload: dict[str, Any]) -> None:
        stored = self.hub.lfs_dir(repo_id) / oid
        if payload.get("oid") != oid or not stored.is_file() or stored.stat().st_size != payload.get("size"):
            raise HubError(404, f"mock hub: LFS object {oid} not uploaded")
        self.reply(200, {"success": True})

    def commit(self, repo_id: str, revision: str, body: bytes, create_pr: bool) -> None:
        hub = self.hub
        self.require_repo(repo_id, revision)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "mock hub: the commit payload must start with a header line")
        summary = lines[0]["value"].get("summary", "")
        writes: dict[str, bytes] = {}
        files, lfs_files, deleted = [], [], []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, "mock hub: regular files must be base64")
                writes[value["path"]] = base64.b64decode(value["content"])
                files.append(value["path"])
            elif key == "lfsFile":
                stored = hub.lfs_dir(repo_id) / value["oid"]
                if not stored.is_file():
                    raise HubError(422, f"mock hub: LFS object {value['oid']} of {value['path']} was never uploaded")
                writes[value["path"]] = stored.read_bytes()
                lfs_files.append(value["path"])
            elif key == "deletedFile":
                deleted.append(value["path"])
            else:
                raise HubError(400, f"mock hub: unsupported commit line {key!r}")
        pr_num = None
        target = revision
        if create_pr:
            pr_num = hub.prs[repo_id] = hub.prs.get(repo_id, 0) + 1
            target = f"refs/pr/{pr_num}"
            shutil.copytree(hub.repo_dir(repo_id, revision), hub.repo_dir(repo_id, target))
            hub.heads[(repo_id, target)] = hub.heads[(repo_id, revision)]
        base = hub.repo_dir(repo_id, target)
        for path, data in writes.items():
            dest = base / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        for path in deleted:
            (base / path).unlink(missing_ok=True)
        oid = hub.new_commit_oid(repo_id, target, summary)
        hub.heads[(repo_id, target)] = oid
        hub.commits.append(Commit(repo_id, target, oid, summary, files, lfs_files, deleted, pr_num))
        answer: dict[str, Any] = {"success": True, "commitOid": oid, "commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{oid}"}
        if pr_num is not None:
            answer["pullRequestUrl"] = f"{hub.url}/datasets/{repo_id}/discussions/{pr_num}"
        self.reply(200, answer)

    def resolve(self, repo_id: str, revision: str, path: str) -> None:
        self.require_repo(repo_id, revision)
        local = self.hub.repo_dir(repo_id, revision) / path
        if not local.is_file():
            raise HubError(404, f"{path} not found", "EntryNotFound")
        entry = self.hub.entry(path, local)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": self.hub.heads[(repo_id, revision)]}
        if "lfs" in entry:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(entry["size"])
        data = local.read_bytes()
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if wanted and (wanted[1] or wanted[2]):  # a range read (datasets streaming a Parquet footer): 206 with that slice
            size = len(data)
            start, end = (int(wanted[1]), int(wanted[2] or size - 1)) if wanted[1] else (max(0, size - int(wanted[2])), size - 1)
            headers.update({"Content-Range": f"bytes {start}-{min(end, size - 1)}/{size}", "Accept-Ranges": "bytes"})
            return self.reply(206, raw=data[start : end + 1], headers=headers)
        self.reply(200, raw=data, headers=headers)


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: Hub) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hub = hub
        hub.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A running mock Hub (token ``hf_mock``), with ``huggingface_hub`` pointed at it and Xet off."""
    from huggingface_hub import constants

    state = Hub(root=tmp_path / "hub", token="hf_mock")
    state.root.mkdir()
    server = HubServer(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    monkeypatch.setattr(constants, "ENDPOINT", state.url)  # both are read from HF_ENDPOINT at import time
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", state.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
