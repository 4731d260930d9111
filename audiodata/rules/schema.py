"""S005: validate each raw record against its dialect's JSON Schema (``schemas/input``).

jsonschema costs ~150 us per record, far too slow for millions of records, so
validity is memoised on the record's *shape*: keys, types, strings verbatim only when
a schema names them (enum/const) and otherwise as empty/non-empty, numbers by class, lists by length class and the
set of their element shapes. Two records with the same shape are equally valid
under these schemas; ``tests/rules/test_schema_rule.py`` checks that the schemas only use
keywords for which that holds. Only records with an unseen or invalid shape reach
the validator, which then locates each problem to the field.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from audiodata.errtext import elide
from audiodata.readers.spec import DEFAULT_COLUMNS, DEFAULT_TAGS, DialectSpec
from audiodata.records import SourceLoc
from audiodata.rules.findings import Finding

#: List lengths are told apart up to this count (schemas use minItems/maxItems <= 2).
LENGTH_CLASSES = 3
MAX_ERRORS = 5
_CACHE_LIMIT = 100_000


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


def _named_strings(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "const" and isinstance(v, str):
                out.add(v)
            elif k == "enum" and isinstance(v, list):
                out.update(x for x in v if isinstance(x, str))
            else:
                _named_strings(v, out)
    elif isinstance(node, list):
        for v in node:
            _named_strings(v, out)
    return out


@lru_cache(maxsize=1)
def named_strings() -> frozenset[str]:
    """Every string value a schema compares against (enum/const): the only ones kept verbatim."""
    global _NAMED
    _NAMED = frozenset(_named_strings(list(documents().values()), set()))
    return _NAMED


def shape(value: Any) -> Any:
    """A hashable abstraction of ``value`` that keeps everything the schemas can test."""
    t = type(value)
    if t is str:
        return value if value in _NAMED else _TEXT if value else _EMPTY
    if t is dict:
        return ("d", tuple([(k, shape(v)) for k, v in value.items()]))
    if t is list:
        return ("l", min(len(value), LENGTH_CLASSES), frozenset(map(shape, value)))
    if isinstance(value, str):  # str subclasses
        return shape(str(value))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        cls = 0 if value < 0 else 1 if value == 0 else 2 if value < 1 else 3
        if isinstance(value, float):  # "type": "integer" accepts 3.0 but not 3.5
            return ("f", cls, value.is_integer())
        return ("i", cls)
    if isinstance(value, dict):
        return shape(dict(value))
    if isinstance(value, list):
        return shape(list(value))
    return ("?", type(value).__name__)


_TEXT, _EMPTY = ("s", True), ("s", False)
_NAMED: frozenset[str] = frozenset()


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
    """Validates raw records of one input spec; keeps the shape memo between records."""

    def __init__(self, spec: DialectSpec) -> None:
        named_strings()  # shape() keeps these verbatim
        self.spec = spec
        renamed = {DEFAULT_COLUMNS[k]: v for k, v in spec.columns.items() if k in DEFAULT_COLUMNS and v != DEFAULT_COLUMNS[k]}
        self.rename = {custom: default for default, custom in renamed.items()}
        self.back = renamed
        tags = {**DEFAULT_TAGS, **(spec.tags or {})}
        known = (("from", "value"), ("role", "content"))
        self.skip = spec.tags is not None and (tags["role_tag"], tags["content_tag"]) not in known
        self.skip |= spec.converter == "pair"  # a v1 YAML's pair rows: read by the v1 dialect, shaped like no schema here
        self.valid: dict[tuple[str, Any], bool] = {}

    def __call__(self, obj: Any, dialect: str, source: SourceLoc) -> list[Finding]:
        validator = validators().get(dialect)
        if self.skip or validator is None or not isinstance(obj, dict):
            return []
        if self.rename:  # a key named like a remapped default column is not read by anyone: drop it
            obj = {self.rename.get(k, k): v for k, v in obj.items() if k not in self.back or k in self.rename}
        key = (dialect, shape(obj))
        if self.valid.get(key):
            return []
        errors = sorted(validator.iter_errors(obj), key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
        if len(self.valid) < _CACHE_LIMIT:
            self.valid[key] = not errors
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
