"""``audiodata train sft|dpo|kto|grpo|merge`` and ``audiodata make-tiny-model`` (also ``python -m trainer``).

The flags of ``train sft|dpo|kto`` are made from :class:`TrainConfig` by TRL's ``TrlParser`` (``HfArgumentParser``:
one per field, ``--lora-r 16``, help and aliases from each field's metadata; see trainer/parser.py), so the CLI,
YAML files (``--config``) and Python all speak the same names. Exit codes: 0 trained, 2 bad configuration or a damaged
dataset, 3 a fault of the machine (``audiodata`` maps it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from audiodata.dataset import DatasetError
from audiodata.faults import FAULT_EXIT
from trainer.config import TASKS, ConfigError, TrainConfig
from trainer.replay import add_replay_parser, quarantine_rows

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register_train(sub: Any) -> None:
    """The ``train`` command (entry point ``audiodata.commands``: ``train``)."""
    t = sub.add_parser(
        "train",
        help="fine-tune an audio LM on converted shards (SFT, DPO, KTO or GRPO; LoRA by default)",
        epilog="exit codes: 0 trained (--dry-run: every check passed), 1 stopped on a bad micro-batch (on_bad_batch: stop; "
        "see OUTPUT/quarantine.jsonl), 2 bad configuration, a damaged dataset (the shard named) or a failing pre-flight "
        "check" + FAULT_EXIT,
    )
    tsub = t.add_subparsers(dest="train_command", required=True, parser_class=_subcommand_parser, action=BuiltOnUse)
    tsub.build = _add_train_commands
    t.set_defaults(func=run, resume_command=resume_command)


class BuiltOnUse(argparse._SubParsersAction):
    """Subcommands added by ``self.build(self)`` when first needed (parsing one, their --help, a look at
    ``choices``): ``audiodata --help`` lists ``train`` without building them, so without importing trl (about
    0.4 s, more than the whole 0.3 s ``--help`` budget)."""

    build: Callable[[argparse._SubParsersAction], None] | None = None

    @property
    def choices(self) -> dict[str, argparse.ArgumentParser]:
        if self.build is not None:
            build, self.build = self.build, None
            build(self)
        return self._name_parser_map

    @choices.setter
    def choices(self, value: object) -> None:
        """argparse sets it once, to ``_name_parser_map`` itself: nothing to store."""

    def _get_subactions(self) -> list[argparse.Action]:
        _ = self.choices
        return super()._get_subactions()

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        _ = self.choices
        super().__call__(parser, namespace, values, option)


def _subcommand_parser(**kwargs: Any) -> argparse.ArgumentParser:
    """The parser class of ``train``'s subcommands: for sft/dpo/kto (given ``dataclass_types``) TrainParser, a
    TrlParser that makes their flags from TrainConfig (trainer/parser.py); for merge audiodata's plain one."""
    from audiodata.cli.common import Parser

    if "dataclass_types" not in kwargs:
        return Parser(**kwargs)
    from trainer.parser import TrainParser

    return TrainParser(**kwargs)


def _add_train_commands(tsub: argparse._SubParsersAction) -> None:
    """``train sft|dpo|kto|grpo`` (every TrainConfig field a flag, ``--config FILE``) and ``train merge``."""
    for task in TASKS:
        p = tsub.add_parser(
            task,
            help=f"{task.upper()} training",
            description=f"{task.upper()} on shards written by convert. Every TrainConfig field is a flag and a key of "
            "the --config YAML file; flags override the file.",
            usage="%(prog)s [-h] [--config FILE] [--json] [--FIELD VALUE ...]",
            dataclass_types=[TrainConfig],
            fixed={"task": task},
        )
        p.add_argument("--json", action="store_true", help="print the training report as JSON")
    add_replay_parser(tsub)
    m = tsub.add_parser("merge", help="merge a LoRA adapter into its base model's weights")
    m.add_argument("adapter", help="a folder written by `audiodata train` (adapter_config.json inside)")
    m.add_argument("-o", "--output", required=True, help="folder for the merged model and processor")
    m.add_argument("--model", help="base model (default: the one recorded in the adapter)")


def resume_command(args: argparse.Namespace, typed: list[str]) -> tuple[list[str], str] | None:
    """After Ctrl-C: the command that continues from the newest checkpoint, when the run saved one."""
    if args.train_command not in TASKS or args.resume not in (None, "latest"):
        return None
    try:
        out = Path(config_from_args(args).output_dir)
    except (ConfigError, DatasetError):
        return None
    if not any(p.is_dir() for p in out.glob("checkpoint-*")):
        return None
    again = typed if args.resume == "latest" else [*typed, "--resume", "latest"]
    return again, f"checkpoints in {out} are kept; to continue from the newest, run"


def register_tiny_model(sub: Any) -> None:
    """The ``make-tiny-model`` command (entry point ``audiodata.commands``: ``make-tiny-model``)."""
    from audiodata.cli.flags import renamed

    tiny = sub.add_parser("make-tiny-model", help="write a tiny random audio LM (offline) for smoke runs and tests")
    tiny.add_argument("-o", "--output", dest="output_path", metavar="DIR", help="folder for the model")
    tiny.add_argument("dir", nargs="?", metavar="DIR", help=argparse.SUPPRESS)  # the old positional form: deprecated
    tiny.late_positionals = ("dir",)
    tiny.add_argument("--model-family", default="qwen2-audio", choices=["qwen2-audio", "qwen2.5-omni"])
    renamed(tiny, "--model-family", "--family")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=run)


def register_cache(sub: Any) -> None:
    """The ``cache`` command (entry point ``audiodata.commands``: ``cache``)."""
    c = sub.add_parser(
        "cache",
        help="write the training input (tokens, labels or replies, audio-token counts; --features: log-mel) next to the shards",
        description="Encode every record of a config once, exactly as `audiodata train sft|dpo|kto` does (SFT: tokens and "
        "label masks; DPO: the prompt's tokens, chosen and rejected; KTO: the prompt's tokens and the completion), into "
        "DATASET/cache/<key>/: the "
        "key hashes the tokenizer, chat template, feature-extractor config and options, so the trainer uses the cache "
        "only when all of them (and the shards) are unchanged.",
        epilog="exit codes: 0 written or already up to date, 1 written but some records could not be encoded (each kept "
        "with its reason; training skips and logs them), 2 bad options or not a converted dataset" + FAULT_EXIT,
    )
    c.add_argument("dataset", metavar="DATASET", help="a folder written by audiodata convert")
    c.add_argument("--tokenizer", required=True, metavar="MODEL", help="the model (or processor) folder you will train")
    c.add_argument("--model-family", choices=["qwen2-audio", "qwen2.5-omni"], help="default: from the model's config")
    c.add_argument("--features", action="store_true", help="also store the log-mel features (fp16): training decodes no audio")
    c.add_argument("--chat-template", metavar="FILE", help="the .jinja template the training run will use (its chat_template)")
    c.add_argument("--system-prompt", help="the training run's system_prompt, for records without one")
    c.add_argument("--long-audio", choices=["split", "skip", "truncate"], default="split", help="the training run's long_audio")
    c.add_argument(
        "--data-config", default="sft", help="the dataset config to cache, as train's data_config: sft, dpo or kto (default: sft)"
    )
    c.add_argument("--force", action="store_true", help="rebuild even when an up-to-date cache is there")
    c.add_argument("--num-workers", type=int, metavar="N", help="processes encoding shards (default: one per core)")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    """``audiodata cache``: build (or find up to date) the training-input cache, print what it holds."""
    import os

    from audiodata import objstore
    from audiodata.cli.common import stderr_console, stdout_console
    from audiodata.cli.progress import Bar
    from trainer import cache
    from trainer.families import detect_family, get_family

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if objstore.is_remote(args.dataset):  # said before any model loads
            raise ConfigError(
                f"{args.dataset}: the training-input cache is written beside a dataset on disk; "
                "train from the store without it, or cache a local copy"
            )
        family = get_family(args.model_family) if args.model_family else detect_family(args.tokenizer)
        if args.chat_template and not Path(args.chat_template).is_file():
            raise ConfigError(f"--chat-template {args.chat_template}: no such file")
        try:
            processor = family.training_processor(args.tokenizer, args.chat_template)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the processor of {args.tokenizer}: {exc}") from None
        with Bar("caching", "records", stderr_console(), disable=args.no_progress or args.json) as bar:
            result = cache.build(
                args.dataset, family, processor, system_prompt=args.system_prompt, long_audio=args.long_audio,
                features=args.features, config=args.data_config, force=args.force, num_workers=args.num_workers,
                on_progress=lambda done, total: bar.update(completed=done, total=total, count=done),
            )
            bar.finish()
    except (ConfigError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parts = cache.components(family, processor, args.system_prompt, args.long_audio, args.features, result.kind)
    found = cache.lookup(args.dataset, parts, result.config)
    out = {
        "path": str(result.path), "key": result.key, "reused": result.reused, "rows": result.rows,
        "skipped": result.skipped, "skip_reasons": result.skip_reasons, "tokens": result.tokens, "bytes": result.bytes,
        "seconds": round(result.seconds, 2), "features": args.features, "kind": result.kind, "stale_caches": found.stale,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print_cache(out, stdout_console())
    return EXIT_FAILED if result.skipped else EXIT_OK


def _print_cache(out: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title=f"audiodata cache -> {out['path']}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    rows = [
        ("key", out["key"]),
        ("status", "up to date, kept" if out["reused"] else "written"),
        ("records", f"{out['rows']:,} ({out['kind'].upper()})"),
        ("log-mel features", "yes (fp16)" if out["features"] else "no (audio decoded in training)"),
    ]
    if not out["reused"]:
        rows += [("tokens", f"{out['tokens']:,}"), ("bytes", f"{out['bytes']:,}"), ("seconds", str(out["seconds"]))]
    rows += [(f"not encodable: {reason}", str(n)) for reason, n in out["skip_reasons"].items()]
    rows += [("stale (never used)", line) for line in out["stale_caches"]]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)


def add_train_parsers(sub: Any) -> None:
    """The trainer's commands, for ``python -m trainer``."""
    register_train(sub)
    register_tiny_model(sub)
    register_cache(sub)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig from a parsed ``train sft|dpo|kto``: the parser (TrainParser) merged the ``--config``
    file and the flags (the file sets the defaults, flags override them); TrainConfig converts and validates."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig.from_dict(values, source=args.config or "flags")


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed ``train``/``make-tiny-model`` command."""
    try:
        if args.command == "cache":
            return run_cache(args)
        if args.command == "make-tiny-model":
            from audiodata.cli.flags import output_or_positional
            from trainer.tiny import make_tiny_model

            out = make_tiny_model(output_or_positional(args, "dir"), family=args.model_family, seed=args.seed)
            print(f"tiny {args.model_family} model written to {out}")
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
        if cfg.dry_run:  # pre-flight only: table or --json, preflight.json, exit 0/2/3
            from trainer.preflight import run_dry

            return run_dry(cfg, args.json)
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
    if report["task"] == "grpo":
        for k, v in _grpo_rows(report):
            t.add_row(k, v)
        Console().print(t)
        return
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
        *_evaluation_rows(report),
        *quarantine_rows(report),
        ("runtime s", str(report["runtime_s"])),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)


def _grpo_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    def num(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, (int, float)) else "-"

    cov = report.get("coverage") or {}
    last = (report.get("rl_history") or [{}])[-1]
    return [
        ("family", report["family"]),
        ("steps", str(report["steps"])),
        ("rewards", ", ".join(report["rewards"]["functions"])),
        ("mean reward (first -> last log)", f"{num(report.get('reward_first'))} -> {num(report.get('reward_last'))}"),
        ("KL, last log", num(last.get("kl"))),
        ("mean completion tokens, last log", num(last.get("completion_mean_length"))),
        ("prompts trained / in the data", f"{cov.get('trained', '-')} / {cov.get('prompts', '-')}"),
        *_held_out_rows(report, num),
        ("skipped records", str(report["skipped"]["records"])),
        ("report page", f"{report['config']['output_dir']}/rl.html"),
        ("runtime s", str(report["runtime_s"])),
    ]


def _held_out_rows(report: dict[str, Any], num: Any) -> list[tuple[str, str]]:
    """GRPO: the held-out prompts' mean reward (first -> last evaluation) and whether the policy still hears the audio."""
    rows = []
    ev = report.get("evaluation") or {}
    hist = ev.get("history") or []
    if hist:
        first, last = num(hist[0].get("reward")), num(hist[-1].get("reward"))
        rows.append((f"held-out mean reward ({ev.get('records')} prompts)", f"{first} -> {last}"))
    heard = report.get("audio_conditioning") or {}
    if heard.get("after"):
        kl = f"{heard['before']['kl_zeroed']:.3g} -> {heard['after']['kl_zeroed']:.3g}"
        rows.append(("audio KL real vs zeroed (before -> after)", kl + ("" if heard.get("heard_after_training") else " (deaf)")))
    return rows


def _long_audio_row(report: dict[str, Any]) -> list[tuple[str, str]]:
    la = report.get("long_audio") or {}
    if not la.get("clips_over_window"):
        return []
    return [(f"clips over {la['window_seconds']:.0f} s ({la['policy']})", str(la["clips_over_window"]))]


def _preference_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    last = report.get("final_preference") or {}
    return [(key, f"{last[key]:.4f}") for key in ("rewards/margins", "rewards/accuracies", "kl") if key in last]


def _evaluation_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The last evaluation's metric and where its page is (evaluation, issue 12)."""
    last = (report.get("evaluation") or {}).get("final") or {}
    if last.get("value") is None:
        return []
    page = f"{report['config']['output_dir']}/eval.html"
    name = f"eval {last['metric']} at step {last['step']} ({last['scored']} records)"
    return [(name, f"{last['value']:.4f}"), ("eval page", page)]


def main(argv: list[str] | None = None) -> int:
    from audiodata.cli.common import Parser

    parser = Parser(prog="python -m trainer", description="audiodata trainer")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train_parsers(sub)
    return run(parser.parse_args(argv))
