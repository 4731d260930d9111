"""Object stores (``s3://``, ``gs://``, ``hf://``; fsspec's ``memory://`` in tests): the one place audiodata
reads or writes anything that is not on a local disk.

Three uses, one set of functions (every remote byte goes through :func:`filesystem`, :func:`retrying`,
:func:`download`, :func:`upload` and :func:`read_bytes`):

- **Input files** (``convert s3://bucket/corpus/train.jsonl``, a remote folder or glob): staged into a local
  cache (:func:`stage`), verified, then read by the same readers as local files; records keep the URL as their
  ``source``, and relative media paths resolve against the remote folder.
- **Media references**: a record's ``s3://bucket/a.wav`` is fetched only from a prefix the user allows
  (``--allow-remote s3://bucket/``, :func:`allow_prefixes`, :func:`allowed`); a relative path under a remote media root is fetched
  like a local one is read (it may not leave the root). http(s) and any other URL stay refused (A003).
- **The output folder** (``convert ... -o s3://bucket/out``, ranks, ``merge``): :class:`Mirror` keeps a local
  working copy that the local engine writes as it always does (one writer, one resume logic), and replicates
  it to the store at every durable point (each :meth:`RunState.save <audiodata.pipeline.state.RunState.save>`):
  changed files first, the manifest after the shards, ``state.json`` last, stale files deleted after. A run
  killed anywhere resumes on any machine from what the store holds, and the bytes are the local run's.

Integrity: every transfer is checked against the store's own checksum where it gives one (an S3 ETag that is an
MD5, a GCS ``md5Hash``, a Hub LFS sha256) and the size; the output's files also against the sha256 recorded
when they were uploaded (``.audiodata/objects.json``). Transient failures are retried with backoff
(``AUDIODATA_REMOTE_RETRIES``, default 3 retries). Credentials come from the environment, as each library reads
them (``AWS_*`` / ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``HF_TOKEN``; fsspec's
``FSSPEC_S3_*`` settings too). A missing library is one line naming the extra (``pip install 'audiodata[s3]'``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from audiodata.errors import FaultError, OutputError, UsageError

T = TypeVar("T")

#: Schemes read through fsspec, and the extra that brings each one's library (None: fsspec itself).
SCHEMES: dict[str, str | None] = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "hf": None, "memory": None}
_LIBRARY = {"s3": "s3fs", "gcs": "gcsfs"}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: What the output's work folder keeps of each uploaded file (size, sha256): the integrity check of a pull.
LEDGER = "objects.json"
WORK = ".audiodata"  # audiodata.lock.WORK (not imported: this module sits below the pipeline)
_NEVER_PUSHED = (f"{WORK}/lock",)
#: Scratch in the work folder, never replicated: a spilled duplicate index (audiodata.dedup.store.SPILL_PREFIX)
#: and merge's rewritten shards before they are placed (audiodata.pipeline.merge.REWRITE); a resume rebuilds both.
SCRATCH = ("audiodata-dedup-", f"{WORK}/merge/")


class MissingExtra(UsageError):
    """A scheme whose library is not installed: exit 2, naming the extra."""


class RemoteFault(FaultError):
    """A store that kept failing (after the retries), or a transfer that failed its integrity check: exit 3."""


def scheme_of(text: str) -> str | None:
    m = _URL.match(text)
    return m.group(1).lower() if m else None


def is_remote(text: str | os.PathLike[str] | None) -> bool:
    """Whether ``text`` names an object in a store audiodata reads through fsspec. ``hf://owner/name`` (two
    parts at most) is a Hub *dataset id*, read through ``datasets`` (audiodata.readers.hfhub), not a file;
    ``hf://datasets/owner/name/file.jsonl`` is a file."""
    if text is None or not isinstance(text, str):
        return False
    scheme = scheme_of(text)
    if scheme not in SCHEMES:
        return False
    if scheme == "hf":
        return len([p for p in text[5:].split("?", 1)[0].split("/") if p]) > 2
    return True


def join(base: str, *parts: str) -> str:
    """``base`` (a URL) joined with relative ``parts``, normalised (``a/../b``); never above ``base``'s bucket."""
    scheme = scheme_of(base) or ""
    head = f"{scheme}://"
    rest = posixpath.normpath(posixpath.join(base[len(head) :], *parts))
    return head + rest.lstrip("/") if rest != "." else head


def parent(url: str) -> str:
    head = f"{scheme_of(url)}://"
    return head + posixpath.dirname(url[len(head) :].rstrip("/"))


def _options(scheme: str) -> dict[str, Any]:
    """Storage options from the environment that the libraries do not read themselves."""
    if scheme in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    return {}


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path within it. Raises :class:`MissingExtra` (exit 2) when the
    scheme's library is not installed."""
    scheme = scheme_of(url) or ""
    extra = SCHEMES.get(scheme)
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url, **_options(scheme))
    except ImportError as exc:
        name = _LIBRARY.get(extra or "", "its fsspec library")
        hint = f"pip install 'audiodata[{extra}]'" if extra else "pip install fsspec"
        raise MissingExtra(f"{url}: {scheme}:// needs {name}, which is not installed ({hint})") from exc
    return fs, path


def retries() -> int:
    try:
        return max(0, int(os.environ.get("AUDIODATA_REMOTE_RETRIES", "3")))
    except ValueError:
        return 3


def _backoff(attempt: int) -> float:
    try:
        base = float(os.environ.get("AUDIODATA_REMOTE_BACKOFF", "0.5"))
    except ValueError:
        base = 0.5
    return base * 2**attempt


#: Failures a retry cannot mend: the object is not there, or we may not read it.
_FINAL = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, MissingExtra)


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def retrying(what: str, fn: Callable[[], T]) -> T:
    """``fn()``, tried again with exponential backoff on a transient failure; after the last try a
    :class:`RemoteFault` naming ``what`` and the cause. Not-found and permission errors are raised at once."""
    tries = retries() + 1
    for attempt in range(tries):
        try:
            return fn()
        except _FINAL:
            raise
        except (MemoryError, KeyboardInterrupt, RemoteFault):
            raise
        except Exception as exc:  # the libraries raise their own types (botocore, aiohttp, httpx): all transient here
            if attempt == tries - 1:
                raise RemoteFault(f"{what}: {reason(exc)} (after {tries} tries)") from exc
            time.sleep(_backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


# -- integrity -----------------------------------------------------------------------------------------


def _stored_checksum(info: dict[str, Any]) -> tuple[str, str] | None:
    """(algorithm, hex digest) of the whole object as the store reports it, where it does: an S3 ETag that is
    an MD5 (single-part uploads), GCS's ``md5Hash``, a Hub file's LFS sha256."""
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{32}", etag):
        return "md5", etag
    md5 = info.get("md5Hash")
    if isinstance(md5, str):
        try:
            return "md5", base64.b64decode(md5).hex()
        except ValueError:
            pass
    lfs = info.get("lfs")
    if isinstance(lfs, dict) and isinstance(lfs.get("sha256"), str):
        return "sha256", lfs["sha256"]
    return None


class Digests:
    """MD5 and sha256 of bytes as they stream past (one pass)."""

    def __init__(self) -> None:
        self.md5, self.sha256, self.size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)

    def matches(self, algo: str, digest: str) -> bool:
        return (self.md5 if algo == "md5" else self.sha256).hexdigest() == digest

    @classmethod
    def of_file(cls, path: Path) -> Digests:
        d = cls()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                d.update(chunk)
        return d


def check(url: str, info: dict[str, Any], got: Digests, sha256: str | None = None) -> None:
    """Raise :class:`RemoteFault` when the bytes ``got`` are not the object ``info`` describes (size, the store's
    checksum) or not the ``sha256`` recorded for it."""
    size = info.get("size")
    if isinstance(size, int) and size != got.size:
        raise RemoteFault(f"{url}: {got.size} bytes transferred, the store holds {size}")
    stored = _stored_checksum(info)
    if stored is not None and not got.matches(*stored):
        raise RemoteFault(f"{url}: the bytes transferred do not match the store's {stored[0]} {stored[1]}")
    if sha256 is not None and got.sha256.hexdigest() != sha256:
        raise RemoteFault(f"{url}: sha256 {got.sha256.hexdigest()} differs from the {sha256} recorded when it was written")


# -- transfers -------------------------------------------------------------------------------------------


def info(url: str) -> dict[str, Any]:
    fs, path = filesystem(url)
    result: dict[str, Any] = retrying(f"{url}: looking it up", lambda: fs.info(path))
    return result


def read_bytes(url: str, max_bytes: int | None = None) -> bytes:
    """The object's bytes, checked. Raises FileNotFoundError, :class:`TooLarge` past ``max_bytes`` (before any
    byte is read), or :class:`RemoteFault`."""
    fs, path = filesystem(url)
    meta: dict[str, Any] = retrying(f"{url}: looking it up", lambda: fs.info(path))
    size = meta.get("size")
    if max_bytes is not None and isinstance(size, int) and size > max_bytes:
        raise TooLarge(size)

    def fetch() -> bytes:
        data: bytes = fs.cat_file(path)
        got = Digests()
        got.update(data)
        check(url, meta, got)
        return data

    return retrying(f"{url}: reading it", fetch)


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def download(url: str, dest: Path, sha256: str | None = None, meta: dict[str, Any] | None = None) -> Digests:
    """``url`` into ``dest`` through ``dest.part`` (renamed once checked): a kill never leaves a torn file."""
    fs, path = filesystem(url)
    if meta is None:
        meta = retrying(f"{url}: looking it up", lambda: fs.info(path))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")  # ranks on one node may stage the same input at once

    def fetch() -> Digests:
        got = Digests()
        with fs.open(path, "rb") as src, open(part, "wb") as dst:
            while chunk := src.read(1 << 22):
                got.update(chunk)
                dst.write(chunk)
        check(url, meta, got, sha256)
        return got

    got = retrying(f"{url}: downloading it", fetch)
    os.replace(part, dest)
    return got


def upload(src: Path, url: str) -> tuple[str, str]:
    """``src`` to ``url``, checked against what the store then reports; returns its sha256 and the object's
    :func:`identity` in the store."""
    fs, path = filesystem(url)
    local = Digests.of_file(src)

    def put() -> str:
        fs.put_file(str(src), path)
        fs.invalidate_cache(path)
        meta = fs.info(path)
        check(url, meta, local)
        return identity(meta)

    return local.sha256.hexdigest(), retrying(f"{url}: uploading {src.name}", put)


def identity(meta: dict[str, Any]) -> str:
    """What tells one version of an object from another in its store: size, checksum, modification time."""
    return json.dumps([meta.get("size"), _stored_checksum(meta), str(_mtime(meta))])


def remove(url: str) -> None:
    fs, path = filesystem(url)

    def rm() -> None:
        with suppress(FileNotFoundError):
            fs.rm_file(path)

    retrying(f"{url}: deleting it", rm)


def listing(url: str) -> dict[str, dict[str, Any]]:
    """Every object under the folder ``url``: relative path -> its info (empty when there is none)."""
    fs, path = filesystem(url)
    root = path.rstrip("/")

    def find() -> dict[str, dict[str, Any]]:
        fs.invalidate_cache(root)
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for name, meta in found.items():
            name = name if name.startswith("/") == root.startswith("/") else ("/" + name if root.startswith("/") else name)
            rel = posixpath.relpath(name, root)
            if meta.get("type", "file") == "file" and not rel.startswith(".."):
                out[rel] = meta
        return out

    return retrying(f"{url}: listing it", find)


# -- the local cache ------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Where remote inputs are staged and remote outputs are built (``AUDIODATA_CACHE``, default
    ``~/.cache/audiodata``)."""
    base = os.environ.get("AUDIODATA_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "audiodata")
    return Path(os.path.expanduser(base))


def _slot(kind: str, url: str) -> Path:
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:20]
    return cache_root() / kind / digest


# -- inputs ---------------------------------------------------------------------------------------------

#: Names staged from a remote folder: what the local expansion would read (not audio: media is fetched per record).
_INPUT_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".yaml", ".yml", ".parquet", ".arrow", ".tsv", ".csv")


@dataclass(frozen=True, slots=True)
class Staged:
    """A remote input staged locally: ``path`` (a file or a folder) stands for ``url``."""

    url: str
    path: Path
    digests: dict[str, str]  # local path -> sha256 of each staged file (what an input is, across machines)

    def url_of(self, local: str | os.PathLike[str]) -> str | None:
        """The URL of a local path inside the staged copy (a file or a folder), or None."""
        p = Path(os.path.abspath(local))
        base = self.path if self.path.is_dir() else self.path.parent
        url = self.url if self.path.is_dir() else parent(self.url)
        if not p.is_relative_to(base):
            return None
        rel = p.relative_to(base).as_posix()
        return url.rstrip("/") if rel == "." else join(url, rel)


def stage(url: str, wanted: Callable[[str], bool] | None = None) -> Staged:
    """``url`` (a file, a folder, or a glob) copied into the cache, each file checked; a file already there at
    the same size and store checksum is not fetched again. Raises FileNotFoundError when nothing is there."""
    fs, path = filesystem(url)
    head = f"{scheme_of(url)}://"
    pattern = any(ch in path for ch in "*?[")
    slot = _slot("inputs", url)
    digests: dict[str, str] = {}
    if pattern:
        found = retrying(f"{url}: listing it", lambda: fs.glob(path, detail=True))
        base = path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0].rsplit("/", 1)[0]
        files = {posixpath.relpath(_abs(n, path), _abs(base, path)): m for n, m in found.items() if m.get("type") == "file"}
        if not files:
            raise FileNotFoundError(url)
        for rel, meta in sorted(files.items()):
            digests[str(slot / rel)] = _fetch_cached(join(head + base.lstrip("/"), rel), slot / rel, meta)
        _prune(slot, digests)
        return Staged(head + base.lstrip("/"), slot, digests)
    meta = retrying(f"{url}: looking it up", lambda: fs.info(path))
    if meta.get("type") == "directory":
        files = listing(url)
        for rel, m in sorted(files.items()):
            name = rel.lower()
            if posixpath.basename(name).startswith(".") or not name.endswith(_INPUT_SUFFIXES):
                continue
            digests[str(slot / rel)] = _fetch_cached(join(url, rel), slot / rel, m)
        slot.mkdir(parents=True, exist_ok=True)
        _prune(slot, digests)
        return Staged(url.rstrip("/"), slot, digests)
    dest = slot / posixpath.basename(path.rstrip("/"))
    digests[str(dest)] = _fetch_cached(url, dest, meta)
    return Staged(url, dest, digests)


def _prune(slot: Path, keep: dict[str, str]) -> None:
    """Drop staged files the store no longer holds: a folder's copy is what the folder is now."""
    for p in slot.rglob("*"):
        if p.is_file() and ".audiodata-source" not in p.parts and not p.name.endswith(".part") and str(p) not in keep:
            p.unlink()


def _abs(name: str, like: str) -> str:
    return name if name.startswith("/") or not like.startswith("/") else "/" + name


def _fetch_cached(url: str, dest: Path, meta: dict[str, Any]) -> str:
    """sha256 of ``url`` staged at ``dest``, fetched only when the cached copy is not the object ``meta`` says."""
    sidecar = dest.parent / ".audiodata-source" / f"{dest.name}.json"  # a dot folder: a folder's expansion skips it
    identity = {"url": url, "size": meta.get("size"), "checksum": _stored_checksum(meta), "mtime": str(_mtime(meta))}
    try:
        kept = json.loads(sidecar.read_text(encoding="utf-8"))
        if kept.get("identity") == identity and dest.is_file() and dest.stat().st_size == meta.get("size"):
            return str(kept["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    got = download(url, dest, meta=meta)
    sha = got.sha256.hexdigest()
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps({"identity": identity, "sha256": sha}), encoding="utf-8")
    os.replace(tmp, sidecar)
    return sha


def _mtime(meta: dict[str, Any]) -> Any:
    """What the store says of when an object changed; None where it says nothing (the checksum then decides)."""
    for key in ("LastModified", "last_modified", "updated", "mtime", "created"):
        if meta.get(key) is not None:
            return meta[key]
    return None


# -- which remote media may be fetched ------------------------------------------------------------------


def allow_prefixes(given: Iterable[str]) -> tuple[str, ...]:
    """``--allow-remote`` prefixes, checked: an object-store URL naming at least a bucket, as a folder prefix
    (``s3://bucket`` allows ``s3://bucket/...``, never ``s3://bucket-other/``). Raises UsageError (exit 2)."""
    out: list[str] = []
    for text in given:
        scheme = scheme_of(text)
        if scheme in ("http", "https"):
            raise UsageError(f"--allow-remote {text}: http(s) media are never fetched; copy them into an object store or disk")
        if scheme not in SCHEMES:
            raise UsageError(
                f"--allow-remote {text}: not an object-store prefix (s3://bucket/, gs://bucket/, hf://datasets/owner/name/)"
            )
        rest = text[len(scheme or "") + 3 :].strip("/")
        if not rest:
            raise UsageError(f"--allow-remote {text}: name a bucket (or a folder in it), not the whole store")
        out.append(f"{scheme}://{rest}/")
    return tuple(dict.fromkeys(out))


def allowed(url: str, prefixes: Iterable[str]) -> bool:
    """Whether ``url`` lies under one of ``prefixes`` once normalised (``..`` cannot climb out of one)."""
    scheme = scheme_of(url)
    if scheme is None:
        return False
    norm = join(f"{scheme}://", url[len(scheme) + 3 :])
    return any(norm.startswith(p) for p in prefixes)


def suggest_prefix(url: str) -> str:
    """The narrowest sensible ``--allow-remote`` for ``url``: its bucket (its repo for ``hf://``)."""
    scheme = scheme_of(url) or ""
    parts = [p for p in url[len(scheme) + 3 :].split("/") if p]
    keep = 3 if scheme == "hf" and parts and parts[0] in ("datasets", "spaces") else (2 if scheme == "hf" else 1)
    return f"{scheme}://" + "/".join(parts[:keep]) + "/"


# -- the output folder ----------------------------------------------------------------------------------

_MIRRORS: dict[Path, Mirror] = {}
_COPIES: dict[Path, str] = {}  # a pulled local copy -> the store folder it copies (for messages: shown())


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as a user should read it: inside a local copy of a store folder (:meth:`Mirror.read_only`), the
    store's URL (the cache's folder name means nothing to them); else ``path`` as it is."""
    p = Path(os.path.abspath(path))
    for base, url in _COPIES.items():
        if p == base or base in p.parents:
            rel = p.relative_to(base).as_posix()
            return url if rel == "." else join(url, rel)
    return str(path)


def readable(path: str | os.PathLike[str], check_ledger: bool = True) -> Path:
    """A converted dataset to read: ``path`` itself, or for a folder in a store its local copy, pulled."""
    text = str(path)
    return Mirror(text).read_only(check_ledger) if is_remote(text) else Path(path)


def saved(folder: Path) -> None:
    """Called after each durable save of ``folder`` (the resume state): replicate it when it mirrors a store."""
    mirror = _MIRRORS.get(Path(os.path.abspath(folder)))
    if mirror is not None:
        mirror.push()


class Mirror:
    """A remote output folder's local working copy. :meth:`pull` makes the copy equal to the store (the store is
    the truth: a local leftover of a run that never reached the store is dropped); :meth:`push` makes the store
    equal to the copy. While :meth:`attached`, every durable save pushes."""

    def __init__(self, url: str, sub: str | None = None) -> None:
        """The folder ``url``, or only its ``sub`` folder (a rank's): ``base`` is the local copy of ``url``
        whatever ``sub``, so local paths under it are as they would be."""
        if not is_remote(url):
            raise UsageError(f"{url}: not an object-store folder")
        filesystem(url)  # a missing library is said before anything is done
        self.base = _slot("outputs", url.rstrip("/"))
        self.url = join(url, sub) if sub else url.rstrip("/")
        self.local = self.base / sub if sub else self.base
        self._pushed: dict[str, tuple[int, int]] = {}  # rel -> (size, mtime_ns) of what the store holds from here
        self.ledger: dict[str, dict[str, Any]] = {}  # rel -> {"size", "sha256"}: what the store holds

    def _files(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        if not self.local.is_dir():
            return out
        for p in sorted(self.local.rglob("*")):
            if p.is_file() and not p.name.endswith((".tmp", ".part")):
                rel = p.relative_to(self.local).as_posix()
                scratch = rel.startswith(SCRATCH[1]) or any(part.startswith(SCRATCH[0]) for part in rel.split("/"))
                if rel not in _NEVER_PUSHED and rel != f"{WORK}/{LEDGER}" and not scratch:
                    out[rel] = p
        return out

    def pull(self, check_ledger: bool = True) -> None:
        """Bring the local copy to what the store holds, each file checked against the store's checksum and the
        ledger's sha256 (``check_ledger=False``: the store's checksum only, for verify to report damage itself)."""
        remote = listing(self.url)
        remote.pop(f"{WORK}/lock", None)
        ledger_meta = remote.pop(f"{WORK}/{LEDGER}", None)
        ledger: dict[str, dict[str, Any]] = {}
        if ledger_meta is not None:
            try:
                ledger = json.loads(read_bytes(join(self.url, WORK, LEDGER)))
            except (ValueError, FileNotFoundError):
                ledger = {}
        kept = self._read_local_ledger()
        self.local.mkdir(parents=True, exist_ok=True)
        for rel, meta in sorted(remote.items()):
            dest = self.local / rel
            want = ledger.get(rel)
            mine = kept.get(rel) or {}
            same = (  # the copy here is the very object the store holds: not fetched again
                want is not None
                and mine.get("sha256") == want.get("sha256")
                and mine.get("store") == identity(meta)
                and dest.is_file()
                and dest.stat().st_size == want.get("size") == meta.get("size")
            )
            if want is None or not same:
                got = download(join(self.url, rel), dest, want.get("sha256") if want and check_ledger else None, meta)
                want = {"size": got.size, "sha256": got.sha256.hexdigest()}
            ledger[rel] = {"size": want.get("size"), "sha256": want.get("sha256"), "store": identity(meta)}
        for rel, p in self._files().items():
            if rel not in remote:
                p.unlink()
        self.ledger = {rel: ledger[rel] for rel in remote}
        self._write_local_ledger()
        self._pushed = {rel: _stamp(p) for rel, p in self._files().items()}

    def push(self) -> None:
        """Bring the store to the local copy: changed files (the manifest after the data, the resume state
        last), then the ledger, then stale objects deleted."""
        files = self._files()
        changed = [rel for rel in sorted(files, key=_push_order) if self._pushed.get(rel) != _stamp(files[rel])]
        state = f"{WORK}/state.json"
        for rel in changed:
            if rel == state:
                continue
            self._upload(rel, files[rel])
        stale = [rel for rel in self.ledger if rel not in files]
        for rel in stale:
            del self.ledger[rel]
            self._pushed.pop(rel, None)
        if changed or stale:  # the ledger before the state that builds on the files it checks
            self._write_local_ledger()
            upload(self.local / WORK / LEDGER, join(self.url, WORK, LEDGER))
        if state in changed:
            self._upload(state, files[state])
            self._write_local_ledger()
            upload(self.local / WORK / LEDGER, join(self.url, WORK, LEDGER))
        for rel in stale:
            remove(join(self.url, rel))

    def _upload(self, rel: str, path: Path) -> None:
        stamp = _stamp(path)
        sha, store = upload(path, join(self.url, rel))
        self.ledger[rel] = {"size": stamp[0], "sha256": sha, "store": store}
        self._pushed[rel] = stamp

    def _read_local_ledger(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.local / WORK / LEDGER).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_local_ledger(self) -> None:
        (self.local / WORK).mkdir(parents=True, exist_ok=True)
        (self.local / WORK / LEDGER).write_text(json.dumps(self.ledger, indent=1, sort_keys=True), encoding="utf-8")

    @contextmanager
    def attached(self) -> Iterator[Mirror]:
        """Push at every durable save of the local copy, and once at the end (also after an error: what was made
        durable before it reaches the store, so a resume elsewhere starts there)."""
        key = Path(os.path.abspath(self.local))
        _MIRRORS[key] = self
        try:
            yield self
        except BaseException:
            _MIRRORS.pop(key, None)
            with suppress(Exception):  # the run's own error is the one to report; a resume pushes again
                self.push()
            raise
        _MIRRORS.pop(key, None)
        self.push()

    @contextmanager
    def claimed(self, wait: bool = False) -> Iterator[Mirror]:
        """This machine's copy held by this process alone (a second run into the same store folder here would
        pull over the first's files): an exclusive ``flock`` beside the copy, released however the process ends.
        ``wait``: take turns with the holder instead of refusing (readers: ranks of one training run)."""
        import fcntl

        self.local.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.local.parent / f"{self.local.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise OutputError(f"{self.url}: another run on this machine is writing it; wait for it to finish") from None
            yield self
        finally:
            os.close(fd)

    def read_only(self, check_ledger: bool = True, wait: bool = False) -> Path:
        """The local copy, brought to what the store holds, for a command that only reads it (verify, info, export);
        ``wait``: after another process of this machine is done with it (see :meth:`claimed`)."""
        with self.claimed(wait):
            self.pull(check_ledger)
        _COPIES[Path(os.path.abspath(self.base))] = self.url
        return self.base

    def clear_local(self) -> None:
        shutil.rmtree(self.local, ignore_errors=True)


MANIFEST_NAME = "manifest.json"


def _stamp(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def _push_order(rel: str) -> tuple[int, str]:
    """Data and work files first, then what names them: the card and manifest (a dataset is there once its
    manifest is), the resume state last (it may name only what the store already holds)."""
    if rel == f"{WORK}/state.json":
        return 3, rel
    if rel == MANIFEST_NAME:
        return 2, rel
    if "/" not in rel:
        return 1, rel
    return 0, rel


__all__ = [
    "SCHEMES",
    "Mirror",
    "MissingExtra",
    "RemoteFault",
    "Staged",
    "TooLarge",
    "allow_prefixes",
    "allowed",
    "download",
    "filesystem",
    "is_remote",
    "read_bytes",
    "retrying",
    "stage",
    "upload",
]
