"""One name per concept across the commands: the canonical flags, the old spellings (still working, with a
deprecation note, hidden from --help), and the TRL/transformers spellings of the training flags."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from audiodata.cli.main import build_parser, main
from trainer.config import TrainConfig

IGNORED = ("func", "resume_command", "argv")  # set by the parser for dispatch, not options


def parsed(argv: list[str]) -> dict[str, object]:
    ns = build_parser(argv).parse_args(argv)
    return {k: v for k, v in vars(ns).items() if k not in IGNORED}


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its name (``train sft``, ``train merge``, ...), plugins included."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(p: argparse.ArgumentParser, prefix: list[str]) -> None:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, [*prefix, name])
        if prefix and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            out[" ".join(prefix)] = p

    walk(build_parser(), [])
    return out


def shown(p: argparse.ArgumentParser) -> set[str]:
    """The option strings --help shows."""
    return {s for a in p._actions if a.help is not argparse.SUPPRESS for s in a.option_strings}


# old spelling -> the canonical one, as (command line with the old, with the new)
RENAMED = {
    "convert --system": (["convert", "in", "-o", "o", "--system", "be brief"],
                         ["convert", "in", "-o", "o", "--system-prompt", "be brief"]),
    "lint --system": (["lint", "in", "--system", "x"], ["lint", "in", "--system-prompt", "x"]),
    "dedup --mode": (["dedup", "in", "--mode", "exact"], ["dedup", "in", "--dedup", "exact"]),
    "dedup --threshold": (["dedup", "in", "--threshold", "0.9"], ["dedup", "in", "--dedup-threshold", "0.9"]),
    "export --form": (["export", "ds", "--to", "llamafactory", "-o", "d", "--form", "alpaca"],
                      ["export", "ds", "--to", "llamafactory", "-o", "d", "--format", "alpaca"]),
    "train --family": (["train", "sft", "--family", "qwen2-audio"], ["train", "sft", "--model-family", "qwen2-audio"]),
    "make-tiny-model --family": (["make-tiny-model", "-o", "m", "--family", "qwen2.5-omni"],
                                 ["make-tiny-model", "-o", "m", "--model-family", "qwen2.5-omni"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(RENAMED))
def test_an_old_spelling_parses_like_the_new_one_with_a_note(case: str, capsys) -> None:
    old, new = RENAMED[case]
    assert parsed(old) == parsed(new)
    err = capsys.readouterr().err
    old_flag = next(a for a in old if a.startswith("--") and a not in new)
    new_flag = next(a for a in new if a.startswith("--") and a not in old)
    assert err == f"audiodata: warning: {old_flag} is deprecated, use {new_flag} (the old spelling goes in the next release)\n"
    command = " ".join(w for w in new[:2] if not w.startswith("-") and w not in ("in", "ds", "o"))
    p = parsers()[command if command in parsers() else new[0]]
    assert new_flag in shown(p) and old_flag not in shown(p)


def test_the_canonical_spellings_print_no_note(capsys) -> None:
    for _, new in RENAMED.values():
        parsed(new)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["export", "make-tiny-model"])
def test_an_output_given_as_a_positional_still_works_with_a_note(command: str, sample_out, tmp_path: Path, capsys) -> None:
    """``export DATASET --to X DIR`` and ``make-tiny-model DIR``: the old forms of -o/--output."""
    from audiodata.cli.flags import output_or_positional

    head = ["export", str(sample_out[0]), "--to", "ms-swift"] if command == "export" else ["make-tiny-model"]
    positional = "dest" if command == "export" else "dir"
    old = build_parser(head).parse_args([*head, str(tmp_path / "x")])
    new = build_parser(head).parse_args([*head, "-o", str(tmp_path / "x")])
    assert output_or_positional(old, positional) == output_or_positional(new, positional) == str(tmp_path / "x")
    assert "the output as a positional argument" in capsys.readouterr().err
    both = build_parser(head).parse_args([*head, str(tmp_path / "x"), "-o", str(tmp_path / "y")])
    with pytest.raises(ValueError, match="given twice"):
        output_or_positional(both, positional)
    with pytest.raises(ValueError, match="-o/--output DIR"):
        output_or_positional(build_parser(head).parse_args(head), positional)
    if command == "export":  # end to end: the old form exports what the new one does
        assert main([*head, str(tmp_path / "old")]) == 0
        assert main([*head, "-o", str(tmp_path / "new")]) == 0
        assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted(p.name for p in (tmp_path / "new").iterdir())
        assert main([*head, "--no-progress"]) == 2  # no output at all: a usage error
        assert "give the output folder: -o/--output DIR" in capsys.readouterr().err


TRL_SPELLINGS = [
    "--model_name_or_path", "m", "--dataset_name", "ds", "--output_dir", "runs/x", "--per_device_train_batch_size", "2",
    "--gradient_accumulation_steps", "3", "--learning_rate", "2e-5", "--num_train_epochs", "2", "--lr_scheduler_type",
    "linear", "--warmup_ratio", "0.1", "--max_grad_norm", "0.5", "--logging_steps", "5", "--save_steps", "50",
    "--dataset_train_split", "train", "--dataset_test_split", "validation", "--use_peft", "--lora_r", "4",
    "--resume_from_checkpoint", "latest", "--max_length", "512", "--dataloader_num_workers", "2", "--beta", "0.2",
]  # fmt: skip
OURS = [
    "--model", "m", "--data", "ds", "-o", "runs/x", "--per-device-batch-size", "2", "--gradient-accumulation-steps", "3",
    "--learning-rate", "2e-5", "--num-train-epochs", "2", "--lr-scheduler-type", "linear", "--warmup-ratio", "0.1",
    "--max-grad-norm", "0.5", "--logging-steps", "5", "--save-steps", "50", "--train-split", "train", "--eval-split",
    "validation", "--use-lora", "--lora-r", "4", "--resume", "latest", "--max-length", "512", "--num-workers", "2",
    "--beta", "0.2",
]  # fmt: skip


def test_trl_and_transformers_spellings_of_the_training_flags(capsys) -> None:
    trl, ours = parsed(["train", "dpo", *TRL_SPELLINGS]), parsed(["train", "dpo", *OURS])
    assert trl == ours
    # typed by HfArgumentParser from the field's annotation
    assert (trl["per_device_batch_size"], trl["output_dir"], trl["use_lora"], trl["resume"]) == (2, "runs/x", True, "latest")
    assert capsys.readouterr().err == ""  # the peers' spellings are accepted as they are, no deprecation
    assert parsed(["train", "sft", "--cutoff_len", "256"])["max_length"] == 256  # LLaMA-Factory's name
    given = {k: v for k, v in trl.items() if k in {f.name for f in fields(TrainConfig)} and v is not None}
    assert TrainConfig(**{**given, "per_device_batch_size": 2}).per_device_batch_size == 2  # every key is a field


def test_every_training_field_takes_its_underscore_spelling_too() -> None:
    """As HfArgumentParser gives every dataclass field both spellings; hidden from --help."""
    p = parsers()["train sft"]
    strings = {s: a for a in p._actions for s in a.option_strings}
    for f in fields(TrainConfig):
        if f.name == "task":
            continue
        assert f"--{f.name}" in strings, f.name
        assert strings[f"--{f.name}"].dest == f.name
    assert "--per_device_train_batch_size" not in shown(p) and "--per-device-batch-size" in shown(p)


# --------------------------------------------------------------------------- the survey, as a rule


WRITES = ("convert", "merge", "export", "train sft", "train dpo", "train kto", "train merge", "make-tiny-model")
LONG_WORK = ("convert", "merge", "lint", "dedup", "verify", "export", "publish", "cache")
RESULTS = (
    "convert", "merge", "lint", "dedup", "verify", "export", "publish", "info", "rules", "train sft", "train dpo", "train kto",
    "cache",
)  # fmt: skip
WORKERS = ("convert", "lint", "dedup", "verify", "train sft", "train dpo", "train kto")
#: Spellings that must not be shown by any command: the concept has one name, given second.
OLD = {"--family": "--model-family", "--system": "--system-prompt", "--mode": "--dedup", "--threshold": "--dedup-threshold",
       "--form": "--format", "--dataloader-workers": "--num-workers"}  # fmt: skip


def test_one_flag_per_concept_across_the_commands() -> None:
    ps = parsers()
    assert set(WRITES) | set(LONG_WORK) | set(RESULTS) <= set(ps)
    for name, p in ps.items():
        flags = shown(p)
        for old, new in OLD.items():
            assert old not in flags, f"{name} shows {old}; the one name is {new}"
        if name in WRITES:
            assert {"-o", "--output"} <= flags, f"{name} writes a folder: -o/--output"
        if name in LONG_WORK:
            assert "--no-progress" in flags, name
        if name in RESULTS:
            assert "--json" in flags, f"{name}: one --json for a machine-readable result"
        if name in WORKERS:
            assert "--num-workers" in flags, name
