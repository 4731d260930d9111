"""An error that ends a command, as the user sees it and as a pipeline reads it (the exit code).

An :class:`~audiodata.errors.AudiodataError` is one line (``error: ...``) and its own exit code. Anything
else is a bug in audiodata: the traceback, then one line saying so, where to report it, and
:data:`~audiodata.errors.EXIT_INTERNAL`, never a usage error's 2 (a pipeline must not read a crash as
"you passed a bad flag"). Machine faults (exit 3) and Ctrl-C are the caller's: they need the command
line to say how to resume.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from audiodata.errors import EXIT_INTERNAL, ISSUES_URL, AudiodataError, exit_code_of


def internal_error_line(exc: BaseException) -> str:
    """The last line printed for a bug: what was raised, and where to report it."""
    message = " ".join(str(exc).split())[:500]
    return (
        f"internal error: {type(exc).__name__}: {message} — this is a bug in audiodata, please report it at "
        f"{ISSUES_URL} with the command and this traceback"
    )


def report_error(exc: BaseException, console: Any) -> int:
    """Print ``exc`` for the user (``console``: a rich Console on stderr) and return the exit code it means."""
    if isinstance(exc, AudiodataError):
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)  # one line, greppable
        return exit_code_of(exc)
    try:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.write(internal_error_line(exc) + "\n")
        sys.stderr.flush()
    except OSError:
        pass
    return EXIT_INTERNAL


__all__ = ["internal_error_line", "report_error"]
