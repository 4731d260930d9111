"""The lint reports: JSON (a stable interface with its schema), HTML, terminal, and the rules docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

from audiodata.cli.main import main
from audiodata.pipeline.lint import lint
from audiodata.rules.docs import rules_markdown
from audiodata.rules.registry import REGISTRY
from tests.conftest import REPO, SAMPLE

SCHEMA = json.loads((REPO / "schemas" / "lint_report.schema.json").read_text())


def test_report_matches_its_schema_and_summary_adds_up():
    report = lint([str(SAMPLE)], num_workers=1, model_family="qwen2-audio").to_dict()
    Draft202012Validator(SCHEMA).validate(report)
    s, found = report["summary"], report["findings"]
    assert s["errors"] == sum(f["severity"] == "error" for f in found)
    assert s["warnings"] == sum(f["severity"] == "warning" for f in found)
    assert sum(s["by_code"].values()) == len(found)
    assert s["records_with_errors"] == len({(f["source"], f["index"]) for f in found if f["severity"] == "error"})
    assert s["audio_checked"] and s["clips"] > 0 and s["audio_hours"] > 0
    assert s["model_family"] == "qwen2-audio" and s["cutoff_len"] == 2048


def test_schema_rejects_a_report_missing_a_stable_field():
    report = lint([str(SAMPLE)], num_workers=1, audio=False).to_dict()
    del report["findings"][0]["line"]
    assert not Draft202012Validator(SCHEMA).is_valid(report)


def test_report_json_to_stdout_and_html(tmp_path: Path, capsys):
    html = tmp_path / "r.html"
    code = main(["lint", str(SAMPLE), "--report-json", "-", "--report-html", str(html), "--no-progress"])
    assert code == 1  # sample_data plants errors
    data = json.loads(capsys.readouterr().out)  # stdout holds only the JSON; the table goes to stderr
    Draft202012Validator(SCHEMA).validate(data)
    page = html.read_text()
    assert page.count("<svg") >= 2  # duration and sample-rate histograms
    flagged_with_audio = {(f["source"], f["index"]) for f in data["findings"] if f["code"] == "A009"}
    assert page.count("<audio controls") >= len(flagged_with_audio) > 0
    assert "data:audio/mpeg;base64," in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", page)  # self-contained: nothing fetched


def test_text_only_report_says_audio_was_not_checked(tmp_path: Path):
    report = lint([str(SAMPLE)], audio=False, num_workers=1).to_dict()
    assert report["summary"]["audio_checked"] is False
    assert not any(f["code"][0] in "AB" for f in report["findings"])


def test_rules_docs_are_generated_from_the_registry():
    doc = (REPO / "docs" / "rules.md").read_text()
    assert doc.strip() == rules_markdown().strip(), "docs/rules.md is stale: run `audiodata rules --markdown > docs/rules.md`"
    for code, rule in REGISTRY.items():
        assert f"`{code}` | {rule.name} | {rule.severity.value}" in doc


def test_rules_command_lists_every_code(capsys):
    assert main(["rules", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["code"] for r in rows} == set(REGISTRY)
    assert {r["code"] for r in rows if r["fixable"]} == {"M001", "S008"}
    assert all(r["what"] and r["why"] and r["fix"] and r["example"] for r in rows)


def test_every_check_the_tool_makes_is_documented():
    """Lint's, export's (X) and verify's (V) codes, each with what / why / fix / example, as ruff documents a rule."""
    assert {c[0] for c in REGISTRY} >= {"F", "S", "M", "A", "X", "V"}
    for code, rule in REGISTRY.items():
        assert rule.doc is not None, code
        assert all(len(text) > 10 for text in (rule.doc.what, rule.doc.why, rule.doc.fix, rule.doc.example)), code
    doc = rules_markdown()
    for code, rule in REGISTRY.items():
        page = doc[doc.index(f"### `{code}` {rule.name}") :]
        page = page[: page.index("\n### ", 1)] if "\n### " in page[1:] else page
        assert all(f"**{part}.**" in page for part in ("What it checks", "Why it matters", "How to fix", "Example")), code
    # markers read as text, not as HTML tags a Markdown renderer would drop
    assert "The number of \\<audio> markers" in doc
    prose = [part for line in doc.splitlines() if not line.startswith("<!--") for part in line.split("`")[::2]]
    assert not [p for p in prose if re.search(r"(?<!\\)<", p)]


def test_rules_command_explains_a_rule(capsys):
    assert main(["rules", "m001", "X2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "M001 audio-marker-count" in out and "X201 swift-response-role" in out and "X202 swift-tool-prompt" in out
    assert "The number of <audio> markers must equal" in out and "How to fix." in out and "Example." in out
    assert main(["rules", "Q9"]) == 2


def test_inputs_not_read_are_reported_in_the_schema(tmp_path: Path, capsys, monkeypatch):
    """F006/F007 are about a whole input, not a record: index -1, the dataset entry as the field; the HTML and the
    terminal show them without a record to point at."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub entry is read through the Hub: offline and not cached here
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    lf = tmp_path / "lf"
    lf.mkdir()
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    (lf / "chat.json").write_text(json.dumps([{"conversations": turns}]))
    (lf / "extra.json").write_text("[]")
    info = {"chat": {"file_name": "chat.json", "formatting": "sharegpt"}, "hub": {"hf_hub_url": "org/name"}}
    (lf / "dataset_info.json").write_text(json.dumps(info))
    html = tmp_path / "r.html"
    assert main(["lint", str(lf), "--no-audio", "--no-progress", "--report-json", "-", "--report-html", str(html)]) == 0
    data = json.loads(capsys.readouterr().out)
    Draft202012Validator(SCHEMA).validate(data)
    got = [(f["code"], f["index"], f["field"], Path(f["source"]).name) for f in data["findings"]]
    assert got == [("F006", -1, "hub", "dataset_info.json"), ("F007", -1, "", "extra.json")]
    assert data["summary"]["records"] == 1 and data["summary"]["warnings"] == 2 and data["summary"]["errors"] == 0
    assert "hf://org/name: not in the local Hugging Face cache" in html.read_text()
