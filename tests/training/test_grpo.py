"""``audiodata train grpo`` (trainer/grpo.py): the audio reaches every forward, every prompt is trained on each
epoch (one process and two), the encoder runs once per distinct clip without changing its output, and a tiny
model's mean reward rises on a task it can learn, within CI's time.

The data comes from tests/training/rl_fixture.py (the ``rl`` contract's columns written with ``datasets``), and
through ``audiodata convert`` from MMAU-style JSON (the hand-written fixture, and real MMAU items where the mirror is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.rl_fixture import CLIPS, asr_row, mcq_row, write_rl_dataset
from trainer import grpo
from trainer.config import TrainConfig

pytest.importorskip("trl")


# -- fast: the pieces ----------------------------------------------------------------------------------------------


def drawn(sampler: Any) -> list[int]:
    return list(iter(sampler))


def test_covering_sampler_trains_every_prompt_where_trls_drops_the_tail():
    from trl.trainer.utils import RepeatSampler

    args = {"data_source": list(range(10)), "mini_repeat_count": 3, "batch_size": 4, "repeat_count": 2, "seed": 1}
    trl = drawn(RepeatSampler(**args))
    assert len(set(trl)) == 8  # TRL keeps full chunks only: 2 of 10 prompts never come in this epoch
    ours = grpo.covering_sampler_class()(**args)
    got = drawn(ours)
    assert set(got) == set(range(10)) and len(got) == len(ours) == 3 * 4 * 3 * 2
    assert ours.repeated == 2  # the last chunk filled with two prompts from the start of the order
    for c in range(0, len(got), 4 * 3 * 2):  # each chunk: every prompt mini_repeat times in a row, chunk repeated
        chunk = got[c : c + 24]
        assert chunk[:12] == chunk[12:] and all(chunk[k] == chunk[k - k % 3] for k in range(12))
    assert drawn(ours) != got  # the next epoch draws a new order


def test_distinct_rows_finds_equal_rows_only():
    a, b = torch.randn(4, 8, 30), torch.randn(4, 8, 30)
    x = torch.stack([a[0], b[0], a[0], a[1], b[0]])
    assert grpo.distinct_rows(x) == ([0, 1, 3], [0, 1, 0, 2, 1])
    mask = torch.ones(5, 30, dtype=torch.long)
    mask[2, 20:] = 0  # same features, other mask: not the same clip
    assert grpo.distinct_rows(x, mask) == ([0, 1, 2, 3], [0, 1, 2, 3, 1])
    y = x.clone()
    y[2, 7, 29] += 1e-3  # differs where the fingerprint may not look: still told apart
    assert grpo.distinct_rows(y)[1] == [0, 1, 2, 3, 1]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_distinct_rows_reads_the_dtypes_training_runs_in(dtype: torch.dtype):
    """bf16 features (the GPU default) have no numpy dtype: the first GPU run crashed here (scripts/gpu_check.sh)."""
    a, b = torch.randn(8, 30).to(dtype), torch.randn(8, 30).to(dtype)
    x = torch.stack([a, b, a, b, b])
    assert grpo.distinct_rows(x) == ([0, 1], [0, 1, 0, 1, 1])


def test_stacked_audio_gives_each_row_slice_its_own_clips_in_order():
    clip = [torch.full((1, 2, 5), float(v)) for v in (1, 2, 3)]
    prompts = [
        grpo.Prompt([1], torch.cat([clip[0], clip[1]]), torch.ones(2, 5, dtype=torch.long)),
        grpo.Prompt([2], None, None),
        grpo.Prompt([3], clip[2][:, :, :3], torch.ones(1, 3, dtype=torch.long)),
    ]
    audio = grpo.stack_audio(prompts)
    assert audio is not None and audio[grpo.FEATURES].shape == (3, 2, 2, 5)
    every = grpo.audio_inputs(audio, 0, 3, torch.float32)
    assert every["input_features"][:, 0, 0].tolist() == [1.0, 2.0, 3.0]
    assert every["feature_attention_mask"].sum(-1).tolist() == [5, 5, 3]  # the short clip keeps its own length
    assert grpo.audio_inputs(audio, 1, 2, torch.float32) == {}  # a text-only row: no audio kwargs
    last = grpo.audio_inputs(audio, 2, 3, torch.float32)
    assert last["input_features"].shape == (1, 2, 5) and float(last["input_features"][0, 0, 0]) == 3.0
    assert grpo.stack_audio([grpo.Prompt([1], None, None)]) is None


# -- slow: the tiny model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.tiny import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


def config(tiny: str, data: Path, out: Path, **kw: Any) -> TrainConfig:
    base = {
        "task": "grpo", "model": tiny, "data": str(data), "output_dir": str(out), "logging_steps": 1, "save_steps": 1000,
        "per_device_batch_size": 8, "num_generations": 4, "max_completion_length": 4, "rl_samples": 2,
    }  # fmt: skip
    return TrainConfig.from_dict({**base, **kw})


@pytest.mark.slow
def test_the_audio_reaches_the_log_prob_passes_and_the_encoder_dedup_is_exact(tiny: str, tmp_path: Path):
    bad = mcq_row(2, None, marker=True)  # an <audio> marker without a clip: skipped at load, logged, never trained
    data = write_rl_dataset(tmp_path / "data", [mcq_row(0, CLIPS[0]), asr_row(1, CLIPS[1]), bad, mcq_row(3, None)])
    run = grpo.build(config(tiny, data, tmp_path / "out"))
    assert run.rows["id"] == ["mcq-000", "asr-001", "mcq-003"]
    logged = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [(e["id"], e["reason"]) for e in logged] == [("mcq-002", "1 <audio> marker(s) in the prompt for 0 clip(s)")]
    t = run.trainer
    prompt = grpo.encode_prompt(run.collator, run.rows[0])
    ids = torch.tensor([[*prompt.ids, 40, 41, 42]])
    mask = torch.ones_like(ids)
    audio = grpo.stack_audio([prompt])
    assert audio is not None
    t._audio = audio
    heard = t._get_per_token_logps_and_entropies(t.model, ids, mask, 3)[0]
    t._audio = {**audio, grpo.FEATURES: torch.zeros_like(audio[grpo.FEATURES])}
    silent = t._get_per_token_logps_and_entropies(t.model, ids, mask, 3)[0]
    assert not torch.allclose(heard, silent)  # the completion's log-probs depend on the clip
    t._audio = None  # what TRL's own passes give the model: no features, and no error either (the placeholders are
    deaf = t._get_per_token_logps_and_entropies(t.model, ids, mask, 3)[0]  # embedded as text): a deaf policy
    assert not torch.allclose(heard, deaf)
    tower = t.accelerator.unwrap_model(t.model).get_base_model().model.audio_tower
    feats = audio[grpo.FEATURES][0, :1]
    x = torch.cat([feats, feats, torch.randn_like(feats), feats])
    with torch.no_grad():
        deduped = tower.forward(x).last_hidden_state
        each = torch.cat([tower.forward(x[i : i + 1]).last_hidden_state for i in range(4)])
    assert torch.equal(deduped, each)
    t.train()  # one epoch on a mix of audio and text-only prompts: 2 prompts per step, the third repeated once
    cov = grpo.coverage(t, run.rows, 4)
    assert t.state.global_step == 2 and cov["trained"] == 3 and cov["groups"] == 4.0


@pytest.mark.slow
def test_tiny_model_learns_the_letter_the_reward_favours(tiny: str, tmp_path: Path):
    """Every answer is choice B; mcq_letter pays 1 for a completion that picks B. A random tiny model almost never
    does (~2% of completions); within a few dozen steps of GRPO it nearly always does."""
    data = write_rl_dataset(tmp_path / "data", [mcq_row(i, CLIPS[i % len(CLIPS)]) for i in range(7)])
    cfg = config(
        tiny, data, tmp_path / "out", max_steps=24, per_device_batch_size=32, num_generations=16, max_completion_length=16,
        learning_rate=2e-2, beta=0.0, warmup_ratio=0.0, lr_scheduler_type="constant", reward_funcs="mcq_letter,format",
        reward_weights="1,0.5", rl_sample_steps=12,
    )  # fmt: skip
    from trainer.train import train

    report = train(cfg)
    rewards = [h["rewards"]["mcq_letter"] for h in report["rl_history"]]
    assert len(rewards) == 24
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert first < 0.2 and last > 0.6, rewards
    assert report["coverage"]["trained"] == 7 and not report["coverage"]["missing"]
    assert report["reward_last"] == pytest.approx(report["rl_history"][-1]["reward"])
    samples = report["samples"]
    assert len(samples) == 2 and [c["step"] for c in samples[0]["completions"]] == [0, 12, 24]
    assert set(samples[0]["completions"][0]["rewards"]) == {"mcq_letter", "format"}
    out = tmp_path / "out"
    page = (out / "rl.html").read_text(encoding="utf-8")
    assert "mcq_letter" in page and page.count('<article class="sample"') == 2 and page.count("<audio controls") == 2
    saved = json.loads((out / "train_report.json").read_text(encoding="utf-8"))
    assert saved["rl_history"] == report["rl_history"]
    assert (out / "adapter_config.json").is_file() and (out / "loss_curve.png").is_file()


@pytest.mark.slow
def test_two_processes_train_every_prompt_each_epoch_with_one_report(tiny: str, tmp_path: Path):
    from tests.training.test_distributed import torchrun

    rows = [mcq_row(i, CLIPS[i % len(CLIPS)]) for i in range(5)] + [asr_row(5, CLIPS[1]), asr_row(6, CLIPS[2])]
    data = write_rl_dataset(tmp_path / "data", rows)
    flags = {
        "model": tiny, "data": data, "output_dir": tmp_path / "out", "per_device_batch_size": 4, "num_generations": 4,
        "max_completion_length": 4, "num_train_epochs": 1, "logging_steps": 1, "save_steps": 1000, "rl_samples": 3,
        "reward_funcs": "answer",
    }  # fmt: skip
    report = torchrun("grpo", flags)  # one JSON document on stdout: rank 0 alone reports
    # 2 ranks x 4 completions = 8 per step = 2 prompts: 7 prompts fill 4 steps, the last with 1 repeated prompt
    assert report["processes"] == 2 and report["steps"] == 4
    assert report["coverage"] == {"prompts": 7, "trained": 7, "missing": [], "groups": 8.0, "most_times": 2.0}
    assert report["repeated_prompts_per_epoch"] == 1
    assert len(report["samples"]) == 3 and all(s["completions"] for s in report["samples"])
    assert (tmp_path / "out" / "rl.html").is_file()


@pytest.mark.slow
def test_omni_thinker_hears_the_audio_and_trains(tmp_path: Path):
    """Qwen2.5-Omni's thinker (its encoder takes the clips' frames packed into one sequence): the same audio path,
    and each distinct clip through the encoder once per call (the dedup wraps the thinker's get_audio_features)."""
    from trainer.tiny import make_tiny_model

    omni = str(make_tiny_model(tmp_path / "omni", family="qwen2.5-omni"))
    data = write_rl_dataset(tmp_path / "data", [mcq_row(0, CLIPS[0]), asr_row(1, CLIPS[1]), mcq_row(2, None)])
    run = grpo.build(config(omni, data, tmp_path / "out", per_device_batch_size=4, max_steps=2, beta=0.04))
    t = run.trainer
    prompt = grpo.encode_prompt(run.collator, run.rows[0])
    ids = torch.tensor([[*prompt.ids, 40, 41, 42]])
    audio = grpo.stack_audio([prompt])
    assert audio is not None
    t._audio = audio
    heard = t._get_per_token_logps_and_entropies(t.model, ids, torch.ones_like(ids), 3)[0]
    t._audio = {**audio, grpo.FEATURES: torch.zeros_like(audio[grpo.FEATURES])}
    silent = t._get_per_token_logps_and_entropies(t.model, ids, torch.ones_like(ids), 3)[0]
    t._audio = None
    assert not torch.allclose(heard, silent)
    thinker = next(m for m in t.model.modules() if type(m).__name__ == "Qwen2_5OmniThinkerModel")
    assert hasattr(thinker.get_audio_features, "original")
    feats, mask = audio[grpo.FEATURES][0, :1], audio[grpo.FEATURE_MASK][0, :1]
    other = torch.randn_like(feats)
    x, m = torch.cat([feats, feats, other, feats]), torch.cat([mask, mask, mask, mask])
    m[2, int(mask.sum()) // 2 :] = 0  # the other clip shorter: its own length out
    frames: list[int] = []
    hook = thinker.audio_tower.register_forward_hook(lambda mod, args, out: frames.append(args[0].shape[-1]))
    with torch.no_grad():
        deduped = thinker.get_audio_features(x, m).last_hidden_state
        each = torch.cat([thinker.get_audio_features.original(x[i : i + 1], m[i : i + 1]).last_hidden_state for i in range(4)])
    hook.remove()
    assert frames[0] == int(mask.sum()) + int(m[2].sum())  # the encoder saw the two distinct clips, not four
    assert deduped.shape == each.shape and torch.allclose(deduped, each, atol=1e-5, rtol=0)  # packing: float rounding only
    t.train()
    assert t.state.global_step == 2 and all("kl" in e for e in t.state.log_history if "reward" in e)


MMAU = Path(__file__).resolve().parents[1] / "fixtures" / "rl" / "mmau_test_mini.json"


@pytest.mark.slow
def test_grpo_trains_on_what_convert_wrote_from_mmau_json(tiny: str, tmp_path: Path):
    """The contract end to end: MMAU-style JSON -> `audiodata convert` -> `train grpo`."""
    import re
    import shutil

    import audiodata
    from tests.training.rl_fixture import SAMPLE_AUDIO
    from trainer.train import train

    corpus = tmp_path / "mmau"
    (corpus / "test-mini-audios").mkdir(parents=True)
    shutil.copy(MMAU, corpus / MMAU.name)
    for clip in set(re.findall(r"test-mini-audios/([^\"]+)", MMAU.read_text(encoding="utf-8"))):
        shutil.copy(SAMPLE_AUDIO / clip, corpus / "test-mini-audios" / clip)
    out = tmp_path / "converted"
    audiodata.convert([str(corpus / MMAU.name)], out, num_workers=1, media_root=str(corpus))
    cfg = config(tiny, out, tmp_path / "run", max_steps=2, max_completion_length=4)
    report = train(cfg)
    items = len(json.loads(MMAU.read_text(encoding="utf-8")))
    assert report["steps"] == 2 and report["skipped"]["records"] == 0 and report["train_records"] == items
    assert all(s["choices"] and s["task"] == "mcq" for s in report["samples"])


@pytest.mark.slow
def test_grpo_bench_encoder_dedup_pays(tmp_path: Path):
    """benchmarks/grpo_bench.py at CI size (16 completions, 8 per prompt, 2 timed steps each way): the encoder once
    per distinct clip measured 4-5x faster per step at the default size (2 cores, load 12); under 1.5x the dedup
    is lost (every completion encoding its clip again) or costs what it saves."""
    from tests.bench_run import ratios, run_bench

    args = ["--steps", "2", "--prompts", "4", "--completions", "16", "--generations", "8", "--tokens", "8"]
    doc = run_bench("grpo_bench.py", args, tmp_path)
    (ratio,) = ratios(doc).values()
    assert ratio >= 1.5, doc["stdout"]
    assert doc["cpu_ratio"] >= 1.5, doc["stdout"]


@pytest.mark.slow
def test_a_clip_that_does_not_decode_costs_its_group_not_the_run(tiny: str, tmp_path: Path):
    """A damaged clip at step N: the prompt is trained on as silence with no reward (its group gets advantage 0),
    logged once in skipped.jsonl; its fixed-prompt sample says it was not generated."""
    import math

    data = write_rl_dataset(tmp_path / "data", [mcq_row(0, CLIPS[0]), mcq_row(1, "corrupt.wav")])
    run = grpo.build(config(tiny, data, tmp_path / "out", max_steps=2, reward_funcs="mcq_letter,format"))
    run.trainer.train()
    run.sampler.sample(run.trainer.model, 2, final=True)
    logged = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [e["id"] for e in logged] == ["mcq-001"] and "no reward" in logged[0]["reason"]
    logs = run.trainer._logs  # the last generation batch: 2 prompts x 4 completions
    nan = [math.isnan(r) for r in logs["rewards"]["mcq_letter"]]
    assert sum(nan) == 4 and nan == [math.isnan(r) for r in logs["rewards"]["format"]]
    assert all(a == 0.0 for a, n in zip(logs["advantages"], nan, strict=True) if n)
    samples = {s["id"]: s for s in run.sampler.section()}
    assert all(c["error"] and c["reward"] is None for c in samples["mcq-001"]["completions"])
    assert all(c["error"] is None and c["rewards"]["format"] is not None for c in samples["mcq-000"]["completions"])


@pytest.mark.slow
def test_an_eval_split_is_scored_with_the_rewards_and_shown_on_the_page(tiny: str, tmp_path: Path):
    """eval_split: TRL generates on the held-out prompts (with their audio) every eval_steps and at the end, scores
    them with the run's rewards; the report keeps each evaluation, rl.html charts it, the fixed prompts are held out."""
    data = write_rl_dataset(tmp_path / "data", [mcq_row(i, CLIPS[i % len(CLIPS)]) for i in range(4)])
    write_rl_dataset(data, [mcq_row(10, CLIPS[3]), asr_row(11, CLIPS[4])], split="validation")
    cfg = config(tiny, data, tmp_path / "out", max_steps=3, eval_split="validation", eval_steps=2, reward_funcs="answer,format")
    from trainer.train import train

    report = train(cfg)
    ev = report["evaluation"]
    assert ev["records"] == 2 and ev["source"] == "eval split 'validation'"
    assert [h["step"] for h in ev["history"]] == [2, 3]  # every eval_steps, and once at the end
    assert all(set(h["rewards"]) == {"answer", "format"} and h["reward"] is not None for h in ev["history"])
    assert {s["id"] for s in report["samples"]} == {"mcq-010", "asr-011"} and report["samples_from"] == "eval"
    assert report["coverage"]["prompts"] == 4  # the held-out prompts are never trained on
    page = (tmp_path / "out" / "rl.html").read_text(encoding="utf-8")
    assert "2 held-out prompts (eval split &#x27;validation&#x27;)" in page
    # the pre-flight ran before step 1, and the hearing comparison on the held-out prompts before and after
    checks = report["preflight"]["checks"]
    assert report["preflight"]["ok"] and list(checks) == ["versions", "loading", "prompts", "audio_tokens", "memory",
                                                           "rollout", "hearing"]  # fmt: skip
    heard = report["audio_conditioning"]
    assert heard["held_out"] and heard["dataset"] == "eval" and len(heard["rows"]) == 2
    assert heard["before"]["kl_zeroed"] > 0 and heard["after"]["kl_zeroed"] > 0
    assert (tmp_path / "out" / "preflight.json").is_file()


@pytest.mark.slow
def test_eval_holdout_keeps_training_records_out_of_training(tiny: str, tmp_path: Path):
    data = write_rl_dataset(tmp_path / "data", [mcq_row(i, CLIPS[i % len(CLIPS)]) for i in range(6)])
    run = grpo.build(config(tiny, data, tmp_path / "out", max_steps=1, eval_holdout=0.34))
    assert len(run.eval_rows) == 2 and len(run.rows) == 4
    assert not set(run.eval_rows["id"]) & set(run.rows["id"]) and run.trainer.eval_dataset is run.eval_rows
    assert run.trainer.args.eval_strategy == "steps"


MIRROR_MMAU = Path("/work/.mirror/Sakshi113+MMAU/repo")


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR_MMAU.is_dir(), reason="no mirror of github.com/Sakshi113/MMAU here (never committed)")
def test_grpo_on_real_mmau_items_paired_with_sample_clips(tiny: str, tmp_path: Path):
    """The issue's proof on real public records: items of MMAU's own test-mini file (read from the repository's
    mirror at test time, never committed), each paired with a real sample_data clip (MMAU's audio is not
    redistributed), linted (counted per task), converted and trained on with GRPO, every item a multiple-choice prompt."""
    import shutil
    import subprocess

    import audiodata
    from tests.training.rl_fixture import SAMPLE_AUDIO
    from trainer.train import train

    show = ["git", "-C", str(MIRROR_MMAU), "show", "HEAD:mmau-test-mini.json"]
    items = json.loads(subprocess.run(show, capture_output=True, check=True).stdout)
    picked = [it for it in items if [c.strip().casefold() for c in it["choices"]].count(it["answer"].strip().casefold()) == 1]
    picked = [dict(it) for it in picked[:8]]
    corpus = tmp_path / "mmau"
    (corpus / "test-mini-audios").mkdir(parents=True)
    for k, it in enumerate(picked):
        clip = CLIPS[k % len(CLIPS)]
        it["audio_id"] = f"./test-mini-audios/{clip}"
        shutil.copy(SAMPLE_AUDIO / clip, corpus / "test-mini-audios" / clip)
    (corpus / "mmau-test-mini.json").write_text(json.dumps(picked), encoding="utf-8")
    linted = audiodata.lint([str(corpus / "mmau-test-mini.json")], media_root=str(corpus), num_workers=1).to_dict()
    assert linted["summary"]["errors"] == 0 and linted["summary"]["rl_tasks"] == {"mcq": 8}
    out = tmp_path / "converted"
    audiodata.convert([str(corpus / "mmau-test-mini.json")], out, num_workers=1, media_root=str(corpus))
    report = train(config(tiny, out, tmp_path / "run", max_steps=2, max_completion_length=4, reward_funcs="mcq_letter"))
    assert report["steps"] == 2 and report["train_records"] == 8 and report["skipped"]["records"] == 0
    questions = {it["question"] for it in picked}
    assert all(s["choices"] and s["task"] == "mcq" and s["answer"] in s["choices"] for s in report["samples"])
    assert all(any(q in s["prompt"] for q in questions) for s in report["samples"])
