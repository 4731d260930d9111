"""The ``audiodata`` command line.

Exit codes (stable, for CI pipelines):
  0  everything went through
  1  the run finished but some records were rejected (see rejects.jsonl)
  2  usage error: bad options, missing inputs, an output folder that holds something else or is
     held by another run, a damaged converted dataset (named, with `audiodata verify` to run)
  3  a fault of the machine: disk full, read-only or forbidden output, a file where a folder should
     be, an I/O error; one line names the path and the cause (audiodata/faults.py)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from audiodata import __version__
from audiodata.budget import DEFAULT_CUTOFF
from audiodata.dataset import DatasetError, load_manifest, open_shard, shard_path, verify_hint
from audiodata.dedup.index import NEAR_THRESHOLD
from audiodata.families import FAMILIES as MODEL_FAMILIES
from audiodata.faults import EXIT_FAULT, FAULT_EXIT, MachineFault, fault_line, write_atomic
from audiodata.pipeline.convert import ConvertResult, resume_command
from audiodata.pipeline.convert import Progress as RunProgress
from audiodata.pipeline.convert import convert as run_convert
from audiodata.pipeline.lint import lint as run_lint
from audiodata.pipeline.options import ConvertOptions, OptionsError, parse_size
from audiodata.readers.sources import InputError
from audiodata.readers.spec import DIALECTS
from audiodata.rules.registry import FAMILIES, REGISTRY
from audiodata.rules.transcript import TASKS

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 141  # stdout closed early (| head): 128 + SIGPIPE, as a shell reports it


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep the message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="audiodata", description="Prepare audio-text corpora for fine-tuning audio language models.")
    p.add_argument("--version", action="version", version=f"audiodata {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser(
        "convert",
        help="convert raw JSON/JSONL corpora into Hub-ready Parquet shards",
        description="Convert raw JSON/JSONL corpora (files, folders, globs, a LLaMA-Factory dataset_info.json) "
        "into Parquet shards with the audio embedded, resampled once.",
        epilog="exit codes: 0 all records written, 1 some rejected (see OUT/rejects.jsonl), 2 usage error (or OUT held "
        "by another run)" + FAULT_EXIT + "; the same command resumes",
    )
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    c.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    add_reading_options(c)
    add_exclude_option(c)
    c.add_argument("--sample-rate", type=int, default=16000, help="target sample rate (default 16000)")
    c.add_argument("--codec", choices=["flac", "wav"], default="flac", help="lossless audio encoding (default flac)")
    c.add_argument("--split", default="train", help="split name for the records (default train)")
    c.add_argument("--val-ratio", type=float, default=0.0, help="fraction assigned to --val-split, keyed on audio content")
    c.add_argument("--val-split", default="validation", help="name of the held-out split (default validation)")
    c.add_argument("--seed", type=int, default=0, help="seed of the split assignment (default 0)")
    c.add_argument("--max-shard-size", default="500MB", help="cap on a shard's actual bytes (default 500MB)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output instead of resuming it")
    c.add_argument("--license", default="unknown", help="license tag for the dataset card (e.g. cc-by-4.0; default unknown)")
    c.add_argument(
        "--dedup",
        choices=["off", "exact", "near"],
        default="off",
        help="drop later copies of a record: exact (same PCM) or near (re-encoded, resampled, re-gained, noisy); "
        "dropped records are listed in rejects.jsonl with their cluster",
    )
    c.add_argument(
        "--dedup-threshold", type=float, default=NEAR_THRESHOLD, help=f"near-duplicate similarity (default {NEAR_THRESHOLD})"
    )
    c.add_argument(
        "--visual",
        choices=["embed", "refs"],
        default="embed",
        help="images/videos: embed them (Hub Image/Video columns, default) or keep refs (paths relative to the media root)",
    )
    c.add_argument("--json", action="store_true", help="print the summary as JSON")

    lt = sub.add_parser(
        "lint",
        help="pre-flight check of raw corpora: every problem, located, nothing written",
        epilog="exit codes: 0 no errors, 1 errors found, 2 usage error" + FAULT_EXIT,
    )
    lt.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    add_reading_options(lt)
    add_exclude_option(lt)
    lt.add_argument("--no-audio", action="store_true", help="text rules only: do not open the audio")
    lt.add_argument(
        "--report-json", metavar="FILE", help="write the report as JSON, '-' for stdout (schemas/lint_report.schema.json)"
    )
    lt.add_argument("--report-html", metavar="FILE", help="write a self-contained HTML report with plots and audio players")
    lt.add_argument(
        "--fix",
        metavar="OUT",
        help="write a repaired copy (safe repairs only; the input is never edited): one input file -> the file OUT (JSONL); "
        "several (a folder, files, a dataset_info.json) -> one copy per input under the folder OUT, same layout",
    )
    lt.add_argument("--max-examples", type=int, default=3, help="examples shown per rule in the terminal (default 3)")

    d = sub.add_parser(
        "dedup",
        help="find exact and near-duplicate records across inputs, and leakage into a converted dataset",
        epilog="exit codes: 0 nothing found, 1 duplicates, conflicts or leaks found, 2 usage error (or a damaged --against "
        "dataset)" + FAULT_EXIT,
    )
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    add_reading_options(d)
    d.add_argument("--mode", choices=["exact", "near"], default="near", help="exact PCM only, or acoustic near copies too")
    d.add_argument(
        "--threshold", type=float, default=NEAR_THRESHOLD, help=f"near-duplicate similarity (default {NEAR_THRESHOLD})"
    )
    d.add_argument("--against", metavar="DIR", help="a converted dataset (e.g. the test split) to check the inputs against")
    d.add_argument("--report-json", metavar="FILE", help="write the clusters as JSON, '-' for stdout")
    d.add_argument("--max-examples", type=int, default=10, help="clusters shown in the terminal (default 10)")

    pb = sub.add_parser(
        "publish",
        help="upload a converted dataset to the Hugging Face Hub (resumable, skips what is already there)",
        epilog="exit codes: 0 uploaded (or nothing to do), 1 the upload failed (re-run to resume), 2 usage error (or a "
        "damaged dataset)" + FAULT_EXIT,
    )
    pb.add_argument("output", metavar="OUT", help="a folder written by `audiodata convert`")
    pb.add_argument("repo_id", metavar="REPO_ID", help="the dataset repo, e.g. me/my-audio-sft")
    pb.add_argument("--private", action="store_true", help="create the repo private")
    pb.add_argument("--revision", metavar="BRANCH", help="upload to this branch (created if needed)")
    pb.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    pb.add_argument("--token", help="Hub token (default: $HF_TOKEN or the saved login)")
    pb.add_argument("--dry-run", action="store_true", help="print exactly what would be uploaded; upload nothing")
    pb.add_argument("--max-commit-size", default="2GB", help="bytes per commit (default 2GB); each commit is atomic")
    pb.add_argument("--include-rejects", action="store_true", help="also upload rejects.jsonl")
    pb.add_argument("--json", action="store_true", help="print the result as JSON")

    from audiodata.export import add_export_parser
    from audiodata.verify import add_verify_parser

    add_verify_parser(sub)
    add_export_parser(sub)

    i = sub.add_parser(
        "info",
        help="summarise a converted dataset",
        epilog="exit codes: 0 done, 2 not a converted dataset or a damaged one (missing shard, unreadable footer)" + FAULT_EXIT,
    )
    i.add_argument("output", metavar="OUT")
    i.add_argument("--json", action="store_true", help="print the manifest summary as JSON")

    from trainer.cli import add_train_parsers  # light: torch/transformers load only when a command runs

    add_train_parsers(sub)

    r = sub.add_parser("rules", help="list the rule codes")
    r.add_argument("--json", action="store_true", help="print the rules as JSON")
    r.add_argument("--markdown", action="store_true", help="print the rules documentation (docs/rules.md)")
    return p


def add_reading_options(c: argparse.ArgumentParser) -> None:
    """Options convert and lint share: they must read and judge records the same way."""
    c.add_argument("--format", choices=[*DIALECTS, "openai"], help="force a dialect instead of detecting it per record")
    c.add_argument("--media-root", help="folder relative audio paths resolve against (default: each input file's folder)")
    c.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        default=[],
        metavar="NAME",
        help="with a dataset_info.json: take only this entry (repeatable)",
    )
    c.add_argument(
        "--all-files",
        action="store_true",
        help="a folder holding a dataset_info.json: also read the JSON files it does not name (default: only those it names)",
    )
    c.add_argument("--prompt", help="user prompt added to transcript-only (MiniCPM-style) records")
    c.add_argument("--system", help="system prompt for records that carry none")
    c.add_argument("--max-audio-bytes", default="256MiB", help="bound on one audio's encoded size (default 256MiB)")
    c.add_argument("--max-duration", type=float, default=1200.0, help="bound on one clip's seconds (default 1200)")
    c.add_argument("--max-record-bytes", default="512MiB", help="bound on one JSON record's size (default 512MiB)")
    c.add_argument(
        "--max-decompressed-bytes", default="64GiB", help="bound on what one gzip input expands to (default 64GiB)"
    )
    c.add_argument(
        "--max-expansion-ratio",
        type=float,
        default=100.0,
        help="bound on a gzip input's decompressed/compressed bytes, judged past its first 16MiB (default 100)",
    )
    c.add_argument("--strict-paths", action="store_true", help="refuse absolute audio paths outside the media root")
    c.add_argument(
        "--absolute-paths",
        action="store_true",
        help="write absolute local paths into outputs (rejects.jsonl, manifest, reports) as typed and resolved; "
        "default: relative to the input's folder or the media root, so outputs can be shared",
    )
    c.add_argument("--select", default="", help="only these rule codes/prefixes (comma separated, e.g. M,A00)")
    c.add_argument("--ignore", default="", help="skip these rule codes/prefixes (comma separated)")
    c.add_argument(
        "--model-family", choices=sorted(MODEL_FAMILIES), help="check token budget and audio window for this model family"
    )
    c.add_argument("--cutoff-len", type=int, default=DEFAULT_CUTOFF, help=f"the trainer's cutoff_len (default {DEFAULT_CUTOFF})")
    c.add_argument("--tokenizer", help="tokenizer (local path or Hub id) for exact text token counts in budget rules")
    c.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="which records the transcript-rate rules (R) measure: auto (transcription-like ones), asr (every "
        "single-exchange record), none (default auto)",
    )
    c.add_argument("--num-workers", type=int, default=0, help="worker processes (default: all cores)")
    c.add_argument(
        "--dedup-memory",
        default="64MiB",
        help="memory for the duplicate index (D rules, dedup); past it the index spills to $TMPDIR (convert: to the "
        "output folder) and memory stays flat however large the corpus (default 64MiB)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_exclude_option(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="FILE",
        help="leave out the records this list names by id: a training run's quarantine.jsonl or skipped.jsonl, or a "
        "convert rejects.jsonl (repeatable; counted in the summary)",
    )


def reading_options(args: argparse.Namespace, **extra: Any) -> ConvertOptions:
    return ConvertOptions(
        format=args.format,
        media_root=args.media_root,
        datasets=args.datasets,
        all_files=args.all_files,
        prompt=args.prompt,
        system=args.system,
        max_audio_bytes=parse_size(args.max_audio_bytes),
        max_duration=args.max_duration,
        max_record_bytes=parse_size(args.max_record_bytes),
        max_decompressed_bytes=parse_size(args.max_decompressed_bytes),
        max_expansion_ratio=args.max_expansion_ratio,
        allow_absolute_paths=not args.strict_paths,
        absolute_paths=args.absolute_paths,
        select=_codes(args.select),
        ignore=_codes(args.ignore),
        model_family=args.model_family,
        cutoff_len=args.cutoff_len,
        tokenizer=args.tokenizer,
        task=args.task,
        num_workers=args.num_workers,
        dedup_memory=parse_size(args.dedup_memory),
        exclude=getattr(args, "exclude", []),
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return _dispatch(args, console)
    except (OptionsError, InputError, ValueError) as exc:  # DatasetError and OutputBusy are ValueErrors: exit 2
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, markup=True, highlight=False)  # one line, greppable
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command == "convert":
            typed = sys.argv[1:] if argv is None else argv
            again = resume_command(typed, args.output)
            aside = args.overwrite and again == typed
            what = "the same command again" if again == typed else "it without --overwrite (with it, it would start over)"
            console.print(
                "[yellow]interrupted: finished shards are kept"
                + (" and the old dataset is untouched" if aside else "")
                + f"; to resume, run {what}:[/]",
                soft_wrap=True,
            )
            console.print(shlex.join(["audiodata", *again]), soft_wrap=True, markup=False, highlight=False)
        else:
            console.print("[yellow]interrupted[/]")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except (MachineFault, OSError) as exc:  # one line, never a traceback: exit 1 would read as "some records rejected"
        resume = None
        if args.command == "convert" and args.overwrite:
            typed = sys.argv[1:] if argv is None else argv
            again = resume_command(typed, args.output)
            resume = None if again == typed else shlex.join(["audiodata", *again])
        _fault(exc, args.command, resume)
        return EXIT_FAULT


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    if args.command == "convert":
        return cmd_convert(args, console)
    if args.command == "lint":
        return cmd_lint(args, console)
    if args.command == "dedup":
        return cmd_dedup(args, console)
    if args.command == "publish":
        return cmd_publish(args, console)
    if args.command == "export":
        from audiodata.export import cmd_export

        return cmd_export(args, Console())
    if args.command == "verify":
        from audiodata.verify import cmd_verify

        return cmd_verify(args, Console())
    if args.command == "info":
        return cmd_info(args, console)
    if args.command in ("train", "make-tiny-model"):
        from trainer.cli import run as run_trainer

        return run_trainer(args)
    return cmd_rules(args)


def _fault(exc: BaseException, command: str, resume: str | None = None) -> None:
    try:
        sys.stderr.write(f"audiodata: {fault_line(exc, command, resume)}\n")
        sys.stderr.flush()
    except OSError:
        pass


def _silence_stdout() -> None:
    """After EPIPE, Python would complain again when it flushes stdout at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]


def cmd_convert(args: argparse.Namespace, console: Console) -> int:
    opts = reading_options(
        args,
        license=args.license,
        dedup=args.dedup,
        dedup_threshold=args.dedup_threshold,
        sample_rate=args.sample_rate,
        codec=args.codec,
        split=args.split,
        val_ratio=args.val_ratio,
        val_split=args.val_split,
        seed=args.seed,
        max_shard_size=parse_size(args.max_shard_size),
        overwrite=args.overwrite,
        visual=args.visual,
    )
    show = not args.no_progress and not args.json
    with Progress(
        TextColumn("[bold]converting"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]} rec"),
        TextColumn("{task.fields[rate]} rec/s"),
        TextColumn("{task.fields[hours]} h audio"),
        TextColumn("{task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=False,
    ) as bar:
        task = bar.add_task("convert", total=None, records=0, rate="-", hours="0.00", rejected=0)

        def on_progress(p: RunProgress) -> None:
            if p.records % 8 and p.bytes_done < p.bytes_total:
                return
            elapsed = bar.tasks[task].elapsed or 0
            bar.update(
                task,
                total=p.bytes_total or None,
                completed=p.bytes_done,
                records=p.records,
                rate=f"{p.records / elapsed:.0f}" if elapsed > 0 else "-",
                hours=f"{p.audio_seconds / 3600:.2f}",
                rejected=p.rejected,
            )

        result = run_convert(args.inputs, args.output, opts, on_progress=on_progress)
        bar.update(task, completed=bar.tasks[task].total or 0)
    if args.json:
        print(json.dumps(_result_dict(result), indent=2))
    else:
        _print_summary(result, Console())
    return result.exit_code


def _result_dict(r: ConvertResult) -> dict[str, Any]:
    return {
        "output": str(r.output),
        "records_read": r.records_read,
        "records_written": r.records_written,
        "records_rejected": r.records_rejected,
        "audio_seconds": r.audio_seconds,
        "clips": r.clips,
        "rejects_by_code": r.rejects_by_code,
        "warnings_by_code": r.warnings_by_code,
        "records_duplicate": r.records_duplicate,
        "records_excluded": r.records_excluded,
        "excluded_by": r.excluded_by,
        "skipped_inputs": r.skipped_inputs,
        "duplicates_by_kind": r.duplicates_by_kind,
        "shards": r.shards,
        "resumed_from": r.resumed_from,
        "already_complete": r.already_complete,
        "exit_code": r.exit_code,
    }


def _print_summary(r: ConvertResult, console: Console) -> None:
    if r.already_complete:
        console.print(f"[green]{r.output} is already complete for these inputs and options[/]")
    elif r.resumed_from:
        console.print(f"[cyan]resumed at input record {r.resumed_from}[/]")
    t = Table(title=f"audiodata convert -> {r.output}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("records read", str(r.records_read))
    t.add_row("written", f"[green]{r.records_written}[/]")
    t.add_row("rejected", f"[red]{r.records_rejected}[/]" if r.records_rejected else "0")
    if r.records_duplicate:
        kinds = ", ".join(f"{k} {v}" for k, v in r.duplicates_by_kind.items())
        t.add_row("duplicates dropped", f"{r.records_duplicate} ({kinds})")
    for name, n in r.excluded_by.items():
        t.add_row(f"excluded by {name}", str(n))
    t.add_row("audio clips", str(r.clips))
    t.add_row("audio hours", f"{r.audio_seconds / 3600:.3f}")
    t.add_row("shards", str(len(r.shards)))
    console.print(t)
    if r.rejects_by_code or r.warnings_by_code:
        w = Table(title="findings by rule")
        for col in ("code", "name", "severity", "records"):
            w.add_column(col)
        for code, n in sorted({**r.warnings_by_code, **r.rejects_by_code}.items()):
            rule = REGISTRY[code]
            w.add_row(code, rule.name, rule.severity.value, str(n))
        console.print(w)
    if r.skipped_inputs:
        s = Table(title="named but not read")
        for col in ("code", "input", "dataset", "why"):
            s.add_column(col, overflow="fold")
        for item in r.skipped_inputs:
            s.add_row(item["code"], item["source"], item["entry"], item["reason"])
        console.print(s)
    if r.records_rejected:
        console.print(f"rejected records and their reasons: {r.output / 'rejects.jsonl'}")


def write_json_report(data: dict[str, Any], target: str | None) -> None:
    """``--report-json FILE``, or ``-`` for stdout (the tables then go to stderr)."""
    if not target:
        return
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        write_atomic(target, text)


def cmd_lint(args: argparse.Namespace, console: Console) -> int:
    opts = reading_options(args)
    to_stdout = args.report_json == "-"
    with Progress(
        TextColumn("[bold]linting"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]} rec"),
        TextColumn("{task.fields[rate]} rec/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.no_progress,
    ) as bar:
        task = bar.add_task("lint", total=None, records=0, rate="-")

        def on_progress(done: int, total: int, records: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{records / elapsed:.0f}" if elapsed > 0 else "-"
            bar.update(task, total=total or None, completed=done, records=records, rate=rate)

        report = run_lint(
            args.inputs, opts, audio=not args.no_audio, fix=args.fix, html=bool(args.report_html), on_progress=on_progress
        )
        bar.update(task, completed=bar.tasks[task].total or 0)
    data = report.to_dict()
    write_json_report(data, args.report_json)
    if args.report_html:
        from audiodata.report.html import render_html

        write_atomic(args.report_html, render_html(data, report.html_extras()))
    _print_lint(data, Console(stderr=to_stdout), args)
    return report.exit_code


def _print_lint(data: dict[str, Any], out: Console, args: argparse.Namespace) -> None:
    s = data["summary"]
    title = f"audiodata lint: {s['records']} records, {s['errors']} errors, {s['warnings']} warnings"
    t = Table(title=title)
    for col in ("code", "name", "severity", "count", "first examples"):
        t.add_column(col, overflow="fold")
    colour = {"error": "red", "warning": "yellow", "info": "blue"}
    firsts: dict[str, list[dict[str, Any]]] = {}
    for f in data["findings"]:
        seen = firsts.setdefault(f["code"], [])
        if len(seen) < args.max_examples:
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
    for name, n in s.get("excluded_by", {}).items():
        out.print(f"excluded by {name}: {n} records (not checked)")
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


def cmd_dedup(args: argparse.Namespace, console: Console) -> int:
    from audiodata.pipeline.dedup import dedup as run_dedup

    opts = reading_options(args)
    with Progress(
        TextColumn("[bold]dedup"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]} rec"),
        TimeElapsedColumn(),
        console=console,
        disable=args.no_progress,
    ) as bar:
        task = bar.add_task("dedup", total=None, records=0)

        def on_progress(done: int, total: int, records: int) -> None:
            bar.update(task, total=total or None, completed=done, records=records)

        report = run_dedup(
            args.inputs, opts, mode=args.mode, against=args.against, threshold=args.threshold, on_progress=on_progress
        )
    data = report.to_dict()
    to_stdout = args.report_json == "-"
    write_json_report(data, args.report_json)
    out = Console(stderr=to_stdout)
    s = data["summary"]
    t = Table(title=f"audiodata dedup ({s['mode']}): {s['records']} records, {s['duplicates']} duplicates", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    for label, key in (
        ("records read", "records"),
        ("records checked (pass the rules)", "checked"),
        ("clusters", "clusters"),
        ("exact duplicates", "exact"),
        ("near duplicates", "near"),
        ("conflicts (same audio + prompt, other response)", "conflicts"),
        ("leaks into --against", "leaks"),
        ("fingerprint comparisons", "comparisons"),
    ):
        t.add_row(label, str(s[key]))
    out.print(t)
    for c in data["clusters"][: args.max_examples]:
        members = ", ".join(
            f"{m['source']}:{m.get('line', m['index'])}" + (" (against)" if m.get("reference") else "") for m in c["members"]
        )
        label = "leak" if c["leak"] else c["kind"]
        out.print(f"  {label}: {members} (similarity {c['similarity']})", soft_wrap=True, markup=False)
    if len(data["clusters"]) > args.max_examples:
        out.print(f"  ... {len(data['clusters']) - args.max_examples} more clusters in the JSON report")
    return report.exit_code


def cmd_publish(args: argparse.Namespace, console: Console) -> int:
    from audiodata.publish import PublishError, publish

    try:
        with console.status("publishing"):
            result = publish(
                args.output,
                args.repo_id,
                private=args.private,
                revision=args.revision,
                create_pr=args.create_pr,
                token=args.token,
                dry_run=args.dry_run,
                max_commit_bytes=parse_size(args.max_commit_size),
                include_rejects=args.include_rejects,
            )
    except PublishError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return EXIT_USAGE
    except MachineFault:
        raise  # a local file the upload reads: exit 3
    except OSError as exc:
        if exc.filename is not None:
            raise  # a local file, not the network
        return _upload_failed(exc, console)
    except Exception as exc:  # network or Hub errors: finished commits stay, a re-run resumes
        return _upload_failed(exc, console)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    _print_publish(result, args)
    return EXIT_OK


def _upload_failed(exc: BaseException, console: Console) -> int:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        msg = f"[bold red]not authorised ({status}):[/] check --token / $HF_TOKEN and access to the repo"
        console.print(msg, soft_wrap=True)
    else:
        console.print(f"[bold red]upload failed:[/] {exc}; run the same command again to resume", soft_wrap=True)
    return 1


def _print_publish(result: Any, args: argparse.Namespace) -> None:
    out = Console()
    verb = "would upload" if result.dry_run else "uploaded"
    t = Table(title=f"audiodata publish {args.output} -> {args.repo_id}" + (" (dry run)" if result.dry_run else ""))
    for col in ("file", "bytes", "status"):
        t.add_column(col, justify="right" if col == "bytes" else "left")
    done = {i.path_in_repo for i in result.uploaded}
    for item in result.planned:
        t.add_row(item.path_in_repo, f"{item.size:,}", verb if item.path_in_repo in done else "already there")
    out.print(t)
    out.print(f"{len(result.uploaded)} {verb}, {len(result.skipped)} already there, {len(result.commits)} commit(s)")
    if result.pr_url:
        out.print(f"pull request: {result.pr_url}")


def cmd_info(args: argparse.Namespace, console: Console) -> int:
    manifest = load_manifest(args.output)
    _check_shards(args.output, manifest)
    s = manifest["summary"]
    if args.json:
        print(json.dumps(s, indent=2))
        return EXIT_OK
    out = Console()
    t = Table(title=f"{args.output} (audiodata {manifest['audiodata_version']})")
    for col in ("config", "task", "split", "records", "shards", "bytes", "audio hours"):
        t.add_column(col, justify="right" if col not in ("config", "task", "split") else "left")
    for name, cfg in s["configs"].items():
        for split, v in cfg["splits"].items():
            shards = [x for x in manifest["shards"] if x["config"] == name and x["split"] == split]
            hours = sum(x["audio_seconds"] for x in shards) / 3600
            task = cfg.get("kind", name)
            t.add_row(name, task, split, str(v["rows"]), str(len(shards)), f"{v['bytes']:,}", f"{hours:.3f}")
    out.print(t)
    labels = s.get("kto_labels") or {}
    if labels:
        out.print(f"KTO labels: {labels.get('desirable', 0)} desirable, {labels.get('undesirable', 0)} undesirable")
    out.print(
        f"sample rate {s['sample_rate']} Hz ({s['codec']}), {s['clips']} clips, {s['audio_seconds'] / 3600:.3f} h; "
        f"read {s['records_read']}, written {s['written']}, rejected {s['rejected']}"
    )
    if s["source_sampling_rates"]:
        out.print(
            "source sample rates: "
            + ", ".join(f"{k} Hz x{v}" for k, v in sorted(s["source_sampling_rates"].items(), key=lambda kv: int(kv[0])))
        )
    if s["rejects_by_code"]:
        out.print("rejects by reason: " + ", ".join(f"{k} x{v}" for k, v in s["rejects_by_code"].items()))
    return EXIT_OK


def _check_shards(out: str, manifest: dict[str, Any]) -> None:
    """What info can check without reading the data: every shard present, at its size, with a footer that
    reads and the manifest's row count (a damaged shard is named; ``verify`` reads everything)."""
    for entry in manifest["shards"]:
        pf = open_shard(shard_path(out, entry), entry["file"], out)
        if pf.metadata.num_rows != entry["rows"]:
            raise DatasetError(
                f"shard {entry['file']} holds {pf.metadata.num_rows} rows, manifest.json says {entry['rows']}; {verify_hint(out)}"
            )


def cmd_rules(args: argparse.Namespace) -> int:
    if args.markdown:
        from audiodata.rules.docs import rules_markdown

        print(rules_markdown())
        return EXIT_OK
    rows = [
        {
            "code": r.code,
            "name": r.name,
            "severity": r.severity.value,
            "family": FAMILIES[r.code[0]],
            "stage": r.stage,
            "fixable": r.fixable,
            "summary": r.summary,
        }
        for r in sorted(REGISTRY.values(), key=lambda r: r.code)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    t = Table(title="audiodata rules")
    for col in ("code", "name", "severity", "summary"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["code"], r["name"], r["severity"], r["summary"])
    Console().print(t)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
