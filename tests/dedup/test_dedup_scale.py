"""CI-sized run of benchmarks/dedup_scale_bench.py: the near-duplicate index's time, candidates and
comparisons per clip stay flat over 10x the clips, and its memory per clip stays about a fingerprint's.
Ratios only (against the run's own smallest count), never absolute times: the machine is shared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_clip_index_is_flat_over_ten_times_the_clips(tmp_path: Path):
    out = tmp_path / "figures.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "dedup_scale_bench.py"), "--clips", "5000,50000", "--sample-data"]
    cmd += ["--pool", "400", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    small, large = results["5000"], results["50000"]
    assert large["resolve_us_per_clip_over_base"] < 2.0, run.stdout  # the old index: x1.6 over 10x, and growing
    assert large["comparisons_per_clip_over_base"] < 1.5, run.stdout
    for r in (small, large):
        assert r["false_merges"] == 0 and r["recall_exact"] == 1.0 and r["recall_near"] > 0.9, run.stdout
    # ~1 KB of frames, sketch and bucket links per added 1-5 s clip, over the buckets' heads (32 tables of 2**19
    # buckets, 4 + 2 bytes each: 96 MiB of address space, backed as clips land in them)
    grown = (large["index_nbytes"] - small["index_nbytes"]) / (large["clips"] - small["clips"])
    assert grown < 1500 and large["index_nbytes"] < 400 << 20, run.stdout
