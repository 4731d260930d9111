"""One name per concept: old spellings keep working for one release, with a note on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def deprecation_note(old: str, new: str) -> None:
    """One line on stderr: the old spelling still works in this release and goes in the next."""
    sys.stderr.write(f"audiodata: warning: {old} is deprecated, use {new} (the old spelling goes in the next release)\n")


class _Renamed(argparse.Action):
    """An old spelling of ``target``: parses exactly like it, says it is deprecated, hidden from ``--help``."""

    def __init__(self, option_strings: list[str], dest: str, target: argparse.Action, **_: Any) -> None:
        super().__init__(
            option_strings,
            target.dest,
            nargs=target.nargs,
            const=target.const,
            default=argparse.SUPPRESS,  # the target's default stands
            type=target.type,  # type: ignore[arg-type]  # typeshed: Action.type may be a registered name (str), __init__ omits it
            choices=target.choices,
            help=argparse.SUPPRESS,
            metavar=target.metavar,
        )
        self.target = target

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        new = self.target.option_strings[-1]
        deprecation_note(str(option), new)
        self.target(parser, namespace, values, new)


def renamed(parser: argparse.ArgumentParser, new: str, *old: str) -> None:
    """Accept ``old`` spellings of the option ``new`` (already added), each with a deprecation note."""
    target = next(a for a in parser._actions if new in a.option_strings)
    parser.add_argument(*old, action=_Renamed, target=target)


def output_or_positional(args: argparse.Namespace, positional: str, flag: str = "-o/--output") -> str:
    """The output path from ``-o/--output`` (``args.output_path``), or from the old positional form, which still
    works with a deprecation note. Neither, or both, is a usage error (exit 2)."""
    from audiodata.pipeline.options import OptionsError

    old = getattr(args, positional)
    if old is not None and args.output_path is not None:
        raise OptionsError(f"the output is given twice ({old} and {flag} {args.output_path}); give only {flag}")
    if old is not None:
        deprecation_note(f"the output as a positional argument ({old})", f"{flag} {old}")
        return str(old)
    if args.output_path is None:
        raise OptionsError(f"give the output folder: {flag} DIR")
    return str(args.output_path)
