"""``audiodata merge``: the ranks of one conversion into one dataset (:mod:`audiodata.pipeline.merge`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from audiodata.cli.common import stderr_console, stdout_console
from audiodata.cli.progress import Bar

NAME = "merge"
HELP = "assemble the ranks of convert --num-shards into one dataset"


def register(subparsers: Any) -> None:
    from audiodata.faults import FAULT_EXIT

    m = subparsers.add_parser(
        NAME,
        help=HELP,
        description="Assemble the outputs of `convert --num-shards N --shard-index I` (one per rank) into one Hub-ready "
        "dataset: shards in the Hub layout, one rejects.jsonl, the card and the manifest, with --dedup applied across "
        "ranks (keep-first in the input order). The result is the dataset one local convert writes.",
        epilog="exit codes: 0 all records written, 1 some rejected (see OUT/rejects.jsonl), 2 ranks missing, unfinished "
        "or of different conversions (each one listed), or OUT holds another dataset" + FAULT_EXIT + "; merging again "
        "is safe (a complete merge of the same ranks is not redone)",
    )
    m.add_argument(
        "parts",
        nargs="+",
        metavar="PART",
        help="an OUT folder the ranks wrote into (holding ranks/), or rank folders (rank-IIIII-of-NNNNN)",
    )
    m.add_argument("-o", "--output", metavar="OUT", help="output folder (default: the one PART given)")
    m.add_argument("--overwrite", action="store_true", help="replace a dataset OUT holds that is not this merge's")
    m.add_argument(
        "--dedup-memory",
        default="64MiB",
        help="memory for the duplicate index of --dedup across ranks; past it the index spills to OUT (default 64MiB)",
    )
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.add_argument("--json", action="store_true", help="print the summary as JSON")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from audiodata.cli.commands.convert import print_summary
    from audiodata.pipeline.merge import merge
    from audiodata.pipeline.options import parse_size

    show = not args.no_progress and not args.json
    with Bar("merging", "rank", stderr_console(), disable=not show) as bar:

        def on_progress(done: int, total: int) -> None:
            bar.update(total=total, completed=done, count=done)

        memory = parse_size(args.dedup_memory)
        result = merge(args.parts, args.output, dedup_memory=memory, overwrite=args.overwrite, on_progress=on_progress)
        bar.finish()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result, stdout_console(), NAME)
    return result.exit_code
