"""Ranks + merge against the local pool, side by side in one run: what splitting a conversion into N ranks costs.

Converts the same corpus (default: the 2k-clip corpus convert_bench builds, cached in benchmarks/.cache/corpus-2000;
``--clips`` takes its first lines) three ways: ``convert`` on the local pool; the same as N ranks run one after
another here (each with the same workers: on N machines they would run at once); ``merge`` of those ranks. Prints
CPU seconds (this process and its workers) and wall time of each, the ranks' CPU over the local run's (the cost of
the split: each rank's pool start-up, its prefix scan of a split JSONL, its dedup keys), the merge's cost per shard
and per row, the dedup keys' bytes per clip, and the wall time N machines would take (the slowest rank + merge).
Checks that the merged dataset is the local one (rows' summary, rejects.jsonl). Ratios are what to compare: the
machine may be shared (its load average is printed next to them).

    python benchmarks/ranks_bench.py --clips 400 --num-shards 4 --dedup near --json out/ranks.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, command_line, corpus_subset, headline, machine, same_dataset, save_results, sibling, use_checkout


def _stopwatch() -> Any:
    return sibling("convert_bench").Stopwatch()


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_checkout(strict=True)
    import audiodata
    from audiodata.dataset import ConvertedDataset

    work = Path(tempfile.mkdtemp(prefix="ranks-bench-"))
    try:
        jsonl, media_root = corpus_subset(args.corpus, args.clips, work)
        opts = {"num_workers": args.num_workers, "dedup": args.dedup, "val_ratio": 0.1, "media_root": media_root}
        with _stopwatch() as local_sw:
            local = audiodata.convert([str(jsonl)], work / "local", **opts)
        ranks = []
        for i in range(args.num_shards):
            with _stopwatch() as sw:
                r = audiodata.convert([str(jsonl)], work / "ranked", num_shards=args.num_shards, shard_index=i, **opts)
            ranks.append(
                {"rank": i, "records": r.records_read, "rows": r.records_written, "wall_s": sw.wall_s, "cpu_s": sw.cpu_s}
            )
        keys = sum(p.stat().st_size for p in (work / "ranked" / "ranks").rglob("dedup-keys.jsonl"))
        with _stopwatch() as merge_sw:
            merged = audiodata.merge(work / "ranked")
        b = ConvertedDataset.open(work / "ranked")
        same = same_dataset(work / "local", work / "ranked")
        rank_cpu = sum(r["cpu_s"] for r in ranks)
        shards = len(b.manifest.shards)
        return {
            "clips": local.clips,
            "records": local.records_read,
            "num_shards": args.num_shards,
            "num_workers": args.num_workers,
            "dedup": args.dedup,
            "local": {"wall_s": local_sw.wall_s, "cpu_s": local_sw.cpu_s},
            "ranks": ranks,
            "merge": {"wall_s": merge_sw.wall_s, "cpu_s": merge_sw.cpu_s, "shards": shards, "rows": merged.records_written},
            "ranks_cpu_over_local": rank_cpu / local_sw.cpu_s,
            "ranks_and_merge_cpu_over_local": (rank_cpu + merge_sw.cpu_s) / local_sw.cpu_s,
            "merge_ms_per_shard": 1000 * merge_sw.wall_s / max(shards, 1),
            "merge_us_per_row": 1e6 * merge_sw.wall_s / max(merged.records_written, 1),
            "merge_cpu_over_local": merge_sw.cpu_s / local_sw.cpu_s,
            "dedup_key_bytes_per_row": keys / max(sum(r["rows"] for r in ranks), 1),  # every row a rank wrote is keyed
            "duplicates": merged.records_duplicate,
            "n_machines_wall_s": max(r["wall_s"] for r in ranks) + merge_sw.wall_s,
            "same_answer": same,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=CACHE_DIR / "corpus-2000", help="a convert_bench corpus (default: the 2k one)")
    p.add_argument("--clips", type=int, help="take the corpus's first N clips (default: all)")
    p.add_argument("--num-shards", type=int, default=4, help="ranks (default 4)")
    p.add_argument("--num-workers", type=int, default=2, help="workers of the local run and of each rank (default 2)")
    p.add_argument("--dedup", choices=["off", "exact", "near"], default="near", help="--dedup of every run (default near)")
    p.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if not (args.corpus / "corpus.jsonl").is_file():
        print(f"{args.corpus}: no corpus.jsonl; build one with: python benchmarks/convert_bench.py --corpus {args.corpus}")
        return 2
    at_start = machine()
    fig = run(args)
    print(f"load average at start {at_start['load_average']}, at end {fig['load_average_end']} ({at_start['cores']} cores)")
    print(f"{fig['clips']} clips, {fig['num_shards']} ranks x {fig['num_workers']} workers, --dedup {fig['dedup']}")
    print(f"local pool         wall {fig['local']['wall_s']:8.1f} s   cpu {fig['local']['cpu_s']:8.1f} s")
    for r in fig["ranks"]:
        print(f"rank {r['rank']:<3} {r['records']:6d} rec wall {r['wall_s']:8.1f} s   cpu {r['cpu_s']:8.1f} s")
    m = fig["merge"]
    print(f"merge {m['shards']:4d} shards  wall {m['wall_s']:8.1f} s   cpu {m['cpu_s']:8.1f} s")
    print(f"ranks cpu / local cpu            {fig['ranks_cpu_over_local']:.3f}")
    print(f"(ranks + merge) cpu / local cpu  {fig['ranks_and_merge_cpu_over_local']:.3f}")
    print(f"merge: {fig['merge_ms_per_shard']:.1f} ms per shard, {fig['merge_us_per_row']:.0f} us per row, "
          f"{fig['merge_cpu_over_local']:.3f} of the local run's cpu")  # fmt: skip
    print(f"dedup keys: {fig['dedup_key_bytes_per_row']:.0f} bytes per row a rank wrote; {fig['duplicates']} duplicates dropped")
    n, wall = fig["num_shards"], fig["local"]["wall_s"]
    print(f"on {n} machines: ~{fig['n_machines_wall_s']:.1f} s wall (slowest rank + merge) vs {wall:.1f} s on one")
    print(f"same answer as the local run: {fig['same_answer']}")
    heads = [
        headline("ranks + merge CPU", fig["ranks_and_merge_cpu_over_local"], "x local", "local pool, same workers",
                 fig["ranks_and_merge_cpu_over_local"],
                 f"{fig['num_shards']} ranks, {fig['records']} records, --dedup {fig['dedup']}"),
        headline("merge CPU", m["cpu_s"], "s", "local pool CPU", fig["merge_cpu_over_local"],
                 f"{m['shards']} shards, {fig['duplicates']} duplicates dropped across ranks"),
    ]  # fmt: skip
    save_results(args.json, "ranks", command_line("ranks_bench.py", argv), at_start, heads, fig)
    return 0 if fig["same_answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
