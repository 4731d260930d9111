"""``lint --fix``: the safe, unambiguous repairs, applied to a copy of the raw record.

Each fixer edits the raw JSON object at the field a finding names, so the repaired
copy keeps the input's dialect and everything the fixer did not touch. A repair is
kept only if re-parsing the edited record shows the finding gone and no new error.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from audiodata.records import AUDIO_MARKER, Record
from audiodata.rules.findings import Finding
from audiodata.rules.record_rules import standard_role

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(fld: str) -> list[str | int]:
    """``conversations[2].value`` -> ``["conversations", 2, "value"]``."""
    return [name if name else int(index) for name, index in _STEP.findall(fld)]


def get_at(obj: Any, path: list[str | int]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return None
        elif not isinstance(obj, dict) or step not in obj:
            return None
        obj = obj[step]
    return obj


def set_at(obj: Any, path: list[str | int], value: Any) -> bool:
    parent = get_at(obj, path[:-1])
    last = path[-1]
    if isinstance(last, int) and isinstance(parent, list) and last < len(parent):
        parent[last] = value
        return True
    if isinstance(last, str) and isinstance(parent, dict) and last in parent:
        parent[last] = value
        return True
    return False


Fixer = Callable[[dict[str, Any], Record, list[Finding]], list[str]]


def fix_missing_marker(obj: dict[str, Any], rec: Record, findings: list[Finding]) -> list[str]:
    """M001 with exactly one audio and no marker anywhere: put it at the start of the first user turn."""
    if not any(f.code == "M001" for f in findings) or len(rec.audios) != 1:
        return []
    texts = [t for _, t in rec.texts()] + [rec.system or "", rec.tools or ""]
    if any(AUDIO_MARKER in t for t in texts):
        return []  # markers exist but do not match: which one is wrong is not ours to guess
    first = next((m for m in rec.messages if m.role == "user" and m.field), None)
    if first is None:
        return []
    path = parse_path(first.field)
    value = get_at(obj, path)
    if not isinstance(value, str) or not set_at(obj, path, AUDIO_MARKER + value):
        return []
    return [f"M001: inserted {AUDIO_MARKER} at the start of {first.field}"]


def fix_role_alias(obj: dict[str, Any], rec: Record, findings: list[Finding]) -> list[str]:
    """S008: write the role as the record's own dialect spells it (``STANDARD_ROLES``), never a spelling it rejects."""
    if not any(f.code == "S008" for f in findings):
        return []
    changes = []
    for turns in (rec.messages, rec.chosen or [], rec.rejected or []):
        for m in turns:
            want = standard_role(m, rec.dialect)
            if want is not None and set_at(obj, parse_path(m.role_field), want):
                changes.append(f"S008: {m.role_field} {m.raw_role!r} -> {want!r}")
    return changes


FIXERS: tuple[Fixer, ...] = (fix_role_alias, fix_missing_marker)


def propose(obj: Any, rec: Record | None, findings: list[Finding]) -> tuple[dict[str, Any], list[str]] | None:
    """An edited copy of ``obj`` and what changed, or None when nothing is safely fixable."""
    if rec is None or not isinstance(obj, dict):
        return None
    fixed = copy.deepcopy(obj)
    changes = [c for fixer in FIXERS for c in fixer(fixed, rec, findings)]
    return (fixed, changes) if changes else None


def accept(before: list[Finding], after: list[Finding], changes: list[str]) -> bool:
    """Keep a repair only if every code it fixed is gone and it introduced no new error."""
    fixed_codes = {c.split(":", 1)[0] for c in changes}
    old_errors = {(f.code, f.field) for f in before if f.is_error}
    if any(f.code in fixed_codes for f in after):
        return False
    return all((f.code, f.field) in old_errors for f in after if f.is_error)
