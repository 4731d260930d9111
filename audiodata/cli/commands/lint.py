"""``audiodata lint``: the pre-flight check of raw corpora, every problem located, nothing written
(:mod:`audiodata.pipeline.lint`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from audiodata.cli.common import stderr_console, write_json_report
from audiodata.cli.engine import add_engine_options, add_rank_options, cluster, said_rank, with_ranks
from audiodata.cli.progress import Bar
from audiodata.cli.reading import add_exclude_option, add_reading_options, reading_options

if TYPE_CHECKING:
    pass

NAME = "lint"
HELP = "pre-flight check of raw corpora: every problem, located, nothing written"


def register(subparsers: Any) -> None:
    from audiodata.faults import FAULT_EXIT

    lt = subparsers.add_parser(NAME, help=HELP, epilog="exit codes: 0 no errors, 1 errors found, 2 usage error" + FAULT_EXIT)
    lt.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    add_reading_options(lt)
    add_exclude_option(lt)
    lt.add_argument("--no-audio", action="store_true", help="text rules only: do not open the audio")
    lt.add_argument(
        "--report-json", metavar="FILE", help="write the report as JSON, '-' for stdout (schemas/lint_report.schema.json)"
    )
    lt.add_argument("--json", action="store_true", help="print the report as JSON on stdout (the tables go to stderr)")
    lt.add_argument("--report-html", metavar="FILE", help="write a self-contained HTML report with plots and audio players")
    lt.add_argument(
        "--fix",
        metavar="OUT",
        help="write a repaired copy (safe repairs only; the input is never edited): one input file -> the file OUT (JSONL); "
        "several (a folder, files, a dataset_info.json) -> one copy per input under the folder OUT, same layout",
    )
    lt.add_argument("--max-examples", type=int, default=3, help="examples shown per rule in the terminal (default 3)")
    lt.add_argument(
        "--output-format",
        choices=("full", "concise", "json", "github", "sarif"),  # = report.formats.OUTPUT_FORMATS (a test holds them equal)
        default="full",
        help="full: the terminal report (default); concise: one line per finding, file:line:col: CODE message; json: "
        "the JSON report (= --json); github: GitHub Actions annotations; sarif: SARIF 2.1.0 for code scanning (all but "
        "full: stdout)",
    )
    add_engine_options(lt, "the workers' jobs (byte ranges of JSON-lines inputs, batches of records)")
    add_rank_options(lt, NAME)
    lt.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from audiodata.faults import write_atomic
    from audiodata.pipeline.lint import lint
    from audiodata.pipeline.options import OptionsError

    opts = with_ranks(args, reading_options(args))
    if args.json:
        args.output_format = "json" if args.output_format == "full" else args.output_format
        if args.output_format != "json":
            raise OptionsError(f"--json and --output-format {args.output_format} both write to stdout; choose one")
    if args.report_json == "-" and args.output_format != "full":
        raise OptionsError(f"--report-json - and --output-format {args.output_format} both write to stdout; choose one")
    to_stdout = args.output_format != "full" or args.report_json == "-"
    err = stderr_console()
    with cluster(args, err), Bar("linting", "rec", err, disable=args.no_progress) as bar:

        def on_progress(done: int, total: int, records: int) -> None:
            bar.update(total=total or None, completed=done, count=records)

        report = lint(
            args.inputs,
            options=opts,
            audio=not args.no_audio,
            fix=args.fix,
            html=bool(args.report_html),
            on_progress=on_progress,
            engine=args.engine,
            parts=args.parts,
        )
        bar.finish()
    if report.part is not None:
        return said_rank(report.part, opts, args, err)
    data = report.to_dict()
    write_json_report(data, args.report_json)
    if args.report_html:
        from audiodata.report.html import render_html

        write_atomic(args.report_html, render_html(data, report.html_extras()))
    if args.output_format == "full":
        from audiodata.report.terminal import print_lint

        print_lint(data, Console(stderr=to_stdout), args.max_examples)
    else:
        from audiodata.report.formats import render

        sys.stdout.write(render(data, args.output_format))
    return report.exit_code
