"""Align-Anything's text-audio-to-text data, read exactly as its ``AA_TA2T`` template reads it.

``align_anything/configs/format_dataset.py`` in PKU-Alignment/align-anything (commit 3f9decc, 2025-11):
``AA_TA2T`` (line 559) has ``system_prompt = 'You are a helpful assistant.'`` (561); every conversation
is that system turn, a user turn holding the audio and then the ``prompt`` text, and the answer.
``format_preference_sample`` (563) takes ``better_id = int(raw_sample['overall_response'])`` and
``worse_id = 2 if better_id == 1 else 1`` (564-565): chosen ``response_{better_id}``, rejected
``response_{worse_id}``; ``format_supervised_sample`` (607) trains on ``response_{better_id}`` alone.
The audio is the ``audio_path`` column, a Hugging Face ``Audio`` feature (``['array']``,
``['sampling_rate']``, 594-595, resampled to 16 kHz); a path string or ``{"path"|"bytes"}`` object
is read too. AA's loader (``datasets/text_audio_to_text/supervised.py``) reads rows through
``datasets.load_dataset``, so the same rows come as JSON, Parquet or a Hub dataset.

Rows with ``response_1``/``response_2``/``overall_response`` become DPO pairs (``--format
align-anything``) or, as AA's SFT trainer uses them, SFT records of the better response
(``--format align-anything-sft``). A row with one ``response`` and no pair is SFT with it: the
column AA's other supervised templates read (``AA_TI2T``, line 535); ``AA_TA2T`` itself does not. A row with
``overall_response`` and only the response it names (what ``export --to align-anything`` writes for SFT records)
is SFT with it too: there is no pair.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, audio_list, new_record, require
from audiodata.records import AUDIO_MARKER, Message, Record

#: ``AA_TA2T.system_prompt``: the system turn of every conversation it builds.
SYSTEM = "You are a helpful assistant."
AUDIO_KEY = "audio_path"
PAIR_KEYS = ("response_1", "response_2", "overall_response")


def is_row(obj: dict[str, Any]) -> bool:
    """An Align-Anything text-audio-to-text row: ``audio_path`` with a string ``prompt`` and its response(s)."""
    return AUDIO_KEY in obj and isinstance(obj.get("prompt"), str) and ("response_1" in obj or "response" in obj)


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    return _parse(obj, ctx, sft=False)


def parse_sft(obj: dict[str, Any], ctx: ParseContext) -> Record:
    return _parse(obj, ctx, sft=True)


def _parse(obj: dict[str, Any], ctx: ParseContext, sft: bool) -> Record:
    if obj.get(AUDIO_KEY) is None:
        raise ParseError("S001", f"missing field {AUDIO_KEY!r}", AUDIO_KEY)
    audios = audio_list(obj[AUDIO_KEY], AUDIO_KEY)
    prompt = require(obj, "prompt", str)
    user = [Message("user", AUDIO_MARKER + prompt, "prompt")]  # AA_TA2T: the audio item, then the text item
    system = ctx.system or SYSTEM
    if "response_1" not in obj and "response_2" not in obj:
        answer = Message("assistant", require(obj, "response", str), "response")
        return new_record(obj, ctx, "align-anything", kind="sft", messages=[*user, answer], audios=audios, system=system)
    better, worse = _sides(obj)
    chosen = Message("assistant", require(obj, better, str), better)
    if sft or worse not in obj:  # no other response: SFT data, as AA's supervised template reads it
        return new_record(obj, ctx, "align-anything", kind="sft", messages=[*user, chosen], audios=audios, system=system)
    rejected = [Message("assistant", require(obj, worse, str), worse)]
    return new_record(
        obj, ctx, "align-anything", kind="dpo", messages=user, chosen=[chosen], rejected=rejected, audios=audios, system=system
    )


def _sides(obj: dict[str, Any]) -> tuple[str, str]:
    """(chosen column, rejected column) from ``overall_response`` as AA computes them, refusing what AA would
    misread: ``int()`` of anything but 1 or 2 (a 3 makes AA look up ``response_3``; a 0 picks response_2 twice)."""
    value = obj.get("overall_response")
    try:
        better = int(value) if not isinstance(value, bool) and value is not None else None
    except (TypeError, ValueError):
        better = None
    if better not in (1, 2) or (isinstance(value, float) and not value.is_integer()):
        raise ParseError("S001", f"overall_response must be 1 or 2 (which response is better), got {value!r}", "overall_response")
    return f"response_{better}", f"response_{2 if better == 1 else 1}"
