"""``convert --engine ray`` against the local pool, side by side in one run: what Ray costs on one machine.

Converts the same corpus (default: the 2k-clip corpus convert_bench builds, cached in benchmarks/.cache/corpus-2000;
``--clips`` takes its first lines) three times: on the local pool of ``--cpus`` workers, with ``--engine ray`` on a
local Ray cluster of ``--cpus`` CPUs (ranks as Ray tasks, one CPU each, merged on the driver:
audiodata/pipeline/rayengine.py), then on the local pool again: the baseline is the mean of the two local runs, so a
load that drifts during the run (or a page cache warmer for later runs) weighs on both sides. Prints wall and CPU
seconds of each and their ratios; the cluster's start-up is timed apart (a fixed cost per run, not per clip). Ray's
CPU is summed over every process of the cluster (driver, GCS, raylet, workers and the pools they reaped), read before
the cluster stops. Checks that Ray wrote the local dataset (rows' summary and rejects.jsonl). The machine may be
shared: the load average is printed next to the ratios.

    python benchmarks/ray_bench.py --clips 400 --json out/ray.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, command_line, headline, machine, save_results, sibling, use_checkout


def _tree_cpu_seconds() -> float:
    """CPU seconds of this process, its descendants alive now, and what each of them reaped."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_checkout(strict=True)
    import audiodata
    from audiodata.dataset import ConvertedDataset
    from audiodata.pipeline.options import ConvertOptions
    from audiodata.pipeline.rayengine import convert_on_ray, shutdown, start

    subset = sibling("ranks_bench")._subset
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        jsonl, media_root = subset(args.corpus, args.clips, work)
        opts = {"num_workers": args.cpus, "dedup": args.dedup, "val_ratio": 0.1, "media_root": media_root}
        stopwatch = sibling("convert_bench").Stopwatch
        with stopwatch() as before:
            local = audiodata.convert([str(jsonl)], work / "local", **opts)
        t0, c0 = time.perf_counter(), _tree_cpu_seconds()
        _, dashboard = start(None, num_cpus=args.cpus)
        t1, c1 = time.perf_counter(), _tree_cpu_seconds()
        try:
            rank_done: list[float] = []
            result = convert_on_ray(
                [str(jsonl)], work / "ray", options=ConvertOptions(**opts, num_shards=args.ranks),
                on_rank=lambda done, count: rank_done.append(time.perf_counter()),
            )  # fmt: skip
            t2, c2 = time.perf_counter(), _tree_cpu_seconds()
        finally:
            shutdown()
        with stopwatch() as after:  # the local pool again: the baseline is the mean of one run before Ray and one after
            audiodata.convert([str(jsonl)], work / "local-again", **opts)
        local_sw = {"wall_s": (before.wall_s + after.wall_s) / 2, "cpu_s": (before.cpu_s + after.cpu_s) / 2}
        a, b = ConvertedDataset.open(work / "local"), ConvertedDataset.open(work / "ray")

        def rows_only(s: Any) -> Any:
            return replace(s, configs={k: replace(c, splits={n: replace(v, bytes=0) for n, v in c.splits.items()})
                                       for k, c in s.configs.items()})  # fmt: skip

        same = rows_only(a.summary) == rows_only(b.summary) and (
            (work / "local" / "rejects.jsonl").read_bytes() == (work / "ray" / "rejects.jsonl").read_bytes()
        )
        ranks = len(list((work / "ray" / "ranks").iterdir()))
        ray_fig = {"wall_s": t2 - t1, "cpu_s": c2 - c1, "start_wall_s": t1 - t0, "start_cpu_s": c1 - c0, "ranks": ranks,
                   "first_rank_done_s": rank_done[0] - t1, "last_rank_done_s": rank_done[-1] - t1,
                   "merge_wall_s": t2 - rank_done[-1]}  # fmt: skip
        return {
            "clips": local.clips,
            "records": local.records_read,
            "rows": result.records_written,
            "cpus": args.cpus,
            "dedup": args.dedup,
            "local": {**local_sw, "runs": [{"wall_s": w.wall_s, "cpu_s": w.cpu_s} for w in (before, after)]},
            "ray": ray_fig,
            "dashboard": dashboard,
            "ray_wall_over_local": ray_fig["wall_s"] / local_sw["wall_s"],
            "ray_cpu_over_local": ray_fig["cpu_s"] / local_sw["cpu_s"],
            "ray_wall_with_start_over_local": (ray_fig["wall_s"] + ray_fig["start_wall_s"]) / local_sw["wall_s"],
            "same_answer": same,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=CACHE_DIR / "corpus-2000", help="a convert_bench corpus (default: the 2k one)")
    p.add_argument("--clips", type=int, help="take the corpus's first N clips (default: all)")
    p.add_argument("--cpus", type=int, default=2, help="local pool workers, and the local Ray cluster's CPUs (default 2)")
    p.add_argument("--ranks", type=int, default=1, help="ranks as Ray tasks (default: one per cluster CPU)")
    p.add_argument("--dedup", choices=["off", "exact", "near"], default="exact", help="--dedup of both runs (default exact)")
    p.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if not (args.corpus / "corpus.jsonl").is_file():
        print(f"{args.corpus}: no corpus.jsonl; build one with: python benchmarks/convert_bench.py --corpus {args.corpus}")
        return 2
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray is not installed: pip install 'audiodata[ray]'")
        return 2
    at_start = machine()
    fig = run(args)
    print(f"load average at start {at_start['load_average']}, at end {fig['load_average_end']} ({at_start['cores']} cores)")
    print(f"{fig['clips']} clips, {fig['records']} records, {fig['cpus']} CPUs, --dedup {fig['dedup']}")
    r = fig["ray"]
    for k, run_ in zip(("before", "after"), fig["local"]["runs"], strict=True):
        print(f"local pool ({k:6s})     wall {run_['wall_s']:8.1f} s   cpu {run_['cpu_s']:8.1f} s")
    print(f"ray cluster start       wall {r['start_wall_s']:8.1f} s   cpu {r['start_cpu_s']:8.1f} s")
    print(f"--engine ray, {r['ranks']} ranks   wall {r['wall_s']:8.1f} s   cpu {r['cpu_s']:8.1f} s")
    print(f"  ranks done at {r['first_rank_done_s']:.1f} s (first) and {r['last_rank_done_s']:.1f} s (last), "
          f"merge on the driver {r['merge_wall_s']:.1f} s")  # fmt: skip
    print(f"ray wall / local wall              {fig['ray_wall_over_local']:.3f}")
    print(f"ray cpu / local cpu                {fig['ray_cpu_over_local']:.3f}")
    print(f"(ray + start) wall / local wall    {fig['ray_wall_with_start_over_local']:.3f}")
    print(f"dashboard: {fig['dashboard'] or 'none (ray[data] alone runs no dashboard; ray[default] adds it)'}")
    print(f"same answer as the local run: {fig['same_answer']}")
    heads = [
        headline("--engine ray wall", r["wall_s"], "s", f"local pool, {fig['cpus']} workers", fig["ray_wall_over_local"],
                 f"local Ray cluster of {fig['cpus']} CPUs, {r['ranks']} ranks, {fig['records']} records, "
                 f"--dedup {fig['dedup']}; cluster start {r['start_wall_s']:.1f} s apart"),
        headline("--engine ray CPU", r["cpu_s"], "s", f"local pool, {fig['cpus']} workers", fig["ray_cpu_over_local"],
                 "every process of the cluster"),
    ]  # fmt: skip
    save_results(args.json, "ray", command_line("ray_bench.py", argv), at_start, heads, fig)
    return 0 if fig["same_answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
