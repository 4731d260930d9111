"""``audiodata lint``: the pre-flight check of raw corpora, every problem located, nothing written
(:mod:`audiodata.pipeline.lint`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from audiodata.cli.common import stderr_console, write_json_report
from audiodata.cli.progress import Bar
from audiodata.cli.reading import add_reading_options, reading_options

if TYPE_CHECKING:
    from rich.console import Console

NAME = "lint"
HELP = "pre-flight check of raw corpora: every problem, located, nothing written"


def register(subparsers: Any) -> None:
    from audiodata.faults import FAULT_EXIT

    lt = subparsers.add_parser(NAME, help=HELP, epilog="exit codes: 0 no errors, 1 errors found, 2 usage error" + FAULT_EXIT)
    lt.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    add_reading_options(lt)
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
    lt.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from audiodata.faults import write_atomic
    from audiodata.pipeline.lint import lint

    opts = reading_options(args)
    to_stdout = args.json or args.report_json == "-"
    with Bar("linting", "rec", stderr_console(), disable=args.no_progress) as bar:

        def on_progress(done: int, total: int, records: int) -> None:
            bar.update(total=total or None, completed=done, count=records)

        report = lint(
            args.inputs, opts, audio=not args.no_audio, fix=args.fix, html=bool(args.report_html), on_progress=on_progress
        )
        bar.finish()
    data = report.to_dict()
    write_json_report(data, "-" if args.json else None)
    write_json_report(data, None if args.json and args.report_json == "-" else args.report_json)
    if args.report_html:
        from audiodata.report.html import render_html

        write_atomic(args.report_html, render_html(data, report.html_extras()))
    print_lint(data, Console(stderr=to_stdout), args.max_examples)
    return report.exit_code


def print_lint(data: dict[str, Any], out: Console, max_examples: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from audiodata.rules.registry import REGISTRY

    s = data["summary"]
    title = f"audiodata lint: {s['records']} records, {s['errors']} errors, {s['warnings']} warnings"
    t = Table(title=title)
    for col in ("code", "name", "severity", "count", "first examples"):
        t.add_column(col, overflow="fold")
    colour = {"error": "red", "warning": "yellow", "info": "blue"}
    firsts: dict[str, list[dict[str, Any]]] = {}
    for f in data["findings"]:
        seen = firsts.setdefault(f["code"], [])
        if len(seen) < max_examples:
            seen.append(f)
    order = sorted(s["by_code"], key=lambda c: (["error", "warning", "info"].index(REGISTRY[c].severity.value), c))
    for code in order:
        rule = REGISTRY[code]
        where = "\n".join(  # escaped: a field such as "[videos]" or a message with brackets is text, not rich markup
            escape(f"{e['source']}{_at(e)}" + (f" [{e['field']}]" if e["field"] else "") + f" {e['message'][:90]}")
            for e in firsts[code]
        )
        sev = rule.severity.value
        t.add_row(code, rule.name, f"[{colour[sev]}]{sev}[/]", str(s["by_code"][code]), where)
    if s["by_code"]:
        out.print(t)
    verdict = (
        f"[bold red]{s['errors']} errors in {s['records_with_errors']} records would fail or degrade training[/]"
        if s["errors"]
        else "[bold green]no errors: ready to train[/]"
    )
    extra = "" if s["audio_checked"] else " (audio not checked: --no-audio)"
    out.print(f"{s['records']} records, {s['clips']} clips, {s['audio_hours']:.3f} h audio{extra}: {verdict}")
    mix = s.get("modality") or {}
    if mix.get("audio") and mix.get("text_only"):
        out.print(
            f"modality: {mix['audio']} records with audio, {mix['text_only']} text-only; on several GPUs a batch without "
            "audio skips the encoder (ZeRO-3/FSDP hang): audiodata train plans for it, other trainers need fake audio inputs"
        )
    if "fix" in data:
        fx = data["fix"]
        out.print(f"--fix: {fx['records_changed']} records repaired -> {fx['output']} ({fx['not_copied']} unparsable not copied)")
        if "files" in fx:
            out.print(f"  {len(fx['files'])} files; {fx['paths_rewritten']} relative audio paths made absolute to keep resolving")
        for item in data["fixes"][:20]:
            where = f"{item['source']}:{item['line'] if item['line'] is not None else item['index']}"
            out.print(f"  {where}: " + "; ".join(item["changes"]))
        if len(data["fixes"]) > 20:
            out.print(f"  ... {len(data['fixes']) - 20} more in the JSON report (--report-json)")


def _at(e: dict[str, Any]) -> str:
    """``:line`` (or ``:index``) of a finding; nothing for one about a whole input (index -1, no line)."""
    if e["line"] is not None:
        return f":{e['line']}"
    return "" if e["index"] == -1 else f":{e['index']}"
