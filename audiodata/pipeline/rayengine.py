"""``convert --engine ray``: one conversion spread over a Ray cluster (``pip install audiodata[ray]``).

Ranks + merge on Ray: the driver picks N ranks (``--num-shards``, else the cluster's
CPUs, else the count of ranks already under ``OUT/ranks`` so that a rerun resumes them), runs every rank of
:func:`audiodata.pipeline.ranks.plan` as one Ray task (the very :func:`audiodata.convert` a Slurm array task
runs, with one worker process inside the task's one CPU), and finishes with
:func:`audiodata.pipeline.merge.merge` on the driver. So the output equals the local pool's by
construction (the ranks + merge equality, ``tests/pipeline/test_ranks.py``), and it resumes the same way: a
task killed mid-rank is retried by Ray and picks its rank up from its finished shards; a driver killed
mid-run is simply rerun (finished ranks are not redone, merge is idempotent).

What it needs: every node sees the inputs, the media and ``OUT`` at the same paths (a shared filesystem, or
an object store through :mod:`audiodata.objstore`), and has this audiodata installed. A local cluster started
here gets this checkout on its workers' ``PYTHONPATH``.

The streaming Ray Data engine (:mod:`audiodata.pipeline.raystream`: pieces read as tasks, ``process_batch`` as
``map_batches`` fused with our shard writer as a datasink in the workers) gives the same answer but cost 1.25x the
pool's CPU at 10k clips against this engine's 1.00x (quiet machine) (``benchmarks/ray_bench.py``, README "On a Ray cluster"), so
``--engine ray`` is this one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import audiodata
from audiodata import objstore
from audiodata.dataset import MANIFEST, Manifest
from audiodata.pipeline import ranks
from audiodata.pipeline.convert import ConvertResult
from audiodata.pipeline.merge import merge
from audiodata.pipeline.options import ConvertOptions, OptionsError

ENGINES = ("local", "ray")
#: Ranks under OUT/ranks: ``rank-IIIII-of-NNNNN``.
_RANK = re.compile(r"rank-(\d{5})-of-(\d{5})$")


class RayMissing(OptionsError):
    """``--engine ray`` without ray installed: a usage error (exit 2) that says what to install."""


def import_ray() -> Any:
    """ray, imported on use only (the local engine never pays for it)."""
    try:
        import ray
    except ImportError as e:
        raise RayMissing(
            f"--engine ray needs Ray Data, which is not installed here ({e}): pip install 'audiodata[ray]' "
            "(or 'ray[data]>=2.40'), or use --engine local"
        ) from None
    return ray


def _existing_count(out: Path | str) -> int | None:
    """The rank count of ranks already under ``OUT/ranks`` (a run to resume), when they agree on one."""
    if isinstance(out, str):  # an object store: the rank folders its objects lie in
        names = {rel.split("/", 1)[0] for rel in objstore.listing(objstore.join(out, ranks.RANKS_DIR))}
    else:
        holder = out / ranks.RANKS_DIR
        names = {p.name for p in holder.iterdir()} if holder.is_dir() else set()
    counts = {int(m.group(2)) for name in names if (m := _RANK.match(name))}
    return counts.pop() if len(counts) == 1 else None


def start(address: str | None, num_cpus: int | None = None) -> tuple[Any, str | None]:
    """Connect to ``address`` (else ``$RAY_ADDRESS``), else start a local cluster (of ``num_cpus``, default all).
    Returns ray and the dashboard URL, when there is one. A cluster already connected in this process is used
    as it is."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, _dashboard(ray, None)
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    if address is None:  # a local cluster: its workers import this checkout of audiodata
        here = str(Path(audiodata.__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        kwargs["num_cpus"] = num_cpus
    context = ray.init(address=address, **kwargs)
    return ray, _dashboard(ray, context)


def _dashboard(ray: Any, context: Any) -> str | None:
    url = getattr(context, "dashboard_url", None) if context is not None else None
    if not url:
        with contextlib.suppress(Exception):
            url = ray.get_dashboard_url()
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


def _convert_rank(inputs: list[str | os.PathLike[str]], output: str, options: ConvertOptions, cwd: str) -> dict[str, Any]:
    """One rank, on a Ray worker: the rank's own resumable conversion. Relative inputs resolve as on the driver."""
    os.chdir(cwd)
    result = audiodata.convert(inputs, output, options=options)
    return {"read": result.records_read, "written": result.records_written, "rejected": result.records_rejected}


def convert_on_ray(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: ConvertOptions,
    address: str | None = None,
    on_start: Callable[[str | None, int], None] | None = None,
    on_rank: Callable[[int, int], None] | None = None,
) -> ConvertResult:
    """Convert ``inputs`` into ``output`` as ranks on a Ray cluster, then merge on the driver: the local pool's
    answer. ``options.num_shards`` > 1 sets the number of ranks; ``on_start(dashboard URL, ranks)``,
    ``on_rank(ranks done, ranks)``. Raises :class:`RayMissing` when ray is not installed."""
    if options.num_shards > 1 and options.shard_index:
        raise OptionsError("--engine ray runs every rank itself: give --num-shards N without --shard-index")
    out: Path | str = str(output).rstrip("/") if objstore.is_remote(str(output)) else Path(output)
    paths: list[str | os.PathLike[str]] = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    ray, dashboard = start(address)
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    count = options.num_shards if options.num_shards > 1 else (_existing_count(out) or cpus)
    if on_start is not None:
        on_start(dashboard, count)
    if count <= 1:  # one rank is the whole conversion: run it as one task straight into OUT
        task = ray.remote(num_cpus=1, max_retries=3)(_convert_rank)
        get(ray, task.remote(paths, str(out), replace(options, num_workers=1, num_shards=1, shard_index=0), os.getcwd()))
        if on_rank is not None:
            on_rank(1, 1)
        if isinstance(out, str):  # written to the store by the task: its manifest read from there
            manifest = Manifest.from_dict(json.loads(objstore.read_bytes(objstore.join(out, MANIFEST))))
            return ConvertResult.from_manifest(out, manifest)
        return ConvertResult.from_manifest(out, Manifest.load(out))
    task = ray.remote(num_cpus=1, max_retries=3)(_convert_rank)
    pending = [
        task.remote(paths, str(out), replace(options, num_workers=1, num_shards=count, shard_index=i), os.getcwd())
        for i in range(count)
    ]
    done = 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        get(ray, ready)  # a rank's failure (after Ray's retries) stops the run here; its finished shards stay
        done += 1
        if on_rank is not None:
            on_rank(done, count)
    return merge(out, dedup_memory=options.dedup_memory, overwrite=options.overwrite)


def get(ray: Any, refs: Any) -> Any:
    """``ray.get``, a rank's own error (a bad input: exit 2; a machine fault: exit 3) raised as itself, so the CLI
    says it in one line as a local run does, not as Ray's wrapper with the worker's traceback."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


def shutdown() -> None:
    """Stop the cluster connection (a local cluster this process started stops with it)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


__all__ = ["ENGINES", "RayMissing", "convert_on_ray", "get", "import_ray", "shutdown", "start"]
