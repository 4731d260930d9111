"""Text-only lint's fused pass: one record's parse, text rules and dedup keys in one function over the parsed dict.

The general path (:class:`audiodata.pipeline.read.Parser`, then :meth:`audiodata.pipeline.lint.Analyser.one`) builds a
:class:`~audiodata.records.Record` with its :class:`~audiodata.records.Message` objects, runs every enabled rule
over it and the compiled schema over the dict, then digests the conversation for the duplicate index: ~55 us a
record, where 100k records/s on 2 cores allows 20. Nearly every record of a real corpus is one of a few plain
shapes and draws no finding at all, so this module answers for exactly those:

* LLaMA-Factory sharegpt (``conversations`` of ``{from, value}`` or ``{role, content}`` turns, SFT, or DPO with
  ``chosen``/``rejected`` message objects), ms-swift ``messages`` of ``{role, content}`` strings (SFT), alpaca
  (``instruction``/``input``/``output``, SFT) and MiniCPM (``audio``/``audios`` + ``text``);
* with an optional leading system turn or ``system`` column, an ``id``, and audio paths (strings);
* whose every check passes: roles in their dialect's standard spelling alternating user/assistant, no empty
  turn, as many ``<audio>`` markers as audios in the places the trainers count them, no marker, special token
  or control character where a rule would flag it.

For such a record :meth:`Fused.record` returns what the worker sends back (kind, audios, exact-dedup digests,
transcript style) computed straight from the dict; for anything else (another key, another type, a role alias,
a finding the general path would report, a path that is not plain) it returns None and the caller runs the
general path on that record. The answer is the general path's by construction of that contract, and
``tests/pipeline/test_fused_lint.py`` checks it by property tests (the same findings, kinds, keys and styles
on generated records of every shape, valid and broken) and on the benchmark corpus (the same report bytes).
A new record rule, or a change to what the sharegpt, messages, alpaca or MiniCPM readers accept, must be mirrored
here (or make the pass step aside for what it concerns), and the generator in that test taught the new case.

Its records come as raw lines of a byte range (:func:`audiodata.readers.jsonstream.range_lines`, read as
:func:`~audiodata.readers.jsonstream.iter_range` reads them); a line it cannot vouch for (blank, not an object on one
line, not JSON orjson reads as ``json`` does) goes the general way as the line reader's item
(:func:`~audiodata.readers.jsonstream.line_item`).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from typing import Any

from audiodata.readers.dialects.common import _impossible_path
from audiodata.readers.spec import DialectSpec
from audiodata.rules.style import Style, style_entry
from audiodata.rules.transcript import is_transcription_prompt

_POSIX = os.path is posixpath

#: Canonical roles as 0 (user), 1 (assistant), 2 (system), for the spellings each message form's trainer reads as
#: they are (``audiodata.readers.spec.STANDARD_ROLES``: no S008); tool turns and aliases take the general path.
_FROM = {"human": 0, "gpt": 1, "system": 2}  # sharegpt {from, value}
_ROLE = {"user": 0, "assistant": 1, "system": 2}  # sharegpt {role, content}, ms-swift messages
_NAMES = ("user", "assistant")

#: The keys each shape may have (any other: the general path decides what it means).
_SHAREGPT = frozenset({"conversations", "audios", "system", "id"})
_SHAREGPT_DPO = _SHAREGPT | {"chosen", "rejected"}
_MESSAGES = frozenset({"messages", "audios", "system", "id"})
_ALPACA = frozenset({"instruction", "input", "output", "audios", "system", "id"})
_MINICPM = frozenset({"audio", "audios", "text", "system", "id"})

#: Text the rules look closer at: special tokens (M005: every token holds one of the first four), image and video
#: markers (M004). A record holding any goes the general way.
_CLOSER = ("<|", "(<audio>./", "audio_", "spk_", "<image>", "<video>")
_BAD_TEXT = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # T001's characters (record_rules._BAD_TEXT)
_BAD_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])  # the same, of ASCII text
_AUDIO = "<audio>"
_PROMPTS = 4096  # distinct prompts remembered (digests, shared strings) before starting over: bounded memory
_PROMPT_CHARS = 1024  # ... each at most this long (style prompts are at most style.MAX_PROMPT_KEY + a digest)


def usable_spec(spec: DialectSpec) -> bool:
    """Whether records of a file read with this spec may take the fused pass: dialects detected per record, with
    their default columns and tags (a ``dataset_info.json`` entry renames and declares: the general path)."""
    return spec == DialectSpec()


def usable_settings(read: Any) -> bool:
    """Whether records read with these settings (:class:`~audiodata.pipeline.read.ReadSettings`) may take the fused
    pass: no prompt or system prompt given, no template, pairs or transcript normalising (all change the record)."""
    plain = read.prompt is None and read.system is None and read.template is None and read.pairs is None
    return plain and read.normalize == "none"


def path_identity(root: str, value: str) -> str:
    """What the exact duplicate index compares of an audio path (text-only lint: no audio is read): the path joined
    to the media root and normalised, as ``os.path.normpath(os.path.join(root, value))`` gives it."""
    path = os.path.join(root, value)
    if _POSIX and path[:1] == "/" and path[-1] != "/" and "//" not in path and "/." not in path:
        return "path:" + path  # normpath leaves such a path as it is: no empty part and no "." or ".." part
    return "path:" + os.path.normpath(path)


#: What :meth:`Fused.record` returns for a record it answers: (kind, audios, (whole, by prompt) digests or None,
#: (prompt, field, style) or None).
Answer = tuple[str, int, "tuple[bytes, bytes | None] | None", "tuple[str, str, Style] | None"]


class Fused:
    """The fused pass for the records of one input file (its media root) with one run's settings."""

    def __init__(self, media_root: str, dedup: bool, style_task: str) -> None:
        self.root, self.dedup, self.style_task = media_root, dedup, style_task
        # path_identity of a plain relative path (no "." or ".." part, no empty part) under an absolute root is the
        # normalised root, "/" and the path: computed once here, not normalised again per clip
        root = os.path.normpath(media_root) if _POSIX and media_root.startswith("/") else None
        self.prefix = None if root is None else "path:" + (root if root.endswith("/") else root + "/")
        self.prompts: dict[str, bytes] = {}  # prompt digests of recent prompts (at most _PROMPTS)
        self.shared: dict[str, str] = {}  # one string object per distinct style prompt and field: pickled once a chunk

    def record(self, obj: Any) -> Answer | None:
        """See the module docstring: the record's answer, or None (the general path decides)."""
        if type(obj) is not dict:
            return None
        keys = obj.keys()
        if "id" in obj and type(obj["id"]) not in (str, int):  # the schema's string or integer (bool is not int here)
            return None
        system = obj.get("system", "")
        if type(system) is not str or ("audios" in obj and obj["audios"] is None):  # null: the schemas refuse it
            return None
        chosen = rejected = None
        if "conversations" in obj:
            if "chosen" in obj or "rejected" in obj:
                if not keys <= _SHAREGPT_DPO:
                    return None
                chosen, cfield = _reply(obj.get("chosen"))
                rejected, _ = _reply(obj.get("rejected"))
                if chosen is None or rejected is None or chosen == rejected:  # P001: the pair teaches nothing
                    return None
                cfield = "chosen." + cfield
            elif not keys <= _SHAREGPT:
                return None
            turns = _turns(obj["conversations"], True)
            if turns is None:
                return None
            contents, turn_system, raw_turns = turns
            key = "conversations"
        elif "messages" in obj:
            if not keys <= _MESSAGES:
                return None
            turns = _turns(obj["messages"], False)
            if turns is None:
                return None
            contents, turn_system, raw_turns = turns
            key = "messages"
        elif "output" in obj or "instruction" in obj:
            if not keys <= _ALPACA:
                return None
            instruction, query, output = obj.get("instruction"), obj.get("input", ""), obj.get("output")
            if type(instruction) is not str or type(output) is not str or type(query) is not str:
                return None  # the schema wants the instruction when there is no input: always asked for here
            contents = [f"{instruction}\n{query}" if instruction and query else instruction or query or "", output]
            turn_system, raw_turns, key = None, None, ""
        elif "text" in obj and ("audio" in obj) != ("audios" in obj):
            if not keys <= _MINICPM:
                return None
            text = obj["text"]
            listed = obj["audios"] if "audios" in obj else obj["audio"]
            if type(text) is not str or type(listed) is not (list if "audios" in obj else str) or not listed:
                return None  # the schema: one reference under audio, a list of at least one under audios
            clips = len(listed) if type(listed) is list else 1
            contents = [_AUDIO * clips, text]
            turn_system, raw_turns, key = None, None, "minicpm"
        else:
            return None
        if turn_system is not None:  # a leading system turn is the system prompt (it wins over the column)
            system = turn_system
        system = system or None
        n = len(contents)
        if chosen is None or rejected is None:
            if n < 2 or n % 2:  # S007: SFT ends on the assistant (alternation is checked while reading the turns)
                return None
            kind = "sft"
            texts = contents
        else:
            if n % 2 == 0 or _AUDIO in chosen or _AUDIO in rejected:  # S007 (a DPO prompt ends on the user), M002
                return None
            kind = "dpo"
            texts = [*contents, chosen, rejected]
        audios = _audio_paths(listed if key == "minicpm" else obj.get("audios"))
        if audios is None:
            return None
        for t in texts:
            if not t or t.isspace():  # S004
                return None
        joined = " ".join(texts)  # no piece looked for holds a space: none spans two texts
        markers = joined.count(_AUDIO)
        if markers != len(audios):  # M001 (DPO: no marker in either reply, so prompt + each side)
            return None
        # every piece of _CLOSER holds a "_", a "(" or a "<" that is not a marker's: only then are they looked for
        if ("_" in joined or "(" in joined or joined.count("<") != markers) and any(p in joined for p in _CLOSER):
            return None
        if not joined.isprintable() or "\ufffd" in joined:  # T001, searched only where a character it names can be
            if joined.isascii():
                raw = joined.encode()
                if len(raw.translate(None, _BAD_BYTES)) != len(raw):
                    return None
            elif _BAD_TEXT.search(joined):
                return None
        if system is not None:
            if _AUDIO in system:  # M003
                return None
            for piece in _CLOSER:
                if piece in system:
                    return None
        style = None
        if audios and self.style_task != "none":
            style = self._style(kind, contents, chosen, system, audios, key, raw_turns, cfield if chosen is not None else "")
        return kind, len(audios), self._digests(kind, contents, chosen, rejected, system, audios), style

    def _digests(
        self, kind: str, contents: list[str], chosen: str | None, rejected: str | None, system: str | None, audios: list[str]
    ) -> tuple[bytes, bytes | None] | None:
        """:func:`audiodata.dedup.index.exact_digests` of :func:`~audiodata.dedup.index.conversation_keys` of the
        record the general path would build (user and assistant turns alternating, no tools)."""
        if not self.dedup:
            return None
        last = len(contents) - 1 if kind == "sft" else len(contents)  # SFT: the last reply is the response
        if last == 1:  # one user turn: the common case, in one piece
            text = f"{system or ''}\x1f\x1fuser\x1f{contents[0]}\x1f\x1e"
        else:
            parts = [system or "", ""]
            for k in range(last):
                parts += (_NAMES[k & 1], contents[k], "\x1e")
            text = "\x1f".join(parts)
        prompts = self.prompts  # corpora repeat a few short prompts over every record: each digested once
        prompt = prompts.get(text)
        if prompt is None:
            prompt = _h(text)
            if len(text) <= _PROMPT_CHARS:  # a long one (a whole conversation) is not kept: bounded memory
                if len(prompts) >= _PROMPTS:
                    prompts.clear()
                prompts[text] = prompt
        # each digest a copy of an empty 16-byte BLAKE2b (the constructor's keywords cost more than the hashing of
        # such short texts); the whole and by-prompt digests share the hashing of their common body
        response = _B16.copy()
        if kind == "sft":
            response.update(f"assistant\x1f{contents[-1]}\x1f\x1e".encode())
        else:
            response.update(f"c\x1fassistant\x1f{chosen}\x1f\x1e\x1fr\x1fassistant\x1f{rejected}\x1f\x1e".encode())
        # exact_digests: the clips' identities length-prefixed after their count, then the prompt digest; the whole
        # digest adds the response digest, the by-prompt one (SFT with audio: conflicts) does not
        whole = _B16.copy()
        if len(audios) == 1:
            token = self.identity(audios[0]).encode()
            whole.update(b"\x01\x00\x00\x00" + len(token).to_bytes(4, "little") + token + prompt)
        else:
            parts_b = [len(audios).to_bytes(4, "little")]
            for a in audios:
                token = self.identity(a).encode()
                parts_b += (len(token).to_bytes(4, "little"), token)
            parts_b.append(prompt)
            whole.update(b"".join(parts_b))
        by_prompt = None
        if kind == "sft" and audios:
            body = whole.copy()
            body.update(b"P")
            by_prompt = body.digest()
        whole.update(b"W" + response.digest())
        return whole.digest(), by_prompt

    def identity(self, path: str) -> str:
        """:func:`path_identity` of a non-empty audio path under this file's media root."""
        prefix = self.prefix
        if prefix is not None and path[0] not in "/." and path[-1] != "/" and "//" not in path and "/." not in path:
            return prefix + path
        return path_identity(self.root, path)

    def _style(
        self,
        kind: str,
        contents: list[str],
        chosen: str | None,
        system: str | None,
        audios: list[str],
        key: str,
        turns: list[Any] | None,
        cfield: str,
    ) -> tuple[str, str, Style] | None:
        """:func:`audiodata.rules.style.transcript_style` of the record (:func:`~audiodata.rules.transcript.transcript_of`
        for its two shapes here: one exchange, or a DPO prompt of one turn)."""
        if kind == "sft":
            if len(contents) != 2:
                return None
            reply = contents[1]
        else:
            if len(contents) != 1:
                return None
            reply = chosen or ""
        if self.style_task != "asr" and (len(audios) != 1 or not is_transcription_prompt(contents[0])):
            return None
        if kind != "sft":
            field = cfield
        elif turns is not None:  # where the reply sits: after the user turn (and a leading system turn)
            i = len(turns) - 1
            field = f"{key}[{i}].{'value' if 'from' in turns[i] else 'content'}"
        else:
            field = "text" if key == "minicpm" else "output"
        prompt, field, style = style_entry(contents[0], system, reply, field)
        shared = self.shared  # the same prompt over and over: one object, so a chunk's pickle holds it once
        if len(shared) >= _PROMPTS:
            shared.clear()
        return shared.setdefault(prompt, prompt), shared.setdefault(field, field), style


def _h(text: str) -> bytes:
    h = _B16.copy()
    h.update(text.encode())
    return h.digest()


_B16 = hashlib.blake2b(digest_size=16)


def _turns(raw: Any, sharegpt: bool) -> tuple[list[str], str | None, list[Any]] | None:
    """(contents, a leading system turn's text, the turns as read) of turns alternating user, assistant, ... in their
    form's standard spellings with string contents and no other key; None for anything else."""
    if type(raw) is not list or not raw:
        return None
    contents: list[str] = []
    system = None
    for i, m in enumerate(raw):
        if type(m) is not dict or len(m) != 2:
            return None
        role = m.get("from") if sharegpt else None
        if role is not None:
            text, table = m.get("value"), _FROM
        else:
            role, text, table = m.get("role"), m.get("content"), _ROLE
        if type(role) is not str or type(text) is not str:
            return None
        want = table.get(role)
        if want is None:
            return None
        if want == 2:
            if i:  # S003: a system turn only leads
                return None
            system = text
        elif want != len(contents) & 1:  # S003: user at even places, assistant at odd ones
            return None
        else:
            contents.append(text)
    return contents, system, raw


def _reply(m: Any) -> tuple[str | None, str]:
    """(text, content key) of a sharegpt ``chosen``/``rejected`` message object that is an assistant turn in its
    form's standard spelling; (None, "") for anything else."""
    if type(m) is not dict or len(m) != 2:
        return None, ""
    if "from" in m:
        role, text, key = m.get("from"), m.get("value"), "value"
        ok = role == "gpt"
    else:
        role, text, key = m.get("role"), m.get("content"), "content"
        ok = role == "assistant"
    return (text, key) if ok and type(text) is str else (None, "")


def _audio_paths(value: Any) -> list[str] | None:
    """The audio paths of an ``audios`` list (or a single reference) that :func:`audiodata.readers.dialects.common.
    media_ref` classifies as plain paths it can name; None for anything else (inline data, URLs, objects, a name no
    file can have)."""
    if value is None:
        return []
    items = value if type(value) is list else [value]
    for v in items:
        if type(v) is not str:
            return None
        s = v.strip()
        if not s or s.startswith("data:") or "://" in s or (len(s) >= 128 and "." not in s[-8:]):
            return None
        if (len(v) > 63 or "\x00" in v) and _impossible_path(v):  # a name no file system allows (A001)
            return None
    return items
