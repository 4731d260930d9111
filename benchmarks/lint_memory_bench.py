#!/usr/bin/env python
"""Peak memory of ``audiodata lint --no-audio`` as the corpus grows: the duplicate index must not grow with it.

Parts (each measured in a fresh process, so one run's peak is not the next one's floor):

* lint    -- lint_bench's text corpus (its generator and cache: sharegpt/messages/alpaca/MiniCPM/DPO
             records, 1% defects, 1% copies, 0.5% other answers to the same audio and prompt) at
             ``--sizes`` records (default 200k, 1M, 2M), linted with every default rule and again with the
             D rules off (``ignore=["D"]``), the baseline. Prints peak RSS of the main process (where the
             cross-record state lives; ``ru_maxrss``) and of the whole process tree (sampled from /proc
             every 20 ms), records/s (wall) and records per CPU-second (main process and workers), the
             main process's CPU seconds, the D001/D003 counts and how often the index spilled; then the
             ratio of the largest corpus's peak to the smallest's (target: close to 1) and what the D
             rules cost.
* store   -- the index alone, on a stream of 16-byte digests (``--keys``, default 4M: a 2M-record corpus):
             ``FirstSeen`` (dict, then sorted runs behind a Bloom filter) against the same dict spilling into
             sqlite3 (a WITHOUT ROWID B-tree), both capped at ``--dedup-memory``: microseconds per key, peak RSS.
* clips   -- what near mode's clip index (fingerprints, LSH buckets) keeps per clip: it stays in memory.

Timings are noisy on a shared machine (the foreign CPU share is printed); RSS is not.

Usage::

    python benchmarks/lint_memory_bench.py                         # all parts, 200k / 1M / 2M records
    python benchmarks/lint_memory_bench.py --sizes 20000,100000 --parts lint --json mem.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _shared import REPO_ROOT, command_line, headline, machine, save_results, sibling, use_checkout

MIB = 2**20


class PeakSampler:
    """Samples the resident set of this process and its children every 20 ms (memory_bench's tree_rss)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._tree_rss = sibling("memory_bench").tree_rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._tree_rss(pid))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _maxrss() -> tuple[int, int]:
    """Peak resident bytes of this process and of its largest (waited-for) child."""
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _in_child(part: str, *args: str) -> dict[str, Any]:
    """Run ``--child part args`` in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part, *args]
    run = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# lint
# --------------------------------------------------------------------------------------------


def child_lint(records: str, rules: str, memory: str, workers: str, cache: str) -> dict[str, Any]:
    """In a fresh process: lint the cached corpus of ``records`` with all default rules or without D."""
    lb = sibling("lint_bench")
    lb.CACHE_DIR = Path(cache)
    cb = lb.load_convert_bench()
    from audiodata.dedup.store import FirstSeen
    from audiodata.pipeline.lint import lint

    spills = [0]
    original = FirstSeen.spill

    def counted(self: FirstSeen) -> None:
        spills[0] += bool(self.mem)
        original(self)

    FirstSeen.spill = counted  # type: ignore[method-assign]
    meta = lb.build_text_corpus(int(records), os.cpu_count() or 1, cb)
    paths = [p["path"] for p in meta["parts"]]
    kwargs: dict[str, Any] = {"audio": False, "progress": False, "dedup_memory": int(memory)}
    if int(workers):
        kwargs["num_workers"] = int(workers)
    if rules == "no-D":
        kwargs["ignore"] = ["D"]
    base_self = _maxrss()[0]
    cpu0, kids0 = time.process_time(), _children_cpu()
    with PeakSampler() as sampler, cb.Stopwatch() as sw:
        report = lint(paths, **kwargs)
    main_cpu, workers_cpu = time.process_time() - cpu0, _children_cpu() - kids0
    main_peak, worker_peak = _maxrss()
    codes = report.to_dict()["summary"]["by_code"]
    return {
        "records": report.records,
        "rules": rules,
        "wall_s": sw.wall_s,
        "records_per_s": report.records / sw.wall_s,
        "foreign_cpu_share": sw.foreign_cpu_share,
        "main_cpu_s": main_cpu,
        "cpu_s": main_cpu + workers_cpu,
        "main_peak": main_peak,
        "main_after_imports": base_self,
        "worker_peak": worker_peak,
        "tree_peak": sampler.peak,
        "D001": codes.get("D001", 0),
        "D003": codes.get("D003", 0),
        "findings": len(report.findings),
        "spills": spills[0],
        "repeats": meta.get("repeats", {}),
    }


def lint_part(args: argparse.Namespace) -> dict[str, Any]:
    lb = sibling("lint_bench")
    cb = lb.load_convert_bench()
    lb.CACHE_DIR = args.cache
    lb.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:  # build (or reuse) every corpus first: building is not what is measured
        lb.build_text_corpus(n, os.cpu_count() or 1, cb)
    rows = []
    header = (
        f"{'records':>10} {'rules':<9} {'wall s':>7} {'records/s':>9} {'rec/cpu-s':>9} {'main cpu s':>10} "
        f"{'main peak MiB':>13} {'tree peak MiB':>13} {'D001':>6} {'D003':>6} {'spills':>6}"
    )
    print(f"\nlint --no-audio, --dedup-memory {args.dedup_memory / MIB:.0f} MiB, workers: {args.workers or 'default'}")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        for rules in ("default", "no-D"):
            r = _in_child("lint", str(n), rules, str(args.dedup_memory), str(args.workers or 0), str(args.cache))
            rows.append(r)
            print(
                f"{r['records']:>10,} {rules:<9} {r['wall_s']:>7.1f} {r['records_per_s']:>9,.0f} "
                f"{r['records'] / r['cpu_s']:>9,.0f} {r['main_cpu_s']:>10.1f} {r['main_peak'] / MIB:>13.0f} "
                f"{r['tree_peak'] / MIB:>13.0f} {r['D001']:>6,} {r['D003']:>6,} {r['spills']:>6}",
                flush=True,
            )
    busy = max((r["foreign_cpu_share"] or 0) for r in rows)
    if busy > 0.05:
        print(f"note: other processes took up to {busy:.0%} of the CPUs: records/s are noisy (records per CPU-second of")
        print("lint's own processes less so), RSS is not")

    def peak(n: int, rules: str, key: str = "main_peak") -> int:
        return next(r[key] for r in rows if r["records"] == n and r["rules"] == rules)

    small, large = min(args.sizes), max(args.sizes)
    summary: dict[str, Any] = {}
    print()
    for rules in ("default", "no-D"):
        for key in ("main_peak", "tree_peak"):
            ratio = peak(large, rules, key) / peak(small, rules, key)
            summary[f"{rules}_{key}_ratio"] = ratio
            print(f"{key.replace('_', ' ')} {large:,} / {small:,} records, {rules} rules: {ratio:.2f}")
    for n in args.sizes:
        extra = (peak(n, "default") - peak(n, "no-D")) / MIB
        summary[f"d_rules_mib_{n}"] = extra
        print(f"D rules cost at {n:,} records: {extra:+.0f} MiB of main-process peak ({extra * MIB / n:+.0f} bytes/record)")
    return {"runs": rows, "summary": summary}


# --------------------------------------------------------------------------------------------
# store: FirstSeen against sqlite3
# --------------------------------------------------------------------------------------------


class SqliteFirstSeen:
    """The alternative measured against :class:`FirstSeen`: the same dict, spilled into one sqlite3 B-tree
    (no journal, no fsync, a page cache of a quarter of the cap) and queried there on every dict miss."""

    def __init__(self, memory: int, folder: str) -> None:
        from audiodata.dedup.store import ENTRY_BYTES

        self.limit = max(memory * 3 // 4 // ENTRY_BYTES, 16)
        self.mem: dict[bytes, bytes] = {}
        self.db = sqlite3.connect(os.path.join(folder, "index.db"), isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE", f"cache_size=-{memory // 4 // 1024}"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE seen (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
        self.spilled = 0

    def first(self, key: bytes, value: bytes) -> bytes | None:
        found = self.mem.get(key)
        if found is not None:
            return found
        if self.spilled:
            row = self.db.execute("SELECT v FROM seen WHERE k = ?", (key,)).fetchone()
            if row is not None:
                return row[0]
        self.mem[key] = value
        if len(self.mem) >= self.limit:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO seen VALUES (?, ?)", sorted(self.mem.items()))
            self.db.execute("COMMIT")
            self.spilled += len(self.mem)
            self.mem = {}
        return None


def child_store(kind: str, keys: str, memory: str) -> dict[str, Any]:
    """In a fresh process: ``keys`` first() calls (1% repeats of earlier keys) on one store."""
    import random
    import tempfile

    from audiodata.dedup.store import FirstSeen

    rng = random.Random(7)
    n = int(keys)
    value = bytes(24)
    with tempfile.TemporaryDirectory(prefix="lint-memory-bench-") as folder:
        index: Any = FirstSeen(int(memory), folder) if kind == "runs" else SqliteFirstSeen(int(memory), folder)
        recent: list[bytes] = []
        hits = 0
        base = _maxrss()[0]
        t0 = time.perf_counter()
        for i in range(n):
            key = rng.choice(recent) if recent and rng.random() < 0.01 else rng.randbytes(16)
            if len(recent) < 4096:
                recent.append(key)
            elif i % 97 == 0:
                recent[rng.randrange(4096)] = key
            hits += index.first(key, value) is not None
        wall = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
        if kind == "runs":
            index.close()
    return {"kind": kind, "keys": n, "hits": hits, "us_per_key": wall / n * 1e6, "peak": _maxrss()[0], "base": base, "disk": disk}


def store_part(args: argparse.Namespace) -> dict[str, Any]:
    print(f"\nthe index alone: {args.keys:,} keys (1% repeats), capped at {args.dedup_memory / MIB:.0f} MiB")
    header = f"{'store':<28} {'us/key':>8} {'peak RSS MiB':>13} {'over start MiB':>15} {'disk MiB':>9} {'hits':>7}"
    print(header)
    print("-" * len(header))
    rows = []
    for kind, label in (("runs", "FirstSeen (runs + Bloom)"), ("sqlite", "dict + sqlite3 B-tree")):
        r = _in_child("store", kind, str(args.keys), str(args.dedup_memory))
        rows.append(r)
        print(
            f"{label:<28} {r['us_per_key']:>8.2f} {r['peak'] / MIB:>13.0f} {(r['peak'] - r['base']) / MIB:>15.0f} "
            f"{r['disk'] / MIB:>9.0f} {r['hits']:>7,}",
            flush=True,
        )
    if rows[0]["hits"] != rows[1]["hits"]:
        print("warning: the two stores disagree")
    return {"runs": rows}


# --------------------------------------------------------------------------------------------
# clips: near mode's clip index
# --------------------------------------------------------------------------------------------


def clips_part(args: argparse.Namespace) -> dict[str, Any]:
    """Bytes per clip of ClipIndex(near=True) over copies of the sample speech fingerprints."""
    import copy
    import tracemalloc

    from audiodata.audio.decode import decode
    from audiodata.audio.load import AudioSource
    from audiodata.audio.transform import to_pcm16
    from audiodata.dedup.fingerprint import fingerprint
    from audiodata.dedup.index import ClipIndex

    clips = sorted((REPO_ROOT / "sample_data" / "audio").glob("clip*"))
    prints, seconds = [], 0.0
    for path in clips:
        try:
            pcm = to_pcm16(decode(AudioSource(path=path, name=path.name), 100.0), 16000)
        except Exception:  # a format this machine cannot decode: measure the others
            continue
        prints.append(fingerprint(pcm))
        seconds += len(pcm) / 16000
    n = args.clips
    fps = [copy.deepcopy(prints[i % len(prints)]) for i in range(n)]
    tracemalloc.start()
    index = ClipIndex(near=True)
    for i, fp in enumerate(fps):
        index.add(f"{i:064x}", fp)  # distinct hashes: every clip is indexed
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    mean_s = seconds / len(prints)
    per_clip = used / n
    print(f"\nnear mode's clip index: {per_clip:,.0f} bytes per clip ({per_clip / mean_s:,.0f} per second of audio; ")
    print(f"{len(prints)} sample clips of {mean_s:.1f} s on average, {n:,} clips indexed); it stays in memory")
    return {"bytes_per_clip": per_clip, "mean_seconds": mean_s, "clips": n}


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from audiodata.pipeline.options import parse_size

    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sizes", default="200000,1000000,2000000", help="corpus sizes in records (comma separated)")
    p.add_argument("--parts", default="lint,store,clips", help="which parts to run (comma separated: lint, store, clips)")
    p.add_argument("--dedup-memory", default="64MiB", help="the index's memory cap (default 64MiB, lint's default)")
    p.add_argument("--workers", type=int, default=0, help="lint workers (default: lint's own default, all cores)")
    p.add_argument("--keys", type=int, default=4_000_000, help="keys for the store part (default 4M)")
    p.add_argument("--clips", type=int, default=2000, help="clips for the clips part (default 2000)")
    p.add_argument("--cache", type=Path, help="where the corpora are built (default: lint_bench's cache, benchmarks/.cache)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    args.cache = (args.cache or sibling("lint_bench").CACHE_DIR).resolve()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.parts = [s.strip() for s in args.parts.split(",")]
    args.dedup_memory = parse_size(args.dedup_memory)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    use_checkout(strict=True)
    if argv[:1] == ["--child"]:
        part, rest = argv[1], argv[2:]
        result = child_lint(*rest) if part == "lint" else child_store(*rest)
        print(json.dumps(result))
        return 0
    args = parse_args(argv)
    at_start = machine()
    host = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    figures: dict[str, Any] = {"host": host}
    if "lint" in args.parts:
        figures["lint"] = lint_part(args)
    if "store" in args.parts:
        figures["store"] = store_part(args)
    if "clips" in args.parts:
        figures["clips"] = clips_part(args)
    heads = []
    if "lint" in figures:
        s = figures["lint"]["summary"]
        small, large = min(args.sizes), max(args.sizes)
        for rules in ("default", "no-D"):
            big = next(r for r in figures["lint"]["runs"] if r["records"] == large and r["rules"] == rules)
            heads.append(headline(
                f"lint text-only peak RSS (main process), {large:,} records, {rules} rules", big["main_peak"] / 2**20, "MiB",
                f"the same at {small:,} records, same run", s[f"{rules}_main_peak_ratio"],
                f"ratio: peak big/small (bounded: close to 1); process tree: {s[f'{rules}_tree_peak_ratio']:.2f}",
            ))  # fmt: skip
    save_results(args.json, "lint_memory", command_line("lint_memory_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
