"""The MiniCPM target: ``{audio: base64 FLAC, text, prompt}`` JSONL for single-turn, single-audio SFT."""

from __future__ import annotations

import base64
from typing import Any

from audiodata.export.base import _Audio, _Row, _Skip
from audiodata.export.checks import _check_common, _markers
from audiodata.records import AUDIO_MARKER


def _minicpm(row: _Row, audios: list[_Audio]) -> dict[str, Any]:
    _check_common(row)
    if row.kind != "sft":
        raise _Skip(f"minicpm: {row.kind.upper()} records are not supported")
    if row.tools:
        raise _Skip("minicpm: records with tools are not supported")
    if [m["role"] for m in row.messages] != ["user", "assistant"]:
        raise _Skip("minicpm: needs one user turn and one assistant reply (multi-turn)")
    if len(row.audios) != 1:
        raise _Skip("minicpm: needs exactly one audio")
    if row.images or row.videos:
        raise _Skip("minicpm: images and videos are not supported")
    user, reply = row.messages[0]["content"], row.messages[1]["content"]
    if _markers(user) != 1 or _markers(reply):
        raise _Skip("minicpm: needs exactly one <audio> marker, in the user turn")
    # A leading marker is implied by the format; one elsewhere stays in place (the reader uses such a prompt as written).
    prompt = user[len(AUDIO_MARKER) :] if user.startswith(AUDIO_MARKER) else user
    obj: dict[str, Any] = {"audio": base64.b64encode(audios[0].data).decode("ascii"), "text": reply, "prompt": prompt}
    if row.system:
        obj["system"] = row.system
    obj["id"] = row.id
    return obj
