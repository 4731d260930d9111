"""The training-input cache: the trainer's own encoding of every record, written once next to the shards.

``audiodata cache DIR --tokenizer T`` runs the collator's encoding (chat template, tokenizer, the
processor's audio-token expansion, assistant labels by character offsets: :meth:`AudioCollator.sft_tokens`,
no second copy) over the shards of one config and writes, per shard, an Arrow stream file with each record's
``input_ids``, label mask, audio tokens per clip and the assistant texts the batch check compares the labels
with. For a DPO or KTO config (``--data-config dpo|kto``) it runs :meth:`AudioCollator.preference_tokens` and
stores the prompt's ``input_ids`` (audio expanded), the audio tokens per clip and each reply's ids untruncated
(``chosen``/``rejected``, or KTO's ``completion``; KTO's label stays in the shard); ``max_length`` is applied
when training, as it is from the shards. With ``--features`` it also holds the log-mel features in fp16: each
clip's frames up to where the padding to 30 s turns into one constant, and that constant, so the padded array
comes back exactly (as fp16).
A record the encoding refuses keeps its reason (``cache_skip``): the trainer logs it in skipped.jsonl.

Layout: ``DIR/cache/<key>/cache.json`` and ``DIR/cache/<key>/<config>/<split>/<shard>.arrow``. ``<key>``
hashes everything the encoding depends on (:func:`components`): the tokenizer (its serialised vocabulary,
merges, normaliser, added and special tokens), the chat template, the feature extractor's config, the family,
the options that change tokens (system prompt, long_audio, features) and the transformers version.
cache.json records the sha256 of every source shard as manifest.json gives it, so a re-converted dataset
makes the cache stale too. The trainer computes the key from its own processor (:func:`lookup`) and uses a
cache only when key, shards and files all match; otherwise it says why and encodes from the shards.

The files are Arrow streams because ``datasets.Dataset.from_file`` memory-maps them without a copy: the
trainer joins them column-wise to the shard rows and reads only lengths at start, then one record at a
time in the data loader (:func:`attach`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiodata.dataset import ConvertedDataset, DatasetError, ShardEntry
from audiodata.faults import on_path

CACHE_DIR = "cache"
META = "cache.json"
#: Layout version of the files below: a change here makes every older cache stale (it is part of the key).
CACHE_FORMAT = 1
#: Cache columns (prefixed: they sit beside the shard's own columns in the rows the trainer reads).
ID, IDS, LABEL_MASK, AUDIO_TOKENS, LABEL_TEXTS, SKIP = (
    "cache_id",
    "cache_input_ids",
    "cache_label_mask",
    "cache_audio_tokens",
    "cache_label_texts",
    "cache_skip",
)
FEATURES, FEATURE_FRAMES, FEATURE_FILL, MASK_FRAMES, FEATURE_SHAPE = (
    "cache_features",
    "cache_feature_frames",
    "cache_feature_fill",
    "cache_mask_frames",
    "cache_feature_shape",
)
#: A preference row's reply ids (their prompt's ids sit in IDS), untruncated.
CHOSEN, REJECTED, COMPLETION = "cache_chosen_ids", "cache_rejected_ids", "cache_completion_ids"
#: The reply columns of each record kind, as the collator names the replies (trainer.collators.DPO_REPLIES, ...).
REPLIES: dict[str, dict[str, str]] = {
    "sft": {},
    "dpo": {"chosen": CHOSEN, "rejected": REJECTED},
    "kto": {"completion": COMPLETION},
}
BATCH_ROWS = 64


class CacheError(DatasetError):
    """A cache that cannot be written or used as asked (exit code 2 from the CLI)."""


# -- the key ------------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def components(
    family: Any, processor: Any, system_prompt: str | None, long_audio: str, features: bool, kind: str = "sft"
) -> dict[str, str]:
    """What an encoding depends on, each hashed: a cache is used only when all of them are today's. ``kind`` (the
    record kind: another encoding) is an option only when it is not SFT, so SFT keys stay what they were."""
    import transformers

    tok = processor.tokenizer
    backend = getattr(tok, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(tok.get_vocab(), sort_keys=True)
    tokens = {"special": tok.special_tokens_map, "added": sorted(tok.get_added_vocab().items())}
    template = getattr(processor, "chat_template", None) or getattr(tok, "chat_template", None) or ""
    extractor = getattr(processor, "feature_extractor", None)
    config = extractor.to_dict() if extractor is not None else {}
    options = {
        "family": family.name,
        "system_prompt": system_prompt,
        "long_audio": long_audio,
        "features": features,
        "format": CACHE_FORMAT,
        "transformers": transformers.__version__,
    }
    if kind != "sft":
        options["kind"] = kind
    return {
        "tokenizer": _sha(vocab + json.dumps(tokens, sort_keys=True, default=str)),
        "template": _sha(str(template)),
        "processor": _sha(json.dumps(config, sort_keys=True, default=str)),
        "options": _sha(json.dumps(options, sort_keys=True)),
        "options_readable": json.dumps(options, sort_keys=True),
    }


def cache_key(parts: dict[str, str]) -> str:
    return _sha(json.dumps({k: v for k, v in parts.items() if k != "options_readable"}, sort_keys=True))[:16]


# -- writing ------------------------------------------------------------------------------------


@dataclass
class CacheResult:
    """What ``audiodata cache`` did: where, how many records, how many kept a skip reason (and which)."""

    path: Path
    key: str
    config: str = "sft"
    kind: str = "sft"
    rows: int = 0
    skipped: int = 0
    tokens: int = 0
    bytes: int = 0
    seconds: float = 0.0
    reused: bool = False
    skip_reasons: dict[str, int] = field(default_factory=dict)


def _schema(features: bool, kind: str = "sft") -> Any:
    import pyarrow as pa

    cols = [pa.field(ID, pa.string()), pa.field(IDS, pa.list_(pa.int32()))]
    if kind == "sft":
        cols.append(pa.field(LABEL_MASK, pa.list_(pa.bool_())))
    cols += [pa.field(name, pa.list_(pa.int32())) for name in REPLIES[kind].values()]
    cols.append(pa.field(AUDIO_TOKENS, pa.list_(pa.int32())))
    if kind == "sft":
        cols.append(pa.field(LABEL_TEXTS, pa.list_(pa.string())))
    cols.append(pa.field(SKIP, pa.string()))
    if features:
        cols += [
            pa.field(FEATURES, pa.list_(pa.binary())),
            pa.field(FEATURE_FRAMES, pa.list_(pa.int32())),
            pa.field(FEATURE_FILL, pa.list_(pa.float32())),
            pa.field(MASK_FRAMES, pa.list_(pa.int32())),
            pa.field(FEATURE_SHAPE, pa.list_(pa.int32())),
        ]
    return pa.schema(cols)


def pack_features(enc: dict[str, Any]) -> dict[str, list[Any]]:
    """The processor's padded features as fp16 bytes per clip, cut after the last frame that is not the padding's
    constant; with that constant and the shape :func:`features` rebuilds the fp16 array exactly."""
    feats = enc.get("input_features")
    out: dict[str, list[Any]] = {FEATURES: [], FEATURE_FRAMES: [], FEATURE_FILL: [], MASK_FRAMES: [], FEATURE_SHAPE: []}
    if feats is None:
        return out
    masks = enc["feature_attention_mask"].sum(-1).tolist()
    for clip, frames in zip(feats.numpy().astype(np.float16), masks, strict=True):
        fill = clip[0, -1]
        varying = np.nonzero(~(clip == fill).all(axis=0))[0]
        keep = int(varying[-1]) + 1 if varying.size else 0
        out[FEATURES].append(np.ascontiguousarray(clip[:, :keep]).tobytes())
        out[FEATURE_FRAMES].append(keep)
        out[FEATURE_FILL].append(float(fill))
        out[MASK_FRAMES].append(int(frames))
        out[FEATURE_SHAPE] = [int(clip.shape[0]), int(clip.shape[1])]
    return out


def encode_row(collator: Any, row: dict[str, Any], with_features: bool, kind: str = "sft") -> dict[str, Any]:
    """One cache row: the collator's untruncated encoding of ``row`` for ``kind`` (or why it cannot be trained on)."""
    from trainer.collators import SkipExample, kto_label
    from trainer.labels import IGNORE

    replies = REPLIES[kind]
    out: dict[str, Any] = {ID: row.get("id"), IDS: [], AUDIO_TOKENS: [], SKIP: None}
    out.update({LABEL_MASK: [], LABEL_TEXTS: []} if kind == "sft" else {col: [] for col in replies.values()})
    empty: dict[str, Any] = {FEATURES: [], FEATURE_FRAMES: [], FEATURE_FILL: [], MASK_FRAMES: [], FEATURE_SHAPE: []}
    try:
        if kind == "sft":
            enc, ids, labels, texts, counts = collator.sft_tokens(row)
            out.update({LABEL_MASK: (labels != IGNORE).tolist(), LABEL_TEXTS: texts})
        else:
            if kind == "kto":
                kto_label(row)  # a label that is not a boolean: refused here as the trainer refuses it
            enc, ids, reply_ids, counts = collator.preference_tokens(row, tuple(replies))
            out.update({col: r.tolist() for col, r in zip(replies.values(), reply_ids, strict=True)})
    except SkipExample as exc:
        out[SKIP] = str(exc) or "skipped"
        return {**out, **empty} if with_features else out
    out.update({IDS: ids.tolist(), AUDIO_TOKENS: counts})
    if with_features:
        out.update(pack_features(enc))
    return out


def _shard_rows(data: ConvertedDataset, entry: ShardEntry) -> Iterator[dict[str, Any]]:
    """The shard's rows as the trainer reads them (format 2 preference prompts sit in ``prompt``)."""
    for batch in data.shard_batches(entry, batch_rows=BATCH_ROWS):
        for row in batch.to_pylist():
            if "messages" not in row and "prompt" in row:
                row["messages"] = row.pop("prompt")
            yield row


def write_shard(
    data: ConvertedDataset,
    entry: ShardEntry,
    collator: Any,
    features: bool,
    dest: Path,
    tick: Callable[[], None] | None = None,
    kind: str = "sft",
) -> dict[str, Any]:
    """Encode one shard into ``dest`` (an Arrow stream, written under a temporary name and renamed)."""
    import pyarrow as pa

    schema = _schema(features, kind)
    tmp = dest.with_name(dest.name + ".tmp")
    stats: dict[str, Any] = {"rows": 0, "skipped": 0, "tokens": 0, "reasons": {}}
    with on_path(tmp):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            buffer: list[dict[str, Any]] = []
            for row in _shard_rows(data, entry):
                enc = encode_row(collator, row, features, kind)
                stats["rows"] += 1
                stats["tokens"] += len(enc[IDS]) + sum(len(enc[col]) for col in REPLIES[kind].values())
                if enc[SKIP]:
                    stats["skipped"] += 1
                    stats["reasons"][enc[SKIP]] = stats["reasons"].get(enc[SKIP], 0) + 1
                buffer.append(enc)
                if tick is not None:
                    tick()
                if len(buffer) >= BATCH_ROWS:
                    writer.write_batch(pa.RecordBatch.from_pylist(buffer, schema=schema))
                    buffer = []
            if buffer:
                writer.write_batch(pa.RecordBatch.from_pylist(buffer, schema=schema))
        os.replace(tmp, dest)
    if stats["rows"] != entry.rows:
        raise CacheError(f"shard {entry.file}: read {stats['rows']} rows, manifest.json says {entry.rows}")
    return stats


def build(
    root: str | os.PathLike[str],
    family: Any,
    processor: Any,
    *,
    system_prompt: str | None = None,
    long_audio: str = "split",
    features: bool = False,
    config: str = "sft",
    force: bool = False,
    num_workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CacheResult:
    """Write the cache of ``config`` (every split) into ``root/cache/<key>``; an up-to-date one is kept as is.
    Shards are encoded by ``num_workers`` processes (default: one per core, at most one per shard), each with the
    processor copied in. ``on_progress(rows done, rows in all)`` after every record (one process) or shard."""
    from audiodata.pipeline.window import ordered_map

    started = time.time()
    data = ConvertedDataset.open(root)
    name = data.find_config(config)
    if name is None:
        raise CacheError(f"{root}: no {config} config to cache (configs: {', '.join(data.configs) or 'none'})")
    kind = data.kind(name)
    if kind not in REPLIES:
        raise CacheError(f"{root}: config {name!r} holds {kind} records; the cache holds SFT, DPO and KTO examples only")
    dither = getattr(getattr(processor, "feature_extractor", None), "dither", 0.0)
    if features and dither:
        raise CacheError(
            f"the feature extractor dithers (dither={dither}): its features differ on every call and a cache would "
            "freeze one draw; cache without --features (the features are then computed per example)"
        )
    parts = components(family, processor, system_prompt, long_audio, features, kind)
    key = cache_key(parts)
    final = Path(root) / CACHE_DIR / key
    result = CacheResult(final, key, name, kind)
    found = lookup(root, parts, name)
    if found.path is not None and not force:
        result.reused = True
        result.rows = sum(s["rows"] for s in found.meta["shards"])
        return result
    work = final.with_name(key + ".tmp")
    with on_path(work, "prepare"):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    entries = data.shards(name)
    if not entries:
        raise CacheError(f"{root}: manifest.json lists no shards of config {name!r}: nothing to cache")
    total = sum(e.rows for e in entries)
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(entries)))
    done = [0]

    def tick(rows: int = 1) -> None:
        done[0] += rows
        if on_progress is not None:
            on_progress(done[0], total)

    jobs = ((entry, (str(root), entry, str(work / _cache_file(entry)), features, workers == 1, kind)) for entry in entries)
    shards = []
    init = (family, processor, system_prompt, long_audio, tick if workers == 1 else None)
    for entry, stats in ordered_map(_shard_job, jobs, workers, initializer=_init_worker, initargs=init):
        if workers > 1:
            tick(stats["rows"])
        result.rows += stats["rows"]
        result.skipped += stats["skipped"]
        result.tokens += stats["tokens"]
        for reason, n in stats["reasons"].items():
            result.skip_reasons[reason] = result.skip_reasons.get(reason, 0) + n
        rel = _cache_file(entry)
        size = (work / rel).stat().st_size
        result.bytes += size
        shards.append(
            {"source": entry.file, "sha256": entry.sha256, "config": entry.config, "split": entry.split,
             "rows": entry.rows, "file": rel.as_posix(), "bytes": size}
        )
    meta = {
        "key": key,
        "format": CACHE_FORMAT,
        "config": name,
        "kind": kind,
        "features": features,
        "components": parts,
        "family": family.name,
        "system_prompt": system_prompt,
        "long_audio": long_audio,
        "shards": shards,
        "rows": result.rows,
        "skipped": result.skipped,
        "tokens": result.tokens,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with on_path(work / META):
        (work / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    with on_path(final, "replace"):
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    result.seconds = time.time() - started
    return result


def _cache_file(entry: ShardEntry) -> Path:
    return Path(entry.config) / entry.split / (Path(entry.file).stem + ".arrow")


#: What a cache-building process holds: the collator (its processor loaded once per process) and the progress tick.
_WORKER: dict[str, Any] = {}


def _init_worker(family: Any, processor: Any, system_prompt: str | None, long_audio: str, tick: Any) -> None:
    from trainer.collators import AudioCollator

    if tick is None:  # a worker process: one torch thread each, the processes are the parallelism
        import torch

        torch.set_num_threads(1)
    _WORKER["collator"] = AudioCollator(family, processor, None, system_prompt, long_audio)
    _WORKER["tick"] = tick


def _shard_job(root: str, entry: ShardEntry, dest: str, features: bool, ticks: bool, kind: str) -> dict[str, Any]:
    data = ConvertedDataset.open(root)
    return write_shard(data, entry, _WORKER["collator"], features, Path(dest), _WORKER["tick"] if ticks else None, kind)


# -- finding and reading ------------------------------------------------------------------------


@dataclass
class Lookup:
    """A usable cache (``path`` and its ``meta``), or None and why each cache present was not used."""

    path: Path | None
    meta: dict[str, Any]
    stale: list[str]

    @property
    def features(self) -> bool:
        return bool(self.meta.get("features"))


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("shards"), list) else None


def lookup(root: str | os.PathLike[str], parts: dict[str, str], config: str) -> Lookup:
    """The cache in ``root/cache`` built with exactly ``parts`` (the features flag is part of them) for the shards
    the manifest lists now; each other cache there is named with what changed (it is never used)."""
    folder = Path(root) / CACHE_DIR
    if not folder.is_dir():
        return Lookup(None, {}, [])
    data = ConvertedDataset.open(root)
    current = {s.file: s for s in data.shards(config)}
    stale: list[str] = []
    usable: tuple[Path, dict[str, Any]] | None = None
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".tmp")):
        meta = _read_meta(path)
        shown = f"{CACHE_DIR}/{path.name}"
        if meta is None:
            stale.append(f"{shown}: no readable {META} (an interrupted build?)")
            continue
        if meta.get("config") != config:
            continue
        theirs = meta.get("components") or {}
        changed = [k for k in ("tokenizer", "template", "processor", "options") if theirs.get(k) != parts.get(k)]
        if changed == ["options"] and _only_features_differ(theirs, parts):
            continue  # the same encoding with(out) features: the other variant, not a stale one
        if changed:
            stale.append(f"{shown}: built with another {', '.join(_what(k, theirs, parts) for k in changed)}")
            continue
        problem = _shards_problem(path, meta, current)
        if problem:
            stale.append(f"{shown}: {problem}")
            continue
        usable = usable or (path, meta)
    return Lookup(usable[0], usable[1], stale) if usable else Lookup(None, {}, stale)


def _only_features_differ(theirs: dict[str, str], parts: dict[str, str]) -> bool:
    try:
        a, b = json.loads(theirs.get("options_readable", "")), json.loads(parts["options_readable"])
    except ValueError:
        return False
    a.pop("features", None)
    b.pop("features", None)
    return bool(a == b)


def _what(key: str, theirs: dict[str, str], parts: dict[str, str]) -> str:
    if key != "options":
        return {"tokenizer": "tokenizer", "template": "chat template", "processor": "feature-extractor config"}[key]
    try:
        a, b = json.loads(theirs.get("options_readable", "{}")), json.loads(parts["options_readable"])
    except ValueError:
        return "set of options"
    keys = sorted((set(a) | set(b)) - {"features"})  # with or without features: a variant, never the staleness
    diff = [f"{k} {a.get(k)!r} (now {b.get(k)!r})" for k in keys if a.get(k) != b.get(k)]
    return ", ".join(diff) or "set of options"


def _shards_problem(path: Path, meta: dict[str, Any], current: dict[str, ShardEntry]) -> str | None:
    """Why the cache's shard list is not the dataset's today (None when it is)."""
    cached = {s.get("source"): s for s in meta["shards"]}
    if set(cached) != set(current):
        return "built for another set of shards (the dataset was converted again)"
    for name, entry in current.items():
        s = cached[name]
        if s.get("sha256") != entry.sha256 or s.get("rows") != entry.rows:
            return f"shard {name} changed since the cache was built (sha256 differs)"
        file = path / str(s.get("file"))
        if not file.is_file() or file.stat().st_size != s.get("bytes"):
            return f"{s.get('file')} is missing or not the size {META} records"
    return None


def read_split(lookup: Lookup, split: str) -> Any:
    """The cache rows of ``split`` as one memory-mapped ``datasets.Dataset`` (shard order: the trainer's order)."""
    import datasets

    assert lookup.path is not None
    files = [lookup.path / s["file"] for s in lookup.meta["shards"] if s["split"] == split]
    if not files:
        raise CacheError(f"{lookup.path}: no {split} split in the cache")
    parts = [datasets.Dataset.from_file(str(f)) for f in files]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def attach(rows: Any, lookup: Lookup, split: str) -> Any:
    """``rows`` (the split as the trainer loads it) with the cache's columns beside them, zero-copy; the record
    ids must agree row by row, or the cache is not for these rows."""
    import datasets
    import pyarrow.compute as pc

    cached = read_split(lookup, split)
    if len(cached) != len(rows):
        raise CacheError(f"{lookup.path}: {len(cached)} cached rows for {len(rows)} {split} records")
    if "id" in rows.column_names:
        ids_here, ids_cached = column(rows, "id"), column(cached, ID)
        if not pc.all(pc.equal(ids_here, ids_cached).fill_null(True)).as_py():
            raise CacheError(f"{lookup.path}: the cached record ids are not the {split} rows' ids, row by row")
    return datasets.concatenate_datasets([rows, cached], axis=1)


def column(rows: Any, name: str, per_row: Callable[[Any], Any] | None = None) -> Any:
    """One column of a ``datasets.Dataset`` as a pyarrow array (``per_row`` applied to it first: a cheap kernel that
    keeps one value per row), its selection (``select``) applied. Taken from the memory-mapped table through the
    selection's indices: ``select_columns`` costs about 1 ms per table block, seconds for a dataset of many shards
    (``datasets`` has no public accessor for the indices)."""
    import pyarrow.compute as pc

    values = rows.data.column(name)
    if per_row is not None:
        values = per_row(values)
    indices = getattr(rows, "_indices", None)
    if indices is None:
        return values
    return pc.take(values, indices.column(0))


def lengths(rows: Any, max_length: int | None) -> tuple[list[int], list[int]]:
    """(tokens, clips) per row from the cache: exact, and read as list lengths, not per-row Python. A preference
    row counts its prompt and its longest reply (the longest row of its pair in the batch)."""
    import pyarrow.compute as pc

    tokens = column(rows, IDS, pc.list_value_length).to_numpy(zero_copy_only=False)
    replies = [c for c in (CHOSEN, REJECTED, COMPLETION) if c in rows.column_names]
    if replies:
        longest = np.max([column(rows, c, pc.list_value_length).to_numpy(zero_copy_only=False) for c in replies], axis=0)
        tokens = tokens + longest
    clips = column(rows, AUDIO_TOKENS, pc.list_value_length).to_numpy(zero_copy_only=False)
    if max_length is not None:
        tokens = np.minimum(tokens, max_length)
    return tokens.astype(int).tolist(), clips.astype(int).tolist()


def skipped_rows(rows: Any) -> list[int]:
    """Rows whose encoding was refused when the cache was built (their reason in ``cache_skip``)."""
    import pyarrow.compute as pc

    valid = column(rows, SKIP, pc.is_valid).to_numpy(zero_copy_only=False)
    return [int(i) for i in np.nonzero(valid)[0]]


def splits(lookup: Lookup) -> list[str]:
    return list(dict.fromkeys(str(s["split"]) for s in lookup.meta.get("shards", [])))


# -- one example from its cached columns --------------------------------------------------------


def ids(row: dict[str, Any], name: str) -> Any:
    """One cached id column of a row as the long tensor the collator pads."""
    import torch

    return torch.tensor(row[name], dtype=torch.long)


def tokens(row: dict[str, Any]) -> tuple[Any, Any]:
    """(input_ids, labels) tensors of a cached row: labels are the ids where the mask says so, IGNORE elsewhere."""
    import torch

    from trainer.labels import IGNORE

    ids = torch.tensor(row[IDS], dtype=torch.long)
    mask = torch.tensor(row[LABEL_MASK], dtype=torch.bool)
    return ids, torch.where(mask, ids, torch.full_like(ids, IGNORE))


def features(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's ``input_features`` (float32, padded) and ``feature_attention_mask`` rebuilt from the fp16
    frames of a cached row ({} for a record without audio)."""
    import torch

    blobs = row[FEATURES]
    if not blobs:
        return {}
    n_mels, total = (int(x) for x in row[FEATURE_SHAPE])
    feats = np.empty((len(blobs), n_mels, total), np.float32)
    mask = np.zeros((len(blobs), total), np.int32)
    per_clip = zip(blobs, row[FEATURE_FRAMES], row[FEATURE_FILL], row[MASK_FRAMES], strict=True)
    for c, (blob, keep, fill, frames) in enumerate(per_clip):
        feats[c] = fill
        feats[c, :, :keep] = np.frombuffer(blob, np.float16).reshape(n_mels, keep)
        mask[c, :frames] = 1
    return {"input_features": torch.from_numpy(feats), "feature_attention_mask": torch.from_numpy(mask)}
