"""One writer per output folder: an exclusive ``flock`` on ``FOLDER/.audiodata/lock``.

Two converts into one folder used to race (one deleted the other's temporary shards). The lock is
held for the whole run and released by the kernel when the process ends, however it ends
(``kill -9`` included), so there is no stale lock to detect or break. The file itself stays: it
holds the last holder's pid, host, command and start time, which a refused run prints.

Worker processes forked while the lock is held inherit its descriptor; :func:`drop_inherited`
closes it in them (see ``pipeline/window.py``), so a worker outliving a killed parent never keeps
the folder locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from audiodata.errors import OutputError
from audiodata.faults import on_path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

WORK = ".audiodata"
LOCK_FILE = "lock"

_HELD: set[int] = set()  # descriptors of the locks this process holds


class OutputBusy(OutputError):
    """Another run holds the folder: a usage error (exit code 2) naming the holder."""


def lock_path(folder: Path) -> Path:
    return folder / WORK / LOCK_FILE


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` for ``command`` (``convert``, ``export``...)."""

    def __init__(self, folder: str | os.PathLike[str], command: str, shown: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command
        self.shown = shown or str(folder)  # how messages name the folder
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        path = lock_path(self.folder)
        with on_path(path.parent, "create"):
            path.parent.mkdir(parents=True, exist_ok=True)
        with on_path(path, "open"):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            why = f"{self.shown} is in use by another audiodata run ({holder}); wait for it to end or stop it"
            raise OutputBusy(why) from None
        except OSError:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "started": _now()}
        with on_path(path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        _HELD.add(fd)
        return self

    def valid(self) -> bool:
        """Still the lock of ``folder``: the file at its path is the one this lock holds (not deleted or replaced)."""
        if self.fd is None:
            return False
        try:
            held, there = os.fstat(self.fd), os.stat(lock_path(self.folder))
        except OSError:
            return False
        return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        if self.fd is not None:
            _HELD.discard(self.fd)
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def hold(folder: str | os.PathLike[str], command: str, shown: str | None = None) -> Iterator[FolderLock]:
    """``with hold(out, "convert"):`` the whole run; raises :class:`OutputBusy` when another run has it."""
    lock = FolderLock(folder, command, shown).acquire()
    try:
        yield lock
    finally:
        lock.release()


def drop_inherited() -> None:
    """In a forked worker: close the lock descriptors inherited from the parent (the parent keeps its lock)."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder unknown"
    return f"{info.get('command', 'a run')}, pid {info['pid']} on {info.get('host', '?')}, started {info.get('started', '?')}"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime())


__all__ = ["LOCK_FILE", "WORK", "FolderLock", "OutputBusy", "drop_inherited", "hold", "lock_path"]
