"""``--engine`` and ``--ray-address`` for ``lint`` and ``dedup``: the same run on this machine's pool or a Ray cluster;
``--num-shards``/``--shard-index``/``--parts``: the same run as ranks of a job array, merged
(:mod:`audiodata.pipeline.rankparts`).

:func:`cluster` connects (``--ray-address``, else ``$RAY_ADDRESS``, else a local cluster started for this run), says
Ray's dashboard link on stderr when there is one, and stops a cluster it started when the command ends; a cluster
this process was already connected to stays up. The pipeline functions then run on the connected cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from audiodata.pipeline.options import ConvertOptions


def add_engine_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help=f"local: this machine's process pool (default); ray: {what} on a Ray cluster, the same report "
        "(needs `pip install audiodata[ray]` and the inputs and media at the same paths on every node)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster for --engine ray (default $RAY_ADDRESS, else a local cluster started for this run)",
    )


@contextlib.contextmanager
def cluster(args: argparse.Namespace, err: Console) -> Iterator[None]:
    """The cluster of ``--engine ray`` for the command's duration (nothing for ``--engine local``)."""
    from audiodata.pipeline.options import OptionsError

    if args.engine != "ray":
        if args.ray_address:
            raise OptionsError("--ray-address is for --engine ray")
        yield
        return
    from audiodata.pipeline.rayengine import shutdown, start

    ray = sys.modules.get("ray")
    connected = ray is not None and ray.is_initialized()
    _, dashboard = start(args.ray_address)
    try:
        if dashboard and not getattr(args, "json", False):
            err.print(f"Ray dashboard: {dashboard}", soft_wrap=True, markup=False)
        yield
    finally:
        if not connected:
            shutdown()


def add_rank_options(p: argparse.ArgumentParser, command: str) -> None:
    """Ranks without an engine (a Slurm or Kubernetes job array): each rank saves its share, the merge reports."""
    p.add_argument(
        "--num-shards",
        type=int,
        default=1,
        metavar="N",
        help=f"{command} as one of N ranks (a job array): this run does share --shard-index of the work and saves it "
        f"under --parts; then `audiodata {command} ... --parts DIR` without --num-shards merges them into the report",
    )
    p.add_argument(
        "--shard-index",
        type=int,
        metavar="I",
        help="which rank this run is, 0..N-1 (default: $SLURM_ARRAY_TASK_ID, or $JOB_COMPLETION_INDEX)",
    )
    p.add_argument(
        "--parts",
        metavar="DIR",
        help="with --num-shards: where this rank saves what it found; without: merge every rank's parts from DIR "
        "into the report (the local run's report; the same inputs and options as the ranks)",
    )


def with_ranks(args: argparse.Namespace, opts: ConvertOptions) -> ConvertOptions:
    """``opts`` with the rank of ``--num-shards``/``--shard-index`` (the job array's index by default)."""
    import dataclasses

    from audiodata.cli.commands.convert import shard_index
    from audiodata.pipeline.options import OptionsError

    if args.num_shards > 1 and not args.parts:
        raise OptionsError("--num-shards needs --parts DIR: where this rank saves what it found for the merge")
    if args.parts and args.engine != "local":
        raise OptionsError("--parts runs ranks without an engine (a job array): leave out --engine ray")
    if args.shard_index is not None and args.num_shards <= 1:
        raise OptionsError("--shard-index needs --num-shards N")
    index = shard_index(args.num_shards, args.shard_index)
    if not 0 <= index < max(1, args.num_shards):
        raise OptionsError(f"--shard-index {index} is not in 0..{args.num_shards - 1}")
    return dataclasses.replace(opts, num_shards=args.num_shards, shard_index=index)


def said_rank(part: str, opts: ConvertOptions, args: argparse.Namespace, err: Console) -> int:
    """A rank's one line: what it saved, and how the report is made (exit 0: the findings are the merge's)."""
    err.print(
        f"rank {opts.shard_index} of {opts.num_shards}: saved {part}; when every rank is done, run the same command "
        f"with --parts {args.parts} and without --num-shards for the report",
        soft_wrap=True,
        markup=False,
    )
    return 0
