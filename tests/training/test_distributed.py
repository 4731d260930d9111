"""The trainer on two processes for real: ``torchrun --nproc_per_node 2`` (gloo, CPU) on the tiny model.

What each run is checked against is the batch plan itself (``LengthGroupedBatchSampler`` with the
run's settings, computed here) and the per-rank ``batches.jsonl`` the trainer writes: every training
row exactly once per epoch across the ranks, the same number of steps on each rank, resume in the
middle of an epoch continuing that epoch's order, one report with the ranks' counters summed.
Each launch costs about 20-40 s on a 2-core machine (two Python processes importing torch and
transformers), so the runs are few and short. They are marked ``slow`` and run in the default suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytest.importorskip("accelerate")

import torch

from tests.conftest import REPO, SAMPLE, write_jsonl
from trainer.batchlog import read_batch_log
from trainer.config import TrainConfig
from trainer.data import estimate_lengths, load_rows
from trainer.families import get_family
from trainer.sampler import LengthGroupedBatchSampler
from trainer.tiny import make_tiny_model

os.environ["HF_HUB_OFFLINE"] = "1"
LAUNCH_TIMEOUT = 420  # a shared 2-core CI machine; a hang (the failure this guards against) must still end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


def torchrun(task: str, flags: dict[str, Any], procs: int = 2) -> dict[str, Any]:
    """``torchrun --nproc_per_node procs -m trainer train TASK ... --json``: the report rank 0 prints."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    cmd += ["-m", "trainer", "train", task, *args, "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-6000:]
    return json.loads(done.stdout)  # exactly one JSON document: only rank 0 prints


def plan_for(tiny: str, data: Path, task: str, batch: int, clips: int, world: int) -> LengthGroupedBatchSampler:
    """The batch plan the trainer makes for these settings (estimated lengths, nothing decoded)."""
    cfg = TrainConfig.from_dict({"model": tiny, "data": str(data), "task": task})
    lengths, n_clips, _ = estimate_lengths(load_rows(cfg, "train"), get_family("qwen2-audio").math)
    return LengthGroupedBatchSampler(lengths, n_clips, batch, clips, seed=0, num_replicas=world)


def by_step(log: list[dict[str, Any]]) -> dict[tuple[int, int, int], list[int]]:
    return {(e["step"], e["micro"], e["rank"]): e["rows"] for e in log}


def check_epochs(log: list[dict[str, Any]], plan: LengthGroupedBatchSampler, epochs: int, world: int) -> None:
    """Every row exactly once per epoch across ranks, equal steps per rank, batches exactly as planned."""
    steps = plan.steps_per_epoch
    assert {e["rank"] for e in log} == set(range(world))
    assert sorted(Counter(e["step"] for e in log).values()) == [world] * (steps * epochs)  # every rank at every step
    for epoch in range(epochs):
        lines = [e for e in log if e["epoch"] == epoch]
        assert Counter(e["rank"] for e in lines) == dict.fromkeys(range(world), steps)
        real = Counter(r for e in lines for r, rep in zip(e["rows"], e["repeat"], strict=True) if not rep)
        assert sorted(real) == list(range(len(plan.lengths))) and set(real.values()) == {1}, epoch
        plan.set_epoch(epoch)
        for rank in range(world):
            want = [[plan.source(i) for i in b] for b in plan.rank_batches(rank)]
            got = [e["rows"] for e in sorted((e for e in lines if e["rank"] == rank), key=lambda e: e["step"])]
            assert got == want, (epoch, rank)


def check_report(report: dict[str, Any], log: list[dict[str, Any]], world: int, rows: int, epochs: int) -> None:
    """One report, whose counters are the sums over the ranks' batches."""
    assert report["processes"] == world
    assert report["examples_seen"] == rows * epochs
    assert report["repeated_rows"] == sum(sum(e["repeat"]) for e in log)
    assert report["micro_batches"] == len(log)
    assert report["tokens_seen"] == sum(e["tokens"] for e in log)
    assert report["audio_hours_seen"] == pytest.approx(sum(e["audio_seconds"] for e in log) / 3600, abs=1e-5)
    steps = {h["step"]: h["loss"] for h in report["loss_history"]}
    for step, loss in steps.items():  # the logged loss is the ranks' mean of their shares
        shares = [e["loss"] for e in log if e["step"] == step]
        assert sum(shares) / world == pytest.approx(loss, rel=1e-4), step


def mid_epoch_checkpoint(steps: int) -> int:
    """A save interval whose first checkpoint falls inside the second epoch."""
    return steps + max(1, steps // 2)


# -- the plan as accelerate deals it (fast, no processes) ------------------------------------


def test_accelerate_deals_the_plan_exactly_and_a_batch_size_would_lose_rows():
    from accelerate.data_loader import BatchSamplerShard, SkipBatchSampler

    lengths = [10 + (i * 37) % 500 for i in range(97)]
    clips = [(0, 1, 1, 2, 3)[i % 5] for i in range(97)]
    for world in (1, 2, 3, 4):
        plan = LengthGroupedBatchSampler(lengths, clips, batch_size=8, max_clips=4, seed=3, num_replicas=world)
        seen: Counter[int] = Counter()
        for rank in range(world):
            shard = BatchSamplerShard(plan, world, rank)  # what accelerate.prepare wraps it in
            dealt = list(shard)
            assert len(shard) == len(dealt) == plan.steps_per_epoch
            assert dealt == plan.rank_batches(rank)
            seen.update(i for b in dealt for i in b if not plan.is_repeat(i))
            assert list(SkipBatchSampler(shard, 2)) == dealt[2:]  # mid-epoch resume skips within the rank's share
        assert sorted(seen) == list(range(97)) and set(seen.values()) == {1}
        for step in range(plan.steps_per_epoch):  # every step: all ranks hold audio, or none does
            kinds = {any(clips[plan.source(i)] for i in b) for b in plan.batches()[step * world : (step + 1) * world]}
            assert len(kinds) == 1

    class WithBatchSize:  # how the sampler looked before: accelerate keeps a round only if its last batch is full
        batch_size = 8

        def __init__(self, inner: LengthGroupedBatchSampler) -> None:
            self.inner = inner

        def __iter__(self):
            return iter(self.inner)

        def __len__(self) -> int:
            return len(self.inner)

    old = WithBatchSize(LengthGroupedBatchSampler(lengths, clips, batch_size=8, max_clips=4, seed=3))
    dealt = [i for rank in range(2) for b in BatchSamplerShard(old, 2, rank) for i in b]
    assert len(set(dealt)) < 97 / 4  # the clip cap makes every batch short: whole rounds vanish


def test_epoch_sync_sets_the_epoch_from_the_step_count():
    from types import SimpleNamespace

    from trainer.train import EpochSync

    plan = LengthGroupedBatchSampler([5] * 20, [1] * 20, batch_size=3, max_clips=9, num_replicas=2)  # 7 batches -> 4 steps
    sync = EpochSync(plan, grad_accum=3)  # 2 optimizer steps per epoch, as transformers counts them
    for step, epoch in ((0, 0), (2, 1), (3, 1), (4, 2), (9, 4)):
        sync.on_epoch_begin(None, SimpleNamespace(global_step=step), None)
        assert plan.epoch == epoch


# -- SFT on two processes -------------------------------------------------------------------


SFT = {"per_device_batch_size": 4, "max_clips_per_batch": 5}


@pytest.fixture(scope="module")
def sft_run(tiny: str, sample_out, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    """Three epochs on two processes, uninterrupted, with a checkpoint inside the second epoch."""
    out, _ = sample_out
    plan = plan_for(tiny, out, "sft", SFT["per_device_batch_size"], SFT["max_clips_per_batch"], 2)
    run = tmp_path_factory.mktemp("sft2") / "run"
    flags = {"model": tiny, "data": out, "output_dir": run, "num_train_epochs": 3, "logging_steps": 1, "learning_rate": 1e-3}
    flags |= {"save_steps": mid_epoch_checkpoint(plan.steps_per_epoch), "save_total_limit": 10, **SFT}
    return run, torchrun("sft", flags), plan


@pytest.mark.slow
def test_two_processes_sft_see_every_row_once_per_epoch_with_one_summed_report(sft_run):
    run, report, plan = sft_run
    log = read_batch_log(run / "batches.jsonl")
    check_epochs(log, plan, epochs=3, world=2)
    check_report(report, log, world=2, rows=len(plan.lengths), epochs=3)
    assert report["steps"] == 3 * plan.steps_per_epoch == 3 * report["steps_per_epoch"]
    orders = [[e["rows"] for e in log if e["epoch"] == k] for k in range(3)]
    assert orders[0] != orders[1] != orders[2]  # set_epoch reached the sampler: each epoch its own order
    assert json.loads((run / "train_report.json").read_text())["examples_seen"] == report["examples_seen"]
    assert (run / "loss_curve.png").is_file() and (run / "adapter_model.safetensors").is_file()
    assert (run / "tokenizer_config.json").is_file()  # the processor, saved once by rank 0


@pytest.mark.slow
def test_two_processes_sft_resume_mid_epoch_continues_that_epochs_order(sft_run, tmp_path: Path):
    """Resume inside epoch 1: before the fix the resumed epoch replayed epoch 0's order (neither
    SkipBatchSampler nor BatchSamplerShard forwards set_epoch)."""
    run, report, plan = sft_run
    step = mid_epoch_checkpoint(plan.steps_per_epoch)
    assert plan.steps_per_epoch < step < 2 * plan.steps_per_epoch  # inside the second epoch
    resumed = tmp_path / "run"
    shutil.copytree(run, resumed)  # as if the run had been killed after that checkpoint
    flags = {"model": report["model"], "data": report["data"], "output_dir": resumed, "num_train_epochs": 3}
    flags |= {"logging_steps": 1, "learning_rate": 1e-3, "save_steps": step, "save_total_limit": 10, **SFT}
    again = torchrun("sft", {**flags, "resume": resumed / f"checkpoint-{step}"})
    assert again["resumed_from"].endswith(f"checkpoint-{step}") and again["steps"] == report["steps"]
    full, cont = read_batch_log(run / "batches.jsonl"), read_batch_log(resumed / "batches.jsonl")
    assert by_step(cont) == by_step(full)  # the same rows on the same rank at every step, both sides of the resume
    after = [e for e in cont if e["step"] > step]
    assert after and {e["epoch"] for e in after} == {1, 2}
    losses = {(e["step"], e["rank"]): e["loss"] for e in full}
    for e in after:
        assert e["loss"] == pytest.approx(losses[(e["step"], e["rank"])], rel=1e-4)
    assert again["examples_seen"] == sum(len(e["rows"]) - sum(e["repeat"]) for e in after)  # this run's own work


# -- DPO on two processes -------------------------------------------------------------------


DPO = {"per_device_batch_size": 2, "max_clips_per_batch": 3}


@pytest.fixture(scope="module")
def dpo_run(tiny: str, sample_out, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Two epochs of DPO on two processes, uninterrupted, with a checkpoint inside the second epoch."""
    out, _ = sample_out
    plan = plan_for(tiny, out, "dpo", DPO["per_device_batch_size"], DPO["max_clips_per_batch"], 2)
    flags = {"model": tiny, "data": out, "output_dir": tmp_path_factory.mktemp("dpo2") / "run", "num_train_epochs": 2}
    flags |= {"logging_steps": 1, "learning_rate": 1e-3, "save_steps": mid_epoch_checkpoint(plan.steps_per_epoch)}
    flags |= {"save_total_limit": 10, **DPO}
    return flags, torchrun("dpo", flags), plan


@pytest.mark.slow
def test_two_processes_dpo_see_every_pair_once_per_epoch_with_one_summed_report(dpo_run):
    flags, report, plan = dpo_run
    log = read_batch_log(flags["output_dir"] / "batches.jsonl")
    check_epochs(log, plan, epochs=2, world=2)
    check_report(report, log, world=2, rows=len(plan.lengths), epochs=2)
    assert report["task"] == "dpo" and report["repeated_rows"] > 0  # 13 pairs: odd batch counts, evened out


@pytest.mark.slow
def test_two_processes_dpo_resume_mid_epoch_continues_that_epochs_order(dpo_run, tmp_path: Path):
    flags, report, plan = dpo_run
    step = flags["save_steps"]
    assert plan.steps_per_epoch < step < 2 * plan.steps_per_epoch  # inside the second epoch
    shutil.copytree(flags["output_dir"], tmp_path / "resumed")
    again = torchrun("dpo", {**flags, "output_dir": tmp_path / "resumed", "resume": tmp_path / "resumed" / f"checkpoint-{step}"})
    cont = read_batch_log(tmp_path / "resumed" / "batches.jsonl")
    assert by_step(cont) == by_step(read_batch_log(flags["output_dir"] / "batches.jsonl"))
    assert again["steps"] == report["steps"] and any(e["step"] > step for e in cont)


KTO = {"per_device_batch_size": 2, "max_clips_per_batch": 3}


def kto_corpus(tmp: Path, n: int = 12) -> Path:
    """``n`` KTO records in TRL's unpaired preference form (prompt, completion, label: trl 1.16
    trainer/kto_trainer.py, around line 101), half desirable, converted (the ``kto`` config)."""
    clips = sorted((SAMPLE / "audio").glob("clip0[7-9]_16k.flac"))
    records = [
        {
            "prompt": [{"role": "user", "content": "<audio>Say what you hear."}],
            "completion": [{"role": "assistant", "content": f"Reply number {i} " + "la " * (i % 5)}],
            "label": i % 2 == 0,
            "audios": [str(clips[i % len(clips)])],
        }
        for i in range(n)
    ]
    import audiodata

    result = audiodata.convert([str(write_jsonl(tmp / "kto.jsonl", records))], tmp / "out", num_workers=1)
    assert result.records_written == n, result.rejects_by_code
    return tmp / "out"


@pytest.mark.slow
def test_two_processes_kto_every_row_once_per_epoch_and_resume_mid_epoch(tiny: str, tmp_path: Path):
    from trainer.config import TASKS

    if "kto" not in TASKS:
        # TODO(issue 12): runs by itself once `audiodata train kto` (trainer-correctness helper) is merged. Its
        # collate_kto must then also take the dummy clip for text-only batches (AudioCollator.attach_dummy).
        pytest.skip("`audiodata train kto` is not on this branch yet (issue 12, trainer-correctness part)")
    data = kto_corpus(tmp_path)
    plan = plan_for(tiny, data, "kto", KTO["per_device_batch_size"], KTO["max_clips_per_batch"], 2)
    step = mid_epoch_checkpoint(plan.steps_per_epoch)
    flags = {"model": tiny, "data": data, "output_dir": tmp_path / "run", "num_train_epochs": 2, "logging_steps": 1}
    flags |= {"learning_rate": 1e-3, "save_steps": step, "save_total_limit": 10, **KTO}
    report = torchrun("kto", flags)
    log = read_batch_log(tmp_path / "run" / "batches.jsonl")
    check_epochs(log, plan, epochs=2, world=2)
    check_report(report, log, world=2, rows=len(plan.lengths), epochs=2)
    shutil.copytree(tmp_path / "run", tmp_path / "resumed")
    again = torchrun("kto", {**flags, "output_dir": tmp_path / "resumed", "resume": tmp_path / "resumed" / f"checkpoint-{step}"})
    assert by_step(read_batch_log(tmp_path / "resumed" / "batches.jsonl")) == by_step(log) and again["steps"] == report["steps"]


# -- mixed text-only and audio records --------------------------------------------------------


def mixed_corpus(tmp: Path, audio: int = 14, text: int = 6) -> Path:
    """``audio`` records with a sample clip and ``text`` text-only ones (30 % by default), converted.

    The ms-swift ``messages`` + ``audios`` form (ms-swift docs/source_en/Customization/Custom-dataset.md);
    text-only records are the same form without ``audios``.
    """
    clips = sorted((SAMPLE / "audio").glob("clip0[7-9]_16k.flac")) + sorted((SAMPLE / "audio").glob("clip0[1-3]_22k.wav"))
    records: list[dict[str, Any]] = []
    for i in range(audio):
        words = " ".join(["word"] * (1 + i % 7))
        messages = [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": f"It says {words}."}]
        records.append({"id": f"a{i:02d}", "messages": messages, "audios": [str(clips[i % len(clips)])]})
    for i in range(text):
        question = "What is " + " plus ".join(["two"] * (2 + i % 3)) + "?"
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": f"The answer is {2 * (2 + i % 3)}."}]
        records.insert(3 * i + 1, {"id": f"t{i:02d}", "messages": messages})
    import audiodata

    result = audiodata.convert([str(write_jsonl(tmp / "mixed.jsonl", records))], tmp / "out", num_workers=1)
    assert result.records_written == audio + text, result.rejects_by_code
    return tmp / "out"


class FixedPlan(LengthGroupedBatchSampler):
    """A sampler that replays given batches (one process): the reference run's micro-batches."""

    def __init__(self, base: LengthGroupedBatchSampler, batches: list[list[int]]) -> None:
        super().__init__(base.lengths, base.clips, base.rows_per_batch, base.max_clips, base.seed)
        self.fixed = batches

    def _plan(self) -> list[list[int]]:
        return [list(b) for b in self.fixed]


@pytest.mark.slow
def test_two_processes_mixed_corpus_finish_and_match_a_single_process_replay(tiny: str, tmp_path: Path):
    """30 % text-only records on two ranks: every step is modality-homogeneous, text-only micro-batches
    carry the dummy clip so the audio encoder runs on every rank at every step, and the losses equal
    those of one process replaying the same micro-batches with gradient accumulation 2 and no dummy.

    Tolerance (rel 1e-5): both runs are fp32 on the same CPU and differ only in float summation order
    (gloo's all-reduce of the two ranks' gradients against accumulating them; the dummy clip can widen
    the padded batch, changing the length of the masked attention's reductions): about one float32 ulp
    (1.2e-7) per operation, carried through a few Adam steps. Measured: at most 2.3e-7 over the six
    steps. A dummy clip that reached the loss would show in its exact-zero gradients long before
    (test_dummy_audio_changes_nothing_but_runs_the_encoder).
    """
    data = mixed_corpus(tmp_path)
    common = {"model": tiny, "data": data, "per_device_batch_size": 2, "max_clips_per_batch": 4, "num_train_epochs": 1}
    common |= {"learning_rate": 2e-3, "warmup_ratio": 0.0, "lora_dropout": 0.0, "logging_steps": 1, "save_steps": 1000}
    report = torchrun("sft", {**common, "output_dir": tmp_path / "two"})
    assert report["modality"] == {"audio": 14, "text_only": 6}
    log = read_batch_log(tmp_path / "two" / "batches.jsonl")
    steps = sorted({e["step"] for e in log})
    assert len(steps) == report["steps"] and all(sum(e["step"] == s for e in log) == 2 for s in steps)
    for s in steps:
        pair = [e for e in log if e["step"] == s]
        assert len({e["clips"] > 0 for e in pair}) == 1, pair  # the same modality on both ranks
        assert all(e["audio_encoder_ran"] for e in pair)  # real clips or the dummy: the encoder ran everywhere
        assert all(e["dummy_audio"] == (e["clips"] == 0) for e in pair)
    text_steps = [s for s in steps if all(e["clips"] == 0 for e in log if e["step"] == s)]
    assert text_steps and report["dummy_audio_batches"] == 2 * len(text_steps)

    # the reference: one process, the same micro-batches in the same order, two per optimizer step
    from transformers import set_seed

    from trainer.train import build

    cfg = TrainConfig.from_dict(
        {**{k: str(v) if isinstance(v, Path) else v for k, v in common.items()}, "output_dir": str(tmp_path / "one")}
        | {"gradient_accumulation_steps": 2, "dummy_audio": False}
    )
    set_seed(0)
    one = build(cfg)
    order = [e["rows"] for e in sorted(log, key=lambda e: (e["step"], e["rank"]))]
    one.trainer.batch_sampler = FixedPlan(one.sampler, order)
    one.trainer.train()
    ref = {h["step"]: h["loss"] for h in one.trainer.state.log_history if "loss" in h}
    got = {h["step"]: h["loss"] for h in report["loss_history"]}
    assert sorted(ref) == sorted(got) == steps
    for s in steps:
        assert got[s] == pytest.approx(ref[s], rel=1e-5), (s, got, ref)
    assert got[steps[-1]] != pytest.approx(got[steps[0]], rel=1e-2) or len(steps) == 1  # training moved the loss


# -- dummy audio (one process) ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2-audio", "qwen2.5-omni"])
def test_dummy_audio_changes_nothing_but_runs_the_encoder(family: str, tmp_path: Path, tiny: str):
    """A text-only batch with the dummy clip: the same loss, the encoder ran, and the projector's
    gradients exist and are exact zeros (the encoder output enters the loss multiplied by zero)."""
    from trainer.collators import AudioCollator
    from trainer.train import count_encoder_runs

    path = tiny if family == "qwen2-audio" else str(make_tiny_model(tmp_path / "omni", family=family))
    fam = get_family(family)
    processor = fam.load_processor(path)
    model = fam.load(path, torch.float32, "sdpa").train()
    for name, p in model.named_parameters():
        p.requires_grad_(fam.projector in name)
    runs = count_encoder_runs(model)
    rows = [
        {"messages": [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]},
        {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue, like the sky."}]},
    ]
    plain = AudioCollator(fam, processor)
    with_dummy = AudioCollator(fam, processor, dummy_audio=True)
    a = plain([plain.encode_sft(r) for r in rows])
    b = with_dummy([with_dummy.encode_sft(r) for r in rows])
    assert "input_features" not in a and b["input_features"].shape[0] == 1
    assert int((b["input_ids"] == with_dummy.audio_id).sum()) == 12
    assert int(b["attention_mask"].sum()) == int(a["attention_mask"].sum())  # the dummy tokens are unseen
    loss_a = model(**a).loss
    assert runs == [0]
    loss_b = model(**b).loss
    # equal up to float summation order (the dummy can widen the padded batch): ~1 ulp, not a leak
    assert runs == [1] and loss_b.item() == pytest.approx(loss_a.item(), rel=1e-6)
    loss_b.backward()
    grads = [p.grad for n, p in model.named_parameters() if fam.projector in n]
    assert grads and all(g is not None and not bool(g.any()) for g in grads)
