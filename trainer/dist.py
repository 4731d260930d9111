"""The process group as the trainer sees it: which rank this is, how many there are, sums across them.

``torchrun`` and ``accelerate launch`` (and DeepSpeed's launcher) export ``RANK`` and ``WORLD_SIZE``
before Python starts, so the batch plan can be sized before transformers initialises the process
group; once it is initialised, torch.distributed is the authority. Every collective here is a no-op
in a single process, so single-process runs take exactly the code path they always took.
"""

from __future__ import annotations

import os
from typing import Any


def _group() -> Any:
    import torch.distributed as td

    return td if td.is_available() and td.is_initialized() else None


def world() -> tuple[int, int]:
    """(rank, world size): data-parallel processes, 1 outside a launcher."""
    td = _group()
    if td is not None:
        return td.get_rank(), td.get_world_size()
    return int(os.environ.get("RANK", "0")), max(1, int(os.environ.get("WORLD_SIZE", "1")))


def is_main() -> bool:
    """True on the process that writes run-level files (report, plot, processor)."""
    return world()[0] == 0


def barrier() -> None:
    td = _group()
    if td is not None and td.get_world_size() > 1:
        td.barrier()


def all_reduce_sum(values: list[float], device: Any = "cpu") -> list[float]:
    """Element-wise sums over all ranks (float64, so token counts stay exact); ``values`` unchanged alone.

    ``device`` must be where the backend reduces: CUDA for NCCL, CPU for gloo.
    """
    td = _group()
    if td is None or td.get_world_size() == 1:
        return list(values)
    import torch

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.SUM)
    return t.cpu().tolist()
