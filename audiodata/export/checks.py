"""Record checks shared by the targets: what a record must be for a trainer to read it as written."""

from __future__ import annotations

from audiodata.export.base import LF_TAGS, _Row, _Skip
from audiodata.records import AUDIO_MARKER, IMAGE_MARKER, PROMPT_ROLES, RESPONSE_ROLES, VIDEO_MARKER


def _markers(text: str | None) -> int:
    return (text or "").count(AUDIO_MARKER)


def _check_common(row: _Row) -> None:
    turns = row.messages + [m for side in row.responses() for m in side]
    for m in turns:
        if m["role"] not in LF_TAGS:
            raise _Skip(f"role {m['role']!r} is not a user/assistant/tool/function_call turn")
        if m["content"] is None:
            raise _Skip("a turn has no text")
    if row.kind == "kto":
        _check_kto(row)
    texts = [m["content"] for m in turns]
    if not row.images and not row.videos and any(IMAGE_MARKER in t or VIDEO_MARKER in t for t in texts):
        raise _Skip("text holds an <image>/<video> placeholder")
    _check_visual(row)
    if _markers(row.system) or _markers(row.tools):
        raise _Skip("<audio> in system or tools")
    if any(a is None for a in row.audios):
        raise _Skip("an audio has no stored bytes")


def _check_visual(row: _Row) -> None:
    """Images/videos: stored bytes, and as many as their markers (LLaMA-Factory's _validate_messages)."""
    extras = [row.chosen or [], row.rejected or []] if row.kind == "dpo" else [[]]
    for name, marker in (("images", IMAGE_MARKER), ("videos", VIDEO_MARKER)):
        items = getattr(row, name)
        if any(isinstance(v, str) for v in items):
            raise _Skip(f"{name} are file references (convert --visual refs): convert with --visual embed to export them")
        if any(not v or not v.get("bytes") for v in items):
            raise _Skip(f"one of the {name} has no stored bytes")
        prompt = sum(m["content"].count(marker) for m in row.messages)
        for extra in extras:
            if prompt + sum(m["content"].count(marker) for m in extra) != len(items):
                raise _Skip(f"{prompt} {marker} markers for {len(items)} {name}")


def _check_pair(row: _Row) -> tuple[dict[str, str], dict[str, str]]:
    """DPO: one response turn each for chosen and rejected, without markers."""
    if len(row.chosen or []) != 1 or len(row.rejected or []) != 1:
        raise _Skip("chosen/rejected must each be one response turn")
    chosen, rejected = row.chosen[0], row.rejected[0]  # type: ignore[index]
    if chosen["role"] not in RESPONSE_ROLES or rejected["role"] not in RESPONSE_ROLES:
        raise _Skip("chosen/rejected must be assistant or function_call turns")
    if _markers(chosen["content"]) or _markers(rejected["content"]):
        raise _Skip("<audio> inside chosen/rejected")
    return chosen, rejected


def _check_kto(row: _Row) -> None:
    """KTO: one response turn and a boolean label, no marker in the response (LLaMA-Factory's KL
    pairs borrow a neighbour's response, so a marker there would be counted against other audio)."""
    if row.label is None:
        raise _Skip("a KTO record has no label")
    if len(row.completion or []) != 1 or row.completion[0]["role"] not in RESPONSE_ROLES:  # type: ignore[index]
        raise _Skip("the KTO completion must be one assistant turn")
    if _markers(row.completion[0]["content"]):  # type: ignore[index]
        raise _Skip("<audio> inside the KTO completion")


def _check_alternation(messages: list[dict[str, str]], ranking: bool) -> None:
    for i, m in enumerate(messages):
        allowed = PROMPT_ROLES if i % 2 == 0 else RESPONSE_ROLES
        if m["role"] not in allowed:
            raise _Skip(f"turn {i} is {m['role']!r}: turns must alternate user/tool and assistant/function_call")
    n = len(messages)
    if ranking and n % 2 != 1:
        raise _Skip("the DPO prompt must end on a user turn")
    if not ranking and (n < 2 or n % 2 != 0):
        raise _Skip("the conversation must end on an assistant turn")


def _check_counts(row: _Row) -> None:
    """``<audio>`` count == number of audios, over prompt+response (DPO: with chosen and with rejected)."""
    prompt = sum(_markers(m["content"]) for m in row.messages)
    extras = row.responses() or [[]]
    for extra in extras:
        if prompt + sum(_markers(m["content"]) for m in extra) != len(row.audios):
            raise _Skip(f"{prompt} <audio> markers for {len(row.audios)} audios")
