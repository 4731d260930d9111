"""The rule registry: every problem audiodata can report has a stable code here.

Ruff-style: a letter family and a number (``M001``), a severity, and a one-line
summary that says how to fix it. Parsers and the audio stage report codes that
have no check function (they find the problem while reading); record rules carry
their check and run in :mod:`audiodata.rules.engine`. Export targets (``X``) and
``verify`` (``V``) register theirs here too, so ``audiodata rules`` lists every check
the tool makes. Docs are generated from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audiodata.records import Record
    from audiodata.rules.audio_rules import AudioContext
    from audiodata.rules.findings import Finding


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


FAMILIES = {
    "F": "file and JSON parsing",
    "S": "structure",
    "M": "markers",
    "A": "audio",
    "T": "text",
    "P": "preference pairs",
    "B": "token budget",
    "D": "duplicates",
    "R": "transcript rate",
    "Q": "verifiable answers (RL)",
    "X": "export targets",
    "V": "converted dataset (verify)",
}

RecordCheck = Callable[["Record"], Iterator["Finding"]]
AudioCheck = Callable[["Record", "AudioContext"], Iterator["Finding"]]

#: Where a rule runs. ``read``: while parsing (no check function); ``record``: on the parsed
#: record, text only; ``audio``: on the record and its decoded clips; ``dataset``: across records;
#: ``export``: on a record rebuilt from a stored row, only for the export targets that list it
#: (never in lint); ``output``: over a converted dataset's files, by ``verify`` (no check function).
STAGES = ("read", "record", "audio", "dataset", "export", "output")


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """The longer documentation of a rule, beyond its one-line summary: what it checks, why it
    matters for training, and how to fix it (rendered in docs/rules.md)."""

    what: str
    why: str
    fix: str
    example: str = ""  # an input (or a situation) that fires the rule, shown under "Example"


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    check: Callable[..., Iterator[Finding]] | None = None
    stage: str = "read"
    fixable: bool = False  # ``lint --fix`` repairs the safe, unambiguous cases
    doc: RuleDoc | None = None

    @property
    def family(self) -> str:
        return FAMILIES[self.code[0]]

    @property
    def hint(self) -> str:
        """How to fix it, as the terminal and SARIF show it: the documented fix, else the summary (which says it)."""
        return self.doc.fix if self.doc is not None else self.summary


REGISTRY: dict[str, Rule] = {}


def register(
    code: str,
    name: str,
    severity: Severity,
    summary: str,
    check: Callable[..., Iterator[Finding]] | None = None,
    stage: str = "read",
    fixable: bool = False,
    doc: RuleDoc | None = None,
) -> Rule:
    if code in REGISTRY:
        raise ValueError(f"rule code {code} registered twice")
    if code[0] not in FAMILIES or stage not in STAGES:
        raise ValueError(f"rule code {code} has an unknown family or stage")
    rule = Rule(code, name, severity, summary, check, stage, fixable, doc)
    REGISTRY[code] = rule
    return rule


def record_rule(
    code: str, name: str, severity: Severity, summary: str, fixable: bool = False, doc: RuleDoc | None = None
) -> Callable[[RecordCheck], RecordCheck]:
    """Decorator: register a check that looks at one parsed :class:`Record` (text only)."""

    def wrap(fn: RecordCheck) -> RecordCheck:
        register(code, name, severity, summary, fn, "record", fixable, doc)
        return fn

    return wrap


def export_rule(code: str, name: str, summary: str, doc: RuleDoc | None = None) -> Callable[[RecordCheck], RecordCheck]:
    """Decorator: register a limit of an export target, checked on a record rebuilt from a stored row
    (always an error there: the record is skipped for that target, and counted)."""

    def wrap(fn: RecordCheck) -> RecordCheck:
        register(code, name, Severity.ERROR, summary, fn, "export", doc=doc)
        return fn

    return wrap


def audio_rule(
    code: str, name: str, severity: Severity, summary: str, doc: RuleDoc | None = None
) -> Callable[[AudioCheck], AudioCheck]:
    """Decorator: register a check over a record and its decoded clips (see ``AudioContext``)."""

    def wrap(fn: AudioCheck) -> AudioCheck:
        register(code, name, severity, summary, fn, "audio", doc=doc)
        return fn

    return wrap


def get(code: str) -> Rule:
    return REGISTRY[code]


#: Problems that leave no record to write: they always reject, whatever --select/--ignore say,
#: so an unparsable record can never vanish silently (nor be written without an image or video it names).
ALWAYS_ON = ("F", "S001", "S010", "S030", "S031", "S032", "S033", "S034", "P005", "Q006")


def select(select: list[str] | None = None, ignore: list[str] | None = None) -> set[str]:
    """Codes enabled by ruff-style prefixes (``--select M,A0 --ignore A008``), plus :data:`ALWAYS_ON`."""
    always = {c for c in REGISTRY if c.startswith(ALWAYS_ON)}
    codes = set(REGISTRY)
    if select:
        codes = {c for c in codes if any(c.startswith(p) for p in select)}
    if ignore:
        codes = {c for c in codes if not any(c.startswith(p) for p in ignore)}
    return codes | always


# The codes readers and the audio stage report while they work (no check function), with their docs.
from audiodata.rules import read_rules  # noqa: E402, F401  (registers them: every importer of the registry sees them)
