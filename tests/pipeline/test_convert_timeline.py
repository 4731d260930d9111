"""benchmarks/convert_timeline.py, CI-sized: the timeline of one convert adds up (every record written, every job
stamped by a worker, the stages in order, the idle core-time what wall, workers and CPU say)."""

from __future__ import annotations

from pathlib import Path

from tests.bench_run import run_bench
from tests.conftest import write_audio, write_jsonl


def test_the_timeline_of_a_small_convert_adds_up(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for k in range(12):
        write_audio(corpus / "clips" / f"{k}.wav", seconds=0.5 + k / 10, rate=22050, freq=200 + 30 * k)
    write_jsonl(corpus / "corpus.jsonl", [{"audio": f"clips/{k}.wav", "text": f"clip {k}"} for k in range(12)])
    doc = run_bench("convert_timeline.py", ["--corpus", str(corpus), "--num-workers", "2", "--batch-size", "2"], tmp_path)
    assert doc["records_written"] == 12
    stamps = doc["stamps_s"]
    assert 0 <= stamps["run_start"] <= stamps["first_job_read"] <= doc["first_clip_s"] <= doc["last_clip_s"] <= doc["wall_s"]
    assert stamps["last_result"] <= stamps["finalize_start"] <= doc["wall_s"]
    assert sum(doc["jobs"].values()) >= 6 and len(doc["jobs"]) <= 2  # 1 record a job until rows are measured, then 2
    cpu = doc["parent_cpu_s"] + doc["workers_cpu_s"]
    assert abs(doc["idle_core_s"] - (2 * doc["wall_s"] - cpu)) < 0.01
    assert [c["close_s"] >= c["fsync_s"] >= 0 for c in doc["shard_closes"]] == [True]  # one shard, closed once
    assert 0 <= doc["worker_send_cpu_s"] <= doc["worker_send_s"] + 0.01
    assert abs(doc["headlines"][0]["ratio"] - cpu / (2 * doc["wall_s"])) < 1e-3
