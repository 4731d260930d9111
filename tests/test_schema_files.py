"""Every JSON Schema we ship is a valid schema without repeated keys (a JSON parser silently keeps the last copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import REPO

SCHEMAS = sorted((REPO / "schemas").rglob("*.json"))


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"repeated keys {repeated}")
    return dict(pairs)


def test_schemas_are_found():
    assert len(SCHEMAS) >= 3


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: str(p.relative_to(REPO)))
def test_schema_has_no_repeated_keys_and_is_valid(path: Path):
    schema = json.loads(path.read_text(), object_pairs_hook=_no_repeats)
    Draft202012Validator.check_schema(schema)


def test_repeated_keys_are_caught():
    with pytest.raises(ValueError, match="excluded"):
        json.loads('{"excluded": 1, "excluded": 2}', object_pairs_hook=_no_repeats)
