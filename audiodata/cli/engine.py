"""``--engine`` and ``--ray-address`` for ``lint`` and ``dedup``: the same run on this machine's pool or a Ray cluster.

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
