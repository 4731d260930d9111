"""Every required dependency earns its place: something in the base package imports it (issue 13)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
IMPORT_NAME = {"pyyaml": "yaml"}  # distributions whose import name differs


def _imported_top_level(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_required_dependency_is_imported_by_the_base_package() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    dists = [re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in deps]
    imported = _imported_top_level(REPO / "audiodata")
    unused = [d for d in dists if IMPORT_NAME.get(d, d.replace("-", "_")) not in imported]
    assert not unused, f"required but imported nowhere in audiodata/: {unused} (move to an extra or drop)"
