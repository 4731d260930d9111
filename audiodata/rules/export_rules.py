"""Rules of the export targets (family ``X``): what a trainer's file format cannot express.

``audiodata export`` rebuilds each stored row into a :class:`Record` and runs the rule engine on it
with the target's rule set (:data:`TARGET_RULES`): the lint rules a trainer trips over (marker
counts, role order, ...) plus the ``X`` limits of that target. Any finding skips the record for
that target, with its code, and counts it. Lint never runs the ``X`` rules (stage ``export``).

Numbering: ``X0xx`` every target, ``X1xx`` LLaMA-Factory, ``X2xx`` ms-swift, ``X3xx`` MiniCPM, ``X4xx`` Align-Anything,
``X5xx`` the RL targets (TRL, verl, MMAU).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from audiodata.readers.dialects.align_anything import SYSTEM as AA_SYSTEM  # AA_TA2T.system_prompt: the one it writes
from audiodata.readers.dialects.rl import QA_READ_KEYS, choices_block
from audiodata.records import AUDIO_MARKER, Message, Record
from audiodata.rules.findings import Finding
from audiodata.rules.registry import RuleDoc, Severity, export_rule, register

#: The rules every target skips a record on. Stored rows passed convert's rules once, but a dataset
#: converted with ``--ignore``, or edited since, can hold what a trainer miscounts or drops.
SHARED = (
    "S001",  # a stored turn without text (found while rebuilding the record)
    "P002",  # a stored KTO row without a label
    "S002",
    "S003",
    "S006",
    "S007",
    "M001",
    "M002",
    "M003",  # a warning in lint: the trainer leaves the marker unexpanded; an export skips the record
    "M004",
    "X001",
    "X002",
    "X003",
    "X004",
)

#: Target (``--to``, with the LLaMA-Factory form) -> the codes that skip a record for it.
TARGET_RULES: dict[str, tuple[str, ...]] = {
    "llamafactory": (*SHARED, "X005"),
    "llamafactory-alpaca": (*SHARED, "X005", "X101"),
    "llamafactory-v1": (*SHARED, "X005", "X102", "X103", "X104"),
    "ms-swift": (*SHARED, "P001", "X201", "X202"),
    "minicpm": (*SHARED, "X005", "X301", "X302", "X303", "X304", "X305", "X306"),
    "align-anything": (*SHARED, "X005", "X401", "X402", "X403", "X404", "X405"),
    "trl": (*SHARED, "X501"),
    "verl": (*SHARED, "X501", "X502"),
    "mmau": (*SHARED, "X501", "X503"),
}


def target_rules(to: str, form: str = "sharegpt") -> frozenset[str]:
    """The codes that skip a record for target ``to`` (``form``: LLaMA-Factory sharegpt or alpaca)."""
    return frozenset(TARGET_RULES["llamafactory-alpaca" if to == "llamafactory" and form == "alpaca" else to])


def stored_problems(rec: Record) -> list[Finding]:
    """What a stored row can hold that a :class:`Record` cannot: a turn whose text is null (``S001``)
    and a KTO row without its label (``P002``). Found while rebuilding, before any rule runs (rules
    read every turn's text)."""
    found = []
    sides = [("messages", rec.messages), ("chosen", rec.chosen), ("rejected", rec.rejected), ("completion", rec.completion)]
    for name, turns in sides:
        for i, m in enumerate(turns or []):
            if not isinstance(m.content, str):
                found.append(Finding("S001", "a turn has no text (content is null)", f"{name}[{i}].content"))
    if rec.kind == "kto" and not isinstance(rec.label, bool):
        found.append(Finding("P002", "the stored KTO record has no label", "label"))
    return found


register(
    "X003",
    "stored-audio-undecodable",
    Severity.ERROR,
    "A stored audio does not decode while export converts it to --audio-format: the shard is damaged; run `audiodata verify`.",
    stage="export",
    doc=RuleDoc(
        what="Export writes the stored audio bytes as they are; with `--audio-format` other than the stored codec it "
        "decodes and re-encodes each clip, and this one did not decode.",
        why="A clip that does not decode cannot be written in the asked format; writing the damaged bytes would "
        "crash the trainer's loader at that record.",
        fix="Run `audiodata verify OUT` to find the damaged shard (V004/V008), then convert again.",
        example="`audiodata export OUT --to ms-swift --audio-format wav DIR` on a shard whose FLAC bytes were altered.",
    ),
)


def _sides(rec: Record) -> list[tuple[str, list[Message]]]:
    if rec.kind == "dpo":
        return [("chosen", rec.chosen or []), ("rejected", rec.rejected or [])]
    return [("completion", rec.completion or [])] if rec.kind == "kto" else []


def _turns(rec: Record) -> list[Message]:
    """Every turn a target writes: the prompt (or conversation) and each response side."""
    return [*rec.messages, *(m for _, side in _sides(rec) for m in side)]


@export_rule(
    "X001",
    "media-not-stored",
    "An audio, image or video of the stored record has no bytes (a hand-edited or damaged shard); convert again.",
    RuleDoc(
        what="Every audio, image and video of a stored row must carry its bytes: export writes them as files (MiniCPM: inline).",
        why="convert always embeds the bytes; a null here means the shard was edited or damaged, and the exported "
        "record would point at a file that does not exist.",
        fix="Run `audiodata verify OUT`, then convert the inputs again.",
        example='A stored row whose `audios` is `[{"bytes": null, "path": "a.flac"}]`.',
    ),
)
def media_not_stored(rec: Record) -> Iterator[Finding]:
    for name, refs in (("audios", rec.audios), ("images", rec.images), ("videos", rec.videos)):
        for ref in refs:
            if ref.kind == "bytes" and not ref.value:
                yield Finding("X001", f"one of the {name} has no stored bytes", ref.field)
                break


@export_rule(
    "X002",
    "visual-file-reference",
    "Images or videos stored as file references (convert --visual refs) are not exported; convert with --visual embed.",
    RuleDoc(
        what="A dataset converted with `--visual refs` stores image and video paths relative to the media root, not their bytes.",
        why="The export folder must be self-contained: the trainer opens the paths it lists relative to it, and the "
        "referenced files are not in the converted dataset to copy.",
        fix="Convert again with `--visual embed` (the default), then export.",
        example="`audiodata convert in.jsonl -o OUT --visual refs` then `audiodata export OUT --to llamafactory DIR`.",
    ),
)
def visual_file_reference(rec: Record) -> Iterator[Finding]:
    for name, refs in (("images", rec.images), ("videos", rec.videos)):
        if any(ref.kind == "path" for ref in refs):
            msg = f"{name} are file references (convert --visual refs): convert with --visual embed to export them"
            yield Finding("X002", msg, name)


@export_rule(
    "X004",
    "one-response-turn",
    "A DPO chosen/rejected side or a KTO completion must be one turn: every target writes each as one message.",
    RuleDoc(
        what="DPO records must have exactly one chosen and one rejected turn; KTO records exactly one completion turn.",
        why="LLaMA-Factory's `chosen`/`rejected` are single message objects, ms-swift's `rejected_response` and "
        "`label` judge the last reply only, and v1's pairs append one message to the prompt: a longer side cannot be "
        "written without losing turns.",
        fix="Fold the side into one assistant turn, or make the earlier turns part of the prompt.",
        example='{"prompt": [user], "chosen": [assistant, user, assistant], "rejected": [assistant]}',
    ),
)
def one_response_turn(rec: Record) -> Iterator[Finding]:
    for name, side in _sides(rec):
        if len(side) != 1:
            yield Finding("X004", f"{name} holds {len(side)} turns; the export targets take one response turn", name)


@export_rule(
    "X005",
    "rl-no-form",
    "RL records (a prompt and its reference answer) have no form in LLaMA-Factory, MiniCPM or Align-Anything data: "
    "export them --to trl, ms-swift, verl or mmau.",
    RuleDoc(
        what="An `rl` record exported for a target whose data has no prompt-only, answer-checked form.",
        why="LLaMA-Factory's, MiniCPM's and Align-Anything's files train on written replies (SFT, DPO, KTO); writing the "
        "answer as a reply would turn RL data into SFT data without saying so.",
        fix="Export the `rl` config with `--to trl`, `--to ms-swift` (GRPO), `--to verl` or `--to mmau`.",
        example="`audiodata export OUT --to llamafactory DIR` on a dataset with an `rl` config.",
    ),
)
def rl_no_form(rec: Record) -> Iterator[Finding]:
    if rec.kind == "rl":
        yield Finding("X005", "RL records are exported --to trl, ms-swift, verl or mmau", "kind")


# -- LLaMA-Factory -----------------------------------------------------------------------------------------


@export_rule(
    "X101",
    "alpaca-roles",
    "LLaMA-Factory alpaca holds only alternating user/assistant turns: no tool or function_call turns.",
    RuleDoc(
        what="With `--form alpaca`, every turn must be user or assistant (instruction, output and history pairs), "
        "DPO chosen and rejected included.",
        why="Alpaca's columns have no place for a tool result or a function call; LLaMA-Factory would read them as "
        "plain user or assistant text and train on the wrong roles.",
        fix="Export with `--form sharegpt` (the default), which keeps tool turns.",
        example='{"messages": [user, function_call, tool, assistant]} exported with `--form alpaca`.',
    ),
)
def alpaca_roles(rec: Record) -> Iterator[Finding]:
    msgs = [*rec.messages, *(rec.completion or [])]
    if any(m.role != ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(msgs)):
        yield Finding("X101", "alpaca holds only alternating user/assistant turns", "messages")
    elif rec.kind == "dpo" and any(m.role != "assistant" for _, side in _sides(rec) for m in side):
        yield Finding("X101", "alpaca chosen/rejected must be assistant replies", "chosen")


@export_rule(
    "X102",
    "v1-no-kto",
    "LLaMA-Factory v1 has no KTO rows (SFTSample and DPOSample only); export KTO for llamafactory or ms-swift.",
    RuleDoc(
        what="A KTO record exported with `--to llamafactory-v1`.",
        why="v1's sample types (`v1/utils/types.py`) are SFT and DPO samples; there is no field for a KTO label.",
        fix="Export KTO configs with `--to llamafactory` (kto_tag) or `--to ms-swift` (label).",
        example='{"prompt": [user], "completion": [assistant], "label": true} with `--to llamafactory-v1`.',
    ),
)
def v1_no_kto(rec: Record) -> Iterator[Finding]:
    if rec.kind not in ("sft", "dpo"):
        yield Finding("X102", f"LLaMA-Factory v1 has no {rec.kind.upper()} rows", "kind")


@export_rule(
    "X103",
    "v1-tools-json",
    "The record's tools are not valid JSON: LLaMA-Factory v1 parses them; fix the tools text.",
    RuleDoc(
        what="The `tools` text of a record exported for LLaMA-Factory v1 must parse as JSON.",
        why="v1 loads `tools` with `json.loads` when it renders the template; invalid JSON stops the run at that record.",
        fix="Write the tool definitions as a JSON list of objects.",
        example='{"tools": "[{name: search}]", ...}',
    ),
)
def v1_tools_json(rec: Record) -> Iterator[Finding]:
    if rec.tools:
        try:
            json.loads(rec.tools)
        except json.JSONDecodeError:
            yield Finding("X103", "tools is not valid JSON: LLaMA-Factory v1 parses it", "tools")


def tool_calls(text: str) -> list[str]:
    """One ``{name, arguments}`` JSON text per call in a function_call turn: the text as it is for one
    call, each element for a list. ``ValueError`` when the text is no such call (rule ``X104``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    calls = value if isinstance(value, list) else [value]
    if not calls or not all(isinstance(c, dict) and "name" in c and "arguments" in c for c in calls):
        raise ValueError("a function_call turn is not a JSON tool call {name, arguments}: LLaMA-Factory v1 needs one")
    return [text] if isinstance(value, dict) else [json.dumps(c, ensure_ascii=False) for c in calls]


@export_rule(
    "X104",
    "v1-tool-call",
    "A function_call turn is not a JSON tool call {name, arguments} (or a list of them): LLaMA-Factory v1 needs one.",
    RuleDoc(
        what="Each function_call turn exported for LLaMA-Factory v1 becomes `tool_call` content items, one per call: "
        "its text must be a JSON object with `name` and `arguments`, or a list of such objects.",
        why="v1 stores tool calls as typed items, not as free text; a turn that is not a call cannot be written as one.",
        fix='Write the call as `{"name": "...", "arguments": {...}}`.',
        example='{"from": "function_call", "value": "call the weather tool"}',
    ),
)
def v1_tool_call(rec: Record) -> Iterator[Finding]:
    for i, m in enumerate(_turns(rec)):
        if m.role == "function_call":
            try:
                tool_calls(m.content)
            except ValueError as exc:
                yield Finding("X104", str(exc), m.field or f"turn {i}")
                return


# -- ms-swift ---------------------------------------------------------------------------------------------

#: rejected_response replaces every turn after the last user turn (swift/template/template_inputs.py:225-247), so
#: a prompt ending on a tool result would lose it on the rejected side; rejected_messages cannot share its file.
SWIFT_TOOL_PROMPT = "ms-swift's rejected_response would also replace the tool turns that end this DPO prompt"


@export_rule(
    "X201",
    "swift-response-role",
    "ms-swift DPO chosen/rejected must be assistant replies: a function_call reply has no rejected_response form.",
    RuleDoc(
        what="A DPO record exported for ms-swift whose chosen or rejected turn is a function call.",
        why="ms-swift writes the chosen reply as the last assistant message and the rejected one as the text "
        "`rejected_response`; a tool call there would be trained as plain assistant text.",
        fix="Export for LLaMA-Factory (sharegpt keeps function_call replies), or make the pair assistant replies.",
        example='{"prompt": [user], "chosen": [{"role": "function_call", ...}], "rejected": [assistant]}',
    ),
)
def swift_response_role(rec: Record) -> Iterator[Finding]:
    if rec.kind == "dpo" and any(m.role != "assistant" for _, side in _sides(rec) for m in side):
        yield Finding("X201", "ms-swift chosen/rejected must be assistant replies", "chosen")


@export_rule(
    "X202",
    "swift-tool-prompt",
    "An ms-swift DPO prompt must end on the user: rejected_response would also replace the tool turns that end it.",
    RuleDoc(
        what="A DPO prompt that ends on a tool result (user, function_call, tool), exported for ms-swift.",
        why="ms-swift's `rejected_response` replaces every turn after the last user turn "
        "(swift/template/template_inputs.py), so the rejected side would lose the tool turns and train on "
        "a different prompt than the chosen side.",
        fix="Export for LLaMA-Factory, or end the prompt on a user turn.",
        example='{"prompt": [user, function_call, tool], "chosen": [assistant], "rejected": [assistant]}',
    ),
)
def swift_tool_prompt(rec: Record) -> Iterator[Finding]:
    if rec.kind == "dpo" and rec.messages and rec.messages[-1].role != "user":
        yield Finding("X202", SWIFT_TOOL_PROMPT, f"messages[{len(rec.messages) - 1}]")


# -- MiniCPM ----------------------------------------------------------------------------------------------


def _minicpm(what: str, example: str) -> RuleDoc:
    return RuleDoc(
        what=what,
        why="MiniCPM-o's audio SFT rows are `{audio, text, prompt}`: one clip, one question, one answer; there is "
        "no field for anything else.",
        fix="Export these records for LLaMA-Factory or ms-swift, or split them into single-turn, single-audio records.",
        example=example,
    )


@export_rule(
    "X301",
    "minicpm-kind",
    "MiniCPM rows are SFT only: DPO and KTO records are not exported for minicpm.",
    _minicpm("A DPO or KTO record exported with `--to minicpm`.", '{"prompt": [user], "chosen": [...], ...}'),
)
def minicpm_kind(rec: Record) -> Iterator[Finding]:
    if rec.kind != "sft":
        yield Finding("X301", f"minicpm: {rec.kind.upper()} records are not supported", "kind")


@export_rule(
    "X302",
    "minicpm-tools",
    "MiniCPM rows have no tools: records with tools are not exported for minicpm.",
    _minicpm("A record with tool definitions exported with `--to minicpm`.", '{"tools": "[...]", ...}'),
)
def minicpm_tools(rec: Record) -> Iterator[Finding]:
    if rec.tools:
        yield Finding("X302", "minicpm: records with tools are not supported", "tools")


@export_rule(
    "X303",
    "minicpm-single-turn",
    "MiniCPM rows are one user turn and one assistant reply: multi-turn records are not exported for minicpm.",
    _minicpm("A conversation that is not exactly [user, assistant].", '{"messages": [user, assistant, user, assistant]}'),
)
def minicpm_single_turn(rec: Record) -> Iterator[Finding]:
    if rec.kind == "sft" and [m.role for m in rec.messages] != ["user", "assistant"]:
        yield Finding("X303", "minicpm: needs one user turn and one assistant reply (multi-turn)", "messages")


@export_rule(
    "X304",
    "minicpm-one-audio",
    "MiniCPM rows carry exactly one audio: records with none or several are not exported for minicpm.",
    _minicpm("A record with no audio or with several.", '{"messages": [...], "audios": ["a.wav", "b.wav"]}'),
)
def minicpm_one_audio(rec: Record) -> Iterator[Finding]:
    if len(rec.audios) != 1:
        yield Finding("X304", "minicpm: needs exactly one audio", "audios")


@export_rule(
    "X305",
    "minicpm-visual",
    "MiniCPM audio rows have no images or videos: such records are not exported for minicpm.",
    _minicpm("A record with images or videos.", '{"messages": [...], "audios": [...], "images": [...]}'),
)
def minicpm_visual(rec: Record) -> Iterator[Finding]:
    if rec.images or rec.videos:
        yield Finding("X305", "minicpm: images and videos are not supported", "images" if rec.images else "videos")


@export_rule(
    "X306",
    "minicpm-marker-place",
    "The one <audio> marker of a MiniCPM row must be in the user turn (the prompt), none in the reply.",
    _minicpm(
        "A single-turn record whose `<audio>` marker is in the reply, or that has no marker or several.",
        '{"messages": [{"role": "user", "content": "Transcribe."}, {"role": "assistant", "content": "<audio> says hi"}]}',
    ),
)
def minicpm_marker_place(rec: Record) -> Iterator[Finding]:
    if rec.kind != "sft" or len(rec.messages) != 2:
        return
    user, reply = rec.messages[0].content, rec.messages[1].content
    if user.count(AUDIO_MARKER) != 1 or AUDIO_MARKER in reply:
        yield Finding("X306", "minicpm: needs exactly one <audio> marker, in the user turn", "messages")


# -- Align-Anything ---------------------------------------------------------------------------------------



def _aa(what: str, example: str, why: str = "") -> RuleDoc:
    return RuleDoc(
        what=what,
        why=why
        or "Align-Anything's AA_TA2T template builds every conversation as its own system prompt, one user turn of "
        "the audio then the `prompt` text, and one answer (`response_1`/`response_2` by `overall_response`); a row has "
        "no field for anything else.",
        fix="Export these records for LLaMA-Factory or ms-swift, or reduce them to one audio question and its answer.",
        example=example,
    )


@export_rule(
    "X401",
    "align-anything-kind",
    "Align-Anything's AA_TA2T reads SFT and preference pairs: KTO records are not exported for align-anything.",
    _aa("A KTO record exported with `--to align-anything`.", '{"prompt": [user], "completion": [...], "label": true}'),
)
def aa_kind(rec: Record) -> Iterator[Finding]:
    if rec.kind == "kto":
        yield Finding("X401", "align-anything: KTO records are not supported", "kind")


@export_rule(
    "X402",
    "align-anything-system",
    f"AA_TA2T always writes its own system prompt ({AA_SYSTEM!r}): a record with another is not exported for it.",
    _aa(
        "A record whose system prompt is not AA_TA2T's own.",
        '{"system": "Translate all input audio into English.", ...}',
        "AA_TA2T ignores any system column and trains with its own: the record would train under another "
        "instruction than the one it was written for.",
    ),
)
def aa_system(rec: Record) -> Iterator[Finding]:
    if rec.system and rec.system != AA_SYSTEM:
        yield Finding("X402", "align-anything: AA_TA2T writes its own system prompt; this record has another", "system")


@export_rule(
    "X403",
    "align-anything-single-turn",
    "AA_TA2T rows are one user turn and one answer (per side): multi-turn records are not exported for align-anything.",
    _aa("A conversation that is not one user turn and one assistant reply.", '{"messages": [user, assistant, user, assistant]}'),
)
def aa_single_turn(rec: Record) -> Iterator[Finding]:
    roles = [m.role for m in rec.messages]
    sides = [rec.chosen or [], rec.rejected or []] if rec.kind == "dpo" else []
    if rec.kind == "sft":
        ok = roles == ["user", "assistant"]
    else:
        ok = roles == ["user"] and all([m.role for m in side] == ["assistant"] for side in sides)
    if rec.kind != "kto" and not ok:
        yield Finding("X403", "align-anything: needs one user turn and one assistant reply (per side)", "messages")


@export_rule(
    "X404",
    "align-anything-audio",
    "AA_TA2T rows hold one audio, given before the prompt text: the user turn must start with its only <audio> marker.",
    _aa(
        "A record with no audio or several, or whose one `<audio>` marker does not start the user turn.",
        '{"messages": [{"role": "user", "content": "Listen: <audio>"}, ...], "audios": [...]}',
        "AA_TA2T puts the audio item first in the user turn and the `prompt` text after it: a marker elsewhere "
        "would be left in the prompt as text, and a second clip has no column.",
    ),
)
def aa_audio(rec: Record) -> Iterator[Finding]:
    user = rec.messages[0].content if rec.messages else ""
    replies = [m.content for m in _turns(rec)[1:]]
    if len(rec.audios) != 1 or not user.startswith(AUDIO_MARKER) or user.count(AUDIO_MARKER) != 1:
        yield Finding("X404", "align-anything: needs exactly one audio, its <audio> marker starting the user turn", "audios")
    elif any(AUDIO_MARKER in r for r in replies):
        yield Finding("X404", "align-anything: an <audio> marker in a reply", "messages")


@export_rule(
    "X405",
    "align-anything-extras",
    "AA_TA2T rows have no tools, images or videos: records with them are not exported for align-anything.",
    _aa("A record with tool definitions, images or videos.", '{"tools": "[...]", ...}'),
)
def aa_extras(rec: Record) -> Iterator[Finding]:
    if rec.tools or rec.images or rec.videos:
        what = "tools" if rec.tools else "images" if rec.images else "videos"
        yield Finding("X405", f"align-anything: records with {what} are not supported", what)


# -- RL targets: TRL, verl, MMAU ----------------------------------------------------------------------------


@export_rule(
    "X501",
    "rl-target-kind",
    "The TRL, verl and MMAU targets write RL records only: SFT, DPO and KTO configs are already TRL's formats (load the "
    "shards), or go --to llamafactory / ms-swift.",
    RuleDoc(
        what="A record that is not `rl`, exported with `--to trl`, `--to verl` or `--to mmau`.",
        why="These targets write GRPO rows (a prompt and the reference answer its rewards check); an SFT conversation or a "
        "preference pair has no answer column there. The shards of the `sft`, `dpo` and `kto` configs are TRL's "
        "conversational, preference and unpaired-preference formats as they stand.",
        fix="Export only the `rl` config's records there (the others are skipped and counted), or pick another target.",
        example="`audiodata export OUT --to trl DIR` on a dataset with an `sft` config.",
    ),
)
def rl_target_kind(rec: Record) -> Iterator[Finding]:
    if rec.kind != "rl":
        yield Finding("X501", f"the RL targets (trl, verl, mmau) write RL records, not {rec.kind.upper()}", "kind")


@export_rule(
    "X502",
    "verl-tools",
    "verl's RL rows have no tools column: records with tool definitions are not exported for verl.",
    RuleDoc(
        what="An `rl` record with tool definitions, exported with `--to verl`.",
        why="verl's `RLHFDataset` rows are `prompt` turns with the reward's fields; tools go to its agent loop's own "
        "configuration, not the row, so they would be dropped without a word.",
        fix="Export for TRL or ms-swift (both carry `tools`), or drop the tools.",
        example='`{"prompt": [...], "solution": "A", "tools": "[...]"}` exported --to verl.',
    ),
)
def verl_tools(rec: Record) -> Iterator[Finding]:
    if rec.tools:
        yield Finding("X502", "verl: records with tools are not supported", "tools")


@export_rule(
    "X503",
    "mmau-shape",
    "An MMAU-style item is one audio and one multiple-choice question: other RL records are not exported for mmau.",
    RuleDoc(
        what="For `--to mmau`: exactly one audio, whose `<audio>` marker starts the one user turn and is its only marker; "
        "no system prompt, tools, images or videos; task `mcq` with its choices, the turn ending with the lettered "
        "options as the audio-QA reader writes them (`Choices:` then `(A) ...` a line each), which become `choices` "
        "again; no `meta` key named like an item's own field (`id`, `audio_id`, `question`, `choices`, `answer`).",
        why="An MMAU item is `audio_id` (one path), `question`, `choices`, `answer`: it has nowhere to put a second clip, "
        "a conversation, a system prompt or another medium, and the question is read with the audio first.",
        fix="Export such records --to trl or --to ms-swift.",
        example='`{"prompt": [{"role": "user", "content": "Compare <audio> and <audio>."}], "answer": "A", "audios": [...]}`',
    ),
)
def mmau_shape(rec: Record) -> Iterator[Finding]:
    roles = [m.role for m in rec.messages]
    text = rec.messages[0].content if rec.messages else ""
    if roles != ["user"]:
        yield Finding("X503", "mmau: needs one user turn (the question)", "messages")
    elif len(rec.audios) != 1 or not text.startswith(AUDIO_MARKER) or text.count(AUDIO_MARKER) != 1:
        yield Finding("X503", "mmau: needs exactly one audio, its <audio> marker starting the question", "audios")
    elif rec.system or rec.tools or rec.images or rec.videos:
        what = "system" if rec.system else "tools" if rec.tools else "images" if rec.images else "videos"
        yield Finding("X503", f"mmau: an item has no {what}", what)
    elif rec.task != "mcq" or not rec.choices:
        yield Finding("X503", f"mmau: an MMAU item is multiple choice (task mcq with choices), this is {rec.task}", "task")
    elif any(k in QA_READ_KEYS for k in rec.meta or {}):
        clash = sorted(k for k in rec.meta or {} if k in QA_READ_KEYS)
        yield Finding("X503", f"mmau: meta key(s) {', '.join(clash)} would take the place of the item's own", "meta")
    elif not text.endswith("\n\n" + choices_block(rec.choices)):
        msg = "mmau: the question does not end with the lettered options an MMAU item is read with (Choices: (A) ...)"
        yield Finding("X503", msg, "messages[0].content")


__all__ = ["AA_SYSTEM", "SHARED", "SWIFT_TOOL_PROMPT", "TARGET_RULES", "stored_problems", "target_rules", "tool_calls"]
