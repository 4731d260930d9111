"""Lint findings in the forms other tools read, as ruff's ``--output-format`` offers them.

``concise``: one line per finding, ``file:line:col: CODE message`` (editors and grep); ``github``:
workflow commands that GitHub Actions shows as annotations on the pull request; ``sarif``: SARIF
2.1.0 for code scanning (the rules with their docs, the results with their locations); ``json``:
the JSON report (``schemas/lint_report.schema.json``). ``full`` is the terminal report
(:mod:`audiodata.report.terminal`).

Findings locate to a record (its line) and a field, not to a column: the column is always 1, and the
field leads the message. A finding about a whole input (``index`` -1: unreadable, not UTF-8) sits on
line 1; a record whose line is unknown names its index in the message.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from audiodata.rules.registry import Rule

OUTPUT_FORMATS = ("full", "concise", "json", "github", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _rules() -> dict[str, Rule]:
    """The registry, every rule registered (imported on use: the command line reads OUTPUT_FORMATS at start)."""
    from audiodata.rules import engine  # noqa: F401  (registers every rule)
    from audiodata.rules.registry import REGISTRY

    return REGISTRY


def _line(f: dict[str, Any]) -> int:
    return f["line"] if f.get("line") else 1


def finding_text(f: dict[str, Any]) -> str:
    """The message with its field in front, and where the record is when its line is unknown: its member inside a
    tar or dataset (``utt-0003.json``, ``row 12``), else its index."""
    text = f"{f['field']}: {f['message']}" if f.get("field") else f["message"]
    if not f.get("line") and f.get("member"):
        text += f" ({f['member']})"
    elif not f.get("line") and (f.get("index") or 0) >= 0 and f.get("index") is not None:
        text += f" (record {f['index']})"
    return " ".join(text.split())  # one line, whatever the message holds


def concise(data: dict[str, Any]) -> str:
    """``file:line:col: CODE message``, one finding a line, then the totals (as ruff ends its output)."""
    lines = [f"{f['source'] or '-'}:{_line(f)}:1: {f['code']} {finding_text(f)}" for f in data["findings"]]
    s = data["summary"]
    lines.append(f"{s['errors']} errors, {s['warnings']} warnings in {s['records']} records")
    return "\n".join(lines) + "\n"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def github(data: dict[str, Any]) -> str:
    """GitHub Actions workflow commands: ``::error file=F,line=L,col=1,title=CODE::message`` (warnings and
    infos as ``::warning`` / ``::notice``), with the fix hint after the message."""
    kinds = {"error": "error", "warning": "warning", "info": "notice"}
    registry = _rules()
    lines = []
    for f in data["findings"]:
        rule = registry[f["code"]]
        title = _gh_property(f"{f['code']} {rule.name}")
        where = f"file={_gh_property(f['source'] or '')},line={_line(f)},col=1," if f["source"] else ""
        message = _gh_data(f"{finding_text(f)}\nfix: {rule.hint}")
        lines.append(f"::{kinds[f['severity']]} {where}title={title}::{message}")
    return "".join(line + "\n" for line in lines)


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/:._-~")


def sarif(data: dict[str, Any]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one run, every rule that fired (id, name, docs, default level) and every finding
    as a result located to its file and line, with the record and field as a logical location."""
    from audiodata import __version__

    registry = _rules()
    codes = sorted({f["code"] for f in data["findings"]})
    index = {code: i for i, code in enumerate(codes)}
    rules = []
    for code in codes:
        r = registry[code]
        rule: dict[str, Any] = {
            "id": code,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "help": {"text": f"{r.hint} (docs: `audiodata rules`, docs/rules.md)"},
            "defaultConfiguration": {"level": SARIF_LEVEL[r.severity.value]},
            "properties": {"tags": [r.family]},
        }
        if r.doc is not None:
            rule["fullDescription"] = {"text": f"{r.doc.what} {r.doc.why}"}
        rules.append(rule)
    results = []
    for f in data["findings"]:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(f["source"] or "")}}
        if f.get("line"):
            physical["region"] = {"startLine": f["line"], "startColumn": 1}
        location: dict[str, Any] = {"physicalLocation": physical}
        if f.get("index") is not None and f["index"] >= 0:
            name = f"record {f['index']}" + (f" {f['field']}" if f.get("field") else "")
            location["logicalLocations"] = [{"name": name, "kind": "element"}]
        results.append(
            {
                "ruleId": f["code"],
                "ruleIndex": index[f["code"]],
                "level": SARIF_LEVEL[f["severity"]],
                "message": {"text": finding_text(f)},
                "locations": [location],
            }
        )
    driver = {"name": "audiodata", "version": __version__, "rules": rules}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": results}]}


def render(data: dict[str, Any], output_format: str) -> str:
    """The machine-readable forms as text for stdout (``full`` is printed by :mod:`audiodata.report.terminal`)."""
    if output_format == "concise":
        return concise(data)
    if output_format == "github":
        return github(data)
    if output_format == "sarif":
        return json.dumps(sarif(data), indent=2, ensure_ascii=False) + "\n"
    if output_format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
