"""The rule registry: every problem audiodata can report has a stable code here.

Ruff-style: a letter family and a number (``M001``), a severity, and a one-line
summary that says how to fix it. Parsers and the audio stage report codes that
have no check function (they find the problem while reading); record rules carry
their check and run in :mod:`audiodata.rules.engine`. Docs are generated from here.
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
}

RecordCheck = Callable[["Record"], Iterator["Finding"]]
AudioCheck = Callable[["Record", "AudioContext"], Iterator["Finding"]]

#: Where a rule runs. ``read``: while parsing (no check function); ``record``: on the parsed
#: record, text only; ``audio``: on the record and its decoded clips; ``dataset``: across records.
STAGES = ("read", "record", "audio", "dataset")


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """The longer documentation of a rule, beyond its one-line summary: what it checks, why it
    matters for training, and how to fix it (rendered in docs/rules.md)."""

    what: str
    why: str
    fix: str


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
    code: str, name: str, severity: Severity, summary: str, fixable: bool = False
) -> Callable[[RecordCheck], RecordCheck]:
    """Decorator: register a check that looks at one parsed :class:`Record` (text only)."""

    def wrap(fn: RecordCheck) -> RecordCheck:
        register(code, name, severity, summary, fn, "record", fixable)
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
ALWAYS_ON = ("F", "S001", "S010", "S030", "S031", "S032", "S033", "S034")


def select(select: list[str] | None = None, ignore: list[str] | None = None) -> set[str]:
    """Codes enabled by ruff-style prefixes (``--select M,A0 --ignore A008``), plus :data:`ALWAYS_ON`."""
    always = {c for c in REGISTRY if c.startswith(ALWAYS_ON)}
    codes = set(REGISTRY)
    if select:
        codes = {c for c in codes if any(c.startswith(p) for p in select)}
    if ignore:
        codes = {c for c in codes if not any(c.startswith(p) for p in ignore)}
    return codes | always


# Codes reported by readers and the audio stage while they work. Record rules are
# registered next to their checks in audiodata.rules.record_rules.
S = Severity
register("F001", "malformed-json", S.ERROR, "The line or array element is not valid JSON; fix the syntax.")
register("F002", "not-an-object", S.ERROR, "A record must be a JSON object; wrap the values in {...}.")
register("F003", "unknown-dialect", S.ERROR, "No known dialect matches the record's keys; pass --format or fix the keys.")
register(
    "F004",
    "unreadable-input",
    S.ERROR,
    "The input file cannot be read (missing, permissions, not a regular file, bad gzip, a read error part way: "
    "the records before it are kept).",
)
register("F005", "record-too-large", S.ERROR, "The record exceeds --max-record-bytes; split it or raise the bound.")
register(
    "F008",
    "decompression-bomb",
    S.ERROR,
    "A gzip input expands past --max-decompressed-bytes or --max-expansion-ratio; it is read no further "
    "(the records before it are kept). Check the file, or raise the bound.",
)
register(
    "F009",
    "not-utf8",
    S.ERROR,
    "The input file is UTF-16 or UTF-32 (detected from its byte order mark or NUL pattern); JSON is UTF-8: re-encode it.",
)
register(
    "F006",
    "dataset-not-read",
    S.WARNING,
    "A dataset_info.json or v1 YAML entry that is not read: on a hub that cannot be reached from here (offline and "
    "not cached), loaded by a script or from the cloud, pretraining text, or not JSON/JSONL.",
)
register(
    "F007",
    "file-not-named",
    S.WARNING,
    "A JSON file in a dataset_dir that its dataset_info.json does not name is not read; name it, or pass --all-files.",
)
register("S001", "invalid-field", S.ERROR, "A required field is missing or has the wrong type.")
register(
    "S010",
    "swift-preference-row",
    S.ERROR,
    "An ms-swift DPO row that is not one pair (the rejected side's prompt, system, audios or tools differ) or ms-swift drops.",
)
register("S005", "schema", S.ERROR, "The record does not match its dialect's JSON Schema (schemas/input/); fix the field named.")
register("A001", "audio-file-missing", S.ERROR, "The audio file does not exist; fix the path or --media-root.")
register("A002", "path-escapes-root", S.ERROR, "A relative audio path resolves outside the media root; move the file under it.")
register("A003", "audio-url", S.ERROR, "Audio given as a URL; download it first (audiodata never fetches).")
register("A004", "invalid-base64", S.ERROR, "The inline audio is not valid base64; re-encode it.")
register("A005", "undecodable-audio", S.ERROR, "The audio cannot be decoded; check the file or container.")
register("A006", "empty-audio", S.ERROR, "The audio has no samples; remove it or replace it.")
register("A007", "audio-too-short", S.ERROR, "Audio under 0.1 s yields no audio tokens in Whisper-style encoders.")
register("A010", "container-needs-ffmpeg", S.ERROR, "This container needs ffmpeg; install it (apt-get install ffmpeg).")
register(
    "D001",
    "duplicate-record",
    S.WARNING,
    "Same audio and conversation as an earlier record; drop one.",
    stage="dataset",
)
register(
    "D002",
    "near-duplicate",
    S.WARNING,
    "The same recording (re-encoded, resampled, re-gained) with the same conversation.",
    stage="dataset",
)
register(
    "D003",
    "conflicting-response",
    S.WARNING,
    "Same audio and prompt as an earlier record, different response: check which is right.",
    stage="dataset",
)
register(
    "D004",
    "leakage",
    S.ERROR,
    "The record (or a near copy) is already in the --against dataset, e.g. a test split.",
    stage="dataset",
)
register(
    "P002",
    "kto-label",
    S.ERROR,
    "A KTO record's label (kto_tag / label) is missing or not a JSON boolean; write true or false.",
)
register(
    "P003",
    "kto-one-label",
    S.WARNING,
    "Every KTO record has the same label: KTO needs desirable and undesirable examples; add the other kind.",
    stage="dataset",
)
register("A011", "audio-too-large", S.ERROR, "The audio exceeds --max-audio-bytes or --max-duration; trim or split it.")
register(
    "A015",
    "non-finite-samples",
    S.ERROR,
    "The audio holds NaN or infinite samples (float WAV, W64, CAF; arrays): it cannot be stored as PCM; fix the source.",
    doc=RuleDoc(
        what="Every source sample is checked as it is decoded (float WAV, W64, CAF, arrays, any decoder's output): "
        "NaN, +Inf or -Inf, or finite samples so large (beyond float32's range once channels are mixed or the "
        "resampler's filter sums them) that the mix overflows. The message counts them and names the first "
        "(time, channel, frame).",
        why="The 16-bit cast of NaN is undefined (it became 0), +-Inf became full scale, and the resampler spreads "
        "one NaN over its whole filter span: the stored clip would be silently corrupted PCM, with no warning, "
        "and its content hash would be meaningless.",
        fix="Re-export the clip from its source, or repair it (e.g. numpy.nan_to_num, then normalise to [-1, 1]); "
        "a tool that writes NaN usually divided by zero while normalising a silent clip.",
    ),
)
register(
    "A016",
    "audio-out-of-memory",
    S.ERROR,
    "Decoding the clip ran out of memory (MemoryError); lower --num-workers or --max-duration, or split the clip.",
    doc=RuleDoc(
        what="The machine could not allocate memory while this clip was decoded, resampled or encoded. The record "
        "is rejected and the run goes on (the worker survives).",
        why="Decoding runs in blocks, so a worker holds one block and the mono output clip (see the README's "
        "memory bound); running out there means the machine is short of memory for --num-workers clips of "
        "--max-duration at once, or other processes hold it.",
        fix="Lower --num-workers or --max-duration, free memory, or split long clips; then convert again (a "
        "finished run resumes).",
    ),
)
# Images and videos (Omni and vision corpora): found while the audio stage opens them, located to the reference.
register("S030", "visual-file-missing", S.ERROR, "The image or video file does not exist; fix the path or --media-root.")
register(
    "S031", "visual-path-escapes-root", S.ERROR, "An image or video path resolves outside the media root; move the file under it."
)
register(
    "S032",
    "visual-not-storable",
    S.ERROR,
    "An image or video in a form audiodata cannot store: a URL (never fetched), a list of frames instead of a video, "
    "or inline data with --visual refs.",
)
register(
    "S033", "visual-undecodable", S.ERROR, "The image or video cannot be read: not an image/video container, or invalid base64."
)
register("S034", "visual-too-large", S.ERROR, "The image or video exceeds --max-audio-bytes (the bound on one media file).")
