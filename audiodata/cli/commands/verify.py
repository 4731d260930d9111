"""``audiodata verify``: re-read a converted dataset against its manifest and card (:mod:`audiodata.verify`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from audiodata.cli.common import EXIT_USAGE, error, stderr_console, stdout_console
from audiodata.cli.progress import Bar

NAME = "verify"
HELP = "re-read a converted dataset: checksums, row counts, every audio, the card"
MAX_PROBLEMS = 20  # problems listed in the terminal; --json lists all


def register(subparsers: Any) -> None:
    """Add ``verify OUT [--no-audio] [--json]``."""
    from audiodata.faults import FAULT_EXIT

    v = subparsers.add_parser(
        NAME,
        help=HELP,
        description="Re-read every shard of a converted output: sha256 and sizes against manifest.json, row and clip "
        "counts, every audio decoded (rate, mono, samples, PCM hash), and the dataset card's YAML against the shards.",
        epilog="exit codes: 0 consistent, 1 problems found, 2 usage error (no readable manifest.json)" + FAULT_EXIT,
    )
    v.add_argument("dataset", metavar="DATASET", help="a folder written by audiodata convert")
    v.add_argument("--no-audio", action="store_true", help="do not decode the audio (checksums, counts and card only)")
    v.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="worker processes (default: all cores): shards, and the row groups within one, are checked in parallel",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    v.add_argument(
        "--decoders",
        action="store_true",
        help="also decode every clip through each decoding path users load with (soundfile; datasets' own Audio "
        "decoding where torchcodec loads) and check that each gives the stored pcm_hash (V018, V019)",
    )
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from audiodata.pipeline.options import OptionsError
    from audiodata.verify import VerifyError, verify

    if args.num_workers < 0:
        raise OptionsError(f"--num-workers must be 0 (all cores) or more, got {args.num_workers}")
    console = stdout_console()
    decoders = None
    if args.decoders:
        from audiodata.decoding import available_decoders

        why_not = available_decoders()
        decoders = [name for name, why in why_not.items() if why is None]
        for name, why in why_not.items():
            if why is not None:
                stderr_console().print(f"[yellow]--decoders: {name} not checked: {escape(why)}[/]", soft_wrap=True)
    with Bar("verifying", "rows", stderr_console(), disable=args.no_progress, extra=("{task.fields[shards]}",), shards="") as bar:

        def on_progress(done: int, total: int, rows: int) -> None:
            bar.update(completed=done, total=total, count=rows, shards=f"{done}/{total} shards")

        try:
            report = verify(
                args.dataset, audio=not args.no_audio, on_progress=on_progress, num_workers=args.num_workers, decoders=decoders
            )
        except VerifyError as exc:
            error(stderr_console(), exc)
            return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return report.exit_code
    t = Table(title=f"audiodata verify {args.dataset}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("shards checked", str(report.shards_checked))
    t.add_row("rows checked", str(report.rows_checked))
    t.add_row("clips decoded", str(report.clips_checked) if report.audio_checked else "- (--no-audio)")
    if report.decoders:
        t.add_row("decoded through", ", ".join(report.decoders))
    t.add_row("problems", f"[red]{len(report.problems)}[/]" if report.problems else "[green]0[/]")
    console.print(t)
    if report.problems:
        p = Table(title="problems" + (f" (first {MAX_PROBLEMS})" if len(report.problems) > MAX_PROBLEMS else ""))
        for col in ("code", "where", "problem"):
            p.add_column(col, overflow="fold")
        for prob in report.problems[:MAX_PROBLEMS]:
            p.add_row(prob.code, escape(prob.where), escape(prob.message))
        console.print(p)
        console.print("[bold red]verify failed:[/] " + ", ".join(f"{c} x{n}" for c, n in report.by_code().items()))
    else:
        console.print("[bold green]ok: shards, audio and card are consistent with manifest.json[/]")
    return report.exit_code
