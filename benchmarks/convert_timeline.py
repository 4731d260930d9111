#!/usr/bin/env python
"""Where convert's wall time goes with N workers: a timeline of the parent and each worker.

Runs ``audiodata.convert`` once in this process, with timestamps taken around the stages (no change to the
code measured: the stage functions are wrapped from here) and every worker's jobs stamped as they start and
end. Prints what the wall clock spent before the first clip started (imports done, input scan, pool start),
the busy share of each worker between the first and the last clip, the parent's CPU while the workers ran,
and what ran after the last clip came back (closing shards, the manifest). The idle core-time,
``wall x workers - CPU``, is the figure to compare across code versions on a shared machine.

Usage::

    python benchmarks/convert_timeline.py --corpus benchmarks/.cache/mix-v2-2000 --json /tmp/timeline.json
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, command_line, headline, machine, save_results, use_checkout

#: (pid, start, end, records) per worker job: appended in the worker, sent back through a pipe-free file per pid
_JOB_LOG: Path | None = None


def _stamped_batch(batch: list[Any], settings: Any) -> Any:
    """``process_batch`` with its start and end written to this worker's log (module-level: it is pickled)."""
    from audiodata.pipeline.process import process_batch

    t0 = time.perf_counter()
    out = process_batch(batch, settings)
    t1 = time.perf_counter()
    assert _JOB_LOG is not None
    with open(_JOB_LOG / f"{os.getpid()}.log", "a") as fh:
        fh.write(f"{t0!r} {t1!r} {len(batch)}\n")
    return out


def _timed_sendback(result_queue: Any, work_id: Any, *args: Any, **kwargs: Any) -> None:
    """The pool's own send of a result back to the parent, timed (a full pipe blocks the worker here)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    _SENDBACK(result_queue, work_id, *args, **kwargs)
    t1, c1 = time.perf_counter(), time.thread_time()
    assert _JOB_LOG is not None
    with open(_JOB_LOG / f"{os.getpid()}.send", "a") as fh:
        fh.write(f"{t1 - t0!r} {c1 - c0!r}\n")


_SENDBACK: Any = None


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run(jsonl: Path, workers: int, out_dir: Path, log_dir: Path, batch_size: int = 16) -> dict[str, Any]:
    """One conversion with stage stamps; the timeline's figures."""
    global _JOB_LOG, _SENDBACK
    import concurrent.futures.process as pool_module

    _JOB_LOG = log_dir
    _SENDBACK = pool_module._sendback_result
    pool_module._sendback_result = _timed_sendback  # looked up at call time, in the forked workers too
    use_checkout(strict=True)
    import audiodata
    from audiodata.pipeline import convert as conv

    stamps: dict[str, float] = {}
    cpu_at: dict[str, float] = {}
    results_at: list[float] = []
    waits: list[float] = []  # the parent's main thread in the window: reading and submitting jobs, waiting on the oldest

    def stamp(name: str) -> None:
        stamps.setdefault(name, time.perf_counter())
        cpu_at.setdefault(name, _cpu())

    original_map = conv.ordered_map

    def ordered_map(fn: Any, jobs: Any, n: int, *args: Any, **kwargs: Any) -> Any:
        stamp("pool_map_called")

        def stamped_jobs() -> Any:
            for job in jobs:
                stamp("first_job_read")
                yield job

        it = original_map(_stamped_batch if fn is conv.process_batch else fn, stamped_jobs(), n, *args, **kwargs)
        while True:
            t_ask = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                break
            results_at.append(time.perf_counter())
            waits.append(results_at[-1] - t_ask)
            yield item
        stamp("last_result")

    original_finalize = conv._Run.finalize

    def finalize(self: Any) -> Any:
        stamp("finalize_start")
        return original_finalize(self)

    original_run = conv._Run.run

    def run_(self: Any) -> Any:
        stamp("run_start")
        return original_run(self)

    from audiodata.writer import shards as shard_module

    closes: list[tuple[float, float, float]] = []  # (start, whole close, of which the shard file's flush + fsync)
    original_close = shard_module.ShardWriter._close_shard
    original_file_close = shard_module.CountingFile.close
    synced: list[float] = []

    def close_shard(self: Any) -> None:
        t = time.perf_counter()
        original_close(self)
        closes.append((t - t0, time.perf_counter() - t, synced[-1] if synced else 0.0))

    def file_close(self: Any) -> None:
        t = time.perf_counter()
        original_file_close(self)
        synced.append(time.perf_counter() - t)

    shard_module.ShardWriter._close_shard = close_shard  # type: ignore[method-assign]
    shard_module.CountingFile.close = file_close  # type: ignore[method-assign]
    conv.ordered_map = ordered_map  # type: ignore[assignment]
    conv._Run.finalize = finalize  # type: ignore[method-assign]
    conv._Run.run = run_  # type: ignore[method-assign]
    t0, cpu0 = time.perf_counter(), _cpu()
    result = audiodata.convert([str(jsonl)], str(out_dir), num_workers=workers, overwrite=True, batch_size=batch_size)
    t_end = time.perf_counter()
    t = os.times()
    children_cpu = t.children_user + t.children_system
    parent_cpu = _cpu() - cpu0

    jobs: dict[str, list[tuple[float, float, int]]] = {}
    for log in log_dir.glob("*.log"):
        rows = [line.split() for line in log.read_text().splitlines()]
        jobs[log.stem] = [(float(a), float(b), int(n)) for a, b, n in rows]
    first_clip = min(j[0] for js in jobs.values() for j in js)
    last_clip = max(j[1] for js in jobs.values() for j in js)
    span = last_clip - first_clip
    busy = {pid: sum(b - a for a, b, _ in js) for pid, js in jobs.items()}
    rel = {k: round(v - t0, 3) for k, v in stamps.items()}
    figures = {
        "workers": workers,
        "records_written": result.records_written,
        "wall_s": round(t_end - t0, 3),
        "parent_cpu_s": round(parent_cpu, 3),
        "workers_cpu_s": round(children_cpu, 3),
        "idle_core_s": round((t_end - t0) * workers - parent_cpu - children_cpu, 3),
        "stamps_s": rel,
        "first_clip_s": round(first_clip - t0, 3),
        "last_clip_s": round(last_clip - t0, 3),
        "after_last_clip_s": round(t_end - last_clip, 3),
        "after_last_result_s": round(t_end - stamps["last_result"], 3),
        "finalize_s": round(t_end - stamps["finalize_start"], 3),
        "jobs": {pid: len(js) for pid, js in jobs.items()},
        "worker_busy_share": {pid: round(b / span, 3) for pid, b in busy.items()},
        "worker_idle_in_span_s": round(sum(span - b for b in busy.values()), 3),
        "parent_cpu_before_first_clip_s": round(cpu_at.get("first_job_read", cpu0) - cpu0, 3),
    }
    # the gaps in each worker: how long it waited for a job, summed, split into the middle and the end
    gaps: dict[str, float] = {}
    for pid, js in jobs.items():
        js.sort()
        gaps[pid] = round(sum(max(0.0, b[0] - a[1]) for a, b in itertools.pairwise(js)), 3)
    figures["worker_gaps_s"] = gaps
    figures["shard_closes"] = [{"at_s": round(a, 2), "close_s": round(c, 3), "fsync_s": round(f, 3)} for a, c, f in closes]
    sends = [tuple(map(float, line.split())) for f in log_dir.glob("*.send") for line in f.read_text().splitlines()]
    figures["worker_send_s"] = round(sum(w for w, _ in sends), 3)  # handing results to the pool's pipe
    figures["worker_send_cpu_s"] = round(sum(c for _, c in sends), 3)  # of which copying; the rest waiting (room, a core)
    figures["worker_send_max_s"] = round(max(w for w, _ in sends), 4) if sends else 0.0
    figures["parent_in_window_s"] = round(sum(waits), 3)
    figures["parent_outside_window_s"] = round(stamps["last_result"] - stamps["first_job_read"] - sum(waits), 3)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=CACHE_DIR / "mix-v2-2000", help="a corpus folder holding corpus.jsonl")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16, help="records a job (convert's --batch-size)")
    p.add_argument("--json", dest="json_out", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    at_start = machine()
    jsonl = args.corpus.resolve() / "corpus.jsonl"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="out-timeline-") as tmp:
        out, logs = Path(tmp) / "out", Path(tmp) / "logs"
        logs.mkdir()
        figures = run(jsonl, args.num_workers, out, logs, args.batch_size)
    for key, value in figures.items():
        print(f"{key:>32}: {value}")
    cpu = figures["parent_cpu_s"] + figures["workers_cpu_s"]
    busy = cpu / (figures["wall_s"] * args.num_workers)
    what = f"convert {figures['records_written']:,} records, {args.num_workers} workers: idle core-time"
    note = "ratio: CPU / (wall x workers), 1.0 = no core ever idle"
    heads = [headline(what, figures["idle_core_s"], "core s", "wall x workers, same run", busy, note)]
    save_results(args.json_out, "convert_timeline", command_line("convert_timeline.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
