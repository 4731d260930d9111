"""How rows of named columns (a Hugging Face dataset, WebDataset samples) are read: as chat data when
their columns are one of the chat dialects' (detected per record), else as transcription rows whose
audio, transcript and prompt columns are detected here or named with ``--column``.

Detection is by name, in this order, so the common corpora need no option: Common Voice
(``audio`` + ``sentence``), LibriSpeech and most HF ASR sets (``audio`` + ``text``), FLEURS
(``transcription``), people's speech and GigaSpeech (``text``), AudioCaps-style sets (``caption``).
An audio column is the one column typed ``Audio`` in the dataset's features, else one named below.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects import detect
from audiodata.readers.dialects.transcription import AUDIO_NAMES, TEXT_NAMES
from audiodata.readers.registry import InputError
from audiodata.readers.spec import DialectSpec

COLUMN_KEYS = ("audio", "text", "prompt", "rejected")  # rejected: an ASR hypothesis, for DPO pairs (readers.pairs)
#: Dialects whose rows are chat data, read per record as JSON files are; any other row is a transcription row.
CHAT_DIALECTS = ("sharegpt", "messages", "alpaca", "llamafactory-v1", "align-anything", "verl", "audio-qa")


def row_spec(
    where: str,
    columns: list[str],
    audio_columns: list[str],
    given: dict[str, str],
    formatting: str | None,
    sample: dict[str, Any],
) -> DialectSpec:
    """The spec one input's rows are read with. ``sample`` stands for a row (its keys, list and object
    values where the columns are lists and structs), enough for dialect detection. Raises
    :class:`InputError` naming the input and the columns it has when a needed column is not found."""
    rejected = given.get("rejected")  # read after parsing, from any dialect's rows (readers.pairs)
    if rejected is not None and rejected not in columns:
        raise InputError(f"{where}: --column rejected={rejected}: no such column (has {_listed(columns)})")
    given = {k: v for k, v in given.items() if k != "rejected"}
    if formatting is not None and formatting != "transcription":
        return DialectSpec(formatting=formatting)
    if formatting is None and not given and detect(sample) in CHAT_DIALECTS:
        return DialectSpec()
    for key, name in given.items():
        if name not in columns:
            raise InputError(f"{where}: --column {key}={name}: no such column (has {_listed(columns)})")
    audio = given.get("audio") or _audio_column(where, columns, audio_columns)
    text = given.get("text") or next((c for c in TEXT_NAMES if c in columns), None)
    if text is None:
        raise InputError(
            f"{where}: no transcript column ({' / '.join(TEXT_NAMES)}) among {_listed(columns)}; name it with --column text=NAME"
        )
    prompt = given.get("prompt")
    return DialectSpec(
        formatting="transcription", columns={"audio": audio, "text": text, **({"prompt": prompt} if prompt else {})}
    )


def _audio_column(where: str, columns: list[str], typed: list[str]) -> str:
    if len(typed) == 1:
        return typed[0]
    named = [c for c in AUDIO_NAMES if c in (typed or columns)]
    if named:
        return named[0]
    if typed:
        raise InputError(f"{where}: several Audio columns ({', '.join(typed)}); name one with --column audio=NAME")
    raise InputError(
        f"{where}: no audio column (no Audio feature, none named {' / '.join(AUDIO_NAMES)}) among {_listed(columns)}; "
        "name it with --column audio=NAME"
    )


def _listed(columns: list[str]) -> str:
    shown = ", ".join(columns[:12])
    return shown + (f" and {len(columns) - 12} more" if len(columns) > 12 else "") if columns else "no columns"


def parse_columns(items: list[str] | dict[str, str]) -> dict[str, str]:
    """``--column KEY=NAME`` values (or a mapping) checked: keys among :data:`COLUMN_KEYS`, names non-empty."""
    pairs = items.items() if isinstance(items, dict) else [tuple(i.split("=", 1)) if "=" in i else (i, "") for i in items]
    out: dict[str, str] = {}
    for key, name in pairs:
        if key not in COLUMN_KEYS or not name:
            raise ValueError(f"--column takes KEY=NAME with KEY one of {', '.join(COLUMN_KEYS)}, got {key}={name}".rstrip("="))
        out[key] = name
    return out
