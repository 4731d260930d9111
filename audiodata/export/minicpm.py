"""The MiniCPM target: ``{audio: base64 FLAC, text, prompt}`` JSONL for single-turn, single-audio SFT.

Records reach the formatter after the target's rules passed (X301-X306: SFT, no tools, one user turn
and one reply, one audio whose marker is in the user turn, no images or videos).
"""

from __future__ import annotations

import base64
from typing import Any

from audiodata.export.base import _Audio
from audiodata.records import AUDIO_MARKER, Record


def _minicpm(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    user, reply = rec.messages[0].content, rec.messages[1].content
    # A leading marker is implied by the format; one elsewhere stays in place (the reader uses such a prompt as written).
    prompt = user[len(AUDIO_MARKER) :] if user.startswith(AUDIO_MARKER) else user
    obj: dict[str, Any] = {"audio": base64.b64encode(audios[0].data).decode("ascii"), "text": reply, "prompt": prompt}
    if rec.system:
        obj["system"] = rec.system
    obj["id"] = rec.id
    return obj
