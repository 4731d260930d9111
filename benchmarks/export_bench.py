#!/usr/bin/env python
"""Export and publish planning: MB/s against a plain copy of the same bytes, and flat cost per byte.

Two converted datasets, one ``--scale`` times the other (default 300 and 1,200 SFT records of
sample_data speech, 16 kHz FLAC, small shards so the per-shard costs show), each exported to every target
(``audiodata.export``) and planned for upload (``audiodata.publish(..., dry_run=True)``). The baseline,
measured in the same run on the same dataset: a **plain copy** of the same audio bytes (each shard's
``audios`` column read with pyarrow, each clip written to its own file, no formatting, no checks). Export
does that copy plus its own work (rows rebuilt as records, the target's rules, the data file written), so
its MB/s is a fraction of the copy's; ``x copy`` is that fraction (CPU seconds of this process, the
machine may be shared). ``big/small`` is export's CPU seconds per audio byte at the big size over the
small: 1.0 means cost proportional to the bytes copied (a per-row or per-shard cost that grows faster
shows as > 1).

Publish planning reads no audio (the manifest already holds each shard's sha256): it opens each shard's
Parquet footer, so its cost is per shard; printed as ms per shard at both sizes.

Usage::

    python benchmarks/export_bench.py                     # 300 and 1,200 records
    python benchmarks/export_bench.py --records 100 --scale 4 --json benchmarks/results/export.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, REPO_ROOT, command_line, headline, machine, save_results, use_checkout

SAMPLE = REPO_ROOT / "sample_data"
TARGETS = (("llamafactory", "sharegpt"), ("llamafactory", "alpaca"), ("llamafactory-v1", "sharegpt"),
           ("ms-swift", "sharegpt"), ("minicpm", "sharegpt"), ("align-anything", "sharegpt"))  # fmt: skip
SHARD_SIZE = "2MB"


def build(records: int) -> Path:
    """A converted dataset of ``records`` SFT records (cached): each one sample_data clip, distinct text."""
    import audiodata

    folder = CACHE_DIR / f"export-bench-{records}"
    out = folder / "out"
    if (out / "manifest.json").is_file():
        return out
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    clips = sorted(p for p in (SAMPLE / "audio").iterdir() if p.suffix in (".wav", ".flac"))
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for i in range(records):
            rec = {
                "conversations": [
                    {"from": "human", "value": "<audio>What does the speaker say?"},
                    {"from": "gpt", "value": f"Record {i}: the words of clip {i % len(clips)}."},
                ],
                "audios": [str(clips[i % len(clips)])],
            }
            fh.write(json.dumps(rec) + "\n")
    audiodata.convert([str(folder / "corpus.jsonl")], out, num_workers=2, max_shard_size=SHARD_SIZE)
    return out


def plain_copy(out: Path, dest: Path) -> int:
    """The baseline: every stored audio's bytes from the shards' ``audios`` column to a file of its own."""
    import pyarrow.parquet as pq

    n = total = 0
    dest.mkdir(parents=True)
    for shard in sorted((out / "data").rglob("*.parquet")):
        pf = pq.ParquetFile(shard)
        for batch in pf.iter_batches(batch_size=64, columns=["audios"]):
            for items in batch.column(0).to_pylist():
                for item in items or []:
                    data = item["bytes"]
                    (dest / f"{n}.flac").write_bytes(data)
                    n += 1
                    total += len(data)
    return total


def timed(fn: Any) -> tuple[float, float, Any]:
    """(CPU seconds of this process, wall seconds, result)."""
    c0, w0 = time.process_time(), time.perf_counter()
    got = fn()
    return time.process_time() - c0, time.perf_counter() - w0, got


def measure(out: Path, work: Path, repeats: int) -> dict[str, Any]:
    """Best of ``repeats`` for the copy, each export target, and publish planning, on the dataset ``out``."""
    import audiodata
    from audiodata.publish import publish

    shards = len(list((out / "data").rglob("*.parquet")))
    work_items: dict[str, Any] = {"copy": lambda d: plain_copy(out, d)}
    for to, form in TARGETS:
        name = f"{to}/{form}" if to == "llamafactory" else to
        work_items[name] = lambda d, to=to, form=form: audiodata.export(out, to, d, form=form).records_written
    work_items["publish plan"] = lambda d: len(publish(out, "me/bench", dry_run=True).planned)
    runs: dict[str, list[tuple[float, float, Any]]] = {name: [] for name in work_items}
    for k in range(repeats):  # round by round, so the copy and each export see the same load
        for name, fn in work_items.items():
            target = work / f"{name.replace('/', '-')}-{k}"
            runs[name].append(timed(lambda fn=fn, target=target: fn(target)))
            shutil.rmtree(target, ignore_errors=True)
    rows = {}
    for name, got in runs.items():
        cpu, wall, result = min(got, key=lambda r: r[0])
        rows[name] = {"cpu_s": cpu, "wall_s": wall, "result": result}
    nbytes = rows["copy"]["result"]
    return {"bytes": nbytes, "shards": shards, "timings": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--records", type=int, default=300, help="records of the small dataset (default 300)")
    p.add_argument("--scale", type=int, default=4, help="the big dataset is this many times the small (default 4)")
    p.add_argument("--repeats", type=int, default=2, help="passes per measurement, the least CPU counts (default 2)")
    p.add_argument("--json", type=Path, help="also write the headline ratios and the machine as JSON here")
    args = p.parse_args(argv)
    use_checkout(strict=True)
    at_start = machine()
    print(f"export_bench: {at_start['cores']} cores ({at_start['cpu']}), load {at_start['load_average']} at start "
          "(the machine may be shared: compare the ratios, not the times)", flush=True)
    sizes = (args.records, args.records * args.scale)
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        for n in sizes:
            out = build(n)
            results[n] = measure(out, Path(tmp) / str(n), args.repeats)
    small, big = (results[n] for n in sizes)
    print()
    print(f"{'work':24} " + " ".join(f"{f'{n} rec MB/s':>13} {'x copy':>7}" for n in sizes) + f" {'big/small':>10}")
    figures: dict[str, Any] = {"sizes": {}, "rows": {}}
    for n in sizes:
        r = results[n]
        figures["sizes"][str(n)] = {"audio_mb": round(r["bytes"] / 1e6, 2), "shards": r["shards"]}
    heads = []
    for name in small["timings"]:
        if name == "publish plan":
            continue
        cells, row = [], {}
        for n in sizes:
            r = results[n]
            t = r["timings"][name]
            mbps = r["bytes"] / 1e6 / t["cpu_s"]
            vs = r["timings"]["copy"]["cpu_s"] / t["cpu_s"]
            cells.append(f"{mbps:>13.1f} {vs:>7.2f}")
            row[str(n)] = {"cpu_s": round(t["cpu_s"], 3), "wall_s": round(t["wall_s"], 3), "mb_per_s": round(mbps, 1),
                           "x_copy": round(vs, 3)}
        flat = (big["timings"][name]["cpu_s"] / big["bytes"]) / (small["timings"][name]["cpu_s"] / small["bytes"])
        row["big_over_small"] = round(flat, 3)
        figures["rows"][name] = row
        print(f"{name:24} " + " ".join(cells) + f" {flat:>10.2f}")
        if name != "copy":
            heads.append(headline(f"export --to {name}, {sizes[1]} records", row[str(sizes[1])]["mb_per_s"], "MB/s (CPU)",
                                  "plain copy of the same audio bytes", row[str(sizes[1])]["x_copy"],
                                  f"CPU per byte at {sizes[1]} vs {sizes[0]} records: {flat:.2f}x "
                                  f"(the copy's: {figures['rows']['copy']['big_over_small']:.2f}x)"))
    plan = {str(n): results[n]["timings"]["publish plan"]["cpu_s"] / results[n]["shards"] * 1000 for n in sizes}
    figures["rows"]["publish plan"] = {"ms_per_shard": {k: round(v, 2) for k, v in plan.items()}}
    few, many = (results[n]["shards"] for n in sizes)
    heads.append(headline(f"publish --dry-run planning, {many} shards", plan[str(sizes[1])], "ms/shard (CPU)",
                          f"the same at {few} shards", plan[str(sizes[1])] / plan[str(sizes[0])],
                          "ratio: cost per shard big/small (1.0 = proportional; no audio read)"))
    cells = [f"{plan[str(n)]:>10.2f} ms/shard ({results[n]['shards']} shards)" for n in sizes]
    print(f"{'publish --dry-run plan':24} " + " ".join(cells))
    print()
    print("MB/s: audio bytes / CPU seconds of this process; x copy: the plain copy's CPU seconds / export's (1.0 = as fast")
    print("as copying the bytes); big/small: CPU seconds per byte at the big size / at the small (1.0 = proportional).")
    save_results(args.json, "export", command_line("export_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
