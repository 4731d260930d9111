#!/usr/bin/env python
"""``audiodata verify`` against the decode floor of the same shards, in one run.

verify re-reads everything a converted output promises: every shard's sha256, every row's ``audio_info``,
and every clip decoded to 16-bit PCM and hashed. What it cannot avoid is reading the stored audio out of the
Parquet shards and decoding it, so that is the floor:

* floor      -- the ``audios`` column read row group by row group with pyarrow and every clip decoded with
                ``soundfile.read(BytesIO(blob), dtype="int16")``, nothing else, in a process pool of the same
                size, the row groups shared out as verify shares them (pool start-up included).
* verify     -- ``verify(out, num_workers=N)``: the same decode plus the checksum, the pcm_hash, every check.
* floor + hashes -- the floor plus the two hashes verify exists to compute: each shard's sha256 and each
                clip's PCM BLAKE2b (what ``pcm_hash`` takes). verify cannot go below it; the rest is its own cost.
* verify, 1 worker (``--serial``) -- what the parallel split within a shard buys.
* verify ``--no-audio`` (``--no-audio-run``) -- checksums, counts and card only.

Each line prints wall and CPU seconds (this process and its reaped workers) and both as ratios against the
floor (``of floor``: floor time / method time, 1.00 = at the floor), with the load and the share of the CPUs
other processes took meanwhile: on a shared machine compare the CPU ratio.

Input: a converted output (``--dataset DIR``), or a clip corpus converted once with ``--dedup off`` into
``benchmarks/.cache/verify-<corpus name>`` (reused while there): convert_bench's ``corpus-<--clips>`` (espeak-ng
speech in mixed formats and rates, built if missing and shared with convert_bench and lint_bench), or ``--corpus
DIR``.

Usage::

    python benchmarks/verify_bench.py [--clips 2000 | --corpus DIR | --dataset DIR] [--workers 2] [--serial] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, command_line, headline, machine, save_results, use_checkout

use_checkout()
import convert_bench  # noqa: E402
from convert_bench import Stopwatch  # noqa: E402


@dataclass
class Run:
    method: str
    workers: int
    wall_s: float
    cpu_s: float
    foreign_cpu_share: float | None
    clips: int
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------


def prepare(corpus: Path, cache: Path, row_group_rows: int | None) -> Path:
    """``corpus`` converted once (``--dedup off``; convert's row groups unless ``row_group_rows``) into
    ``cache/verify-<name>[-rg<rows>]``; reused while its manifest is there."""
    out = cache / f"verify-{corpus.name}{f'-rg{row_group_rows}' if row_group_rows else ''}"
    if (out / "manifest.json").is_file():
        return out
    jsonl = corpus / "corpus.jsonl"
    if not jsonl.is_file():
        raise SystemExit(f"{jsonl} not found: build it with `python benchmarks/convert_bench.py` or pass --dataset")
    print(f"converting {jsonl} once into {out} ...", flush=True)
    from audiodata import convert

    extra = {"row_group_rows": row_group_rows} if row_group_rows else {}
    convert([str(jsonl)], out, media_root=str(corpus), dedup="off", overwrite=True, **extra)
    return out


def spans(out: Path, workers: int) -> list[tuple[str, list[int]]]:
    """Every shard's row groups in runs, as verify splits them for ``workers`` (``audiodata.verify._spans``)."""
    from audiodata.verify import _spans, span_rows

    manifest = json.loads((out / "manifest.json").read_text())
    rows = span_rows(sum(s["rows"] for s in manifest["shards"]), workers)
    jobs = []
    for shard in manifest["shards"]:
        path = out / shard["file"]
        for groups, _ in _spans(path, rows) or []:
            jobs.append((str(path), list(groups)))
    return jobs


# --------------------------------------------------------------------------------------------
# The floor
# --------------------------------------------------------------------------------------------


def _decode_span(path: str, groups: list[int], hashes: bool) -> tuple[int, int]:
    """Read the ``audios`` column of ``groups`` and decode every clip to int16 (``hashes``: and BLAKE2b its PCM, as
    pcm_hash does): (clips, samples). ``groups`` empty with ``hashes``: the file's sha256 instead."""
    import pyarrow.parquet as pq
    import soundfile as sf

    if not groups:
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
        return 0, 0
    clips = samples = 0
    with pq.ParquetFile(path) as pf:
        for group in groups:
            table = pf.read_row_group(group, columns=["audios"])
            for row in table.column("audios").to_pylist():
                for entry in row or []:
                    pcm, _ = sf.read(io.BytesIO(entry["bytes"]), dtype="int16", always_2d=True)
                    if hashes:
                        hashlib.blake2b(pcm.data, digest_size=16).hexdigest()
                    clips += 1
                    samples += pcm.shape[0]
    return clips, samples


def run_floor(out: Path, workers: int, hashes: bool = False) -> Run:
    """The floor; ``hashes``: plus the hashes verify must compute (each shard's sha256 as a job of its own before
    its spans, and each clip's PCM BLAKE2b), the floor of any verify that proves bytes and samples."""
    from audiodata.pipeline.window import ordered_map

    work = spans(out, workers)
    jobs = []
    for n, (path, groups) in enumerate(work):
        if hashes and (n == 0 or work[n - 1][0] != path):
            jobs.append(((), (path, [], True)))
        jobs.append(((), (path, groups, hashes)))
    with Stopwatch() as sw:
        results = [r for _, r in ordered_map(_decode_span, jobs, workers)]
    clips = sum(c for c, _ in results)
    label = "floor + hashes" if hashes else "decode floor"
    return Run(label, workers, sw.wall_s, sw.cpu_s, sw.foreign_cpu_share, clips, {"samples": sum(s for _, s in results)})


def run_verify(label: str, out: Path, workers: int, audio: bool = True) -> Run:
    from audiodata.verify import verify

    with Stopwatch() as sw:
        report = verify(out, audio=audio, num_workers=workers)
    extra = {"problems": len(report.problems), "rows": report.rows_checked, "exit_code": report.exit_code}
    return Run(label, workers, sw.wall_s, sw.cpu_s, sw.foreign_cpu_share, report.clips_checked, extra)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ratio(floor: float, x: float) -> float:
    return floor / x if x else float("nan")


def table(runs: list[Run], audio_s: float) -> list[dict[str, Any]]:
    floor = runs[0]
    header = (
        f"{'method':<20} {'workers':>7} {'clips':>6} {'wall s':>7} {'of floor':>8} {'CPU s':>7} {'CPU of floor':>12} "
        f"{'x realtime':>10} {'others':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    rows = []
    for r in runs:
        row = {
            "method": r.method, "workers": r.workers, "clips": r.clips, "wall_s": r.wall_s, "cpu_s": r.cpu_s,
            "ratio_vs_floor": _ratio(floor.wall_s, r.wall_s), "cpu_ratio_vs_floor": _ratio(floor.cpu_s, r.cpu_s),
            "x_realtime": audio_s / r.wall_s if r.wall_s else float("nan"), "foreign_cpu_share": r.foreign_cpu_share,
            **r.extra,
        }  # fmt: skip
        others = f"{r.foreign_cpu_share:.0%}" if r.foreign_cpu_share is not None else "-"
        print(
            f"{r.method:<20} {r.workers:>7} {r.clips:>6} {r.wall_s:>7.2f} {row['ratio_vs_floor']:>8.2f} {r.cpu_s:>7.2f} "
            f"{row['cpu_ratio_vs_floor']:>12.2f} {row['x_realtime']:>9.0f}x {others:>6}"
        )
        rows.append(row)
    print(
        "(of floor: floor time / method time, both from this run: 1.00 = at the floor; others: share of the CPUs other "
        "processes took meanwhile; compare CPU ratios on a loaded machine)"
    )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--dataset", type=Path, help="a converted output to verify (default: a corpus converted once)")
    p.add_argument(
        "--clips", type=int, default=2000, help="convert_bench's corpus of this many clips (default 2000; built if missing)"
    )
    p.add_argument("--corpus", type=Path, help="a clip corpus folder (corpus.jsonl + clips) to convert instead")
    p.add_argument("--row-group-rows", type=int, help="rows per row group when converting --corpus (default: convert's)")
    p.add_argument("--workers", type=int, default=2, help="worker processes for verify and the floor (default 2)")
    p.add_argument("--serial", action="store_true", help="also verify with 1 worker")
    p.add_argument("--no-audio-run", action="store_true", help="also verify --no-audio")
    p.add_argument("--repeats", type=int, default=1, help="run floor and verify this many times, alternating; best kept")
    p.add_argument("--cache", type=Path, default=CACHE_DIR, help=f"where the converted dataset is kept (default {CACHE_DIR})")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    if args.workers < 1 or args.repeats < 1:
        p.error("--workers and --repeats must be at least 1")
    return args


def _best(attempts: list[Run]) -> Run:
    return min(attempts, key=lambda r: r.cpu_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    at_start = machine()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if args.dataset:
        out = args.dataset
    else:
        corpus = args.corpus or args.cache / f"corpus-{args.clips}"
        if args.corpus is None:  # convert_bench's cached corpus, shared with it and lint_bench
            convert_bench.build_corpus(corpus.resolve(), args.clips, os.cpu_count() or 1)
        out = prepare(corpus.resolve(), args.cache, args.row_group_rows)
    manifest = json.loads((out / "manifest.json").read_text())
    shards = manifest["shards"]
    rows = sum(s["rows"] for s in shards)
    audio_s = float(manifest["summary"].get("audio_seconds") or 0)
    size = sum(s["bytes"] for s in shards)
    jobs = len(spans(out, args.workers))
    print(f"dataset: {out} ({len(shards)} shard(s), {rows:,} rows, {size / 1e6:.0f} MB,"
          f" {jobs} row-group spans, {args.workers} workers)")

    methods: list[tuple[str, Callable[[], Run]]] = [
        ("decode floor", lambda: run_floor(out, args.workers)),
        ("verify", lambda: run_verify("verify", out, args.workers)),
        ("floor + hashes", lambda: run_floor(out, args.workers, hashes=True)),
    ]
    if args.serial:
        methods.append(("verify, 1 worker", lambda: run_verify("verify", out, 1)))
    if args.no_audio_run:
        methods.append(("verify --no-audio", lambda: run_verify("verify --no-audio", out, args.workers, audio=False)))
    attempts: dict[str, list[Run]] = {name: [] for name, _ in methods}
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        for name, fn in methods:
            attempts[name].append(fn())
    runs = [_best(attempts[name]) for name, _ in methods]
    load = os.getloadavg()
    figures = {"dataset": str(out), "rows": rows, "audio_seconds": audio_s, "shards": len(shards), "bytes": size}
    figures["results"] = table(runs, audio_s)
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; {time.perf_counter() - t0:.0f} s")
    verify_row = figures["results"][1]
    print(
        f"verify/decode floor: {verify_row['ratio_vs_floor']:.2f} wall, {verify_row['cpu_ratio_vs_floor']:.2f} CPU "
        f"(target: within 10%, >= 0.90)"
    )
    if verify_row["problems"]:
        print(f"warning: verify found {verify_row['problems']} problem(s) in {out}")
    hashed = figures["results"][2]
    print(
        f"verify/(floor + hashes): {_ratio(hashed['wall_s'], verify_row['wall_s']):.2f} wall, "
        f"{_ratio(hashed['cpu_s'], verify_row['cpu_s']):.2f} CPU; the hashes alone cost "
        f"{hashed['cpu_s'] / runs[0].cpu_s - 1:.0%} of the floor's CPU"
    )
    if args.serial:
        serial = figures["results"][3]
        print(f"parallel speed-up, {args.workers} workers over 1: {serial['wall_s'] / verify_row['wall_s']:.2f}x wall")
    figures["load_at_end"] = list(load)
    heads = [headline(
        f"verify, {verify_row['clips']:,} clips, {args.workers} workers", verify_row["clips"] / verify_row["cpu_s"],
        "clips/CPU-s", "decode floor: the audios column read and every clip decoded, same workers",
        verify_row["cpu_ratio_vs_floor"], "ratio: CPU seconds, floor / verify",
    ), headline(
        f"verify, {verify_row['clips']:,} clips, {args.workers} workers", verify_row["clips"] / verify_row["cpu_s"],
        "clips/CPU-s", "floor + the sha256 and PCM BLAKE2b verify must compute, same workers",
        _ratio(hashed["cpu_s"], verify_row["cpu_s"]), "ratio: CPU seconds, (floor + hashes) / verify",
    )]  # fmt: skip
    if args.serial:
        heads.append(headline(
            f"verify, {verify_row['clips']:,} clips, {args.workers} workers", verify_row["wall_s"], "s (wall)",
            "verify with 1 worker, same run", serial["wall_s"] / verify_row["wall_s"],
            f"ratio: wall speed-up; {len(shards)} shard(s), split by row group",
        ))  # fmt: skip
    save_results(args.json, "verify", command_line("verify_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
