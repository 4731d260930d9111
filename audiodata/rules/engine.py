"""The one rule engine: runs the enabled rules of a stage and locates what they find.

convert rejects a record when this returns an error; lint reports the same list.
``check_record`` runs the text rules on a parsed record; ``check_audio`` runs the
audio rules once the record's clips are decoded and measured; ``check_export`` runs
an export target's rule set on a record rebuilt from a stored row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from audiodata.records import Record
from audiodata.rules import audio_rules, export_rules, rate_rules, record_rules, rl_rules, style_rules, verify_rules  # noqa: F401  (registers)
from audiodata.rules.audio_rules import AudioContext
from audiodata.rules.findings import Finding
from audiodata.rules.registry import REGISTRY


@lru_cache(maxsize=64)
def _checks(stage: str, enabled: frozenset[str] | None) -> tuple[Callable[..., Iterator[Finding]], ...]:
    return tuple(
        r.check for c, r in REGISTRY.items() if r.stage == stage and r.check is not None and (enabled is None or c in enabled)
    )


def _frozen(enabled: Iterable[str] | None) -> frozenset[str] | None:
    """``enabled`` as a hashable cache key (``None``: every rule)."""
    return enabled if enabled is None or isinstance(enabled, frozenset) else frozenset(enabled)


def _run(stage: str, record: Record, enabled: Iterable[str] | None, *args: Any) -> list[Finding]:
    found: list[Finding] = []
    for check in _checks(stage, _frozen(enabled)):
        for f in check(record, *args):
            found.append(f.located(record.source))
    return found


def check_record(record: Record, enabled: Iterable[str] | None = None) -> list[Finding]:
    return _run("record", record, enabled)


def check_audio(record: Record, ctx: AudioContext, enabled: Iterable[str] | None = None) -> list[Finding]:
    return _run("audio", record, enabled, ctx)


def check_export(record: Record, enabled: Iterable[str]) -> list[Finding]:
    """An export target's rules (``enabled``: :func:`audiodata.rules.export_rules.target_rules`) on a record
    rebuilt from a stored row: what the row cannot hold as a record first (always: the rules could not read
    it), then the text rules, then the target's own limits (stage ``export``)."""
    unreadable = export_rules.stored_problems(record)
    if unreadable:
        return [f.located(record.source) for f in unreadable]
    return _run("record", record, enabled) + _run("export", record, enabled)


def keep_enabled(findings: Iterable[Finding], enabled: Iterable[str] | None) -> list[Finding]:
    if enabled is None:
        return list(findings)
    codes = enabled if isinstance(enabled, (set, frozenset)) else set(enabled)
    return [f for f in findings if f.code in codes]


def has_error(findings: Iterable[Finding]) -> bool:
    return any(f.is_error for f in findings)
