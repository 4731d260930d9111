"""What every command module shares: exit codes, the parser class, the consoles, the error line, JSON output.

Only the standard library is imported here at module level (see :mod:`audiodata.cli.commands`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_PIPE = 141  # stdout closed early (| head): 128 + SIGPIPE


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error already; keep the message short (usage line + one error line).

    ``late_positionals``: optional positionals (``nargs="?"``) that may also come after options, as the old
    positional form of an output did (``export DATASET --to X DIR``): argparse alone fills such a positional with
    its default when an option comes first and then calls the word after the options unrecognized.
    """

    late_positionals: tuple[str, ...] = ()

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        ns, extras = super().parse_known_args(args, namespace)
        for dest in self.late_positionals:
            if getattr(ns, dest, None) is None and extras and not extras[0].startswith("-"):
                setattr(ns, dest, extras.pop(0))
        return ns, extras


def error(console: Console, message: object) -> None:
    """One line on stderr, greppable, never rich markup from the message itself."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    from rich.console import Console

    return Console()


def write_json_report(data: dict[str, Any], target: str | None) -> None:
    """``--report-json FILE``, or ``-`` for stdout (the tables then go to stderr)."""
    if not target:
        return
    from audiodata.faults import write_atomic

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        write_atomic(target, text)
