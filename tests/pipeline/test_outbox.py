"""The outbox: clip bytes from pool workers through anonymous memory files, never a named segment.

Rows must come back exactly as :func:`process_batch` makes them, the path must be the one a pool run
takes, and a killed worker or parent must leave nothing behind in ``/dev/shm`` (the files have no name;
the kernel frees them with the last process holding them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiodata
from audiodata.pipeline import outbox
from audiodata.pipeline.process import AudioSettings, process_batch
from audiodata.records import AudioRef, Message, Record, SourceLoc
from tests.conftest import REPO, tree_bytes, write_jsonl

pytestmark = pytest.mark.skipif(not outbox.available(), reason="needs memfd_create and forked workers")

MARK = "memfd:audiodata-outbox"


def _corpus(root: Path, clips: int, seconds: float) -> Path:
    rng = np.random.default_rng(7)
    records = []
    for i in range(clips):  # 44.1 kHz noise: resampled and encoded, FLAC cannot shrink it
        path = root / "audio" / f"n{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.2 * rng.standard_normal(int(seconds * 44100))).astype(np.float32), 44100)
        records.append({"audio": f"audio/n{i}.wav", "text": f"noise {i}"})
    records.append({"audio": "audio/missing.wav", "text": "a reject: no row, no bytes"})
    return write_jsonl(root / "data.jsonl", records)


def _record(n: int, audio: str, root: Path) -> Record:
    messages = [Message("user", "<audio>what is said?"), Message("assistant", f"noise {n}")]
    refs = [AudioRef("path", audio, "audios[0]")]
    return Record(f"r{n}", "sft", messages, SourceLoc("data.jsonl", n, n + 1), refs, media_root=str(root))


def test_rows_come_back_byte_for_byte(tmp_path: Path):
    _corpus(tmp_path, 5, 0.3)
    names = [f"audio/n{i}.wav" for i in range(5)] + ["audio/missing.wav"]
    batch = [(n, _record(n, name, tmp_path)) for n, name in enumerate(names)]
    settings = AudioSettings()
    box = outbox.Outbox(2)
    try:
        fd = box.slot(1)
        os.pwrite(fd, b"x" * 5_000_000, 0)  # a slot holds an earlier, longer job's bytes: never read back
        got = box.receive(fd, *outbox.process_batch_out(batch, settings, fd))
    finally:
        box.close()
    want = process_batch(batch, settings)
    assert [p.row for p in got] == [p.row for p in want]
    assert sum(p.row is not None for p in got) == 5 and any(p.row is None for p in got)


def test_a_pool_run_uses_the_outbox_and_matches_one_worker(tmp_path: Path, monkeypatch):
    corpus = _corpus(tmp_path, 12, 0.3)
    calls: list[int] = []
    receive = outbox.Outbox.receive

    def counted(self: outbox.Outbox, fd: int, done: list, spans: outbox.Spans) -> list:
        calls.append(len(spans))
        return receive(self, fd, done, spans)

    monkeypatch.setattr(outbox.Outbox, "receive", counted)
    opts = {"overwrite": True, "max_shard_size": "64KiB"}
    audiodata.convert([str(corpus)], tmp_path / "w1", num_workers=1, **opts)
    assert calls == []
    audiodata.convert([str(corpus)], tmp_path / "w2", num_workers=2, batch_size=3, **opts)
    assert sum(calls) == 12
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _holds_outbox(pid: int) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/" + MARK):
                return True
        except OSError:
            pass
    return False


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["worker", "parent"])
def test_a_killed_worker_or_parent_leaves_no_shared_memory(victim: str, tmp_path: Path):
    corpus = _corpus(tmp_path, 150, 2.0)
    before = _shm()
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiodata", "convert", str(corpus), "-o", str(out), "--num-workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline, workers = time.time() + 120, []
        while time.time() < deadline and proc.poll() is None:
            workers = [c for c in _children(proc.pid) if _holds_outbox(c)]
            if len(workers) == 2 and _holds_outbox(proc.pid):
                break
            time.sleep(0.02)
        assert len(workers) == 2, "the workers never held the outbox"
        assert _shm() == before  # nothing named, ever
        os.kill(workers[0] if victim == "worker" else proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "a worker outlived the run and holds the outbox"
        assert _shm() == before
        if victim == "worker":
            assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
