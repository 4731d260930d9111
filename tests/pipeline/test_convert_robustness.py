"""Determinism, byte caps, resume after a crash or a kill, splits, usage errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.pipeline.options import OptionsError
from audiodata.readers.sources import InputError
from tests.conftest import REPO, SAMPLE, tree_bytes, write_audio, write_jsonl

SMALL = 64 * 1024  # the smallest shard cap: the sample corpus then spans dozens of shards


def test_output_is_identical_whatever_the_worker_count(tmp_path):
    a = audiodata.convert([str(SAMPLE)], tmp_path / "w1", num_workers=1, max_shard_size=SMALL)
    b = audiodata.convert([str(SAMPLE)], tmp_path / "w2", num_workers=2, max_shard_size=SMALL, batch_size=3)
    assert len(a.shards) > 5
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")
    assert b.records_written == a.records_written


def test_shards_are_capped_by_actual_bytes(tmp_path):
    cap = 300_000
    r = audiodata.convert([str(SAMPLE)], tmp_path / "o", num_workers=1, max_shard_size=cap, row_group_rows=4)
    sft = sorted((tmp_path / "o/data/sft").glob("*.parquet"))
    n = len(sft)
    assert n > 3
    assert [p.name for p in sft] == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    for p in sft:
        meta = pq.ParquetFile(p).metadata
        assert p.stat().st_size <= cap
        assert meta.num_rows > 1 and meta.num_row_groups == -(-meta.num_rows // 4)  # row groups sized for streaming
        assert p.stat().st_size > cap // 2  # and filled, not split early
    assert (
        sum(pq.ParquetFile(p).metadata.num_rows for p in sft)
        + sum(pq.ParquetFile(p).metadata.num_rows for p in (tmp_path / "o/data/dpo").glob("*.parquet"))
        == r.records_written
    )


class Boom(RuntimeError):
    pass


def test_resume_after_a_crash_gives_the_uninterrupted_output(tmp_path):
    ref = tmp_path / "ref"
    audiodata.convert([str(SAMPLE)], ref, num_workers=1, max_shard_size=SMALL)
    out = tmp_path / "out"

    def crash(p: audiodata.pipeline.convert.Progress) -> None:
        if p.records >= 45:
            raise Boom

    with pytest.raises(Boom):
        audiodata.convert([str(SAMPLE)], out, num_workers=2, max_shard_size=SMALL, on_progress=crash)
    state = json.loads((out / ".audiodata/state.json").read_text())
    assert state["status"] == "running" and state["shards"], "some shards were finished before the crash"
    assert not list(out.rglob("*.tmp")), "no half-written shard is left behind"
    assert not (out / "data").exists() or not list((out / "data").rglob("*.parquet"))
    resumed = audiodata.convert([str(SAMPLE)], out, num_workers=1, max_shard_size=SMALL)
    assert resumed.resumed_from > 0
    assert tree_bytes(out) == tree_bytes(ref)


def test_resume_after_kill_9(tmp_path):
    corpus = tmp_path / "corpus"
    records = []
    for i in range(60):
        write_audio(corpus / f"a{i}.wav", seconds=2.0, rate=44100, freq=200 + 10 * i)
        records.append({"audio": f"a{i}.wav", "text": f"clip {i}"})
    write_jsonl(corpus / "data.jsonl", records)
    ref, out = tmp_path / "ref", tmp_path / "out"
    audiodata.convert([str(corpus)], ref, num_workers=1, max_shard_size=SMALL)
    cmd = [
        sys.executable,
        "-m",
        "audiodata",
        "convert",
        str(corpus),
        "-o",
        str(out),
        "--max-shard-size",
        str(SMALL),
        "--num-workers",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".audiodata/state.json"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and len(json.loads(state.read_text() or "{}").get("shards", [])) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert killed, "the run finished before it could be killed; make the corpus larger"
    assert "resumed" in done.stdout + done.stderr
    assert tree_bytes(out) == tree_bytes(ref)


def test_rerun_of_a_complete_output_does_nothing_and_other_options_are_refused(tmp_path):
    out = tmp_path / "o"
    audiodata.convert([str(SAMPLE)], out, num_workers=1)
    again = audiodata.convert([str(SAMPLE)], out, num_workers=2)
    assert again.already_complete
    with pytest.raises(OptionsError, match="--overwrite"):
        audiodata.convert([str(SAMPLE)], out, sample_rate=22050)
    other = audiodata.convert([str(SAMPLE)], out, sample_rate=22050, overwrite=True, num_workers=1)
    row = pq.read_table(out / "data/sft/train-00000-of-00001.parquet").to_pylist()[0]
    assert row["audio_info"][0]["sampling_rate"] == 22050 and other.records_written > 0


def test_foreign_output_folder_is_refused(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "precious.txt").write_text("keep me")
    with pytest.raises(OptionsError):
        audiodata.convert([str(SAMPLE)], tmp_path / "o")
    assert (tmp_path / "o" / "precious.txt").exists()


def test_missing_input_is_a_usage_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        audiodata.convert([str(tmp_path / "nope.jsonl")], tmp_path / "o")


def test_val_split_is_keyed_on_audio_content(tmp_path):
    corpus = tmp_path / "c"
    records = []
    for i in range(40):
        write_audio(corpus / f"u{i}.wav", seconds=0.5, freq=300 + 7 * i)
        # every clip appears three times, with different transcripts and reference forms
        records += [{"audio": f"u{i}.wav", "text": f"take {k} of {i}"} for k in range(3)]
    write_jsonl(corpus / "c.jsonl", records)
    r = audiodata.convert([str(corpus)], tmp_path / "o", val_ratio=0.3, seed=7, num_workers=1)
    assert r.records_written == 120
    split_of: dict[str, set[str]] = {}
    for p in (tmp_path / "o/data").glob("*.parquet"):
        split = p.name.split("-")[0]
        for row in pq.read_table(p).to_pylist():
            split_of.setdefault(row["audio_info"][0]["pcm_hash"], set()).add(split)
    assert all(len(s) == 1 for s in split_of.values()), "one audio, one split"
    val = sum(1 for s in split_of.values() if s == {"validation"})
    assert 4 <= val <= 20  # about 30% of 40 distinct clips
    meta = (tmp_path / "o/README.md").read_text()
    assert "path: data/validation-*" in meta and "path: data/train-*" in meta


def test_text_only_and_unknown_files_in_a_folder(tmp_path):
    corpus = tmp_path / "c"
    write_audio(corpus / "a.flac", seconds=1.0, rate=48000, format="FLAC")
    write_jsonl(
        corpus / "a.jsonl",
        [
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"audio": "a.flac", "text": "x"},
        ],
    )
    (corpus / "notes.txt").write_text("not an input")
    r = audiodata.convert([str(corpus)], tmp_path / "o", num_workers=1)
    assert (r.records_read, r.records_written, r.exit_code) == (2, 2, 0)
