"""Running a benchmark script the way CI's smoke tests do: ``benchmarks/<script> ... --json FILE``, its saved figures
read back. Shared by tests/test_bench_smoke.py and the smoke tests next to the code a benchmark measures
(tests/training/test_grpo.py), so no test module imports another's test file."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, args: list[str], tmp_path: Path, timeout: int = 900) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` with ``--json`` and return what it saved (its stdout in any failure)."""
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["headlines"] and doc["measured_on"]["load_average"], doc
    doc["stdout"] = run.stdout
    return doc


def ratios(doc: dict[str, Any]) -> dict[str, float]:
    """Each headline's ratio against its baseline, by metric name."""
    return {h["metric"]: h["ratio"] for h in doc["headlines"]}


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as module ``name`` (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module
