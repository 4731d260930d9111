"""The local 2-CPU Ray cluster the Ray tests share (``--engine ray``, ``ray-data``, lint and dedup on Ray): one
definition, imported as a module fixture by each test module that starts one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    pytest.importorskip("ray")
    from audiodata.pipeline.rayengine import shutdown, start

    ray, _ = start(None, num_cpus=2)
    try:
        yield ray
    finally:
        shutdown()
