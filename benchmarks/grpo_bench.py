#!/usr/bin/env python
"""GRPO on the tiny audio model: seconds per step with the audio encoder run once per distinct clip, against the
same steps with it run once per completion (TRL's way: every prompt comes ``num_generations`` times).

Both runs train the same steps on the same data in this one process (one torch thread), the encoder dedup of
``trainer/grpo.py`` (``dedup_audio_tower``) on, then off, so the ratio holds however loaded the machine is. The
figure per step is TRL's own ``step_time`` (generation, rewards, the loss pass), averaged over the steps after
the first; the CPU seconds of each whole ``train()`` are reported next to it (less sensitive to other load).

Data: ``--prompts`` (default 8) four-way multiple-choice questions on sample_data clips (real espeak-ng speech),
written in the ``rl`` contract's columns (tests/training/rl_fixture.py); ``--completions`` (default 32) per step
in groups of ``--generations`` (default 16), ``--tokens`` (default 16) new tokens each. ``--family qwen2.5-omni``
measures the Omni thinker instead (its dedup wraps the thinker's ``get_audio_features``; results as ``grpo_omni``).

Usage::

    python benchmarks/grpo_bench.py                         # 6 steps each way
    python benchmarks/grpo_bench.py --steps 3 --json grpo.json
    python benchmarks/grpo_bench.py --family qwen2.5-omni --json grpo_omni.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import REPO_ROOT, command_line, headline, machine, save_results, use_checkout


def run_once(model: str, data: Path, out: Path, args: argparse.Namespace, dedup: bool) -> dict[str, Any]:
    from trainer import grpo
    from trainer.config import TrainConfig

    settings = {
        "task": "grpo", "model": model, "data": str(data), "output_dir": str(out), "max_steps": args.steps + 1,
        "per_device_batch_size": args.completions, "num_generations": args.generations,
        "max_completion_length": args.tokens, "logging_steps": 1, "save_steps": 100000, "rl_samples": 0,
        "beta": 0.04, "seed": 0,
    }  # fmt: skip
    cfg = TrainConfig.from_dict(settings)
    run = grpo.build(cfg)
    if not dedup:  # TRL's way: the encoder on every row
        model = run.trainer.accelerator.unwrap_model(run.trainer.model).get_base_model()
        if args.family == "qwen2.5-omni":
            thinker = next(m for m in model.modules() if type(m).__name__ == "Qwen2_5OmniThinkerModel")
            thinker.get_audio_features = thinker.get_audio_features.original
        else:
            tower = model.model.audio_tower
            tower.forward = tower.forward.original
    cpu, wall = time.process_time(), time.perf_counter()
    run.trainer.train()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    steps = [e["step_time"] for e in run.trainer.state.log_history if "step_time" in e][1:]
    return {
        "dedup": dedup,
        "seconds_per_step": sum(steps) / len(steps),
        "steps_timed": len(steps),
        "train_cpu_s": round(cpu, 2),
        "train_wall_s": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps each way (after one untimed step)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--completions", type=int, default=32, help="completions per step (per_device_batch_size)")
    p.add_argument("--generations", type=int, default=16, help="completions per prompt (num_generations)")
    p.add_argument("--tokens", type=int, default=16, help="max_completion_length")
    p.add_argument("--family", default="qwen2-audio", choices=("qwen2-audio", "qwen2.5-omni"), help="the tiny model's family")
    p.add_argument("--json", help="write the figures here (benchmarks/results/grpo.json feeds the README table)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    use_checkout()
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    torch.set_num_threads(1)
    from tests.training.rl_fixture import CLIPS, mcq_row, write_rl_dataset
    from trainer.tiny import make_tiny_model

    at_start = machine()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = str(make_tiny_model(root / "model", family=args.family))
        data = write_rl_dataset(root / "data", [mcq_row(i, CLIPS[i % len(CLIPS)]) for i in range(args.prompts)])
        runs = [run_once(model, data, root / f"out-{d}", args, d) for d in (True, False)]
    on, off = runs
    speedup = off["seconds_per_step"] / on["seconds_per_step"]
    cpu_ratio = off["train_cpu_s"] / on["train_cpu_s"]
    figures = {"runs": runs, "speedup_per_step": round(speedup, 3), "cpu_ratio": round(cpu_ratio, 3), "settings": vars(args)}
    print(json.dumps(figures, indent=2))
    print(
        f"GRPO step, encoder once per distinct clip: {on['seconds_per_step']:.2f} s vs {off['seconds_per_step']:.2f} s once "
        f"per completion: {speedup:.2f}x (train CPU-s ratio {cpu_ratio:.2f}x; load {at_start['load_average']})"
    )
    omni = args.family == "qwen2.5-omni"
    label = "Omni thinker" if omni else "model"
    heads = [
        headline(
            f"GRPO step, tiny {label} (encoder once per distinct clip)", on["seconds_per_step"], "s/step",
            f"encoder once per completion ({args.completions} completions, {args.generations} per prompt)", speedup,
            f"train() CPU-s ratio {cpu_ratio:.2f}x",
        )
    ]  # fmt: skip
    save_results(args.json, "grpo_omni" if omni else "grpo", command_line("grpo_bench.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
