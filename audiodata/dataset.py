"""The one model of a converted dataset: its on-disk format, read and written here only.

A converted dataset is a folder: ``manifest.json`` (what the run wrote: shards with their sizes and
checksums, the summary, the options), ``data/**.parquet`` (the shards), ``README.md`` (the card) and
``rejects.jsonl``. :class:`Manifest` and the frozen dataclasses under it state the manifest's layout
(they serialise to exactly the JSON ``convert`` has always written, so older outputs still open);
:data:`FORMAT_VERSION` is checked on read, as ``datasets``' ``DatasetInfo`` checks its version, so an
output of a newer audiodata is refused with the version named instead of being misread. A format
change is one diff here and a version bump.

:class:`ConvertedDataset` is how every command reads one (train, verify, export, ``dedup --against``,
info, publish, ``audiodata.open``): ``ConvertedDataset.open(path)``, then ``.shards(config, split)``,
``.iter_rows(columns, batch_rows)``, ``.card()``. A manifest that is missing or not JSON, a shard that
is missing, truncated or full of garbage is a :class:`DatasetError` (exit code 2) that names the file,
the row group when one is to blame, and points to ``audiodata verify``, which lists every problem. An
OS error while reading (EIO) stays a fault of the machine (exit code 3).

This module imports neither pyarrow nor ``datasets`` until a shard is opened: ``info`` and the
command line stay fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from audiodata import objstore
from audiodata.errors import DatasetFormatError, UsageError
from audiodata.faults import MachineFault, is_os_fault
from audiodata.records import RECORD_KINDS

#: Version of the on-disk layout, recorded in ``manifest.json``. 1: DPO rows held their prompt in
#: ``messages``; 2: every config follows TRL's dataset formats (``prompt``/``chosen``/``rejected``,
#: ``prompt``/``completion``/``label``) and KTO exists (RL, the ``rl`` config, came within format 2: an older
#: reader names the unknown kind). Readers accept every version listed in
#: :data:`READABLE_VERSIONS`; a manifest without the key is format 1.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

MANIFEST = "manifest.json"
CARD = "README.md"

#: The old name of :class:`~audiodata.errors.DatasetFormatError`.
DatasetError = DatasetFormatError


def verify_hint(out: str | os.PathLike[str]) -> str:
    return f"run `audiodata verify {objstore.shown(out)}` to see every problem"


# -- the manifest's layout ------------------------------------------------------------------------


class _Bad(Exception):
    """A manifest field of the wrong shape (turned into a :class:`DatasetError` naming the file)."""


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    """``data[key]``, of type ``kind`` (an int is no bool, and is a float); ``default`` when absent, if given."""
    if key not in data:
        if default is ...:
            raise _Bad(f"{where} lacks {key!r}")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = (*kinds, int)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise _Bad(f"{where}: {key} is {type(value).__name__} {value!r}, not {' or '.join(k.__name__ for k in kinds)}")
    return value


def _to_json(value: Any) -> Any:
    """A model object as the JSON it is stored as: dataclass fields in order (an optional one left out
    while ``None``), mappings and sequences as they are."""
    if hasattr(value, "__dataclass_fields__"):
        out = {}
        for f in fields(value):
            v = getattr(value, f.name)
            if v is None and f.metadata.get("optional"):
                continue
            out[f.name] = _to_json(v)
        return out
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


class _Json:
    def to_dict(self) -> dict[str, Any]:
        """The JSON object this is stored as (today's keys, in today's order)."""
        return _to_json(self)


@dataclass(frozen=True)
class SplitInfo(_Json):
    """One split of one config: its rows and shard bytes."""

    rows: int
    bytes: int

    @classmethod
    def from_dict(cls, data: Any, where: str) -> SplitInfo:
        return cls(rows=_get(data, "rows", int, where), bytes=_get(data, "bytes", int, where))


@dataclass(frozen=True)
class ConfigInfo(_Json):
    """One config (``default``, or ``sft``/``dpo``/``kto``/``rl`` when a run wrote several): its record kind,
    the folder of its shards and its splits, in card order."""

    kind: str
    data_dir: str
    splits: Mapping[str, SplitInfo]

    @classmethod
    def from_dict(cls, name: str, data: Any, where: str) -> ConfigInfo:
        where = f"{where} config {name!r}"
        if not isinstance(data, Mapping):
            raise _Bad(f"{where} is not an object")
        splits = _get(data, "splits", dict, where)
        kind = _get(data, "kind", str, where)
        if kind not in RECORD_KINDS:
            raise _Bad(f"{where}: kind {kind!r} is not one of {', '.join(RECORD_KINDS)}")
        return cls(
            kind=kind,
            data_dir=_get(data, "data_dir", str, where),
            splits={str(k): SplitInfo.from_dict(v, f"{where} split {k!r}") for k, v in splits.items()},
        )


@dataclass(frozen=True)
class ShardEntry(_Json):
    """One shard as the manifest lists it: path relative to the dataset, config, split, and what a
    reader can check without decoding (rows, bytes, sha256, clips, seconds of audio)."""

    file: str
    config: str
    split: str
    rows: int
    bytes: int
    sha256: str
    audio_seconds: float
    clips: int

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ShardEntry:
        if not isinstance(data, Mapping):
            raise _Bad(f"{where} is not an object")
        where = f"shard entry {data.get('file', where)!r}"
        return cls(
            file=_get(data, "file", str, where),
            config=_get(data, "config", str, where),
            split=_get(data, "split", str, where),
            rows=_get(data, "rows", int, where),
            bytes=_get(data, "bytes", int, where),
            sha256=_get(data, "sha256", str, where),
            audio_seconds=float(_get(data, "audio_seconds", float, where)),
            clips=_get(data, "clips", int, where),
        )


def _optional() -> Any:
    return field(default=None, metadata={"optional": True})


@dataclass(frozen=True, kw_only=True)
class Summary(_Json):
    """What the run did: records read = written + rejected + duplicates, the audio written, where
    records went (``configs``), what was rejected or warned about and why, by rule code."""

    records_read: int
    written: int
    rejected: int
    duplicates: int = 0  # dropped by --dedup (listed in rejects.jsonl with their cluster)
    duplicates_by_kind: Mapping[str, int] = field(default_factory=dict)
    clips: int
    audio_seconds: float
    sample_rate: int
    codec: str
    source_sampling_rates: Mapping[str, int] = field(default_factory=dict)
    source_formats: Mapping[str, int] = field(default_factory=dict)
    warnings_by_code: Mapping[str, int] = field(default_factory=dict)
    kto_labels: Mapping[str, int] = field(default_factory=dict)
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)  # named but not read (F006, F007), with why
    rejects_by_code: Mapping[str, int] = field(default_factory=dict)
    configs: Mapping[str, ConfigInfo]
    excluded: int | None = _optional()  # only in runs given --exclude: records left out by the lists
    excluded_by: Mapping[str, int] | None = _optional()  # per --exclude list (file name)
    images: int | None = _optional()  # only in runs with image columns
    videos: int | None = _optional()  # only in runs with video columns
    metadata_keys: Mapping[str, int] | None = _optional()  # only in runs with a metadata column: rows per key
    equal_pairs: int | None = _optional()  # only in runs making DPO pairs from ASR hypotheses: pairs skipped as equal
    prompts: Mapping[str, Any] | None = _optional()  # only in runs with a --task preset or --template: what it says
    rl_tasks: Mapping[str, int] | None = _optional()  # only in runs with RL records: records per task tag (mcq, asr, ...)

    @classmethod
    def from_dict(cls, data: Any, where: str = "summary") -> Summary:
        if not isinstance(data, Mapping):
            raise _Bad(f"{where} is not an object")
        configs = _get(data, "configs", dict, where)
        return cls(
            records_read=_get(data, "records_read", int, where),
            written=_get(data, "written", int, where),
            rejected=_get(data, "rejected", int, where),
            duplicates=_get(data, "duplicates", int, where, 0),
            duplicates_by_kind=_get(data, "duplicates_by_kind", dict, where, {}),
            clips=_get(data, "clips", int, where),
            audio_seconds=float(_get(data, "audio_seconds", float, where)),
            sample_rate=_get(data, "sample_rate", int, where),
            codec=_get(data, "codec", str, where),
            source_sampling_rates=_get(data, "source_sampling_rates", dict, where, {}),
            source_formats=_get(data, "source_formats", dict, where, {}),
            warnings_by_code=_get(data, "warnings_by_code", dict, where, {}),
            kto_labels=_get(data, "kto_labels", dict, where, {}),
            skipped_inputs=_get(data, "skipped_inputs", list, where, []),
            rejects_by_code=_get(data, "rejects_by_code", dict, where, {}),
            configs={str(k): ConfigInfo.from_dict(str(k), v, where) for k, v in configs.items()},
            excluded=_get(data, "excluded", int, where, None),
            excluded_by=_get(data, "excluded_by", dict, where, None),
            images=_get(data, "images", int, where, None),
            videos=_get(data, "videos", int, where, None),
            metadata_keys=_get(data, "metadata_keys", dict, where, None),
            equal_pairs=_get(data, "equal_pairs", int, where, None),
            prompts=_get(data, "prompts", dict, where, None),
            rl_tasks=_get(data, "rl_tasks", dict, where, None),
        )


@dataclass(frozen=True)
class InputEntry(_Json):
    """One input file of the run, as shown (relative unless ``--absolute-paths``), its dialect and its
    ``dataset_info.json`` entry."""

    file: str
    dialect: str
    entry: str | None


@dataclass(frozen=True)
class RejectsEntry(_Json):
    """``rejects.jsonl``: how many lines, of which rejected records and dropped duplicates."""

    file: str
    count: int
    rejected: int
    duplicates: int
    excluded: int | None = _optional()  # left out by --exclude (listed too), only when there were any
    equal_pairs: int | None = _optional()  # pairs skipped as equal (listed too), only in runs that make pairs from hypotheses


@dataclass(frozen=True)
class RankEntry(_Json):
    """A rank's output (``convert --num-shards N --shard-index I``): which rank of how many, the fingerprint of
    the whole run (the same for every rank of one conversion: merge refuses ranks that differ), and its slice
    (input file numbers, with a byte range where a file was split)."""

    index: int
    count: int
    run: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    dedup_keys: str | None = _optional()  # the rank's dedup keys (under .audiodata), when the run dedups

    @classmethod
    def from_dict(cls, data: Any, where: str = "rank") -> RankEntry:
        if not isinstance(data, Mapping):
            raise _Bad(f"{where} is not an object")
        return cls(
            index=_get(data, "index", int, where),
            count=_get(data, "count", int, where),
            run=_get(data, "run", str, where),
            parts=_get(data, "parts", list, where, []),
            dedup_keys=_get(data, "dedup_keys", str, where, None),
        )


@dataclass(frozen=True, kw_only=True)
class Manifest(_Json):
    """``manifest.json``: written by ``convert`` (:meth:`to_json`), read by everything else (:meth:`load`)."""

    audiodata_version: str
    format_version: int = FORMAT_VERSION
    options: Mapping[str, Any] = field(default_factory=dict)  # the options that shape the output (no local paths)
    inputs: list[InputEntry] = field(default_factory=list)
    summary: Summary
    shards: list[ShardEntry]
    rejects: RejectsEntry | None = None
    rank: RankEntry | None = field(default=None, metadata={"optional": True})  # only in a rank: merge reads it

    def to_json(self) -> str:
        """The file's text: byte for byte what every audiodata release has written for these values."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse and check a manifest's JSON. Raises :class:`_Bad` for a wrong shape and
        :class:`DatasetError` for a format this audiodata does not read."""
        if not isinstance(data, Mapping):
            raise _Bad("not a JSON object")
        version = _get(data, "format_version", int, "manifest", 1)
        if version not in READABLE_VERSIONS:
            raise _Version(version)
        shards = _get(data, "shards", list, "manifest")
        inputs = _get(data, "inputs", list, "manifest", [])
        rejects = data.get("rejects")
        return cls(
            audiodata_version=str(data.get("audiodata_version", "unknown")),
            format_version=version,
            options=_get(data, "options", dict, "manifest", {}),
            inputs=[
                InputEntry(str(i.get("file")), str(i.get("dialect", "auto")), i.get("entry"))
                for i in inputs
                if isinstance(i, Mapping)
            ],
            summary=Summary.from_dict(data.get("summary")),
            shards=[ShardEntry.from_dict(s, f"shards[{n}]") for n, s in enumerate(shards)],
            rejects=(
                RejectsEntry(
                    str(rejects.get("file", "rejects.jsonl")),
                    int(rejects.get("count", 0)),
                    int(rejects.get("rejected", 0)),
                    int(rejects.get("duplicates", 0)),
                    _get(rejects, "excluded", int, "rejects", None),
                    _get(rejects, "equal_pairs", int, "rejects", None),
                )
                if isinstance(rejects, Mapping)
                else None
            ),
            rank=RankEntry.from_dict(data["rank"]) if data.get("rank") is not None else None,
        )

    @classmethod
    def load(cls, out: str | os.PathLike[str]) -> Manifest:
        """``OUT/manifest.json``, checked. Raises :class:`DatasetError` (no manifest, not JSON, a field of
        the wrong shape, a format too new) or :class:`MachineFault` (the disk failed the read)."""
        root = Path(out)
        path = root / MANIFEST
        if not path.is_file():
            raise DatasetError(f"{objstore.shown(root)}: not a converted dataset (no {MANIFEST}); run `audiodata convert` first")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except _Version as exc:
            raise DatasetError(f"{objstore.shown(path)}: {exc}") from None
        except OSError as exc:
            if is_os_fault(exc):
                raise MachineFault("read", path, exc) from exc
            raise DatasetError(f"{objstore.shown(path)}: unreadable ({exc}); {verify_hint(root)}") from None
        except (_Bad, ValueError, KeyError, TypeError, AttributeError) as exc:  # UnicodeDecodeError, JSONDecodeError
            what = str(exc) if isinstance(exc, _Bad) else f"{type(exc).__name__}: {exc}"
            raise DatasetError(f"{objstore.shown(path)}: not a readable manifest ({what}); {verify_hint(root)}") from None


class _Version(Exception):
    """A format version this audiodata does not read."""

    def __init__(self, version: int) -> None:
        from audiodata import __version__

        readable = ", ".join(map(str, READABLE_VERSIONS))
        if version > FORMAT_VERSION:
            why = (
                f"format_version {version} is newer than this audiodata {__version__} reads (format {readable}); "
                "upgrade audiodata (pip install -U audiodata) to read it"
            )
        else:
            why = f"format_version {version} is not one audiodata ever wrote (it reads format {readable})"
        super().__init__(why)


# -- the dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """The dataset card: its text and the Hub YAML front matter (``configs``, ``dataset_info``...)."""

    text: str
    meta: Mapping[str, Any]


class ConvertedDataset:
    """A folder written by ``audiodata convert``, opened through its manifest.

    Opening reads and checks only ``manifest.json``; shards are opened when asked for, and a damaged
    one is a :class:`DatasetError` naming it (and its row group)."""

    def __init__(self, root: str | os.PathLike[str], manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ConvertedDataset:
        """The converted dataset at ``path``. Raises :class:`DatasetError` when there is none, or it is
        damaged, or of a newer format (the version named, with what to upgrade)."""
        return cls(path, Manifest.load(path))

    def __repr__(self) -> str:
        return f"ConvertedDataset({str(self.root)!r}, configs={list(self.configs)}, rows={self.summary.written})"

    # -- what the manifest says ------------------------------------------------------------------
    @property
    def summary(self) -> Summary:
        return self.manifest.summary

    @property
    def format_version(self) -> int:
        return self.manifest.format_version

    @property
    def sample_rate(self) -> int:
        return self.manifest.summary.sample_rate

    @property
    def options(self) -> Mapping[str, Any]:
        return self.manifest.options

    @property
    def configs(self) -> Mapping[str, ConfigInfo]:
        """Config name -> its kind, folder and splits, in card order."""
        return self.manifest.summary.configs

    def kind(self, config: str) -> str:
        """The record kind (``sft``, ``dpo``, ``kto``, ``rl``) of ``config``."""
        info = self.configs.get(config)
        return info.kind if info is not None else config

    def find_config(self, name: str, exact: bool = False) -> str | None:
        """``name`` if the dataset has that config; else, unless ``exact``, ``default`` when that is its only
        config (a run of one kind writes ``default``: ``train sft`` reads it). None when neither."""
        names = {s.config for s in self.manifest.shards} | set(self.configs)
        if name in names:
            return name
        return "default" if not exact and names == {"default"} else None

    def splits(self, config: str | None = None) -> list[str]:
        """The splits of ``config`` (of every config when None), in manifest order."""
        return list(dict.fromkeys(s.split for s in self.manifest.shards if config is None or s.config == config))

    def shards(self, config: str | None = None, split: str | None = None) -> list[ShardEntry]:
        """The shards of ``config``/``split`` (None: any), in manifest order."""
        return [
            s
            for s in self.manifest.shards
            if (config is None or s.config == config) and (split is None or s.split == split)
        ]

    def prompt_column(self, config: str) -> str:
        """The column holding the prompt turns of ``config`` in this format version."""
        from audiodata.writer.schema import prompt_column

        return prompt_column(self.kind(config), self.format_version)

    # -- the files ---------------------------------------------------------------------------------
    def path(self, entry: ShardEntry) -> Path:
        """The shard ``entry`` names, present (a missing one is a :class:`DatasetError`)."""
        return shard_path(self.root, entry)

    def open_shard(self, entry: ShardEntry) -> Any:
        """A ``pyarrow.parquet.ParquetFile`` of ``entry``, its footer read and checked."""
        return open_shard(self.path(entry), entry.file, self.root)

    def check_shards(self) -> None:
        """What can be checked without reading the data: every shard present, with a footer that reads and
        the manifest's row count (``verify`` reads everything)."""
        for entry in self.manifest.shards:
            pf = self.open_shard(entry)
            if pf.metadata.num_rows != entry.rows:
                raise DatasetError(
                    f"shard {entry.file} holds {pf.metadata.num_rows} rows, {MANIFEST} says {entry.rows}; "
                    f"{verify_hint(self.root)}"
                )

    def iter_batches(
        self,
        columns: list[str] | None = None,
        batch_rows: int = 64,
        config: str | None = None,
        split: str | None = None,
    ) -> Iterator[tuple[ShardEntry, Any]]:
        """``(shard, pyarrow.RecordBatch)`` of at most ``batch_rows`` rows, shard by shard and row group by
        row group (never a whole shard in memory); ``columns`` that a shard lacks are left out."""
        for entry in self.shards(config, split):
            for batch in self.shard_batches(entry, columns, batch_rows):
                yield entry, batch

    def shard_batches(self, entry: ShardEntry, columns: list[str] | None = None, batch_rows: int = 64) -> Iterator[Any]:
        """The ``pyarrow.RecordBatch``es of one shard, row group by row group (a damaged one named)."""
        pf = self.open_shard(entry)
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        yield from batches(pf, entry.file, self.root, batch_rows, cols)

    def iter_rows(
        self,
        columns: list[str] | None = None,
        batch_rows: int = 64,
        config: str | None = None,
        split: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The rows of ``config``/``split`` (None: every shard) as dicts, streamed ``batch_rows`` at a time;
        audio stays encoded (``{bytes, path}``): see :func:`audiodata.open` for decoded clips."""
        for _, batch in self.iter_batches(columns, batch_rows, config, split):
            yield from batch.to_pylist()

    def features(self, config: str) -> Any:
        """The ``datasets.Features`` of ``config``, as its first shard's schema records them."""
        import datasets

        shards = self.shards(config)
        if not shards:
            raise UsageError(f"{self.root}: no config {config!r} (configs: {', '.join(self.configs) or 'none'})")
        schema = self.open_shard(shards[0]).schema_arrow
        with reading(self.path(shards[0]), shards[0].file, self.root):  # unreadable huggingface metadata: damage
            return datasets.Features.from_arrow_schema(schema)

    def card(self) -> Card:
        """The dataset card (``README.md``): its text and YAML front matter ({} when it has none)."""
        from audiodata.writer.card import read_card_yaml

        path = self.root / CARD
        if not path.is_file():
            raise DatasetError(f"{self.root}: no {CARD} dataset card; {verify_hint(self.root)}")
        try:
            text = path.read_text(encoding="utf-8")
            return Card(text, read_card_yaml(text))
        except OSError as exc:
            if is_os_fault(exc):
                raise MachineFault("read", path, exc) from exc
            raise DatasetError(f"{path}: unreadable ({exc}); {verify_hint(self.root)}") from None
        except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError
            raise DatasetError(f"{path}: YAML front matter unreadable ({exc}); {verify_hint(self.root)}") from None


# -- reading shards, damage named ------------------------------------------------------------------


def load_manifest(out: str | os.PathLike[str]) -> Manifest:
    """``OUT/manifest.json``, checked (:meth:`Manifest.load`)."""
    return Manifest.load(out)


def shard_path(out: str | os.PathLike[str], entry: ShardEntry) -> Path:
    """The shard ``entry`` names, present. (Its size is not compared: a shard rewritten by hand may still read;
    a truncated one fails its footer in :func:`open_shard`, and ``verify`` compares sizes and checksums.)"""
    root = Path(out)
    path = root / entry.file
    if not path.is_file():
        raise DatasetError(f"shard {entry.file} listed in {root}/{MANIFEST} is missing; {verify_hint(root)}")
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
    "CARD",
    "FORMAT_VERSION",
    "MANIFEST",
    "READABLE_VERSIONS",
    "Card",
    "ConfigInfo",
    "ConvertedDataset",
    "DatasetError",
    "InputEntry",
    "Manifest",
    "RankEntry",
    "RejectsEntry",
    "ShardEntry",
    "SplitInfo",
    "Summary",
    "batches",
    "damage",
    "first_damage",
    "load_manifest",
    "open_shard",
    "reading",
    "shard_path",
    "verify_hint",
]
