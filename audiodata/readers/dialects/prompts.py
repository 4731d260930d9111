"""The user turn of a transcript-only record (MiniCPM rows, ASR corpora): which prompt, and where
the audio goes.

One function chooses the prompt for every reader of transcript-only data, so prompt templates
(``--task``, prompt pools) replace it in one place.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, optional
from audiodata.records import AUDIO_MARKER, AudioRef, Message

#: Columns a record's own prompt is read from when no column is named for it.
PROMPT_KEYS = ("prompt", "instruction")


def choose_prompt(obj: dict[str, Any], ctx: ParseContext, column: str | None = None) -> tuple[str, str]:
    """``(prompt, field)``: the record's own prompt (``column``, else ``prompt``/``instruction``), else
    ``--prompt``, else none (the user turn is then the audio alone). ``field`` locates it ("" for --prompt)."""
    for key in (column,) if column else PROMPT_KEYS:
        text = optional(obj, key, str)
        if text:
            return text, key
    return ctx.prompt or "", ""


def transcript_turns(audios: list[AudioRef], prompt: str, user_field: str, text: str, text_field: str) -> list[Message]:
    """A user turn with one ``<audio>`` per clip before the prompt (a prompt that holds markers is used as
    written) and the transcript as the assistant turn."""
    user = prompt if AUDIO_MARKER in prompt else AUDIO_MARKER * len(audios) + prompt
    return [Message("user", user, user_field), Message("assistant", text, text_field)]
