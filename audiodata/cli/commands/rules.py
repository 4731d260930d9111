"""``audiodata rules``: every check the tool makes, by code; ``rules CODE`` explains some (what, why, how to fix,
an example); ``--markdown`` prints docs/rules.md."""

from __future__ import annotations

import argparse
import json
from typing import Any

from audiodata.cli.common import EXIT_OK, stdout_console

NAME = "rules"
HELP = "list the rule codes, or explain some (what, why, how to fix, an example)"


def register(subparsers: Any) -> None:
    r = subparsers.add_parser(NAME, help=HELP)
    r.add_argument("codes", nargs="*", metavar="CODE", help="rule codes or prefixes to explain (e.g. M001, X3)")
    r.add_argument("--json", action="store_true", help="print the rules as JSON")
    r.add_argument("--markdown", action="store_true", help="print the rules documentation (docs/rules.md)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from audiodata.rules.docs import rule_dict, rule_pages, rules_markdown

    if args.markdown:
        print(rules_markdown())
        return EXIT_OK
    if args.codes:
        page = rule_pages(args.codes)
        if not page:
            from audiodata.pipeline.options import OptionsError

            raise OptionsError(f"no rule code starts with {', '.join(args.codes)}; `audiodata rules` lists them")
        from rich.markdown import Markdown

        stdout_console().print(Markdown(page))
        return EXIT_OK
    from audiodata.rules.registry import REGISTRY

    rows = [rule_dict(r) for r in sorted(REGISTRY.values(), key=lambda r: r.code)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.table import Table

    t = Table(title="audiodata rules (`audiodata rules CODE` explains one: what, why, how to fix, an example)")
    for col in ("code", "name", "severity", "summary"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["code"]), str(r["name"]), str(r["severity"]), str(r["summary"]))
    stdout_console().print(t)
    return EXIT_OK
