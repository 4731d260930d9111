"""Templates: how a transcript-only corpus (NeMo, lhotse, subtitles, dataset and tar rows, MiniCPM rows)
becomes instruction data: a user turn drawn from a prompt pool, an assistant turn from a column, an
optional system prompt.

A template is a ``--task`` preset (:data:`PRESETS`: ``asr``, ``translate``, ``caption``, ``qa``) or a YAML
file (``--template FILE``, :func:`load_template`)::

    system: "Translate all input audio into {target_lang}."   # optional
    user:                                                    # one prompt, or a pool of them
      - "<audio>"
    assistant: translation      # optional: the column the reply is read from (default: the transcript)
    defaults: {target_lang: English}   # optional: values for placeholders a record does not carry
    seed: 0                     # optional: which prompt of the pool each record gets
    task: none                  # optional: auto | asr | none, what the transcript-rate (R) rules measure

``<audio>`` marks where the clip goes (a prompt without one gets it in front, one per clip);
``{name}`` is filled from the record: ``{lang}`` from the language the corpus states (NeMo ``lang``,
lhotse supervision ``language``, a ``lang``/``language``/``locale`` column), ``{target_lang}`` from a
``target_lang`` column or ``--target-lang``, any other name from the column of that name; then from
``defaults``. A record that lacks a value is rejected (S001) naming the placeholder, never given a prompt
with a hole. ``{{`` and ``}}`` are literal braces.

Each record's prompt is drawn from the pool by a hash of the seed and the record's id: the same record
gets the same prompt on every run, with any worker count, after a resume, in lint as in convert.
:func:`audiodata.readers.dialects.prompts.choose_prompt` is the one place it is applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiodata.errors import UsageError

#: Columns ``{lang}`` is read from when the reader does not state the language itself.
LANG_KEYS = ("lang", "language", "locale")
#: The keys a template file may hold (anything else is a typo: refused, not ignored).
KEYS = ("system", "user", "assistant", "defaults", "seed", "task", "description")

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(UsageError):
    """A template file that cannot be used (exit 2), named with the key at fault."""


class MissingValue(Exception):
    """A placeholder the record gives no value for: the reader turns it into its located S001."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


@dataclass(frozen=True, slots=True)
class Template:
    """A resolved template: picklable, the same in every worker."""

    name: str  # the preset's name, or the file as given
    user: tuple[str, ...] = ()  # the prompt pool (empty: the user turn is the audio alone)
    assistant: str | None = None  # the reply's column (None: the reader's transcript)
    system: str | None = None
    defaults: tuple[tuple[str, str], ...] = ()  # placeholder values a record may lack
    seed: int = 0
    task: str = "auto"  # what the R rules measure for these records
    preset: bool = False  # a --task preset fills in only where a record has no prompt of its own

    def pick(self, key: str) -> str:
        """The pool's prompt for the record ``key`` (its id): a stable hash, not a random draw."""
        if not self.user:
            return ""
        if len(self.user) == 1:
            return self.user[0]
        digest = hashlib.blake2b(f"{self.seed}:{key}".encode(), digest_size=8).digest()
        return self.user[int.from_bytes(digest, "big") % len(self.user)]

    def digest(self) -> str:
        """What the template says, for the run fingerprint: an edited template file is a different run."""
        blob = repr((self.user, self.assistant, self.system, self.defaults, self.seed, self.task, self.preset))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def names(self) -> set[str]:
        """The placeholder names the prompts and the system prompt hold."""
        return {n for text in (*self.user, self.system or "") for n in placeholders(text)}

    def describe(self) -> dict[str, Any]:
        """What the template says, for the manifest and the card: a file by its name only (no local path)."""
        return {
            "template": self.name if self.preset else Path(self.name).name,
            "preset": self.preset,
            "user": list(self.user),
            "assistant": self.assistant,
            "system": self.system,
            "defaults": dict(self.defaults),
            "seed": self.seed,
        }

    def with_values(self, seed: int | None = None, target_lang: str | None = None) -> Template:
        """This template with ``--prompt-seed`` and ``--target-lang`` applied (they override the file's)."""
        defaults = dict(self.defaults)
        if target_lang is not None:
            defaults["target_lang"] = target_lang
        return Template(
            self.name,
            self.user,
            self.assistant,
            self.system,
            tuple(sorted(defaults.items())),
            self.seed if seed is None else seed,
            self.task,
            self.preset,
        )


def render(text: str, values: Mapping[str, Any], defaults: Mapping[str, str], language: str | None = None) -> str:
    """``text`` with its ``{name}`` placeholders filled from the record (``values``: its columns; ``language``:
    what the reader knows of it), else ``defaults``. Raises :class:`MissingValue` for a name with no value."""

    def fill(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        name = m.group(1)
        value = lookup(name, values, language)
        if value is None:
            value = defaults.get(name)
        if value is None:
            hint = (
                "give --target-lang LANG (or a target_lang column)"
                if name == "target_lang"
                else "add the column, or give it under the template's defaults"
            )
            raise MissingValue(name, f"the template names {{{name}}}, but the record has no {name!r}: {hint}")
        return value

    return _PLACEHOLDER.sub(fill, text)


def lookup(name: str, values: Mapping[str, Any], language: str | None = None) -> str | None:
    """The record's own value for ``name`` (None: it has none). A column holding something other than text or
    a number is a :class:`MissingValue` that says so."""
    keys: tuple[str, ...] = (name,)
    if name == "lang":
        if language:
            return language
        keys = LANG_KEYS
    for key in keys:
        value = values.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            got = type(value).__name__
            raise MissingValue(key, f"{key} must be text or a number to fill the template's {{{name}}}, got {got}")
        return str(value)
    return None


def placeholders(text: str) -> list[str]:
    """The placeholder names ``text`` holds, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None]


# -- presets ---------------------------------------------------------------------------------------------------

#: ``--task`` presets. ASR prompts are ones lint's transcription test (``is_transcription_prompt``) recognises,
#: so R rules, A017 and the trainer's WER choice see them as what they are.
PRESETS: dict[str, Template] = {
    "asr": Template(
        "asr",
        (
            "Transcribe the audio.",
            "Please transcribe this recording.",
            "Write down what is said in the audio.",
            "What does the speaker say?",
            "Transcribe the speech into text.",
            "Convert this speech to text.",
        ),
        task="asr",
        preset=True,
    ),
    "translate": Template(
        "translate",
        (
            "Translate the audio into {target_lang}.",
            "Translate what is said into {target_lang}.",
            "Listen to the recording and translate it into {target_lang}.",
            "Give a {target_lang} translation of this speech.",
        ),
        task="none",
        preset=True,
    ),
    "caption": Template(
        "caption",
        (
            "Describe the audio.",
            "Write a short caption for this audio clip.",
            "What sounds can be heard in this recording?",
            "Describe what you hear.",
        ),
        task="none",
        preset=True,
    ),
    "qa": Template("qa", ("{question}",), assistant="answer", task="none", preset=True),
}

#: Every ``--task``: ``auto`` and ``none`` only steer the R rules (no prompts); the others are presets.
TASKS = ("auto", "none", *PRESETS)


def preset(task: str) -> Template | None:
    return PRESETS.get(task)


# -- template files --------------------------------------------------------------------------------------------


def load_template(path: str | Path) -> Template:
    """A YAML template file, checked whole: a key that is not a template's, a pool that is not text, a
    placeholder that is not a name, each stops the run (exit 2) naming the file and the key."""
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"--template {where}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TemplateError(f"--template {where}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise TemplateError(f"--template {where}{at}: not YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise TemplateError(f"--template {where}: must be a mapping with user/assistant/system keys")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise TemplateError(f"--template {where}: unknown key {unknown[0]!r} (a template holds {', '.join(KEYS)})")

    def bad(key: str, need: str) -> TemplateError:
        return TemplateError(f"--template {where}: {key} must be {need}, got {data[key]!r}")

    user = data.get("user")
    pool: tuple[str, ...]
    if user is None:
        pool = ()
    elif isinstance(user, str):
        pool = (user,)
    elif isinstance(user, list) and user and all(isinstance(p, str) for p in user):
        pool = tuple(user)
    else:
        raise bad("user", "a prompt or a non-empty list of prompts")
    system = data.get("system")
    if system is not None and (not isinstance(system, str) or not system.strip()):
        raise bad("system", "text")
    assistant = data.get("assistant")
    if assistant is not None and (not isinstance(assistant, str) or not _NAME.fullmatch(assistant)):
        raise bad("assistant", "a column name")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in defaults.items()
    ):
        raise bad("defaults", "a mapping of names to text")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise bad("seed", "an integer")
    # what the transcript-rate (R) rules measure; imported here: the rules import the dialects, which import this
    from audiodata.rules.transcript import TASKS as RATE_TASKS

    task = data.get("task", "auto")
    if task not in RATE_TASKS:
        raise bad("task", f"one of {', '.join(RATE_TASKS)}")
    for key, text_ in [*((f"user[{i}]", p) for i, p in enumerate(pool)), ("system", system or "")]:
        if not text_.strip() and key != "system":
            raise TemplateError(f"--template {where}: {key} is empty (leave user out for the audio alone)")
        for name in placeholders(text_):
            if not _NAME.fullmatch(name):
                raise TemplateError(
                    f"--template {where}: {key} has {{{name}}}, which is not a column name (write {{{{ and }}}} for braces)"
                )
    return Template(
        where,
        pool,
        assistant,
        system,
        tuple(sorted((str(k), str(v)) for k, v in defaults.items())),
        seed,
        task,
    )
