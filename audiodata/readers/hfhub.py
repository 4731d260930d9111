"""Datasets on a hub, read through their own libraries: the Hugging Face Hub with ``datasets``
(streamed when online; from the local cache with ``HF_HUB_OFFLINE=1``) and ModelScope with
``MsDataset``, as LLaMA-Factory loads its ``hf_hub_url``/``ms_hub_url`` entries (``data/loader.py``:
``load_dataset(path, name=subset, data_dir=folder, split=split)``).

Typed as ``hf://owner/name`` or ``ms://owner/name``, with ``?subset=...&split=...&folder=...&revision=...``
(split ``train`` by default, as LLaMA-Factory's). Decoding is switched off, so an ``Audio`` column comes
as ``{bytes, path}``: the bytes as stored on the hub. What cannot be read here (offline and not cached,
no such dataset, gated, the library missing) is said in one line by :func:`unavailable`, before the run.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from audiodata.errtext import library_error
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.registry import InputError

SCHEMES = {"hf": "Hugging Face Hub", "ms": "ModelScope"}
QUERY_KEYS = ("subset", "split", "folder", "revision")
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: How long the reachability probe waits before the hub is taken as unreachable (the libraries retry for ~30 s).
PROBE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class HubRef:
    """One dataset on a hub, with what LLaMA-Factory's entries say about it."""

    hub: str  # "hf" | "ms"
    repo: str
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    revision: str | None = None

    @property
    def shown(self) -> str:
        """As typed: ``hf://owner/name?subset=clean&split=validation`` (keys that differ from the defaults)."""
        q = [(k, getattr(self, k)) for k in QUERY_KEYS if getattr(self, k) not in (None, "train" if k == "split" else None)]
        query = "&".join(f"{k}={quote(str(v), safe='/:.[]-_')}" for k, v in q)
        return f"{self.hub}://{self.repo}" + (f"?{query}" if query else "")


def parse_hub_id(text: str) -> HubRef | None:
    """``hf://owner/name?split=test`` -> a :class:`HubRef`; None for text that is not a hub id. Raises
    :class:`InputError` for a hub id that is malformed."""
    scheme, sep, _ = text.partition("://")
    if not sep or scheme not in SCHEMES:
        return None
    parts = urlsplit(text)
    repo = (parts.netloc + parts.path).strip("/")
    if not _REPO.match(repo):
        raise InputError(f"{text}: not a dataset id (write {scheme}://owner/name)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = [k for k in query if k not in QUERY_KEYS]
    if unknown:
        raise InputError(f"{text}: unknown option {unknown[0]!r} (a hub dataset takes {', '.join(QUERY_KEYS)})")
    opts = {k: v[-1] for k, v in query.items() if v and v[-1]}
    return HubRef(scheme, repo, opts.get("subset"), opts.get("split", "train"), opts.get("folder"), opts.get("revision"))


def hf_offline() -> bool:
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


# -- can it be read here? ----------------------------------------------------------------------------


def unavailable(ref: HubRef) -> str | None:
    """Why ``ref`` cannot be read on this machine, in one line naming the dataset and the fix; None when it can."""
    if ref.hub == "ms":
        return _ms_unavailable(ref)
    if hf_offline():
        try:
            if not _maybe_cached(ref.repo):
                raise FileNotFoundError(ref.repo)
            _open_hf(ref)
        except Exception as exc:
            if _missing_split(exc):
                return f"{ref.shown}: {library_error(exc)}"
            return (
                f"{ref.shown}: not in the local Hugging Face cache and the Hub is switched off (HF_HUB_OFFLINE=1): "
                "run once with network access to cache it, or unset HF_HUB_OFFLINE"
            )
        return None
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().dataset_info(ref.repo, revision=ref.revision, timeout=PROBE_SECONDS)
    except GatedRepoError:
        return f"{ref.shown}: {ref.repo} is gated: accept its terms on the Hub and log in (hf auth login)"
    except RevisionNotFoundError:
        return f"{ref.shown}: {ref.repo} has no revision {ref.revision!r}"
    except RepositoryNotFoundError:
        return f"{ref.shown}: no dataset {ref.repo} on the Hugging Face Hub (or it is private: log in with hf auth login)"
    except Exception as exc:  # httpx's ConnectError and friends: no network
        return (
            f"{ref.shown}: the Hugging Face Hub cannot be reached ({library_error(exc) or type(exc).__name__}): run with "
            "network access, or with HF_HUB_OFFLINE=1 to read a copy cached before"
        )
    return None


def _maybe_cached(repo: str) -> bool:
    """Whether a cache folder for ``repo`` exists (``datasets``: ``owner___name``; the hub cache:
    ``datasets--owner--name``): a cheap no before ``datasets`` is imported and asked."""
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets")
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub")
    return (datasets_cache / repo.replace("/", "___")).is_dir() or (hub_cache / ("datasets--" + repo.replace("/", "--"))).is_dir()


def _missing_split(exc: Exception) -> bool:
    text = str(exc)
    return "split" in text.lower() and ("Unknown split" in text or "not found" in text.lower()) and "Couldn't reach" not in text


def _ms_unavailable(ref: HubRef) -> str | None:
    try:
        from modelscope.msdatasets import MsDataset  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        need = "ModelScope datasets need the modelscope package with its datasets extra"
        return f"{ref.shown}: {need} ({exc}): pip install 'modelscope[datasets]'"
    domain = os.environ.get("MODELSCOPE_DOMAIN") or "www.modelscope.cn"
    host = urlsplit(domain if "://" in domain else f"https://{domain}").hostname or domain
    try:
        socket.create_connection((host, 443), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        return (
            f"{ref.shown}: ModelScope ({host}) cannot be reached ({exc.strerror or exc}): run with network access "
            "(ModelScope has no offline mode that audiodata can use)"
        )
    return None


# -- rows --------------------------------------------------------------------------------------------


def _open_hf(ref: HubRef) -> Any:
    import datasets

    streaming = not hf_offline()  # offline, the cache holds Arrow files: load them (memory-mapped) instead
    ds = datasets.load_dataset(
        ref.repo, name=ref.subset, split=ref.split, data_dir=ref.folder, revision=ref.revision, streaming=streaming
    )
    return ds


def _open(ref: HubRef) -> Any:
    if ref.hub == "hf":
        return _open_hf(ref)
    from modelscope.msdatasets import MsDataset

    ds = MsDataset.load(ref.repo, subset_name=ref.subset, split=ref.split, data_dir=ref.folder, use_streaming=True)
    return ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds


def _rows(ds: Any) -> Iterator[dict[str, Any]]:
    """Rows with decoding off: an in-memory (cached) dataset through its Arrow table, a stream with
    ``decode(False)``."""
    import datasets

    if isinstance(ds, datasets.Dataset):
        for batch in ds.with_format("arrow").iter(batch_size=16):
            yield from batch.to_pylist()
        return
    if hasattr(ds, "decode"):
        ds = ds.decode(False)
    yield from ds


def columns(ref: HubRef) -> tuple[list[str], list[str], dict[str, Any]]:
    """(column names, Audio columns, a stand-in row) of a dataset :func:`unavailable` passed."""
    from audiodata.readers.hfdataset import audio_columns

    ds = _open(ref)
    feats = getattr(ds, "features", None)
    if feats is not None:  # the dataset card or the files declare them
        described = feats.to_dict()
        sample = {k: [] if _is_list(v) else {} if "_type" not in v else "text" for k, v in described.items()}
        return list(described), audio_columns(described), sample
    first = next(iter(_rows(ds)), {})
    return list(first), [k for k, v in first.items() if isinstance(v, dict) and "bytes" in v], first


def _is_list(f: Any) -> bool:
    return isinstance(f, list) or (isinstance(f, dict) and f.get("_type") in ("Sequence", "List", "LargeList"))


def iter_rows(ref: HubRef) -> Iterator[RawItem]:
    """Every row of the dataset as a parsed item (``row N``); a failure part way is one F004 item there."""
    index = 0
    try:
        for row in _rows(_open(ref)):
            yield RawItem(index, 0, obj=_fetched(row), member=f"row {index}")
            index += 1
    except Exception as exc:
        reason = f"cannot read {ref.shown} from the {SCHEMES[ref.hub]}: {library_error(exc) or type(exc).__name__}"
        if index:
            reason += " (reading stopped here; the rows before it are kept)"
        yield RawItem(index if index else -1, 0, code="F004", error=reason, member=f"row {index}" if index else None)


def _fetched(row: dict[str, Any]) -> dict[str, Any]:
    """A streamed audio kept on the hub as a file (``{bytes: None, path: hf://...}``) is read here, through
    ``datasets``' own opener: the audio stage never fetches."""
    for key, value in row.items():
        if (
            isinstance(value, dict)
            and value.get("bytes") is None
            and str(value.get("path") or "").startswith(("hf://", "https://"))
        ):
            from datasets.utils.file_utils import xopen

            with xopen(value["path"], "rb") as fh:
                row[key] = {"bytes": fh.read(), "path": value["path"].rsplit("/", 1)[-1]}
    return row
