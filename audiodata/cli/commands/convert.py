"""``audiodata convert``: raw JSON/JSONL corpora into Hub-ready Parquet shards (:mod:`audiodata.pipeline.convert`)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from audiodata.cli.common import stderr_console, stdout_console
from audiodata.cli.progress import Bar
from audiodata.cli.reading import add_exclude_option, add_reading_options, reading_options

if TYPE_CHECKING:
    from rich.console import Console

    from audiodata.pipeline.convert import ConvertResult

NAME = "convert"
HELP = "convert raw JSON/JSONL corpora into Hub-ready Parquet shards"


def register(subparsers: Any) -> None:
    from audiodata.dedup.index import NEAR_THRESHOLD
    from audiodata.faults import FAULT_EXIT

    c = subparsers.add_parser(
        NAME,
        help=HELP,
        description="Convert raw JSON/JSONL corpora (files, folders, globs, a LLaMA-Factory dataset_info.json) "
        "into Parquet shards with the audio embedded, resampled once.",
        epilog="exit codes: 0 all records written, 1 some rejected (see OUT/rejects.jsonl), 2 usage error (or OUT held "
        "by another run)" + FAULT_EXIT + "; the same command resumes",
    )
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON/JSONL(.gz) files, folders, globs or dataset_info.json")
    c.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output folder, or a folder in an object store (s3://bucket/out, gs://..., hf://datasets/owner/name/...)",
    )
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
    c.add_argument(
        "--num-shards",
        type=int,
        default=1,
        metavar="N",
        help="convert as one of N ranks (a Slurm/Kubernetes job array): this run takes slice --shard-index of the inputs "
        "(by file and byte range) into OUT/ranks/rank-IIIII-of-NNNNN; `audiodata merge OUT` then assembles the dataset",
    )
    c.add_argument(
        "--shard-index",
        type=int,
        metavar="I",
        help="which rank this run is, 0..N-1 (default: $SLURM_ARRAY_TASK_ID in a Slurm job array, $JOB_COMPLETION_INDEX "
        "in a Kubernetes indexed job)",
    )
    c.add_argument(
        "--engine",
        choices=["local", "ray", "ray-data"],
        default="local",
        help="local: this machine's process pool (default); ray: ranks as Ray tasks on a cluster, merged on this "
        "machine, the same output (needs `pip install audiodata[ray]`, and inputs and -o on a filesystem every node sees "
        "or in an object store such as s3://; "
        "--num-shards sets the ranks, default the cluster's CPUs); ray-data: the same answer as a streaming Ray Data "
        "pipeline (pieces read as tasks, map_batches, our writer as a datasink in the workers; -o on a shared "
        "filesystem; --num-shards sets the pieces, default 4 per cluster CPU; README: why ray is the default)",
    )
    c.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster for --engine ray (default $RAY_ADDRESS, else a local cluster started for this run)",
    )
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.set_defaults(func=run, resume_command=resume)


def resume(args: argparse.Namespace, typed: list[str]) -> tuple[list[str], str]:
    """The command that picks up an interrupted conversion, and what to say about it (see ``resume_command``)."""
    from audiodata.pipeline.convert import resume_command

    again = resume_command(typed, args.output)
    aside = args.overwrite and again == typed
    what = "the same command again" if again == typed else "it without --overwrite (with it, it would start over)"
    return again, "finished shards are kept" + (" and the old dataset is untouched" if aside else "") + f"; to resume, run {what}"


#: Where a job array tells each task its index: Slurm, Kubernetes indexed jobs.
ARRAY_INDEX = ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX")


def shard_index(num_shards: int, given: int | None) -> int:
    """``--shard-index``, else the job array's task index (a usage error when there is none, or when the Slurm
    array's task ids reach past ``--num-shards``). One task resubmitted alone (``--array=7``) is rank 7 still."""
    import os

    from audiodata.pipeline.options import OptionsError

    if given is not None or num_shards <= 1:
        return given or 0
    for name in ARRAY_INDEX:
        value = os.environ.get(name)
        if value is None:
            continue
        top = os.environ.get("SLURM_ARRAY_TASK_MAX") if name.startswith("SLURM") else None
        if top is not None and top.isdigit() and int(top) >= num_shards:
            raise OptionsError(
                f"--num-shards {num_shards}, but this Slurm array's task ids reach {top}: "
                f"give --array=0-{num_shards - 1} (or resubmit single ranks) with --num-shards {num_shards}"
            )
        if not value.isdigit():
            raise OptionsError(f"${name} is {value!r}, not a task index: give --shard-index")
        return int(value)
    raise OptionsError(f"--num-shards {num_shards} needs --shard-index I (or a job array's ${' / $'.join(ARRAY_INDEX)})")


def run(args: argparse.Namespace) -> int:
    from audiodata.pipeline.convert import Progress as RunProgress
    from audiodata.pipeline.convert import convert
    from audiodata.pipeline.options import OptionsError, parse_size

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
        num_shards=args.num_shards,
        shard_index=0 if args.engine in ("ray", "ray-data") else shard_index(args.num_shards, args.shard_index),
    )
    if args.engine in ("ray", "ray-data"):
        return run_on_ray(args, opts)
    if args.ray_address:
        raise OptionsError("--ray-address is for --engine ray or ray-data")
    show = not args.no_progress and not args.json
    extra = ("{task.fields[hours]} h audio", "{task.fields[rejected]} rejected")
    with Bar("converting", "rec", stderr_console(), disable=not show, extra=extra, hours="0.00", rejected=0) as bar:

        def on_progress(p: RunProgress) -> None:
            if p.records % 8 and p.bytes_done < p.bytes_total:
                return
            bar.update(
                total=p.bytes_total or None,
                completed=p.bytes_done,
                count=p.records,
                hours=f"{p.audio_seconds / 3600:.2f}",
                rejected=p.rejected,
            )

        result = convert(args.inputs, args.output, options=opts, on_progress=on_progress)
        bar.finish()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result, stdout_console())
    return result.exit_code


def run_on_ray(args: argparse.Namespace, opts: Any) -> int:
    """``--engine ray``: ranks as Ray tasks, merged here (:mod:`audiodata.pipeline.rayengine`); ``--engine ray-data``:
    the streaming Ray Data pipeline (:mod:`audiodata.pipeline.raystream`), its pieces merged here. The dashboard
    link, then a bar of ranks (pieces) done."""
    import sys

    from audiodata import objstore
    from audiodata.pipeline.options import OptionsError
    from audiodata.pipeline.rayengine import convert_on_ray, shutdown

    engine = convert_on_ray
    if args.engine == "ray-data":
        if objstore.is_remote(str(args.output)):
            raise OptionsError("--engine ray-data writes -o on a shared filesystem; for an object store use --engine ray")
        from audiodata.pipeline.raystream import stream_on_ray as engine

    ray = sys.modules.get("ray")
    connected = ray is not None and ray.is_initialized()  # a cluster this process already uses stays up after the run
    if args.shard_index is not None:
        raise OptionsError(f"--engine {args.engine} runs every rank itself: give --num-shards N without --shard-index")
    show = not args.no_progress and not args.json
    err = stderr_console()
    with Bar("ranks", "rank", err, disable=not show) as bar:

        def on_start(dashboard: str | None, count: int) -> None:
            if dashboard and not args.json:
                err.print(f"Ray dashboard: {dashboard}")
            bar.update(total=count, completed=0, count=0)

        def on_rank(done: int, count: int) -> None:
            bar.update(total=count, completed=done, count=done)

        try:
            result = engine(args.inputs, args.output, options=opts, address=args.ray_address, on_start=on_start, on_rank=on_rank)
        finally:
            if not connected:
                shutdown()
        bar.finish()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result, stdout_console())
    return result.exit_code


def print_summary(r: ConvertResult, console: Console, command: str = "convert") -> None:
    from rich.table import Table

    from audiodata.rules.registry import REGISTRY

    if r.already_complete:
        console.print(f"[green]{r.output} is already complete for these inputs and options[/]")
    elif r.resumed_from:
        console.print(f"[cyan]resumed at input record {r.resumed_from}[/]")
    t = Table(title=f"audiodata {command} -> {r.output}", show_header=False)
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
    if r.records_equal_pairs:
        t.add_row("equal pairs skipped (P004)", str(r.records_equal_pairs))
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
        console.print(f"rejected records and their reasons: {r.output}/rejects.jsonl")
