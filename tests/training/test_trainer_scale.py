"""The 7B path as far as a CPU machine allows: what full fine-tuning trains, the QLoRA config path (the
quantization config built, clear errors when bitsandbytes or CUDA is missing), DeepSpeed/FSDP fields, the
shipped example YAMLs, the model created after the training arguments, and merge keeping the base dtype.
What needs CUDA (4-bit loading and training, DeepSpeed, FSDP across GPUs) never runs here: see the README."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch

from trainer import scale
from trainer.config import CONFIG_DIR, ConfigError, TrainConfig
from trainer.families import get_family
from trainer.tiny import make_tiny_model
from trainer.train import build, freeze_for_full_finetune, train

os.environ["HF_HUB_OFFLINE"] = "1"
YAMLS = sorted(CONFIG_DIR.glob("qwen2_audio_7b_*.yaml"))  # the 7B examples; tiny_sft.yaml is the README smoke run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("omni") / "model", family="qwen2.5-omni"))


def cfg(model: str, data: Path, out: Path, **kw: object) -> TrainConfig:
    base = {"model": model, "data": str(data), "output_dir": str(out), "max_steps": 1, "per_device_batch_size": 2,
            "save_steps": 1000, "logging_steps": 1}  # fmt: skip
    return TrainConfig.from_dict({**base, **kw})


def trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.slow
def test_full_finetuning_trains_the_language_model_only(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    run = build(cfg(tiny, out, tmp_path / "full", use_lora=False, warmup_ratio=0.0, learning_rate=1e-3))
    names = trainable(run.trainer.model)
    everything = {n for n, _ in run.trainer.model.named_parameters()}
    assert not any("audio_tower" in n for n in names)
    assert not any("multi_modal_projector" in n for n in names)  # the bug: it trained without --train-projector
    lm = {n for n in everything if "language_model" in n or n.startswith("lm_head")}
    assert lm and names == lm  # every language-model parameter, embeddings and head included
    tower = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if n not in lm}
    head = run.trainer.model.lm_head.weight.detach().clone()
    run.trainer.train()
    assert all(torch.equal(p, tower[n]) for n, p in run.trainer.model.named_parameters() if n in tower)
    assert not torch.equal(run.trainer.model.lm_head.weight, head)
    with_projector = build(cfg(tiny, out, tmp_path / "proj", use_lora=False, train_projector=True))
    names = trainable(with_projector.trainer.model)
    assert any("multi_modal_projector" in n for n in names) and not any("audio_tower" in n for n in names)


def test_full_finetuning_freeze_for_the_omni_thinker(tiny_omni: str):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    family = get_family("qwen2.5-omni")
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_omni)
    freeze_for_full_finetune(model, family, train_projector=False)
    names = trainable(model)
    assert names and all("language_model" in n or n.startswith("lm_head") for n in names)  # no audio, no vision tower
    freeze_for_full_finetune(model, family, train_projector=True)
    extra = trainable(model) - names
    assert extra and all(n.startswith("model.audio_tower.proj.") for n in extra)  # the projector only


def test_qlora_quantization_config_and_missing_library_errors(monkeypatch):
    qc = scale.quantization_config(get_family("qwen2-audio"))
    assert qc.load_in_4bit and qc.bnb_4bit_quant_type == "nf4" and qc.bnb_4bit_use_double_quant
    assert qc.bnb_4bit_compute_dtype == torch.bfloat16 and qc.bnb_4bit_quant_storage == torch.bfloat16
    assert qc.llm_int8_skip_modules == ["lm_head", "audio_tower", "multi_modal_projector"]
    assert scale.quantization_config(get_family("qwen2.5-omni")).llm_int8_skip_modules == ["lm_head", "audio_tower", "visual"]
    q = TrainConfig(model="m", data="d", load_in_4bit=True)
    kwargs = scale.load_kwargs(q, get_family("qwen2-audio"))
    assert kwargs["device_map"] == {"": 0} and kwargs["quantization_config"].load_in_4bit
    assert scale.load_kwargs(TrainConfig(model="m", data="d"), get_family("qwen2-audio")) == {}

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ConfigError, match=r"QLoRA\) needs the bitsandbytes package: pip install"):
        scale.check_environment(q, cuda=True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("bitsandbytes", "deepspeed") else None)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        scale.check_environment(q, cuda=False)
    scale.check_environment(q, cuda=True)  # both there: no complaint
    ds = TrainConfig(model="m", data="d", deepspeed="zero3")
    with pytest.raises(ConfigError, match="deepspeed needs CUDA GPUs"):
        scale.check_environment(ds, cuda=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="needs the deepspeed package"):
        scale.check_environment(ds, cuda=True)


def test_prepare_quantized_freezes_and_upcasts(tiny: str):
    from transformers import AutoModelForMultimodalLM

    model = AutoModelForMultimodalLM.from_pretrained(tiny, dtype=torch.bfloat16)
    prepared = scale.prepare_quantized(model, gradient_checkpointing=True)
    assert not trainable(prepared)  # LoRA adds the trainable parameters afterwards
    assert {p.dtype for p in prepared.parameters()} == {torch.float32}  # everything not in 4-bit is upcast


def test_load_in_4bit_on_this_machine_exits_2_with_what_is_missing(tiny: str, sample_out, tmp_path: Path, capsys):
    from audiodata.cli.main import main

    out, _ = sample_out
    code = main(["train", "sft", "--model", tiny, "--data", str(out), "--output-dir", str(tmp_path / "q"), "--load-in-4bit"])
    err = capsys.readouterr().err
    if importlib.util.find_spec("bitsandbytes") is None:
        assert code == 2 and "needs the bitsandbytes package" in err
    elif not torch.cuda.is_available():
        assert code == 2 and "needs a CUDA GPU" in err
    assert not (tmp_path / "q" / "adapter_model.safetensors").exists()


def test_scale_settings_are_validated(tiny: str, sample_out, tmp_path: Path):
    out, _ = sample_out
    with pytest.raises(ConfigError, match="needs use_lora"):
        cfg(tiny, out, tmp_path, load_in_4bit=True, use_lora=False)
    with pytest.raises(ConfigError, match="precision must be bf16 or auto"):
        cfg(tiny, out, tmp_path, load_in_4bit=True, precision="fp16")
    with pytest.raises(ConfigError, match="choose one of deepspeed and fsdp"):
        cfg(tiny, out, tmp_path, deepspeed="zero2", fsdp="full_shard")
    with pytest.raises(ConfigError, match="deepspeed zero4: neither zero2 nor zero3 nor a JSON file"):
        cfg(tiny, out, tmp_path, deepspeed="zero4")
    (tmp_path / "bad.json").write_text("{stage: 3")
    with pytest.raises(ConfigError, match="not valid JSON"):
        cfg(tiny, out, tmp_path, fsdp=str(tmp_path / "bad.json"))
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert scale.training_args_extras(cfg(tiny, out, tmp_path, deepspeed=str(own)), get_family("qwen2-audio")) == {
        "deepspeed": str(own)
    }
    zero3 = scale.training_args_extras(cfg(tiny, out, tmp_path, deepspeed="zero3"), get_family("qwen2-audio"))
    assert json.loads(Path(zero3["deepspeed"]).read_text())["zero_optimization"]["stage"] == 3


@pytest.mark.parametrize("family", ["qwen2-audio", "qwen2.5-omni"])
def test_fsdp_preset_wraps_layers_the_model_has(family: str, tiny: str, tiny_omni: str, sample_out, tmp_path: Path):
    import transformers

    out, _ = sample_out
    fam = get_family(family)
    extras = scale.training_args_extras(cfg(tiny, out, tmp_path, fsdp="full_shard"), fam)
    assert extras["fsdp"] is True and extras["fsdp_config"]["version"] == 2
    model = getattr(transformers, fam.model_class).from_pretrained(tiny if family == "qwen2-audio" else tiny_omni)
    present = {type(m).__name__ for m in model.modules()}
    assert set(extras["fsdp_config"]["transformer_layer_cls_to_wrap"]) <= present
    from trainer.train import training_arguments

    args = training_arguments(cfg(tiny, out, tmp_path, fsdp="full_shard"), fam, "fp32", False, False)
    assert args.fsdp and args.fsdp_config["transformer_layer_cls_to_wrap"] == list(fam.layer_classes)


@pytest.mark.parametrize("path", YAMLS, ids=[p.name for p in YAMLS])
def test_every_shipped_yaml_is_a_valid_config(path: Path, tiny: str, sample_out):
    out, _ = sample_out
    config = TrainConfig.from_yaml(path, overrides={"data": str(out)})
    assert config.model == "Qwen/Qwen2-Audio-7B-Instruct" and config.family == "qwen2-audio"
    assert config.precision == "bf16" and config.gradient_checkpointing
    text = path.read_text()
    assert "Expected memory per GPU" in text and re.search(r"total \.+ ~ [\d.]+ GB \([\d.]+ GiB\) of \d+ GB", text)
    for name in ("deepspeed", "fsdp"):
        if getattr(config, name):
            json.loads(Path(config.preset_path(name) or "").read_text())
    assert len(YAMLS) == 3


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_yaml_parses(path: Path, tiny: str, sample_out):
    """Every example config in trainer/configs/ is a valid TrainConfig (the data and model it names may be elsewhere),
    read from Python and through the command line (TrlParser: the file's values as defaults, the flags over them)."""
    from audiodata.cli.main import build_parser
    from trainer.cli import config_from_args

    out, _ = sample_out
    config = TrainConfig.from_yaml(path, overrides={"data": str(out), "model": tiny})
    assert config.to_dict()["task"] == "sft"
    argv = ["train", "sft", "--config", str(path), "--data", str(out), "--model", tiny]
    assert config_from_args(build_parser(argv).parse_args(argv)) == config


@pytest.mark.slow
def test_the_model_is_created_after_the_training_arguments(tiny: str, sample_out, tmp_path: Path, monkeypatch):
    """ZeRO-3 partitions at load time only if the DeepSpeed config is alive when from_pretrained runs."""
    import trainer.train as train_module
    from trainer.families import Family

    out, _ = sample_out
    order: list[str] = []
    make_args, load = train_module.training_arguments, Family.load

    def args_first(*a, **k):
        order.append("training arguments")
        return make_args(*a, **k)

    def then_model(self, *a, **k):
        order.append("model")
        return load(self, *a, **k)

    monkeypatch.setattr(train_module, "training_arguments", args_first)
    monkeypatch.setattr(Family, "load", then_model)
    build(cfg(tiny, out, tmp_path / "order"))
    assert order == ["training arguments", "model"]


@pytest.mark.slow
def test_merge_keeps_the_base_models_dtype(tiny: str, sample_out, tmp_path: Path):
    from safetensors import safe_open
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    from trainer.merge import merge

    out, _ = sample_out
    base = tmp_path / "bf16"
    AutoModelForMultimodalLM.from_pretrained(tiny, dtype=torch.bfloat16).save_pretrained(base)
    AutoProcessor.from_pretrained(tiny).save_pretrained(base)
    train(cfg(str(base), out, tmp_path / "adapter", max_steps=2, learning_rate=1e-2))
    merged = merge(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    with safe_open(merged / "model.safetensors", "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    assert dtypes == {"BF16"}
    size = (merged / "model.safetensors").stat().st_size
    assert size <= 1.02 * (base / "model.safetensors").stat().st_size  # not twice the base (fp32)
    reloaded = AutoModelForMultimodalLM.from_pretrained(merged)
    assert reloaded.dtype == torch.bfloat16 and not any("lora" in n for n, _ in reloaded.named_parameters())
    plain = AutoModelForMultimodalLM.from_pretrained(base)
    changed = [n for n, p in reloaded.named_parameters() if not torch.equal(p, dict(plain.named_parameters())[n])]
    assert changed and all("language_model" in n for n in changed)  # the adapter was folded in

