"""``audiodata export``: a converted dataset out again for LLaMA-Factory, ms-swift or MiniCPM (:mod:`audiodata.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "export"
HELP = "export a converted dataset for LLaMA-Factory, ms-swift or MiniCPM"
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add ``export OUT --to {llamafactory,llamafactory-v1,ms-swift,minicpm} DIR``."""
    from audiodata.export import AUDIO_FORMATS, FORMS, TARGETS
    from audiodata.faults import FAULT_EXIT

    e: argparse.ArgumentParser = subparsers.add_parser(
        NAME,
        help=HELP,
        description="Write a converted dataset out as audio files plus JSON a trainer reads directly: LLaMA-Factory "
        "(sharegpt or alpaca + dataset_info.json; use dataset_dir=DIR), LLaMA-Factory v1 (typed-content JSONL + the "
        "dataset YAML; train from DIR), ms-swift (messages + audios JSONL) "
        "or MiniCPM ({audio: base64, text} JSONL).",
        epilog="exit codes: 0 all records exported, 1 some skipped (reasons listed), 2 usage error (or DIR held by another "
        "export, or a damaged dataset)" + FAULT_EXIT + "; an interrupted export is redone by the same command",
    )
    e.add_argument("output", metavar="OUT", help="a converted audiodata output folder")
    e.add_argument("--to", required=True, choices=TARGETS, help="the trainer to export for")
    e.add_argument("dest", metavar="DIR", help="folder to write (empty, or pass --overwrite)")
    e.add_argument("--form", choices=FORMS, default="sharegpt", help="LLaMA-Factory formatting (default sharegpt)")
    e.add_argument("--audio-format", choices=AUDIO_FORMATS, default="flac", help="audio file format (default flac: as stored)")
    e.add_argument("--overwrite", action="store_true", help="replace a previous export in DIR")
    e.add_argument(
        "--relative-paths",
        action="store_true",
        help="ms-swift: audio paths relative to DIR (run with ROOT_IMAGE_DIR=DIR) instead of absolute",
    )
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from audiodata.export import ExportError, export, swift_hints

    console = Console()
    try:
        r = export(
            Path(args.output),
            args.to,
            Path(args.dest),
            form=args.form,
            audio_format=args.audio_format,
            overwrite=args.overwrite,
            relative_paths=args.relative_paths,
        )
    except ExportError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return EXIT_USAGE
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
        if r.target == "llamafactory":
            console.print(f"train with: stage: {stage}  dataset_dir: {r.dest}  {line}")
        else:
            console.print(f"train with: cd {r.dest} && USE_V1=1 llamafactory-cli {stage} CONFIG.yaml  with  {line}")
            console.print("  (LLaMA-Factory v1 opens the YAML's path and the audio paths relative to the working directory)")
    if r.target == "ms-swift" and r.files:
        for hint in swift_hints(r):
            console.print(hint, soft_wrap=True)
    return r.exit_code
