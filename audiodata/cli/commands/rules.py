"""``audiodata rules``: every rule code with its severity and summary (``--markdown``: docs/rules.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from audiodata.cli.common import EXIT_OK, stdout_console

NAME = "rules"
HELP = "list the rule codes"


def register(subparsers: Any) -> None:
    r = subparsers.add_parser(NAME, help=HELP)
    r.add_argument("--json", action="store_true", help="print the rules as JSON")
    r.add_argument("--markdown", action="store_true", help="print the rules documentation (docs/rules.md)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        from audiodata.rules.docs import rules_markdown

        print(rules_markdown())
        return EXIT_OK
    from audiodata.rules.registry import FAMILIES, REGISTRY

    rows = [
        {
            "code": r.code,
            "name": r.name,
            "severity": r.severity.value,
            "family": FAMILIES[r.code[0]],
            "stage": r.stage,
            "fixable": r.fixable,
            "summary": r.summary,
        }
        for r in sorted(REGISTRY.values(), key=lambda r: r.code)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.table import Table

    t = Table(title="audiodata rules")
    for col in ("code", "name", "severity", "summary"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["code"], r["name"], r["severity"], r["summary"])
    stdout_console().print(t)
    return EXIT_OK
