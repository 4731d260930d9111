"""Peak memory of `audiodata convert` on a corpus and on the same corpus 10x larger.

The worst case for memory is one big JSON *array* with every clip inline as base64,
so that is what this builds. Each run is a separate process tree; its resident set
(the main process plus its worker processes) is sampled from /proc every 20 ms.
Prints the two peaks and their ratio: bounded memory means a ratio close to 1.

    python benchmarks/memory_bench.py [--records 400] [--factor 10] [--num-workers 2]

``--clips 2000,20000`` measures the common case instead: JSONL naming clip files, the WAV/FLAC
16-48 kHz corpora of ``convert_bench`` (built in minutes by ``mix_corpus``, cached in
``benchmarks/.cache/mix-v2-N`` or under ``--corpus-root``), one convert per size.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _shared import command_line, headline, machine, save_results


def make_corpus(path: Path, records: int, seconds: float) -> float:
    """A JSON array of MiniCPM records with inline base64 WAV (44.1 kHz stereo), returns MB."""
    rng = np.random.default_rng(0)
    rate = 44100
    clips = []
    for i in range(16):  # 16 distinct clips, reused: building is not what we measure
        t = np.arange(int(seconds * rate)) / rate
        x = (0.2 * np.sin(2 * np.pi * (200 + 30 * i) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, np.stack([x, x], axis=1), rate, format="WAV", subtype="PCM_16")
        clips.append(base64.b64encode(buf.getvalue()).decode())
    with open(path, "w") as fh:
        fh.write("[\n")
        for i in range(records):
            rec = {"id": f"r{i}", "audio": clips[i % len(clips)], "text": f"record number {i}"}
            fh.write(("," if i else "") + json.dumps(rec) + "\n")
        fh.write("]\n")
    return path.stat().st_size / 1e6


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (those alive now)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return pids


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run(corpus: Path, out: Path, workers: int) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "audiodata", "convert", str(corpus), "-o", str(out), "--overwrite", "--no-progress",
           "--num-workers", str(workers), "--max-shard-size", "64MB"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"convert failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return peak / 2**20, time.perf_counter() - start


def clip_corpora(sizes: list[int], root: Path | None) -> list[tuple[int, Path, float]]:
    """(clips, corpus.jsonl, audio hours) per size: the mix corpora, built where missing."""
    from _shared import CACHE_DIR
    from convert_bench import CORPUS_VERSION, build_bases
    from mix_corpus import build_mix_corpus

    bases = build_bases(CACHE_DIR / f"base-v{CORPUS_VERSION}", os.cpu_count() or 1)
    out = []
    for n in sizes:
        folder = (root or CACHE_DIR) / f"mix-v2-{n}"
        meta = build_mix_corpus(folder, n, os.cpu_count() or 1, bases)
        out.append((n, folder / "corpus.jsonl", meta["audio_seconds"] / 3600))
    return out


def main_clips(args: argparse.Namespace, argv: list[str] | None) -> None:
    """Peak RSS of convert over clip-file corpora of each size (``--clips``)."""
    at_start = machine()
    sizes = [int(x) for x in args.clips.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="audiodata-mem-") as tmp:
        for n, jsonl, hours in clip_corpora(sizes, args.corpus_root):
            peak, wall = run(jsonl, Path(tmp) / f"out-{n}", args.num_workers)
            rows.append((n, hours, peak, wall))
            load = os.getloadavg()[0]
            print(f"{n:>8} clips {hours:>7.2f} h  peak RSS {peak:>6.0f} MiB  {wall:>6.1f} s  load {load:.1f}", flush=True)
    small, big = rows[0], rows[-1]
    print(f"peak memory ratio ({big[0]:,} clips / {small[0]:,} clips) = {big[2] / small[2]:.2f} (bounded: close to 1)")
    figures = {"clip_rows": [{"clips": n, "audio_hours": h, "peak_rss_mib": p, "wall_s": w} for n, h, p, w in rows]}
    heads = [headline(
        f"convert peak RSS, {big[0]:,} clip files ({big[1]:.0f} h WAV/FLAC)", big[2], "MiB",
        f"the same at {small[0]:,} clips, same run", big[2] / small[2], "ratio: peak RSS big / small (bounded: close to 1)",
    )]  # fmt: skip
    save_results(args.json, "memory_clips", command_line("memory_bench.py", argv), at_start, heads, figures)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures and the headline ratio as JSON here")
    ap.add_argument("--clips", help="comma-separated clip-file corpus sizes (e.g. 2000,20000) instead of inline base64")
    ap.add_argument("--corpus-root", type=Path, help="with --clips: where the mix-v2-N corpora are (default benchmarks/.cache)")
    args = ap.parse_args(argv)
    if args.clips:
        main_clips(args, argv)
        return
    at_start = machine()
    with tempfile.TemporaryDirectory(prefix="audiodata-mem-") as tmp:
        rows = []
        for n in (args.records, args.records * args.factor):
            corpus = Path(tmp) / f"corpus-{n}.json"
            mb = make_corpus(corpus, n, args.seconds)
            peak, wall = run(corpus, Path(tmp) / f"out-{n}", args.num_workers)
            rows.append((n, mb, peak, wall))
            corpus.unlink()
    print(f"{'records':>8} {'input MB':>9} {'audio h':>8} {'peak RSS MiB':>13} {'wall s':>7}")
    for n, mb, peak, wall in rows:
        print(f"{n:>8} {mb:>9.0f} {n * args.seconds / 3600:>8.2f} {peak:>13.0f} {wall:>7.1f}")
    print(f"peak memory ratio ({args.factor}x corpus / 1x corpus) = {rows[1][2] / rows[0][2]:.2f} (bounded: close to 1)")
    figures = {"rows": [{"records": n, "input_mb": mb, "peak_rss_mib": peak, "wall_s": wall} for n, mb, peak, wall in rows]}
    big = rows[1]
    heads = [headline(
        f"convert peak RSS, {big[0]:,} records ({big[1]:.0f} MB of inline base64)", big[2], "MiB",
        f"the same at {rows[0][0]:,} records, same run", big[2] / rows[0][2], "ratio: peak RSS big / small (bounded: close to 1)",
    )]  # fmt: skip
    save_results(args.json, "memory", command_line("memory_bench.py", argv), at_start, heads, figures)


if __name__ == "__main__":
    main()
