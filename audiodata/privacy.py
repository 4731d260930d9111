"""Paths in what audiodata writes are relative: absolute local paths never leave the machine unless asked.

``rejects.jsonl``, the manifest, the dataset card, the lint and dedup reports travel (``publish
--include-rejects`` uploads the rejects; reports are attached to issues and CI logs). A path the user
typed as absolute (``/home/me/corpus/data.jsonl``) is written relative to the folder it sits in
(``data.jsonl``; a folder input keeps its own name: ``corpus/part1.jsonl``), a relative one as typed.
Messages about media name resolved files relative to the media root (``audiodata/audio/load.py``).
``--absolute-paths`` keeps everything as typed and resolved.
"""

from __future__ import annotations

import glob
import os

MEDIA_ROOT = "<media root>"  # how a message names an absolute media root it does not spell out


def input_base(given: str) -> str:
    """The folder an absolutely typed input is named from: the folder it sits in (a glob: the folder its
    pattern starts in), so ``/home/me/corpus`` is ``corpus`` and ``/home/me/c.jsonl`` is ``c.jsonl``."""
    if glob.has_magic(given):
        return glob_base(given)
    parent = os.path.dirname(os.path.normpath(given))
    return parent or os.sep


def public_path(given: str, absolute: bool = False) -> str:
    """``given`` as outputs name it: as typed when relative (or with ``absolute``), else relative to the
    folder it sits in (:func:`input_base`)."""
    if absolute or not os.path.isabs(given):
        return given
    return os.path.relpath(given, input_base(given))


def glob_base(pattern: str) -> str:
    """The folder a glob pattern starts in: its leading parts without wildcards."""
    fixed = []
    for part in pattern.split(os.sep):
        if glob.has_magic(part):
            break
        fixed.append(part)
    base = os.sep.join(fixed)
    if pattern.startswith(os.sep) and not base:
        return os.sep
    return base or "."


__all__ = ["MEDIA_ROOT", "glob_base", "input_base", "public_path"]
