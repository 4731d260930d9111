"""Pre-flight of a training run (trainer/preflight.py): ``train ... --dry-run`` and the checks before step 1.

Each check is shown to pass on the tiny model as built and to fail on the fault it exists for: a library
too old, a processor from another checkpoint, audio placeholders that do not match the features, a batch
over the device's memory, a non-finite loss, and a model that does not hear its audio (projector output
multiplied by zero, a collator that drops the features, an attention mask over the audio positions).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import torch
import yaml

from tests.training.test_trainer_kto import kto_data  # noqa: F401  (a fixture)
from trainer import preflight, versions
from trainer.config import TrainConfig
from trainer.tiny import make_tiny_model
from trainer.train import build

os.environ["HF_HUB_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


def config(model: str, data: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {"model": model, "data": str(data), "output_dir": str(out), "max_steps": 2, "per_device_batch_size": 4}
    return TrainConfig.from_dict({**base, **kw})


@pytest.fixture(scope="module")
def run(tiny: str, sample_out, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One assembled SFT run on the sample corpus (nothing trained); tests break it and restore it."""
    out, _ = sample_out
    return build(config(tiny, out, tmp_path_factory.mktemp("run")))


def checks(run: Any, *names: str) -> preflight.Preflight:
    """Run the named checks in order on ``run`` (the batches first when a later check needs them)."""
    pf = preflight.Preflight(run.cfg, dry_run=True)
    table = {
        "loading": lambda: preflight.check_loading(run.cfg, run),
        "batches": lambda: preflight.check_batches(pf, run),
        "audio_tokens": lambda: preflight.check_audio_tokens(pf, run),
        "memory": lambda: preflight.check_memory(pf, run),
        "step": lambda: preflight.check_step(pf, run),
        "hearing": lambda: preflight.check_hearing(pf, run),
    }
    for name in names:
        pf.run(name, table[name])
    return pf


# -- library versions -----------------------------------------------------------------------------
def test_version_floors_are_the_train_extra_of_pyproject():
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    floors = dict(re.fullmatch(r"([\w-]+)>=([\d.]+)", spec).groups() for spec in extra)  # type: ignore[union-attr]
    floors.pop("matplotlib")  # the loss plot, not a training library
    assert floors == versions.REQUIRED


def test_too_old_and_missing_libraries_fail_naming_package_installed_and_required(monkeypatch, tiny, sample_out, tmp_path):
    fake = {"transformers": "4.44.2", "trl": None}
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda p: fake[p] if p in fake else real(p))
    status, detail, data = preflight.check_versions(TrainConfig(model=tiny, data="x", load_in_4bit=True), "qwen2-audio")
    assert status == "fail"
    assert "transformers 4.44.2 is installed; the trainer (qwen2-audio) needs transformers>=5.2" in detail
    assert "trl is not installed" in detail and "trl>=1.16" in detail
    assert "bitsandbytes" in data and data["bitsandbytes"]["required"] == ">=0.46"  # QLoRA's own requirement
    assert data["transformers"] == {"installed": "4.44.2", "required": ">=5.2", "needed": True, "status": "fail"}
    # the dry run stops there: exit 2, every later check skipped, the report written
    from audiodata.cli.main import main

    out, _ = sample_out
    code = main(["train", "sft", "--model", tiny, "--data", str(out), "--output-dir", str(tmp_path / "dry"), "--dry-run"])
    assert code == 2
    report = json.loads((tmp_path / "dry" / "preflight.json").read_text())
    assert [c["status"] for c in report["checks"]] == ["fail"] + ["skip"] * 7
    assert report["exit_code"] == 2 and report["versions"]["transformers"]["installed"] == "4.44.2"


def test_optional_library_out_of_range_is_a_warning_not_a_failure():
    check = versions.PackageCheck("torchcodec", "0.15.0", "0.13", "0.14", needed=False, why="decoding")
    assert check.status == "warn" and "torchcodec 0.15.0 is installed" in (check.problem() or "")
    assert versions.PackageCheck("torchvision", None, None, needed=False).status == "ok"


# -- loading -----------------------------------------------------------------------------------
def test_processor_from_another_checkpoint_fails_loading_and_the_dry_run(tiny, sample_out, tmp_path):
    other = tmp_path / "mismatched"
    shutil.copytree(tiny, other)
    cfg_path = other / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["audio_token_index"] = 5  # the model now expects another placeholder id than its processor writes
    cfg_path.write_text(json.dumps(cfg))
    out, _ = sample_out
    # through YAML: dry_run is a config field like any other
    yml = tmp_path / "dry.yaml"
    yml.write_text(yaml.safe_dump({"model": str(other), "data": str(out), "output_dir": str(tmp_path / "dry"), "dry_run": True}))
    from audiodata.cli.main import main

    assert main(["train", "sft", "--config", str(yml), "--json"]) == 2
    report = json.loads((tmp_path / "dry" / "preflight.json").read_text())
    loading = next(c for c in report["checks"] if c["name"] == "loading")
    assert loading["status"] == "fail"
    assert "the processor's <|AUDIO|> is id 277, the model's config expects 5" in loading["detail"]
    assert not (tmp_path / "dry" / "adapter_model.safetensors").exists()


def test_pre_flight_settings_are_validated(tiny, sample_out):
    from trainer.config import ConfigError

    out, _ = sample_out
    for bad in ({"audio_check_records": 0}, {"audio_check_min_kl": -1}):
        with pytest.raises(ConfigError, match="audio_check_records must be >= 1 and audio_check_min_kl >= 0"):
            TrainConfig.from_dict({"model": tiny, "data": str(out), **bad})


def test_loading_reports_what_loaded(run):
    status, detail, data = preflight.check_loading(run.cfg, run)
    assert status == "ok", detail
    assert data["audio_token_id"] == {"processor": 277, "model": 277}
    assert data["mel_bins"] == {"processor": 128, "model": 128} and data["processor"] == "Qwen2AudioProcessor"


# -- batches, audio tokens, memory -----------------------------------------------------------------
def test_longest_batches_of_the_plan_are_encoded_and_audio_tokens_agree(run):
    pf = checks(run, "batches", "audio_tokens")
    batches, tokens = pf.checks
    assert batches.status == "ok", batches.detail
    plan = run.sampler.batches()
    longest = max(max(run.sampler.lengths[i] for i in b) for b in plan)
    assert max(b["estimated_longest"] for b in batches.data["batches"]) == longest
    assert tokens.status == "ok", tokens.detail
    for rec in tokens.data["records"]:
        assert rec["text"] == rec["features"] == rec["lint"] > 0


def test_a_record_that_cannot_be_used_is_named_and_the_dry_run_logs_no_skip(tiny, sample_out, tmp_path):
    from tests.training.test_trainer import subset

    out, _ = sample_out
    broken = subset(out, tmp_path / "broken", "sft", keep=4, corrupt=(1,))
    pf = preflight.dry_run(config(tiny, broken, tmp_path / "dry", dry_run=True))
    batches = pf.get("batches")
    assert batches is not None and batches.status == "warn"
    assert re.search(r"record '[^']+' will be skipped: audio: cannot decode", batches.detail), batches.detail
    assert not (tmp_path / "dry" / "skipped.jsonl").exists()  # training logs it when it meets the record


def test_audio_placeholders_that_do_not_match_the_features_fail(run):
    pf = checks(run, "batches")
    e = next(e for e in pf.examples if "feature_attention_mask" in e)
    e["input_ids"] = torch.cat([e["input_ids"], torch.tensor([run.collator.audio_id])])  # one placeholder too many
    status, detail, _ = preflight.check_audio_tokens(pf, run)
    assert status == "fail" and "Audio features and audio tokens do not match" in detail


def test_memory_estimate_against_the_device(run, monkeypatch):
    pf = checks(run, "batches", "memory")
    memory = pf.checks[-1]
    assert memory.status == "ok", memory.detail
    assert "compared with host RAM" in memory.detail  # no GPU here: said so
    est = memory.data["estimate"]
    assert memory.data["micro_batch"]["padded_tokens"] == max(int(b["input_ids"].numel()) for b in pf.collated)
    assert est["total_gb"] > 0 and {i["what"] for i in est["items"]} >= {"activations", "weights, fp32"}
    # the same batch on a CUDA device with too little memory fails, naming what to lower
    import trainer.memory

    monkeypatch.setattr(trainer.memory, "device_memory", lambda rank=0: ("cuda:0 tiny", 1e9, "GPU memory"))
    status, detail, _ = preflight.check_memory(pf, run)
    assert status == "fail" and "exceeds 1.00 GB GPU memory" in detail and "per_device_batch_size" in detail


def _yaml_header(name: str) -> tuple[dict[str, Any], float, float]:
    text = (REPO / "trainer" / "configs" / name).read_text()
    total, gpu = re.search(r"total \.+ ~ ([\d.]+) GB \([\d.]+ GiB\) of (\d+) GB", text).groups()  # type: ignore[union-attr]
    return yaml.safe_load(text), float(total), float(gpu)


@pytest.mark.parametrize(
    ("name", "processes", "tokens"),
    [
        ("qwen2_audio_7b_lora_1x24gb.yaml", 1, 4000),
        ("qwen2_audio_7b_qlora_1x16gb.yaml", 1, 2000),
        ("qwen2_audio_7b_full_8x80gb.yaml", 8, 4000),
    ],
)
def test_memory_arithmetic_gives_the_shipped_configs_headers(name, processes, tokens, sample_out):
    """The estimate on Qwen2-Audio-7B-Instruct's real architecture (meta device: nothing allocated) gives the
    figures the configs' headers work out by hand (their T: per_device_batch_size clips x ~1000 tokens)."""
    from transformers import Qwen2AudioConfig

    from trainer.families import get_family
    from trainer.memory import GB, Dims, count_parameters, estimate, meta_model, setup_of

    real = Qwen2AudioConfig(
        audio_config={"model_type": "qwen2_audio_encoder", "d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20,
                      "encoder_ffn_dim": 5120, "num_mel_bins": 128, "max_source_positions": 1500},
        text_config={"model_type": "qwen2", "vocab_size": 156032, "hidden_size": 4096, "intermediate_size": 11008,
                     "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "tie_word_embeddings": False},
    )  # fmt: skip
    values, total, gpu = _yaml_header(name)
    out, _ = sample_out
    cfg = TrainConfig.from_dict({**values, "data": str(out)})
    family = get_family("qwen2-audio")
    counts = count_parameters(meta_model(real, family), family, family.lora_target_regex(), cfg.lora_r, cfg.train_projector)
    assert round(counts.total / 1e9, 3) == 8.397 and round(counts.lm_linear / 1e9, 3) == 6.476
    assert round(counts.towers / 1e9, 3) == 0.637 and round(counts.embeddings / 1e9, 3) == round(counts.lm_head / 1e9, 3) == 0.639
    assert counts.lora == cfg.lora_r * 32 * (4 * 2 * 4096 + 3 * (4096 + 11008))  # r=16: the headers' 39.98e6
    assert round(counts.trainable_full / 1e9, 3) == 7.755
    est = estimate(counts, Dims.of(real), setup_of(cfg, "bf16", processes, True, True), tokens, cfg.per_device_batch_size)
    assert est.total / GB == pytest.approx(total, rel=0.03), est.to_dict()
    assert est.total / GB < gpu


# -- one forward and backward ----------------------------------------------------------------------
def test_one_forward_and_backward_leaves_no_trace(run):
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if p.requires_grad}
    rng = torch.random.get_rng_state()
    pf = checks(run, "batches", "step")
    step = pf.checks[-1]
    assert step.status == "ok", step.detail
    assert step.data["with_gradient"] == step.data["trainable_tensors"] > 0 and step.data["nonzero_gradient"] > 0
    assert all(p.grad is None for p in run.trainer.model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in run.trainer.model.named_parameters() if p.requires_grad)
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_a_non_finite_loss_on_the_longest_batch_fails(run):
    # TRL's fused LM head reads lm_head's weight directly: break the hidden states before it
    norm = next(m for n, m in run.trainer.model.named_modules() if n.endswith("language_model.norm"))
    handle = norm.register_forward_hook(lambda m, i, o: o * float("nan"))
    try:
        pf = checks(run, "batches", "step")
    finally:
        handle.remove()
    assert pf.checks[-1].status == "fail" and "not finite" in pf.checks[-1].detail


# -- does the model hear the audio? -------------------------------------------------------------------
def test_the_tiny_model_as_built_hears_its_audio(run):
    pf = checks(run, "hearing")
    hearing = pf.checks[-1]
    assert hearing.status == "ok", hearing.detail
    data = hearing.data
    assert data["kl_zeroed"] > 100 * data["threshold"] and data["kl_swapped"] > data["threshold"]
    assert len(data["records"]) == run.cfg.audio_check_records and data["reply_tokens"] > 0
    # the random model predicts nearly uniformly, so its loss hardly moves: the KL is what separates
    assert abs(data["loss_real"] - data["loss_zeroed"]) < 0.5


def _projector_times_zero(run: Any) -> Any:
    projector = next(m for n, m in run.trainer.model.named_modules() if n.endswith(run.family.projector))
    return projector.register_forward_hook(lambda m, i, o: o * 0.0)


def test_projector_output_times_zero_is_not_conditioned_on_audio(run):
    handle = _projector_times_zero(run)
    try:
        pf = checks(run, "hearing")
    finally:
        handle.remove()
    hearing = pf.checks[-1]
    assert hearing.status == "fail" and hearing.detail.startswith("not conditioned on audio")
    assert hearing.data["kl_zeroed"] < 1e-9 and "0 nats/token" in hearing.detail
    # the table then shows the library versions and one record's rendered template
    buf = io.StringIO()
    pf.run("versions", lambda: preflight.check_versions(run.cfg, "qwen2-audio"))
    pf.print_table(buf)
    shown = buf.getvalue()
    assert "not conditioned on audio" in shown and "library versions: torch" in shown
    assert "<|audio_bos|><|AUDIO|><|audio_eos|>" in shown and "<|im_start|>assistant" in shown


class Collator:
    """The run's collator with ``change`` applied to every batch it returns (everything else delegated)."""

    def __init__(self, inner: Any, change: Any) -> None:
        self.inner, self.change = inner, change

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return self.change(self.inner(examples))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_collator_whose_features_never_reach_the_model_fails(run, monkeypatch):
    def drop_features(batch: dict[str, Any]) -> dict[str, Any]:
        batch.pop("input_features", None)
        batch.pop("feature_attention_mask", None)
        return batch

    monkeypatch.setattr(run, "collator", Collator(run.collator, drop_features))
    hearing = checks(run, "hearing").checks[-1]
    assert hearing.status == "fail" and "not conditioned on audio" in hearing.detail and "no input_features" in hearing.detail


def test_audio_positions_masked_out_of_attention_fail(run, monkeypatch):
    audio_id = run.collator.audio_id

    def mask_audio(batch: dict[str, Any]) -> dict[str, Any]:
        batch["attention_mask"] = batch["attention_mask"] * (batch["input_ids"] != audio_id)
        return batch

    monkeypatch.setattr(run, "collator", Collator(run.collator, mask_audio))
    hearing = checks(run, "hearing").checks[-1]
    assert hearing.status == "fail" and "not conditioned on audio" in hearing.detail


# -- end to end ---------------------------------------------------------------------------------------
def test_dry_run_passes_on_the_tiny_model_and_trains_nothing(tiny, sample_out, tmp_path, capsys):
    from audiodata.cli.main import main

    out, _ = sample_out
    dry = tmp_path / "dry"
    args = ["train", "sft", "--model", tiny, "--data", str(out), "--output-dir", str(dry), "--dry-run", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((dry / "preflight.json").read_text()) | {"seconds": report["seconds"]}
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert list(statuses) == list(preflight.SFT_CHECKS)
    assert all(s in ("ok", "warn") for s in statuses.values()), report["checks"]
    assert all(statuses[n] == "ok" for n in ("loading", "build", "batches", "audio_tokens", "memory", "step", "hearing"))
    assert report["exit_code"] == 0 and report["dry_run"] and report["template"]["rendered"].startswith("<|im_start|>")
    assert report["versions"]["torch"]["installed"] and report["platform"]["python"] and report["config"]["model"] == tiny
    assert sorted(p.name for p in dry.iterdir()) == ["preflight.json"]  # no checkpoint, adapter, report or batch log


def test_a_file_where_the_output_folder_should_be_is_a_machine_fault(tiny, sample_out, tmp_path):
    from audiodata.cli.main import main

    out, _ = sample_out
    (tmp_path / "taken").write_text("a file")
    args = ["train", "sft", "--model", tiny, "--data", str(out), "--output-dir", str(tmp_path / "taken" / "run"), "--dry-run"]
    assert main(args) == 3


@pytest.mark.slow
def test_a_real_run_stops_before_step_1_when_the_model_does_not_hear(tiny, sample_out, tmp_path, monkeypatch):
    import trainer.train

    def deaf_build(cfg: TrainConfig) -> Any:
        built = build(cfg)
        _projector_times_zero(built)
        return built

    monkeypatch.setattr(trainer.train, "build", deaf_build)
    out, _ = sample_out
    cfg = config(tiny, out, tmp_path / "run")
    with pytest.raises(preflight.PreflightFailed, match="not conditioned on audio"):
        trainer.train.train(cfg)
    report = json.loads((tmp_path / "run" / "preflight.json").read_text())
    assert report["exit_code"] == 2 and not report["dry_run"]
    assert not list((tmp_path / "run").glob("checkpoint-*")) and not (tmp_path / "run" / "train_report.json").exists()
    # the config field turns the audio check off; then the run trains
    cfg = config(tiny, out, tmp_path / "run2", preflight_audio_check=False)
    assert trainer.train.train(cfg)["steps"] == 2


@pytest.mark.slow
def test_report_compares_hearing_before_and_after_training_on_records_the_run_never_saw(tiny, sample_out, tmp_path):
    from trainer.batchlog import read_batch_log
    from trainer.train import train

    out, _ = sample_out
    report = train(config(tiny, out, tmp_path / "run", learning_rate=1e-3))
    assert report["preflight"]["ok"] and report["preflight"]["checks"]["hearing"]["status"] == "ok"
    held = report["audio_conditioning"]
    assert held["held_out"] and held["source"] == "training records this run does not reach"
    trained = {i for e in read_batch_log(tmp_path / "run" / "batches.jsonl") for i in e["ids"]}
    ids = set(held["before"]["records"])
    assert ids and ids == set(held["after"]["records"]) and not ids & trained
    for when in ("before", "after"):
        assert held[when]["kl_zeroed"] > held["threshold"] and held[when]["reply_tokens"] > 0
    assert held["heard_after_training"] is True
    saved = json.loads((tmp_path / "run" / "train_report.json").read_text())
    assert saved["audio_conditioning"] == held


@pytest.mark.slow
@pytest.mark.parametrize("task", ["dpo", "kto"])
def test_dry_run_on_preference_tasks(task, tiny, sample_out, kto_data, tmp_path):  # noqa: F811
    out, _ = sample_out
    data = kto_data if task == "kto" else out
    pf = preflight.dry_run(config(tiny, data, tmp_path / "dry", per_device_batch_size=2, task=task, dry_run=True))
    assert pf.exit_code == 0, [c.to_dict() for c in pf.checks]
    assert pf.get("step").status == pf.get("hearing").status == "ok"  # type: ignore[union-attr]


@pytest.mark.slow
def test_dry_run_on_the_tiny_omni_thinker(sample_out, tmp_path):
    omni = str(make_tiny_model(tmp_path / "omni", family="qwen2.5-omni"))
    out, _ = sample_out
    pf = preflight.dry_run(config(omni, out, tmp_path / "dry", dry_run=True))
    assert pf.exit_code == 0, [c.to_dict() for c in pf.checks]
    assert pf.get("hearing").data["kl_zeroed"] > 100 * pf.cfg.audio_check_min_kl  # type: ignore[union-attr]


@pytest.mark.slow
def test_held_out_records_come_from_the_eval_split_when_there_is_one(tiny, tmp_path):
    import audiodata
    from tests.conftest import SAMPLE
    from trainer.data import load_rows
    from trainer.train import train

    out = tmp_path / "ds"
    audiodata.convert([str(SAMPLE)], out, num_workers=1, val_ratio=0.3)
    cfg = config(tiny, out, tmp_path / "run", eval_split="validation", eval_steps=1000)
    held = train(cfg)["audio_conditioning"]
    assert held["held_out"] and held["source"] == "eval split 'validation'"
    evals = set(load_rows(cfg, "validation")["id"])
    assert set(held["after"]["records"]) <= evals and not set(held["after"]["records"]) & set(load_rows(cfg, "train")["id"])
    assert held["before"]["kl_zeroed"] > held["threshold"] and held["after"]["kl_zeroed"] > held["threshold"]
