"""``lint --output-format full|concise|json|github|sarif``: each form holds every finding, located, and reads
where it is meant to be read (a 60-column terminal, a CI log, GitHub annotations, a SARIF consumer)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from audiodata.cli.main import main
from audiodata.pipeline.lint import lint
from audiodata.report.formats import concise, github, render, sarif
from audiodata.report.terminal import print_lint
from audiodata.rules.registry import REGISTRY
from tests.conftest import write_audio, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["alpha_key", "bravo_key", "charlie_key", "delta_key", "echo_key", "foxtrot_key", "golf_key", "hotel_key"]


def sft(user: str = "<audio>What is said?", answer: str = "Hello there.", **extra: Any) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": answer}], "audios": ["a.wav"], **extra}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    write_audio(root / "a.wav", 1.0)
    records: list[Any] = [
        sft(),
        sft(user="<audio><audio>Compare."),  # M001 error, field "conversations"
        sft(system="Listen to <audio> carefully"),  # M003 warning
        dict.fromkeys(KEYS, 1),  # F003: a message longer than the 90 characters the table used to cut it at
        sft(answer="caf\ufffd"),  # T001, at a field with brackets: conversations[1].value
    ]
    write_jsonl(root / "in, with: odd chars.jsonl", records)
    (root / "broken.jsonl.gz").write_bytes(b"\x1f\x8bnot really gzip")  # F004: about the whole file
    return root


@pytest.fixture(scope="module")
def report(corpus: Path) -> dict[str, Any]:
    data = lint([str(corpus)], num_workers=1, audio=False).to_dict()
    codes = {f["code"] for f in data["findings"]}
    assert {"M001", "M003", "F003", "T001", "F004"} <= codes, codes
    return data


def long_message(report: dict[str, Any]) -> str:
    (msg,) = [f["message"] for f in report["findings"] if f["code"] == "F003"]
    assert len(msg) > 90 and all(k in msg for k in KEYS)
    return msg


# -- concise -------------------------------------------------------------------------------------------------

CONCISE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]\d{3}) (?P<message>\S.*)$")


def test_concise_is_one_line_per_finding(report: dict[str, Any]) -> None:
    lines = concise(report).splitlines()
    *found, totals = lines
    assert len(found) == len(report["findings"])
    for line, f in zip(found, report["findings"], strict=True):
        m = CONCISE.match(line)
        assert m, line
        assert (m["file"], m["code"], m["col"]) == (f["source"], f["code"], "1")
        assert int(m["line"]) == (f["line"] or 1) and f["message"] in m["message"]
        if f["field"]:
            assert m["message"].startswith(f"{f['field']}: ")
    s = report["summary"]
    assert totals == f"{s['errors']} errors, {s['warnings']} warnings in {s['records']} records"


# -- github --------------------------------------------------------------------------------------------------

GITHUB = re.compile(
    r"^::(?P<kind>error|warning|notice) file=(?P<file>[^,]*),line=(?P<line>\d+),col=1,title=(?P<title>[^:]*)::(?P<msg>.+)$"
)


def unescape(text: str) -> str:
    return text.replace("%2C", ",").replace("%3A", ":").replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def test_github_annotations(report: dict[str, Any]) -> None:
    lines = github(report).splitlines()
    assert len(lines) == len(report["findings"])
    for line, f in zip(lines, report["findings"], strict=True):
        m = GITHUB.match(line)
        assert m, line
        assert m["kind"] == {"error": "error", "warning": "warning", "info": "notice"}[f["severity"]]
        assert unescape(m["file"]) == f["source"] and int(m["line"]) == (f["line"] or 1)
        assert unescape(m["title"]) == f"{f['code']} {REGISTRY[f['code']].name}"
        text, fix = unescape(m["msg"]).split("\nfix: ")
        assert f["message"] in text and fix == REGISTRY[f["code"]].hint
    # the property separators in the file name are escaped, so the annotation lands on that file
    assert "in%2C with%3A odd chars.jsonl,line=" in github(report)


# -- sarif ---------------------------------------------------------------------------------------------------

# SARIF 2.1.0's required structure (OASIS sarif-schema-2.1.0.json, written out by hand: the schema cannot be
# fetched at test time and no installed package ships it). additionalProperties is false where the standard
# says so, so a misspelt property fails here as it would in GitHub code scanning.
MESSAGE = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}}
LEVEL = {"enum": ["none", "note", "warning", "error"]}
SARIF_2_1_0 = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "id": {"type": "string"},
                                                "name": {"type": "string"},
                                                "shortDescription": MESSAGE,
                                                "fullDescription": MESSAGE,
                                                "help": MESSAGE,
                                                "helpUri": {"type": "string", "format": "uri"},
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {"level": LEVEL},
                                                },
                                                "properties": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "additionalProperties": False,
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": LEVEL,
                                "message": MESSAGE,
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation"],
                                                "additionalProperties": False,
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "required": ["uri"],
                                                        "properties": {"uri": {"type": "string", "format": "uri-reference"}},
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "additionalProperties": False,
                                                        "properties": {
                                                            "startLine": {"type": "integer", "minimum": 1},
                                                            "startColumn": {"type": "integer", "minimum": 1},
                                                        },
                                                    },
                                                },
                                            },
                                            "logicalLocations": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "additionalProperties": False,
                                                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_sarif_is_valid_sarif_2_1_0(report: dict[str, Any]) -> None:
    log = json.loads(render(report, "sarif"))
    jsonschema.validate(log, SARIF_2_1_0, format_checker=jsonschema.FormatChecker())
    (run,) = log["runs"]
    rules, results = run["tool"]["driver"]["rules"], run["results"]
    assert [r["id"] for r in rules] == sorted({f["code"] for f in report["findings"]})
    assert len(results) == len(report["findings"])
    for result, f in zip(results, report["findings"], strict=True):
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"] == f["code"]
        assert result["level"] == {"error": "error", "warning": "warning", "info": "note"}[f["severity"]]
        assert rule["defaultConfiguration"]["level"] == result["level"]
        (loc,) = result["locations"]
        uri = loc["physicalLocation"]["artifactLocation"]["uri"]
        assert " " not in uri and uri.replace("%20", " ").replace("%2C", ",") == f["source"]
        assert ("region" in loc["physicalLocation"]) == bool(f["line"])  # none for a finding about a whole file
        if f["line"]:
            assert loc["physicalLocation"]["region"]["startLine"] == f["line"]
    assert all(r["help"]["text"].startswith(REGISTRY[r["id"]].hint) for r in rules)


def test_sarif_schema_check_can_fail(report: dict[str, Any]) -> None:
    """The hand-written schema rejects what code scanning rejects (so the test above means something)."""
    log = sarif(report)
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"] = {"startLine": 0}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SARIF_2_1_0)
    log = sarif(report)
    log["runs"][0]["results"][0]["severity"] = "error"  # SARIF calls it level
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SARIF_2_1_0)


# -- full: the terminal report --------------------------------------------------------------------------------


def full(report: dict[str, Any], width: int, max_examples: int = 3) -> str:
    buf = io.StringIO()
    print_lint(report, Console(file=buf, width=width, force_terminal=False, color_system=None), max_examples)
    return buf.getvalue()


def test_full_report_reads_at_60_columns(report: dict[str, Any]) -> None:
    text = full(report, 60)
    assert all(len(line) <= 60 for line in text.splitlines()), max(text.splitlines(), key=len)
    words = set(text.split())
    for f in report["findings"]:  # every message whole: no word cut where a line ends
        assert set(f["message"].split()) <= words, f["message"]
        hint = REGISTRY[f["code"]].hint
        assert set(hint.split()) <= words, hint  # and how to fix it
    assert "fix:" in text and "[conversations[1].value]" in text  # brackets print as text, not as rich markup
    assert long_message(report).split()[-1] in words  # past the 90 characters the table used to cut at


def test_full_report_wraps_a_long_message_at_word_boundaries(report: dict[str, Any]) -> None:
    msg = long_message(report)
    text = full(report, 60)
    assert len(msg) > 60 and msg not in text  # it does not fit on one line ...
    assert " ".join(msg.split()) in " ".join(text.split())  # ... and reads whole across its wrapped lines


def test_full_report_shortens_a_huge_message_at_a_word(report: dict[str, Any]) -> None:
    huge = dict(report, findings=[dict(report["findings"][0], message="word " * 200 + "tail")])
    text = full(huge, 60)
    assert "tail" not in text and "word word ..." in " ".join(text.split())
    assert all(tok == "word" for tok in text.split() if tok.startswith("wor") and tok != "would")  # cut between words


def test_full_report_names_the_rest(report: dict[str, Any]) -> None:
    data = dict(report, summary=dict(report["summary"], by_code={**report["summary"]["by_code"], "M001": 5}))
    assert "... 4 more" in full(data, 60, max_examples=1)


# -- the command line ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["concise", "json", "github", "sarif"])
def test_machine_formats_go_to_stdout_alone(fmt: str, corpus: Path, report: dict[str, Any], capsys, tmp_path: Path) -> None:
    report_file = tmp_path / "r.json"
    argv = ["lint", str(corpus), "--no-audio", "--no-progress", "--output-format", fmt, "--report-json", str(report_file)]
    assert main(argv) == 1  # errors: exit 1, whatever the form
    out = capsys.readouterr().out
    assert out == render(json.loads(report_file.read_text()), fmt)
    if fmt == "json":  # today's --report-json content, on stdout
        assert json.loads(out) == json.loads(report_file.read_text())


def test_report_json_to_stdout_and_a_machine_format_is_a_usage_error(corpus: Path, capsys) -> None:
    assert main(["lint", str(corpus), "--no-audio", "--no-progress", "--report-json", "-", "--output-format", "sarif"]) == 2
    assert "both write to stdout" in capsys.readouterr().err


def test_non_tty_logs_hold_no_control_codes(corpus: Path) -> None:
    """A CI log at 60 columns: the progress bar, the table and the findings, without escape codes or carriage returns."""
    env = {**os.environ, "COLUMNS": "60", "TERM": "xterm-256color"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "audiodata", "lint", str(corpus), "--no-audio"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    text = done.stdout + done.stderr
    assert "\x1b" not in text and "\r" not in text
    assert all(len(line) <= 60 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "fix:" in text and "M001" in text


def test_cli_offers_every_output_format() -> None:
    """The lint command lists its formats without importing the renderers (start-up); they must stay equal."""
    import argparse

    from audiodata.cli.commands import lint as lint_command
    from audiodata.report.formats import OUTPUT_FORMATS

    sub = argparse.ArgumentParser().add_subparsers()
    lint_command.register(sub)
    (action,) = [a for a in sub.choices["lint"]._actions if a.dest == "output_format"]
    assert tuple(action.choices) == OUTPUT_FORMATS
