"""MiniCPM-style transcripts: ``{"audio": <ref>, "text": ...}`` (or ``audios``).

The record becomes a user turn holding one ``<audio>`` per clip (plus the record's
prompt, or ``--prompt``) and an assistant turn with the text. A prompt that already
holds markers is used as written.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, audio_list, new_record, optional, require
from audiodata.records import AUDIO_MARKER, Message, Record


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    if "audios" in obj and obj["audios"] is not None:
        audios = audio_list(obj["audios"], "audios")
    elif "audio" in obj and obj["audio"] is not None:
        audios = audio_list(obj["audio"], "audio")
    else:
        raise ParseError("S001", "missing field 'audio'", "audio")
    text = require(obj, "text", str)
    prompt = optional(obj, "prompt", str) or optional(obj, "instruction", str) or ctx.prompt or ""
    user = prompt if AUDIO_MARKER in prompt else AUDIO_MARKER * len(audios) + prompt
    messages = [Message("user", user, "prompt" if prompt else "audio"), Message("assistant", text, "text")]
    return new_record(obj, ctx, "minicpm", kind="sft", messages=messages, audios=audios, system=optional(obj, "system", str))
