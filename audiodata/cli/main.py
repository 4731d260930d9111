"""The ``audiodata`` command line: a small root parser over one module per command.

Built-in commands live in :mod:`audiodata.cli.commands`; other packages add theirs through the
``audiodata.commands`` entry-point group (the trainer: ``train``, ``make-tiny-model``), so the base
package never imports them. Only the command being run registers its full parser; the others appear
in ``--help`` by name and one-line help, which keeps ``audiodata --help`` fast.

Exit codes (stable, for CI pipelines):
  0  everything went through
  1  the run finished but some records were rejected (see rejects.jsonl)
  2  usage error: bad options, missing inputs, an output folder that holds something else or is
     held by another run, a damaged converted dataset (named, with `audiodata verify` to run)
  3  a fault of the machine: disk full, read-only or forbidden output, a file where a folder should
     be, an I/O error; one line names the path and the cause (audiodata/faults.py)
  70 an internal error: a bug in audiodata (the traceback, and where to report it; audiodata/cli/exits.py)
  130 interrupted (Ctrl-C), with the exact command that resumes where there is one
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audiodata import __version__
from audiodata.cli.common import EXIT_INTERRUPTED, EXIT_PIPE, Parser, stderr_console

#: Built-in commands, in the order ``--help`` lists them: name -> module (``register``, ``run``, ``HELP``).
BUILTIN = {
    name: f"audiodata.cli.commands.{name}"
    for name in ("convert", "merge", "lint", "dedup", "publish", "verify", "export", "info", "rules")
}
#: The entry-point group other packages register commands in: ``name = "package.module:register"``.
ENTRY_POINT_GROUP = "audiodata.commands"

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "build_parser", "main", "plugin_commands"]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The root parser, with the full parser of the command ``argv`` names (every command's, without ``argv``
    for built-ins: pass ``argv`` to keep start-up light)."""
    p = Parser(prog="audiodata", description="Prepare audio-text corpora for fine-tuning audio language models.")
    p.add_argument("--version", action="version", version=f"audiodata {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    chosen = _command_in(argv) if argv is not None else None
    for name, module_name in BUILTIN.items():
        module = importlib.import_module(module_name)
        if argv is None or chosen == name:
            module.register(sub)
        else:  # listed by name only: its options are not needed to parse this command line
            sub.add_parser(name, help=module.HELP)
    before = (argv or [])[: (argv or []).index(chosen)] if chosen is not None else argv or []
    root_help = bool({"-h", "--help"} & set(before))  # the root's help lists every command
    if argv is None or root_help or (chosen is not None and chosen not in BUILTIN):  # a plugin's command, or a typo
        for name, register in plugin_commands(chosen).items():
            try:
                register(sub)
            except argparse.ArgumentError as exc:  # a plugin clashing with a built-in or another plugin: say so, go on
                print(f"audiodata: the {name!r} command from {ENTRY_POINT_GROUP} could not be added: {exc}", file=sys.stderr)
    return p


def _command_in(argv: list[str]) -> str | None:
    """The command an argument list names: its first word that is not an option (the root takes no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _entry_points() -> list[Any]:
    """The ``audiodata.commands`` entry points: those of the installed distributions, plus (for a source checkout
    whose installed metadata predates them, e.g. an editable install made before they were declared) those its own
    pyproject.toml declares. Installed ones win on a name clash."""
    from importlib.metadata import EntryPoint, entry_points

    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, value in _source_entry_points().items():
        found.setdefault(name, EntryPoint(name, value, ENTRY_POINT_GROUP))
    return list(found.values())


def _source_entry_points() -> dict[str, str]:
    """``[project.entry-points."audiodata.commands"]`` of the pyproject.toml next to this package, when this package
    runs from its source tree (no such file beside an installed wheel)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    if sys.version_info < (3, 11):  # no tomllib: the installed metadata is all there is
        return {}
    else:  # a version check, not a caught ImportError: mypy (run for 3.10) then knows tomllib is not there
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, ValueError):
            return {}
        if project.get("name") != "audiodata":
            return {}
        table = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
        return {str(k): str(v) for k, v in table.items()}


def plugin_commands(chosen: str | None = None) -> dict[str, Callable[[Any], None]]:
    """name -> ``register(subparsers)`` of the plugin commands: only ``chosen`` when it is one, else all of them
    (for ``--help`` and the list of valid commands). A plugin that fails to import is reported on stderr and left
    out; its command then reads as unknown."""
    eps = [ep for ep in _entry_points() if ep.name not in BUILTIN]
    if any(ep.name == chosen for ep in eps):
        eps = [ep for ep in eps if ep.name == chosen]
    out: dict[str, Callable[[Any], None]] = {}
    for ep in eps:
        try:
            out[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not take the built-in commands down with it
            print(f"audiodata: the {ep.name!r} command ({ep.value}) could not be loaded: {exc}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    typed = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(typed).parse_args(typed)
    return run_command(args, typed)


def run_command(args: argparse.Namespace, typed: list[str]) -> int:
    """Run the parsed command. Every exception a command lets out becomes one line and an exit code here, and
    only here: an AudiodataError (its code: 2 for usage and data), Ctrl-C (130, with the command that resumes),
    a closed stdout (141), a fault of the machine (3), anything else a bug (70, with the traceback)."""
    from audiodata.faults import EXIT_FAULT, MachineFault

    console = stderr_console()
    args.argv = typed  # what was typed, for a command that says the exact command to run next
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _interrupted(args, typed, console)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except (MachineFault, OSError) as exc:  # one line, never a traceback: exit 1 would read as "some records rejected"
        again = _resume(args, typed)
        _fault(exc, args.command, None if again is None or again[0] == typed else shlex.join(["audiodata", *again[0]]))
        return EXIT_FAULT
    except Exception as exc:  # an AudiodataError: its one line and exit code (2 for usage); anything else: a bug (70)
        from audiodata.cli.exits import report_error

        return report_error(exc, console)


def _resume(args: argparse.Namespace, typed: list[str]) -> tuple[list[str], str] | None:
    """What the command says resumes it after an interruption: (the argument list, what to tell the user)."""
    resume = getattr(args, "resume_command", None)
    if resume is None:
        return None
    try:  # a hint, computed while an error is already being reported: it must not raise a second one
        return resume(args, typed)
    except Exception:
        return None


def _interrupted(args: argparse.Namespace, typed: list[str], console: Any) -> None:
    again = _resume(args, typed)
    if again is None:
        console.print("[yellow]interrupted[/]")
        return
    argv, note = again
    console.print(f"[yellow]interrupted: {note}:[/]", soft_wrap=True)
    console.print(shlex.join(["audiodata", *argv]), soft_wrap=True, markup=False, highlight=False)


def _fault(exc: BaseException, command: str, resume: str | None = None) -> None:
    from audiodata.faults import fault_line

    try:
        sys.stderr.write(f"audiodata: {fault_line(exc, command, resume)}\n")
        sys.stderr.flush()
    except OSError:
        pass


def _silence_stdout() -> None:
    """After EPIPE, Python would complain again when it flushes stdout at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
