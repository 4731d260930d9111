"""The user turn of a transcript-only record (MiniCPM rows, dataset and tar rows, NeMo lines, lhotse cuts,
subtitle windows): which prompt, and where the audio goes.

:func:`choose_prompt` is the one place that prompt is chosen for every reader of transcript-only data, so
templates and prompt pools (``--task`` presets, a YAML template) extend it alone. Today it is the record's
own prompt column, else ``--prompt``, else nothing: the user turn is then the ``<audio>`` marker(s) alone.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, optional
from audiodata.records import AUDIO_MARKER, Message

#: Columns a record's own prompt is read from when no column is named for it.
PROMPT_KEYS = ("prompt", "instruction")


def choose_prompt(
    ctx: ParseContext, obj: dict[str, Any] | None = None, column: str | None = None, language: str | None = None
) -> tuple[str, str]:
    """``(prompt, field)``: the record's own prompt (``column``, else ``prompt``/``instruction``; only for
    readers that pass ``obj``, whose rows may carry one), else ``--prompt``, else none (the user turn is then
    the audio alone). ``field`` locates it ("" for --prompt). ``language``: the transcript's language, when
    the corpus says it (None: unknown), for prompts that name it."""
    if obj is not None:
        for key in (column,) if column else PROMPT_KEYS:
            text = optional(obj, key, str)
            if text:
                return text, key
    return ctx.prompt or "", ""


def transcript_turns(clips: int, prompt: str, user_field: str, text: str, text_field: str) -> list[Message]:
    """A user turn with one ``<audio>`` per clip before the prompt (a prompt that holds markers is used as
    written) and the transcript as the assistant turn."""
    user = prompt if AUDIO_MARKER in prompt else AUDIO_MARKER * clips + prompt
    return [Message("user", user, user_field), Message("assistant", text, text_field)]
