"""Rules with stable codes, one registry and one engine shared by every command."""

from audiodata.rules.engine import check_record, has_error
from audiodata.rules.findings import Finding
from audiodata.rules.registry import REGISTRY, Rule, Severity, select

__all__ = ["REGISTRY", "Finding", "Rule", "Severity", "check_record", "has_error", "select"]
