#!/usr/bin/env python
"""Training throughput benchmark: length-grouped batches against random batches, same shards, same steps.

Audio LMs pad a lot: a 2 s and a 30 s clip in one batch pad every row to the longest
(text + audio placeholder tokens), and padded tokens cost compute. The trainer's
``LengthGroupedBatchSampler`` groups rows of similar estimated length to cut that padding.
This benchmark measures what it buys, against plain random batching measured in the same
run, on the same converted shards, with the same seed, model and number of optimizer steps:

* corpus   -- ``--records`` SFT records (default 240) whose clip durations are log-uniform
              between 1 s and ``--max-seconds`` (default 30 s), built from convert_bench's cached
              espeak-ng utterances (concatenated with short pauses, then cut to length), with
              prompts of varied length and either the transcript (text grows with the clip) or
              a short answer; written as JSONL + 16 kHz wav and converted with ``audiodata.convert``
              into ``benchmarks/.cache/train-bench-<records>/out`` (both cached).
* model    -- ``trainer.tiny.make_tiny_model`` (Qwen2-Audio, random weights; cached), fp32 on CPU, LoRA.
* grouped  -- the trainer's default sampler (``build(cfg)`` as ``audiodata train sft`` uses it).
* random   -- the same Run with ``trainer.batch_sampler`` replaced by
              ``LengthGroupedBatchSampler(..., grouped=False)``: shuffled, fixed-size batches.

For each strategy: samples/s and real (unpadded) tokens/s over wall-clock ``trainer.train()``
(model and data loading excluded; one untimed warm-up run first; ``--repeats`` timed runs per
strategy in alternating order, the fastest shown; one torch thread by default, see ``--threads``),
the planned padding efficiency of the batches the run consumes (estimated lengths, nothing
decoded) and the actual one the trainer counted from the collated ``attention_mask``
(``trainer.seen``). A second table gives the padding efficiency of whole epochs for several
batch sizes, by the estimates alone.

Then the same grouped trainer on ``--processes`` (default 1 and 2) data-parallel processes, one
epoch each, launched with ``torchrun`` (gloo on CPU, ``--threads`` torch threads per process): global
samples/s and real tokens/s over ``trainer.train()`` (the slowest rank's wall time), the planned and
actual padding efficiency with the counters summed over the ranks, the steps each rank ran and the
rows repeated to give every rank the same number of steps, side by side. Each process count trains
on every record exactly once; only the split of the work differs. On CPU two processes compete for
the same cores and the gradients are all-reduced by gloo, so this measures the distributed path's
overhead and padding, not a GPU's scaling.

With the defaults (240 records, batch 8, 30 steps) the run is exactly one epoch, so both
strategies train on exactly the same records. Note that a Qwen2-Audio feature extractor pads
every clip to 30 s of mel frames whatever its duration, so the audio encoder's cost is per clip
and the same for both strategies; the gain shows in the language model's token padding. The
tiny model's byte-level tokenizer makes text several times longer than the Qwen-vocabulary
estimate the sampler groups by, so "actual" differs from "planned" (the run prints both token counts).

Usage::

    python benchmarks/train_bench.py                       # defaults: 240 records, batch 8, 30 steps
    python benchmarks/train_bench.py --steps 60 --batch-size 4 --json train.json
    python benchmarks/train_bench.py --processes 1,2 --repeats 1 # the process table: one launch per count
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import soundfile as sf
import soxr
from _shared import CACHE_DIR, REPO_ROOT, command_line, headline, machine, save_results, sibling, use_checkout

CORPUS_VERSION = 1
SEED = 20241105
SR = 16_000
MIN_SECONDS = 1.0
FAMILY = "qwen2-audio"
FOREIGN_CPU_WARN = 0.05  # warn when other processes used more than this share of the CPUs
TRANSCRIBE_SHARE = 0.7  # the other records get a short answer whatever the clip's length

# fmt: off
PROMPTS = [
    "<audio>Transcribe this.", "<audio>\nWhat does the speaker say?", "Transcribe the following clip verbatim. <audio>",
    "<audio>Please write down exactly what is said, with punctuation and capital letters where they belong.",
    "Here is a recording of someone describing their day: <audio> Write down every word they say, in order.",
    "<audio>", "<audio>Write down what you hear.",
    "Listen carefully to the recording below and produce a faithful transcript. Do not summarize, do not add "
    "commentary, keep repetitions and false starts, and write numbers as words. <audio>",
]
QUESTIONS = [
    "<audio>Is the speaker male or female? Answer in one word.", "<audio>What language is spoken?",
    "<audio>How many people are speaking?", "What emotion does the speaker express? <audio>",
    "<audio>Does the speaker mention a place? Answer yes or no.",
]
SHORT_ANSWERS = ["Yes.", "No.", "Female.", "Male.", "English.", "One person.", "Calm and neutral.", "Mostly cheerful."]
SYSTEMS = [
    "You are a speech recognition model. Output only the transcript.",
    "You are an assistant that answers questions about audio recordings. Be concise and accurate.",
]
# fmt: on


# --------------------------------------------------------------------------------------------
# Sibling benchmark and repo imports
# --------------------------------------------------------------------------------------------


def load_convert_bench() -> ModuleType:
    """Import the sibling convert_bench module (espeak-ng utterances, Stopwatch)."""
    return sibling("convert_bench")


# --------------------------------------------------------------------------------------------
# Corpus: clips of 1-30 s from espeak-ng utterances, then converted shards
# --------------------------------------------------------------------------------------------


@dataclass
class Utterance:
    """A base utterance at 16 kHz with its words."""

    audio: np.ndarray
    words: list[str]


def _load_utterances(cb: ModuleType, workers: int) -> list[Utterance]:
    bases = cb.build_bases(CACHE_DIR / f"base-v{cb.CORPUS_VERSION}", workers)
    out = []
    for b in bases:
        data, rate = sf.read(b["path"], dtype="float32")
        audio = data if rate == SR else soxr.resample(data, rate, SR, quality="HQ").astype(np.float32)
        out.append(Utterance(audio, b["text"].split()))
    return out


def _compose(utts: list[Utterance], seconds: float, rng: random.Random) -> tuple[np.ndarray, str]:
    """Concatenate random utterances (0.15-0.5 s pauses) and cut at ``seconds``; the words that fit."""
    target = int(seconds * SR)
    pieces: list[np.ndarray] = []
    words: list[str] = []
    have = 0
    while have < target:
        u = rng.choice(utts)
        if pieces:
            pause = np.zeros(int(rng.uniform(0.15, 0.5) * SR), np.float32)
            pieces.append(pause)
            have += len(pause)
        room = target - have
        if room <= 0:
            break
        take = min(room, len(u.audio))
        pieces.append(u.audio[:take])
        # words in proportion to the part kept (at least one, so no transcript is empty)
        kept = len(u.words) if take == len(u.audio) else max(int(len(u.words) * take / len(u.audio)), 0 if words else 1)
        words += u.words[:kept]
        have += take
    audio = np.concatenate(pieces)[:target]
    fade = min(160, len(audio))  # 10 ms fade-out where the cut lands
    audio[len(audio) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return audio, " ".join(words).rstrip(",;.") + "."


def _record(i: int, clip: str, transcript: str, rng: random.Random) -> dict[str, Any]:
    """One SFT record (ms-swift ``messages`` dialect): a transcription or a short question, sometimes a system prompt."""
    if rng.random() < TRANSCRIBE_SHARE:
        user, answer = rng.choice(PROMPTS), transcript
    else:
        user, answer = rng.choice(QUESTIONS), rng.choice(SHORT_ANSWERS)
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    if rng.random() < 0.25:
        messages.insert(0, {"role": "system", "content": rng.choice(SYSTEMS)})
    return {"id": f"tb-{i:05d}", "messages": messages, "audios": [clip]}


def build_corpus(corpus_dir: Path, n: int, max_seconds: float, workers: int) -> dict[str, Any]:
    """Write ``n`` clips + corpus.jsonl + meta.json to ``corpus_dir`` unless a matching copy is there."""
    meta_file = corpus_dir / "meta.json"
    want = {"version": CORPUS_VERSION, "seed": SEED, "records": n, "max_seconds": max_seconds}
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if all(meta.get(k) == v for k, v in want.items()):
            return meta
    print(f"building corpus of {n} records in {corpus_dir} ...", flush=True)
    t0 = time.perf_counter()
    utts = _load_utterances(load_convert_bench(), workers)
    shutil.rmtree(corpus_dir, ignore_errors=True)
    (corpus_dir / "clips").mkdir(parents=True)
    rng = random.Random(SEED)
    durations = [math.exp(rng.uniform(math.log(MIN_SECONDS), math.log(max_seconds))) for _ in range(n)]
    records = []
    for i, seconds in enumerate(durations):
        audio, transcript = _compose(utts, seconds, rng)
        rel = f"clips/{i:05d}.wav"
        sf.write(corpus_dir / rel, audio, SR, subtype="PCM_16")
        records.append(_record(i, rel, transcript, rng))
    with open(corpus_dir / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    ds = sorted(durations)
    meta = {
        **want,
        "audio_seconds": sum(durations),
        "seconds_min": ds[0],
        "seconds_median": statistics.median(ds),
        "seconds_max": ds[-1],
        "build_s": round(time.perf_counter() - t0, 2),
    }
    meta_file.write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def convert_corpus(corpus_dir: Path, out_dir: Path, workers: int, rebuild: bool) -> dict[str, Any]:
    """``audiodata.convert`` the corpus into ``out_dir`` (a no-op when a complete, matching run is there)."""
    use_checkout()
    import audiodata
    from audiodata.pipeline.options import OptionsError

    inputs = [str(corpus_dir / "corpus.jsonl")]
    try:
        result = audiodata.convert(inputs, out_dir, num_workers=workers, seed=SEED, overwrite=rebuild)
    except OptionsError:  # out_dir holds a conversion by other options or another audiodata version: redo it
        result = audiodata.convert(inputs, out_dir, num_workers=workers, seed=SEED, overwrite=True)
    if result.records_rejected:
        print(f"warning: convert rejected {result.records_rejected} records: {result.rejects_by_code}", flush=True)
    return {"records_written": result.records_written, "audio_seconds": result.audio_seconds, "shards": len(result.shards)}


def tiny_model(model_dir: Path) -> Path:
    """The tiny Qwen2-Audio model, built once per version of ``trainer/tiny.py`` (its source hash marks a complete copy)."""
    use_checkout()
    import trainer.tiny

    marker = model_dir / "bench-source.sha256"
    digest = hashlib.sha256(Path(trainer.tiny.__file__).read_bytes()).hexdigest()
    if not marker.is_file() or marker.read_text().strip() != digest:
        shutil.rmtree(model_dir, ignore_errors=True)
        trainer.tiny.make_tiny_model(model_dir, FAMILY, seed=0)
        marker.write_text(digest + "\n")
    return model_dir


# --------------------------------------------------------------------------------------------
# Training runs
# --------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One training run of one strategy."""

    strategy: str
    batch_size: int
    steps: int
    wall_s: float
    examples: int
    tokens: int
    padded_tokens: int
    planned_efficiency: float
    actual_efficiency: float
    audio_frame_fill: float  # real mel frames / frames fed to the encoder (30 s per clip)
    hf_samples_per_s: float | None
    foreign_cpu_share: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.examples / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def make_config(args: argparse.Namespace, model_dir: Path, data_dir: Path, output_dir: Path, steps: int) -> Any:
    """The TrainConfig ``audiodata train sft --model DIR --data OUT --max-steps N`` would build, for CPU."""
    use_checkout()
    from trainer.config import TrainConfig

    return TrainConfig.from_dict(
        {
            "task": "sft",
            "model": str(model_dir),
            "data": str(data_dir),
            "output_dir": str(output_dir),
            "family": FAMILY,
            "max_steps": steps,
            "per_device_batch_size": args.batch_size,
            "precision": "fp32",
            "use_lora": True,
            "seed": args.seed,
            "logging_steps": 10**9,  # no log lines mid-run
            "save_steps": 10**9,  # no checkpoint writes
            "dataloader_num_workers": args.dataloader_workers,
            "report_to": "none",
        },
        source="train_bench",
    )


def sampler_like(sampler: Any, *, grouped: bool, batch_size: int | None = None) -> Any:
    """A fresh sampler over the same lengths/clips/seed, grouped or not."""
    from trainer.sampler import LengthGroupedBatchSampler

    return LengthGroupedBatchSampler(
        sampler.lengths,
        sampler.clips,
        batch_size or sampler.rows_per_batch,
        sampler.max_clips,
        sampler.seed,
        mega=sampler.mega,
        grouped=grouped,
    )


def consumed_batches(sampler: Any, steps: int) -> list[list[int]]:
    """The first ``steps`` batches a run draws (epoch after epoch), from a fresh copy of ``sampler``."""
    fresh = sampler_like(sampler, grouped=sampler.grouped)
    out: list[list[int]] = []
    epoch = 0
    while len(out) < steps:
        fresh.set_epoch(epoch)
        out += fresh.batches()[: steps - len(out)]
        epoch += 1
    return out


def efficiency(lengths: list[int], batches: list[list[int]]) -> float:
    """Real / padded tokens of ``batches`` by the estimated lengths."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return real / padded if padded else 1.0


def quiet_libraries() -> None:
    """No progress bars from datasets/transformers, and not the trainer's known deprecation notice at every build."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r".*`(is_)?gradient_checkpointing` is deprecated", category=FutureWarning)


def _quiet(trainer: Any) -> None:
    """No progress bar: the table is the output."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)


def run_strategy(cfg: Any, grouped: bool, cb: ModuleType) -> Measurement:
    """Build a fresh Run, set the strategy's sampler, time ``trainer.train()``, read what it saw."""
    from transformers import set_seed

    from trainer.train import build

    shutil.rmtree(cfg.output_dir, ignore_errors=True)
    Path(cfg.output_dir).mkdir(parents=True)
    set_seed(cfg.seed)  # same LoRA init and dropout stream for both strategies
    run = build(cfg)
    _quiet(run.trainer)
    if not grouped:
        run.trainer.batch_sampler = sampler_like(run.sampler, grouped=False)
    sampler = run.trainer.batch_sampler
    steps = cfg.max_steps * cfg.gradient_accumulation_steps
    batches = consumed_batches(sampler, steps)
    planned = efficiency(sampler.lengths, batches)
    with cb.Stopwatch() as sw:
        result = run.trainer.train()
    seen = run.trainer.seen
    skipped = len(run.skips.read())
    return Measurement(
        strategy="grouped" if grouped else "random",
        batch_size=cfg.per_device_batch_size,
        steps=int(run.trainer.state.global_step),
        wall_s=sw.wall_s,
        examples=seen.examples,
        tokens=seen.tokens,
        padded_tokens=seen.padded_tokens,
        planned_efficiency=planned,
        actual_efficiency=seen.padding_efficiency,
        audio_frame_fill=seen.audio_seconds * 100 / (3000 * seen.examples) if seen.examples else 0.0,
        hf_samples_per_s=result.metrics.get("train_samples_per_second"),
        foreign_cpu_share=sw.foreign_cpu_share,
        extra={
            "batches_per_epoch": len(sampler),
            "estimated_tokens": sum(sampler.lengths[i] for b in batches for i in b),
            "audio_seconds_seen": round(seen.audio_seconds, 2),
            "final_train_loss": result.metrics.get("train_loss"),
            "skipped_records": skipped,
        },
    )


def warm_up(cfg: Any) -> float:
    """An untimed short run so one-time costs (kernel set-up, first allocations) hit neither strategy."""
    from transformers import set_seed

    from trainer.train import build

    t0 = time.perf_counter()
    shutil.rmtree(cfg.output_dir, ignore_errors=True)
    set_seed(cfg.seed)
    run = build(cfg)
    _quiet(run.trainer)
    run.trainer.train()
    return time.perf_counter() - t0


def trainer_sampler(cfg: Any) -> Any:
    """The sampler ``build(cfg)`` makes, without loading the model: estimated lengths from the shards."""
    from trainer.data import estimate_lengths, load_rows
    from trainer.families import get_family
    from trainer.sampler import LengthGroupedBatchSampler

    lengths, clips, _ = estimate_lengths(load_rows(cfg, cfg.train_split), get_family(cfg.family).math, cfg.long_audio)
    return LengthGroupedBatchSampler(lengths, clips, cfg.per_device_batch_size, cfg.max_clips_per_batch, cfg.seed)


def epoch_table(sampler: Any, batch_sizes: list[int], epochs: int) -> list[dict[str, Any]]:
    """Padding efficiency of whole epochs, grouped vs random, by the estimates (mean over ``epochs`` epochs)."""
    rows = []
    for bs in batch_sizes:
        row: dict[str, Any] = {"batch_size": bs}
        for grouped in (True, False):
            s = sampler_like(sampler, grouped=grouped, batch_size=bs)
            effs = []
            for e in range(epochs):
                s.set_epoch(e)
                effs.append(s.padding_efficiency())
            row["grouped" if grouped else "random"] = statistics.mean(effs)
            if grouped:
                row["batches_per_epoch"] = len(s)
        row["ratio"] = row["grouped"] / row["random"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# One epoch on several processes (torchrun workers)
# --------------------------------------------------------------------------------------------


@dataclass
class ProcessRun:
    """One epoch of the grouped trainer on ``processes`` data-parallel processes (counters summed over ranks)."""

    processes: int
    steps_per_rank: int
    micro_batches: int
    wall_s: float  # the slowest rank's trainer.train()
    examples: int
    repeated_rows: int
    tokens: int
    padded_tokens: int
    planned_efficiency: float
    final_loss: float | None
    foreign_cpu_share: float | None

    @property
    def samples_per_s(self) -> float:
        return self.examples / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    @property
    def actual_efficiency(self) -> float:
        return self.tokens / self.padded_tokens if self.padded_tokens else 1.0


def epoch_config(args: argparse.Namespace, model_dir: Path, data_dir: Path, output_dir: Path) -> Any:
    """The benchmark's config for exactly one epoch (every record once, whatever the process count)."""
    use_checkout()
    from trainer.config import TrainConfig

    cfg = make_config(args, model_dir, data_dir, output_dir, 1).to_dict()
    cfg.update(max_steps=-1, num_train_epochs=1.0)
    return TrainConfig.from_dict(cfg, source="train_bench")


def worker(args: argparse.Namespace) -> int:
    """Inside ``torchrun``: build, time one epoch, sum the counters over the ranks; rank 0 writes the JSON."""
    import torch
    from transformers import set_seed

    use_checkout()
    from trainer import dist
    from trainer.train import build

    quiet_libraries()
    torch.set_num_threads(args.threads)
    root = CACHE_DIR / f"train-bench-{args.records}"
    rank, world = dist.world()
    cfg = epoch_config(args, Path(args.worker_model), root / "out", root / "runs" / f"processes-{world}")
    if rank == 0:
        shutil.rmtree(cfg.output_dir, ignore_errors=True)
    set_seed(cfg.seed)
    run = build(cfg)
    _quiet(run.trainer)
    dist.barrier()
    busy0, own0, t0 = _machine_busy(), _own_cpu(), time.perf_counter()
    run.trainer.train()
    wall = time.perf_counter() - t0
    own = _own_cpu() - own0
    seen = run.trainer.seen.reduced()
    walls = dist.all_reduce_sum([wall if r == rank else 0.0 for r in range(world)])
    own_total = dist.all_reduce_sum([own])[0]
    if rank == 0:
        busy1 = _machine_busy()
        slowest = max(walls)
        foreign = None
        if busy0 is not None and busy1 is not None:
            foreign = max(0.0, busy1 - busy0 - own_total) / (slowest * (os.cpu_count() or 1))
        history = [e["loss"] for e in run.trainer.state.log_history if "loss" in e]
        out = ProcessRun(
            processes=world,
            steps_per_rank=run.sampler.steps_per_epoch,
            micro_batches=seen.micro_batches,
            wall_s=slowest,
            examples=seen.examples,
            repeated_rows=seen.repeated_rows,
            tokens=seen.tokens,
            padded_tokens=seen.padded_tokens,
            planned_efficiency=run.sampler.padding_efficiency(),
            final_loss=history[-1] if history else None,
            foreign_cpu_share=foreign,
        )
        Path(args.worker).write_text(json.dumps(asdict(out)) + "\n")
    return 0


def _machine_busy() -> float | None:
    return load_convert_bench()._machine_busy_seconds()


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_processes(args: argparse.Namespace, model_dir: Path, processes: int) -> ProcessRun:
    """Launch ``torchrun --nproc_per_node processes`` on this script's worker mode; read what rank 0 wrote."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", __file__]
        cmd += ["--records", str(args.records), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
        cmd += ["--threads", str(args.threads), "--dataloader-workers", str(args.dataloader_workers)]
        cmd += ["--worker", str(result), "--worker-model", str(model_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO_ROOT)}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"torchrun with {processes} processes failed:\n{done.stderr[-4000:]}")
        return ProcessRun(**json.loads(result.read_text()))


def process_table(runs: list[ProcessRun]) -> dict[str, Any]:
    """Print the process counts side by side (the fastest repeat of each), with ratios to the first."""
    best: dict[int, ProcessRun] = {}
    for r in runs:
        if r.processes not in best or r.wall_s < best[r.processes].wall_s:
            best[r.processes] = r
    rows = [best[k] for k in sorted(best)]
    header = (
        f"{'processes':>9} {'steps/rank':>10} {'examples':>8} {'repeated':>8} {'wall s':>7} {'samples/s':>10} "
        f"{'tokens/s':>9} {'pad eff planned':>15} {'pad eff actual':>14}"
    )
    print()
    print("one epoch of the grouped trainer on N processes (torchrun, gloo on CPU; counters summed over the ranks)")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.processes:>9} {r.steps_per_rank:>10} {r.examples:>8} {r.repeated_rows:>8} {r.wall_s:>7.2f} "
            f"{r.samples_per_s:>10.2f} {r.tokens_per_s:>9.0f} {r.planned_efficiency:>15.3f} {r.actual_efficiency:>14.3f}"
        )
    base = rows[0]
    for r in rows[1:]:
        print(
            f"{f'{r.processes} vs {base.processes}':>9} {r.steps_per_rank / base.steps_per_rank:>10.2f} {'':>8} {'':>8} "
            f"{r.wall_s / base.wall_s:>7.2f} {r.samples_per_s / base.samples_per_s:>10.2f} "
            f"{r.tokens_per_s / base.tokens_per_s:>9.2f} {r.planned_efficiency / base.planned_efficiency:>15.2f} "
            f"{r.actual_efficiency / base.actual_efficiency:>14.2f}"
        )
    for r in rows:
        if r.foreign_cpu_share is not None and r.foreign_cpu_share > FOREIGN_CPU_WARN:
            print(f"note: other processes took {r.foreign_cpu_share:.0%} of the CPUs during the {r.processes}-process run")
    return {
        "rows": [{**asdict(r), "samples_per_s": r.samples_per_s, "tokens_per_s": r.tokens_per_s,
                  "actual_efficiency": r.actual_efficiency} for r in rows],
        "all_runs": [asdict(r) for r in runs],
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _best_by_strategy(measurements: list[Measurement]) -> dict[str, Measurement]:
    """Per strategy, the fastest repeat: the least disturbed one (padding figures are the same in every repeat)."""
    return {name: min((m for m in measurements if m.strategy == name), key=lambda m: m.wall_s) for name in ("grouped", "random")}


def report(
    measurements: list[Measurement],
    epochs: list[dict[str, Any]],
    epochs_avg: int,
    corpus: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Print both tables and the ratios; return the JSON-able figures."""
    best = _best_by_strategy(measurements)
    g, r = best["grouped"], best["random"]
    header = (
        f"{'strategy':<9} {'batch':>5} {'steps':>5} {'wall s':>7} {'samples/s':>10} {'tokens/s':>9} "
        f"{'pad eff planned':>15} {'pad eff actual':>14}"
    )
    print()
    print(header)
    print("-" * len(header))
    for m in (g, r):
        print(
            f"{m.strategy:<9} {m.batch_size:>5} {m.steps:>5} {m.wall_s:>7.2f} {m.samples_per_s:>10.2f} "
            f"{m.tokens_per_s:>9.0f} {m.planned_efficiency:>15.3f} {m.actual_efficiency:>14.3f}"
        )
    ratios = {
        "samples_per_s": _ratio(g.samples_per_s, r.samples_per_s),
        "tokens_per_s": _ratio(g.tokens_per_s, r.tokens_per_s),
        "padding_efficiency_planned": _ratio(g.planned_efficiency, r.planned_efficiency),
        "padding_efficiency_actual": _ratio(g.actual_efficiency, r.actual_efficiency),
    }
    print(
        f"{'grouped/random':<29} {ratios['samples_per_s']:>10.2f} {ratios['tokens_per_s']:>9.2f} "
        f"{ratios['padding_efficiency_planned']:>15.2f} {ratios['padding_efficiency_actual']:>14.2f}"
    )
    if g.examples != r.examples or g.steps != r.steps:
        print(f"warning: the runs differ in work done ({g.steps}/{r.steps} steps, {g.examples}/{r.examples} examples)")
    if g.steps != g.extra["batches_per_epoch"]:
        print(
            f"note: {g.steps} steps is not one epoch ({g.extra['batches_per_epoch']} batches), "
            "so the two strategies trained on partly different records"
        )
    cpus = os.cpu_count() or 1
    needed = args.threads + args.dataloader_workers
    threads = f"{needed} thread{'s' if needed > 1 else ''}"
    shares = [m.foreign_cpu_share for m in measurements if m.foreign_cpu_share is not None]
    for m in (g, r):  # the runs shown; a disturbed repeat that lost is harmless
        share = m.foreign_cpu_share
        if share is not None and cpus * (1 - share) < needed - FOREIGN_CPU_WARN * cpus:
            print(
                f"warning: other processes took {share:.0%} of the {cpus} CPUs during the {m.strategy} run shown, leaving "
                f"{cpus * (1 - share):.1f} for its {threads}; its figure is unreliable (rerun on an idle machine)"
            )
    if shares and max(shares) > FOREIGN_CPU_WARN:
        print(
            f"note: other processes took {min(shares):.0%}-{max(shares):.0%} of the {cpus} CPUs during the timed runs "
            f"(this benchmark needs {threads})"
        )
    est, real = g.extra["estimated_tokens"], g.tokens
    print(
        f"tokens in the grouped run's batches: {est:,} estimated (what the sampler groups by), {real:,} collated "
        f"({real / est:.2f}x; the tiny model's tokenizer is byte-level)"
    )
    print(f"audio encoder input filled with real audio: {g.audio_frame_fill:.1%} (every clip is padded to 30 s)")

    eh = f"{'batch':>5} {'batches/epoch':>13} {'grouped':>8} {'random':>8} {'grouped/random':>15}"
    print()
    print(f"padding efficiency of a whole epoch, by the estimates (mean of {epochs_avg} epochs, {corpus['records']} records)")
    print(eh)
    print("-" * len(eh))
    for row in epochs:
        print(
            f"{row['batch_size']:>5} {row['batches_per_epoch']:>13} {row['grouped']:>8.3f} {row['random']:>8.3f} "
            f"{row['ratio']:>15.2f}"
        )

    def as_dict(m: Measurement) -> dict[str, Any]:
        return {**asdict(m), "samples_per_s": m.samples_per_s, "tokens_per_s": m.tokens_per_s}

    import peft
    import torch
    import transformers
    import trl

    return {
        "corpus": corpus,
        "settings": {
            "records": args.records,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "max_seconds": args.max_seconds,
            "seed": args.seed,
            "repeats": args.repeats,
            "warmup_steps": args.warmup_steps,
            "dataloader_workers": args.dataloader_workers,
            "torch_threads": args.threads,
            "family": FAMILY,
            "precision": "fp32",
            "lora": True,
        },
        "results": {"grouped": as_dict(g), "random": as_dict(r)},
        "all_runs": [as_dict(m) for m in measurements],
        "grouped_over_random": ratios,
        "epoch_padding_efficiency": {"epochs_averaged": epochs_avg, "rows": epochs},
        "host": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
        },
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=240, help="SFT records in the corpus (default 240)")
    p.add_argument(
        "--max-seconds", type=float, default=30.0, help="longest clip; durations are log-uniform from 1 s (default 30)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="per-device batch size of both runs (default 8)")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps of each run (default 30)")
    p.add_argument("--seed", type=int, default=0, help="training seed: sampler order, LoRA init (default 0)")
    p.add_argument(
        "--repeats", type=int, default=2, help="timed runs per strategy, alternating order; the fastest is shown (default 2)"
    )
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed warm-up run (0: none; default 2)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the tiny model's ops are too small to gain from more, and thread "
        "barriers stall badly when another process shares the cores)",
    )
    p.add_argument("--dataloader-workers", type=int, default=0, help="data-loader worker processes (default 0, as the trainer)")
    p.add_argument(
        "--epoch-batch-sizes", type=_int_list, default=[4, 8, 16], help="batch sizes of the epoch table (default 4,8,16)"
    )
    p.add_argument("--epochs-avg", type=int, default=5, help="epochs averaged in the epoch table (default 5)")
    p.add_argument("--num-workers", type=int, default=os.cpu_count() or 1, help="workers for building and converting the corpus")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON here")
    p.add_argument(
        "--processes", type=_int_list, default=[1, 2], help="process counts of the one-epoch torchrun table (default 1,2)"
    )
    p.add_argument("--no-processes", action="store_true", help="skip the process table (no torchrun launches)")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # inside torchrun: write this rank-0 result file
    p.add_argument("--worker-model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("records", "batch_size", "steps", "repeats", "epochs_avg", "num_workers", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_seconds <= MIN_SECONDS:
        p.error(f"--max-seconds must be > {MIN_SECONDS:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build/reuse corpus, shards and model; train both strategies; print the comparison."""
    args = parse_args(argv)
    if args.worker is not None:
        return worker(args)
    at_start = machine()
    cb = load_convert_bench()
    quiet_libraries()
    root = CACHE_DIR / f"train-bench-{args.records}"
    corpus_dir, data_dir = root / "corpus", root / "out"
    old_meta = (corpus_dir / "meta.json").read_text() if (corpus_dir / "meta.json").exists() else None
    corpus = build_corpus(corpus_dir, args.records, args.max_seconds, args.num_workers)
    rebuilt = old_meta is None or json.loads(old_meta) != corpus
    corpus = {**corpus, **convert_corpus(corpus_dir, data_dir, args.num_workers, rebuilt), "dir": str(data_dir)}
    model_dir = tiny_model(CACHE_DIR / f"tiny-{FAMILY}")
    import torch

    torch.set_num_threads(args.threads)
    print(
        f"corpus: {corpus['records_written']} records, {corpus['audio_seconds'] / 60:.1f} min of audio "
        f"(clips {corpus['seconds_min']:.1f}-{corpus['seconds_max']:.1f} s, median {corpus['seconds_median']:.1f} s) "
        f"in {data_dir}",
        flush=True,
    )

    runs_dir = root / "runs"
    if args.warmup_steps:
        took = warm_up(make_config(args, model_dir, data_dir, runs_dir / "warmup", args.warmup_steps))
        print(f"warm-up: {args.warmup_steps} steps in {took:.1f} s (untimed)", flush=True)
    measurements: list[Measurement] = []
    for rep in range(args.repeats):
        for grouped in (True, False) if rep % 2 == 0 else (False, True):
            name = "grouped" if grouped else "random"
            cfg = make_config(args, model_dir, data_dir, runs_dir / name, args.steps)
            m = run_strategy(cfg, grouped, cb)
            measurements.append(m)
            print(f"{name}: {m.steps} steps in {m.wall_s:.1f} s", flush=True)
    shutil.rmtree(runs_dir, ignore_errors=True)

    reference = trainer_sampler(make_config(args, model_dir, data_dir, runs_dir / "plan", args.steps))
    epochs = epoch_table(reference, args.epoch_batch_sizes, args.epochs_avg)
    figures = report(measurements, epochs, args.epochs_avg, corpus, args)
    if not args.no_processes:
        runs = []
        for rep in range(args.repeats):
            for n in args.processes if rep % 2 == 0 else list(reversed(args.processes)):
                runs.append(run_processes(args, model_dir, n))
                print(f"{n} process(es): one epoch in {runs[-1].wall_s:.1f} s", flush=True)
        figures["processes"] = process_table(runs)
    ratios, grouped = figures["grouped_over_random"], figures["results"]["grouped"]
    heads = [headline(
        f"SFT on the tiny Qwen2-Audio (CPU, LoRA), {args.steps} steps, length-grouped batches", grouped["tokens_per_s"],
        "tokens/s", "random batches, same run", ratios["tokens_per_s"],
        f"ratio: tokens/s grouped / random; samples/s {ratios['samples_per_s']:.2f}x",
    )]  # fmt: skip
    if figures.get("processes") and len(figures["processes"]["rows"]) > 1:
        one, more = figures["processes"]["rows"][0], figures["processes"]["rows"][-1]
        heads.append(headline(
            f"one epoch on {more['processes']} processes (torchrun, gloo on CPU)", more["samples_per_s"], "samples/s",
            f"{one['processes']} process, same run", more["samples_per_s"] / one["samples_per_s"], "ratio: samples/s",
        ))  # fmt: skip
    save_results(args.json, "train", command_line("train_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
