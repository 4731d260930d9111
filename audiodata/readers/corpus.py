"""Inputs that are not JSON text: Hugging Face datasets (local Parquet/Arrow, or on a hub) and WebDataset
tars. Each kind is cut into parsed rows by its own module; here they are told apart, given the spec their
rows are read with (:mod:`audiodata.readers.rows`), and read (through :func:`audiodata.readers.items.iter_items`,
the one switch the read stage calls)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.readers import hfdataset, hfhub, webdataset
from audiodata.readers.jsonstream import RawItem
from audiodata.readers.rawfile import GzipBounds
from audiodata.readers.rows import row_spec
from audiodata.readers.spec import DialectSpec

#: How an input is cut into records, besides "json".
KINDS = ("parquet", "arrow", "webdataset", "hub")


def file_kind(path: Path) -> str | None:
    """The raw-corpus kind of a file named as an input, or None (a JSON file, or not one audiodata reads)."""
    if path.name.endswith(".parquet"):
        return "parquet"
    if path.name.endswith(".arrow"):
        return "arrow"
    if webdataset.is_tar(path):
        return "webdataset"
    return None


def table_spec(path: Path, where: str, formatting: str | None, columns: dict[str, str]) -> DialectSpec:
    """How a Parquet/Arrow file's rows are read, from its schema and stored features. A file whose schema
    cannot be read gets the given columns: reading it then reports why (F004)."""
    try:
        sch = hfdataset.schema(path)
    except Exception:
        return DialectSpec(formatting=formatting or "transcription", columns=dict(columns))
    names = list(sch.names)
    return row_spec(
        where, names, hfdataset.audio_columns(hfdataset.features(sch)), columns, formatting, hfdataset.sample_row(sch)
    )


def tar_spec(formatting: str | None, columns: dict[str, str]) -> DialectSpec:
    """WebDataset samples vary in their JSON keys: columns not given are found by name in each row."""
    if formatting is not None and formatting != "transcription":
        return DialectSpec(formatting=formatting)
    return DialectSpec(formatting="transcription", columns=dict(columns))


def hub_spec(ref: hfhub.HubRef, formatting: str | None, columns: dict[str, str]) -> DialectSpec:
    names, audio, sample = hfhub.columns(ref)
    return row_spec(ref.shown, names, audio, columns, formatting, sample)


def iter_items(
    kind: str, path: Path, hub: Any, max_record_bytes: int, bounds: GzipBounds | None = None, part: tuple[int, int] | None = None
) -> Iterator[RawItem]:
    """The rows of one raw-corpus input, in order, as parsed items located by ``member``; a failure of
    the input itself is one item with its finding, never an exception. ``part``: a Parquet file's bytes
    ``[start, end)``, the row groups starting there (a rank's slice)."""
    if kind in ("parquet", "arrow"):
        return hfdataset.iter_rows(path, str(path), part if kind == "parquet" else None)
    if kind == "webdataset":
        return webdataset.iter_samples(path, max_record_bytes, bounds)
    if kind == "hub":
        return hfhub.iter_rows(hub)
    raise ValueError(f"unknown input kind {kind!r}")


def has_metadata(kind: str, path: Path, hub: Any, spec: DialectSpec) -> bool:
    """Whether the input's transcription rows carry columns beyond audio, transcript and prompt (kept in the
    output's ``metadata`` column): decided before the first row is written, from the columns alone."""
    if spec.formatting != "transcription":
        return False
    if kind == "webdataset":
        return True  # every sample has its __key__, and its JSON keys vary
    try:
        if kind == "hub":
            names, audio, _ = hfhub.columns(hub)
        else:
            sch = hfdataset.schema(path)
            names, audio = list(sch.names), hfdataset.audio_columns(hfdataset.features(sch))
    except Exception:
        return False
    used = {*spec.columns.values(), *audio, "id"}
    return any(n not in used for n in names)


def visual_columns(kind: str, path: Path, hub: Any) -> tuple[bool, bool]:
    """Whether the input's rows can carry images, videos (their columns exist): the output's visual
    columns are decided before the first row, without reading every row twice."""
    if kind == "webdataset":
        return False, False
    try:
        names = list(hfdataset.schema(path).names) if kind != "hub" else hfhub.columns(hub)[0]
    except Exception:
        return False, False
    return "images" in names or "image" in names, "videos" in names or "video" in names
