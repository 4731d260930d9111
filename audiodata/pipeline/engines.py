"""How a stage of ``lint`` or ``dedup`` fans its jobs out: this machine's pool (:func:`ordered_map`), a Ray cluster
(:mod:`audiodata.pipeline.raymap`), or ranks of a job array saving and merging their parts
(:mod:`audiodata.pipeline.rankparts`). Every one takes the same jobs and gives their results in the same order, so
the driver's merge, and the report, is the same whichever runs them."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.pipeline.window import ordered_map
from audiodata.readers.sources import InputFile

#: How a stage fans its jobs out: :func:`ordered_map` (this machine's pool) or its Ray twin.
Mapper = Callable[..., Iterator[tuple[Any, Any]]]


def engine_map(engine: str) -> Mapper:
    """The fan-out of ``engine``: the local pool, or the connected Ray cluster (a local one started when none
    is: :func:`audiodata.pipeline.rayengine.start`). An unknown engine is a usage error."""
    if engine == "local":
        return ordered_map
    from audiodata.pipeline.rayengine import ENGINES, start

    if engine != "ray":
        raise OptionsError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    from audiodata.pipeline.raymap import ray_ordered_map

    ray, _ = start(None)
    return functools.partial(ray_ordered_map, ray=ray)


def stage_mapper(
    command: str,
    engine: str,
    parts: str | os.PathLike[str] | None,
    opts: ConvertOptions,
    files: list[InputFile],
    extra: dict[str, Any],
) -> tuple[Mapper, Any]:
    """How ``command``'s jobs run: the local pool or Ray (:func:`engine_map`), or ranks: with ``parts``, this rank's
    share saved there (``--num-shards N --shard-index I``) or every rank's merged (:mod:`audiodata.pipeline.rankparts`).
    Returns the mapper and the :class:`~audiodata.pipeline.rankparts.RankParts` (None without ``parts``)."""
    if parts is None:
        if opts.num_shards > 1:
            raise OptionsError(f"--num-shards for {command} needs --parts DIR: where each rank saves what it found")
        return engine_map(engine), None
    if engine != "local":
        raise OptionsError("--parts runs ranks without an engine (a job array): leave out --engine ray")
    from audiodata.pipeline.rankparts import RankParts, rank_map, run_fingerprint

    ranked = opts.num_shards > 1
    run = run_fingerprint(command, opts, files, extra)
    rp = RankParts(Path(parts), command, run, opts.num_shards if ranked else None, opts.shard_index if ranked else None)
    return rank_map(rp), rp


__all__ = ["Mapper", "engine_map", "stage_mapper"]
