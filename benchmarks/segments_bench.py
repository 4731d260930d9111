#!/usr/bin/env python
"""N segments of one long recording cost about one decode of that recording, not N.

A 10-minute recording is made from the sample corpus's espeak-ng sentences (sample_data/audio, resampled to
44.1 kHz, 0.4 s of silence between them, over and over) and written as 16-bit FLAC, WAV and Ogg Vorbis into
``benchmarks/.cache``. For each, in this process, one worker:

* **once**: the audio stage makes one clip of the whole file (decode, resample to 16 kHz, encode FLAC, hash:
  ``audiodata.pipeline.process.make_clip``);
* **segments**: the same stage makes a clip of each of N consecutive segments (``MediaRef.segment``),
  as a NeMo manifest of N lines with offsets into the file gets them: the exact formats seek, the lossy one
  is decoded once and sliced;
* **naive**: each segment decoded by reading the whole file and slicing it (what a reader without seeking
  does), timed on N/10 segments and scaled to N.

The ratios segments/once and naive/once are printed, with the end-to-end ``audiodata convert`` of the
N-line manifest against a one-line manifest of the whole file (Parquet writing included). CPU time of this
process (``time.process_time``), the best of ``--repeat`` runs.

Usage::

    python benchmarks/segments_bench.py [--minutes 10] [--segments 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from _shared import CACHE_DIR, REPO_ROOT, command_line, headline, machine, save_results, use_checkout

RATE = 44100
CLIPS = ["clip01_22k.wav", "clip02_22k.wav", "clip03_22k.wav", "clip07_16k.flac", "clip08_16k.flac", "clip09_16k.flac"]
FORMATS = {
    "FLAC": ("long.flac", "FLAC", "PCM_16"),
    "WAV": ("long.wav", "WAV", "PCM_16"),
    "Ogg Vorbis": ("long.ogg", "OGG", "VORBIS"),
}


def recording(minutes: float, fmt: str) -> Path:
    """The long recording in ``fmt``, built once into benchmarks/.cache."""
    name, container, subtype = FORMATS[fmt]
    path = CACHE_DIR / "segments" / f"{minutes:g}min-{name}"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for clip in CLIPS:
        x, r = sf.read(REPO_ROOT / "sample_data/audio" / clip, dtype="float32", always_2d=True)
        parts += [soxr.resample(x.mean(axis=1), r, RATE).astype(np.float32), np.zeros(int(0.4 * RATE), np.float32)]
    cycle = np.concatenate(parts)
    total = int(minutes * 60 * RATE)
    signal = np.resize(cycle, total)
    tmp = path.with_name(path.name + ".tmp")
    with sf.SoundFile(tmp, "w", RATE, 1, format=container, subtype=subtype) as out:
        for i in range(0, total, 1 << 15):  # in blocks: libsndfile's Vorbis encoder crashes on one huge write
            out.write(signal[i : i + (1 << 15)])
    tmp.rename(path)
    return path


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def bench(path: Path, n: int, repeat: int) -> dict[str, float]:
    from audiodata.audio import segment
    from audiodata.audio.transform import convert_samples
    from audiodata.pipeline.process import AudioSettings, make_clip
    from audiodata.records import MediaRef, Segment, samples_at

    settings = AudioSettings(max_audio_bytes=2**31)
    info = sf.info(path)
    length = info.frames / info.samplerate
    step = length / n
    root = str(path.parent)

    def once() -> None:
        make_clip(MediaRef("path", path.name, "audio"), root, settings)

    def segments() -> None:
        segment.release()  # every run starts with nothing held open
        for k in range(n):
            make_clip(MediaRef("path", path.name, "audio", segment=Segment(k * step, step)), root, settings)

    def naive() -> None:  # read the whole file for each segment, slice, same conversion
        for k in range(max(1, n // 10)):
            whole, rate = sf.read(path, dtype="float32", always_2d=True)
            first = samples_at(k * step, rate)
            convert_samples(whole[first : first + samples_at(step, rate)], rate, 16000, "naive")

    t_once, t_segments = best(once, repeat), best(segments, repeat)
    t_naive = best(naive, 1) * n / max(1, n // 10)
    return {"once": t_once, "segments": t_segments, "naive": t_naive}


def bench_convert(path: Path, n: int, repeat: int) -> dict[str, float]:
    import audiodata

    info = sf.info(path)
    length = info.frames / info.samplerate
    step = length / n
    work = Path(tempfile.mkdtemp(prefix="segbench-"))
    try:
        lines = [
            {"audio_filepath": path.name, "offset": round(k * step, 6), "duration": round(step, 6), "text": f"segment {k}"}
            for k in range(n)
        ]
        (work / "segments.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
        whole = {"audio_filepath": path.name, "duration": round(length, 6), "text": "x"}
        (work / "whole.json").write_text(json.dumps(whole) + "\n")

        def run(manifest: str) -> Callable[[], object]:
            def go() -> None:
                out = work / f"out-{manifest}"
                opts = {"media_root": str(path.parent), "max_audio_bytes": 2**31, "window_seconds": 3600}
                audiodata.convert([str(work / manifest)], out, num_workers=1, overwrite=True, **opts)

            return go

        return {"convert once": best(run("whole.json"), repeat), "convert segments": best(run("segments.json"), repeat)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures and headline ratios as JSON here")
    args = ap.parse_args(argv)
    at_start = machine()
    use_checkout(strict=True)
    heads, figures = [], {}
    n = args.segments
    print(f"{n} segments of one {args.minutes:g}-minute recording (44.1 kHz mono, espeak-ng speech) -> 16 kHz FLAC clips")
    print(f"{'source':<11} {'once (s)':>9} {'segments (s)':>13} {'ratio':>6} {'naive (s)':>10} {'ratio':>6}")
    for fmt in FORMATS:
        r = bench(recording(args.minutes, fmt), n, args.repeat)
        print(
            f"{fmt:<11} {r['once']:>9.2f} {r['segments']:>13.2f} {r['segments'] / r['once']:>6.2f}"
            f" {r['naive']:>10.1f} {r['naive'] / r['once']:>6.1f}"
        )
        figures[fmt] = r
        heads.append(headline(
            f"{n} segments of a {args.minutes:g}-min {fmt} recording, audio stage", r["segments"], "s",
            "one clip of the whole file, same run", r["segments"] / r["once"],
            f"ratio: segments / once (lower is better); reading the file per segment: {r['naive'] / r['once']:.1f}x",
        ))  # fmt: skip
    c = bench_convert(recording(args.minutes, "FLAC"), n, args.repeat)
    ratio = c["convert segments"] / c["convert once"]
    once, segs = c["convert once"], c["convert segments"]
    print(f"audiodata convert, FLAC: whole file {once:.2f} s, {n}-line NeMo manifest {segs:.2f} s: ratio {ratio:.2f}")
    figures["convert"] = c
    heads.append(headline(
        f"convert a {n}-line NeMo manifest of one FLAC recording", segs, "s", "convert the whole file as one clip, same run",
        ratio, "ratio: segments / once (lower is better)",
    ))  # fmt: skip
    save_results(args.json, "segments", command_line("segments_bench.py", argv), at_start, heads, figures)


if __name__ == "__main__":
    main()
