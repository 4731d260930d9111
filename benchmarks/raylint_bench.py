"""``lint`` and ``dedup`` with ``--engine ray`` against the local pool, side by side in one run: what Ray costs on one
machine, and what near dedup's band shuffle moves per clip (the scaling model's input).

Three measurements, each local pool / Ray / local pool again (the baseline is the mean of the two local runs, so a
drifting load weighs on both sides), on a local Ray cluster of ``--cpus`` CPUs started once and timed apart (with
its worker processes, each importing audiodata: what any cluster that has run something has):

- text-only lint of lint_bench's corpus (``--records``; cached in benchmarks/.cache/lint-text-v3-N): byte ranges read
  by Ray actors, merged on the driver;
- ``dedup --mode near`` and ``--mode exact`` of convert_bench's 2k-clip corpus (``--clips`` takes its first N): near is
  fingerprints as tasks, a shuffle by LSH key, pair verification, keep-first on the driver
  (audiodata/pipeline/raydedup.py).

Prints wall and CPU seconds (every process of the cluster: driver, GCS, raylet, workers), their ratios, the load
average, and per clip: fingerprint bytes, key bytes shuffled, candidate pairs, pairs verified. Checks that every Ray
report equals the local one, byte for byte.

    python benchmarks/raylint_bench.py --records 100000 --json benchmarks/results/raylint.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, command_line, headline, machine, ray_corpus_missing, save_results, sibling, use_checkout


def _measure(fn: Callable[[], Any], cpu: Callable[[], float]) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), cpu()
    out = fn()
    return out, time.perf_counter() - t0, cpu() - c0


def _side_by_side(name: str, local: Callable[[], Any], ray: Callable[[], Any], cpu: Callable[[], float]) -> dict[str, Any]:
    """local, ray, local again: times, ratios, and whether the reports are equal (as the JSON they are written as)."""
    a, aw, ac = _measure(local, cpu)
    r, rw, rc = _measure(ray, cpu)
    b, bw, bc = _measure(local, cpu)
    text = json.dumps(a.to_dict(), indent=2)
    same = json.dumps(r.to_dict(), indent=2) == text == json.dumps(b.to_dict(), indent=2)
    lw, lc = (aw + bw) / 2, (ac + bc) / 2
    fig = {"name": name, "local": {"wall_s": lw, "cpu_s": lc, "runs": [[aw, ac], [bw, bc]]}, "ray": {"wall_s": rw, "cpu_s": rc},
           "ray_wall_over_local": rw / lw, "ray_cpu_over_local": rc / lc, "same_answer": same,
           "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    return {**fig, "report": r}


def _warm(ray: Any, cpus: int) -> None:
    """Start every worker process and import audiodata there, as a cluster that has run anything has: a fixed cost
    of the cluster (timed with its start), not of the first run measured."""

    def ready() -> int:
        import audiodata.pipeline.lint  # noqa: F401

        time.sleep(0.5)  # held, so that each CPU starts a worker of its own
        return os.getpid()

    ray.get([ray.remote(num_cpus=1)(ready).remote() for _ in range(cpus)])


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_checkout(strict=True)
    from audiodata.pipeline.dedup import dedup
    from audiodata.pipeline.lint import lint
    from audiodata.pipeline.rayengine import shutdown, start

    cpu = sibling("ray_bench")._tree_cpu_seconds
    lb, cb = sibling("lint_bench"), sibling("convert_bench")
    text = lb.build_text_corpus(args.records, args.cpus, cb)
    parts = [p["path"] for p in text["parts"]]
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"raylint-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    jsonl, media_root = sibling("ranks_bench")._subset(args.corpus, args.clips, work)
    t0, c0 = time.perf_counter(), cpu()
    ray, dashboard = start(None, num_cpus=args.cpus)
    _warm(ray, args.cpus)
    start_fig = {"wall_s": time.perf_counter() - t0, "cpu_s": cpu() - c0}
    out: dict[str, Any] = {"cpus": args.cpus, "records": text["records"], "start": start_fig, "dashboard": dashboard}
    try:
        opts: dict[str, Any] = {"num_workers": args.cpus, "progress": False}
        lint_fig = _side_by_side(
            "lint text-only",
            lambda: lint(parts, audio=False, **opts),
            lambda: lint(parts, audio=False, engine="ray", **opts),
            cpu,
        )
        lint_fig.pop("report")
        out["lint"] = lint_fig
        dopts = {**opts, "media_root": media_root}
        for mode in ("near", "exact"):
            fig = _side_by_side(
                f"dedup {mode}",
                lambda mode=mode: dedup([str(jsonl)], mode=mode, **dopts),
                lambda mode=mode: dedup([str(jsonl)], mode=mode, engine="ray", **dopts),
                cpu,
            )
            report = fig.pop("report")
            summary = report.to_dict()["summary"]
            fig.update(records=summary["records"], clusters=summary["clusters"], duplicates=summary["duplicates"])
            if report.stages is not None:
                s = report.stages
                per = max(1, s.clips)
                fig["shuffle"] = {"blocks": s.blocks, "clips": s.clips, "fingerprint_bytes_per_clip": s.print_bytes / per,
                                  "key_bytes_per_clip": s.key_bytes / per, "pairs_per_clip": s.pairs / per,
                                  "verified_per_clip": s.verified / per, "degenerate": s.degenerate}  # fmt: skip
            out[f"dedup_{mode}"] = fig
    finally:
        shutdown()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    out["same_answer"] = all(out[k]["same_answer"] for k in ("lint", "dedup_near", "dedup_exact"))
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000, help="text-only lint records (lint_bench's corpus, default 100k)")
    p.add_argument("--corpus", type=Path, default=CACHE_DIR / "corpus-2000", help="a convert_bench corpus for dedup")
    p.add_argument("--clips", type=int, help="dedup the corpus's first N clips (default: all)")
    p.add_argument("--cpus", type=int, default=2, help="local pool workers, and the local Ray cluster's CPUs (default 2)")
    p.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if ray_corpus_missing(args.corpus):
        return 2
    at_start = machine()
    fig = run(args)
    print(f"load average at start {at_start['load_average']}, at end {fig['load_average_end']} ({at_start['cores']} cores)")
    st = fig["start"]
    print(f"local Ray cluster of {fig['cpus']} CPUs: start wall {st['wall_s']:.1f} s, cpu {st['cpu_s']:.1f} s")
    heads = []
    for key in ("lint", "dedup_near", "dedup_exact"):
        f = fig[key]
        (aw, ac), (bw, bc) = f["local"]["runs"]
        print(f"{f['name']}: local wall {aw:.1f} / {bw:.1f} s, cpu {ac:.1f} / {bc:.1f} s; ray wall {f['ray']['wall_s']:.1f} s, "
              f"cpu {f['ray']['cpu_s']:.1f} s; ray/local wall {f['ray_wall_over_local']:.3f}, cpu {f['ray_cpu_over_local']:.3f}; "
              f"same report: {f['same_answer']}; load {f['load_average']}")  # fmt: skip
        what = f"{fig['records']:,} records" if key == "lint" else f"{f['records']:,} records, {f['clusters']} clusters"
        heads.append(headline(f"{f['name']} --engine ray CPU", f["ray"]["cpu_s"], "s", f"local pool, {fig['cpus']} workers",
                              f["ray_cpu_over_local"], f"{what}; local Ray cluster of {fig['cpus']} CPUs, start apart; "
                              f"wall ratio {f['ray_wall_over_local']:.2f}; same report: {f['same_answer']}"))  # fmt: skip
    s = fig["dedup_near"].get("shuffle")
    if s:
        print(f"near dedup shuffle: {s['clips']} clips in {s['blocks']} blocks; per clip {s['fingerprint_bytes_per_clip']:.0f} B "
              f"fingerprint, {s['key_bytes_per_clip']:.0f} B keys shuffled, {s['pairs_per_clip']:.2f} candidate pairs, "
              f"{s['verified_per_clip']:.3f} verified")  # fmt: skip
    print(f"dashboard: {fig['dashboard'] or 'none (ray[data] alone runs no dashboard; ray[default] adds it)'}")
    print(f"same answer as the local runs: {fig['same_answer']}")
    save_results(args.json, "raylint", command_line("raylint_bench.py", argv), at_start, heads, fig)
    return 0 if fig["same_answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
