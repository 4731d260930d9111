"""Faults of the machine (disk full, read-only or forbidden output, a file where a folder should be,
I/O errors) as one line and exit code 3.

Exit code 1 means "some records rejected": a pipeline that sees it may go on and publish. A
traceback from a full disk must not look like that, so every ``OSError`` on a path audiodata
writes (or reads back) becomes a :class:`MachineFault` where the path is known, and the command
line maps it, and any bare ``OSError`` that still escapes, to :data:`EXIT_FAULT` with one line
naming the path, the cause and what to do (:func:`fault_line`).
"""

from __future__ import annotations

import errno as errno_codes
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeGuard

from audiodata.errors import EXIT_FAULT, FaultError

#: The end of every command's "exit codes:" help line.
FAULT_EXIT = ", 3 a fault of the machine (disk full, read-only, permission, I/O error: one line names the path)"

#: What to do, per errno; ``{again}`` is "run the same command again" plus " to resume" where the command resumes.
_HINTS: dict[int, str] = {
    errno_codes.ENOSPC: "free space and {again}",
    errno_codes.EDQUOT: "free space (disk quota exceeded) and {again}",
    errno_codes.EROFS: "the filesystem is read-only: write somewhere else, or remount it read-write and {again}",
    errno_codes.EACCES: "check the permissions of that path, or write somewhere else",
    errno_codes.EPERM: "check the permissions of that path, or write somewhere else",
    errno_codes.ENOTDIR: "a file stands where a folder is needed: move it away or choose another path",
    errno_codes.EISDIR: "a folder stands where a file is needed: move it away or choose another path",
    errno_codes.EEXIST: "something already stands there: move it away or choose another path",
    errno_codes.EIO: "the device reported an I/O error: check the disk (dmesg, SMART) before you {again}",
    errno_codes.EMFILE: "too many open files: raise the limit (ulimit -n) and {again}",
    errno_codes.ENFILE: "too many open files on the system: close some and {again}",
    errno_codes.ENOMEM: "out of memory: lower --num-workers and {again}",
    errno_codes.EFBIG: "the file is too large for this filesystem: lower --max-shard-size or write elsewhere",
    errno_codes.ENAMETOOLONG: "the path is too long for this filesystem: choose a shorter one",
}

#: Commands that pick up where an interrupted run stopped.
RESUMING = frozenset({"convert"})


class MachineFault(FaultError):
    """An ``OSError`` on ``path`` while audiodata was doing ``action`` (write, read, create, ...)."""

    def __init__(self, action: str, path: str | os.PathLike[str], error: OSError) -> None:
        self.action, self.path, self.error = action, str(path), error
        super().__init__(f"cannot {action} {self.path}: {cause(error)}")

    @property
    def errno(self) -> int | None:
        return self.error.errno


def cause(error: OSError) -> str:
    """``No space left on device (errno ENOSPC)``: the reason and the errno's name, never its number alone."""
    reason = error.strerror or str(error) or type(error).__name__
    name = errno_codes.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    return f"{reason} (errno {name})" if name else reason


def hint(error_no: int | None, command: str = "", resume: str | None = None) -> str:
    """What to do about ``error_no``, worded for ``command`` (``resume``: the exact command that resumes)."""
    if resume:
        again = f"run `{resume}` to resume"
    elif command in RESUMING:
        again = "run the same command again to resume"
    else:
        again = "run the same command again"
    text = _HINTS.get(error_no or -1)
    return text.format(again=again) if text else ""


def fault_line(exc: BaseException, command: str = "", resume: str | None = None) -> str:
    """The one line a fault of the machine prints (without the ``audiodata:`` prefix)."""
    if isinstance(exc, MachineFault):
        head, no = str(exc), exc.errno
    elif isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        head, no = (f"{where}: {cause(exc)}" if where else cause(exc)), exc.errno
    else:
        head, no = str(exc), None
    tip = hint(no, command, resume)
    return f"{head}; {tip}" if tip else head


def is_os_fault(exc: BaseException) -> TypeGuard[OSError]:
    """An error of the operating system (it carries an errno), as opposed to a library's ``OSError``
    without one (pyarrow reports a damaged Parquet file as an ``OSError`` with no errno)."""
    return isinstance(exc, OSError) and isinstance(exc.errno, int)


@contextmanager
def on_path(path: str | os.PathLike[str], action: str = "write") -> Iterator[None]:
    """Turn an OS error inside the block into a :class:`MachineFault` that names the file it happened on
    (the error's own file name when it has one: open, mkdir, rename; else ``path``: write, flush, fsync)."""
    try:
        yield
    except MachineFault:
        raise
    except OSError as exc:
        if not is_os_fault(exc):
            raise
        raise MachineFault(action, exc.filename if exc.filename else path, exc) from exc


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)




def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """``path`` replaced whole or not at all, through a temporary name of this process's own: a full disk
    leaves the old file, and two runs writing the same report never interleave (the last to finish wins)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        if is_os_fault(exc):
            raise MachineFault("write", target, exc) from exc
        raise


__all__ = [
    "EXIT_FAULT",
    "FAULT_EXIT",
    "MachineFault",
    "cause",
    "fault_line",
    "fsync_dir",
    "hint",
    "is_os_fault",
    "on_path",
    "write_atomic",
]
