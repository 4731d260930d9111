"""The README's scaling model (issue 16) is generated from the committed benchmark results by
benchmarks/scaling_model.py, never typed by hand; its convert part scales with the nodes, its merge part does not."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType

from tests.bench_run import load_script

REPO = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    return load_script("scaling_model")


def test_the_readme_model_is_what_the_committed_results_give() -> None:
    sm = _script()
    assert sm.main(["--check"]) == 0, "run python benchmarks/scaling_model.py"


def test_convert_scales_with_nodes_and_merge_does_not() -> None:
    sm = _script()
    c = sm.costs(sm.load(sm.RESULTS_DIR))
    engine = next(iter(c["engine_overhead"]))
    ten, hundred = (sm.predict(c, sm.HOURS, n, sm.CORES_PER_NODE, engine) for n in (10, 100))
    assert abs(ten["parallel_h"] / hundred["parallel_h"] - 10) < 1e-9
    assert ten["merge_h"] == hundred["merge_h"] > 0 and ten["keys_h"] == hundred["keys_h"] > 0
    assert ten["clips"] == sm.HOURS * 3600 / c["audio_s_per_clip"]


def test_the_model_follows_the_measured_costs() -> None:
    """Twice the measured CPU per clip: twice the predicted convert hours (the figures are read, not typed)."""
    sm = _script()
    docs = sm.load(sm.RESULTS_DIR)
    slower = copy.deepcopy(docs)
    slower["ray"]["local"]["cpu_s"] *= 2
    engine = next(iter(sm.costs(docs)["engine_overhead"]))
    a = sm.predict(sm.costs(docs), sm.HOURS, 10, sm.CORES_PER_NODE, engine)
    b = sm.predict(sm.costs(slower), sm.HOURS, 10, sm.CORES_PER_NODE, engine)
    assert abs(b["parallel_h"] / a["parallel_h"] - 2) < 1e-9
    assert sm.render(sm.costs(docs)) != sm.render(sm.costs(slower))
