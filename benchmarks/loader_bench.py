#!/usr/bin/env python
"""Training input: samples/s per data-loader worker from the cache, from the shards, from path-per-clip JSON.

What a training step waits for when the loader is the bottleneck: turning one record into a model-ready
example (tokens, labels, log-mel features). Four ways, each timed in this one process (one worker, one torch
thread), on the same records, in the same run, so the ratios hold however loaded the machine is:

* **json**: what a path-per-clip JSON pipeline does per example: the record from a JSON list, its audio file
  opened and decoded from its own format and rate (WAV/FLAC at 16-48 kHz), then chat template, tokenizer
  and feature extractor (``AudioCollator.encode_sft``, the trainer's own encoding);
* **shards**: ``audiodata train`` without a cache: the row from the converted shards (``load_rows``, the
  ``encoded`` dataset the trainer indexes), its 16 kHz FLAC decoded, then the same encoding;
* **cache**: with ``audiodata cache``: the tokens, labels and audio-token counts from the cache, the FLAC
  decoded and the feature extractor run (``encode_cached``), nothing templated or tokenized;
* **cache+features**: with ``audiodata cache --features``: everything from the cache (fp16 log-mel frames
  rebuilt to the processor's padded array), no audio decoded.

DPO (``--tasks sft,dpo,kto``, the default): the same four ways for preference pairs (the same clips, the reply as
``chosen`` and another record's reply as ``rejected``): ``encode_dpo`` from JSON and from the shards,
``encode_dpo_cached`` from ``audiodata cache --data-config dpo`` with and without features.
KTO: the same for unpaired preference records (TRL's ``prompt``/``completion``/``label`` layout, the same clips, the
reply as the completion, labels alternating): ``encode_kto`` and ``encode_kto_cached`` (``--data-config kto``).

Also measured: the start (rows loaded and the lengths the batch sampler needs, the one-off ``datasets``
Parquet import excluded and reported apart) and the one-off cost of building each cache. The ``datasets``
import (``Dataset.from_parquet`` converts the shards into Arrow files in its cache before the first step) is
measured into an empty cache folder: its seconds and the bytes it writes. Every rate is turned into what it
means for ``--hours`` hours of audio (default 10,000) at the corpus's mean clip length and bytes per hour:
the worker-days an epoch takes, the seconds the sampler's lengths take, the hours and bytes of that first
import. Measured rate x hours, not a 10,000-hour run.

Corpus: ``--records`` (default 240) SFT records, each its own audio file of 1-4 sample_data sentences
(espeak-ng speech) concatenated at the source file's rate and written as WAV or FLAC (so the JSON path
decodes and resamples as a real corpus makes it), with the sentences as the reply; converted with
``audiodata.convert``; the tiny random Qwen2-Audio of ``trainer.tiny`` (its processor: the real Whisper
feature extractor, a small byte-level BPE). Cached in ``benchmarks/.cache/loader-bench-<records>``.

Usage::

    python benchmarks/loader_bench.py                  # 240 records, SFT, DPO and KTO, best of 3 passes per way
    python benchmarks/loader_bench.py --records 60 --repeats 1 --json loader.json
    python benchmarks/loader_bench.py --tasks dpo      # DPO only
    python benchmarks/loader_bench.py --tasks kto      # KTO only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import soundfile as sf
from _shared import CACHE_DIR, REPO_ROOT, command_line, headline, save_results, use_checkout
from _shared import machine as measured_on

CORPUS_VERSION = 1
SAMPLE = REPO_ROOT / "sample_data"
WAYS = ("json", "shards", "cache", "cache+features")


def sample_sentences() -> list[tuple[Path, str]]:
    """(file, transcript) of the WAV and FLAC clips sample_data/README.md lists."""
    table = (SAMPLE / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"^\| `(audio/clip\d+_[^`]+\.(?:wav|flac))` \|.*\| ([^|]+?) \|$", table, flags=re.M)
    return [(SAMPLE / rel, text.strip()) for rel, text in found]


def build_corpus(folder: Path, records: int) -> Path:
    """``records`` path-per-clip records as one sharegpt JSON file (cached)."""
    corpus = folder / "corpus.json"
    stamp = folder / "corpus.version"
    if corpus.is_file() and stamp.is_file() and stamp.read_text() == f"{CORPUS_VERSION}:{records}":
        return corpus
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "clips").mkdir(parents=True)
    sentences = sample_sentences()
    rng = np.random.default_rng(0)
    items = []
    for n in range(records):
        picks = [sentences[int(i)] for i in rng.integers(0, len(sentences), int(rng.integers(1, 5)))]
        rate = sf.info(str(picks[0][0])).samplerate
        parts = []
        for path, _ in picks:
            pcm, r = sf.read(str(path), dtype="float32", always_2d=True)
            pcm = pcm.mean(axis=1)
            if r != rate:
                import soxr

                pcm = soxr.resample(pcm, r, rate)
            parts += [pcm, np.zeros(int(0.3 * rate), np.float32)]
        name = f"clips/{n:05d}." + ("flac" if n % 2 else "wav")
        sf.write(str(folder / name), np.concatenate(parts), rate, subtype="PCM_16")
        prompt = ("<audio>What does the speaker say?", "<audio>Transcribe this.", "Please listen. <audio> Write it down.")[n % 3]
        reply = " ".join(text for _, text in picks)
        items.append({"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}], "audios": [name]})
    corpus.write_text(json.dumps(items, indent=1), encoding="utf-8")
    stamp.write_text(f"{CORPUS_VERSION}:{records}")
    return corpus


def dpo_corpus(corpus: Path) -> Path:
    """The SFT corpus as DPO pairs (sharegpt ranking layout): the reply chosen, the next record's reply rejected."""
    dpo = corpus.with_name("corpus-dpo.json")
    if dpo.is_file() and dpo.stat().st_mtime >= corpus.stat().st_mtime:
        return dpo
    items = json.loads(corpus.read_text(encoding="utf-8"))
    pairs = []
    for n, item in enumerate(items):
        chosen = item["conversations"][-1]
        rejected = items[(n + 1) % len(items)]["conversations"][-1]
        pairs.append({"conversations": item["conversations"][:-1], "chosen": chosen, "rejected": rejected,
                      "audios": item["audios"]})
    dpo.write_text(json.dumps(pairs, indent=1), encoding="utf-8")
    return dpo


def kto_corpus(corpus: Path) -> Path:
    """The SFT corpus as unpaired preference records (TRL's KTO layout): the prompt turns, the reply as the completion,
    labelled desirable and undesirable in turn."""
    kto = corpus.with_name("corpus-kto.json")
    if kto.is_file() and kto.stat().st_mtime >= corpus.stat().st_mtime:
        return kto
    roles = {"human": "user", "gpt": "assistant"}
    records = []
    for n, item in enumerate(json.loads(corpus.read_text(encoding="utf-8"))):
        turns = [{"role": roles[m["from"]], "content": m["value"]} for m in item["conversations"]]
        records.append({"prompt": turns[:-1], "completion": turns[-1:], "label": n % 2 == 0, "audios": item["audios"]})
    kto.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return kto


SOURCES: dict[str, Callable[[Path], Path]] = {"sft": lambda corpus: corpus, "dpo": dpo_corpus, "kto": kto_corpus}


def convert(corpus: Path, out: Path) -> None:
    import audiodata

    if (out / "manifest.json").is_file():
        return
    audiodata.convert([str(corpus)], out, num_workers=2)


def json_rows(corpus: Path) -> list[dict[str, Any]]:
    """What a path-per-clip pipeline holds: records with audio paths (resolved against the JSON file's folder)."""
    rows = []
    roles = {"human": "user", "gpt": "assistant"}
    for k, item in enumerate(json.loads(corpus.read_text(encoding="utf-8"))):
        paths = [str(corpus.parent / p) for p in item["audios"]]
        if "completion" in item:  # KTO (TRL's layout): role/content turns already
            rows.append({"id": f"json-{k}", "messages": item["prompt"], "completion": item["completion"],
                         "label": item["label"], "paths": paths})  # fmt: skip
            continue
        messages = [{"role": roles[m["from"]], "content": m["value"]} for m in item["conversations"]]
        row = {"id": f"json-{k}", "messages": messages, "paths": paths}
        for key in ("chosen", "rejected"):
            if key in item:
                row[key] = [{"role": roles[item[key]["from"]], "content": item[key]["value"]}]
        rows.append(row)
    return rows


def time_pass(n: int, one: Callable[[int], Any], repeats: int) -> tuple[float, int]:
    """(best seconds for the ``n`` items, items) over ``repeats`` passes, after a short warm-up."""
    for i in range(min(4, n)):
        one(i)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(n):
            one(i)
        best = min(best, time.perf_counter() - started)
    return best, n


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every task's figures: SFT's at the top level (as before DPO was measured), the others under their name."""
    import torch

    torch.set_num_threads(1)
    from trainer.tiny import make_tiny_model

    work = Path(args.cache) / f"loader-bench-{args.records}"
    corpus = build_corpus(work / "corpus", args.records)
    model = work / "model"
    if not (model / "config.json").is_file():
        make_tiny_model(model, family="qwen2-audio")
    fig: dict[str, Any] = {"machine": machine(), "tasks": args.tasks}
    for task in args.tasks:
        source = SOURCES[task](corpus)
        out = work / ("out" if task == "sft" else f"out-{task}")
        convert(source, out)
        figures = measure_task(args, task, source, out, model, work)
        if task == "sft":
            fig.update(figures)
        else:
            fig[task] = figures
    return fig


def first_import(out: Path, config: str, split: str, copies: int = 1, cast: bool = False) -> tuple[float, int, int]:
    """(seconds, bytes written, shard bytes) of ``datasets``' Parquet import of the split's shards (listed ``copies``
    times) into an empty cache folder, as ``load_rows`` does it: what the first training run on a dataset does
    before it can index a row (later runs find the Arrow copy there). ``cast``: the way it was done before
    (import, then ``cast_column`` to undecoded audio, which wrote the split a second time), for comparison."""
    import tempfile

    import datasets

    from audiodata.dataset import ConvertedDataset
    from trainer.data import undecoded_features

    data = ConvertedDataset.open(out)
    paths = [data.path(s) for s in data.shards(config, split)] * copies
    before = datasets.config.HF_DATASETS_CACHE
    with tempfile.TemporaryDirectory(prefix="loader-bench-hf-") as empty:
        datasets.config.HF_DATASETS_CACHE = Path(empty)
        try:
            started = time.perf_counter()
            if cast:
                ds = datasets.Dataset.from_parquet([str(p) for p in paths])
                rate = ds.features["audios"].feature.sampling_rate
                ds.cast_column("audios", datasets.List(datasets.Audio(sampling_rate=rate, decode=False)))
            else:
                datasets.Dataset.from_parquet([str(p) for p in paths], features=undecoded_features(paths))
            seconds = time.perf_counter() - started
        finally:
            datasets.config.HF_DATASETS_CACHE = before
        written = sum(f.stat().st_size for f in Path(empty).rglob("*") if f.is_file())
    return seconds, written, sum(p.stat().st_size for p in paths)


def import_rate(out: Path, config: str, split: str) -> dict[str, Any]:
    """The import's seconds and bytes written per shard byte: the slope between the shards listed once and four
    times (the fixed start-up of ``datasets``' builder taken out, as it is a small part of a big dataset's import)."""
    one_s, one_written, one_bytes = first_import(out, config, split, 1)
    four_s, four_written, four_bytes = first_import(out, config, split, 4)
    cast_s, cast_written, _ = first_import(out, config, split, 1, cast=True)
    slope = (four_s - one_s) / (four_bytes - one_bytes)
    if slope <= 0:  # noise swamped the difference: the whole time per byte, an overestimate
        slope = four_s / four_bytes
    return {
        "seconds": round(one_s, 3),
        "bytes_written": one_written,
        "train_shard_bytes": one_bytes,
        "copy_ratio": round(four_written / four_bytes, 3),
        "fixed_s": round(max(one_s - slope * one_bytes, 0.0), 3),
        "mb_per_s": round(1 / slope / 1e6, 1),
        "with_cast": {
            "seconds": round(cast_s, 3), "bytes_written": cast_written, "copy_ratio": round(cast_written / one_bytes, 3),
        },
    }


def direct_read_rate(cfg: Any, out: Path, config: str) -> tuple[float, float, float]:
    """(seconds per record, seconds per shard, bytes in memory per record) of reading rows straight from the shards
    without their audio (what a run with a features cache does instead of the import). The per-record slope comes
    from one train shard's rows written 1x and 200x into a shard of their own (their audio lists emptied: the read
    skips that column anyway)."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from audiodata.dataset import ConvertedDataset
    from trainer.data import rows_without_audio

    data = ConvertedDataset.open(out)
    table = pq.read_table(data.path(data.shards(config, "train")[0]))
    at = table.schema.get_field_index("audios")
    table = table.set_column(at, table.schema.field(at), pa.array([[]] * len(table), table.schema.field(at).type))
    times, held = [], 0
    with tempfile.TemporaryDirectory(prefix="loader-bench-direct-") as tmp:
        for copies in (1, 200):
            path = Path(tmp) / f"train-{copies}.parquet"
            pq.write_table(pa.concat_tables([table] * copies), path, row_group_size=100)
            started = time.perf_counter()
            rows = rows_without_audio(cfg, [(path, path.name)])
            times.append(time.perf_counter() - started)
            held = rows.data.nbytes / len(rows)
    per_record = max((times[1] - times[0]) / (199 * len(table)), 0.0)
    return per_record, max(times[0] - per_record * len(table), 0.0), held


def measure_task(args: argparse.Namespace, task: str, corpus: Path, out: Path, model: Path, work: Path) -> dict[str, Any]:
    """The four ways for ``task`` (sft, dpo or kto) on the converted ``out``."""
    from audiodata.dataset import ConvertedDataset
    from trainer import cache
    from trainer.collators import AudioCollator
    from trainer.config import TrainConfig
    from trainer.data import SkipLog, encoded, estimate_lengths, load_rows
    from trainer.families import get_family

    family = get_family("qwen2-audio")
    processor = family.training_processor(str(model))
    collator = AudioCollator(family, processor)
    cfg = TrainConfig(model=str(model), data=str(out), task=task)
    skips = SkipLog(str(work / "run"))
    plain, from_cache = {"sft": (collator.encode_sft, collator.encode_cached),
                         "dpo": (collator.encode_dpo, collator.encode_dpo_cached),
                         "kto": (collator.encode_kto, collator.encode_kto_cached)}[task]  # fmt: skip
    config = ConvertedDataset.open(out).find_config(task) or task

    builds: dict[str, float] = {}
    for features in (False, True):
        started = time.perf_counter()
        cache.build(out, family, processor, features=features, config=config, force=True)
        builds["cache+features" if features else "cache"] = time.perf_counter() - started

    imported = import_rate(out, config, "train")
    load_rows(cfg, "train")  # the import into the HF cache the timed starts below find there (as a second run does)

    starts: dict[str, float] = {}
    lengths_s: dict[str, float] = {}
    datasets: dict[str, Any] = {}
    started = time.perf_counter()
    rows = load_rows(cfg, "train")
    estimate_lengths(rows, family.math, cfg.long_audio)
    starts["shards"] = time.perf_counter() - started
    many = _repeated(rows, args.length_records)
    started = time.perf_counter()
    estimate_lengths(many, family.math, cfg.long_audio)
    lengths_s["shards"] = (time.perf_counter() - started) / len(many)
    datasets["shards"] = encoded(rows, plain, skips)
    for way, features in (("cache", False), ("cache+features", True)):
        started = time.perf_counter()
        parts = cache.components(family, processor, None, cfg.long_audio, features, task)
        found = cache.lookup(out, parts, config)
        assert found.path is not None, found.stale
        # as the trainer loads them (trainer.train.needs_audio): with features, the shards read without their audio
        attached = cache.attach(load_rows(cfg, "train", audio=not features), found, "train")
        cache.lengths(attached, None)
        starts[way] = time.perf_counter() - started
        many = _repeated(attached, args.length_records)
        started = time.perf_counter()
        cache.lengths(many, None)
        lengths_s[way] = (time.perf_counter() - started) / len(many)
        datasets[way] = encoded(attached, from_cache, skips)

    jrows = json_rows(corpus)
    started = time.perf_counter()
    json_rows(corpus)
    starts["json"] = time.perf_counter() - started
    lengths_s["json"] = 0.0  # a path-per-clip pipeline has no lengths before it has encoded everything

    def json_one(i: int) -> Any:
        row = jrows[i]
        audios = [{"bytes": Path(p).read_bytes(), "path": p} for p in row["paths"]]  # the file, opened per example
        return plain({**row, "audios": audios})  # decoded by the same audiodata decoder the collator uses

    n = len(rows)
    seconds = float(np.sum(rows["audio_seconds"]))
    mean_clip = seconds / n
    records_for_hours = args.hours * 3600 / mean_clip
    ways: dict[str, Any] = {}
    for way in WAYS:
        if way == "json":
            best, items = time_pass(len(jrows), json_one, args.repeats)
        else:
            ds = datasets[way]
            best, items = time_pass(n, lambda i, ds=ds: ds.__getitems__([i]), args.repeats)
        rate = items / best
        ways[way] = {
            "samples_per_s": round(rate, 2),
            "ms_per_sample": round(1000 * best / items, 3),
            "start_s": round(starts[way], 3),
            "lengths_us_per_record": round(1e6 * lengths_s[way], 3),
            "lengths_s_for_hours": round(lengths_s[way] * records_for_hours, 2),
            "epoch_days_per_worker": round(records_for_hours / rate / 86400, 2),
        }
    scale = args.hours * 3600 / seconds  # the corpus's train split, scaled to --hours of the same audio
    big = imported["train_shard_bytes"] * scale
    direct_s_per_record, direct_s_per_shard, direct_bytes_per_record = direct_read_rate(cfg, out, config)
    shards_for_hours = math.ceil(big / 500e6)  # convert's default --max-shard-size
    import_s_for_hours = imported["fixed_s"] + big / (imported["mb_per_s"] * 1e6)
    for way, stats in ways.items():
        # the first run's start at --hours: datasets' import of the shards (every way but the one that reads none),
        # or the shards read without their audio (per record and per shard of convert's default size), then the lengths
        imports = 0.0 if way in ("json", "cache+features") else import_s_for_hours
        rows_s = direct_s_per_record * records_for_hours + direct_s_per_shard * shards_for_hours
        rows_s = rows_s if way == "cache+features" else 0.0
        stats["first_start_s_for_hours"] = round(imports + rows_s + stats["lengths_s_for_hours"], 1)
    for stats in ways.values():
        stats["vs_shards"] = round(stats["samples_per_s"] / ways["shards"]["samples_per_s"], 2)
        stats["vs_json"] = round(stats["samples_per_s"] / ways["json"]["samples_per_s"], 2)
    files = list((out / cache.CACHE_DIR).glob("*/**/*.arrow"))
    cache_bytes = {
        k: sum(f.stat().st_size for f in files if _features_of(f) == (k == "cache+features")) for k in ("cache", "cache+features")
    }
    shard_bytes = sum(f.stat().st_size for f in (out / "data").rglob("*.parquet"))
    return {
        "task": task,
        "records": n,
        "audio_hours": round(seconds / 3600, 4),
        "mean_clip_seconds": round(mean_clip, 2),
        "hours_for_epoch_figure": args.hours,
        "repeats": args.repeats,
        "length_records": (args.length_records // n) * n,
        "ways": ways,
        "cache_build_s": {k: round(v, 2) for k, v in builds.items()},
        "cache_bytes": cache_bytes,
        "shard_bytes": shard_bytes,
        "datasets_first_import_s": imported["seconds"],
        "datasets_first_import": {
            **imported,
            "shard_bytes_for_hours": round(big),
            "hours_for_hours": round(import_s_for_hours / 3600, 2),
            "direct_read_us_per_record": round(direct_s_per_record * 1e6, 2),
            "direct_read_ms_per_shard": round(direct_s_per_shard * 1e3, 2),
            "direct_read_bytes_for_hours": round(direct_bytes_per_record * records_for_hours),
            "bytes_for_hours": round(big * imported["copy_ratio"]),
        },
    }


def _repeated(rows: Any, records: int) -> Any:
    """``rows`` over and over (zero-copy) up to about ``records`` rows: the start's per-record cost without the fixed one."""
    import datasets

    return datasets.concatenate_datasets([rows] * max(1, records // len(rows)))


def _features_of(path: Path) -> bool:
    meta = json.loads((path.parents[2] / "cache.json").read_text(encoding="utf-8"))
    return bool(meta.get("features"))


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_1m": round(load[0], 2) if load else None,
        "python": platform.python_version(),
        "note": "one process, one torch thread; the machine may be shared: compare the ratios, not the times",
    }


def print_report(fig: dict[str, Any]) -> None:
    m = fig["machine"]
    for task in fig["tasks"]:
        t = fig if task == "sft" else fig[task]
        print(f"\nloader_bench {task}: {t['records']} records, {t['audio_hours']} h of audio "
              f"(mean clip {t['mean_clip_seconds']} s); {m['cores']} cores, load {m['load_average_1m']} ({m['note']})")
        head = f"{'way':16} {'samples/s':>10} {'ms/sample':>10} {'x shards':>9} {'x json':>7} {'start s':>8} "
        hours = format(t["hours_for_epoch_figure"], ",.0f")
        head += f"{'lengths s, ' + hours + ' h':>20} {'first start s, ' + hours + ' h':>24} "
        head += f"{'worker-days/epoch, ' + hours + ' h':>30}"
        print(head)
        for way, s in t["ways"].items():
            print(f"{way:16} {s['samples_per_s']:>10.1f} {s['ms_per_sample']:>10.2f} {s['vs_shards']:>9.2f} {s['vs_json']:>7.2f} "
                  f"{s['start_s']:>8.2f} {s['lengths_s_for_hours']:>20.1f} {s['first_start_s_for_hours']:>24.1f} "
                  f"{s['epoch_days_per_worker']:>30.2f}")
        print(f"(lengths: what the batch sampler reads before step 1, timed on {t['length_records']:,} rows (the corpus "
              "repeated), scaled to the records of that many hours; json has none to read. first start: a first run's, the "
              "datasets import of the shards included (none for json, and none for cache+features, whose rows are read "
              "from the shards without their audio))")
        imp = t["datasets_first_import"]
        print(f"one-off: cache build {t['cache_build_s']['cache']} s (tokens), {t['cache_build_s']['cache+features']} s "
              f"(with features)")
        print(f"first load: datasets' Parquet import {imp['seconds']} s, {imp['bytes_written']:,} bytes written for "
              f"{imp['train_shard_bytes']:,} bytes of train shards (x{imp['copy_ratio']} per byte, {imp['mb_per_s']} MB/s); "
              f"for {hours} h ({imp['shard_bytes_for_hours'] / 1e9:,.0f} GB of shards): {imp['hours_for_hours']} h and "
              f"{imp['bytes_for_hours'] / 1e9:,.0f} GB written before the first step (the hours a lower bound: these "
              "shards are read from the page cache)")
        print(f"  (cache+features reads the rows without their audio instead: {imp['direct_read_us_per_record']} us per record "
              f"+ {imp['direct_read_ms_per_shard']} ms per shard, {imp['direct_read_bytes_for_hours'] / 1e9:,.1f} GB held in "
              f"memory for {hours} h, nothing written)")
        cast = imp["with_cast"]
        print(f"  (before: import then cast_column, {cast['seconds']} s and {cast['bytes_written']:,} bytes written, "
              f"x{cast['copy_ratio']}: the cast wrote the split a second time)")
        print(f"bytes: shards {t['shard_bytes']:,}, cache {t['cache_bytes']['cache']:,}, "
              f"cache with features {t['cache_bytes']['cache+features']:,}")


def _tasks(value: str) -> list[str]:
    tasks = [t.strip() for t in value.split(",") if t.strip()]
    if not tasks or set(tasks) - set(SOURCES):
        raise argparse.ArgumentTypeError(f"{value!r}: one or more of sft, dpo, kto (comma-separated)")
    return tasks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=240)
    p.add_argument("--repeats", type=int, default=3, help="timed passes per way (the fastest is shown)")
    p.add_argument("--length-records", type=int, default=50_000, help="rows (the corpus repeated) the start's lengths take")
    p.add_argument("--hours", type=float, default=10_000, help="hours of audio the per-epoch figure stands for")
    p.add_argument("--tasks", type=_tasks, default=["sft", "dpo", "kto"], help="sft, dpo, kto, comma-separated (default all)")
    p.add_argument("--cache", default=str(CACHE_DIR), help="folder for the corpus, shards and model")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_checkout(strict=True)
    at_start = measured_on()
    fig = measure(args)
    print_report(fig)
    if args.json:
        heads = []
        for task in args.tasks:
            t = fig if task == "sft" else fig[task]
            name = "training input" if task == "sft" else f"{task.upper()} training input"
            heads += [
                headline(f"{name} from the {way}, {t['records']} records", s["samples_per_s"], "samples/s per worker",
                         "the shards (no cache), same run", s["vs_shards"],
                         f"ratio: samples/s, {way} / shards; x path-per-clip JSON: {s['vs_json']}")
                for way, s in t["ways"].items()
                if way.startswith("cache")
            ]
        save_results(args.json, "loader", command_line("loader_bench.py", argv), at_start, heads, fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
