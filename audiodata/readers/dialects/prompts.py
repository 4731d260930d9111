"""The user turn of a transcript-only record (MiniCPM rows, dataset and tar rows, NeMo lines, lhotse cuts,
subtitle windows): which prompt, where the audio goes, which column the reply is, and the system prompt.

:func:`choose_prompt` is the one place that prompt is chosen for every reader of transcript-only data, and
the template (:mod:`audiodata.readers.templates`: a ``--task`` preset or a ``--template`` file) is applied
there alone. The prompt is:

- with ``--template FILE``: the template's pool, always (a record's own prompt is the ``{prompt}`` column);
- else the record's own prompt column, else ``--prompt``, else the ``--task`` preset's pool;
- else nothing: the user turn is then the ``<audio>`` marker(s) alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, optional, record_id
from audiodata.readers.templates import MissingValue, lookup, render
from audiodata.records import AUDIO_MARKER, Message

#: Columns a record's own prompt is read from when no column is named for it.
PROMPT_KEYS = ("prompt", "instruction")


def choose_prompt(
    ctx: ParseContext,
    obj: dict[str, Any] | None = None,
    column: str | None = None,
    language: str | None = None,
    row: Mapping[str, Any] | None = None,
    clips: int = 1,
) -> tuple[str, str]:
    """``(prompt, field)``: see the module. ``obj``: the record, for readers whose rows may carry their own
    prompt (``column``, else ``prompt``/``instruction``). ``language``: the transcript's language, when the
    corpus says it (None: unknown), for ``{lang}``. ``row``: the record's columns for the template's
    placeholders and the id its prompt is drawn by (default ``obj``). ``clips``: the record's clips (a long
    recording kept whole as consecutive clips has several): a template prompt's one ``<audio>`` stands for all.
    ``field`` locates the prompt: the record's own column ("" for a template's or ``--prompt``'s)."""
    template = ctx.template
    if obj is not None and (template is None or template.preset):
        for key in (column,) if column else PROMPT_KEYS:
            text = optional(obj, key, str)
            if text:
                return text, key
    if ctx.prompt:
        return ctx.prompt, ""
    if template is None or not template.user:
        return "", ""
    values = row if row is not None else obj or {}
    text = fill(template.pick(record_id(dict(values), ctx)), ctx, values, language)
    if clips > 1 and text.count(AUDIO_MARKER) == 1:
        text = text.replace(AUDIO_MARKER, AUDIO_MARKER * clips)
    return text, ""


def choose_system(ctx: ParseContext, row: Mapping[str, Any], language: str | None = None) -> str | None:
    """The template's system prompt filled for this record (None: the template has none; the record's own
    system prompt, else ``--system``, applies as for any record)."""
    if ctx.template is None or not ctx.template.system:
        return None
    return fill(ctx.template.system, ctx, row, language)


def reply_column(ctx: ParseContext) -> str | None:
    """The column the template reads the assistant turn from (None: the reader's own transcript)."""
    return ctx.template.assistant if ctx.template is not None else None


def template_reply(ctx: ParseContext, row: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(reply, column)`` from the template's assistant column (None: the template names none); a record
    without it is a located S001."""
    column = reply_column(ctx)
    if column is None:
        return None
    try:
        value = lookup(column, row)
    except MissingValue as exc:
        raise ParseError("S001", exc.message, exc.name) from None
    if value is None:
        raise ParseError("S001", f"missing field {column!r} (the template's assistant column)", column)
    return value, column


def fill(text: str, ctx: ParseContext, row: Mapping[str, Any], language: str | None) -> str:
    defaults = dict(ctx.template.defaults) if ctx.template is not None else {}
    try:
        return render(text, row, defaults, language)
    except MissingValue as exc:
        raise ParseError("S001", exc.message, exc.name) from None


def transcript_turns(clips: int, prompt: str, user_field: str, text: str, text_field: str) -> list[Message]:
    """A user turn with one ``<audio>`` per clip before the prompt (a prompt that holds markers is used as
    written) and the transcript as the assistant turn."""
    user = prompt if AUDIO_MARKER in prompt else AUDIO_MARKER * clips + prompt
    return [Message("user", user, user_field), Message("assistant", text, text_field)]
