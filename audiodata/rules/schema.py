"""S005: validate each raw record against its dialect's JSON Schema (``schemas/input``).

jsonschema costs ~150 us per record, far too slow for millions of records, so each schema
is also compiled once (jsonschema-rs, ~1 us per record) and a record the compiled schema
accepts is done. Only records it rejects (or cannot take: a NaN, an int past 64 bits)
reach jsonschema, which decides and locates each problem to the field; so a finding
never depends on the compiled copy, and a record is accepted only if both agree.
``tests/rules/test_schema_rule.py`` checks by property tests that the two agree on
generated records of every dialect, valid and broken.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from audiodata.errtext import elide
from audiodata.readers.spec import DEFAULT_COLUMNS, DEFAULT_TAGS, DialectSpec
from audiodata.records import SourceLoc
from audiodata.rules.findings import Finding

MAX_ERRORS = 5


def schema_dir() -> Path:
    """``schemas/input``, through ``audiodata/_schemas`` (a symlink in the source tree, a copy in wheels)."""
    return Path(__file__).parents[1] / "_schemas" / "input"


@lru_cache(maxsize=1)
def documents() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(schema_dir().glob("*.json"))}


@lru_cache(maxsize=1)
def validators() -> dict[str, Draft202012Validator]:
    docs = documents()
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs.values())
    return {name: Draft202012Validator(doc, registry=registry) for name, doc in docs.items()}


@lru_cache(maxsize=1)
def compiled() -> dict[str, Any]:
    """The same documents compiled once by jsonschema-rs (draft 2020-12, ``$ref`` across documents
    through one registry): a fast yes/no in front of :func:`validators`."""
    docs = documents()
    registry = jsonschema_rs.Registry([(d["$id"], d) for d in docs.values()])
    return {name: jsonschema_rs.validator_for(doc, registry=registry) for name, doc in docs.items()}


def fast_valid(name: str, obj: Any) -> bool:
    """Whether the compiled schema ``name`` accepts ``obj``; False for a value it cannot take (then
    jsonschema decides)."""
    try:
        return bool(compiled()[name].is_valid(obj))
    except Exception:  # a value jsonschema-rs cannot convert (a str subclass, an int past 64 bits, a NaN key)
        return False


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _message(err: ValidationError) -> str:
    if err.context:  # anyOf/oneOf: the most specific branch error says more
        inner = best_match(err.context)
        if inner is not None:
            err = inner
    return elide(err.message, 200)  # a long value in the middle goes, the reason at the end stays


class SchemaCheck:
    """Validates raw records of one input spec (the renamed columns of its dataset_info.json entry)."""

    def __init__(self, spec: DialectSpec) -> None:
        self.spec = spec
        renamed = {DEFAULT_COLUMNS[k]: v for k, v in spec.columns.items() if k in DEFAULT_COLUMNS and v != DEFAULT_COLUMNS[k]}
        self.rename = {custom: default for default, custom in renamed.items()}
        self.back = renamed
        tags = {**DEFAULT_TAGS, **(spec.tags or {})}
        known = (("from", "value"), ("role", "content"))
        self.skip = spec.tags is not None and (tags["role_tag"], tags["content_tag"]) not in known
        self.skip |= spec.converter == "pair"  # a v1 YAML's pair rows: read by the v1 dialect, shaped like no schema here

    def __call__(self, obj: Any, dialect: str, source: SourceLoc) -> list[Finding]:
        validator = validators().get(dialect)
        if self.skip or validator is None or not isinstance(obj, dict):
            return []
        if self.rename:  # a key named like a remapped default column is not read by anyone: drop it
            obj = {self.rename.get(k, k): v for k, v in obj.items() if k not in self.back or k in self.rename}
        if fast_valid(dialect, obj):  # accepted: jsonschema would find nothing either (see the module docstring)
            return []
        errors = sorted(validator.iter_errors(obj), key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
        found: list[Finding] = []
        seen: set[str] = set()
        for err in errors:
            parts = list(err.absolute_path)
            if parts and isinstance(parts[0], str):
                parts[0] = self.back.get(parts[0], parts[0])
            fld = _path(parts)
            if fld in seen:
                continue
            seen.add(fld)
            found.append(Finding("S005", f"{dialect} schema: {_message(err)}", fld, source))
            if len(found) >= MAX_ERRORS:
                break
        return found
