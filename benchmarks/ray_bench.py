"""``convert --engine ray`` against the local pool, side by side in one run: what Ray costs on one machine, for both
Ray engines: ranks as Ray tasks (audiodata/pipeline/rayengine.py) and the streaming Ray Data pipeline (read tasks,
``process_batch`` as ``map_batches`` fused with our writer as a Datasink, merge on the driver:
audiodata/pipeline/raystream.py).

Converts the same corpus (default: the 2k-clip corpus convert_bench builds, cached in benchmarks/.cache/corpus-2000;
``--corpus benchmarks/.cache/mix-v2-10000`` is the 10k one of mix_corpus.py; ``--clips`` takes its first lines) on the
local pool of ``--cpus`` workers, then with each Ray engine on one local Ray cluster of ``--cpus`` CPUs, then on the
local pool again: the baseline is the mean of the two local runs, so a load that drifts during the run (or a page cache
warmer for later runs) weighs on both sides. Prints wall and CPU seconds of each and their ratios; the cluster's
start-up is timed apart (a fixed cost per run, not per clip). Ray's CPU is summed over every process of the cluster
(driver, GCS, raylet, workers and the pools they reaped), read before the cluster stops. Checks that each engine wrote
the local dataset (rows' summary and rejects.jsonl). The machine may be shared: the load average is printed next to
the ratios. Also prints the per-stage costs the scaling model (benchmarks/scaling_model.py) reads.

    python benchmarks/ray_bench.py --clips 400 --json out/ray.json
    python benchmarks/ray_bench.py --corpus benchmarks/.cache/mix-v2-10000 --json benchmarks/results/ray.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import (
    CACHE_DIR,
    TreeCPU,
    command_line,
    corpus_subset,
    headline,
    machine,
    ray_corpus_missing,
    same_dataset,
    save_results,
    sibling,
    use_checkout,
)

ENGINES = ("ranks", "stream")


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_checkout(strict=True)
    import audiodata
    from audiodata.dataset import ConvertedDataset
    from audiodata.pipeline.options import ConvertOptions
    from audiodata.pipeline.rayengine import convert_on_ray, shutdown, start
    from audiodata.pipeline.raystream import stream_on_ray

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        jsonl, media_root = corpus_subset(args.corpus, args.clips, work)
        opts = {"num_workers": args.cpus, "dedup": args.dedup, "val_ratio": 0.1, "media_root": media_root}
        stopwatch = sibling("convert_bench").Stopwatch
        with stopwatch() as before:
            local = audiodata.convert([str(jsonl)], work / "local", **opts)
        tracker = TreeCPU().__enter__()  # from the cluster's start to its stop: every process it ever ran
        tree_cpu_seconds = tracker.seconds
        t0, c0 = time.perf_counter(), tree_cpu_seconds()
        _, dashboard = start(None, num_cpus=args.cpus)
        t1, c1 = time.perf_counter(), tree_cpu_seconds()
        engines: dict[str, dict[str, Any]] = {}
        warm: dict[str, dict[str, float]] = {}

        def convert_with(engine: str, source: Path, out: Path, done_at: list[float]) -> Any:
            on_rank = lambda done, count: done_at.append(time.perf_counter())  # noqa: E731
            if engine == "ranks":
                return convert_on_ray([str(source)], out, options=ConvertOptions(**opts, num_shards=args.ranks), on_rank=on_rank)
            return stream_on_ray([str(source)], out, options=ConvertOptions(**opts, num_shards=args.pieces), on_rank=on_rank)

        try:
            if args.warmup:  # each engine once on a few clips: Ray's workers started and audiodata imported, timed apart
                (work / "warm").mkdir()
                small, _ = corpus_subset(args.corpus, args.warmup, work / "warm")
                for engine in args.engines:
                    t_a, c_a = time.perf_counter(), tree_cpu_seconds()
                    convert_with(engine, small, work / "warm" / engine, [])
                    warm[engine] = {"wall_s": time.perf_counter() - t_a, "cpu_s": tree_cpu_seconds() - c_a}
            order = [e for r in range(args.repeats) for e in (args.engines if r % 2 == 0 else args.engines[::-1])]
            for run_no, engine in enumerate(order):  # ABBA...: an engine's place in the run weighs on each alike
                out = work / f"{engine}-{run_no}"
                done_at: list[float] = []
                t_a, c_a = time.perf_counter(), tree_cpu_seconds()
                result = convert_with(engine, jsonl, out, done_at)
                t_b, c_b = time.perf_counter(), tree_cpu_seconds()
                merged = ConvertedDataset.open(out)
                fig = engines.setdefault(engine, {"runs": []})
                fig["runs"].append({"wall_s": t_b - t_a, "cpu_s": c_b - c_a})
                fig.update({
                    "wall_s": sum(r["wall_s"] for r in fig["runs"]) / len(fig["runs"]),
                    "cpu_s": sum(r["cpu_s"] for r in fig["runs"]) / len(fig["runs"]),
                    "ranks": len(list((out / "ranks").iterdir())),
                    "shards": len(merged.manifest.shards),
                    "rows": result.records_written,
                    "last_rank_done_s": (done_at[-1] - t_a) if done_at else None,
                    "merge_wall_s": (t_b - done_at[-1]) if done_at else None,
                    "same_answer": fig.get("same_answer", True) and same_dataset(work / "local", out),
                    "warmup": warm.get(engine),
                })  # fmt: skip
                shutil.rmtree(out, ignore_errors=True)  # the page cache and disk of a 10k-clip output, freed for the next
        finally:
            shutdown()
            tracker.__exit__()
        with stopwatch() as after:  # the local pool again: the baseline is the mean of one run before Ray and one after
            audiodata.convert([str(jsonl)], work / "local-again", **opts)
        local_sw = {"wall_s": (before.wall_s + after.wall_s) / 2, "cpu_s": (before.cpu_s + after.cpu_s) / 2}
        for fig in engines.values():
            fig["wall_over_local"] = fig["wall_s"] / local_sw["wall_s"]
            fig["cpu_over_local"] = fig["cpu_s"] / local_sw["cpu_s"]
            fig["wall_with_start_over_local"] = (fig["wall_s"] + t1 - t0) / local_sw["wall_s"]
        local_fig = {**local_sw, "runs": [{"wall_s": w.wall_s, "cpu_s": w.cpu_s} for w in (before, after)]}
        local_fig["cpu_ms_per_clip"] = 1000 * local_sw["cpu_s"] / max(local.clips, 1)
        local_fig["audio_seconds"] = local.audio_seconds
        first = engines[args.engines[0]]
        return {
            "clips": local.clips,
            "records": local.records_read,
            "rows": local.records_written,
            "cpus": args.cpus,
            "dedup": args.dedup,
            "local": local_fig,
            "start": {"wall_s": t1 - t0, "cpu_s": c1 - c0},
            "engines": engines,
            "dashboard": dashboard,
            # the first engine's figures under the names earlier results used (the README table reads these)
            "ray": {**first, "start_wall_s": t1 - t0, "start_cpu_s": c1 - c0},
            "ray_wall_over_local": first["wall_over_local"],
            "ray_cpu_over_local": first["cpu_over_local"],
            "same_answer": all(e["same_answer"] for e in engines.values()),
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


NAMES = {"ranks": "ranks as tasks", "stream": "streaming"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=CACHE_DIR / "corpus-2000", help="a convert_bench corpus (default: the 2k one)")
    p.add_argument("--clips", type=int, help="take the corpus's first N clips (default: all)")
    p.add_argument("--cpus", type=int, default=2, help="local pool workers, and the local Ray cluster's CPUs (default 2)")
    p.add_argument("--ranks", type=int, default=1, help="ranks of the ranks engine (default 1: one per cluster CPU)")
    p.add_argument("--pieces", type=int, default=1, help="pieces of the streaming engine (default 1: 4 per cluster CPU)")
    p.add_argument("--engines", default=",".join(ENGINES), help="which Ray engines, in this order (default ranks,stream)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each engine, in ABBA order (default 1)")
    p.add_argument("--warmup", type=int, default=50, help="clips of an untimed first run of each engine (default 50; 0: none)")
    p.add_argument("--dedup", choices=["off", "exact", "near"], default="exact", help="--dedup of both runs (default exact)")
    p.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or any(e not in ENGINES for e in args.engines):
        p.error(f"--engines takes a comma list of {', '.join(ENGINES)}")
    if ray_corpus_missing(args.corpus):
        return 2
    at_start = machine()
    fig = run(args)
    print(f"load average at start {at_start['load_average']}, at end {fig['load_average_end']} ({at_start['cores']} cores)")
    print(f"{fig['clips']} clips, {fig['records']} records, {fig['cpus']} CPUs, --dedup {fig['dedup']}")
    for k, run_ in zip(("before", "after"), fig["local"]["runs"], strict=True):
        print(f"local pool ({k:6s})          wall {run_['wall_s']:8.1f} s   cpu {run_['cpu_s']:8.1f} s")
    print(f"ray cluster start            wall {fig['start']['wall_s']:8.1f} s   cpu {fig['start']['cpu_s']:8.1f} s")
    for name, e in fig["engines"].items():
        label = f"{NAMES[name]}, {e['ranks']} {'ranks' if name == 'ranks' else 'pieces'}"
        print(f"{label:28s} wall {e['wall_s']:8.1f} s   cpu {e['cpu_s']:8.1f} s   {e['shards']} shards   "
              f"wall {e['wall_over_local']:.3f}x  cpu {e['cpu_over_local']:.3f}x the pool  "
              f"(merge {e['merge_wall_s'] or 0:.1f} s)  same answer: {e['same_answer']}")  # fmt: skip
        print("  each run: " + ", ".join(f"wall {r['wall_s']:.1f} s cpu {r['cpu_s']:.1f} s" for r in e["runs"])
              + (f"; warm-up ({args.warmup} clips, apart) wall {e['warmup']['wall_s']:.1f} s cpu {e['warmup']['cpu_s']:.1f} s"
                 if e.get("warmup") else ""))  # fmt: skip
    hours = fig["local"]["audio_seconds"] / 3600
    print(f"local pool: {fig['local']['cpu_ms_per_clip']:.2f} ms CPU a clip, {hours:.2f} h of audio")
    print(f"dashboard: {fig['dashboard'] or 'none (ray[data] alone runs no dashboard; ray[default] adds it)'}")
    heads = []
    for name, e in fig["engines"].items():
        what = "ranks as Ray tasks" if name == "ranks" else "streaming Ray Data"
        heads += [
            headline(f"--engine ray wall ({what})", e["wall_s"], "s", f"local pool, {fig['cpus']} workers", e["wall_over_local"],
                     f"local Ray cluster of {fig['cpus']} CPUs, {e['ranks']} {'ranks' if name == 'ranks' else 'pieces'}, "
                     f"{fig['records']} records, --dedup {fig['dedup']}; cluster start {fig['start']['wall_s']:.1f} s apart"),
            headline(f"--engine ray CPU ({what})", e["cpu_s"], "s", f"local pool, {fig['cpus']} workers", e["cpu_over_local"],
                     "every process of the cluster"),
        ]  # fmt: skip
    save_results(args.json, "ray", command_line("ray_bench.py", argv), at_start, heads, fig)
    return 0 if fig["same_answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
