"""Pieces every dialect parser shares: typed field access, audio references,
content lists. Problems raise :class:`ParseError` located to the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from audiodata.readers.spec import DEFAULT_TAGS, DialectSpec
from audiodata.records import AUDIO_MARKER, IMAGE_MARKER, VIDEO_MARKER, AudioRef, Message, Record, SourceLoc


class ParseError(Exception):
    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(slots=True)
class ParseContext:
    spec: DialectSpec
    source: SourceLoc
    media_root: str
    prompt: str | None = None  # default prompt for transcript-only dialects
    system: str | None = None  # default system prompt when a record has none


def require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], field: str | None = None) -> Any:
    fld = field or key
    if key not in obj or obj[key] is None:
        raise ParseError("S001", f"missing field {key!r}", fld)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ParseError("S001", f"{fld} must be {_kind_name(kind)}, got {type(value).__name__}", fld)
    return value


def optional(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], field: str | None = None) -> Any:
    if obj.get(key) is None:
        return None
    return require(obj, key, kind, field)


def optional_text(obj: dict[str, Any], key: str) -> str | None:
    """A free-text field that some corpora store as JSON (tools): keep it as a string."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    raise ParseError("S001", f"{key} must be a string, got {type(value).__name__}", key)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "an object", int: "an integer", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def audio_ref(value: Any, field: str) -> AudioRef:
    """Classify one audio reference the way a user would expect it read."""
    if isinstance(value, str):
        s = value.strip()
        if not s:
            raise ParseError("S001", "empty audio reference", field)
        if s.startswith("data:"):
            return AudioRef("data_uri", s, field)
        if _SCHEME.match(s):
            if s.startswith("file://"):
                return AudioRef("path", s[7:], field)
            return AudioRef("url", s, field)
        if len(s) >= 128 and "." not in s[-8:]:  # too long for a path with no extension: inline data
            return AudioRef("base64", s, field)
        return AudioRef("path", value, field)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            raw = value["bytes"]
            name = value.get("path") if isinstance(value.get("path"), str) else None
            if isinstance(raw, str):
                kind = "data_uri" if raw.startswith("data:") else "base64"
                return AudioRef(kind, raw, f"{field}.bytes", name=name)
            if isinstance(raw, list) and all(isinstance(b, int) for b in raw[:16]):
                try:
                    return AudioRef("bytes", bytes(raw), f"{field}.bytes", name=name)
                except ValueError:
                    pass
            raise ParseError("S001", "bytes must be a base64 string", f"{field}.bytes")
        if "array" in value:
            arr, sr = value.get("array"), value.get("sampling_rate")
            if not isinstance(arr, list) or not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
                raise ParseError("S001", "array audio needs a list 'array' and a positive int 'sampling_rate'", field)
            return AudioRef("array", arr, field, sampling_rate=sr)
        if isinstance(value.get("data"), str):  # OpenAI input_audio {"data", "format"}
            return AudioRef("base64", value["data"], f"{field}.data", name=f"input.{value.get('format') or 'wav'}")
        for key in ("path", "url", "audio_url"):
            inner = value.get(key)
            if isinstance(inner, dict):
                inner = inner.get("url")
            if isinstance(inner, str):
                return audio_ref(inner, f"{field}.{key}")
        raise ParseError("S001", "audio object needs 'bytes', 'path' or 'array'", field)
    raise ParseError("S001", f"an audio reference must be a string or object, got {type(value).__name__}", field)


def audio_list(value: Any, field: str) -> list[AudioRef]:
    if value is None:
        return []
    if isinstance(value, list):
        return [audio_ref(v, f"{field}[{i}]") for i, v in enumerate(value)]
    return [audio_ref(value, field)]


_AUDIO_KEYS = ("audio", "path", "url", "audio_url", "input_audio")


def content_text(value: Any, field: str, inline: list[AudioRef], bare: list[int]) -> str:
    """A message content as text. Content lists become text with markers in place:
    audio items with a value add to ``inline``; value-less ones count in ``bare``."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ParseError("S001", f"content must be a string or a content list, got {type(value).__name__}", field)
    parts: list[str] = []
    for i, item in enumerate(value):
        parts.append(item if isinstance(item, str) else content_item(item, f"{field}[{i}]", inline, bare))
    return "".join(parts)


def content_item(item: Any, fld: str, inline: list[AudioRef], bare: list[int], value_key: str | None = None) -> str:
    """One content-list item as text, its media as a marker in place.

    ``value_key`` None: chat-template items (``{"type": "text", "text"}``, ``{"type": "audio", "path"|"audio"|...}``).
    ``value_key`` "value": LLaMA-Factory v1 items, which keep every value under that key and must carry one.
    """
    if not isinstance(item, dict):
        raise ParseError("S001", "content item must be an object", fld)
    kind = item.get("type")
    if kind == "text":
        key = value_key or "text"
        return require(item, key, str, f"{fld}.{key}")
    if kind in ("audio", "input_audio", "audio_url"):
        if value_key is not None:
            inline.append(audio_ref(require(item, value_key, str, f"{fld}.{value_key}"), f"{fld}.{value_key}"))
            return AUDIO_MARKER
        key = next((k for k in _AUDIO_KEYS if item.get(k) is not None), None)
        if key is None:
            bare[0] += 1
        else:
            inline.append(audio_ref(item[key], f"{fld}.{key}"))
        return AUDIO_MARKER
    if kind in ("image", "image_url"):
        return IMAGE_MARKER
    if kind in ("video", "video_url"):
        return VIDEO_MARKER
    raise ParseError("S001", f"unknown content item type {kind!r}", f"{fld}.type")


def turns(
    raw: Any,
    field: str,
    ctx: ParseContext,
    inline: list[AudioRef],
    bare: list[int],
    role_key: str | None = None,
    content_key: str | None = None,
) -> list[Message]:
    """Parse a list of message objects into canonical turns (roles mapped, unknown kept)."""
    if not isinstance(raw, list):
        raise ParseError("S001", f"{field} must be a list of messages, got {type(raw).__name__}", field)
    roles = ctx.spec.role_map()
    tags = ctx.spec.tags
    out: list[Message] = []
    for i, m in enumerate(raw):
        fld = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise ParseError("S001", "a message must be an object", fld)
        out.append(message(m, fld, ctx, inline, bare, roles, tags, role_key, content_key))
    return out


def message(
    m: dict[str, Any],
    fld: str,
    ctx: ParseContext,
    inline: list[AudioRef],
    bare: list[int],
    roles: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    role_key: str | None = None,
    content_key: str | None = None,
) -> Message:
    roles = roles if roles is not None else ctx.spec.role_map()
    if role_key is None:
        if tags is not None:
            merged = {**DEFAULT_TAGS, **tags}
            role_key, content_key = merged["role_tag"], merged["content_tag"]
        elif "from" in m:
            role_key, content_key = "from", "value"
        else:
            role_key, content_key = "role", "content"
    content_key = content_key or "content"
    role = require(m, role_key, str, f"{fld}.{role_key}")
    if content_key not in m or m[content_key] is None:
        raise ParseError("S001", f"missing field {content_key!r}", f"{fld}.{content_key}")
    text = content_text(m[content_key], f"{fld}.{content_key}", inline, bare)
    canonical = roles.get(role)
    if canonical is None and tags is None:  # "Human", " gpt ": LLaMA-Factory would not match them; we map and warn
        canonical = roles.get(role.strip().lower())
    raw = role if tags is None else ""  # aliases are only guessed without declared tags
    return Message(canonical or role, text, f"{fld}.{content_key}", raw, f"{fld}.{role_key}")


def pop_system(msgs: list[Message], system: str | None) -> tuple[list[Message], str | None]:
    """A leading system turn moves to ``system`` (it wins over a system column)."""
    if msgs and msgs[0].role == "system":
        return msgs[1:], msgs[0].content
    return msgs, system


def merge_audios(listed: list[AudioRef], inline: list[AudioRef], bare: int, field: str) -> list[AudioRef]:
    """Audio may come from an ``audios`` list or from content items; not both."""
    if inline and listed:
        raise ParseError("S001", "audio is given both inside the messages and in the audios list", field)
    return inline or listed


def record_id(obj: dict[str, Any], ctx: ParseContext) -> str:
    value = obj.get("id")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)
    stem = ctx.source.file.rsplit("/", 1)[-1].split(".", 1)[0] or "record"
    return f"{stem}-{ctx.source.index:06d}"


DURATION_KEYS = ("duration", "audio_duration")


def new_record(obj: dict[str, Any], ctx: ParseContext, dialect: str, **fields: Any) -> Record:
    system = fields.pop("system", None) or ctx.system
    audios = fields.get("audios") or []
    declared = next((obj[k] for k in DURATION_KEYS if k in obj), None)
    if len(audios) == 1 and isinstance(declared, (int, float)) and not isinstance(declared, bool):
        audios[0].declared_duration = float(declared)  # NeMo-style manifests state the clip length
    return Record(id=record_id(obj, ctx), source=ctx.source, media_root=ctx.media_root, dialect=dialect, system=system, **fields)
