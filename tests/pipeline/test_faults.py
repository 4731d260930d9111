"""Fault injection: a full disk, read-only output, a file where a folder should be, I/O errors, two runs
into one folder, kills during ``--overwrite``, damaged converted datasets for every reader, and no
absolute local path in anything written.

Faults of the machine end in one line and exit code 3, never a traceback (exit 1 would read as "some
records rejected"); after the fault, the same command resumes. A second run into a held folder is
refused with exit 2 naming the holder. A damaged dataset is named, with ``audiodata verify`` to run,
exit 2. Disk full is tested on a real size-limited tmpfs where this machine lets us mount one (root),
and everywhere through a fake filesystem layer that fills up after N bytes. Random kill points and
racing processes are ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import builtins
import errno
import gc
import importlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import audiodata
from audiodata.cli.main import main
from audiodata.dataset import DatasetError
from audiodata.faults import EXIT_FAULT, MachineFault, fault_line
from audiodata.lock import OutputBusy, hold, lock_path
from audiodata.pipeline import aside
from audiodata.pipeline.window import ordered_map
from audiodata.verify import verify
from tests.conftest import REPO, tree_bytes, write_audio, write_jsonl
from tests.hub_mock import hub

__all__ = ["hub"]  # the fixture, imported for pytest

SMALL = "64KiB"  # the smallest shard cap: a few clips per shard, so a run has durable shards to resume from


# --------------------------------------------------------------------------- corpora


def noise_corpus(root: Path, clips: int = 12, seconds: float = 0.5, seed: int = 0) -> Path:
    """Clips of white noise (FLAC cannot shrink them: output size is predictable), one JSONL."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(clips):
        path = root / "audio" / f"n{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.2 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
        records.append({"audio": f"audio/n{i}.wav", "text": f"noise {i}"})
    return write_jsonl(root / "data.jsonl", records)


def convert_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["convert", str(corpus), "-o", str(out), "--max-shard-size", SMALL, "--num-workers", "1", "--no-progress", *extra]


def one_line(err: str) -> str:
    """The single non-empty stderr line a fault prints (rich tables go to stdout)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def said(text: str) -> str:
    """What the terminal said, whatever rich wrapped."""
    return " ".join(text.split())


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.audiodata-"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return noise_corpus(tmp_path_factory.mktemp("faults") / "corpus")


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The uninterrupted outputs every faulted run must end up equal to: 16 kHz and (for overwrites) 22.05 kHz."""
    refs = {}
    for rate in ("16000", "22050"):
        out = tmp_path_factory.mktemp("ref") / f"r{rate}"
        assert main([*convert_args(corpus, out), "--sample-rate", rate]) == 0
        refs[rate] = tree_bytes(out)
    return refs


# --------------------------------------------------------------------------- a fake filesystem layer


class FillingDisk:
    """Files opened for writing under ``root`` fail with ``error`` once ``budget`` bytes were written to them
    all (``open``/``io.open``, so Python files, pathlib and pyarrow's sink all go through it)."""

    def __init__(self, root: Path, budget: float, error: int = errno.ENOSPC) -> None:
        self.root, self.budget, self.error, self.used = str(root), budget, error, 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FillingDisk:
        real = io.open
        _collect_first(monkeypatch)

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            fh = real(file, mode, *args, **kwargs)
            name = os.path.abspath(os.fsdecode(file)) if isinstance(file, (str, bytes, os.PathLike)) else ""
            if any(c in mode for c in "wax+") and name.startswith(self.root):
                return _Metered(fh, self)
            return fh

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        return self

    def spend(self, n: int) -> None:
        if self.used + n > self.budget:
            raise OSError(self.error, os.strerror(self.error))
        self.used += n


def _collect_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files a faulted run left open are finalized now, while the layer is still there (a finalizer that runs
    Python code during a later ``ast.parse`` trips CPython 3.11's AST recursion check)."""
    real_undo = monkeypatch.undo

    def undo() -> None:
        gc.collect()
        real_undo()

    monkeypatch.undo = undo  # type: ignore[method-assign]


class _Metered:
    def __init__(self, fh: Any, disk: FillingDisk) -> None:
        self._fh, self._disk = fh, disk

    def write(self, data: Any) -> int:
        self._disk.spend(len(data) if isinstance(data, str) else memoryview(data).nbytes)
        return self._fh.write(data)

    def __enter__(self) -> _Metered:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fh)

    def __getattr__(self, name: str) -> Any:
        if name in ("_fh", "_disk"):  # looked up before __init__ ran (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self._fh, name)


@pytest.fixture(scope="module")
def total_written(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """Bytes a whole run writes under OUT (measured through the same layer with no limit)."""
    mp = pytest.MonkeyPatch()
    out = tmp_path_factory.mktemp("measure") / "out"
    disk = FillingDisk(out, float("inf")).install(mp)
    try:
        assert main(convert_args(corpus, out)) == 0
    finally:
        mp.undo()
    return disk.used


# --------------------------------------------------------------------------- 1. disk full, anywhere in a run


@pytest.mark.parametrize("fraction", [0.0, 0.35, 0.8, 0.99])
def test_disk_full_anywhere_is_one_line_exit_3_and_the_same_command_resumes(
    fraction: float, corpus: Path, reference: dict[str, dict[str, bytes]], total_written: int, tmp_path: Path, capsys, monkeypatch
):
    out = tmp_path / "out"
    mp = pytest.MonkeyPatch()
    FillingDisk(out, int(fraction * total_written)).install(mp)
    try:
        code = main(convert_args(corpus, out))
    finally:
        mp.undo()
    line = one_line(capsys.readouterr().err)
    assert code == EXIT_FAULT
    assert line.startswith(f"audiodata: cannot write {out}")  # the path: a shard, state.json, rejects, the manifest...
    assert line.endswith("No space left on device (errno ENOSPC); free space and run the same command again to resume")
    assert main(convert_args(corpus, out)) == 0  # space freed: the same command
    assert tree_bytes(out) == reference["16000"]


def test_an_io_error_says_to_check_the_disk(corpus: Path, total_written: int, tmp_path: Path, capsys, monkeypatch):
    out = tmp_path / "out"
    FillingDisk(out, total_written // 2, errno.EIO).install(monkeypatch)
    assert main(convert_args(corpus, out)) == EXIT_FAULT
    line = one_line(capsys.readouterr().err)
    assert "Input/output error (errno EIO); the device reported an I/O error: check the disk" in line


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "size=2m"):
        pytest.skip("cannot mount a tmpfs here (needs root): the fake filesystem layer covers disk full")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_on_a_real_2mb_tmpfs_then_resumed_after_space_is_freed(tmpfs: Path, tmp_path: Path, capsys):
    corpus = noise_corpus(tmp_path / "big", clips=8, seconds=10.0, seed=1)  # about 2.5 MB of FLAC
    ref = tmp_path / "ref"
    assert main(convert_args(corpus, ref)) == 0
    capsys.readouterr()
    out = tmpfs / "out"
    assert main(convert_args(corpus, out)) == EXIT_FAULT
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"audiodata: cannot write {out}/") and "(errno ENOSPC)" in line and line.endswith("to resume")
    state = json.loads((out / ".audiodata/state.json").read_text())
    assert state["status"] == "running" and state["shards"], "some shards were durable before the disk filled"
    assert subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)]).returncode == 0  # space freed
    assert main(convert_args(corpus, out)) == 0
    assert "resumed at input record" in said(capsys.readouterr().out)
    assert tree_bytes(out) == tree_bytes(ref)


# --------------------------------------------------------------------------- 2. read-only output, a file where a folder should be


@pytest.fixture
def readonly(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder nothing can be written in, and the errno that says so: a read-only tmpfs as root, chmod otherwise."""
    mnt = tmp_path / "ro"
    if _mount_tmpfs(mnt, "size=1m,ro"):
        try:
            yield mnt, "EROFS"
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    elif os.geteuid() != 0:
        mnt.chmod(0o555)
        yield mnt, "EACCES"
        mnt.chmod(0o755)
    else:
        pytest.skip("root ignores permissions and cannot mount here: no way to make a folder read-only")


def test_read_only_output_is_one_line_exit_3_for_every_writer(
    readonly: tuple[Path, str], corpus: Path, tmp_path: Path, capsys
):
    ro, name = readonly
    assert main(convert_args(corpus, ro / "out")) == EXIT_FAULT
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"audiodata: cannot create {ro}/out") and f"(errno {name})" in line
    assert main(["lint", str(corpus), "--no-audio", "--no-progress", "--report-json", str(ro / "lint.json")]) == EXIT_FAULT
    assert f"cannot write {ro}/lint.json" in one_line(capsys.readouterr().err)
    ds = tmp_path / "ds"
    assert main(convert_args(corpus, ds)) == 0
    capsys.readouterr()
    assert main(["export", str(ds), "--to", "ms-swift", "-o", str(ro / "exported")]) == EXIT_FAULT
    assert f"{ro}/exported" in one_line(capsys.readouterr().err)


def test_an_output_that_is_a_file_is_one_line_exit_3(corpus: Path, tmp_path: Path, capsys):
    afile = tmp_path / "taken"
    afile.write_text("not a folder")
    assert main(convert_args(corpus, afile)) == EXIT_FAULT
    line = one_line(capsys.readouterr().err)
    assert str(afile) in line and "Not a directory (errno ENOTDIR); a file stands where a folder is needed" in line
    assert afile.read_text() == "not a folder"
    assert main(["lint", str(corpus), "--no-audio", "--no-progress", "--report-json", str(afile / "r.json")]) == EXIT_FAULT
    assert "(errno ENOTDIR)" in one_line(capsys.readouterr().err)


COMMANDS = {  # command line -> the function it runs that the fault is raised from
    "convert": (["convert", "in.jsonl", "-o", "o", "--no-progress"], "audiodata.pipeline.convert.convert"),
    "lint": (["lint", "in.jsonl", "--no-progress"], "audiodata.pipeline.lint.lint"),
    "dedup": (["dedup", "in.jsonl", "--no-progress"], "audiodata.pipeline.dedup.dedup"),
    "verify": (["verify", "o"], "audiodata.verify.verify"),
    "export": (["export", "o", "--to", "ms-swift", "-o", "d"], "audiodata.export.export"),
    "publish": (["publish", "o", "me/x"], "audiodata.publish.publish"),
    "info": (["info", "o"], "audiodata.dataset.ConvertedDataset.open"),
    "train": (["train", "sft", "--model", "m", "--data", "o"], "trainer.cli.config_from_args"),
    "merge": (["train", "merge", "a", "-o", "m"], "trainer.merge.merge"),
    "make-tiny-model": (["make-tiny-model", "-o", "m"], "trainer.tiny.make_tiny_model"),
}


def _owner(target: str) -> tuple[object, str]:
    """(the object holding the attribute, its name) for a dotted path: the longest importable module, then attributes."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise AssertionError(f"cannot resolve {target}")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_maps_an_os_error_to_one_line_and_exit_3(command: str, monkeypatch, capsys):
    argv, target = COMMANDS[command]

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/x.parquet")

    owner, name = _owner(target)  # by object: audiodata.verify is the function, not the module
    monkeypatch.setattr(owner, name, fail)
    assert main(argv) == EXIT_FAULT
    again = "run the same command again" + (" to resume" if command == "convert" else "")
    assert one_line(capsys.readouterr().err) == (
        f"audiodata: /data/out/x.parquet: No space left on device (errno ENOSPC); free space and {again}"
    )


def test_fault_lines_name_the_path_and_the_cause():
    err = OSError(errno.EROFS, "Read-only file system")
    assert str(MachineFault("write", "out/ds/data/x.parquet", err)) == (
        "cannot write out/ds/data/x.parquet: Read-only file system (errno EROFS)"
    )
    assert fault_line(OSError(errno.EACCES, "Permission denied", "out/ds"), "export") == (
        "out/ds: Permission denied (errno EACCES); check the permissions of that path, or write somewhere else"
    )
    assert fault_line(OSError("a library's error without errno")) == "a library's error without errno"


# --------------------------------------------------------------------------- 3. one writer per folder


def test_a_second_convert_into_a_held_folder_is_refused_with_exit_2_naming_the_holder(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    with hold(out, "convert"):
        cmd = [sys.executable, "-m", "audiodata", *convert_args(corpus, out)]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    line = " ".join(done.stderr.split())
    assert f"{out} is in use by another audiodata run (convert, pid {os.getpid()} on {socket.gethostname()}" in line
    assert not (out / "data").exists() and not (out / ".audiodata/state.json").exists()  # nothing of the first touched
    assert main(convert_args(corpus, out)) == 0  # released: the folder is usable


def test_export_and_lint_fix_cannot_collide(corpus: Path, tmp_path: Path, capsys):
    ds = tmp_path / "ds"
    assert main(convert_args(corpus, ds)) == 0
    dest = tmp_path / "exported"
    with hold(dest, "export"):
        assert main(["export", str(ds), "--to", "ms-swift", "-o", str(dest)]) == 2
    assert "in use by another audiodata run (export" in said(capsys.readouterr().err)
    assert main(["export", str(ds), "--to", "ms-swift", "-o", str(dest)]) == 0
    # lint --fix and the reports are replaced whole through a temporary name of their own: no lock needed
    fixed, report = tmp_path / "fixed.jsonl", tmp_path / "r.json"
    for _ in range(2):
        assert main(["lint", str(corpus), "--no-audio", "--no-progress", "--fix", str(fixed), "--report-json", str(report)]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_lock_is_the_kernels_and_workers_do_not_keep_it(tmp_path: Path):
    out = tmp_path / "out"
    with hold(out, "convert") as lock, pytest.raises(OutputBusy):
        hold(out, "convert").__enter__()  # a second descriptor, even in the same process, is refused
    assert lock.fd is None
    with hold(out, "convert") as lock:
        jobs = [(n, (lock.fd, str(lock_path(out)))) for n in range(4)]
        results = [r for _, r in ordered_map(_holds, jobs, workers=2)]
    assert results == [False] * 4  # forked workers closed the inherited descriptor: a killed parent frees the folder


def _holds(fd: int, path: str) -> bool:
    """In a worker: is ``fd`` still the lock file's descriptor?"""
    try:
        held, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


@pytest.mark.slow
def test_two_real_converts_race_and_one_is_refused(tmp_path: Path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    rng = np.random.default_rng(3)
    records = []
    for i in range(150):  # 44.1 kHz noise: resampled and encoded, long enough for the second run to start
        sf.write(corpus / f"n{i}.wav", 0.2 * rng.standard_normal(88200), 44100)
        records.append({"audio": f"n{i}.wav", "text": f"noise {i}"})
    write_jsonl(corpus / "data.jsonl", records)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiodata", *convert_args(corpus / "data.jsonl", out)]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and f'"pid": {first.pid}' not in (lock_path(out).read_text() if lock_path(out).exists() else ""):
        time.sleep(0.02)
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    overlapped = first.poll() is None
    assert first.wait(timeout=600) == 0, first.stderr.read() if first.stderr else ""
    assert overlapped, "the first run ended before the second started: make the corpus larger"
    assert second.returncode == 2 and f"pid {first.pid}" in second.stderr
    ref = tmp_path / "ref"
    assert main(convert_args(corpus / "data.jsonl", ref)) == 0
    assert tree_bytes(out) == tree_bytes(ref)


# --------------------------------------------------------------------------- 4. --overwrite builds aside


@pytest.fixture
def old_dataset(corpus: Path, reference: dict[str, dict[str, bytes]], tmp_path: Path) -> Path:
    """A complete 16 kHz dataset, plus a file of the user's in its folder (a Hub clone's LICENSE)."""
    out = tmp_path / "out"
    assert main(convert_args(corpus, out)) == 0
    (out / "LICENSE").write_text("mine")
    return out


def whole(out: Path, reference: dict[str, dict[str, bytes]]) -> str:
    """Which complete dataset ``out`` holds: "16000" (the old) or "22050" (the new)."""
    got = tree_bytes(out)
    got.pop("LICENSE", None)
    return next(rate for rate, ref in reference.items() if got == ref)


def test_a_failed_overwrite_keeps_the_old_dataset_and_the_same_command_resumes(
    old_dataset: Path, corpus: Path, reference: dict[str, dict[str, bytes]], total_written: int, capsys, monkeypatch
):
    out = old_dataset
    again = [*convert_args(corpus, out), "--sample-rate", "22050", "--overwrite"]
    mp = pytest.MonkeyPatch()
    FillingDisk(out.parent, total_written // 2).install(mp)
    try:
        assert main(again) == EXIT_FAULT
    finally:
        mp.undo()
    assert "free space and run the same command again to resume" in one_line(capsys.readouterr().err)
    assert whole(out, reference) == "16000" and (out / "LICENSE").read_text() == "mine"  # the old one, untouched
    assert siblings(out) == [f".{out.name}.audiodata-new"]
    assert main(again) == 0
    assert "resumed at input record" in said(capsys.readouterr().out)
    assert whole(out, reference) == "22050" and (out / "LICENSE").read_text() == "mine" and siblings(out) == []
    assert verify(out).exit_code == 0


class Killed(BaseException):
    """Stands for SIGKILL at one point of the swap: nothing after it runs (locks are released as the kernel would)."""


def _kill_after(monkeypatch: pytest.MonkeyPatch, name: str, calls: int) -> None:
    real = getattr(aside, name)
    seen = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        seen[0] += 1
        if seen[0] == calls:
            raise Killed(name)
        return result

    monkeypatch.setattr(aside, name, wrapper)


SWAP_STEPS = {  # a kill right after: (patched function, its call number, what OUT then holds)
    "old marked superseded": ("fsync_dir", 1, "16000"),
    "user files moved to the new one": ("fsync_dir", 2, "16000"),
    "exchanged": ("exchange", 1, "22050"),
    "old renamed aside": ("fsync_dir", 3, "22050"),
}


@pytest.mark.parametrize("step", list(SWAP_STEPS))
def test_a_kill_at_any_step_of_the_swap_leaves_one_whole_dataset_and_the_next_run_finishes(
    step: str, old_dataset: Path, corpus: Path, reference: dict[str, dict[str, bytes]], monkeypatch, capsys
):
    out = old_dataset
    name, calls, holds = SWAP_STEPS[step]
    again = [*convert_args(corpus, out), "--sample-rate", "22050", "--overwrite"]
    _kill_after(monkeypatch, name, calls)
    with pytest.raises(Killed):
        main(again)
    monkeypatch.undo()
    assert whole(out, reference) == holds
    assert siblings(out), "a leftover for the next run"
    assert main(again) == 0
    assert "is already complete" in said(capsys.readouterr().out)  # the finished build was swapped in, not built again
    assert whole(out, reference) == "22050" and (out / "LICENSE").read_text() == "mine" and siblings(out) == []


def test_where_the_filesystem_cannot_exchange_two_renames_are_finished_by_the_next_run(
    old_dataset: Path, corpus: Path, reference: dict[str, dict[str, bytes]], monkeypatch
):
    out = old_dataset
    again = [*convert_args(corpus, out), "--sample-rate", "22050", "--overwrite"]
    monkeypatch.setattr(aside, "exchange", lambda a, b: False)
    real_rename = os.rename

    def rename(a: Any, b: Any) -> None:
        real_rename(a, b)
        if Path(b).name.endswith(".audiodata-old"):
            raise Killed("between the renames")

    monkeypatch.setattr(aside.os, "rename", rename)
    with pytest.raises(Killed):
        main(again)
    monkeypatch.undo()
    assert not out.exists() and siblings(out) == [f".{out.name}.audiodata-new", f".{out.name}.audiodata-old"]
    assert main(again) == 0
    assert whole(out, reference) == "22050" and (out / "LICENSE").read_text() == "mine" and siblings(out) == []


def test_an_overwrite_killed_by_sigkill_keeps_the_old_dataset_and_resumes(
    old_dataset: Path, corpus: Path, reference: dict[str, dict[str, bytes]], tmp_path: Path
):
    _sigkill_overwrite(old_dataset, corpus, reference, shards=2)


@pytest.mark.slow
@pytest.mark.parametrize("shards", [0, 1, 3, 5, 7])
def test_an_overwrite_killed_by_sigkill_at_many_points(
    shards: int, old_dataset: Path, corpus: Path, reference: dict[str, dict[str, bytes]]
):
    _sigkill_overwrite(old_dataset, corpus, reference, shards)


def _sigkill_overwrite(out: Path, corpus: Path, reference: dict[str, dict[str, bytes]], shards: int) -> None:
    again = [*convert_args(corpus, out), "--sample-rate", "22050", "--overwrite"]
    cmd = [sys.executable, "-m", "audiodata", *again]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = aside.new_path(out) / ".audiodata/state.json"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(json.loads(state.read_text() or "{}").get("shards", [])) >= shards:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert whole(out, reference) in ("16000", "22050")  # killed early: the old one; killed late: the new one
    assert main(again) == 0  # the kernel released the lock: no stale lock to break
    assert whole(out, reference) == "22050" and (out / "LICENSE").read_text() == "mine" and siblings(out) == []


@pytest.mark.parametrize("aside_build", [True, False])
def test_ctrl_c_and_faults_say_the_exact_command_that_resumes(aside_build: bool, monkeypatch, capsys, tmp_path: Path):
    """An interrupted build aside resumes with the same command; one in place (the folder held no dataset)
    resumes without --overwrite, since with it it would start over."""
    out = tmp_path / "out"
    if aside_build:
        aside.new_path(out).mkdir()
    argv = ["convert", "my corpus", "-o", str(out), "--overwrite"]
    resume = shlex.join(["audiodata", *(argv if aside_build else argv[:-1])])
    for raised in (KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device", "x")):

        def interrupted(*args: object, _raised: BaseException = raised, **kwargs: object) -> None:
            raise _raised

        monkeypatch.setattr("audiodata.pipeline.convert.convert", interrupted)
        code = main(argv)
        err = said(capsys.readouterr().err)
        if isinstance(raised, KeyboardInterrupt):
            assert code == 130 and err.endswith(resume)
            assert ("the old dataset is untouched; to resume, run the same command again" in err) == aside_build
            assert ("to resume, run it without --overwrite (with it, it would start over)" in err) != aside_build
        elif aside_build:
            assert code == 3 and err.endswith("free space and run the same command again to resume")
        else:
            assert code == 3 and err.endswith(f"free space and run `{resume}` to resume")


# --------------------------------------------------------------------------- 5. damaged datasets, every reader


@pytest.fixture(scope="module")
def dataset(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "ds"
    assert main(convert_args(corpus, out)) == 0
    return out


def damage(ds: Path, how: str) -> str:
    """Damage a copy of the dataset; returns the name the error must give (the shard, or manifest.json)."""
    manifest = json.loads((ds / "manifest.json").read_text())
    shard = manifest["shards"][1]["file"]
    path = ds / shard
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbage":  # every page of every column, the footer intact: what a bad copy or sector gives
        footer = int.from_bytes(data[-8:-4], "little")
        end = len(data) - 8 - footer
        data[4:end] = np.random.default_rng(0).integers(0, 256, end - 4, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
    elif how == "missing":
        path.unlink()
    else:
        (ds / "manifest.json").write_text('{"shards": [')
        return "manifest.json"
    return shard


DAMAGE = ["truncated", "garbage", "missing", "manifest not JSON"]


@pytest.fixture
def damaged(request: pytest.FixtureRequest, dataset: Path, tmp_path: Path) -> tuple[Path, str, str]:
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    return ds, request.param, damage(ds, request.param)


def assert_named(code: int, err: str, ds: Path, name: str, how: str) -> None:
    line = " ".join(err.split())
    assert code == 2, err
    assert "Traceback" not in err and name in line and f"audiodata verify {ds}" in line, line
    if how == "garbage":
        assert "row group" in line  # the first damaged row group


@pytest.mark.parametrize("damaged", DAMAGE, indirect=True)
def test_train_names_the_damaged_shard(damaged: tuple[Path, str, str]):
    from trainer.data import load_rows

    ds, how, name = damaged
    with pytest.raises(DatasetError) as err:
        load_rows(SimpleNamespace(data=str(ds), data_config=None, task="sft", config_name="sft"), "train")
    assert_named(2, str(err.value), ds, name, how)


@pytest.mark.parametrize("damaged", DAMAGE, indirect=True)
@pytest.mark.parametrize("reader", ["info", "export", "dedup --against"])
def test_every_reader_names_the_damaged_shard_and_exits_2(
    reader: str, damaged: tuple[Path, str, str], corpus: Path, tmp_path: Path, capsys
):
    ds, how, name = damaged
    argv = {
        "info": ["info", str(ds)],
        "export": ["export", str(ds), "--to", "llamafactory", "-o", str(tmp_path / "lf")],
        "dedup --against": ["dedup", str(corpus), "--against", str(ds), "--dedup", "exact", "--no-progress"],
    }[reader]
    code = main(argv)
    if how == "garbage" and reader == "info":  # info reads footers only (sizes, row counts): to it the shard is whole
        assert code == 0
        return
    printed = capsys.readouterr()
    assert_named(code, printed.err + printed.out if reader == "export" else printed.err, ds, name, how)


@pytest.mark.parametrize("damaged", DAMAGE, indirect=True)
def test_publish_names_the_damaged_shard_and_commits_nothing(damaged: tuple[Path, str, str], capsys, hub):
    ds, _, name = damaged
    code = main(["publish", str(ds), "me/ds", "--token", "hf_mock"])
    assert_named(code, capsys.readouterr().err, ds, name, "")  # garbage: the sha256 computed for the upload differs
    assert not hub.commits, "nothing of a damaged dataset is committed"


@pytest.mark.parametrize("damaged", DAMAGE, indirect=True)
def test_verify_lists_every_problem(damaged: tuple[Path, str, str], capsys):
    ds, how, name = damaged
    code = main(["verify", str(ds), "--json"])
    printed = capsys.readouterr()
    if how == "manifest not JSON":  # not a dataset it can check: a usage error
        assert code == 2 and "V001" in printed.out + printed.err and "Traceback" not in printed.err
        return
    problems = {(p["code"], p["where"].split(" ")[0]) for p in json.loads(printed.out)["problems"]}
    assert code == 1  # verify's own exit code: problems found, each located
    assert ("V002" if how == "missing" else "V004", name) in problems
    if how != "missing":
        assert ("V005", name) in problems


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing"])
def test_a_resumed_convert_dedup_names_a_damaged_durable_shard(how: str, corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"

    def crash(p: Any) -> None:
        if p.records >= 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audiodata.convert([str(corpus)], out, num_workers=1, max_shard_size=SMALL, dedup="exact", on_progress=crash)
    state = json.loads((out / ".audiodata/state.json").read_text())
    shard = out / ".audiodata" / state["shards"][0]["file"]
    data = shard.read_bytes()
    if how == "missing":
        shard.unlink()
    elif how == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    else:  # zeros over every page, header and footer kept: the same size, so only reading finds it
        footer = int.from_bytes(data[-8:-4], "little")
        shard.write_bytes(data[:4] + b"\0" * (len(data) - 12 - footer) + data[-8 - footer :])
    assert main([*convert_args(corpus, out), "--dedup", "exact"]) == 2
    line = " ".join(capsys.readouterr().err.split())
    assert state["shards"][0]["file"] in line and "--overwrite" in line and "Traceback" not in line
    assert main([*convert_args(corpus, out), "--dedup", "exact", "--overwrite"]) == 0


# --------------------------------------------------------------------------- 6. no absolute path leaves the machine


def test_no_output_carries_the_absolute_local_paths(tmp_path: Path, capsys):
    home = tmp_path / "home" / "someone"
    corpus = home / "corpus"
    write_audio(corpus / "ok.wav")
    write_audio(home / "elsewhere" / "out.wav")
    write_jsonl(
        corpus / "data.jsonl",
        [
            {"audio": "ok.wav", "text": "fine"},
            {"audio": "missing.wav", "text": "A001: looked for"},
            {"audio": "../elsewhere/out.wav", "text": "A002 with its --media-root hint"},
            {"messages": [{"role": "user", "content": "<image>no such image"}, {"role": "assistant", "content": "x"}],
             "images": ["nope.png"]},
            '{"broken',
        ],
    )
    out, lint_dir = tmp_path / "out", tmp_path / "lint"
    lint_dir.mkdir()
    assert main(["convert", str(corpus), "-o", str(out), "--num-workers", "1", "--no-progress"]) == 1
    assert main(
        ["lint", str(corpus / "data.jsonl"), "--num-workers", "1", "--no-progress", "--report-json", str(lint_dir / "r.json"),
         "--report-html", str(lint_dir / "r.html")]
    ) == 1
    assert main(["dedup", str(corpus), "--num-workers", "1", "--no-progress", "--against", str(out),
                 "--report-json", str(lint_dir / "d.json")]) in (0, 1)
    capsys.readouterr()
    secrets = {str(tmp_path), os.path.realpath(tmp_path), str(home)}
    written = [p for p in [*out.rglob("*"), *lint_dir.rglob("*")] if p.is_file() and ".audiodata" not in p.parts]
    assert {p.name for p in written} >= {"rejects.jsonl", "manifest.json", "README.md", "r.json", "r.html", "d.json"}
    for p in written:
        data = p.read_bytes()
        assert not any(s.encode() in data for s in secrets), p  # shards' source columns included
    rejects = (out / "rejects.jsonl").read_text()
    assert "(looked for <media root>/missing.wav)" in rejects
    assert "--media-root <media root>/.. would accept it" in rejects  # the hint stays, relative
    assert '"source": "corpus/data.jsonl"' in rejects

    # asked for: the absolute paths are kept (so the check above can fail)
    again = ["convert", str(corpus), "-o", str(tmp_path / "abs"), "--num-workers", "1", "--no-progress", "--absolute-paths"]
    assert main(again) == 1
    assert str(corpus) in (tmp_path / "abs" / "rejects.jsonl").read_text()


def test_an_export_stopped_by_a_full_disk_is_redone_by_the_same_command(dataset: Path, tmp_path: Path, capsys, monkeypatch):
    clean, dest = tmp_path / "clean", tmp_path / "dest"
    assert main(["export", str(dataset), "--to", "llamafactory", "-o", str(clean)]) == 0
    mp = pytest.MonkeyPatch()
    FillingDisk(dest, 40_000).install(mp)
    try:
        assert main(["export", str(dataset), "--to", "llamafactory", "-o", str(dest)]) == EXIT_FAULT
    finally:
        mp.undo()
    assert f"cannot write {dest}/" in one_line(capsys.readouterr().err)
    assert main(["export", str(dataset), "--to", "llamafactory", "-o", str(dest)]) == 0  # its own unfinished one: no --overwrite
    assert tree_bytes(dest) == tree_bytes(clean)
    assert main(["export", str(dataset), "--to", "llamafactory", "-o", str(dest)]) == 2  # a finished one is not replaced unasked


def test_train_says_which_shard_and_exits_2(monkeypatch, capsys):
    def damaged(*args: object) -> None:
        raise DatasetError("shard data/train-00001-of-00004.parquet is damaged: ...; run `audiodata verify out/ds`")

    monkeypatch.setattr("trainer.cli.config_from_args", damaged)
    assert main(["train", "sft", "--model", "m", "--data", "out/ds"]) == 2
    assert "data/train-00001-of-00004.parquet" in one_line(capsys.readouterr().err)
