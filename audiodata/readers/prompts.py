"""The user turn of a record made from an ASR corpus (NeMo, lhotse, subtitles), which has a transcript
but no prompt of its own.

:func:`transcript_prompt` is the one place that prompt is chosen, so templates and prompt pools
(``--task`` presets, a YAML template) extend it alone. Today it is ``--prompt``, else nothing: the user
turn is then the ``<audio>`` marker(s) alone, as for a MiniCPM transcript without a prompt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audiodata.records import AUDIO_MARKER, Message

if TYPE_CHECKING:
    from audiodata.readers.dialects.common import ParseContext


def transcript_prompt(ctx: ParseContext, language: str | None = None) -> str:
    """The prompt for a transcript of ``language`` (None: unknown)."""
    return ctx.prompt or ""


def transcript_turns(clips: int, text: str, ctx: ParseContext, text_field: str, language: str | None = None) -> list[Message]:
    """User turn (the prompt, with one ``<audio>`` per clip in front unless it places them itself) and the
    assistant turn holding the transcript."""
    prompt = transcript_prompt(ctx, language)
    user = prompt if AUDIO_MARKER in prompt else AUDIO_MARKER * clips + prompt
    return [Message("user", user, "prompt" if prompt else "audio"), Message("assistant", text, text_field)]
