"""The README's performance table is generated from the committed benchmark results (issue 15): never typed
by hand, every figure with its same-run baseline, ratio and the machine's load."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench_run import load_script

REPO = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    return load_script("readme_table")


def test_the_readme_table_is_what_the_committed_results_give() -> None:
    rt = _script()
    docs = rt.load_results()
    assert docs, "no benchmark results committed in benchmarks/results/"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert rt.replace_section(readme, rt.render(docs)) == readme, "run python benchmarks/readme_table.py"


def test_every_committed_result_names_its_machine_command_and_ratios() -> None:
    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        m = doc["measured_on"]
        assert m["cpu"] and m["cores"] >= 1 and len(m["load_average"]) == 3 and m["date"].endswith("UTC"), path.name
        assert doc["command"].startswith("python benchmarks/") and "--json" not in doc["command"], path.name
        for h in doc["headlines"]:
            assert {"metric", "value", "unit", "baseline", "ratio"} <= set(h) and isinstance(h["ratio"], int | float), path.name


def test_a_changed_result_changes_the_table(tmp_path: Path) -> None:
    rt = _script()
    doc = {
        "bench": "demo", "command": "python benchmarks/demo.py", "headlines": [
            {"metric": "work a|b", "value": 12345.6, "unit": "rec/s", "baseline": "floor", "ratio": 0.5, "note": ""},
        ],
        "measured_on": {"cpu": "Some CPU", "cores": 2, "load_average": [3.5, 2.0, 1.0], "date": "2026-01-01 00:00 UTC"},
    }  # fmt: skip
    (tmp_path / "demo.json").write_text(json.dumps(doc))
    (tmp_path / "notes.json").write_text(json.dumps({"no": "headlines"}))  # not a result: left out
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{rt.BEGIN}\nstale\n{rt.END}\nafter\n")
    assert rt.main(["--results", str(tmp_path), "--readme", str(readme), "--check"]) == 1
    assert rt.main(["--results", str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and text.startswith("# x\n\nbefore\n") and text.endswith(f"{rt.END}\nafter\n")
    assert "| demo | work a\\|b | 12,346 rec/s | floor | **0.5** |  | 3.50 |" in text
    assert "`demo.json`: `python benchmarks/demo.py` on Some CPU, 2 cores, load 3.50 at start, 2026-01-01 00:00 UTC" in text
    assert rt.main(["--results", str(tmp_path), "--readme", str(readme), "--check"]) == 0
    doc["headlines"][0]["ratio"] = 0.25
    (tmp_path / "demo.json").write_text(json.dumps(doc))
    assert rt.main(["--results", str(tmp_path), "--readme", str(readme), "--check"]) == 1


def test_the_markers_must_be_there_once(tmp_path: Path) -> None:
    rt = _script()
    with pytest.raises(SystemExit):
        rt.replace_section("no markers here\n", "body\n")
    with pytest.raises(SystemExit):
        rt.replace_section(f"{rt.END}\n{rt.BEGIN}\n", "body\n")
