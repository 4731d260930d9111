"""``audiodata train sft|dpo|kto|merge`` and ``audiodata make-tiny-model`` (also ``python -m trainer``).

Flags are generated from :class:`TrainConfig` (one per field, ``--lora-r 16``), so the CLI,
YAML files and Python all speak the same names. Exit codes: 0 trained, 2 bad configuration or a damaged
dataset, 3 a fault of the machine (``audiodata`` maps it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import fields
from typing import Any

from audiodata.dataset import DatasetError
from audiodata.faults import FAULT_EXIT
from trainer.config import TASKS, ConfigError, TrainConfig
from trainer.replay import add_replay_parser, quarantine_rows

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_train_parsers(sub: Any) -> None:
    t = sub.add_parser(
        "train",
        help="fine-tune an audio LM on converted shards (SFT, DPO or KTO; LoRA by default)",
        epilog="exit codes: 0 trained, 1 stopped on a bad micro-batch (on_bad_batch: stop; see OUTPUT/quarantine.jsonl), "
        "2 bad configuration or a damaged dataset (the shard named)" + FAULT_EXIT,
    )
    tsub = t.add_subparsers(dest="train_command", required=True)
    for task in TASKS:
        p = tsub.add_parser(task, help=f"{task.upper()} training", description=f"{task.upper()} on shards written by convert.")
        p.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
        p.add_argument("--json", action="store_true", help="print the training report as JSON")
        helps = TrainConfig.field_help()
        for f in fields(TrainConfig):
            if f.name == "task":
                continue
            flag = "--" + f.name.replace("_", "-")
            kinds = str(f.type)
            text = helps.get(f.name, "")
            default = "" if f.default is None or f.default == "" else f" (default {f.default})"
            if "bool" in kinds:
                p.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=text + default)
            else:
                p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=text + default)
    add_replay_parser(tsub)
    m = tsub.add_parser("merge", help="merge a LoRA adapter into its base model's weights")
    m.add_argument("adapter", help="a folder written by `audiodata train` (adapter_config.json inside)")
    m.add_argument("-o", "--output", required=True, help="folder for the merged model and processor")
    m.add_argument("--model", help="base model (default: the one recorded in the adapter)")
    tiny = sub.add_parser("make-tiny-model", help="write a tiny random audio LM (offline) for smoke runs and tests")
    tiny.add_argument("output", metavar="DIR")
    tiny.add_argument("--family", default="qwen2-audio", choices=["qwen2-audio", "qwen2.5-omni"])
    tiny.add_argument("--seed", type=int, default=0)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    given["task"] = args.train_command
    if args.config:
        return TrainConfig.from_yaml(args.config, overrides=given)
    return TrainConfig.from_dict(given, source="flags")


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed ``train``/``make-tiny-model`` command."""
    try:
        if args.command == "make-tiny-model":
            from trainer.tiny import make_tiny_model

            out = make_tiny_model(args.output, family=args.family, seed=args.seed)
            print(f"tiny {args.family} model written to {out}")
            return EXIT_OK
        if args.train_command == "replay":
            from trainer.replay import cmd_replay

            return cmd_replay(args)
        if args.train_command == "merge":
            from trainer.merge import merge

            out = merge(args.adapter, args.output, base=args.model)
            print(f"merged model written to {out}")
            return EXIT_OK
        cfg = config_from_args(args)
        from trainer.train import train

        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            report = train(cfg)  # with --json, stdout carries only the report
    except (ConfigError, DatasetError) as exc:  # a bad configuration, a damaged dataset (named, with verify to run)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from trainer.dist import is_main

    if not is_main():  # several processes: rank 0 speaks for the run
        return EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_summary(report)
    return EXIT_FAILED if (report.get("quarantine") or {}).get("stopped") else EXIT_OK  # on_bad_batch: stop ended it


def _print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"audiodata train {report['task']} -> {report['config']['output_dir']}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    first = report["loss_history"][0]["loss"] if report["loss_history"] else None
    rows = [
        ("family", report["family"]),
        ("steps", str(report["steps"])),
        ("loss (first -> last)", f"{first:.4f} -> {report['final_loss']:.4f}" if first is not None else "-"),
        ("examples seen", str(report["examples_seen"])),
        ("tokens seen", f"{report['tokens_seen']:,}"),
        ("audio hours seen", f"{report['audio_hours_seen']:.4f}"),
        ("padding efficiency (planned / actual)", f"{report['padding_efficiency']['planned']:.3f} / "
         f"{report['padding_efficiency']['actual']:.3f}"),
        ("skipped records", str(report["skipped"]["records"])),
        *_long_audio_row(report),
        *_preference_rows(report),
        *quarantine_rows(report),
        ("runtime s", str(report["runtime_s"])),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)


def _long_audio_row(report: dict[str, Any]) -> list[tuple[str, str]]:
    la = report.get("long_audio") or {}
    if not la.get("clips_over_window"):
        return []
    return [(f"clips over {la['window_seconds']:.0f} s ({la['policy']})", str(la["clips_over_window"]))]


def _preference_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    last = report.get("final_preference") or {}
    return [(key, f"{last[key]:.4f}") for key in ("rewards/margins", "rewards/accuracies", "kl") if key in last]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="audiodata trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parsers(sub)
    return run(parser.parse_args(argv))
