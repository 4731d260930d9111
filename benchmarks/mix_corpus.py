"""A fast, deterministic speech corpus of any size for the convert benchmarks (10k, 20k clips in minutes).

Synthesizing every clip with espeak-ng takes about 50 minutes per 10,000 clips, and the first corpus
(``convert_bench.build_corpus``) still pays an ffmpeg process per mp3/m4a clip. This one starts from the
same 150 cached espeak-ng utterances (``convert_bench.build_bases``, a few seconds) and derives each clip
by cheap, seeded variation, all in process:

* one utterance, or two joined by a short pause (a quarter of the clips);
* a speed change of 0.9-1.1x (soxr from ``rate * factor`` to the clip's rate: pitch and tempo move together);
* a gain of -10..+2 dB and a noise floor of -70..-55 dBFS (cut from one seeded noise table, so no clip
  is a copy of another, and none costs a Gaussian draw of its own);
* a container, rate and layout from the mix the issue measures: WAV and FLAC, 16-48 kHz, mono and stereo
  (a stereo right channel is the left one delayed a few samples, with its own noise).

The same size, seed and library versions give the same files, byte for byte: clip ``i`` depends on ``i``
alone, whatever the number of build workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import soundfile as sf
import soxr

VERSION = 2
SEED = 20261127
MAX_SECONDS = 15.0
NOISE_SECONDS = 30  # the noise table every clip cuts its floor from (at 48 kHz)


class MixFormat(NamedTuple):
    """Container, rate, channels and sample format of a clip, with its share of the corpus."""

    ext: str
    rate: int
    channels: int
    subtype: str
    weight: int


MIX_FORMATS: dict[str, MixFormat] = {
    "wav_pcm16_16k": MixFormat(".wav", 16_000, 1, "PCM_16", 12),
    "wav_pcm16_22k": MixFormat(".wav", 22_050, 1, "PCM_16", 14),
    "wav_pcm16_44k_stereo": MixFormat(".wav", 44_100, 2, "PCM_16", 10),
    "wav_float_48k": MixFormat(".wav", 48_000, 1, "FLOAT", 6),
    "flac_16k": MixFormat(".flac", 16_000, 1, "PCM_16", 20),  # already the stored form: passes through
    "flac_24bit_48k": MixFormat(".flac", 48_000, 1, "PCM_24", 16),
    "flac_44k_stereo": MixFormat(".flac", 44_100, 2, "PCM_16", 12),
    "flac_32k": MixFormat(".flac", 32_000, 1, "PCM_16", 10),
}


def assign_kinds(n: int, seed: int = SEED) -> list[str]:
    """``n`` format names in weight proportion (each at least once), in a seeded order."""
    total = sum(f.weight for f in MIX_FORMATS.values())
    counts = {k: max(1, round(n * f.weight / total)) for k, f in MIX_FORMATS.items()}
    counts[max(counts, key=counts.__getitem__)] += n - sum(counts.values())
    kinds = [k for k, c in counts.items() for _ in range(c)]
    np.random.default_rng(seed).shuffle(kinds)
    return kinds


class _Worker:
    """What every clip draws from, loaded once per build process: the base utterances and the noise table."""

    bases: ClassVar[list[tuple[np.ndarray, int, str]]] = []
    noise: ClassVar[np.ndarray] = np.zeros(0, np.float32)


def _init(bases: list[dict[str, Any]]) -> None:
    _Worker.bases = []
    for b in bases:
        audio, rate = sf.read(b["path"], dtype="float32")
        _Worker.bases.append((audio, rate, b["text"]))
    _Worker.noise = np.random.default_rng(SEED).standard_normal(NOISE_SECONDS * 48_000).astype(np.float32)


def _noise(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """``n`` samples of the noise table from a seeded offset (wrapping), scaled to ``rms``."""
    table = _Worker.noise
    start = int(rng.integers(0, table.size))
    idx = (start + np.arange(n)) % table.size if start + n > table.size else slice(start, start + n)
    return table[idx] * np.float32(rms)


#: libsndfile's command that leaves out the PEAK chunk of a float WAV, which holds the time of writing
SFC_SET_ADD_PEAK_CHUNK = 0x1050


def _write(path: str, audio: np.ndarray, fmt: MixFormat) -> None:
    """Write the clip; a float WAV without its PEAK chunk, so the bytes do not depend on the clock."""
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    with sf.SoundFile(path, "w", fmt.rate, channels, fmt.subtype) as f:
        if fmt.subtype == "FLOAT":
            sf._snd.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
        f.write(audio)


def derive(job: tuple[int, str, str]) -> tuple[int, float, str]:
    """Write clip ``index`` of format ``kind`` to ``path``; return (index, seconds, transcript)."""
    index, kind, path = job
    fmt = MIX_FORMATS[kind]
    rng = np.random.default_rng([SEED, index])
    bases = _Worker.bases
    first = bases[index % len(bases)]
    parts, text, rate = [first[0]], first[2], first[1]
    if rng.random() < 0.25:
        second = bases[int(rng.integers(len(bases)))]
        if (first[0].size + second[0].size) / rate <= MAX_SECONDS - 1.0 and second[1] == rate:
            parts += [np.zeros(int(rng.uniform(0.2, 0.6) * rate), np.float32), second[0]]
            text = f"{text} {second[2]}"
    audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
    factor = float(rng.uniform(0.9, 1.1))
    audio = soxr.resample(audio, rate * factor, fmt.rate, quality="HQ")  # played at fmt.rate: speed x factor
    audio = audio * np.float32(10 ** (rng.uniform(-10.0, 2.0) / 20))
    noise_rms = 10 ** (rng.uniform(-70.0, -55.0) / 20)
    audio += _noise(rng, audio.size, noise_rms)
    if fmt.channels == 2:
        delay = int(rng.integers(2, 40))
        right = np.concatenate([np.zeros(delay, np.float32), audio[:-delay]]) * np.float32(0.85)
        right += _noise(rng, right.size, noise_rms)
        audio = np.stack([audio, right], axis=1)
    peak = float(np.abs(audio).max())
    if peak > 0.98:
        audio *= np.float32(0.98 / peak)
    _write(path, audio, fmt)
    return index, audio.shape[0] / fmt.rate, text


def build_mix_corpus(corpus_dir: Path, n_clips: int, workers: int, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """Build ``corpus_dir`` (clips/, corpus.jsonl, meta.json) unless a complete copy of this size is there."""
    meta_file = corpus_dir / "meta.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("version") == VERSION and meta.get("clips") == n_clips:
            return meta
    print(f"building a {n_clips}-clip WAV/FLAC corpus in {corpus_dir} from {len(bases)} espeak-ng utterances ...", flush=True)
    t0 = time.perf_counter()
    meta_file.unlink(missing_ok=True)
    shutil.rmtree(corpus_dir / "clips", ignore_errors=True)
    kinds = assign_kinds(n_clips)
    jobs = []
    for i, kind in enumerate(kinds):
        rel = Path("clips") / f"{i // 1000:03d}" / f"{i:06d}{MIX_FORMATS[kind].ext}"
        (corpus_dir / rel.parent).mkdir(parents=True, exist_ok=True)
        jobs.append((i, kind, str(corpus_dir / rel)))
    with mp.Pool(workers, initializer=_init, initargs=(bases,)) as pool:
        done = {i: (s, t) for i, s, t in pool.imap_unordered(derive, jobs, chunksize=32)}
    with open(corpus_dir / "corpus.jsonl", "w") as f:
        for i, _, path in jobs:
            f.write(json.dumps({"audio": os.path.relpath(path, corpus_dir), "text": done[i][1]}) + "\n")
    meta = {
        "version": VERSION,
        "builder": "mix",
        "clips": n_clips,
        "audio_seconds": sum(s for s, _ in done.values()),
        "formats": dict(Counter(kinds)),
        "build_seconds": time.perf_counter() - t0,
        "build_workers": workers,
    }
    meta_file.write_text(json.dumps(meta, indent=1))  # written last: marks the corpus complete
    print(f"corpus built in {meta['build_seconds']:.1f} s ({workers} workers)", flush=True)
    return meta
