#!/usr/bin/env python
"""Conversion throughput benchmark: audiodata vs. a hand-rolled floor vs. the datasets recipe.

All three methods run in one invocation over the same corpus and the same worker count;
throughput is reported as x-realtime (total source audio seconds / wall seconds), and each
method's CPU seconds (this process and its workers) next to it: on a machine other processes
load, the CPU ratio is the steadier figure (the wall ratio follows it once the machine is quiet).

* floor      -- decode (soundfile; FFmpeg's libraries in process through PyAV, as audiodata does,
                for the containers libsndfile cannot read) + float32 mean downmix + soxr HQ
                resample to 16 kHz + FLAC (PCM_16) encode into memory, in a multiprocessing Pool
                of the same size. No JSON/Parquet work.
* audiodata  -- ``audiodata.convert(inputs=[jsonl], output=dir, num_workers=N, overwrite=True)``.
* datasets   -- load_dataset("json") + cast_column(Audio(16 kHz)) + map(re-encode to FLAC)
                + to_parquet, with a throw-away cache dir.

The corpus is real (synthetic) speech from espeak-ng, cached in ``benchmarks/.cache/``.

Usage::

    python benchmarks/convert_bench.py --clips 10000 --num-workers 2 --json benchmarks/results/convert.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import soxr
from _shared import CACHE_DIR, command_line, headline, machine, save_results, sibling, use_checkout
from mix_corpus import build_mix_corpus

TARGET_SR = 16_000

CORPUS_VERSION = 1
SEED = 20240601
N_SENTENCES = 100
N_BASE = 150
MIN_SECONDS, MAX_SECONDS = 2.0, 12.0
ESPEAK_SR = 22_050

# Extensions the floor decodes with soundfile (libsndfile); everything else goes through ffmpeg.
SOUNDFILE_EXTS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"})

TARGET_FLOOR_RATIO = 0.9  # issue 15
TARGET_DATASETS_RATIO = 5.0
FOREIGN_CPU_WARN = 0.05  # warn when other processes used more than this share of the CPUs


# --------------------------------------------------------------------------------------------
# Corpus: sentences
# --------------------------------------------------------------------------------------------

# fmt: off
SUBJECTS = [
    "the old fisherman", "my younger sister", "a tired engineer", "our neighbour", "the committee",
    "every student", "the small dog", "a curious child", "the pilot", "her grandfather",
    "the new manager", "two farmers", "the orchestra", "a quiet librarian", "the baker",
    "the mayor", "a young doctor", "his best friend", "the tour guide", "the night nurse",
]
VERBS = [  # (past, base)
    ("repaired", "repair"), ("painted", "paint"), ("carried", "carry"), ("found", "find"),
    ("sold", "sell"), ("borrowed", "borrow"), ("cleaned", "clean"), ("described", "describe"),
    ("ordered", "order"), ("delivered", "deliver"), ("noticed", "notice"), ("packed", "pack"),
    ("opened", "open"), ("photographed", "photograph"), ("forgot", "forget"), ("moved", "move"),
]
OBJECTS = [
    "the broken bicycle", "a wooden chair", "three heavy boxes", "the morning newspaper",
    "a letter from Paris", "the kitchen window", "an old umbrella", "the blue notebook",
    "a basket of apples", "the map of the city", "a bottle of olive oil", "the garden gate",
    "a pair of leather boots", "the last train ticket", "a bright yellow kite", "the piano",
]
PLACES = [
    "near the harbour", "in the garden", "behind the station", "at the market",
    "on the mountain road", "inside the museum", "by the river", "across the square",
    "under the bridge", "at the edge of the forest", "in the crowded cafe", "outside the bank",
]
TIMES = [
    "before breakfast", "on Tuesday afternoon", "late last night", "at seven o'clock",
    "during the storm", "in early spring", "after the meeting", "on the fourteenth of May",
    "just before sunset", "in nineteen ninety eight", "every other weekend", "around midnight",
]
MANNERS = [
    "carefully", "quickly", "without a word", "with great care", "once again", "in a hurry",
    "rather slowly", "with a big smile", "for the second time", "without asking anyone",
]
CONNECTORS = ["and then", "because", "although", "while", "but", "so", "even though"]
NUMBERS = ["twelve", "forty two", "three hundred", "seventeen", "ninety nine", "two thousand"]
# fmt: on


def _clause(rng: random.Random, *, place: bool, when: bool, manner: bool) -> str:
    """One declarative clause built from the word lists."""
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS)[0], rng.choice(OBJECTS)]
    if manner:
        parts.append(rng.choice(MANNERS))
    if place:
        parts.append(rng.choice(PLACES))
    if when:
        parts.append(rng.choice(TIMES))
    return " ".join(parts)


def _sentence(rng: random.Random) -> str:
    """A sentence of varied length and shape (about 4 to 30 words)."""
    shape = rng.randrange(7)
    if shape == 0:
        text = _clause(rng, place=False, when=False, manner=False) + "."
    elif shape == 1:
        text = _clause(rng, place=True, when=False, manner=rng.random() < 0.5) + "."
    elif shape == 2:
        text = f"{rng.choice(TIMES)}, " + _clause(rng, place=False, when=False, manner=True) + "."
    elif shape == 3:
        who, verb = rng.choice(SUBJECTS), rng.choice(VERBS)[1]
        text = f"did {who} really {verb} {rng.choice(OBJECTS)} {rng.choice(PLACES)}?"
    elif shape == 4:
        text = f"{rng.choice(SUBJECTS)} paid {rng.choice(NUMBERS)} dollars for {rng.choice(OBJECTS)} {rng.choice(TIMES)}."
    elif shape == 5:
        first = _clause(rng, place=True, when=True, manner=False)
        second = _clause(rng, place=False, when=False, manner=True)
        text = f"{first}, {rng.choice(CONNECTORS)} {second}."
    else:
        first = _clause(rng, place=True, when=False, manner=True)
        second = _clause(rng, place=True, when=True, manner=False)
        third = _clause(rng, place=False, when=False, manner=False)
        text = f"{first}, {rng.choice(CONNECTORS)} {second}; {third}."
    return text[0].upper() + text[1:]


def make_sentences(n: int = N_SENTENCES, seed: int = SEED) -> list[str]:
    """``n`` distinct, deterministic English sentences."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(_sentence(rng), None)
    return list(seen)


# --------------------------------------------------------------------------------------------
# Corpus: base utterances (espeak-ng)
# --------------------------------------------------------------------------------------------

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["", "+f1", "+f2", "+f3", "+f4", "+m2", "+m3", "+m5", "+klatt", "+f5"]
SPEEDS = [130, 145, 160, 175, 190, 205]


class BaseSpec(NamedTuple):
    """One espeak-ng utterance to synthesize."""

    index: int
    text: str
    voice: str
    speed: int
    pitch: int
    path: str


def _espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng; float32 mono at ESPEAK_SR."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    data, sr = sf.read(io.BytesIO(wav), dtype="float32")
    if sr != ESPEAK_SR:
        raise RuntimeError(f"unexpected espeak-ng rate {sr}")
    return data


def _synthesize(spec: BaseSpec) -> dict[str, Any]:
    """Render one base utterance (2-12 s incl. leading/trailing silence) to a PCM_16 wav."""
    rng = np.random.default_rng(SEED + spec.index)
    speed = spec.speed
    audio = _espeak(spec.text, spec.voice, speed, spec.pitch)
    while len(audio) / ESPEAK_SR > MAX_SECONDS / 1.1 - 0.8 and speed < 400:
        # too long even for the slowest derivation (speed 0.9): speak faster
        speed = int(speed * 1.15)
        audio = _espeak(spec.text, spec.voice, speed, spec.pitch)
    lead, tail = (int(rng.uniform(0.05, 0.35) * ESPEAK_SR) for _ in range(2))
    total = max(len(audio) + lead + tail, int(MIN_SECONDS / 0.9 * ESPEAK_SR) + 1)
    out = np.zeros(total, dtype=np.float32)
    out[lead : lead + len(audio)] = audio
    sf.write(spec.path, out, ESPEAK_SR, subtype="PCM_16")
    return {**spec._asdict(), "speed": speed, "seconds": total / ESPEAK_SR}


def build_bases(base_dir: Path, workers: int) -> list[dict[str, Any]]:
    """Synthesize (or load cached) N_BASE espeak-ng utterances."""
    index_file = base_dir / "bases.json"
    if index_file.exists():
        bases = json.loads(index_file.read_text())
        if len(bases) == N_BASE and all(Path(b["path"]).exists() for b in bases):
            return bases
    shutil.rmtree(base_dir, ignore_errors=True)
    base_dir.mkdir(parents=True)
    sentences = make_sentences()
    rng = random.Random(SEED)
    specs = [
        BaseSpec(
            index=i,
            text=sentences[i % len(sentences)],
            voice=rng.choice(VOICES) + rng.choice(VARIANTS),
            speed=rng.choice(SPEEDS),
            pitch=rng.randrange(30, 71),
            path=str(base_dir / f"base-{i:03d}.wav"),
        )
        for i in range(N_BASE)
    ]
    with mp.Pool(workers) as pool:
        bases = pool.map(_synthesize, specs, chunksize=4)
    index_file.write_text(json.dumps(bases, indent=1))
    return bases


# --------------------------------------------------------------------------------------------
# Corpus: derived clips (mixed rates / containers / gains)
# --------------------------------------------------------------------------------------------


class ClipFormat(NamedTuple):
    """Container/rate/channel layout of a derived clip."""

    ext: str
    rate: int
    channels: int
    weight: int


FORMATS: dict[str, ClipFormat] = {
    "wav_pcm16_22k": ClipFormat(".wav", 22_050, 1, 20),
    "wav_float_44k_stereo": ClipFormat(".wav", 44_100, 2, 13),
    "flac_16k": ClipFormat(".flac", 16_000, 1, 20),
    "flac_48k": ClipFormat(".flac", 48_000, 1, 15),
    "ogg_vorbis_48k": ClipFormat(".ogg", 48_000, 1, 12),
    "mp3_44k": ClipFormat(".mp3", 44_100, 1, 17),
    "m4a_aac_44k_stereo": ClipFormat(".m4a", 44_100, 2, 3),
}


class ClipSpec(NamedTuple):
    """One derived clip: which base utterance, which format, where."""

    index: int
    base_path: str
    base_seconds: float
    kind: str
    path: str


def _assign_kinds(n: int) -> list[str]:
    """Deterministic, weight-proportional list of ``n`` format names (each at least once)."""
    total = sum(f.weight for f in FORMATS.values())
    counts = {k: max(1, round(n * f.weight / total)) for k, f in FORMATS.items()}
    biggest = max(counts, key=counts.__getitem__)
    counts[biggest] += n - sum(counts.values())
    kinds = [k for k, c in counts.items() for _ in range(c)]
    random.Random(SEED).shuffle(kinds)
    return kinds


def _ffmpeg_encode(audio: np.ndarray, rate: int, path: str, codec_args: list[str]) -> None:
    """Encode float audio to ``path`` with ffmpeg (input piped as a float wav)."""
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="FLOAT")
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "wav", "-i", "pipe:0", *codec_args, path]
    subprocess.run(cmd, input=buf.getvalue(), capture_output=True, check=True)


def _derive(spec: ClipSpec) -> tuple[int, float]:
    """Write one derived clip (speed perturbation, gain, noise floor, format); return seconds."""
    fmt = FORMATS[spec.kind]
    rng = np.random.default_rng(SEED * 7 + spec.index)
    base, base_sr = sf.read(spec.base_path, dtype="float32")
    factors = [f for f in (0.9, 1.0, 1.1) if MIN_SECONDS <= spec.base_seconds / f <= MAX_SECONDS]
    factor = float(rng.choice(factors)) if factors else 1.0
    in_rate = base_sr * factor  # resampling from sr*f to rate and playing at rate = speed f
    audio = base if in_rate == fmt.rate else soxr.resample(base, in_rate, fmt.rate, quality="HQ")
    audio = audio * np.float32(10 ** (rng.uniform(-10.0, 2.0) / 20))
    noise_rms = 10 ** (rng.uniform(-70.0, -55.0) / 20)
    audio = audio + rng.normal(0.0, noise_rms, len(audio)).astype(np.float32)
    if fmt.channels == 2:
        delay = int(rng.integers(2, 40))
        right = np.concatenate([np.zeros(delay, np.float32), audio[:-delay]]) * np.float32(0.85)
        right += rng.normal(0.0, noise_rms, len(right)).astype(np.float32)
        audio = np.stack([audio, right], axis=1)
    peak = float(np.abs(audio).max())
    if peak > 0.98:
        audio *= np.float32(0.98 / peak)
    if spec.kind == "wav_pcm16_22k":
        sf.write(spec.path, audio, fmt.rate, subtype="PCM_16")
    elif spec.kind == "wav_float_44k_stereo":
        sf.write(spec.path, audio, fmt.rate, subtype="FLOAT")
    elif spec.kind == "flac_16k":
        sf.write(spec.path, audio, fmt.rate, subtype="PCM_16")
    elif spec.kind == "flac_48k":
        sf.write(spec.path, audio, fmt.rate, subtype="PCM_24")
    elif spec.kind == "ogg_vorbis_48k":
        sf.write(spec.path, audio, fmt.rate, format="OGG", subtype="VORBIS")
    elif spec.kind == "mp3_44k":
        _ffmpeg_encode(audio, fmt.rate, spec.path, ["-c:a", "libmp3lame", "-q:a", "4"])
    elif spec.kind == "m4a_aac_44k_stereo":
        _ffmpeg_encode(audio, fmt.rate, spec.path, ["-c:a", "aac", "-b:a", "96k"])
    else:
        raise ValueError(spec.kind)
    return spec.index, len(audio) / fmt.rate


def build_corpus(corpus_dir: Path, n_clips: int, workers: int) -> dict[str, Any]:
    """Build ``corpus_dir`` (clips + corpus.jsonl + meta.json) unless a complete copy exists."""
    meta_file = corpus_dir / "meta.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("version") == CORPUS_VERSION and meta.get("clips") == n_clips:
            return meta
    print(f"building corpus of {n_clips} clips in {corpus_dir} ...", flush=True)
    t0 = time.perf_counter()
    bases = build_bases(CACHE_DIR / f"base-v{CORPUS_VERSION}", workers)
    t_bases = time.perf_counter() - t0
    meta_file.unlink(missing_ok=True)
    shutil.rmtree(corpus_dir / "clips", ignore_errors=True)
    kinds = _assign_kinds(n_clips)
    specs: list[ClipSpec] = []
    for i, kind in enumerate(kinds):
        base = bases[i % len(bases)]
        rel = Path("clips") / f"{i // 500:02d}" / f"{i:05d}{FORMATS[kind].ext}"
        (corpus_dir / rel.parent).mkdir(parents=True, exist_ok=True)
        specs.append(ClipSpec(i, base["path"], base["seconds"], kind, str(corpus_dir / rel)))
    with mp.Pool(workers) as pool:
        seconds = dict(pool.imap_unordered(_derive, specs, chunksize=8))
    with open(corpus_dir / "corpus.jsonl", "w") as f:
        for spec in specs:
            rel = os.path.relpath(spec.path, corpus_dir)
            text = bases[spec.index % len(bases)]["text"]
            f.write(json.dumps({"audio": rel, "text": text}) + "\n")
    meta = {
        "version": CORPUS_VERSION,
        "clips": n_clips,
        "audio_seconds": sum(seconds.values()),
        "formats": dict(Counter(kinds)),
        "build_seconds": time.perf_counter() - t0,
        "base_synthesis_seconds": t_bases,
        "build_workers": workers,
    }
    meta_file.write_text(json.dumps(meta, indent=1))  # written last: marks the corpus complete
    print(
        f"corpus built in {meta['build_seconds']:.1f} s (espeak-ng bases {t_bases:.1f} s, {workers} workers)",
        flush=True,
    )
    return meta


def read_manifest(jsonl: Path) -> list[str]:
    """Absolute audio paths listed in ``jsonl`` (relative paths resolve against its folder)."""
    with open(jsonl) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [str((jsonl.parent / row["audio"]).resolve()) for row in rows]


def warm_page_cache(paths: Iterable[str]) -> None:
    """Read every file once so no method pays the cold-disk cost."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


# --------------------------------------------------------------------------------------------
# Method 1: floor
# --------------------------------------------------------------------------------------------


def _ffmpeg_decode(path: str) -> tuple[np.ndarray, int]:
    """Decode with FFmpeg's libraries in process (PyAV) to packed float32: what audiodata uses for
    these containers. (An ffmpeg subprocess per clip would cost the floor a fork and exec per clip.)"""
    import av

    with av.open(path) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="flt", layout=stream.layout.name, rate=stream.rate)
        parts = [
            f.to_ndarray().reshape(-1, stream.channels) for frame in container.decode(stream) for f in to_float.resample(frame)
        ]
        parts += [f.to_ndarray().reshape(-1, stream.channels) for f in to_float.resample(None)]
        return np.concatenate(parts), int(stream.rate)


def _downmix(data: np.ndarray) -> np.ndarray:
    """Average (frames, channels) float32 to mono.

    Column adds are ~40x faster than ``data.mean(axis=1)`` and, unlike a mat-vec product,
    never hit a multi-threaded BLAS (which oversubscribes the cores of a worker pool).
    """
    channels = data.shape[1]
    if channels == 1:
        return data[:, 0]
    mono = data[:, 0] + data[:, 1]
    for c in range(2, channels):
        mono += data[:, c]
    mono *= np.float32(1 / channels)
    return mono


def decode_16k(path: str) -> tuple[float, np.ndarray]:
    """The floor's decode: one file to float32 (soundfile, or FFmpeg for what libsndfile cannot open), mean downmix,
    soxr HQ to 16 kHz; returns (source seconds, mono 16 kHz samples)."""
    if Path(path).suffix.lower() in SOUNDFILE_EXTS:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    else:
        data, sr = _ffmpeg_decode(path)
    mono = _downmix(data)
    if sr != TARGET_SR:
        mono = soxr.resample(mono, sr, TARGET_SR, quality="HQ")
    return data.shape[0] / sr, mono


def _floor_one(path: str) -> tuple[float, int]:
    """Decode, downmix, resample, FLAC-encode one file; return (source seconds, flac bytes)."""
    seconds, mono = decode_16k(path)
    buf = io.BytesIO()
    sf.write(buf, mono, TARGET_SR, format="FLAC", subtype="PCM_16")
    return seconds, buf.getbuffer().nbytes


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes (plus hypervisor steal) used since boot; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and its reaped descendants."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Stopwatch:
    """Wall time of a block, and the share of the machine's CPUs other processes took meanwhile."""

    wall_s: float
    cpu_s: float
    foreign_cpu_share: float | None

    def __enter__(self) -> Stopwatch:
        self._busy0, self._own0 = _machine_busy_seconds(), _own_cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        busy1, own = _machine_busy_seconds(), _own_cpu_seconds() - self._own0
        self.cpu_s = own
        if busy1 is None or self._busy0 is None:
            self.foreign_cpu_share = None
        else:
            foreign = max(0.0, busy1 - self._busy0 - own)
            self.foreign_cpu_share = foreign / (self.wall_s * (os.cpu_count() or 1))


@dataclass
class Measurement:
    """Wall time of one method over the corpus."""

    method: str
    workers: int
    clips: int
    wall_s: float
    extra: dict[str, Any]
    cpu_s: float | None = None  # CPU seconds of this process and its workers during the method


def run_floor(paths: list[str], workers: int) -> Measurement:
    """Tight decode/downmix/resample/encode loop over a Pool (pool start-up included)."""
    chunksize = max(1, min(8, len(paths) // (workers * 8)))
    with Stopwatch() as sw:
        with mp.Pool(workers) as pool:
            results = list(pool.imap_unordered(_floor_one, paths, chunksize=chunksize))
        pool.join()  # reap the workers so their CPU time is accounted as ours
    extra = {
        "decoded_seconds": sum(s for s, _ in results),
        "flac_bytes": sum(b for _, b in results),
        "chunksize": chunksize,
        "foreign_cpu_share": sw.foreign_cpu_share,
    }
    return Measurement("floor", workers, len(results), sw.wall_s, extra, sw.cpu_s)


# --------------------------------------------------------------------------------------------
# Method 1b: the floor plus what the output format requires
# --------------------------------------------------------------------------------------------


def _format_one(path: str) -> tuple[float, bytes, str, int, int]:
    """The floor's work, quantized to the stored 16-bit PCM first (the format hashes those samples), plus what every
    row of the output states of its clip: the blake2b PCM hash and the levels (sum of squares, peak)."""
    seconds, mono = decode_16k(path)
    pcm = np.clip(np.rint(mono * np.float32(32768.0)), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    sf.write(buf, pcm, TARGET_SR, format="FLAC", subtype="PCM_16")
    digest = hashlib.blake2b(pcm.view(np.uint8).data, digest_size=16).hexdigest()
    squares = int(np.square(pcm, dtype=np.int32).sum(dtype=np.int64))
    peak = max(-int(pcm.min()), int(pcm.max())) if pcm.size else 0
    return seconds, buf.getvalue(), digest, squares, peak


class _HashedFile:
    """A write-only file that hashes what it writes (sha256), as the shard writer does."""

    def __init__(self, path: Path) -> None:
        self._fh, self.sha, self.closed = open(path, "wb"), hashlib.sha256(), False

    def write(self, data: Any) -> int:
        mv = memoryview(data)
        self._fh.write(mv)
        self.sha.update(mv)
        return mv.nbytes

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def run_floor_format(paths: list[str], workers: int, out_dir: Path) -> Measurement:
    """The floor plus what the output format requires of each clip, and nothing else: each clip quantized to 16-bit
    PCM, FLAC-encoded, its PCM hashed (blake2b) and its levels measured in the pool; the clips, in input order,
    written by this process to one Parquet file as ``datasets`` writes it (Audio struct column, PLAIN and uncompressed,
    content-defined chunking, page index, row groups of 100) through a sha256-hashing file, fsynced. No JSON, rules,
    resume state or other columns: what audiodata costs above this is its own overhead."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Audio, Features, Value
    from datasets import config as ds_config
    from datasets.arrow_writer import get_parquet_column_options

    feats = Features({"audio": Audio(sampling_rate=TARGET_SR), "pcm_hash": Value("string")})
    schema = feats.arrow_schema
    kwargs: dict[str, Any] = {"write_page_index": True, **get_parquet_column_options(feats, schema)}
    if getattr(ds_config, "DEFAULT_CDC_OPTIONS", None):
        kwargs["use_content_defined_chunking"] = ds_config.DEFAULT_CDC_OPTIONS
    chunksize = max(1, min(8, len(paths) // (workers * 8)))
    seconds = 0.0
    with Stopwatch() as sw:
        sink = _HashedFile(out_dir / "floor-format.parquet")
        writer = pq.ParquetWriter(sink, schema, **kwargs)  # type: ignore[arg-type]
        cells: list[dict[str, Any]] = []
        hashes: list[str] = []
        with mp.Pool(workers) as pool:
            for k, (secs, flac, digest, _squares, _peak) in enumerate(pool.imap(_format_one, paths, chunksize=chunksize)):
                seconds += secs
                cells.append({"bytes": flac, "path": f"{k}.flac"})
                hashes.append(digest)
                if len(cells) == 100:
                    writer.write_table(pa.table({"audio": cells, "pcm_hash": hashes}, schema=schema), row_group_size=100)
                    cells, hashes = [], []
            if cells:
                writer.write_table(pa.table({"audio": cells, "pcm_hash": hashes}, schema=schema), row_group_size=len(cells))
        pool.join()
        writer.close()
        sink.close()
        file_sha = sink.sha.hexdigest()
    extra = {"decoded_seconds": seconds, "chunksize": chunksize, "sha256": file_sha, "foreign_cpu_share": sw.foreign_cpu_share}
    return Measurement("floor+format", workers, len(paths), sw.wall_s, extra, sw.cpu_s)


# --------------------------------------------------------------------------------------------
# Method 2: audiodata
# --------------------------------------------------------------------------------------------


class PeakRss:
    """Peak resident memory of this process and its workers while a block runs, sampled every 20 ms
    (``memory_bench.tree_rss``); ``start_mib`` is this process's own before it (imports, the corpus list)."""

    def __enter__(self) -> PeakRss:
        self._tree_rss = sibling("memory_bench").tree_rss
        self.start_mib = self.peak_mib = self._tree_rss(os.getpid()) / 2**20
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mib = max(self.peak_mib, self._tree_rss(os.getpid()) / 2**20)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_audiodata(jsonl: Path, workers: int, out_dir: Path) -> Measurement | None:
    """``audiodata.convert`` on the corpus, or None if the package is not importable yet."""
    use_checkout()
    try:
        import audiodata

        convert = audiodata.convert
    except (ImportError, AttributeError) as exc:
        print(f"audiodata not importable ({type(exc).__name__}: {exc}); skipping it", flush=True)
        return None
    with PeakRss() as rss, Stopwatch() as sw:
        result = convert(inputs=[str(jsonl)], output=str(out_dir), num_workers=workers, overwrite=True)
    extra = {k: getattr(result, k) for k in ("records_read", "records_written", "records_rejected", "audio_seconds")}
    extra["peak_rss_mib"] = round(rss.peak_mib, 1)  # this process and its workers, at the peak
    extra["rss_before_mib"] = round(rss.start_mib, 1)  # this process alone, before convert started
    extra["foreign_cpu_share"] = sw.foreign_cpu_share
    return Measurement("audiodata", workers, int(result.records_written), sw.wall_s, extra, sw.cpu_s)


# --------------------------------------------------------------------------------------------
# Method 3: the datasets recipe
# --------------------------------------------------------------------------------------------


def _absolutize(batch: dict[str, list[Any]], base: str) -> dict[str, list[Any]]:
    """Resolve corpus-relative audio paths (datasets opens them relative to the CWD)."""
    return {"audio": [os.path.join(base, p) for p in batch["audio"]]}


def _reencode_flac(example: dict[str, Any]) -> dict[str, Any]:
    """Materialize the 16 kHz decode and store it as FLAC bytes."""
    audio = example["audio"]
    buf = io.BytesIO()
    sf.write(buf, audio["array"], audio["sampling_rate"], format="FLAC", subtype="PCM_16")
    return {"audio": buf.getvalue()}


def run_datasets(jsonl: Path, workers: int, work_dir: Path) -> Measurement:
    """load_dataset(json) + cast_column(Audio(16k)) + map(FLAC) + to_parquet, cache-free."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only: no Hub round-trips
    import datasets
    from datasets import Audio, load_dataset

    datasets.disable_caching()
    datasets.disable_progress_bars()
    out_file = work_dir / "train.parquet"
    phases: dict[str, float] = {}
    with Stopwatch() as sw:
        t0 = time.perf_counter()
        ds = load_dataset("json", data_files=str(jsonl), split="train", cache_dir=str(work_dir / "hf-cache"))
        ds = ds.map(_absolutize, batched=True, fn_kwargs={"base": str(jsonl.parent.resolve())})
        ds = ds.cast_column("audio", Audio(sampling_rate=TARGET_SR))
        phases["load_and_cast_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = ds.map(_reencode_flac, num_proc=workers, features=ds.features)  # decode + resample + encode
        phases["map_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds.to_parquet(str(out_file))
        phases["to_parquet_s"] = time.perf_counter() - t0
    extra = {
        "parquet_bytes": out_file.stat().st_size,
        "datasets_version": datasets.__version__,
        **{k: round(v, 3) for k, v in phases.items()},
        "foreign_cpu_share": sw.foreign_cpu_share,
    }
    return Measurement("datasets", workers, ds.num_rows, sw.wall_s, extra, sw.cpu_s)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(measurements: list[Measurement], audio_seconds: float, corpus: dict[str, Any]) -> dict[str, Any]:
    """Print the table and target lines; return the JSON-able figures."""
    xrt = {m.method: audio_seconds / m.wall_s for m in measurements}
    floor = xrt.get("floor")
    cpu = {m.method: m.cpu_s for m in measurements}
    rows = []
    for m in measurements:
        rows.append(
            {
                "method": m.method,
                "workers": m.workers,
                "clips": m.clips,
                "audio_hours": audio_seconds / 3600,
                "wall_s": m.wall_s,
                "x_realtime": xrt[m.method],
                "ratio_vs_floor": _ratio(xrt[m.method], floor),
                "cpu_s": m.cpu_s,
                "cpu_ratio_vs_floor": _ratio(cpu.get("floor"), m.cpu_s),  # floor CPU / this CPU: 1.0 = no overhead
                **m.extra,
            }
        )
    header = f"{'method':<12} {'workers':>7} {'clips':>6} {'audio h':>8} {'wall s':>8} "
    header += f"{'x realtime':>11} {'vs floor':>9} {'CPU s':>8} {'CPU vs floor':>12} {'load':>5}"
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        vs = f"{r['ratio_vs_floor']:.2f}" if r["ratio_vs_floor"] is not None else "n/a"
        cpu_vs = f"{r['cpu_ratio_vs_floor']:.2f}" if r["cpu_ratio_vs_floor"] is not None else "n/a"
        load = f"{r['foreign_cpu_share']:.0%}" if r.get("foreign_cpu_share") is not None else "n/a"
        print(
            f"{r['method']:<12} {r['workers']:>7} {r['clips']:>6} {r['audio_hours']:>8.3f} "
            f"{r['wall_s']:>8.2f} {r['x_realtime']:>10.1f}x {vs:>9} {r['cpu_s'] or 0:>8.2f} {cpu_vs:>12} {load:>5}"
        )
    print("(load: share of the machine's CPUs other processes took meanwhile; CPU vs floor = floor CPU / method CPU)")
    for r in rows:
        share = r.get("foreign_cpu_share")
        if share is not None and share > FOREIGN_CPU_WARN:
            print(
                f"warning: other processes took {share:.0%} of the CPUs during {r['method']}; "
                "its figure is unreliable (rerun on an idle machine)"
            )
    ad_floor = _ratio(xrt.get("audiodata"), floor)
    ad_ds = _ratio(xrt.get("audiodata"), xrt.get("datasets"))
    ad_cpu = _ratio(cpu.get("floor"), cpu.get("audiodata"))
    print()
    print(
        f"audiodata/floor = {ad_floor:.2f} (target >= {TARGET_FLOOR_RATIO})"
        if ad_floor is not None
        else f"audiodata/floor = n/a (target >= {TARGET_FLOOR_RATIO})"
    )
    print(
        f"audiodata/datasets = {ad_ds:.2f}x (target >= {TARGET_DATASETS_RATIO:g})"
        if ad_ds is not None
        else f"audiodata/datasets = n/a (target >= {TARGET_DATASETS_RATIO:g})"
    )
    if ad_cpu is not None:
        print(f"audiodata/floor by CPU seconds = {ad_cpu:.2f} (the wall target's stand-in on a loaded machine)")
    fmt_floor, fmt_cpu = _ratio(xrt.get("floor+format"), floor), _ratio(cpu.get("floor"), cpu.get("floor+format"))
    ad_fmt = _ratio(xrt.get("audiodata"), xrt.get("floor+format"))
    ad_fmt_cpu = _ratio(cpu.get("floor+format"), cpu.get("audiodata"))
    if fmt_floor is not None and fmt_cpu is not None:
        print(
            f"floor+format/floor = {fmt_floor:.2f} (CPU {fmt_cpu:.2f}): the floor plus only what the output format requires "
            "(16-bit PCM hash, levels, Parquet with content-defined chunking and sha256) is the most a converter writing "
            "this format can reach against the bare floor"
        )
    if ad_fmt is not None and ad_fmt_cpu is not None:
        print(f"audiodata/(floor+format) = {ad_fmt:.2f} (CPU {ad_fmt_cpu:.2f}): audiodata's own overhead")
    ds_floor = _ratio(xrt.get("datasets"), floor)
    ds_cpu = _ratio(cpu.get("floor"), cpu.get("datasets"))
    if ds_floor is not None and ds_cpu is not None:
        print(
            f"datasets recipe/floor = {ds_floor:.2f} (CPU {ds_cpu:.2f}): the recipe itself runs at that share of the floor, "
            f"so audiodata at the floor would be {1 / ds_floor:.2f}x the recipe; {TARGET_DATASETS_RATIO:g}x needs a recipe "
            f"below {1 / TARGET_DATASETS_RATIO:.2f} of the floor"
        )
    ad_row = next((r for r in rows if r["method"] == "audiodata"), None)
    peak = ad_row.get("peak_rss_mib") if ad_row else None
    if ad_row is not None and peak is not None:
        print(f"audiodata peak RSS (this process + workers) = {peak:.0f} MiB ({ad_row['rss_before_mib']:.0f} MiB before convert)")
    return {
        "audio_seconds": audio_seconds,
        "corpus": corpus,
        "results": rows,
        "audiodata_over_floor": ad_floor,
        "audiodata_over_floor_cpu": ad_cpu,
        "audiodata_over_datasets": ad_ds,
        "datasets_over_floor": ds_floor,
        "format_over_floor": fmt_floor,
        "format_over_floor_cpu": fmt_cpu,
        "audiodata_over_format": ad_fmt,
        "audiodata_over_format_cpu": ad_fmt_cpu,
        "datasets_over_floor_cpu": ds_cpu,
        "audiodata_peak_rss_mib": peak,
        "targets": {
            "audiodata_over_floor": TARGET_FLOOR_RATIO,
            "audiodata_over_datasets": TARGET_DATASETS_RATIO,
        },
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__,
            "soxr": soxr.__version__,
        },
    }


def _check_audiodata(m: Measurement, n_clips: int, audio_seconds: float) -> None:
    """Warn when audiodata's own counts disagree with the corpus."""
    if m.extra["records_written"] != n_clips or m.extra["records_rejected"]:
        print(
            f"warning: audiodata wrote {m.extra['records_written']}/{n_clips} records ({m.extra['records_rejected']} rejected)",
            flush=True,
        )
    reported = float(m.extra["audio_seconds"])
    if abs(reported - audio_seconds) > 0.005 * audio_seconds:
        print(
            f"warning: audiodata reports {reported:.1f} audio s, corpus has {audio_seconds:.1f} s",
            flush=True,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=2000, help="corpus size to build (default 2000)")
    p.add_argument(
        "--corpus-kind",
        choices=("mix", "espeak"),
        default="mix",
        help="mix (default): WAV/FLAC at 16-48 kHz derived from 150 espeak-ng utterances by seeded speed, gain, "
        "noise and joins, about a minute per 10k clips (benchmarks/mix_corpus.py); espeak: the first corpus, "
        "with mp3/ogg/m4a through an ffmpeg process per clip (about 8 minutes per 10k clips)",
    )
    p.add_argument("--num-workers", type=int, default=2, help="workers for every method")
    p.add_argument("--skip-datasets", action="store_true", help="skip the datasets recipe")
    p.add_argument(
        "--skip-format", action="store_true", help="skip the floor + format baseline (the floor plus PCM hash, levels, Parquet)"
    )
    p.add_argument("--corpus", type=Path, help="corpus dir to reuse (built there if empty)")
    p.add_argument("--json", "--json-out", dest="json_out", type=Path, help="also write the figures and headlines as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build/reuse the corpus, time the three methods, print the comparison."""
    args = parse_args(argv)
    at_start = machine()
    default_dir = f"mix-v2-{args.clips}" if args.corpus_kind == "mix" else f"corpus-{args.clips}"
    corpus_dir = (args.corpus or CACHE_DIR / default_dir).resolve()
    jsonl = corpus_dir / "corpus.jsonl"
    meta_file = corpus_dir / "meta.json"
    corpus: dict[str, Any]
    if args.corpus is not None and jsonl.exists():
        # reuse as is; a foreign corpus (no meta.json) gets its audio seconds from the floor
        corpus = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    elif args.corpus_kind == "mix":
        bases = build_bases(CACHE_DIR / f"base-v{CORPUS_VERSION}", os.cpu_count() or 1)
        corpus = build_mix_corpus(corpus_dir, args.clips, os.cpu_count() or 1, bases)
    else:
        corpus = build_corpus(corpus_dir, args.clips, os.cpu_count() or 1)
    paths = read_manifest(jsonl)
    corpus = {**corpus, "dir": str(corpus_dir), "clips": len(paths)}
    warm_page_cache(paths)
    print(f"corpus: {len(paths)} clips in {corpus_dir}; {args.num_workers} workers", flush=True)

    measurements = [run_floor(paths, args.num_workers)]
    # x-realtime denominator: the corpus' nominal source seconds, else what the floor decoded
    audio_seconds = corpus.get("audio_seconds") or measurements[0].extra["decoded_seconds"]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="out-audiodata-") as tmp:
        ad = run_audiodata(jsonl, args.num_workers, Path(tmp))
    if ad is not None:
        _check_audiodata(ad, len(paths), audio_seconds)
        measurements.append(ad)
    if not args.skip_format:  # after audiodata: what it imports (datasets' Audio) would count in audiodata's peak RSS
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="out-format-") as tmp:
            measurements.append(run_floor_format(paths, args.num_workers, Path(tmp)))
    if not args.skip_datasets:
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="out-datasets-") as tmp:
            measurements.append(run_datasets(jsonl, args.num_workers, Path(tmp)))

    figures = report(measurements, audio_seconds, corpus)
    save_results(args.json_out, "convert", command_line("convert_bench.py", argv), at_start, headlines(figures), figures)
    return 0


def headlines(figures: dict[str, Any]) -> list[dict[str, object]]:
    """The README table's rows: audiodata against the floor (wall and CPU) and the recipe, the recipe against
    the floor, and audiodata's peak memory."""
    rows = {r["method"]: r for r in figures["results"]}
    ad, floor, ds = rows.get("audiodata"), rows["floor"], rows.get("datasets")
    n, hours = floor["clips"], floor["audio_hours"]
    heads = []
    if ad is not None:
        what = f"convert {n:,} clips ({hours:.1f} h), {ad['workers']} workers"
        share = max(ad.get("foreign_cpu_share") or 0.0, floor.get("foreign_cpu_share") or 0.0)
        busy = f"; other processes took {share:.0%} of the CPUs: unreliable, see CPU" if share > FOREIGN_CPU_WARN else ""
        heads.append(headline(f"{what}: wall", ad["wall_s"], "s", "floor, same run", figures["audiodata_over_floor"],
                              f"ratio: floor wall / audiodata wall (target >= 0.9){busy}"))
        heads.append(headline(f"{what}: CPU", ad["cpu_s"], "CPU s", "floor, same run", figures["audiodata_over_floor_cpu"],
                              "ratio: floor CPU / audiodata CPU"))
        heads.append(headline(f"{what}: peak RSS", ad["peak_rss_mib"], "MiB", "RSS before convert, same process",
                              ad["peak_rss_mib"] / ad["rss_before_mib"], "this process + workers"))
    fmt = rows.get("floor+format")
    if fmt is not None and figures.get("format_over_floor_cpu") is not None:
        heads.append(headline(f"convert {n:,} clips: floor + what the format requires, CPU", fmt["cpu_s"], "CPU s",
                              "floor, same run", figures["format_over_floor_cpu"],
                              "ratio: floor CPU / (floor + 16-bit PCM hash, levels, Parquet with CDC and sha256) CPU: "
                              "the most a converter writing this format can reach"))
        if ad is not None and figures.get("audiodata_over_format_cpu") is not None:
            heads.append(headline(f"convert {n:,} clips vs floor + format, CPU", ad["cpu_s"], "CPU s",
                                  "floor + format, same run", figures["audiodata_over_format_cpu"],
                                  "ratio: (floor + format) CPU / audiodata CPU: audiodata's own overhead"))
    if ds is not None:
        if ad is not None:
            heads.append(headline(f"convert {n:,} clips vs the datasets recipe", ad["wall_s"], "s", "datasets recipe, same run",
                                  figures["audiodata_over_datasets"], "ratio: recipe wall / audiodata wall (target >= 5)"))
        heads.append(headline(f"datasets recipe, {n:,} clips", ds["wall_s"], "s", "floor, same run",
                              figures["datasets_over_floor"],
                              "ratio: floor wall / recipe wall (audiodata can be at most 1/ratio x the recipe)"))
    return heads  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
