"""Peak memory of `audiodata convert` on extreme clips vs normal clips of the same count.

Extreme clips sit inside both default bounds (--max-audio-bytes 256 MiB, --max-duration 1200 s) and
used to be memory bombs, since a worker held the whole decoded source (frames x channels x 4 bytes):
a very long 16-bit WAV, 8 channels at 192 kHz (FLAC: 6.3 GiB decoded at 1100 s), a long float WAV and a
long MP3. Normal clips are 10 s speech-band files. Both corpora have the same number of records (each
file named by several records, as memory_bench.py reuses its clips) and are converted with the same
worker count; each run is a separate process tree, sampled every 20 ms (``tree_rss`` from
memory_bench.py), and each process's own high-water mark (VmHWM) is kept, so the busiest worker's
peak is exact. Prints both side by side and their ratios: bounded memory means ratios close to 1.

    python benchmarks/audio_memory_bench.py [--seconds 1100] [--records 32] [--num-workers 2]
    python benchmarks/audio_memory_bench.py --code /path/to/other/checkout   # the same, another version
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from _shared import BENCH_DIR, REPO_ROOT, command_line, headline, machine, save_results
from memory_bench import tree_pids, tree_rss

CACHE = BENCH_DIR / ".cache" / "audio-memory-v1"


def speechlike(seconds: float, rate: int, channels: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Tone bursts (1 s on, 3 s of silence, like speech with pauses), a second at a time: building a
    6 GiB source holds one second of it."""
    rng = np.random.default_rng(seed)
    for start in range(0, int(seconds * rate), rate):
        t = (np.arange(rate) + start) / rate
        x = 0.3 * np.sin(2 * np.pi * (220 + 20 * seed) * t) * ((t % 4) < 1.0)
        block = np.repeat(x.astype(np.float32)[:, None], channels, axis=1)
        if channels == 1 and seed % 2:  # some texture on the mono ones
            block += (0.002 * rng.standard_normal(block.shape)).astype(np.float32)
        yield block


def write(name: str, seconds: float, rate: int, channels: int, seed: int = 0, **kw: str) -> Path:
    """The clip, built once into benchmarks/.cache (the extreme ones take minutes); corpora name it by
    its absolute path."""
    path = Path(name)
    cached = CACHE / f"{path.stem}-{seconds:g}s-{rate}-{channels}{path.suffix}"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp")
        with sf.SoundFile(tmp, "w", rate, channels, format=kw.pop("format", None) or _FORMATS[path.suffix], **kw) as out:
            for block in speechlike(seconds, rate, channels, seed):
                out.write(block)
        tmp.rename(cached)
    return cached


_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".mp3": "MP3"}


def extreme_clips(seconds: float) -> dict[str, Path]:
    return {
        "long 16-bit WAV, 44.1 kHz": write("long.wav", seconds, 44100, 1, 1, subtype="PCM_16"),
        "8 ch at 192 kHz, FLAC": write("wide.flac", seconds, 192000, 8, 2, format="FLAC", subtype="PCM_16"),
        "long float WAV, 48 kHz": write("float.wav", seconds, 48000, 1, 3, subtype="FLOAT"),
        "long MP3, 44.1 kHz stereo": write("long.mp3", seconds, 44100, 2, 4, format="MP3", subtype="MPEG_LAYER_III"),
    }


def normal_clips(seconds: float = 10.0) -> dict[str, Path]:
    return {
        "16 kHz WAV": write("n16.wav", seconds, 16000, 1, 1, subtype="PCM_16"),
        "44.1 kHz stereo FLAC": write("n44.flac", seconds, 44100, 2, 2, format="FLAC", subtype="PCM_16"),
        "48 kHz float WAV": write("n48.wav", seconds, 48000, 1, 3, subtype="FLOAT"),
        "22.05 kHz MP3": write("n22.mp3", seconds, 22050, 1, 4, format="MP3", subtype="MPEG_LAYER_III"),
    }


def corpus(folder: Path, clips: dict[str, Path], records: int) -> Path:
    path = folder / "corpus.jsonl"
    names = [str(p) for p in clips.values()]
    with open(path, "w") as fh:
        for i in range(records):
            turns = [{"from": "human", "value": "<audio>Transcribe the audio."}, {"from": "gpt", "value": f"record {i}"}]
            fh.write(json.dumps({"conversations": turns, "audios": [names[i % len(names)]]}) + "\n")
    return path


def hwm(pid: int) -> int:
    """A process's own peak resident bytes so far (VmHWM), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run(corpus_path: Path, out: Path, workers: int, code: Path) -> dict[str, float]:
    """Convert once; the process tree's peak, the main process's and the busiest worker's (MiB), wall seconds."""
    cmd = [sys.executable, "-m", "audiodata", "convert", str(corpus_path), "-o", str(out), "--overwrite", "--no-progress",
           "--num-workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=code, env=env)
    tree = 0
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        tree = max(tree, tree_rss(proc.pid))
        for pid in tree_pids(proc.pid):
            peaks[pid] = max(peaks.get(pid, 0), hwm(pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"convert failed (exit {proc.returncode}): {err[-2000:]}")
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    main = peaks.pop(proc.pid, 0)
    return {
        "tree": tree / 2**20,
        "main": main / 2**20,
        "worker": max(peaks.values(), default=0) / 2**20,
        "wall": wall,
        "written": summary["written"],
        "rejected": summary["rejected"],
        "hours": summary["audio_seconds"] / 3600,
        "out_mb": sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1100.0, help="length of each extreme clip")
    ap.add_argument("--records", type=int, default=32, help="records per corpus (each clip named by several)")
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout whose audiodata runs")
    ap.add_argument("--json", type=Path, help="also write the figures and the headline ratios as JSON here")
    args = ap.parse_args(argv)
    at_start = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="audiodata-audiomem-") as tmp:
        for label, make in (("normal", normal_clips), ("extreme", lambda: extreme_clips(args.seconds))):
            folder = Path(tmp) / label
            folder.mkdir()
            began = time.perf_counter()
            clips = make()
            made = time.perf_counter() - began
            sizes = {name: p.stat().st_size / 1e6 for name, p in clips.items()}
            decoded = {name: sf.info(str(p)).frames * sf.info(str(p)).channels * 4 / 2**20 for name, p in clips.items()}
            result = run(corpus(folder, clips, args.records), Path(tmp) / f"out-{label}", args.num_workers, args.code)
            rows.append((label, result))
            print(f"{label}: {len(clips)} files, {args.records} records (files built or found in {made:.0f} s)")
            for name in clips:
                print(f"    {name:<28} {sizes[name]:>8.1f} MB on disk, {decoded[name]:>8.0f} MiB decoded (float32)")
            shutil.rmtree(Path(tmp) / f"out-{label}", ignore_errors=True)
    print()
    print(f"{'corpus':>8} {'records':>8} {'written':>8} {'audio h':>8} {'out MB':>7} {'tree MiB':>9} {'main MiB':>9} "
          f"{'worker MiB':>11} {'wall s':>7}")
    for label, r in rows:
        print(f"{label:>8} {args.records:>8} {r['written']:>8} {r['hours']:>8.2f} {r['out_mb']:>7.0f} {r['tree']:>9.0f} "
              f"{r['main']:>9.0f} {r['worker']:>11.0f} {r['wall']:>7.1f}")
    (_, normal), (_, extreme) = rows
    print(f"peak memory ratio, extreme / normal: process tree {extreme['tree'] / normal['tree']:.2f}, "
          f"busiest worker {extreme['worker'] / normal['worker']:.2f} (bounded: close to 1)")
    heads = [headline(
        f"convert peak RSS (process tree), {args.seconds:g} s clips", extreme["tree"], "MiB", "normal clips, same run",
        extreme["tree"] / normal["tree"],
        f"ratio: peak extreme/normal (bounded: close to 1); busiest worker {extreme['worker'] / normal['worker']:.2f}",
    )]  # fmt: skip
    figures = {"seconds": args.seconds, "records": args.records, "rows": dict(rows)}
    save_results(args.json, "audio_memory", command_line("audio_memory_bench.py", argv), at_start, heads, figures)


if __name__ == "__main__":
    main()
