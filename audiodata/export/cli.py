"""The ``export`` command line (argparse and rich stay here, out of the library modules)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import audiodata.export as package
from audiodata.export.base import AUDIO_FORMATS, EXIT_USAGE, FORMS, TARGETS, ExportError
from audiodata.export.msswift import swift_hints
from audiodata.faults import FAULT_EXIT


def add_export_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``export OUT --to {llamafactory,llamafactory-v1,ms-swift,minicpm} DIR`` to a subparsers object."""
    e: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export a converted dataset for LLaMA-Factory, ms-swift or MiniCPM",
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
    return e


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    try:
        r = package.export(  # looked up on the package, where tests and callers patch it
            Path(args.output),
            args.to,
            Path(args.dest),
            form=getattr(args, "form", "sharegpt"),
            audio_format=getattr(args, "audio_format", "flac"),
            overwrite=getattr(args, "overwrite", False),
            relative_paths=getattr(args, "relative_paths", False),
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
        s = Table(title="skipped records by reason (rule docs: audiodata rules)")
        s.add_column("code")
        s.add_column("reason", overflow="fold")
        s.add_column("records", justify="right")
        codes = {item["reason"]: item["code"] for item in r.skipped}
        for reason, n in sorted(r.skipped_by_reason.items(), key=lambda kv: -kv[1]):
            s.add_row(codes.get(reason, ""), reason, str(n))
        console.print(s)
    for stage, names in r.train.items():  # a ranking dataset only trains under a ranking stage: one line per stage
        args = "  ".join(f"{key}: {','.join(v)}" for key, v in names.items() if v)
        if r.target == "llamafactory":
            console.print(f"train with: stage: {stage}  dataset_dir: {r.dest}  {args}")
        else:
            console.print(f"train with: cd {r.dest} && USE_V1=1 llamafactory-cli {stage} CONFIG.yaml  with  {args}")
            console.print("  (LLaMA-Factory v1 opens the YAML's path and the audio paths relative to the working directory)")
    if r.target == "ms-swift" and r.files:
        for line in swift_hints(r):
            console.print(line, soft_wrap=True)
    return r.exit_code
