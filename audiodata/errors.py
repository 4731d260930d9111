"""One exception hierarchy for everything audiodata refuses to do, and the exit code of each.

A pipeline reads the exit code, so what went wrong must decide it, never the Python type a
library happened to raise: every error audiodata means to raise derives from
:class:`AudiodataError` and carries its ``exit_code``. The command line maps these (and only these)
to their codes; any other exception escaping a command is a bug in audiodata, reported as one with
:data:`EXIT_INTERNAL` (see ``audiodata/cli/exits.py``).

The per-module names of earlier releases (``OptionsError``, ``InputError``, ``ExportError``,
``PublishError``, ``VerifyError``, ``DatasetError``, ``OutputBusy``, the trainer's ``ConfigError``)
remain, as subclasses of the class here that says what they are. The usage, input, output and
dataset classes are also ``ValueError``s, as those names were, so ``except ValueError`` in callers'
code keeps catching them.
"""

from __future__ import annotations

#: Exit codes, stable for CI pipelines (README "Exit codes").
EXIT_OK = 0
EXIT_PROBLEMS = 1  # the run finished, and found problems: records rejected, lint errors, verify problems...
EXIT_USAGE = 2  # nothing useful ran: a bad option or configuration, an unusable input or output, a damaged dataset
EXIT_FAULT = 3  # a fault of the machine: disk full, read-only, permissions, I/O error (audiodata/faults.py)
EXIT_INTERNAL = 70  # a bug in audiodata (sysexits.h EX_SOFTWARE): an exception audiodata did not mean to raise
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it
EXIT_PIPE = 141  # stdout closed early (| head): 128 + SIGPIPE

#: Where a bug is reported (named in the "internal error" message).
ISSUES_URL = "https://github.com/audiodata/audiodata/issues"


class AudiodataError(Exception):
    """Something audiodata refuses to do, with the reason in the message and the exit code it means."""

    exit_code: int = EXIT_USAGE


class UsageError(AudiodataError, ValueError):
    """A bad option or configuration (a flag, a YAML field, an argument of the Python API): exit 2."""


class InputDataError(AudiodataError, ValueError):
    """An input that cannot be used at all (missing, not a regular file, a broken registry): exit 2.
    A bad *record* is never this: it is rejected with its reason and the run goes on."""


class OutputError(AudiodataError, ValueError):
    """An output folder that cannot be written: it holds something else, or another run holds it: exit 2."""


class DatasetFormatError(AudiodataError, ValueError):
    """A converted dataset that is not one, is damaged, or is of a format this audiodata does not read: exit 2.
    The message names the file (and the row group) and points to ``audiodata verify``."""


class FaultError(AudiodataError):
    """A fault of the machine (disk full, read-only output, I/O error): exit 3. Raised as
    :class:`audiodata.faults.MachineFault`, which names the path and the cause."""

    exit_code = EXIT_FAULT


def exit_code_of(exc: BaseException) -> int:
    """The exit code ``exc`` means: its own for an :class:`AudiodataError`, a machine fault for a bare
    ``OSError``, :data:`EXIT_INTERNAL` (a bug) for anything else."""
    if isinstance(exc, AudiodataError):
        return exc.exit_code
    if isinstance(exc, OSError):
        return EXIT_FAULT
    return EXIT_INTERNAL


__all__ = [
    "EXIT_FAULT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "ISSUES_URL",
    "AudiodataError",
    "DatasetFormatError",
    "FaultError",
    "InputDataError",
    "OutputError",
    "UsageError",
    "exit_code_of",
]
