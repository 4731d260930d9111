"""CI-sized smoke of benchmarks/convert_bench.py: convert's overhead over the bare decode-resample-encode
floor must not grow back (issue 15). Ratios only, never absolute times: the floor runs in the same
invocation, and the ratio compared is by CPU seconds, which other processes on a shared machine move
far less than wall time (a figure of 0.77 measured at 400 clips with half the CPUs taken by others)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: audiodata's CPU vs the floor's at 400 clips and 2 workers, below which the smoke fails: measured
#: 0.77 (loaded machine) after the issue 15 work; the margin absorbs noise, not a real regression.
MIN_CPU_RATIO = 0.6
CLIPS = 400


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("ffmpeg")), reason="the corpus needs espeak-ng and ffmpeg")
def test_convert_stays_near_the_floor(tmp_path):
    out = tmp_path / "figures.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "convert_bench.py"), "--clips", str(CLIPS), "--num-workers", "2"]
    cmd += ["--skip-datasets", "--corpus", str(tmp_path / "corpus"), "--json-out", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    rows = {r["method"]: r for r in figures["results"]}
    ad = rows["audiodata"]
    assert (ad["clips"], ad["records_written"], ad["records_rejected"]) == (CLIPS, CLIPS, 0), run.stdout
    assert rows["floor"]["clips"] == CLIPS
    assert abs(ad["audio_seconds"] - figures["audio_seconds"]) < 0.005 * figures["audio_seconds"], run.stdout
    assert figures["audiodata_over_floor_cpu"] >= MIN_CPU_RATIO, run.stdout
    # the floor plus only what the format requires (PCM hash, levels, Parquet with CDC and sha256): the same clips, more
    # work than the floor (measured 0.72-0.93 of it by CPU under load), and audiodata not far above it (0.87-0.99)
    assert rows["floor+format"]["clips"] == CLIPS, run.stdout
    assert figures["format_over_floor_cpu"] <= 1.1 and figures["audiodata_over_format_cpu"] >= MIN_CPU_RATIO, run.stdout
