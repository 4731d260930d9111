"""``convert --overwrite`` builds the new dataset aside and swaps it in at the end.

Deleting the old dataset first left nothing when the new build failed (disk full, a kill, a bad
option found late). Now the new one is built in a hidden sibling folder ``.NAME.audiodata-new``
(same parent, so the same filesystem and renames are atomic), and only a complete build replaces
the old one:

1. the new build completes in NEW (its ``state.json`` says ``complete``): the commit point;
2. the old dataset is marked ``.audiodata/superseded``;
3. files in OUT that are not a dataset's (a ``.git`` of a Hub clone, a LICENSE) move into NEW;
4. NEW and OUT are exchanged in one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux), else by two
   renames (OUT -> OLD, NEW -> OUT);
5. the old dataset is renamed ``.NAME.audiodata-old`` and deleted.

A kill at any moment leaves OUT holding the old complete dataset or the new complete one, plus a
leftover that the next ``convert`` into OUT finishes or deletes (:func:`finish_pending`): a complete
NEW is swapped in (rolled forward), a superseded or OLD folder is deleted, and an unfinished NEW is
resumed by the same command (same inputs and options, ``--overwrite``) or deleted by any other.
(With the two-rename fallback, a kill between the renames leaves OUT absent until the next run
completes the swap.)
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

from audiodata.faults import fsync_dir, on_path
from audiodata.lock import LOCK_FILE, WORK

SUPERSEDED = "superseded"
#: What a converted dataset consists of; anything else in its folder is the user's and is kept.
DATASET_FILES = ("data", "README.md", "manifest.json", "rejects.jsonl", WORK)


def new_path(out: Path) -> Path:
    return _sibling(out, "new")


def old_path(out: Path) -> Path:
    return _sibling(out, "old")


def _sibling(out: Path, what: str) -> Path:
    full = Path(os.path.abspath(out))
    return full.parent / f".{full.name}.audiodata-{what}"


def is_complete(folder: Path) -> bool:
    from audiodata.pipeline.state import RunState

    state = RunState.load(folder)
    return state is not None and state.status == "complete" and (folder / "manifest.json").is_file()


def is_superseded(folder: Path) -> bool:
    return (folder / WORK / SUPERSEDED).exists()


def holds_dataset(out: Path) -> bool:
    """A dataset worth keeping until its replacement is complete."""
    return (out / "manifest.json").is_file()


def can_build_aside(out: Path) -> bool:
    """NEW must sit on OUT's filesystem for the swap to be a rename (not when OUT is a mount point)."""
    full = Path(os.path.abspath(out))
    try:
        return os.stat(full).st_dev == os.stat(full.parent).st_dev
    except OSError:
        return False


def clear_dataset(out: Path) -> None:
    """Delete what a dataset consists of from ``out`` (an in-place overwrite), keeping the lock file
    (deleting a held lock file would let a second run lock a new one) and everything not ours."""
    with on_path(out, "delete"):
        for name in DATASET_FILES:
            target = out / name
            if name == WORK and target.is_dir():
                for entry in target.iterdir():
                    if entry.name != LOCK_FILE:
                        remove(entry)
            elif target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()


def swap_in(new: Path, out: Path) -> None:
    """Steps 2 to 5: replace the dataset in ``out`` by the complete one in ``new``."""
    with on_path(out / WORK / SUPERSEDED):
        if out.is_dir():
            (out / WORK).mkdir(exist_ok=True)
            (out / WORK / SUPERSEDED).write_text("replaced by a newer conversion; deleted by the next run\n")
            fsync_dir(out / WORK)
    if out.is_dir():
        with on_path(out, "move files out of"):
            for entry in sorted(out.iterdir()):
                if entry.name not in DATASET_FILES and not (new / entry.name).exists():
                    os.rename(entry, new / entry.name)
            fsync_dir(new)
    old = old_path(out)
    remove(old)
    with on_path(out, "replace"):
        if out.is_dir() and exchange(new, out):
            os.rename(new, old)
        else:
            if out.is_dir():
                os.rename(out, old)
            elif out.exists() or out.is_symlink():
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(out))
            os.rename(new, out)
        fsync_dir(Path(os.path.abspath(out)).parent)
    remove(old)


def finish_pending(out: Path) -> bool:
    """Finish what an interrupted overwrite left next to ``out``: a complete NEW is swapped in, a superseded
    or OLD folder is deleted; True when an overwrite had got that far (OUT now holds its dataset). An
    unfinished NEW is left for :func:`convert` to resume or delete."""
    new, old = new_path(out), old_path(out)
    swapped = old.exists()
    if new.is_dir() and is_superseded(new):  # exchanged, not yet renamed OLD: it is the old dataset
        swapped = True
        remove(old)
        with on_path(new, "rename"):
            os.rename(new, old)
    if new.is_dir() and is_complete(new):
        if out.is_dir() and not holds_dataset(out) and _only_lock(out):
            remove(out)  # the two-rename fallback was killed between its renames: OUT is just our fresh lock
        swap_in(new, out)
        swapped = True
    remove(old)
    if out.is_dir() and is_superseded(out) and not new.exists():
        with on_path(out / WORK / SUPERSEDED, "delete"):
            (out / WORK / SUPERSEDED).unlink(missing_ok=True)
    return swapped


def _only_lock(out: Path) -> bool:
    entries = list(out.iterdir())
    return all(e.name == WORK for e in entries) and all(e.name == LOCK_FILE for e in (out / WORK).iterdir())


def remove(path: Path) -> None:
    """Delete a leftover folder (or file); a fault names it."""
    with on_path(path, "delete"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or the
    filesystem cannot, so the caller falls back to two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


__all__ = [
    "DATASET_FILES",
    "can_build_aside",
    "clear_dataset",
    "exchange",
    "finish_pending",
    "holds_dataset",
    "new_path",
    "old_path",
    "remove",
    "swap_in",
]
