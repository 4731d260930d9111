#!/usr/bin/env python
"""Near-duplicate index at scale: clips/s, similarity comparisons and peak memory for 10k and 100k clips.

Source material is real (synthetic) speech: the espeak-ng base utterances convert_bench caches in
``benchmarks/.cache/base-v1`` (built if missing), decoded with ``audiodata.audio.decode`` +
``to_pcm16`` to 16 kHz int16 and concatenated into one ~14 min source (cached as an .npy).
Clips are made on the fly from a seeded RNG, never stored, and each depends only on
(seed, clip number):

* distinct (~85%): 1-5 s (``--max-seconds``; 1-5 rather than 1-8 keeps the default run near 5 min
  on 2 cores) spliced from at least 6 pieces of 0.25 s +-30% taken at random offsets of the
  source, 2 ms fades at the joins, random level. 100k clips are ~350x the source, so pieces
  recur; with 3 longer pieces per clip, ~100 pairs at 100k shared 2 of 3 pieces in place and
  looked like copies (similarity 0.82-0.90). With 6+ short pieces that needs 4 pieces in place:
  vanishingly unlikely. Every match of clips with different originals counts as a false merge,
  and the report says how many of those pairs share >= 50% of their audio, aligned (replayed
  from the generator), i.e. would be the generator's fault rather than the index's.
* near copy (~10%): an earlier clip (regenerated) with a gain change of 1-6 dB, white noise at
  30-40 dB SNR and a time shift of up to +-50 ms (leading silence added or samples dropped).
* exact copy (~5%): an earlier clip, sample for sample.

Each clip count runs in a fresh process, so its peak RSS is its own. In it a pool of
``--workers`` processes generates, fingerprints (``audiodata.dedup.fingerprint``) and hashes
the clips, and the process itself feeds them in order to ``ClipIndex(near=True).resolve`` --
the shape of ``convert --dedup``: fingerprints in the workers, one sequential index. Only
fingerprints cross the pipe, so the index process never holds audio.

Both throughputs come from the same pass and are CPU-time rates per core (``thread_time``
around each call, BLAS pinned to one thread), so they compare even when the machine is shared:
fingerprint-only = clips / fingerprint CPU s (the floor), with index = clips / (fingerprint +
PCM hash + resolve CPU s). Generation is timed separately and excluded. The wall time of the
whole pass (pool start-up and generation included) is reported too, with a warning when other
processes took CPU meanwhile (convert_bench's Stopwatch).

Usage::

    python benchmarks/dedup_bench.py [--clips 10000,100000] [--seed 1] [--workers 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _shared import command_line, headline, machine, save_results, use_checkout

use_checkout()
from convert_bench import CACHE_DIR, CORPUS_VERSION, FOREIGN_CPU_WARN, Stopwatch, build_bases  # noqa: E402

from audiodata.audio.decode import decode  # noqa: E402
from audiodata.audio.load import AudioSource  # noqa: E402
from audiodata.audio.transform import pcm_hash, to_pcm16  # noqa: E402
from audiodata.dedup import index as dedup_index  # noqa: E402
from audiodata.dedup.fingerprint import HOP, RATE, Fingerprint, fingerprint  # noqa: E402
from audiodata.dedup.fingerprint import MAX_SHIFT as FP_MAX_SHIFT  # noqa: E402
from audiodata.dedup.index import ClipIndex  # noqa: E402

SOURCE_VERSION = 1
DEFAULT_CLIPS = "10000,100000"
DEFAULT_SEED = 1
MIN_SECONDS, MAX_SECONDS = 1.0, 5.0  # 1-8 s: ~6-7 min on 2 idle cores instead of ~5
NEAR_SHARE, EXACT_SHARE = 0.10, 0.05
PIECE_SECONDS = 0.25  # mean piece length of a distinct clip (and at least MIN_PIECES pieces)
PIECE_JITTER = 0.3  # piece lengths vary +-30% around the mean
MIN_PIECES = 6
INCIDENTAL = 0.5  # a false merge of clips sharing at least this much aligned audio is the generator's doing
FADE = int(0.002 * RATE)
MAX_SHIFT = int(0.050 * RATE)  # near copies: time shift, samples
GAIN_DB = (1.0, 6.0)  # near copies: |gain change|
SNR_DB = (30.0, 40.0)  # near copies: white noise relative to the clip's RMS
CHUNKSIZE = 64
HWM_EVERY = 256
PHASE_BINS = (32, 64, 96, HOP // 2)  # near copies: misalignment to the frame grid, samples

KINDS = ("distinct", "near", "exact")
DISTINCT, NEAR, EXACT = range(3)


# --------------------------------------------------------------------------------------------
# Source speech
# --------------------------------------------------------------------------------------------


def source_path() -> Path:
    return CACHE_DIR / f"dedup-source-v{SOURCE_VERSION}-base-v{CORPUS_VERSION}.npy"


def build_source(workers: int) -> Path:
    """Concatenate the espeak-ng base utterances (16 kHz int16) into one cached .npy."""
    path = source_path()
    if path.exists():
        return path
    bases = build_bases(CACHE_DIR / f"base-v{CORPUS_VERSION}", workers)
    pcm = [to_pcm16(decode(AudioSource(path=Path(b["path"]), name=b["path"]), 3600.0), RATE) for b in bases]
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, np.concatenate(pcm))
    tmp.replace(path)  # complete or absent
    return path


# --------------------------------------------------------------------------------------------
# Clip generator (runs in the pool workers)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenConfig:
    seed: int
    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS
    near_share: float = NEAR_SHARE
    exact_share: float = EXACT_SHARE


_SOURCE: np.ndarray | None = None
_CFG: GenConfig | None = None


def _init_worker(path: str, cfg: GenConfig) -> None:
    global _SOURCE, _CFG
    _SOURCE = np.load(path, mmap_mode="r")  # shared page cache, not a copy per worker
    _CFG = cfg


def plan(cfg: GenConfig, i: int) -> tuple[int, int, np.random.Generator]:
    """(kind, source clip or -1, rng for the rest) of clip ``i``: a pure function of (seed, i)."""
    rng = np.random.default_rng([cfg.seed, i])
    u = rng.random()
    if i > 0 and u < cfg.exact_share:
        return EXACT, int(rng.integers(0, i)), rng
    if i > 0 and u < cfg.exact_share + cfg.near_share:
        return NEAR, int(rng.integers(0, i)), rng
    return DISTINCT, -1, rng


def make_clip(src: np.ndarray, cfg: GenConfig, i: int) -> np.ndarray:
    """16 kHz int16 samples of clip ``i`` (copies regenerate their source clip)."""
    kind, parent, rng = plan(cfg, i)
    if kind == EXACT:
        return make_clip(src, cfg, parent)
    if kind == NEAR:
        return _perturb(make_clip(src, cfg, parent), rng, *near_params(rng))
    return _splice(src, cfg, rng)


def near_params(rng: np.random.Generator) -> tuple[float, int, float]:
    """(gain dB, shift in samples, SNR dB) of a near copy: the first draws after ``plan``."""
    gain_db = rng.uniform(*GAIN_DB) * rng.choice([-1.0, 1.0])
    return gain_db, int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1)), rng.uniform(*SNR_DB)


Piece = tuple[int, int, int]  # (start, end) in the clip, offset in the source; samples


def layout(cfg: GenConfig, rng: np.random.Generator, src_size: int) -> tuple[int, list[Piece]]:
    """Length and pieces of a distinct clip: the first draws after ``plan`` (the main process
    replays them to check whether two clips the index merged really share content)."""
    n = int(rng.uniform(cfg.min_seconds, cfg.max_seconds) * RATE)
    k = max(MIN_PIECES, round(n / (PIECE_SECONDS * RATE)))
    widths = rng.uniform(1 - PIECE_JITTER, 1 + PIECE_JITTER, k)
    cuts = np.rint(np.concatenate([[0.0], np.cumsum(widths)]) * (n / widths.sum())).astype(np.int64)
    cuts[-1] = n
    offsets = rng.integers(0, src_size - np.diff(cuts))
    return n, list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), offsets.tolist(), strict=True))


def _splice(src: np.ndarray, cfg: GenConfig, rng: np.random.Generator) -> np.ndarray:
    n, pieces = layout(cfg, rng, src.size)
    out = np.empty(n, np.float32)
    ramp = np.linspace(0.0, 1.0, FADE, dtype=np.float32)
    for a, b, o in pieces:
        seg = out[a:b]
        seg[:] = src[o : o + b - a]
        k = min(FADE, (b - a) // 2)
        seg[:k] *= ramp[:k]
        seg[b - a - k :] *= ramp[:k][::-1]
    out *= np.float32(10 ** (rng.uniform(-6.0, 0.0) / 20))
    return np.rint(out).astype(np.int16)


def shared_fraction(cfg: GenConfig, src_size: int, a: tuple[int, int], b: tuple[int, int]) -> float:
    """Share of the shorter clip's samples that two clips, each (distinct original, offset from it),
    have in common at the same time position (within the fingerprint's shift tolerance)."""
    (na, pa), (nb, pb) = (layout(cfg, plan(cfg, r)[2], src_size) for r, _ in (a, b))
    tol = FP_MAX_SHIFT * HOP
    shared = 0
    for x0, x1, o in pa:
        for y0, y1, q in pb:
            if abs((x0 + a[1] - o) - (y0 + b[1] - q)) <= tol:
                shared += max(0, min(o + x1 - x0, q + y1 - y0) - max(o, q))
    return shared / min(na, nb)


def _perturb(pcm: np.ndarray, rng: np.random.Generator, gain_db: float, shift: int, snr_db: float) -> np.ndarray:
    x = pcm.astype(np.float32) * np.float32(10 ** (gain_db / 20))
    x = np.concatenate([np.zeros(shift, np.float32), x]) if shift > 0 else x[-shift:]
    rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
    x += rng.standard_normal(x.size, dtype=np.float32) * np.float32(rms * 10 ** (-snr_db / 20))
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Item:
    """What a worker sends back: a fingerprint and a hash, never the audio."""

    clip: int
    kind: int
    parent: int
    shift: int  # near copies: samples of delay relative to the parent (negative: samples dropped)
    seconds: float
    pcm_hash: str
    fp: Fingerprint
    gen_s: float
    fp_s: float
    hash_s: float
    hwm: int  # the worker's peak RSS so far, bytes (sampled every HWM_EVERY clips, else 0)


def _work(i: int) -> Item:
    assert _SOURCE is not None and _CFG is not None
    t0 = time.thread_time()
    pcm = make_clip(_SOURCE, _CFG, i)
    t1 = time.thread_time()
    fp = fingerprint(pcm)
    t2 = time.thread_time()
    digest = pcm_hash(pcm)
    t3 = time.thread_time()
    kind, parent, rng = plan(_CFG, i)
    shift = near_params(rng)[1] if kind == NEAR else 0
    hwm = _hwm() if i % HWM_EVERY == 0 else 0
    return Item(i, kind, parent, shift, pcm.size / RATE, digest, fp, t1 - t0, t2 - t1, t3 - t2, hwm)


# --------------------------------------------------------------------------------------------
# One clip count (runs in a fresh process)
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    clips: int
    workers: int
    audio_seconds: float = 0.0
    wall_s: float = 0.0
    gen_cpu_s: float = 0.0
    fp_cpu_s: float = 0.0
    hash_cpu_s: float = 0.0
    resolve_cpu_s: float = 0.0
    comparisons: int = 0
    stored: int = 0
    fp_bytes: int = 0
    base_rss: int = 0
    end_rss: int = 0
    peak_rss: int = 0
    worker_peak_rss: int = 0
    buckets: int = 0
    max_bucket: int = 0
    degenerate_buckets: int = 0
    foreign_cpu_share: float | None = None
    user_cpu_s: float = 0.0  # the whole pass, index process and workers: user and kernel CPU
    sys_cpu_s: float = 0.0
    planted: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)  # matched to the right original
    wrong: dict[str, int] = field(default_factory=dict)  # matched, to a different original
    match_kinds: dict[str, int] = field(default_factory=dict)  # of planted copies found: exact / near
    phase_planted: list[int] = field(default_factory=lambda: [0] * len(PHASE_BINS))  # near copies per misalignment bin
    phase_found: list[int] = field(default_factory=lambda: [0] * len(PHASE_BINS))
    #: near copies found, by sketch distance (8-bit bins) and shared LSH bands (1, or "+" for more)
    near_by_sketch: dict[str, int] = field(default_factory=dict)
    incidental: int = 0  # false merges of clips that share >= INCIDENTAL of their audio (generator overlap)
    false_merge_examples: list[dict[str, Any]] = field(default_factory=list)  # the first few, for diagnosis

    @property
    def fp_rate(self) -> float:
        return self.clips / self.fp_cpu_s

    @property
    def fp_realtime(self) -> float:
        """Seconds of audio fingerprinted per CPU second (target: >= 1000)."""
        return self.audio_seconds / self.fp_cpu_s

    @property
    def index_rate(self) -> float:
        return self.clips / (self.fp_cpu_s + self.hash_cpu_s + self.resolve_cpu_s)

    @property
    def all_pairs(self) -> int:
        return self.clips * (self.clips - 1) // 2

    @property
    def false_merges(self) -> int:
        return sum(self.wrong.values())

    def recall(self, kind: str) -> float | None:
        n = self.planted.get(kind, 0)
        return self.found.get(kind, 0) / n if n else None

    def figures(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            audio_hours=self.audio_seconds / 3600,
            fp_clips_per_cpu_s=self.fp_rate,
            fp_x_realtime=self.fp_realtime,
            sys_share=self.sys_cpu_s / max(1e-9, self.user_cpu_s + self.sys_cpu_s),
            index_clips_per_cpu_s=self.index_rate,
            index_over_fp=self.index_rate / self.fp_rate,
            wall_clips_per_s=self.clips / self.wall_s,
            resolve_us_per_clip=self.resolve_cpu_s / self.clips * 1e6,
            all_pairs=self.all_pairs,
            comparisons_over_all_pairs=self.comparisons / self.all_pairs if self.all_pairs else 0.0,
            fp_bytes_per_clip=self.fp_bytes / self.clips,
            index_rss_bytes_per_clip=(self.end_rss - self.base_rss) / self.clips,
            audio_bytes_per_clip=self.audio_seconds * RATE * 2 / self.clips,
            recall_near=self.recall("near"),
            recall_exact=self.recall("exact"),
            recall_near_by_misalignment={
                f"{lo}-{hi} samples": (f / n if n else None)
                for lo, hi, n, f in zip((0, *PHASE_BINS[:-1]), PHASE_BINS, self.phase_planted, self.phase_found, strict=True)
            },
            false_merges=self.false_merges,
        )
        return out


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int:
    """Peak RSS of this process image, bytes. Unlike getrusage's ru_maxrss it starts afresh at exec,
    so a spawned process does not inherit its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _phase_bin(offset: int) -> int:
    """Bin of a time offset's distance to the fingerprint's frame grid (multiples of HOP)."""
    d = abs((offset + HOP // 2) % HOP - HOP // 2)
    return next(k for k, edge in enumerate(PHASE_BINS) if d <= edge)


def measure(n: int, workers: int, cfg: GenConfig, source: str) -> Result:
    """Generate + fingerprint ``n`` clips in a pool and resolve them, in order, in one ClipIndex."""
    res = Result(n, workers)
    ctx = mp.get_context("spawn")
    root = np.empty(n, np.int64)  # ground truth: the original each clip is a copy of (itself if distinct)
    offset = np.empty(n, np.int64)  # ... and its time offset from that original, samples
    cid_clip: list[int] = []  # index clip id -> the clip number that created it
    planted = dict.fromkeys(KINDS, 0)
    found = dict.fromkeys(KINDS, 0)
    wrong = dict.fromkeys(KINDS, 0)
    match_kinds = {"exact": 0, "near": 0}
    index = ClipIndex(near=True)
    src_size = int(np.load(source, mmap_mode="r").size)
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(source, cfg))
    res.base_rss = _rss()
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    with Stopwatch() as sw:
        for item in pool.imap(_work, range(n), chunksize=CHUNKSIZE):
            t0 = time.thread_time()
            cid, match = index.resolve(item.pcm_hash, item.fp)
            res.resolve_cpu_s += time.thread_time() - t0
            i, kind = item.clip, KINDS[item.kind]
            root[i] = i if item.kind == DISTINCT else root[item.parent]
            offset[i] = 0 if item.kind == DISTINCT else offset[item.parent] + item.shift
            planted[kind] += 1
            ok = match is not None and bool(root[cid_clip[cid]] == root[i])
            if match is None:
                cid_clip.append(i)
            elif ok:
                found[kind] += 1
                match_kinds[match.kind] += 1
                if match.kind == "near":  # how close in sketch the copies the LSH filter let through were
                    kept = index.prints.get(cid)
                    assert kept is not None
                    d = int(np.bitwise_count(kept.sketch ^ item.fp.sketch).sum())
                    bands = int((kept.sketch == item.fp.sketch).sum())
                    key = f"{min(d // 8 * 8, 64)}{'+' if bands > 1 else '1'}"
                    res.near_by_sketch[key] = res.near_by_sketch.get(key, 0) + 1
            else:
                wrong[kind] += 1
                other = cid_clip[cid]
                shared = shared_fraction(cfg, src_size, (int(root[i]), int(offset[i])), (int(root[other]), int(offset[other])))
                res.incidental += shared >= INCIDENTAL
                if len(res.false_merge_examples) < 25:
                    res.false_merge_examples.append(
                        {
                            "clip": i,
                            "kind": kind,
                            "matched_clip": other,
                            "similarity": match.similarity,
                            "shared": round(shared, 3),
                        }
                    )
            if item.kind == NEAR:
                k = _phase_bin(int(offset[i]))
                res.phase_planted[k] += 1
                res.phase_found[k] += ok
            res.worker_peak_rss = max(res.worker_peak_rss, item.hwm)
            res.audio_seconds += item.seconds
            res.gen_cpu_s += item.gen_s
            res.fp_cpu_s += item.fp_s
            res.hash_cpu_s += item.hash_s
        pool.close()
        pool.join()  # reap the workers so their CPU time counts as ours
    res.wall_s, res.foreign_cpu_share = sw.wall_s, sw.foreign_cpu_share
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    res.user_cpu_s = sum(a.ru_utime - b.ru_utime for a, b in zip(after, before, strict=True))
    res.sys_cpu_s = sum(a.ru_stime - b.ru_stime for a, b in zip(after, before, strict=True))
    res.end_rss = _rss()
    res.peak_rss = _hwm()
    res.comparisons = index.comparisons
    res.stored = len(index)
    res.fp_bytes = index.prints.nbytes
    sizes = index.buckets.sizes()
    res.buckets, res.max_bucket = len(sizes), max(sizes, default=0)
    res.degenerate_buckets = sum(s > dedup_index.MAX_BUCKET for s in sizes)
    res.planted, res.found, res.wrong, res.match_kinds = planted, found, wrong, match_kinds
    return res


def _child(n: int, workers: int, cfg: GenConfig, source: str, conn: Any) -> None:
    try:
        conn.send(("ok", measure(n, workers, cfg, source)))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        conn.close()


def run_isolated(n: int, workers: int, cfg: GenConfig, source: str) -> Result:
    """``measure`` in a fresh process, so its peak RSS belongs to this clip count alone."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(n, workers, cfg, source, send))
    proc.start()
    send.close()
    status, payload = recv.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"measuring {n} clips failed: {payload}")
    return payload


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

MIB = 1 << 20


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def report(results: list[Result]) -> None:
    header = (
        f"{'clips':>7} {'audio h':>7} {'wall s':>7} {'fp clips/s':>10} {'x rt':>5} {'+index':>7} {'ratio':>6} "
        f"{'comparisons':>11} {'of pairs':>8} {'peak MiB':>8} {'fp B/clip':>9} {'recall near':>11} "
        f"{'recall exact':>12} {'false merges':>12}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        f = r.figures()
        print(
            f"{r.clips:>7} {f['audio_hours']:>7.1f} {r.wall_s:>7.1f} {r.fp_rate:>10.0f} {r.fp_realtime:>5.0f} "
            f"{r.index_rate:>7.0f} "
            f"{f['index_over_fp']:>6.3f} {r.comparisons:>11,} {f['comparisons_over_all_pairs']:>8.2e} "
            f"{r.peak_rss / MIB:>8.1f} {f['fp_bytes_per_clip']:>9.0f} {_pct(r.recall('near')):>11} "
            f"{_pct(r.recall('exact')):>12} {r.false_merges:>12}"
        )
    print()
    print("clips/s are per core: clips / CPU seconds of the fingerprint calls (fp) and of fingerprint + PCM hash")
    print("+ ClipIndex.resolve (+index); ratio = +index / fp; x rt: seconds of audio fingerprinted per CPU second")
    print("(target >= 1000). Wall s: the whole pass (generation, pool of")
    print(f"{results[0].workers} workers and the sequential index), incl. generation.")
    for r in results:
        f = r.figures()
        print()
        print(f"{r.clips} clips ({r.planted['distinct']} distinct, {r.planted['near']} near copies, {r.planted['exact']} exact):")
        print(
            f"  CPU s: generate {r.gen_cpu_s:.1f} (excluded), fingerprint {r.fp_cpu_s:.1f}, hash {r.hash_cpu_s:.1f}, "
            f"resolve {r.resolve_cpu_s:.1f} ({f['resolve_us_per_clip']:.0f} us/clip); "
            f"pipeline {f['wall_clips_per_s']:.0f} clips/s wall"
        )
        print(
            f"  whole pass (index process + workers): user {r.user_cpu_s:.1f} s, kernel {r.sys_cpu_s:.1f} s "
            f"({f['sys_share']:.0%} in the kernel)"
        )
        print(
            f"  comparisons {r.comparisons:,} = {r.comparisons / r.clips:.2f}/clip vs all pairs {r.all_pairs:,}; "
            f"{r.buckets:,} LSH buckets, largest {r.max_bucket}, {r.degenerate_buckets} over MAX_BUCKET "
            f"({dedup_index.MAX_BUCKET}, skipped)"
        )
        print(
            f"  planted copies found: near {r.found['near']}/{r.planted['near']}, exact {r.found['exact']}/"
            f"{r.planted['exact']} (matched as exact {r.match_kinds['exact']}, near {r.match_kinds['near']}); "
            f"false merges: distinct {r.wrong['distinct']}, near {r.wrong['near']}, exact {r.wrong['exact']}, "
            f"of which {r.incidental} between clips sharing >= {INCIDENTAL:.0%} of their audio, aligned"
        )
        bins = ", ".join(
            f"{1000 * lo / RATE:g}-{1000 * hi / RATE:g} ms {f}/{n} ({_pct(f / n if n else None)})"
            for lo, hi, n, f in zip((0, *PHASE_BINS[:-1]), PHASE_BINS, r.phase_planted, r.phase_found, strict=True)
        )
        print(f"  near copies found by offset from the {1000 * HOP / RATE:g} ms frame grid: {bins}")
        hist = ", ".join(
            f"{lo}-{lo + 7}: {r.near_by_sketch.get(f'{lo}1', 0)}/{r.near_by_sketch.get(f'{lo}+', 0)}" for lo in range(0, 72, 8)
        )
        print(f"  near copies found by sketch distance, sharing 1 / more LSH bands: {hist}")
        print(
            f"  memory: RSS {r.base_rss / MIB:.1f} MiB before the pass, {r.end_rss / MIB:.1f} after, peak "
            f"{r.peak_rss / MIB:.1f} (index process), {r.worker_peak_rss / MIB:.1f} (largest worker); "
            f"{r.stored:,} fingerprints stored = {r.fp_bytes / MIB:.1f} MiB"
        )
        print(
            f"  per clip: fingerprint {f['fp_bytes_per_clip']:.0f} B, index RSS growth {f['index_rss_bytes_per_clip']:.0f} B, "
            f"audio (16 kHz int16) {f['audio_bytes_per_clip'] / 1024:.0f} KiB"
        )
    if len(results) >= 2:
        a, b = results[0], results[-1]
        grow = (b.end_rss - b.base_rss) / max(1, a.end_rss - a.base_rss)
        print()
        print(
            f"scaling {a.clips} -> {b.clips} clips (x{b.clips / a.clips:g}): index RSS growth x{grow:.1f}, "
            f"fingerprint bytes x{b.fp_bytes / max(1, a.fp_bytes):.1f}, comparisons x{b.comparisons / max(1, a.comparisons):.1f} "
            f"(all pairs x{b.all_pairs / max(1, a.all_pairs):.0f}), resolve us/clip "
            f"x{(b.resolve_cpu_s / b.clips) / max(1e-12, a.resolve_cpu_s / a.clips):.1f}; "
            f"the audio itself would be {b.audio_seconds * RATE * 2 / (1 << 30):.1f} GiB"
        )
    for r in results:
        share = r.foreign_cpu_share
        if share is not None and share > FOREIGN_CPU_WARN:
            print(
                f"warning: other processes took {share:.0%} of the CPUs during the {r.clips}-clip pass; its wall time "
                "is unreliable (CPU-time rates less so: they still share caches and memory bandwidth)"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--clips", default=DEFAULT_CLIPS, help=f"comma list of clip counts (default {DEFAULT_CLIPS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default {DEFAULT_SEED})")
    p.add_argument("--workers", type=int, default=2, help="fingerprinting processes (default 2; the index is one)")
    p.add_argument("--min-seconds", type=float, default=MIN_SECONDS, help=f"shortest clip (default {MIN_SECONDS:g})")
    p.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help=f"longest clip (default {MAX_SECONDS:g})")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    try:
        args.clip_counts = [int(c) for c in args.clips.split(",") if c.strip()]
    except ValueError:
        p.error(f"--clips: expected a comma list of integers, got {args.clips!r}")
    if not args.clip_counts or min(args.clip_counts) < 2:
        p.error("--clips: every count must be at least 2")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if not 0.1 <= args.min_seconds <= args.max_seconds:
        p.error("need 0.1 <= --min-seconds <= --max-seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    at_start = machine()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # read by the spawned processes: one core per worker, CPU times per call
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    source = build_source(os.cpu_count() or 1)
    src_seconds = np.load(source, mmap_mode="r").size / RATE
    cfg = GenConfig(args.seed, args.min_seconds, args.max_seconds)
    print(
        f"source: {src_seconds / 60:.1f} min of espeak-ng speech ({source.name}); clips {args.min_seconds:g}-"
        f"{args.max_seconds:g} s, {NEAR_SHARE:.0%} near / {EXACT_SHARE:.0%} exact copies; seed {args.seed}; "
        f"{args.workers} workers + 1 index process on {os.cpu_count()} CPUs",
        flush=True,
    )
    results: list[Result] = []
    for n in args.clip_counts:
        t0 = time.perf_counter()
        r = run_isolated(n, args.workers, cfg, str(source))
        share = "n/a" if r.foreign_cpu_share is None else f"{r.foreign_cpu_share:.0%}"
        print(f"{n} clips done in {time.perf_counter() - t0:.1f} s (other processes' CPU share: {share})", flush=True)
        results.append(r)
    report(results)
    if args.json:
        figures = {
            "config": {**asdict(cfg), "workers": args.workers, "source": str(source), "source_seconds": src_seconds},
            "index": {"near_threshold": dedup_index.NEAR_THRESHOLD, "max_bucket": dedup_index.MAX_BUCKET},
            "results": [r.figures() for r in results],
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "numpy": np.__version__,
            },
        }
        heads = []
        for r in results:
            f = r.figures()
            heads.append(headline(
                f"dedup fingerprint, {r.clips:,} clips", f["fp_clips_per_cpu_s"], "clips/CPU-s", "realtime (audio seconds)",
                f["fp_x_realtime"], "ratio: audio seconds fingerprinted per CPU second (target >= 1000)",
            ))  # fmt: skip
            heads.append(headline(
                f"dedup fingerprint + PCM hash + index, {r.clips:,} clips", f["index_clips_per_cpu_s"], "clips/CPU-s",
                "fingerprint alone, same run", f["index_over_fp"],
                f"ratio: clips per CPU second, all / fingerprint; resolve {f['resolve_us_per_clip']:.0f} us/clip",
            ))  # fmt: skip
        save_results(args.json, "dedup", command_line("dedup_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
