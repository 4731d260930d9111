"""Preference pairs from ASR corpora: the reference transcript is the chosen reply, an ASR hypothesis the
rejected one (``convert --column rejected=NAME`` or ``--hypotheses FILE``).

Any transcript-only reader's record (NeMo lines, lhotse cuts, dataset and WebDataset rows, MiniCPM rows,
subtitle windows) becomes a DPO record here, after parsing and before the rules, so every command reads the
same pairs: the user turn is the prompt, the transcript the chosen reply, the hypothesis the rejected one.

The hypothesis comes from

- a **column** of the record (``--column rejected=pred_text``: NeMo's ``transcribe_speech.py`` writes its
  output manifest as the input lines plus ``pred_text``); a window of several lines (``--long-form windows``,
  subtitles) joins its lines' values in order, as it joins their transcripts; a lhotse cut's value may sit in
  its ``custom`` or in each supervision (``custom`` too);
- a **file keyed by record id** (``--hypotheses FILE``): JSONL lines ``{"id": ..., "hypothesis"|"pred_text"|
  "text": ...}``, or Kaldi-style ``ID TEXT`` lines (ESPnet and Kaldi decoders write their ``hyp.trn``/``text``
  so). The id is the shards' ``id`` column: the record's own ``id`` key (a lhotse cut id, a dataset's id
  column), else ``<file stem>-<index>``; a record whose id the file does not name but that packs several lines
  (a NeMo window) or supervisions (a lhotse cut) takes their hypotheses, joined in order, when the file names each.

A record with no hypothesis is rejected (``P005``), never written as SFT. A pair whose two sides are equal
(compared with runs of whitespace collapsed) teaches nothing: it is flagged ``P004``, and ``convert`` skips
it and counts it (``equal_pairs`` in the summary and the manifest; listed in ``rejects.jsonl``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from audiodata.errors import UsageError
from audiodata.readers.dialects.common import ParseError
from audiodata.records import RESPONSE_ROLES, Message, Record

#: The keys a JSONL hypotheses line may hold its text under, in order.
HYPOTHESIS_KEYS = ("hypothesis", "pred_text", "text")


class HypothesesError(UsageError):
    """A ``--hypotheses`` file that cannot be read as id -> text (a usage error: exit 2)."""


@dataclass(frozen=True)
class PairSource:
    """Where the rejected reply of each record comes from: a column, or ``hypotheses`` by record id."""

    column: str | None = None
    hypotheses: Mapping[str, str] = field(default_factory=dict)
    file: str = ""  # the hypotheses file as named in messages

    def digest(self) -> str:
        """What the hypotheses say, for the run fingerprint: a resume must pair records the same way."""
        blob = json.dumps(sorted(self.hypotheses.items()), ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_hypotheses(path: str | os.PathLike[str]) -> dict[str, str]:
    """``id -> hypothesis`` from a JSONL file or from ``ID TEXT`` lines. A missing file, an unreadable line,
    or an id given twice with different texts is a :class:`HypothesesError` naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise HypothesesError(f"--hypotheses {path}: no such file")
    out: dict[str, str] = {}
    try:
        with open(p, encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                rid, text = _line(line, f"{path}:{n}")
                if out.get(rid, text) != text:
                    raise HypothesesError(f"--hypotheses {path}:{n}: id {rid!r} is given twice, with different texts")
                out[rid] = text
    except UnicodeDecodeError as exc:
        raise HypothesesError(f"--hypotheses {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not out:
        raise HypothesesError(f"--hypotheses {path}: the file names no hypothesis")
    return out


def _line(line: str, where: str) -> tuple[str, str]:
    text = line.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HypothesesError(f"--hypotheses {where}: not JSON ({exc.msg})") from None
        rid = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "":
            raise HypothesesError(f'--hypotheses {where}: a line needs an "id" (a string or number)')
        key = next((k for k in HYPOTHESIS_KEYS if k in obj), None)
        if key is None or not isinstance(obj[key], str):
            raise HypothesesError(f"--hypotheses {where}: a line needs its text under one of {', '.join(HYPOTHESIS_KEYS)}")
        return str(rid), obj[key]
    rid, *hyp = text.split(None, 1)  # Kaldi/ESPnet: the id, then the words
    return rid, hyp[0] if hyp else ""


def same_text(a: str, b: str) -> bool:
    """Whether two replies are the same text, runs of whitespace aside."""
    return a.split() == b.split()


def make_pair(record: Record, obj: Any, source: PairSource) -> tuple[Record, bool]:
    """``record`` (a transcript record) as a DPO pair with its hypothesis rejected, and whether the two sides
    are equal. Raises a located ``P005`` :class:`ParseError` when no pair can be made."""
    if record.kind != "sft":
        raise ParseError("P005", f"a {record.kind} record is not a transcript to pair with a hypothesis", "")
    if len(record.messages) < 2 or record.messages[-1].role not in RESPONSE_ROLES:
        raise ParseError("P005", "the record does not end on the transcript (an assistant turn) to pair", "")
    chosen = record.messages[-1]
    rejected = _rejected(record, obj, source)
    pair = replace(record, kind="dpo", messages=record.messages[:-1], chosen=[chosen], rejected=[rejected], _texts=None)
    return pair, same_text(chosen.content, rejected.content)


def _rejected(record: Record, obj: Any, source: PairSource) -> Message:
    obj = obj if isinstance(obj, dict) else {}
    if source.column is not None:
        col = source.column
        values = list(_column_values(obj, col))
        if not values or any(not isinstance(v, str) for v in values):
            what = "has no" if not values or any(v is None for v in values) else "holds a non-string"
            raise ParseError("P005", f"the record {what} rejected reply in column {col!r} (--column rejected={col})", col)
        return Message("assistant", _joined(values), col)
    hyps = source.hypotheses
    if record.id in hyps:
        return Message("assistant", hyps[record.id], f"hypotheses[{record.id}]")
    for ids in (_part_ids(obj.get("segments")), _part_ids(_timed(obj.get("supervisions")))):
        if ids and all(i in hyps for i in ids):  # a window: its lines' (or supervisions') hypotheses, in order
            return Message("assistant", _joined([hyps[i] for i in ids]), f"hypotheses[{ids[0]}]")
    parts = " (nor for each of its lines or supervisions)" if obj.get("segments") or obj.get("supervisions") else ""
    raise ParseError("P005", f"no hypothesis for id {record.id!r}{parts} in {source.file} (--hypotheses)", "id")


def _joined(values: list[str]) -> str:
    """Several lines' values as one reply, as a window joins its lines' transcripts."""
    return values[0] if len(values) == 1 else " ".join(t for t in (v.strip() for v in values) if t)


def _column_values(obj: dict[str, Any], col: str) -> Iterator[Any]:
    """The column's value(s): each line of a window (``segments``: a value all its lines share is also at the
    top, once, where the transcript joins it once per line); the record's own; a lhotse cut's ``custom``, else
    each supervision's (own key or ``custom``), in time order."""
    segments = obj.get("segments")
    if isinstance(segments, list) and segments:
        for seg in segments:
            yield seg.get(col) if isinstance(seg, dict) else None
        return
    if col in obj:
        yield obj[col]
        return
    custom = obj.get("custom")
    if isinstance(custom, dict) and col in custom:
        yield custom[col]
        return
    for s in _timed(obj.get("supervisions")):
        inner = s.get("custom")
        yield s.get(col, inner.get(col) if isinstance(inner, dict) else None)


def _timed(sups: Any) -> list[dict[str, Any]]:
    """A lhotse cut's supervisions in time order (as its transcript joins their texts)."""
    if not isinstance(sups, list):
        return []
    return sorted((s for s in sups if isinstance(s, dict)), key=_start)


def _start(sup: dict[str, Any]) -> float:
    value = sup.get("start")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _part_ids(parts: Any) -> list[str]:
    """The ids of a window's lines (or a cut's supervisions), when every one has an id; else none."""
    if not isinstance(parts, list) or not parts:
        return []
    out = []
    for part in parts:
        rid = part.get("id") if isinstance(part, dict) else None
        if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "":
            return []
        out.append(str(rid))
    return out
