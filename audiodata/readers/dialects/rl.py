"""RL (GRPO) records: a prompt and the reference answer a reward checks completions against.

The forms the peers read, each becoming an ``rl`` :class:`Record` (``answer``, ``choices``, ``task``, ``meta``):

- TRL GRPO (``trl/trainer/grpo_trainer.py``: every column but ``prompt``/``completion`` is handed to the reward
  functions as a keyword, ``_calculate_rewards``; ``trl/rewards/accuracy_rewards.py`` reads ``solution``):
  ``{"prompt": [turns] or "text", "solution": ..., <extra columns>}``. Read by the ``messages`` dialect when the
  row carries an answer (:func:`is_rl_row`), through :func:`parse_messages`.
- ms-swift GRPO (``docs/source_en/Customization/Custom-dataset.md``, "PPO/GRPO": extra fields such as
  ``solution`` go to the ORM; ``swift/dataset/preprocessor/core.py`` keeps ``solution`` as ``__#solution``
  through preprocessing; ``swift/utils/utils.py`` ``remove_response`` drops a last assistant turn):
  ``{"messages": [...], "solution": ..., "audios": [...]}``. A reply after the prompt is kept aside in
  ``completion`` (never written; rule Q005 says it was dropped, as ms-swift drops it).
- verl Parquet (``examples/data_preprocess/gsm8k.py``, ``geo3k.py``; ``verl/utils/dataset/rl_dataset.py``
  ``RLHFDataset``): ``data_source``, ``prompt`` (turns), ``ability``, ``reward_model: {style, ground_truth}``,
  ``extra_info: {split, index, ...}``; media by ``<image>``/``<video>`` markers and ``images``/``videos``
  columns. verl has no audio key: ``audios`` with ``<audio>`` markers, the same convention, is what
  ``export --to verl`` writes and this reads (a custom dataset class maps it to the processor).
- MMAU-style audio QA JSON (``mmau-test-mini.json`` in github.com/Sakshi113/MMAU): a list of ``{id, audio_id,
  question, choices, answer, dataset, task, split, category, sub-category, difficulty}``; MMAU's ``task`` is the
  domain (sound, music, speech) and stays in ``meta`` with the other keys; ours is ``mcq``. ``audio_path`` and
  ``audio`` name the audio too (MMAR, AIR-Bench-style files).

The answer is one string (a number is kept as its JSON text); for multiple choice it is the choice's text (a
bare letter ``B`` / ``(B)`` that is not itself a choice is read as the choice it names). ``task`` is the row's
own, else ``mcq`` with choices, else ``qa``. Columns the row has beyond the ones read go to ``meta``, since TRL
and ms-swift hand them to reward functions: nothing a reward could use is lost.
"""

from __future__ import annotations

import json
import re
from typing import Any

from audiodata.readers.dialects.common import (
    ParseContext,
    ParseError,
    Visual,
    audio_list,
    merge_audios,
    new_record,
    optional_text,
    pop_system,
    turns,
    visual_refs,
)
from audiodata.records import AUDIO_MARKER, RESPONSE_ROLES, AudioRef, Message, Record

#: Where a row states its reference answer: ours (and MMAU's), TRL's and ms-swift's ``solution``, verl's name.
ANSWER_KEYS = ("answer", "solution", "ground_truth")
#: The columns the messages-style forms read; any other goes to ``meta``.
READ_KEYS = frozenset(
    {"id", "messages", "prompt", "completion", "system", "tools", "audios", "audio", "images", "image", "videos", "video"}
    | {"choices", "task", "meta", "duration", "audio_duration", *ANSWER_KEYS}
)
#: Keys that make a row a preference or KTO record: not RL as well.
PAIR_KEYS = ("chosen", "rejected", "label", "rejected_response", "rejected_messages", "kto_tag")
#: The audio of an MMAU-style row: MMAU's ``audio_id``, then the names other audio-QA files use.
QA_AUDIO_KEYS = ("audio_id", "audio_path", "audio", "audios")
QA_READ_KEYS = frozenset({"id", "question", "choices", "answer", *QA_AUDIO_KEYS})
#: The lettered choices block the audio-QA reader appends to the question (and ``export --to mmau`` strips).
CHOICES_HEADER = "Choices:"
_LETTER = re.compile(r"^\s*\(?([A-Z])[).:]?\s*$")


def is_rl_row(obj: dict[str, Any]) -> bool:
    """A messages/prompt row with a reference answer (TRL and ms-swift GRPO data)."""
    return any(k in obj for k in ANSWER_KEYS)


def is_verl_row(obj: dict[str, Any]) -> bool:
    """A verl row: ``prompt`` turns and ``reward_model`` (``{style, ground_truth}``)."""
    return isinstance(obj.get("reward_model"), dict) and "prompt" in obj


def is_audio_qa(obj: dict[str, Any]) -> bool:
    """An MMAU-style audio-QA row: a string ``question``, its clip under one of :data:`QA_AUDIO_KEYS`, and ``choices``
    (or MMAU's ``audio_id`` with an ``answer``). A row of audio, question and answer alone is left to the other
    readers (an SFT question-answer set with a ``--task qa`` preset, a NeMo SpeechLLM line): ``--format audio-qa``
    reads it as RL."""
    if not isinstance(obj.get("question"), str) or not any(k in obj for k in QA_AUDIO_KEYS):
        return False
    return "choices" in obj or ("audio_id" in obj and "answer" in obj)


def choices_block(choices: list[str]) -> str:
    """The lettered options under a question: ``Choices:`` then ``(A) first`` ... one a line."""
    return "\n".join([CHOICES_HEADER, *(f"({letter(i)}) {c}" for i, c in enumerate(choices))])


def letter(index: int) -> str:
    return chr(ord("A") + index)


# -- the fields every form shares ------------------------------------------------------------------


def answer_text(value: Any, field: str) -> str | None:
    """The reference answer as one string: text as written, a number as its JSON text; None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    kind = "a list" if isinstance(value, list) else type(value).__name__
    raise ParseError("Q006", f"{field} must be a string or a number (one reference answer), got {kind}", field)


def _answer(obj: dict[str, Any], keys: tuple[str, ...] = ANSWER_KEYS) -> tuple[str | None, str]:
    """The row's answer and the key it sits under; two keys that disagree are an error (which one is meant?)."""
    found = [(k, answer_text(obj[k], k)) for k in keys if k in obj and obj[k] is not None]
    if not found:
        return None, keys[0]
    if len({v for _, v in found}) > 1:
        names = " and ".join(k for k, _ in found)
        raise ParseError("Q006", f"{names} differ: a record has one reference answer", found[1][0])
    return found[0][1], found[0][0]


def _choices(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in value):
        raise ParseError("Q006", f"{field} must be a list of strings (the options, in order)", field)
    return [c if isinstance(c, str) else json.dumps(c) for c in value]


def _by_letter(answer: str | None, choices: list[str] | None) -> str | None:
    """A bare letter (``B``, ``(B)``, ``B.``) that is not itself a choice names the choice at that place."""
    if answer is None or not choices or answer in choices:
        return answer
    m = _LETTER.match(answer)
    if m and ord(m.group(1)) - ord("A") < len(choices):
        return choices[ord(m.group(1)) - ord("A")]
    return answer


def _task(value: Any, choices: list[str] | None, field: str = "task") -> str:
    if value is None or value == "":
        return "mcq" if choices else "qa"
    if not isinstance(value, str):
        raise ParseError("S001", f"{field} must be a string (a task tag such as mcq, asr, qa), got {type(value).__name__}", field)
    return value


def _meta(value: Any, field: str = "meta") -> dict[str, Any] | None:
    """``meta`` as an object: given as one, or as the JSON text of one (as the shards store it)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ParseError("S001", f"{field} is a string but not JSON (write an object)", field) from None
        if value is None:
            return None
    if not isinstance(value, dict):
        raise ParseError("S001", f"{field} must be a JSON object, got {type(value).__name__}", field)
    return value


def _with_extras(meta: dict[str, Any] | None, obj: dict[str, Any], read: frozenset[str]) -> dict[str, Any] | None:
    """``meta`` plus the row's columns that no field reads (the row's own ``meta`` keys win)."""
    extras = {k: v for k, v in obj.items() if k not in read}
    if not extras:
        return meta
    return {**extras, **(meta or {})}


def _split_reply(msgs: list[Message]) -> tuple[list[Message], list[Message] | None]:
    """The prompt (up to its last user turn) and the reply after it, which GRPO discards (None: none)."""
    last = len(msgs)
    while last > 0 and msgs[last - 1].role in RESPONSE_ROLES:
        last -= 1
    return (msgs[:last], msgs[last:]) if last < len(msgs) else (msgs, None)


def _prompt_turns(
    obj: dict[str, Any], key: str, ctx: ParseContext, inline: list[AudioRef], bare: list[int], visual: Visual
) -> list[Message]:
    value = obj.get(key)
    if isinstance(value, str):  # TRL's standard (not conversational) prompt: one user turn
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise ParseError("S001", f"missing field {key!r} (the prompt: a list of {{role, content}} or a string)", key)
    return turns(value, key, ctx, inline, bare, "role", "content", visual)


def _listed(obj: dict[str, Any], name: str) -> tuple[Any, str]:
    key = name if obj.get(name) is not None else name[:-1]
    return obj.get(key), key


# -- the forms ----------------------------------------------------------------------------------------


def parse_messages(obj: dict[str, Any], ctx: ParseContext) -> Record:
    """TRL GRPO (``prompt`` + ``solution``/``answer``) and ms-swift GRPO (``messages`` + ``solution``) rows."""
    pair = next((k for k in PAIR_KEYS if obj.get(k) is not None), None)
    if pair is not None:
        raise ParseError("S001", f"a record with a reference answer (RL) cannot also be a pair or KTO record ({pair})", pair)
    key = "messages" if obj.get("messages") is not None else "prompt"
    inline: list[AudioRef] = []
    bare = [0]
    visual = Visual()
    msgs = _prompt_turns(obj, key, ctx, inline, bare, visual)
    msgs, system = pop_system(msgs, optional_text(obj, "system"))
    msgs, reply = _split_reply(msgs)
    if obj.get("completion") is not None:  # TRL prompt-completion with a solution: the completion is set aside too
        done = obj["completion"]
        done = [{"role": "assistant", "content": done}] if isinstance(done, str) else done
        if not isinstance(done, list):
            raise ParseError("S001", "completion must be a list of {role, content} or a string", "completion")
        reply = [*(reply or []), *turns(done, "completion", ctx, inline, bare, "role", "content", visual)]
    akey = "audios" if obj.get("audios") is not None else "audio"
    audios = merge_audios(audio_list(obj.get(akey), akey), inline, bare[0], key)
    listed = {name: _listed(obj, name) for name in ("images", "videos")}
    choices = _choices(obj.get("choices"), "choices")
    answer, _ = _answer(obj)
    meta = _with_extras(_meta(obj.get("meta")), obj, READ_KEYS)
    return new_record(
        obj,
        ctx,
        "messages",
        kind="rl",
        messages=msgs,
        audios=audios,
        **visual_refs(listed, visual, key),
        system=system,
        tools=optional_text(obj, "tools"),
        completion=reply,
        answer=_by_letter(answer, choices),
        choices=choices,
        task=_task(obj.get("task"), choices),
        meta=meta,
    )


#: verl's columns that the fields read (``audios`` is ours, the audio counterpart of its ``images``).
VERL_READ_KEYS = frozenset(
    {"data_source", "prompt", "ability", "reward_model", "extra_info", "audios", "audio", "images", "videos", "id"}
)
#: The ``data_source`` ``export --to verl`` writes for records that name none (not kept in ``meta``).
VERL_SOURCE = "audiodata"


def parse_verl(obj: dict[str, Any], ctx: ParseContext) -> Record:
    """A verl RL row (``RLHFDataset``): ``prompt`` turns, ``reward_model.ground_truth``, ``ability``, ``extra_info``.

    ``extra_info`` of a verl dataset (``split``, ``index``, ``answer``, ``question``... as its preprocessing wrote
    them) goes to ``meta`` whole, less ``choices`` and ``task`` that fields read; one written by ``export --to
    verl`` holds ``meta`` itself (JSON text) next to the row's place (``index``, ``split``, ``id``)."""
    inline: list[AudioRef] = []
    bare = [0]
    visual = Visual()
    msgs = _prompt_turns(obj, "prompt", ctx, inline, bare, visual)
    msgs, system = pop_system(msgs, None)
    msgs, reply = _split_reply(msgs)
    rm = obj["reward_model"]
    answer = answer_text(rm.get("ground_truth"), "reward_model.ground_truth")
    info = obj.get("extra_info")
    if info is not None and not isinstance(info, dict):
        raise ParseError("S001", f"extra_info must be an object, got {type(info).__name__}", "extra_info")
    info = dict(info or {})
    ours = "meta" in info
    meta: dict[str, Any] = {}
    if obj.get("data_source") is not None and obj["data_source"] != VERL_SOURCE:
        meta["data_source"] = obj["data_source"]
    if rm.get("style") not in (None, "rule"):
        meta["reward_style"] = rm["style"]
    if ours:
        meta.update(_meta(info.get("meta"), "extra_info.meta") or {})
    else:
        meta.update({k: v for k, v in info.items() if k not in ("choices", "task")})
    choices = _choices(info.get("choices"), "extra_info.choices")
    task_value = info.get("task") if info.get("task") is not None else obj.get("ability")
    found = _with_extras(meta, obj, VERL_READ_KEYS) or {}
    akey = "audios" if obj.get("audios") is not None else "audio"
    audios = merge_audios(audio_list(obj.get(akey), akey), inline, bare[0], "prompt")
    listed = {name: (obj.get(name), name) for name in ("images", "videos")}
    named = {**obj, "id": info["id"]} if ours and info.get("id") is not None and obj.get("id") is None else obj
    return new_record(
        named,
        ctx,
        "verl",
        kind="rl",
        messages=msgs,
        audios=audios,
        **visual_refs(listed, visual, "prompt"),
        system=system,
        completion=reply,
        answer=_by_letter(answer, choices),
        choices=choices,
        task=_task(task_value, choices, "ability"),
        meta=found or None,
    )


def parse_audio_qa(obj: dict[str, Any], ctx: ParseContext) -> Record:
    """An MMAU-style row: the user turn is ``<audio>`` per clip, the question, and (with choices) the lettered
    options (:func:`choices_block`), so the model sees what it chooses from; the answer is the choice's text."""
    akey = next((k for k in QA_AUDIO_KEYS if obj.get(k) is not None), None)
    if akey is None:  # the key is there (detection asks for it), its value null
        raise ParseError("S001", f"no audio: an audio-QA row names its clip in {' or '.join(QA_AUDIO_KEYS[:3])}", "audio_id")
    audios = audio_list(obj[akey], akey)
    question = obj["question"]
    choices = _choices(obj.get("choices"), "choices")
    answer, _ = _answer(obj, ("answer",))
    text = AUDIO_MARKER * len(audios) + question.strip()
    if choices:
        text += "\n\n" + choices_block(choices)
    meta = _with_extras(None, obj, QA_READ_KEYS)
    return new_record(
        obj,
        ctx,
        "audio-qa",
        kind="rl",
        messages=[Message("user", text, "question")],
        audios=audios,
        answer=_by_letter(answer, choices),
        choices=choices,
        task="mcq" if choices else "qa",
        meta=meta,
    )


def question_of(text: str, choices: list[str] | None) -> str:
    """The question a user turn written by :func:`parse_audio_qa` came from: markers and the choices block taken
    off (a turn written otherwise keeps its text, less its markers)."""
    if choices:
        block = "\n\n" + choices_block(choices)
        if text.endswith(block):
            text = text[: -len(block)]
    return text.replace(AUDIO_MARKER, "").strip()
