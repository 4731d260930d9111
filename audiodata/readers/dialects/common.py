"""Pieces every dialect parser shares: typed field access, media references
(audio, image, video), content lists. Problems raise :class:`ParseError` located to the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from audiodata.readers.spec import DEFAULT_TAGS, DialectSpec
from audiodata.readers.templates import Template
from audiodata.records import (
    AUDIO_MARKER,
    IMAGE_MARKER,
    RESPONSE_ROLES,
    VIDEO_MARKER,
    AudioRef,
    MediaRef,
    MediaRefKind,
    Message,
    Record,
    SourceLoc,
)


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
    template: Template | None = None  # transcript-only dialects: --task preset or --template file (dialects/prompts.py)
    dialect: str | None = None  # what dialect_of says of the record, when the caller knows it already (else detected)


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


#: The keys under which an object form names its file, per medium (HF structs, OpenAI and Qwen parts).
_OBJECT_KEYS = {
    "audio": ("path", "url", "audio_url"),
    "image": ("path", "url", "image_url", "image"),
    "video": ("path", "url", "video_url", "video"),
}


def media_ref(value: Any, field: str, what: str = "audio") -> MediaRef:
    """Classify one audio, image or video reference the way a user would expect it read:
    path, URL, data URI, base64, bytes (and for audio, decoded samples)."""
    if isinstance(value, str):
        s = value.strip()
        if not s:
            raise ParseError("S001", f"empty {what} reference", field)
        if s.startswith("data:"):
            return MediaRef("data_uri", s, field)
        if _SCHEME.match(s):
            if s.startswith("file://"):
                return MediaRef("path", s[7:], field)
            return MediaRef("url", s, field)
        if len(s) >= 128 and "." not in s[-8:]:  # too long for a path with no extension: inline data
            return MediaRef("base64", s, field)
        impossible = _impossible_path(value)
        if impossible:  # the OS calls would raise (ValueError, ENAMETOOLONG), not report: say it here
            raise ParseError("A001" if what == "audio" else "S030", f"{what} file not found: {impossible}", field)
        return MediaRef("path", value, field)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            raw = value["bytes"]
            name = value.get("path") if isinstance(value.get("path"), str) else None
            if isinstance(raw, str):
                kind: MediaRefKind = "data_uri" if raw.startswith("data:") else "base64"
                return MediaRef(kind, raw, f"{field}.bytes", name=name)
            if isinstance(raw, (bytes, bytearray)):  # a dataset row's Audio/Image cell, a tar member: bytes as stored
                return MediaRef("bytes", bytes(raw), f"{field}.bytes", name=name)
            if isinstance(raw, list) and all(isinstance(b, int) for b in raw[:16]):
                try:
                    return MediaRef("bytes", bytes(raw), f"{field}.bytes", name=name)
                except ValueError:
                    pass
            raise ParseError("S001", "bytes must be a base64 string", f"{field}.bytes")
        if what == "audio" and "array" in value:
            arr, sr = value.get("array"), value.get("sampling_rate")
            if not isinstance(arr, list) or not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
                raise ParseError("S001", "array audio needs a list 'array' and a positive int 'sampling_rate'", field)
            return MediaRef("array", arr, field, sampling_rate=sr)
        if what == "audio" and isinstance(value.get("data"), str):  # OpenAI input_audio {"data", "format"}
            return MediaRef("base64", value["data"], f"{field}.data", name=f"input.{value.get('format') or 'wav'}")
        keys = _OBJECT_KEYS[what]
        for key in keys:
            inner = value.get(key)
            if isinstance(inner, dict):
                inner = inner.get("url")
            if isinstance(inner, str):
                return media_ref(inner, f"{field}.{key}", what)
        want = "'bytes', 'path' or 'array'" if what == "audio" else "'bytes' or one of " + ", ".join(f"'{k}'" for k in keys)
        raise ParseError("S001", f"{what} object needs {want}", field)
    if what == "video" and isinstance(value, list):  # LLaMA-Factory also takes a video as a list of frame files
        msg = "a video given as a list of frame images is not supported; encode the frames into a video file"
        raise ParseError("S032", msg, field)
    article = "a" if what == "video" else "an"
    raise ParseError("S001", f"{article} {what} reference must be a string or object, got {type(value).__name__}", field)


#: No file system in use holds a longer path (Linux PATH_MAX) or file name (NAME_MAX).
MAX_PATH_BYTES, MAX_NAME_BYTES = 4095, 255


def _impossible_path(value: str) -> str | None:
    """Why no file can have the name ``value`` (a NUL in it, or too long), or None."""
    if len(value) <= MAX_NAME_BYTES // 4 and "\x00" not in value:  # 4 UTF-8 bytes a character at most: short enough
        return None
    if "\x00" in value:
        return f"{value[:200]!r} contains a NUL character, which no file name can"
    size = len(value.encode("utf-8", "surrogatepass"))
    longest = max((len(part.encode("utf-8", "surrogatepass")) for part in value.split("/")), default=0)
    if size > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        what = f"a path of {size} bytes" if size > MAX_PATH_BYTES else f"a file or folder name of {longest} bytes"
        return f"{value[:120]!r}... is {what}, longer than any file system allows"
    return None


def audio_ref(value: Any, field: str) -> MediaRef:
    """Classify one audio reference (see :func:`media_ref`)."""
    return media_ref(value, field, "audio")


def media_list(value: Any, field: str, what: str = "audio") -> list[MediaRef]:
    """A list column (``audios``, ``images``, ``videos``) or a single reference (wrapped, as LLaMA-Factory does)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [media_ref(v, f"{field}[{i}]", what) for i, v in enumerate(value)]
    return [media_ref(value, field, what)]


def audio_list(value: Any, field: str) -> list[MediaRef]:
    return media_list(value, field, "audio")


@dataclass(slots=True)
class Visual:
    """Images and videos a record's content lists carry (with a value), in marker order."""

    images: list[MediaRef] = field(default_factory=list)
    videos: list[MediaRef] = field(default_factory=list)


def visual_refs(listed: dict[str, tuple[Any, str]], inline: Visual, field: str) -> dict[str, list[MediaRef]]:
    """The record's ``images`` and ``videos``: from their columns (``listed``: name -> (value, column))
    or from content items; not both for one medium, like audio."""
    out: dict[str, list[MediaRef]] = {}
    for name, what in (("images", "image"), ("videos", "video")):
        value, column = listed.get(name, (None, name))
        refs = media_list(value, column, what)
        inner: list[MediaRef] = getattr(inline, name)
        if inner and refs:
            raise ParseError("S001", f"{what}s are given both inside the messages and in the {column} list", field)
        out[name] = inner or refs
    return out


_AUDIO_KEYS = ("audio", "path", "url", "audio_url", "input_audio")


def content_text(value: Any, field: str, inline: list[AudioRef], bare: list[int], visual: Visual | None = None) -> str:
    """A message content as text. Content lists become text with markers in place:
    audio items with a value add to ``inline``; value-less ones count in ``bare``; image
    and video items with a value add to ``visual`` (value-less ones take theirs from the
    record's ``images``/``videos`` lists)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ParseError("S001", f"content must be a string or a content list, got {type(value).__name__}", field)
    parts: list[str] = []
    for i, item in enumerate(value):
        parts.append(item if isinstance(item, str) else content_item(item, f"{field}[{i}]", inline, bare, visual=visual))
    return "".join(parts)


def content_item(
    item: Any, fld: str, inline: list[AudioRef], bare: list[int], value_key: str | None = None, visual: Visual | None = None
) -> str:
    """One content-list item as text, its media as a marker in place.

    ``value_key`` None: chat-template items (``{"type": "text", "text"}``, ``{"type": "audio", "path"|"audio"|...}``).
    ``value_key`` "value": LLaMA-Factory v1 items, which keep every value under that key and must carry one.
    Image and video references join ``visual`` when one is given (markers only otherwise).
    """
    if not isinstance(item, dict):
        raise ParseError("S001", "content item must be an object", fld)
    kind = item.get("type")
    key: str | None  # the item's field that holds its value
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
    if kind in ("image", "image_url", "video", "video_url"):
        what = "image" if kind.startswith("image") else "video"
        if value_key is not None:
            key = value_key
            value = require(item, value_key, str, f"{fld}.{value_key}")
        else:
            key = next((k for k in _OBJECT_KEYS[what] if item.get(k) is not None), None)
            value = item.get(key) if key is not None else None
        if key is not None and visual is not None:
            getattr(visual, f"{what}s").append(media_ref(value, f"{fld}.{key}", what))
        return IMAGE_MARKER if what == "image" else VIDEO_MARKER
    raise ParseError("S001", f"unknown content item type {kind!r}", f"{fld}.type")


def turns(
    raw: Any,
    field: str,
    ctx: ParseContext,
    inline: list[AudioRef],
    bare: list[int],
    role_key: str | None = None,
    content_key: str | None = None,
    visual: Visual | None = None,
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
        out.append(message(m, fld, ctx, inline, bare, roles, tags, role_key, content_key, visual))
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
    visual: Visual | None = None,
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
    text = content_text(m[content_key], f"{fld}.{content_key}", inline, bare, visual)
    canonical = roles.get(role)
    if canonical is None and tags is None:  # "Human", " gpt ", "function-call": the trainer may not match them; we map and warn
        canonical = roles.get(role.strip().lower().replace("-", "_"))
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


def kto_label(obj: dict[str, Any], key: str, declared: bool) -> bool | None:
    """The KTO label under ``key``: None when the record has none and none was declared.

    LLaMA-Factory reads ``kto_tag`` only as a JSON bool and quietly drops anything else
    (``"true"``, 1, null); ms-swift and TRL read ``label`` the same way. Here anything but a
    bool is a located error, so no label is ever lost or guessed."""
    if key not in obj:
        if declared:
            raise ParseError("P002", f"missing KTO label {key!r} (the dataset declares one per record)", key)
        return None
    value = obj[key]
    if not isinstance(value, bool):
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ParseError("P002", f"KTO label {key!r} must be true or false (a JSON boolean), got {shown}", key)
    return value


def pair_and_kto(key: str) -> ParseError:
    return ParseError("P002", f"a record is either a preference pair (chosen/rejected) or KTO ({key}), not both", key)


def split_completion(msgs: list[Message], field: str) -> tuple[list[Message], list[Message]]:
    """KTO: the last turn is the completion the label judges; the turns before it are the prompt."""
    if not msgs or msgs[-1].role not in RESPONSE_ROLES:
        raise ParseError("S007", "a KTO record must end on the assistant turn its label judges", field)
    return msgs[:-1], [msgs[-1]]


def record_id(obj: dict[str, Any], ctx: ParseContext) -> str:
    return stable_id(obj, ctx.source.file, ctx.source.index)


def stable_id(obj: Any, file: str, index: int) -> str:
    """A record's id: its own ``id``, else ``<file stem>-<index>``. The shards' ``id`` column, quarantine.jsonl
    and ``--exclude`` (which recomputes it for rejects.jsonl lines) all name records by it."""
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)
    return f"{_stem(file)}-{index:06d}"


@lru_cache(maxsize=256)
def _stem(file: str) -> str:
    """The name records of ``file`` are numbered under (one per input file: computed once, not per record)."""
    return file.split("?", 1)[0].rsplit("/", 1)[-1].split(".", 1)[0] or "record"  # hf://owner/name?split=x


DURATION_KEYS = ("duration", "audio_duration")


def new_record(obj: dict[str, Any], ctx: ParseContext, dialect: str, **fields: Any) -> Record:
    system = fields.pop("system", None) or ctx.system
    audios = fields.get("audios") or []
    declared = None
    for k in DURATION_KEYS:  # the first one present (a loop, not a generator per record)
        if k in obj:
            declared = obj[k]
            break
    if len(audios) == 1 and isinstance(declared, (int, float)) and not isinstance(declared, bool):
        audios[0].declared_duration = float(declared)  # NeMo-style manifests state the clip length
    return Record(id=record_id(obj, ctx), source=ctx.source, media_root=ctx.media_root, dialect=dialect, system=system, **fields)
