"""Pool workers never outlive their run.

A forked ``ProcessPoolExecutor`` worker waits on the job queue, and it holds that queue's writing end
itself, so a parent killed by SIGKILL (OOM killer, ``kill -9``, a CI timeout) left its workers waiting
for ever, each holding its decoder state and buffers. ``ordered_map`` has the kernel kill them with the
parent (``PR_SET_PDEATHSIG``); a killed worker still ends the run with an error, as before.
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

from audiodata.pipeline.window import die_with, ordered_map
from tests.conftest import REPO, write_jsonl

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def _corpus(root: Path, clips: int, seconds: float) -> Path:
    rng = np.random.default_rng(7)
    records = []
    for i in range(clips):  # 44.1 kHz noise: resampled and encoded, FLAC cannot shrink it
        path = root / "audio" / f"n{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.2 * rng.standard_normal(int(seconds * 44100)), 44100, subtype="PCM_16")
        records.append({"audio": f"audio/n{i}.wav", "text": f"noise {i}"})
    return write_jsonl(root / "data.jsonl", records)


def _forks(pid: int) -> list[int]:
    """Children of ``pid`` that are forks of it (same command line): pool workers, not a helper program it ran."""
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        own = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    forks = []
    for kid in kids:
        try:
            if Path(f"/proc/{kid}/cmdline").read_bytes() == own:
                forks.append(kid)
        except OSError:
            pass
    return forks


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def _deathsig(_: int) -> int:
    """In a worker: the signal the kernel sends it when its parent goes (``/proc/self/status`` has no field for it)."""
    import ctypes

    sig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    return sig.value


def test_pool_workers_are_set_to_die_with_the_parent():
    assert [r for _, r in ordered_map(_deathsig, [(n, (n,)) for n in range(4)], workers=2)] == [signal.SIGKILL] * 4


def test_a_worker_whose_parent_is_already_gone_exits(tmp_path: Path):
    code = "import os, sys; from audiodata.pipeline.window import die_with; die_with(os.getppid() + 1); print('survived')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1 and "survived" not in proc.stdout
    die_with(os.getppid())  # this process's parent is there: a no-op here


@pytest.mark.parametrize("victim", ["worker", "parent"])
def test_a_killed_worker_or_parent_leaves_no_process_behind(victim: str, tmp_path: Path):
    corpus = _corpus(tmp_path, 300, 2.0)  # a run of a few seconds: killed while workers hold jobs
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiodata", "convert", str(corpus), "-o", str(out), "--num-workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(workers) < 2:
            time.sleep(0.02)
            workers = [c for c in _forks(proc.pid) if _alive(c)]
        assert len(workers) == 2, "the workers never started, or the run was over first: make the corpus larger"
        os.kill(workers[0] if victim == "worker" else proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "a worker outlived the run"
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for w in workers:  # a failed run's orphans, by their ids
            if _alive(w):
                os.kill(w, signal.SIGKILL)
