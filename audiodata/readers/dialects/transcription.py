"""Rows of an ASR or audio corpus (a Hugging Face dataset, WebDataset samples): an audio column and a
transcript column, and maybe a prompt column, named by the input's spec (``spec.columns``: ``audio``,
``text``, ``prompt``; :mod:`audiodata.readers.rows` detects them or takes ``--column``).

The record is the transcript-only form MiniCPM rows have: a user turn holding the audio and the
prompt (:func:`audiodata.readers.dialects.prompts.choose_prompt`) and the transcript as the answer. Every
other column (Common Voice's ``client_id``, ``locale``, ``gender``; a tar sample's ``__key__``) is kept in the
record's metadata, as NeMo and lhotse keep theirs: media (bytes, an Audio or Image struct) excepted.
"""

from __future__ import annotations

from typing import Any

from audiodata.readers.dialects.common import ParseContext, ParseError, audio_list, new_record, require
from audiodata.readers.dialects.prompts import choose_prompt, choose_system, template_reply, transcript_turns
from audiodata.records import Record

AUDIO_NAMES = ("audio", "audio_path", "speech", "wav", "flac", "mp3", "audio_filepath")
#: Transcript columns by name, in order: most HF ASR sets (``text``), Common Voice (``sentence``), FLEURS
#: (``transcription``), AudioCaps-style sets (``caption``).
TEXT_NAMES = ("text", "sentence", "transcription", "transcript", "normalized_text", "raw_text", "caption")


def parse(obj: dict[str, Any], ctx: ParseContext) -> Record:
    cols = ctx.spec.columns  # a column the spec does not name is found by name in each row (WebDataset samples vary)
    akey = cols.get("audio") or next((c for c in AUDIO_NAMES if c in obj), "audio")
    tkey = cols.get("text") or next((c for c in TEXT_NAMES if c in obj), "text")
    if obj.get(akey) is None:
        raise ParseError("S001", f"missing audio column {akey!r}", akey)
    audios = audio_list(obj[akey], akey)
    if not audios:
        raise ParseError("S001", f"the audio column {akey!r} is empty", akey)
    text, tkey = template_reply(ctx, obj) or (require(obj, tkey, str), tkey)
    prompt, where = choose_prompt(ctx, obj, cols.get("prompt"), clips=len(audios))
    messages = transcript_turns(len(audios), prompt, where or akey, text, tkey)
    metadata = row_metadata(obj, {akey, tkey, where, "id"})
    system = choose_system(ctx, obj)
    return new_record(
        obj, ctx, "transcription", kind="sft", messages=messages, audios=audios, system=system, metadata=metadata
    )
def row_metadata(obj: dict[str, Any], used: set[str]) -> dict[str, Any] | None:
    """The row's other columns (None when it has none): what the corpus says about the clip beyond its
    transcript (speaker, language, source), media left out."""
    out = {k: v for k, v in obj.items() if k not in used and not _media(v)}
    return out or None


def _media(value: Any) -> bool:
    """Bytes, or a struct holding them (an Audio or Image cell): not metadata."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    if isinstance(value, dict):
        return "bytes" in value or "array" in value or any(_media(v) for v in value.values())
    if isinstance(value, list):
        return any(_media(v) for v in value[:8])
    return False
