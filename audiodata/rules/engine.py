"""The one rule engine: runs the enabled record rules and locates what they find.

convert rejects a record when this returns an error; lint reports the same list.
"""

from __future__ import annotations

from collections.abc import Iterable

from audiodata.records import Record
from audiodata.rules import record_rules  # noqa: F401  (registers the checks)
from audiodata.rules.findings import Finding
from audiodata.rules.registry import REGISTRY


def check_record(record: Record, enabled: Iterable[str] | None = None) -> list[Finding]:
    codes = set(REGISTRY) if enabled is None else set(enabled)
    found: list[Finding] = []
    for code, rule in REGISTRY.items():
        if rule.check is None or code not in codes:
            continue
        found.extend(f.located(record.source) for f in rule.check(record))
    return found


def keep_enabled(findings: Iterable[Finding], enabled: Iterable[str] | None) -> list[Finding]:
    if enabled is None:
        return list(findings)
    codes = set(enabled)
    return [f for f in findings if f.code in codes]


def has_error(findings: Iterable[Finding]) -> bool:
    return any(f.is_error for f in findings)
