"""MiniCPM-style transcripts: ``{"audio": <ref>, "text": ...}`` (or ``audios``).

The record becomes a user turn holding one ``<audio>`` per clip (plus the record's
prompt, or ``--prompt``) and an assistant turn with the text. A prompt that already
holds markers is used as written.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, audio_list, new_record, optional, require
from audiodata.readers.dialects.prompts import choose_prompt, choose_system, template_reply, transcript_turns
from audiodata.records import Record


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    if "audios" in obj and obj["audios"] is not None:
        audios = audio_list(obj["audios"], "audios")
    elif "audio" in obj and obj["audio"] is not None:
        audios = audio_list(obj["audio"], "audio")
    else:
        raise ParseError("S001", "missing field 'audio'", "audio")
    text, tkey = template_reply(ctx, obj) or (require(obj, "text", str), "text")
    prompt, _ = choose_prompt(ctx, obj, clips=len(audios))
    messages = transcript_turns(len(audios), prompt, "prompt" if prompt else "audio", text, tkey)
    system = optional(obj, "system", str) or choose_system(ctx, obj)
    return new_record(obj, ctx, "minicpm", kind="sft", messages=messages, audios=audios, system=system)
