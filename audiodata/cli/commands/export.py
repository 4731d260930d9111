"""``audiodata export``: a converted dataset out again for LLaMA-Factory, ms-swift or MiniCPM (:mod:`audiodata.export`)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audiodata.cli.common import EXIT_USAGE, error, stderr_console, stdout_console
from audiodata.cli.flags import output_or_positional, renamed
from audiodata.cli.progress import Bar

if TYPE_CHECKING:
    from audiodata.export import ExportResult

NAME = "export"
HELP = "export a converted dataset for LLaMA-Factory, ms-swift, MiniCPM or Align-Anything"


def register(subparsers: Any) -> None:
    """Add ``export DATASET --to {llamafactory,llamafactory-v1,ms-swift,minicpm,align-anything} -o DIR``."""
    from audiodata.export import AUDIO_FORMATS, FORMS, TARGETS
    from audiodata.faults import FAULT_EXIT

    e: argparse.ArgumentParser = subparsers.add_parser(
        NAME,
        help=HELP,
        description="Write a converted dataset out as audio files plus JSON a trainer reads directly: LLaMA-Factory "
        "(sharegpt or alpaca + dataset_info.json; use dataset_dir=DIR), LLaMA-Factory v1 (typed-content JSONL + the "
        "dataset YAML; train from DIR), ms-swift (messages + audios JSONL) "
        "MiniCPM ({audio: base64, text} JSONL) or Align-Anything (AA_TA2T Parquet: prompt, audio_path, response_1/2, "
        "overall_response).",
        epilog="exit codes: 0 all records exported, 1 some skipped (reasons listed), 2 usage error (or DIR not empty, "
        "held by another export, or a damaged dataset)" + FAULT_EXIT + "; an interrupted export is redone by the same "
        "command",
    )
    e.add_argument("dataset", metavar="DATASET", help="a folder written by audiodata convert")
    e.add_argument("dest", nargs="?", metavar="DIR", help=argparse.SUPPRESS)  # the old positional form: deprecated
    e.late_positionals = ("dest",)  # type: ignore[attr-defined]
    e.add_argument("--to", required=True, choices=TARGETS, help="the trainer to export for")
    e.add_argument("-o", "--output", dest="output_path", metavar="DIR", help="folder to write (empty, or pass --overwrite)")
    e.add_argument("--format", dest="form", choices=FORMS, default="sharegpt", help="LLaMA-Factory formatting (default sharegpt)")
    renamed(e, "--format", "--form")
    e.add_argument("--audio-format", choices=AUDIO_FORMATS, default="flac", help="audio file format (default flac: as stored)")
    e.add_argument("--overwrite", action="store_true", help="replace a previous export in DIR")
    e.add_argument(
        "--relative-paths",
        action="store_true",
        help="ms-swift: audio paths relative to DIR (run with ROOT_IMAGE_DIR=DIR) instead of absolute",
    )
    e.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=run, resume_command=resume)


def resume(args: argparse.Namespace, typed: list[str]) -> tuple[list[str], str]:
    """An interrupted export is redone from the start by the same command (its DIR is marked unfinished)."""
    return typed, "the export is unfinished; to redo it, run the same command again"


def run(args: argparse.Namespace) -> int:
    from audiodata.errors import AudiodataError, FaultError
    from audiodata.export import DestinationNotEmpty, export
    from audiodata.objstore import is_remote as objstore_url

    dest = output_or_positional(args, "dest")
    console = stderr_console()
    with Bar("exporting", "rec", console, disable=args.no_progress) as bar:
        try:
            r = export(
                args.dataset if objstore_url(args.dataset) else Path(args.dataset),
                args.to,
                Path(dest),
                form=args.form,
                audio_format=args.audio_format,
                overwrite=args.overwrite,
                relative_paths=args.relative_paths,
                on_progress=lambda done, total: bar.update(completed=done, total=total or None, count=done),
            )
        except DestinationNotEmpty as exc:
            error(console, exc)
            again = [*getattr(args, "argv", []), "--overwrite"]
            console.print("to replace what an export wrote there (other files stay), run:", highlight=False)
            console.print(shlex.join(["audiodata", *again]), soft_wrap=True, markup=False, highlight=False)
            return EXIT_USAGE
        except AudiodataError as exc:  # usage, a damaged dataset, DIR held by another export; a machine fault goes up (exit 3)
            if isinstance(exc, FaultError):
                raise
            error(console, exc)
            return exc.exit_code
        bar.finish()
    if args.json:
        print(json.dumps(result_dict(r), indent=2, ensure_ascii=False))
    else:
        print_summary(r)
    return r.exit_code


def result_dict(r: ExportResult) -> dict[str, Any]:
    return {
        "dest": str(r.dest),
        "target": r.target,
        "form": r.form,
        "read": r.read,
        "exported": r.counts,
        "skipped_by_reason": r.skipped_by_reason,
        "skipped": r.skipped,
        "files": r.files,
        "audio_files": r.audio_files,
        "train": r.train,
        "exit_code": r.exit_code,
    }


def print_summary(r: ExportResult) -> None:
    from rich.table import Table

    from audiodata.export import swift_hints
    from audiodata.export.rl import rl_hints

    console = stdout_console()
    title = f"audiodata export -> {r.dest} ({r.target}{', ' + r.form if r.target == 'llamafactory' else ''})"
    t = Table(title=title)
    for col in ("config", "split", "read", "exported", "skipped"):
        t.add_column(col, justify="left" if col in ("config", "split") else "right")
    for key, n in r.counts.items():
        config, split = key.split("/", 1)
        t.add_row(config, split, str(r.read.get(key, n)), str(n), str(r.read.get(key, n) - n))
    console.print(t)
    console.print(f"files: {', '.join(r.files) or 'none'}; audio files: {r.audio_files}")
    if r.skipped_by_reason:
        s = Table(title="skipped records by reason")
        s.add_column("reason")
        s.add_column("records", justify="right")
        for reason, n in sorted(r.skipped_by_reason.items(), key=lambda kv: -kv[1]):
            s.add_row(reason, str(n))
        console.print(s)
    for stage, names in r.train.items():  # a ranking dataset only trains under a ranking stage: one line per stage
        line = "  ".join(f"{key}: {','.join(v)}" for key, v in names.items() if v)
        if r.target == "align-anything":
            flags = [  # a data_files string loads as the split "train" (datasets.load_dataset)
                f"--{side}_datasets {r.dest} --{side}_data_files {','.join(v)} --{side}_template AA_TA2T --{side}_split train"
                for side, v in (("train", names.get("train_data_files")), ("eval", names.get("eval_data_files")))
                if v
            ]
            module = "dpo" if stage == "dpo" else "sft"
            trainer = f"align_anything.trainers.text_audio_to_text.{module}"
            console.print(f"train with: deepspeed --module {trainer} " + " ".join(flags), soft_wrap=True)
        elif r.target == "llamafactory":
            console.print(f"train with: stage: {stage}  dataset_dir: {r.dest}  {line}")
        else:
            console.print(f"train with: cd {r.dest} && USE_V1=1 llamafactory-cli {stage} CONFIG.yaml  with  {line}")
            console.print("  (LLaMA-Factory v1 opens the YAML's path and the audio paths relative to the working directory)")
    if r.target == "ms-swift" and r.files:
        for hint in swift_hints(r):
            console.print(hint, soft_wrap=True)
    for hint in rl_hints(r):
        console.print(hint, soft_wrap=True, markup=False, highlight=False)
