"""Reading a converted dataset back, with one error for damage.

Every command that reads a converted dataset (train, verify, export, ``dedup --against``, info,
publish, a resumed ``convert --dedup``) opens its manifest and shards through here. A manifest that
is not JSON, a shard that is missing, truncated or full of garbage is a :class:`DatasetError` (exit
code 2, a dataset-format problem) that names the file, the row group when one is to blame, and
points to ``audiodata verify``, which lists every problem. An OS error while reading (EIO) stays a
fault of the machine (exit code 3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audiodata.faults import MachineFault, is_os_fault

SHARD_KEYS = ("file", "config", "split", "rows", "bytes")


class DatasetError(ValueError):
    """A converted dataset that is damaged, or not one: exit code 2."""


def verify_hint(out: str | os.PathLike[str]) -> str:
    return f"run `audiodata verify {out}` to see every problem"


def load_manifest(out: str | os.PathLike[str]) -> dict[str, Any]:
    """``OUT/manifest.json``, checked for the keys every reader needs."""
    root = Path(out)
    path = root / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{root}: no manifest.json; is this a finished audiodata output?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        shards, summary = manifest["shards"], manifest["summary"]
        if not isinstance(shards, list) or not isinstance(summary, dict):
            raise TypeError("shards must be a list and summary an object")
        for s in shards:
            lacking = [k for k in SHARD_KEYS if k not in s]
            if lacking:
                raise KeyError(f"a shard entry lacks {', '.join(lacking)}")
    except OSError as exc:
        if is_os_fault(exc):
            raise MachineFault("read", path, exc) from exc
        raise DatasetError(f"{path}: unreadable ({exc}); {verify_hint(root)}") from None
    except (ValueError, KeyError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DatasetError(f"{path}: not a readable manifest ({type(exc).__name__}: {exc}); {verify_hint(root)}") from None
    return manifest


def shard_path(out: str | os.PathLike[str], entry: dict[str, Any]) -> Path:
    """The shard ``entry`` names, present. (Its size is not compared: a shard rewritten by hand may still read;
    a truncated one fails its footer in :func:`open_shard`, and ``verify`` compares sizes and checksums.)"""
    root = Path(out)
    path = root / entry["file"]
    if not path.is_file():
        raise DatasetError(f"shard {entry['file']} listed in {root}/manifest.json is missing; {verify_hint(root)}")
    return path


def damage(exc: BaseException) -> bool:
    """A reading error that means damaged data (pyarrow, a decoder), not a fault of the machine."""
    import pyarrow as pa

    from audiodata.audio.load import AudioError

    if isinstance(exc, OSError):
        return not is_os_fault(exc)
    return isinstance(exc, (pa.ArrowException, AudioError, ValueError, EOFError, IndexError, KeyError, TypeError))


@contextmanager
def reading(path: Path, shown: str, out: str | os.PathLike[str], row_group: int | None = None) -> Iterator[None]:
    """Turn a damaged-shard error inside the block into a :class:`DatasetError` naming ``shown``
    (and the row group); an OS error becomes a :class:`MachineFault`."""
    try:
        yield
    except (DatasetError, MachineFault):
        raise
    except OSError as exc:
        if is_os_fault(exc):
            raise MachineFault("read", exc.filename or path, exc) from exc
        raise DatasetError(_damaged(shown, out, exc, row_group)) from None
    except Exception as exc:
        if not damage(exc):
            raise
        raise DatasetError(_damaged(shown, out, exc, row_group)) from None


def _damaged(shown: str, out: str | os.PathLike[str], exc: BaseException, row_group: int | None) -> str:
    where = f"shard {shown}" + (f", row group {row_group}" if row_group is not None else "")
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"{where} is damaged: {reason}; {verify_hint(out)}"


def open_shard(path: Path, shown: str, out: str | os.PathLike[str]) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` (its footer read and checked)."""
    import pyarrow.parquet as pq

    with reading(path, shown, out):
        return pq.ParquetFile(path)


def batches(pf: Any, shown: str, out: str | os.PathLike[str], batch_size: int, columns: list[str] | None = None) -> Iterator[Any]:
    """Record batches of a shard, row group by row group, so an error names its row group."""
    for group in range(pf.metadata.num_row_groups):
        it = pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns)
        while True:
            with reading(Path(str(shown)), shown, out, group):
                batch = next(it, None)
            if batch is None:
                break
            yield batch


def first_damage(paths: list[tuple[Path, str]], out: str | os.PathLike[str]) -> DatasetError | None:
    """The first shard (and row group) that does not read, when a bulk reader failed without saying which."""
    for path, shown in paths:
        try:
            pf = open_shard(path, shown, out)
            for _ in batches(pf, shown, out, 256):
                pass
        except DatasetError as exc:
            return exc
    return None


__all__ = [
    "DatasetError",
    "batches",
    "damage",
    "first_damage",
    "load_manifest",
    "open_shard",
    "reading",
    "shard_path",
    "verify_hint",
]
