"""Read the shards ``audiodata convert`` wrote, estimate lengths, decode audio, skip the broken.

Shards are memory-mapped (Arrow), the audio column is read as raw bytes (no torchcodec
needed) and decoded with soundfile once per example, in the data loader. Lengths for
length-grouped batching come from the stored ``audio_info`` durations and the text,
with the same token arithmetic lint uses, without decoding anything.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from audiodata.audio.load import AudioError
from audiodata.audio.transform import decode_bytes
from audiodata.budget import estimate_tokens
from audiodata.dataset import ConvertedDataset, DatasetError, first_damage, verify_hint
from audiodata.families import ModelFamily
from audiodata.faults import is_os_fault, on_path
from trainer.config import ConfigError, TrainConfig, data_root, is_local
from trainer.longaudio import clip_samples, window_lengths, window_samples

SKIP_LOG = "skipped.jsonl"


def load_rows(cfg: TrainConfig, split: str, audio: bool = True) -> Any:
    """The split as a ``datasets.Dataset`` with ``audios`` left undecoded (``{bytes, path}``).

    ``audio=False`` (a local dataset whose audio the run never reads: a cache with features, see
    ``trainer.train``): every other column read straight from the shards (pyarrow, in memory; text and
    metadata, about 2% of the shards' bytes) and no ``audios`` column: nothing goes through ``datasets``'
    Parquet import, which writes a copy of the whole split, audio included, into its cache on a first load."""
    import datasets

    if is_local(cfg.data):
        root = data_root(cfg.data)
        data = ConvertedDataset.open(root)
        name = data.find_config(cfg.config_name) or cfg.config_name
        entries = data.shards(name, split)
        if not entries:
            raise ConfigError(f"{root}: no {name}/{split} shards")
        shards = [(data.path(s), s.file) for s in entries]
        for s in entries:
            data.open_shard(s)  # the footers: a truncated or replaced shard is named before datasets reads it
        direct = None if audio else rows_without_audio(cfg, shards)
        if direct is not None:
            return direct
        try:
            ds = datasets.Dataset.from_parquet([str(p) for p, _ in shards], features=undecoded_features([p for p, _ in shards]))
        except Exception as exc:  # datasets wraps the Parquet error twice and names no shard: find it
            if is_os_fault(exc):
                raise
            found = first_damage(shards, cfg.data)
            if found is not None:
                raise found from None
            raise DatasetError(f"{root}: the shards do not load ({type(exc).__name__}: {exc}); {verify_hint(cfg.data)}") from None
    else:
        ds = datasets.load_dataset(cfg.data, cfg.config_name, split=split)
    return _checked(cfg, ds)


def _checked(cfg: TrainConfig, ds: Any, audio: bool = True) -> Any:
    """The rows with DPO/KTO prompts under ``messages``, or a ConfigError naming the columns the task needs."""
    import datasets

    if "prompt" in ds.column_names and "messages" not in ds.column_names:  # format 2: DPO/KTO prompts sit in `prompt`
        ds = ds.rename_column("prompt", "messages")
    missing = ({"messages", "audios"} if audio else {"messages"}) - set(ds.column_names)
    if cfg.task == "dpo":
        missing |= {"chosen", "rejected"} - set(ds.column_names)
    if cfg.task == "kto":  # TRL's unpaired preference layout: prompt (read as messages), completion, boolean label
        missing |= {"completion", "label"} - set(ds.column_names)
    if missing:
        raise ConfigError(f"{cfg.data}: not an audiodata {cfg.task} dataset (missing columns {', '.join(sorted(missing))})")
    if not audio:
        return ds
    feature = ds.features["audios"]
    inner = getattr(feature, "feature", None)
    if inner is not None and getattr(inner, "decode", False):
        ds = ds.cast_column("audios", datasets.List(datasets.Audio(sampling_rate=inner.sampling_rate, decode=False)))
    return ds


def rows_without_audio(cfg: TrainConfig, shards: list[tuple[Path, str]]) -> Any:
    """The shards' rows without their ``audios`` column, read with pyarrow into memory (no ``datasets`` import); None
    when the shards' schemas differ (the caller imports them as usual)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = [p for p, _ in shards]
    features = undecoded_features(paths)
    if features is None:  # shards with differing schemas: one table cannot hold them; datasets reads them as before
        return None
    features = datasets.Features({k: v for k, v in features.items() if k != "audios"})
    try:
        table = pa.concat_tables([pq.read_table(p, columns=list(features)) for p in paths])
    except (pa.ArrowException, OSError) as exc:
        if is_os_fault(exc):
            raise
        found = first_damage(shards, cfg.data)
        if found is not None:
            raise found from None
        raise DatasetError(f"{cfg.data}: the shards do not load ({type(exc).__name__}: {exc}); {verify_hint(cfg.data)}") from None
    ds = datasets.Dataset(table.cast(features.arrow_schema), info=datasets.DatasetInfo(features=features))
    return _checked(cfg, ds, audio=False)


def undecoded_features(paths: list[Path]) -> Any:
    """The shards' ``datasets`` features with ``audios`` left undecoded, or None when the shards' schemas differ.

    ``datasets`` imports Parquet into Arrow files in its cache on the first load (a copy of the shards' bytes);
    given these features it writes the undecoded audio column in that one pass, where ``cast_column`` afterwards
    wrote the whole split a second time (``benchmarks/loader_bench.py`` measures the bytes written)."""
    import datasets
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p) for p in paths]
    if not schemas or any(not s.equals(schemas[0], check_metadata=True) for s in schemas[1:]):
        return None
    try:
        features = datasets.Features.from_arrow_schema(schemas[0])
    except (TypeError, ValueError):
        return None
    inner = getattr(features.get("audios"), "feature", None)
    if inner is not None and getattr(inner, "decode", False):
        features["audios"] = datasets.List(datasets.Audio(sampling_rate=inner.sampling_rate, decode=False))
    return features


def estimate_lengths(ds: Any, family: ModelFamily, long_audio: str = "truncate") -> tuple[list[int], list[int], list[float]]:
    """(tokens, clips, audio seconds) per row, from text and stored durations: nothing decoded.
    With ``long_audio="split"`` a long clip counts as its windows (their tokens, one clip each)."""
    window = window_samples(family) if long_audio == "split" else None
    cols = [c for c in ("messages", "chosen", "rejected", "completion", "system", "audio_info") if c in ds.column_names]
    lengths: list[int] = []
    clips: list[int] = []
    seconds: list[float] = []
    for batch in ds.select_columns(cols).iter(batch_size=1000):
        n = len(batch["messages"])
        for i in range(n):
            text = sum(estimate_tokens(m["content"]) + 4 for m in batch["messages"][i])
            if "chosen" in batch and batch["chosen"][i] is not None:
                text += max(
                    sum(estimate_tokens(m["content"]) + 4 for m in batch["chosen"][i]),
                    sum(estimate_tokens(m["content"]) + 4 for m in batch["rejected"][i] or []),
                )
            if "completion" in batch and batch["completion"][i] is not None:
                text += sum(estimate_tokens(m["content"]) + 4 for m in batch["completion"][i])
            text += estimate_tokens(batch["system"][i] or family.default_system) if "system" in batch else 0
            info = batch["audio_info"][i] or []
            pieces = audio_pieces(info, family, window)
            lengths.append(text + sum(family.audio_tokens(n) for n in pieces))
            clips.append(len(pieces))
            seconds.append(sum(a["duration"] for a in info))
    return lengths, clips, seconds


def audio_pieces(info: list[dict[str, Any]] | None, family: ModelFamily, window: int | None) -> list[int]:
    """Samples of each clip the processor will see (a long clip's windows with ``window``), from the stored
    ``audio_info`` durations: what the length estimates count and the pre-flight holds the processor to."""
    return [w for a in info or [] for w in window_lengths(clip_samples(a, family), window)]


class AudioDecodeError(Exception):
    pass


def decode_clip(entry: dict[str, Any] | None, sampling_rate: int) -> np.ndarray:
    """Stored clip bytes -> float32 mono at ``sampling_rate``, through audiodata's own decode path."""
    if not entry or not entry.get("bytes"):
        raise AudioDecodeError("no audio bytes")
    name = entry.get("path") or "clip.flac"
    try:
        pcm, _ = decode_bytes(entry["bytes"], sampling_rate, name=name)
    except AudioError as exc:
        raise AudioDecodeError(f"cannot decode {name}: {exc.message}") from None
    if pcm.size == 0:
        raise AudioDecodeError(f"{name} is empty")
    return pcm.astype(np.float32) / np.float32(32768.0)


class SkipLog:
    """Records skipped at train time, appended to ``OUTPUT/skipped.jsonl``: one line per skip,
    written with O_APPEND so data-loader workers and ranks can all log to it."""

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / SKIP_LOG

    def add(self, row: dict[str, Any], reason: str) -> None:
        src = row.get("source") or {}
        entry = {"id": row.get("id"), "source": src.get("file"), "index": src.get("index"), "reason": reason, "time": time.time()}
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        with on_path(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        where = f"{entry['source']}:{entry['index']}"
        print(f"[audiodata] skipped record {entry['id']} ({where}): {reason}", file=sys.stderr, flush=True)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


ROW_INDEX = "__row"
#: Keys an encoded example carries about itself, never model inputs: the collator gathers them
#: into ``batch[BATCH_META]`` and the trainer takes that out before the forward pass.
BATCH_META = "audiodata_meta"
META_ROW, META_ID, META_REPEAT = "__row_used", "__id", "__repeat"


def encoded(rows: Any, encode: Callable[[dict[str, Any]], dict[str, Any]], skips: SkipLog) -> Any:
    """``rows`` as a ``datasets.Dataset`` whose items are model-ready examples, encoded on access
    (in the data loader). An example that fails (audio that does not decode, a prompt too long
    to keep its audio) is logged and replaced by the next one: a bad record costs a log line,
    never the run. TRL's trainers accept only ``datasets`` objects, hence a format transform."""
    indexed = rows.add_column(ROW_INDEX, list(range(len(rows))))
    return indexed.with_transform(_Encoder(rows, encode, skips))


class _Encoder:
    MAX_TRIES = 16

    def __init__(self, rows: Any, encode: Callable[[dict[str, Any]], dict[str, Any]], skips: SkipLog) -> None:
        self.rows, self.encode, self.skips = rows, encode, skips

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for n, index in enumerate(batch[ROW_INDEX]):
            example = self.one(int(index), {k: v[n] for k, v in batch.items() if k != ROW_INDEX})
            for key, value in example.items():
                out.setdefault(key, []).append(value)
        return out

    def one(self, index: int, row: dict[str, Any]) -> dict[str, Any]:
        for k in range(self.MAX_TRIES):
            if k:
                row = self.rows[(index + k) % len(self.rows)]
            try:
                example = self.encode(row)
            except SkipExample as exc:
                self.skips.add(row, str(exc))
                continue
            # which record this example really is (the collator moves these into the batch's BATCH_META)
            example[META_ROW], example[META_ID] = (index + k) % len(self.rows), row.get("id")
            return example
        raise RuntimeError(f"{self.MAX_TRIES} consecutive records could not be used; see {self.skips.path}")


class SkipExample(Exception):
    """This example cannot be trained on (the message says why); it is logged and replaced."""


class PlannedRows:
    """The encoded training rows plus the repeat slots of the batch plan, as the data loader indexes them.

    Positions below ``len(rows)`` are the rows; position ``len(rows) + j`` is row ``repeats[j]``
    again, marked as a repeat so the trainer counts it apart from real examples (see
    :mod:`trainer.sampler`). A plain map-style dataset: accelerate shards its batch sampler, not it.
    """

    def __init__(self, rows: Any, repeats: list[int]) -> None:
        self.rows, self.repeats = rows, repeats

    def __len__(self) -> int:
        return len(self.rows) + len(self.repeats)

    def __getitems__(self, keys: list[int]) -> list[dict[str, Any]]:
        n = len(self.rows)
        items = self.rows.__getitems__([k if k < n else self.repeats[k - n] for k in keys])
        for k, item in zip(keys, items, strict=True):
            item[META_REPEAT] = k >= n
        return items

    def __getitem__(self, key: int) -> dict[str, Any]:
        return self.__getitems__([key])[0]
