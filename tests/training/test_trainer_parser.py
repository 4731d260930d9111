"""``train sft|dpo|kto`` parsed as TRL parses its scripts: TrainConfig's fields carry their help and aliases in
``field(metadata=...)``, TRL's ``TrlParser`` (``HfArgumentParser``) makes the flags from them, ``--config FILE``
sets the parser's defaults (flags override them, ``env:`` is set), and TrainConfig still checks every value."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
from pathlib import Path

import pytest
from trl import TrlParser

from audiodata.cli.main import build_parser, main
from trainer.cli import config_from_args
from trainer.config import ConfigError, TrainConfig

BASE = ["--model", "m", "--data", "acme/ds"]  # a Hub id: validation needs no files


def config(argv: list[str]) -> TrainConfig:
    return config_from_args(build_parser(argv).parse_args(argv))


def train_parser(task: str = "sft") -> argparse.ArgumentParser:
    root = build_parser(["train", task])
    train = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    return next(a for a in train._actions if isinstance(a, argparse._SubParsersAction)).choices[task]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_every_field_has_its_help_in_its_metadata_and_field_help_reads_only_that(monkeypatch) -> None:
    def no_source(*_: object) -> str:
        raise AssertionError("field_help read the source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    helps = TrainConfig.field_help()
    assert list(helps) == [f.name for f in dataclasses.fields(TrainConfig)]
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help") and helps[f.name] == f.metadata["help"], f.name
        assert set(f.metadata) <= {"help", "aliases"}, f"{f.name}: HfArgumentParser passes other keys to add_argument"
    assert TrainConfig.__dataclass_fields__["per_device_batch_size"].metadata["aliases"][0] == "--per_device_train_batch_size"


def test_trl_own_parser_takes_trainconfig_as_it_is() -> None:
    """A plain TrlParser (no audiodata subclass) parses TrainConfig, as a TRL-style script would; what it does to
    the dataclass (it narrows ``Field.type`` in place) does not change how TrainConfig reads values."""
    (cfg,) = TrlParser([TrainConfig]).parse_args_and_config([*BASE, "--lora_r", "4", "--no-use-lora"])
    assert (cfg.model, cfg.data, cfg.lora_r, cfg.use_lora) == ("m", "acme/ds", 4, False)
    assert TrainConfig.from_dict({"model": "m", "data": "acme/ds", "learning_rate": None}).learning_rate is None


def test_the_train_parsers_are_trl_parsers_whose_flags_come_from_the_fields() -> None:
    p = train_parser("dpo")
    assert isinstance(p, TrlParser) and p.dataclass_types == [TrainConfig]
    strings = {s: a for a in p._actions for s in a.option_strings}
    assert "--task" not in strings and "--config" in strings  # the subcommand sets task
    assert strings["--lora-r"].type is int and strings["--lora_r"].dest == "lora_r"
    assert strings["--learning-rate"].default is None and strings["--beta"].default == 0.1
    ns = build_parser(["train", "dpo"]).parse_args(["train", "dpo", *BASE])
    assert ns.task == "dpo" and ns.lora_r == 8


def test_help_lists_each_field_once_with_its_help(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["train", "sft", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    bare = "".join(text.split())  # argparse also breaks lines after a word's hyphen (fine-/tuning)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "task":
            continue
        flag = "--model-family" if f.name == "family" else f"--{f.name.replace('_', '-')}"
        assert flag in text, f.name
        assert "".join(f.metadata["help"].split()) in bare, f.name
    assert "--per_device_train_batch_size" not in text and "--lora_r" not in text and "--family " not in text
    assert "-o OUTPUT_DIR, --output OUTPUT_DIR, --output-dir OUTPUT_DIR" in text
    assert "(default: 8)" in text and "(default: None)" not in text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {"use_lora": True, "train_projector": False, "dummy_audio": None, "gradient_checkpointing": None}),
        (["--no-use-lora", "--train-projector", "--dummy-audio", "--no-gradient-checkpointing"],
         {"use_lora": False, "train_projector": True, "dummy_audio": True, "gradient_checkpointing": False}),
        (["--use-lora", "false", "--train-projector", "yes", "--no-dummy-audio", "--gradient_checkpointing", "true"],
         {"use_lora": False, "train_projector": True, "dummy_audio": False, "gradient_checkpointing": True}),
        (["--use_peft", "--no_train_projector"], {"use_lora": True, "train_projector": False}),
    ],
)  # fmt: skip
def test_every_boolean_takes_the_flag_a_value_and_its_negation(flags: list[str], expected: dict[str, object]) -> None:
    cfg = config(["train", "sft", *BASE, *flags])
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_config_file_values_are_defaults_that_flags_override(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AUDIODATA_TEST_ENV", raising=False)
    yml = write(
        tmp_path / "run.yaml",
        "model: m\ndata: acme/ds\nlora_r: 4\nmax_steps: 3\nuse_lora: false\nloss_type: [sigmoid, sft]\n"
        "env:\n  AUDIODATA_TEST_ENV: 7\n",
    )
    cfg = config(["train", "dpo", "--config", yml, "--lora-r", "16"])
    assert (cfg.task, cfg.lora_r, cfg.max_steps, cfg.use_lora, cfg.loss_type) == ("dpo", 16, 3, False, "sigmoid,sft")
    assert os.environ["AUDIODATA_TEST_ENV"] == "7"  # env: set, as TrlParser does
    again = config(["train", "dpo", f"--config={yml}", "--use-lora", "--max_steps", "5"])
    assert (again.lora_r, again.use_lora, again.max_steps) == (4, True, 5)
    assert config(["train", "dpo", "--config", yml]).to_dict() == TrainConfig.from_yaml(yml, overrides={"task": "dpo"}).to_dict()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: m\ndata: acme/ds\nlora_rank: 4\n", "unknown key(s) lora_rank (did you mean lora_r?)"),
        ("model: m\ndata: acme/ds\nlora_r: many\n", "lora_r must be int, got 'many'"),
        ("model: m\ndata: acme/ds\nuse_lora: maybe\n", "use_lora must be bool, got 'maybe'"),
        ("task: kto\nmodel: m\ndata: acme/ds\n", "task is 'kto', but the command sets 'sft'"),
        ("- model\n", "expected a mapping of settings, got list"),
        ("model: [\n", "not valid YAML"),
        ("env: [A]\nmodel: m\n", "env must be a mapping"),
    ],
)
def test_a_bad_config_file_is_a_usage_error_with_our_message(text: str, message: str, tmp_path: Path, capsys) -> None:
    yml = write(tmp_path / "bad.yaml", text)
    with pytest.raises(SystemExit) as done:
        main(["train", "sft", "--config", yml])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"audiodata train sft: error: {yml}: {message}" in err
    assert "Traceback" not in err


def test_a_missing_config_file_and_a_bad_flag_value_are_usage_errors(tmp_path: Path, capsys) -> None:
    for argv, message in (
        (["--config", str(tmp_path / "nope.yaml")], f"--config {tmp_path / 'nope.yaml'}: no such file"),
        ([*BASE, "--max-steps", "many"], "argument --max-steps: invalid int value: 'many'"),
        ([*BASE, "--max_steps", "many"], "argument --max_steps: invalid int value: 'many'"),
    ):
        with pytest.raises(SystemExit) as done:
            main(["train", "sft", *argv])
        assert done.value.code == 2
        assert message in capsys.readouterr().err


def test_values_still_go_through_trainconfig_validation(capsys) -> None:
    assert main(["train", "sft", *BASE, "--max-steps", "0", "--num-train-epochs", "0"]) == 2
    assert capsys.readouterr().err == "error: set max_steps > 0 or num_train_epochs > 0\n"
    with pytest.raises(ConfigError, match="lora_r must be >= 1"):
        config(["train", "sft", *BASE, "--lora-r", "0"])


def test_listing_train_in_the_root_help_builds_no_trl_parser() -> None:
    """``audiodata --help`` registers the trainer's commands, but their TrlParser (trl: ~0.4 s) is built on use."""
    import subprocess

    code = (
        "import contextlib, io, sys\n"
        "from audiodata.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'trainer.cli' in sys.modules, 'the trainer was not listed'\n"
        "print('trl' in sys.modules, 'trainer.parser' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "False"]
