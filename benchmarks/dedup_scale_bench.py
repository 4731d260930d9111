#!/usr/bin/env python
"""The near-duplicate index from 10k to 1M clips, on synthetic fingerprints: resolve time, candidates and
comparisons per clip, and memory, each printed as a ratio against the smallest count of the same run.

A million real clips would take ~50 CPU minutes of fingerprinting alone (benchmarks/dedup_bench.py
measures that, and the index, on real espeak-ng speech up to 100k clips). Here fingerprints are made
from a pool of real ones instead, so the index sees what it would see, at any scale, in seconds:

* pool: ``--pool`` distinct clips of dedup_bench's generator (real speech, 1-5 s), fingerprinted once
  and cached in ``benchmarks/.cache``.
* distinct clip: the frames and voicing of a random pool clip with fresh random bits (an unrelated clip:
  bit error rate ~0.5, never a match), and a sketch whose every 16-bit band is that band of another
  random pool clip with each bit flipped with probability ``--flip`` (0.09: bands recur as often as in
  real speech, so candidates per clip at 10k come out near what dedup_bench's 10k real clips give, ~3.2;
  the run prints them). Whole sketches are as far apart as unrelated speech (~128 bits), with a thinner
  tail below 64: real speech has a few more unrelated clips within the sketch filter (dedup_bench
  counts them), so comparisons here are mostly the planted copies'.
* near copy (~10%): an earlier clip with 2-10% of its bits flipped (similarity 0.90-0.98) and 4-40 sketch
  bits flipped (dedup_bench's real near copies: 5-55).
* exact copy (~5%): an earlier clip's PCM hash and fingerprint.

Each count runs in a fresh process (its peak RSS its own); generation is timed apart and excluded.

Usage::

    python benchmarks/dedup_scale_bench.py [--clips 10000,100000,1000000] [--sample-data] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _shared import REPO_ROOT, command_line, headline, machine, save_results, use_checkout

use_checkout()
from dedup_bench import CACHE_DIR, DISTINCT, EXACT, NEAR, GenConfig, _hwm, _rss, build_source, make_clip, plan  # noqa: E402

from audiodata.audio.decode import decode  # noqa: E402
from audiodata.audio.load import AudioSource  # noqa: E402
from audiodata.audio.transform import to_pcm16  # noqa: E402
from audiodata.dedup import index as dedup_index  # noqa: E402
from audiodata.dedup.fingerprint import RATE, Fingerprint, fingerprint  # noqa: E402
from audiodata.dedup.index import ClipIndex  # noqa: E402

POOL_VERSION = 1
DEFAULT_CLIPS = "10000,100000,1000000"
DEFAULT_POOL = 2000
DEFAULT_FLIP = 0.09
NEAR_BER = (0.02, 0.10)
NEAR_SKETCH_BITS = (4, 32)
MIB = 1 << 20
TARGET_BYTES_1M = 2 << 30  # 1M clips in under 2 GiB


# --------------------------------------------------------------------------------------------
# Pool of real fingerprints
# --------------------------------------------------------------------------------------------


@dataclass
class Pool:
    bits_len: np.ndarray  # frames per clip
    voiced: list[np.ndarray]
    sketches: np.ndarray  # (n, 16) uint16


def pool_path(cache: Path, size: int, seed: int, sample: bool) -> Path:
    return cache / f"dedup-pool-v{POOL_VERSION}-{'sample' if sample else 'speech'}-{size}-{seed}.npz"


def sample_source() -> np.ndarray:
    """The repository's sample_data speech (WAV/FLAC, real espeak-ng) at 16 kHz int16, end to end: a small
    source that needs no corpus build (the CI smoke uses it)."""
    files = sorted(p for p in (REPO_ROOT / "sample_data" / "audio").glob("clip*") if p.suffix in (".wav", ".flac"))
    return np.concatenate([to_pcm16(decode(AudioSource(path=f, name=f.name), 3600.0), RATE) for f in files])


def make_pool(path: Path, size: int, seed: int, sample: bool) -> None:
    """Fingerprints of ``size`` distinct clips of dedup_bench's generator, cached at ``path``."""
    if path.exists():
        return
    source = sample_source() if sample else np.load(build_source(os.cpu_count() or 1), mmap_mode="r")
    cfg = GenConfig(seed)
    prints: list[Fingerprint] = []
    i = 0
    while len(prints) < size:
        if plan(cfg, i)[0] == DISTINCT:
            prints.append(fingerprint(make_clip(source, cfg, i), phases=False))
        i += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        lengths=np.array([p.bits.size for p in prints]),
        voiced=np.concatenate([p.voiced for p in prints]),
        sketches=np.stack([p.sketch for p in prints]),
    )
    tmp.replace(path)  # complete or absent


def load_pool(path: Path) -> Pool:
    data = np.load(path)
    lengths = data["lengths"]
    return Pool(lengths, np.split(data["voiced"], np.cumsum(lengths)[:-1]), data["sketches"])


# --------------------------------------------------------------------------------------------
# Synthetic stream
# --------------------------------------------------------------------------------------------


def synth(pool: Pool, cfg: GenConfig, flip: float, i: int) -> tuple[int, int, str, Fingerprint]:
    """(kind, root, PCM hash, fingerprint) of clip ``i``: a pure function of (seed, i)."""
    kind, parent, rng = plan(cfg, i)
    if kind == EXACT:
        _, root, digest, fp = synth(pool, cfg, flip, parent)
        return EXACT, root, digest, fp
    if kind == NEAR:
        _, root, _, fp = synth(pool, cfg, flip, parent)
        ber = rng.uniform(*NEAR_BER)
        mask = np.packbits(rng.random(32 * fp.bits.size) < ber, bitorder="little").view("<u4")
        sketch = fp.sketch.copy()
        for bit in rng.choice(256, int(rng.integers(*NEAR_SKETCH_BITS, endpoint=True)), replace=False).tolist():
            sketch[bit // 16] ^= np.uint16(1 << (bit % 16))
        return NEAR, root, _digest(cfg.seed, i), Fingerprint(fp.bits ^ mask, fp.voiced, sketch, fp.seconds)
    r = int(rng.integers(len(pool.bits_len)))
    n = int(pool.bits_len[r])
    bands = pool.sketches[rng.integers(len(pool.bits_len), size=16), np.arange(16)]  # each band from another real clip
    flips = np.packbits(rng.random(256) < flip, bitorder="little").view("<u2")
    bits = rng.integers(0, 1 << 32, n, dtype=np.uint32)
    return DISTINCT, i, _digest(cfg.seed, i), Fingerprint(bits, pool.voiced[r], bands ^ flips, n * 0.016)


def _digest(seed: int, i: int) -> str:
    return hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=16).hexdigest()


# --------------------------------------------------------------------------------------------
# One clip count (fresh process)
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    clips: int
    gen_cpu_s: float = 0.0
    resolve_cpu_s: float = 0.0
    candidates: int = 0
    comparisons: int = 0
    base_rss: int = 0
    end_rss: int = 0
    peak_rss: int = 0
    index_nbytes: int = 0
    largest_bucket: int = 0
    planted: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    false_merges: int = 0

    def figures(self) -> dict[str, Any]:
        out = asdict(self)
        n = self.clips
        out.update(
            resolve_us_per_clip=self.resolve_cpu_s / n * 1e6,
            candidates_per_clip=self.candidates / n,
            comparisons_per_clip=self.comparisons / n,
            index_rss_bytes_per_clip=(self.end_rss - self.base_rss) / n,
            recall_near=self.found.get("near", 0) / max(1, self.planted.get("near", 0)),
            recall_exact=self.found.get("exact", 0) / max(1, self.planted.get("exact", 0)),
        )
        return out


def measure(n: int, pool_file: str, seed: int, flip: float) -> Result:
    pool = load_pool(Path(pool_file))
    cfg = GenConfig(seed)
    res = Result(n)
    root_of_cid: list[int] = []
    kinds = {DISTINCT: "distinct", NEAR: "near", EXACT: "exact"}
    planted = dict.fromkeys(kinds.values(), 0)
    found = dict.fromkeys(kinds.values(), 0)
    index = ClipIndex(near=True)
    res.base_rss = _rss()
    for i in range(n):
        t0 = time.thread_time()
        kind, root, digest, fp = synth(pool, cfg, flip, i)
        t1 = time.thread_time()
        cid, match = index.resolve(digest, fp)
        t2 = time.thread_time()
        res.gen_cpu_s += t1 - t0
        res.resolve_cpu_s += t2 - t1
        planted[kinds[kind]] += 1
        if match is None:
            root_of_cid.append(root)
        elif root_of_cid[cid] == root:
            found[kinds[kind]] += 1
        else:
            res.false_merges += 1
    res.end_rss = _rss()
    res.peak_rss = _hwm()
    res.candidates, res.comparisons = index.candidates, index.comparisons
    res.index_nbytes = index.prints.nbytes + index.buckets.nbytes
    res.largest_bucket = max(index.buckets.sizes(), default=0)
    res.planted, res.found = planted, found
    return res


def _child(args: tuple[Any, ...], conn: Any) -> None:
    try:
        conn.send(("ok", measure(*args)))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        conn.close()


def run_isolated(*args: Any) -> Result:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(args, send))
    proc.start()
    send.close()
    status, payload = recv.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"measuring {args[0]} clips failed: {payload}")
    return payload


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def report(results: list[Result]) -> dict[str, Any]:
    base = results[0].figures()
    header = (
        f"{'clips':>9} {'resolve us/clip':>15} {'x base':>6} {'candidates/clip':>15} {'x base':>6} {'compared/clip':>13} "
        f"{'x base':>6} {'index MiB':>9} {'RSS B/clip':>10} {'peak MiB':>8} {'recall near':>11} {'exact':>6} {'false':>5}"
    )
    print()
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for r in results:
        f = r.figures()
        ratios = {
            k: f[k] / base[k] if base[k] else float("nan")
            for k in ("resolve_us_per_clip", "candidates_per_clip", "comparisons_per_clip")
        }
        print(
            f"{r.clips:>9,} {f['resolve_us_per_clip']:>15.1f} {ratios['resolve_us_per_clip']:>6.2f} "
            f"{f['candidates_per_clip']:>15.2f} {ratios['candidates_per_clip']:>6.2f} {f['comparisons_per_clip']:>13.3f} "
            f"{ratios['comparisons_per_clip']:>6.2f} {r.index_nbytes / MIB:>9.1f} {f['index_rss_bytes_per_clip']:>10.0f} "
            f"{r.peak_rss / MIB:>8.1f} {f['recall_near']:>11.1%} {f['recall_exact']:>6.1%} {r.false_merges:>5}"
        )
        summary[str(r.clips)] = {**f, **{f"{k}_over_base": v for k, v in ratios.items()}}
    print()
    print(
        f"x base: the figure over the {results[0].clips:,}-clip run's, same invocation (CPU time of ClipIndex.resolve "
        "only, per clip; generation excluded). candidates: distinct clips drawn from the LSH buckets; compared: those "
        "within the sketch filter, verified by bit error rate. index MiB: the index's own arrays; RSS B/clip: the "
        "process's RSS growth over the pass (incl. the PCM-hash dict) per clip."
    )
    last = results[-1]
    if last.clips >= 1_000_000:
        verdict = "under" if last.peak_rss < TARGET_BYTES_1M * last.clips / 1_000_000 else "OVER"
        print(f"memory: {last.clips:,} clips peak {last.peak_rss / MIB:.0f} MiB, {verdict} the 2 GiB per 1M clips target")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--clips", default=DEFAULT_CLIPS, help=f"comma list of clip counts, smallest first (default {DEFAULT_CLIPS})")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pool", type=int, default=DEFAULT_POOL, help=f"real fingerprints to draw from (default {DEFAULT_POOL})")
    p.add_argument(
        "--flip",
        type=float,
        default=DEFAULT_FLIP,
        help=f"sketch bit flip probability of a distinct clip (default {DEFAULT_FLIP})",
    )
    p.add_argument("--sample-data", action="store_true", help="pool from sample_data/ speech (no corpus build)")
    p.add_argument("--cache", type=Path, default=CACHE_DIR, help=f"where the pool is cached (default {CACHE_DIR})")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    try:
        args.clip_counts = [int(c) for c in args.clips.split(",") if c.strip()]
    except ValueError:
        p.error(f"--clips: expected a comma list of integers, got {args.clips!r}")
    if not args.clip_counts or min(args.clip_counts) < 2:
        p.error("--clips: every count must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    at_start = machine()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    t0 = time.perf_counter()
    pool = pool_path(args.cache, args.pool, args.seed, args.sample_data)
    make_pool(pool, args.pool, args.seed, args.sample_data)
    print(
        f"pool: {args.pool} real fingerprints ({'sample_data' if args.sample_data else 'espeak-ng corpus'}, "
        f"{time.perf_counter() - t0:.1f} s); sketch flip {args.flip}; seed {args.seed}",
        flush=True,
    )
    results = []
    for n in args.clip_counts:
        t0 = time.perf_counter()
        results.append(run_isolated(n, str(pool), args.seed, args.flip))
        r = results[-1]
        print(
            f"{n:,} clips in {time.perf_counter() - t0:.1f} s "
            f"(generation {r.gen_cpu_s:.1f} CPU s, resolve {r.resolve_cpu_s:.1f})",
            flush=True,
        )
    summary = report(results)
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: "
            "absolute times are inflated; the ratios hold better"
        )
    if args.json:
        figures = {
            "config": {"seed": args.seed, "pool": args.pool, "flip": args.flip, "sample_data": args.sample_data},
            "index": {"near_threshold": dedup_index.NEAR_THRESHOLD, "max_bucket": dedup_index.MAX_BUCKET},
            "results": summary,
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "numpy": np.__version__,
                "load": os.getloadavg()[0],
            },
        }
        first, last = summary[min(summary, key=int)], summary[max(summary, key=int)]
        small, big = min(summary, key=int), max(summary, key=int)
        heads = [headline(
            f"dedup index resolve, {int(big):,} synthetic fingerprints", last["resolve_us_per_clip"], "us/clip (CPU)",
            f"the same at {int(small):,} clips, same run", last["resolve_us_per_clip_over_base"],
            f"ratio: per clip big/small (flat: close to 1); candidates/clip {first['candidates_per_clip']:.2f} -> "
            f"{last['candidates_per_clip']:.2f}",
        )]  # fmt: skip
        save_results(args.json, "dedup_scale", command_line("dedup_scale_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
