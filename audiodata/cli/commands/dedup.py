"""``audiodata dedup``: exact and near-duplicate records across inputs, and leakage into a converted dataset
(:mod:`audiodata.pipeline.dedup`)."""

from __future__ import annotations

import argparse
from typing import Any

from audiodata.cli.common import stderr_console, write_json_report
from audiodata.cli.engine import add_engine_options, add_rank_options, cluster, said_rank, with_ranks
from audiodata.cli.flags import renamed
from audiodata.cli.progress import Bar
from audiodata.cli.reading import add_reading_options, reading_options

NAME = "dedup"
HELP = "find exact and near-duplicate records across inputs, and leakage into a converted dataset"


def register(subparsers: Any) -> None:
    from audiodata.dedup.index import NEAR_THRESHOLD
    from audiodata.faults import FAULT_EXIT

    d = subparsers.add_parser(
        NAME,
        help=HELP,
        epilog="exit codes: 0 nothing found, 1 duplicates, conflicts or leaks found, 2 usage error (or a damaged --against "
        "dataset)" + FAULT_EXIT,
    )
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    add_reading_options(d)
    d.add_argument(
        "--dedup", dest="mode", choices=["exact", "near"], default="near", help="exact PCM only, or acoustic near copies too"
    )
    d.add_argument(
        "--dedup-threshold",
        dest="threshold",
        type=float,
        default=NEAR_THRESHOLD,
        help=f"near-duplicate similarity (default {NEAR_THRESHOLD})",
    )
    renamed(d, "--dedup", "--mode")  # convert's names for the same two things
    renamed(d, "--dedup-threshold", "--threshold")
    d.add_argument(
        "--against",
        metavar="DATASET",
        help="a converted dataset (e.g. the test split), on disk or in an object store, to check the inputs against",
    )
    d.add_argument("--report-json", metavar="FILE", help="write the clusters as JSON, '-' for stdout")
    d.add_argument("--json", action="store_true", help="print the clusters as JSON on stdout (the tables go to stderr)")
    d.add_argument("--max-examples", type=int, default=10, help="clusters shown in the terminal (default 10)")
    add_engine_options(d, "fingerprints as tasks, a shuffle by LSH key, candidates verified as a stage")
    add_rank_options(d, NAME)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from audiodata.pipeline.dedup import dedup

    opts = with_ranks(args, reading_options(args))
    err = stderr_console()
    with cluster(args, err), Bar("dedup", "rec", err, disable=args.no_progress, extra=("{task.fields[stage]}",), stage="") as bar:

        def on_progress(done: int, total: int, records: int) -> None:
            bar.update(total=total or None, completed=done, count=records)

        def on_stage(name: str) -> None:
            bar.update(stage=name)

        report = dedup(
            args.inputs,
            options=opts,
            mode=args.mode,
            against=args.against,
            threshold=args.threshold,
            on_progress=on_progress,
            engine=args.engine,
            on_stage=on_stage,
            parts=args.parts,
        )
        bar.finish()
    if report.part is not None:
        return said_rank(report.part, opts, args, err)
    data = report.to_dict()
    to_stdout = args.json or args.report_json == "-"
    write_json_report(data, "-" if args.json else None)
    write_json_report(data, None if args.json and args.report_json == "-" else args.report_json)
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
