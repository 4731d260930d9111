"""Rules over one parsed record: structure, markers and pairs.

They mirror what LLaMA-Factory checks (and where it crashes or silently drops),
see shared research notes: role order, message counts, ``<audio>`` counts over
prompt + response (prompt + chosen and prompt + rejected separately for DPO).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from audiodata.readers.spec import standard_spelling
from audiodata.records import (
    AUDIO_MARKER,
    IMAGE_MARKER,
    PROMPT_ROLES,
    RESPONSE_ROLES,
    ROLES,
    VIDEO_MARKER,
    Message,
    Record,
)
from audiodata.rules.findings import Finding
from audiodata.rules.registry import RuleDoc, Severity, record_rule

E, W = Severity.ERROR, Severity.WARNING


def _field(m: Message, default: str) -> str:
    return m.field or default


@record_rule(
    "S002",
    "unknown-role",
    E,
    "A turn has a role that is not user/assistant/tool/function_call; map it or fix the tag.",
    doc=RuleDoc(
        what="Every turn's role maps to user, assistant, tool or function_call (after the dialect's tags and "
        "aliases), or is a leading system turn.",
        why="LLaMA-Factory and ms-swift drop or crash on a role they do not know; the turn's text would train as nobody's.",
        fix="Map the tag to a standard role (LLaMA-Factory's `tags` in dataset_info.json), or fix the role.",
        example='`{"conversations": [{"from": "narrator", "value": "<audio>hi"}, {"from": "gpt", "value": "x"}], '
        '"audios": ["a.wav"]}`',
    ),
)
def unknown_role(rec: Record) -> Iterator[Finding]:
    for name, turns in (("messages", rec.messages), *_response_sides(rec)):
        for i, m in enumerate(turns or []):
            if m.role not in ROLES and m.role != "system":
                yield Finding("S002", f"unknown role {m.role!r}", _field(m, f"{name}[{i}]"))


@record_rule(
    "S003",
    "role-order",
    E,
    "System only first; user and assistant turns must alternate, starting with user.",
    doc=RuleDoc(
        what="A system turn only leads the conversation (it becomes `system`); after it, turns alternate: "
        "user or tool at even positions, assistant or function_call at odd ones, starting with the user.",
        why="LLaMA-Factory's sharegpt converter checks exactly this order and drops the whole record when it "
        "fails (a silent loss); the chat template would otherwise attribute text to the wrong speaker.",
        fix="Reorder or merge turns so the user and the assistant alternate; move a system turn to the front.",
        example='`{"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "<audio>y"}], '
        '"audios": ["a.wav"]}`',
    ),
)
def role_order(rec: Record) -> Iterator[Finding]:
    for i, m in enumerate(rec.messages):
        if m.role == "system":
            msg = "a system turn inside the conversation; only a leading one is allowed (it becomes `system`)"
            yield Finding("S003", msg, _field(m, f"messages[{i}]"))
            return
        want = PROMPT_ROLES if i % 2 == 0 else RESPONSE_ROLES
        if m.role in ROLES and m.role not in want:
            side = "user/tool" if i % 2 == 0 else "assistant/function_call"
            yield Finding("S003", f"turn {i} is {m.role!r} but must be {side}", _field(m, f"messages[{i}]"))
            return


@record_rule(
    "S004",
    "empty-content",
    E,
    "A turn has empty text; fill it or drop the turn.",
    doc=RuleDoc(
        what="No turn is empty or whitespace only.",
        why="An empty assistant turn trains the model to say nothing; an empty user turn is usually a lost transcript.",
        fix="Fill the turn, or drop it with its partner turn.",
        example='`{"conversations": [{"from": "human", "value": "<audio>What is said?"}, {"from": "gpt", '
        '"value": "   "}], "audios": ["a.wav"]}`',
    ),
)
def empty_content(rec: Record) -> Iterator[Finding]:
    for fld, text in rec.texts():
        if not text.strip():
            yield Finding("S004", "empty content", fld)


@record_rule(
    "S007",
    "turn-count",
    E,
    "SFT must end on an assistant turn; a DPO or KTO prompt must end on a user turn.",
    doc=RuleDoc(
        what="An SFT conversation has an even number of turns (at least 2) and ends on the assistant; a DPO "
        "or KTO prompt has an odd number and ends on the user.",
        why="A conversation ending on the user has nothing to learn from (LLaMA-Factory drops it); a "
        "preference prompt ending on the assistant leaves its chosen/rejected replies answering nobody.",
        fix="Drop the trailing turn, or add the missing reply.",
        example='`{"conversations": [{"from": "human", "value": "<audio>a"}, {"from": "gpt", "value": "b"}, '
        '{"from": "human", "value": "c"}], "audios": ["a.wav"]}`',
    ),
)
def turn_count(rec: Record) -> Iterator[Finding]:
    n = len(rec.messages)
    if rec.kind == "sft":
        if n < 2 or n % 2 != 0:
            yield Finding("S007", f"an SFT conversation needs an even number (>= 2) of turns, got {n}", "messages")
    elif n % 2 != 1:
        yield Finding("S007", f"a {rec.kind.upper()} prompt needs an odd number of turns ending on the user, got {n}", "messages")


@record_rule(
    "S006",
    "pair-not-assistant",
    E,
    "chosen/rejected (DPO) and the completion (KTO) must be assistant turns.",
    doc=RuleDoc(
        what="A DPO record's chosen and rejected sides, and a KTO record's completion, are present and made "
        "of assistant (or function_call) turns.",
        why="The preference is over the model's reply; a user turn there trains the model to speak for the user.",
        fix="Make the chosen/rejected/completion turns the assistant's replies.",
        example='`{"conversations": [{"from": "human", "value": "<audio>Sum up."}], "chosen": {"from": "human", '
        '"value": "x"}, "rejected": {"from": "gpt", "value": "y"}, "audios": ["a.wav"]}`',
    ),
)
def pair_roles(rec: Record) -> Iterator[Finding]:
    for name, turns in _response_sides(rec):
        if not turns:
            yield Finding("S006", f"{name} is empty", name)
        for i, m in enumerate(turns or []):
            if m.role not in RESPONSE_ROLES:
                yield Finding("S006", f"{name} turn has role {m.role!r}", _field(m, f"{name}[{i}]"))


@record_rule(
    "P001",
    "chosen-equals-rejected",
    W,
    "chosen and rejected are identical: the pair teaches nothing.",
    doc=RuleDoc(
        what="A DPO record whose chosen and rejected replies are identical.",
        why="The pair has no preference to learn; ms-swift deletes such rows (so `export --to ms-swift` skips them).",
        fix="Replace the rejected reply with a worse one, or drop the record.",
        example='`{"conversations": [{"from": "human", "value": "<audio>Sum up."}], "chosen": {"from": "gpt", '
        '"value": "A."}, "rejected": {"from": "gpt", "value": "A."}, "audios": ["a.wav"]}`',
    ),
)
def identical_pair(rec: Record) -> Iterator[Finding]:
    same = rec.chosen and rec.rejected and [m.to_dict() for m in rec.chosen] == [m.to_dict() for m in rec.rejected]
    if rec.kind == "dpo" and same:
        yield Finding("P001", "chosen and rejected are identical", "chosen")


def _response_sides(rec: Record) -> list[tuple[str, list[Message] | None]]:
    """The responses trained against the prompt, named as in the output: chosen and rejected
    (DPO), completion (KTO); none for SFT, whose responses sit inside ``messages``."""
    if rec.kind == "dpo":
        return [("chosen", rec.chosen), ("rejected", rec.rejected)]
    if rec.kind == "kto":
        return [("completion", rec.completion)]
    return []


def _count(turns: list[Message] | None, marker: str) -> int:
    return sum(m.content.count(marker) for m in turns or [])


@record_rule(
    "M001",
    "audio-marker-count",
    E,
    "The number of <audio> markers must equal the number of audios.",
    fixable=True,
    doc=RuleDoc(
        what="The `<audio>` markers in the conversation equal the number of audios; for DPO and KTO, the "
        "prompt plus each response side is counted separately, as the trainers count them.",
        why="Each marker expands to one clip's audio tokens; a mismatch stops LLaMA-Factory with 'The number "
        "of audios does not match the number of <audio> tokens', or pairs text with the wrong clip.",
        fix="Add or remove markers so each clip has one; `lint --fix` adds a missing leading marker when "
        "there is exactly one audio and no marker.",
        example='`{"conversations": [{"from": "human", "value": "<audio><audio>Compare."}, {"from": "gpt", '
        '"value": "Same."}], "audios": ["a.wav"]}`',
    ),
)
def marker_count(rec: Record) -> Iterator[Finding]:
    n_audio = len(rec.audios)
    if rec.kind in ("sft", "rl"):  # RL: the prompt alone (a reply it carried is dropped, Q005)
        seen = _count(rec.messages, AUDIO_MARKER)
        if seen != n_audio:
            yield Finding("M001", f"{seen} <audio> marker(s) for {n_audio} audio(s)", "messages")
        return
    prompt = _count(rec.messages, AUDIO_MARKER)
    for name, turns in _response_sides(rec):
        seen = prompt + _count(turns, AUDIO_MARKER)
        if seen != n_audio:
            yield Finding("M001", f"prompt + {name} hold {seen} <audio> marker(s) for {n_audio} audio(s)", name)


@record_rule(
    "M002",
    "marker-in-response",
    E,
    "<audio> inside a DPO/KTO response is counted by trainers; keep markers in the prompt.",
    doc=RuleDoc(
        what="No `<audio>` marker inside a DPO chosen/rejected reply or a KTO completion.",
        why="Trainers count markers over prompt + response; a marker in one response shifts the audio of the "
        "other side (and LLaMA-Factory's KTO borrows responses from other records).",
        fix="Keep markers in the prompt.",
        example='`{"conversations": [{"from": "human", "value": "Sum up."}], "chosen": {"from": "gpt", "value": '
        '"<audio> is about cats"}, "rejected": {"from": "gpt", "value": "x"}, "audios": ["a.wav"]}`',
    ),
)
def marker_in_response(rec: Record) -> Iterator[Finding]:
    for name, turns in _response_sides(rec):
        for i, m in enumerate(turns or []):
            if AUDIO_MARKER in m.content:
                yield Finding("M002", f"<audio> marker in {name}", _field(m, f"{name}[{i}]"))


@record_rule(
    "M003",
    "marker-in-system",
    W,
    "<audio> in system or tools is neither counted nor expanded; move it to a user turn.",
    doc=RuleDoc(
        what="No `<audio>` marker in the system prompt or the tool definitions.",
        why="Trainers expand markers in conversation turns only: one in the system prompt stays literal text "
        "and its clip is never heard (`export` skips such records).",
        fix="Move the marker to the user turn that asks about the audio.",
        example='`{"conversations": [...], "system": "Listen to <audio> carefully", "audios": ["a.wav"]}`',
    ),
)
def marker_in_system(rec: Record) -> Iterator[Finding]:
    for name, text in (("system", rec.system), ("tools", rec.tools)):
        if text and AUDIO_MARKER in text:
            yield Finding("M003", f"<audio> marker in {name}", name)


def _sides(rec: Record) -> list[tuple[str, list[Message]]]:
    """What a trainer counts markers over, as LLaMA-Factory's ``process_messages`` sees it: the whole
    conversation for SFT, the prompt plus each response for DPO (chosen, rejected) and KTO."""
    if rec.kind == "dpo":
        return [("chosen", rec.chosen or []), ("rejected", rec.rejected or [])]
    if rec.kind == "kto":
        return [("completion", rec.completion or [])]
    return [("messages", [])]


@record_rule(
    "M004",
    "image-video-marker",
    E,
    "The number of <image>/<video> markers must equal the number of images/videos (LLaMA-Factory's _validate_messages).",
    doc=RuleDoc(
        what="The `<image>` and `<video>` markers equal the images and videos the record lists (prompt plus "
        "each response side for DPO and KTO), as LLaMA-Factory's `_validate_messages` counts them.",
        why="LLaMA-Factory stops on a mismatch; ms-swift pairs the wrong image with the text.",
        fix="Add the missing image or video, or remove the stray marker.",
        example='`{"conversations": [{"from": "human", "value": "<audio>Describe <image>."}, {"from": "gpt", '
        '"value": "A cat."}], "audios": ["a.wav"]}`',
    ),
)
def other_media_markers(rec: Record) -> Iterator[Finding]:
    if not rec.images and not rec.videos:
        joined = "\n".join([t for _, t in rec.texts()])  # a marker holds no line break: none spans two texts
        if IMAGE_MARKER not in joined and VIDEO_MARKER not in joined:
            return  # no image, no video, no marker in any turn counted below: every count is 0 of 0
    found: set[tuple[str, str]] = set()
    for marker, refs in ((IMAGE_MARKER, rec.images), (VIDEO_MARKER, rec.videos)):
        what = marker[1:-1]
        for name, side in _sides(rec):
            turns = [*rec.messages, *side]
            seen = _count(turns, marker)
            if seen == len(refs):
                continue
            where = "messages hold" if rec.kind == "sft" else f"prompt + {name} hold"
            fld = refs[seen].field if seen < len(refs) else _nth_marker_field(turns, marker, len(refs), len(rec.messages), name)
            if (marker, fld) not in found:  # a surplus in the shared prompt shows once, not per response
                found.add((marker, fld))
                yield Finding("M004", f"{where} {seen} {marker} marker(s) for {len(refs)} {what}(s)", fld)


def _nth_marker_field(turns: list[Message], marker: str, n: int, n_prompt: int, side: str) -> str:
    """The field of the turn holding the ``n``-th (0-based) ``marker``: the first one without its media."""
    for i, m in enumerate(turns):
        n -= m.content.count(marker)
        if n < 0:
            return _field(m, f"messages[{i}]" if i < n_prompt else f"{side}[{i - n_prompt}]")
    return "messages"


@record_rule(
    "M006",
    "video-audio-pairing",
    W,
    "With videos and audios, LLaMA-Factory's use_audio_in_video (Qwen2.5-Omni) needs one audio per video, "
    "each <video> followed by its <audio> in the same turn.",
    doc=RuleDoc(
        what="In records with videos and audios (Qwen2.5-Omni's use_audio_in_video), one audio per video, "
        "each `<video>` followed by its `<audio>` in the same turn.",
        why="LLaMA-Factory's Qwen2OmniPlugin pairs each video with the next audio in its turn; out of order, "
        "a video gets another clip's sound and a marker stays unexpanded.",
        fix="Put each `<audio>` right after its `<video>`, one audio per video.",
        example='`{"conversations": [{"from": "human", "value": "<audio><video>What happens?"}, ...], "audios": '
        '["a.wav"], "videos": ["v.mp4"]}`',
    ),
)
def video_audio_pairing(rec: Record) -> Iterator[Finding]:
    if not rec.videos or not rec.audios:
        return
    if len(rec.videos) != len(rec.audios):
        msg = f"{len(rec.videos)} video(s) but {len(rec.audios)} audio(s): use_audio_in_video needs as many of each"
        yield Finding("M006", msg, "videos")
        return
    flagged: set[str] = set()
    for name, side in _sides(rec):
        for i, m in enumerate([*rec.messages, *side]):
            fld = _field(m, f"messages[{i}]" if i < len(rec.messages) else f"{name}[{i - len(rec.messages)}]")
            problem = _pairing_problem(m.content)
            if problem and fld not in flagged:
                flagged.add(fld)
                yield Finding("M006", f"{problem} (use_audio_in_video)", fld)


def _pairing_problem(content: str) -> str | None:
    """LLaMA-Factory's Qwen2OmniPlugin loop over one turn: each <video> takes the first <audio> after it
    and then drops the first <audio> left in the turn; audios it does not take stay raw markers."""
    if VIDEO_MARKER not in content:
        return None
    while VIDEO_MARKER in content:
        if content.find(AUDIO_MARKER, content.find(VIDEO_MARKER)) == -1:
            return "a <video> is not followed by an <audio> in the same turn"
        content = content.replace(VIDEO_MARKER, "", 1).replace(AUDIO_MARKER, "", 1)
    if AUDIO_MARKER in content:
        return "an <audio> in this turn is not paired with a <video> and would stay unexpanded"
    return None


SPECIAL_TOKENS = re.compile(
    r"<\|(?:AUDIO|IMAGE|VIDEO|audio_bos|audio_eos|audio_pad|audio_start|audio_end|"
    r"vision_start|vision_end|image_pad|video_pad)\|>|\(<audio>\./</audio>\)|<(?:/?audio_start|/?audio_end|/?spk_start|/?spk_end)>"
)
#: A piece of text every SPECIAL_TOKENS match holds (``<|``, MiniCPM's ``(<audio>./``, ``audio_``, ``spk_``).
_TOKEN_PIECES = ("<|", "(<audio>./", "audio_", "spk_")


@record_rule(
    "M005",
    "raw-special-token",
    E,
    "Raw model special tokens in text break the audio token/feature count.",
    doc=RuleDoc(
        what="No raw model special token in text (`<|AUDIO|>`, `<|audio_bos|>`, MiniCPM's `(<audio>./</audio>)` ...).",
        why="The template inserts these tokens itself, counted against the audio features; an extra one in "
        "text breaks the count ('audio features and audio tokens do not match') or feeds a token the "
        "model never saw as text.",
        fix="Replace the token with the `<audio>` marker, or remove it.",
        example='`{"conversations": [{"from": "human", "value": "<audio>Say <|AUDIO|> twice."}, ...], "audios": ["a.wav"]}`',
    ),
)
def special_tokens(rec: Record) -> Iterator[Finding]:
    texts = [*rec.texts(), ("system", rec.system or ""), ("tools", rec.tools or "")]
    joined = "\n".join([t for _, t in texts])  # no token holds a line break: none spans two texts
    if not any(piece in joined for piece in _TOKEN_PIECES):
        return  # none of the pieces every token holds: no token (the common case, without a regex search)
    for fld, text in texts:
        m = SPECIAL_TOKENS.search(text)
        if m:
            yield Finding("M005", f"raw special token {m.group(0)!r} in text", fld)


def standard_role(m: Message, dialect: str) -> str | None:
    """The spelling ``dialect`` wants for ``m``'s role (see ``STANDARD_ROLES``), or None if it is standard there."""
    if not m.raw_role or not m.role_field:
        return None
    form = "from" if m.role_field.endswith(".from") else "role"
    return standard_spelling(dialect, form, m.role, m.raw_role)


@record_rule(
    "S008",
    "role-alias",
    W,
    "A role alias its dialect's trainer skips or renames (sharegpt bot, Human; ms-swift model); use the standard tag.",
    fixable=True,
    doc=RuleDoc(
        what="A role written as an alias that the record's dialect trainer skips or renames: sharegpt `bot` "
        "or `Human` (LLaMA-Factory's default tags are `human`/`gpt`), ms-swift `model`.",
        why="audiodata reads the alias, but LLaMA-Factory with default tags does not: the same file trained "
        "there loses those turns.",
        fix="`lint --fix` writes the standard tag; or set `tags` in dataset_info.json.",
        example='`{"conversations": [{"from": "human", "value": "<audio>q"}, {"from": "bot", "value": "a"}], '
        '"audios": ["a.wav"]}`',
    ),
)
def role_alias(rec: Record) -> Iterator[Finding]:
    for turns in (rec.messages, *(t for _, t in _response_sides(rec))):
        for m in turns or []:
            want = standard_role(m, rec.dialect)
            if want is not None:
                yield Finding("S008", f"role {m.raw_role!r} is an alias in {rec.dialect}; write {want!r}", m.role_field)


_BAD_TEXT = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@record_rule(
    "T001",
    "broken-text",
    W,
    "Text holds U+FFFD or control characters: an encoding error upstream; re-export as UTF-8.",
    doc=RuleDoc(
        what="No U+FFFD replacement character, C0 control character (other than tab, newline, carriage return) "
        "or DEL in any turn.",
        why="They mark text decoded with the wrong encoding upstream; the model learns the garbage as words.",
        fix="Re-export the source text as UTF-8 and convert again.",
        example='`{"conversations": [{"from": "human", "value": "<audio>What is said?"}, {"from": "gpt", '
        '"value": "caf\\ufffd"}], "audios": ["a.wav"]}`',
    ),
)
def broken_text(rec: Record) -> Iterator[Finding]:
    for fld, text in rec.texts():
        if text.isprintable() and "\ufffd" not in text:
            continue  # every character _BAD_TEXT names but U+FFFD is a control character, which is not printable
        m = _BAD_TEXT.search(text)
        if m:
            what = "U+FFFD replacement character" if m.group(0) == "\ufffd" else f"control character U+{ord(m.group(0)):04X}"
            yield Finding("T001", f"{what} at character {m.start()}", fld)
