"""ms-swift's own preprocessing code against audiodata, on rows written in ms-swift's documented forms.

The rows below are written here, in the forms ms-swift documents (DOC = docs/source_en/Customization/
Custom-dataset.md of ms-swift, mirror HEAD 3602360) or reads in code (line numbers of the installed
ms-swift 4.6.0 wheel); the audio is sample_data/. Each row, in a file of its own as a user would give it,
goes through

* ms-swift: its loader for ``--dataset FILE`` (DatasetSyntax -> DatasetLoader -> AutoPreprocessor ->
  MessagesPreprocessor, less sampling and splitting), then ``TemplateInputs.from_dict``, which
  ``Template.encode`` calls (swift/template/base.py:688) to pair chosen and rejected; a row either step
  refuses is deleted (swift/dataset/preprocessor/core.py:243-254, also for encoding: dataset/utils.py:120-127);
* audiodata: ``convert`` of the same files.

Then: what ms-swift keeps, audiodata converts to the same turns (both sides of a pair), system and audios;
what ms-swift drops, audiodata rejects with a located reason, or converts with a warning that says what
ms-swift would do (S008: ``model``). Rows ms-swift keeps that audiodata cannot store as one record are
listed as DIVERGES with the reason audiodata gives. The ms-swift export is checked the same way: every
row it writes is kept by ms-swift as written, its audio paths resolve the way ms-swift resolves them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.export import SWIFT_TOOL_PROMPT, export
from tests.export.test_export import records

pytest.importorskip("swift.dataset.preprocessor")
from swift.dataset.dataset_syntax import DatasetSyntax
from swift.template.template_inputs import TemplateInputs
from swift.template.vision_utils import _check_path

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "audio"
CLIPS = {"a.flac": "clip07_16k.flac", "b.flac": "clip08_16k.flac", "c.wav": "clip01_22k.wav", "d.mp3": "clip14_24k.mp3"}

ASK = "<audio>What did the audio say?"
SHELLS = "She sells sea shells by the sea shore."


def user(text: str = ASK) -> dict[str, Any]:
    return {"role": "user", "content": text}


def bot(text: str = SHELLS) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def row(*turns: dict[str, Any], audios: Any = ("a.flac",), **columns: Any) -> dict[str, Any]:
    """One ms-swift row: ``messages`` (default: one question and its answer), ``audios`` and other columns."""
    out: dict[str, Any] = {"messages": list(turns) or [user(), bot()]}
    if audios is not None:
        out["audios"] = list(audios) if isinstance(audios, tuple) else audios
    return {**out, **columns}


SYSTEM = {"role": "system", "content": "Be exact."}
CALL = {"role": "tool_call", "content": '{"name": "transcribe", "arguments": {"clip": 0}}'}
RESULT = {"role": "tool_response", "content": '{"text": "she sells sea shells"}'}
TOOLS = '[{"type": "function", "function": {"name": "transcribe", "parameters": {"type": "object"}}}]'
AUDIO_ITEM = {"role": "user", "content": [{"type": "audio", "audio": "c.wav"}, {"type": "text", "text": "Who speaks?"}]}


@dataclass(frozen=True)
class Case:
    name: str
    row: dict[str, Any]
    swift: str  # what ms-swift's own code does with the row: "keeps" or "drops"
    ours: tuple[str, str] | None = None  # audiodata's rejection (code, field); None: converted like ms-swift reads it
    warns: str | None = None  # the warning audiodata gives on a row it converts although ms-swift renames or drops it
    why: str = ""  # where ms-swift defines the form, and for a divergence why audiodata refuses


KEEPS, DROPS = "keeps", "drops"
CASES = [
    # -- ms-swift keeps, audiodata converts alike -----------------------------------------------------------------------
    Case("sft", row(), KEEPS, why="DOC:276"),
    Case("sft_audios_string", row(audios="b.flac"), KEEPS, why="core.py:120-125 wraps a string"),
    Case("sft_audio_column", row(audios=None, audio=["c.wav"]), KEEPS, why="DOC:279-282 audio -> audios"),
    Case("sft_multi_turn", row(SYSTEM, user(), bot(), user("And <audio>?"), bot("Later."), audios=("a.flac", "d.mp3")), KEEPS,
         why="DOC:20"),
    Case("sft_system_column", row(system="Be exact.", audios=("b.flac",)), KEEPS, why="core.py:510-515, 710-714"),
    Case("sft_content_list", row(AUDIO_ITEM, bot(), audios=None), KEEPS, why="template_inputs.py:161-189"),
    Case("sft_agent", row(user(), CALL, RESULT, bot(), tools=TOOLS), KEEPS, why="DOC:349-355 tool_call / tool_response"),
    Case("sft_tool_role", row(user(), CALL, {**RESULT, "role": "tool"}, bot(), tools=TOOLS, audios=("b.flac",)), KEEPS,
         why="DOC:355 tool and tool_response are equivalent"),
    Case("sft_sharegpt_roles", row({"role": "human", "content": ASK}, {"role": "bot", "content": SHELLS}, audios=("c.wav",)),
         KEEPS, warns="S008", why="core.py:497-498, 541-546 rename human/bot"),
    Case("dpo_rejected_response", row(rejected_response="No idea."), KEEPS, why="DOC:143"),
    Case("dpo_multi_turn", row(user(), bot(), user("And <audio>?"), bot("Yes."), audios=("a.flac", "b.flac"),
                               rejected_response="No"), KEEPS, why="DOC:144"),
    Case("dpo_rejected_response_list", row(audios="b.flac", rejected_response=[bot("No idea.")]), KEEPS, why="DOC:165"),
    Case("dpo_rejected_messages", row(audios=("c.wav",), rejected_messages=[user(), bot("No.")], rejected_audios=["c.wav"]),
         KEEPS, why="DOC:151-155 with rejected_audios"),
    Case("dpo_rejected_messages_system_turns",
         row(SYSTEM, user(), bot(), audios="d.mp3", rejected_messages=[SYSTEM, user(), bot("No.")], rejected_audios="d.mp3"),
         KEEPS, why="DOC:151-152"),
    Case("dpo_agent_rejected_response_list",
         row(user(), CALL, RESULT, bot(), tools=TOOLS, rejected_response=[CALL, RESULT, bot("No")]), KEEPS,
         why="template_inputs.py:225-247: shared tool turns weigh alike on both sides: audiodata keeps them in the prompt"),
    # -- ms-swift drops: audiodata rejects (or, for one alias, converts and warns) --------------------------------------------
    Case("empty_messages", {"messages": [], "audios": ["a.flac"]}, DROPS, ("S005", "messages"), why="core.py:700-701"),
    Case("rejected_response_equals_chosen", row(rejected_response=SHELLS), DROPS, ("S010", "rejected_response"),
         why="core.py:159-161"),
    Case("rejected_response_list_equals_chosen", row(audios="b.flac", rejected_response=[bot()]), DROPS,
         ("S010", "rejected_response"), why="template_inputs.py:240-246"),
    Case("user_turn_in_rejected_response", row(audios="c.wav", rejected_response=[user("Again?"), bot("No.")]), DROPS,
         ("S010", "rejected_response[0].role"), why="template_inputs.py:233-236"),
    Case("unknown_role", row(user(), {"role": "narrator", "content": "x"}), DROPS, ("S002", "messages[1].content"),
         why="core.py:101"),
    Case("null_content", row(user(), {"role": "assistant", "content": None}, audios="b.flac"), DROPS,
         ("S005", "messages[1].content"), why="core.py:102"),
    Case("model_role", row(user(), {"role": "model", "content": SHELLS}, audios="d.mp3"), DROPS, warns="S008",
         why="core.py:101 has no 'model'; audiodata reads it as assistant and warns (lint --fix writes 'assistant')"),
    # -- DIVERGES: ms-swift keeps, audiodata cannot store the row as one record and says why ----------------------------------
    Case("rejected_messages_other_prompt", row(rejected_messages=[user("<audio>Who?"), bot()], rejected_audios="a.flac"), KEEPS,
         ("S010", "rejected_messages[0].content"), why="two prompts: not one preference pair"),
    Case("rejected_messages_without_rejected_audios", row(audios="b.flac", rejected_messages=[user(), bot("No.")]), KEEPS,
         ("S010", "rejected_audios"), why="ms-swift trains the rejected side without audio (template_inputs.py:253,268)"),
    Case("rejected_messages_with_system_column",
         row(system="Be exact.", audios="c.wav", rejected_messages=[user(), bot("No.")], rejected_audios="c.wav"), KEEPS,
         ("S010", "rejected_messages"), why="the column reaches messages only (core.py:693-695): two systems"),
    Case("rejected_audios_only", row(rejected_audios=["b.flac"]), KEEPS, ("S010", "rejected_audios"),
         why="the same reply against other audio (template_inputs.py:268-275): audiodata pairs differ in the reply"),
    Case("agent_rejected_response", row(user(), CALL, RESULT, bot(), tools=TOOLS, audios="d.mp3", rejected_response="No idea."),
         KEEPS, ("S010", "messages[2].role"), why="DOC:171-172: the reply holds a tool result, which audiodata pairs cannot"),
    Case("parallel_tool_calls", row(user(), CALL, CALL, RESULT, RESULT, bot(), tools=TOOLS), KEEPS,
         ("S003", "messages[2].content"), why="DOC:349,356 consecutive tool calls; audiodata turns alternate"),
    Case("pretraining", row(bot("<audio>describes the sea shore"), audios="b.flac"), KEEPS, ("S003", "messages[0].content"),
         why="DOC:267 is `swift pt` data, not an SFT/DPO record"),
]  # fmt: skip
BY_NAME = {c.name: c for c in CASES}
CONVERTED = [c.name for c in CASES if c.ours is None and c.swift == KEEPS]
REJECTED = [c.name for c in CASES if c.ours is not None]

#: audiodata's canonical roles as ms-swift's TemplateInputs spells them (it renames tool_response to tool).
SWIFT_SPELLING = {"user": "user", "assistant": "assistant", "function_call": "tool_call", "tool": "tool"}


# -- running ms-swift's code -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swift_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """ms-swift's map caches go to a temporary MODELSCOPE_CACHE (modelscope get_cache_dir reads it per call)."""
    old = os.environ.get("MODELSCOPE_CACHE")
    os.environ["MODELSCOPE_CACHE"] = str(tmp_path_factory.mktemp("modelscope"))
    yield
    if old is None:
        os.environ.pop("MODELSCOPE_CACHE", None)
    else:
        os.environ["MODELSCOPE_CACHE"] = old


def swift_rows(path: Path) -> list[dict[str, Any]]:
    """The rows ms-swift's loader keeps from ``path``, as preprocessed (swift/dataset/loader.py:47-70)."""
    syntax = DatasetSyntax.parse(str(path))
    meta = syntax.get_dataset_meta(False)
    loader = meta.loader(num_proc=1, load_from_cache_file=False, strict=False)
    return list(loader.load(syntax, meta, use_hf=False))


@dataclass
class SwiftSide:
    messages: list[tuple[str, str]]
    system: str | None
    audios: list[str]


def swift_pair(row: dict[str, Any]) -> tuple[SwiftSide, SwiftSide | None] | None:
    """How ms-swift's trainer reads one kept row (chosen side, rejected side), or None when it refuses it."""
    try:
        inputs = TemplateInputs.from_dict(row)
    except (AssertionError, ValueError, KeyError, TypeError):
        return None

    def side(s: Any) -> SwiftSide:
        return SwiftSide([(m["role"], m["content"]) for m in s.messages], s.system, list(s.audios))

    return side(inputs.chosen), side(inputs.rejected) if inputs.rejected is not None else None


def swift_verdict(path: Path) -> tuple[str, list[tuple[SwiftSide, SwiftSide | None]]]:
    pairs = [swift_pair(r) for r in swift_rows(path)]
    kept = [p for p in pairs if p is not None]
    return ("keeps" if kept else "drops"), kept


# -- the corpus, through both -------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    root: Path
    out: Path
    rows: dict[str, dict[str, Any]]  # case -> audiodata output row
    rejects: dict[str, list[dict[str, Any]]]  # case -> reasons


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("swift_corpus") / "in"
    root.mkdir()
    for name, clip in CLIPS.items():
        shutil.copyfile(SAMPLE / clip, root / name)
    for c in CASES:
        (root / f"{c.name}.jsonl").write_text(json.dumps(c.row) + "\n", encoding="utf-8")
    out = root.parent / "out"
    result = audiodata.convert([str(root)], out, num_workers=1)
    assert result.records_read == len(CASES)
    manifest = json.loads((out / "manifest.json").read_text())
    rows: dict[str, dict[str, Any]] = {}
    for shard in manifest["shards"]:
        for row in pq.read_table(out / shard["file"]).to_pylist():
            rows[Path(row["source"]["file"]).stem] = row
    rejects = {}
    for line in (out / "rejects.jsonl").read_text().splitlines():
        entry = json.loads(line)
        rejects[Path(entry["source"]).stem] = entry["reasons"]
    return Corpus(root, out, rows, rejects)


def test_corpus_covers_each_verdict(corpus: Corpus) -> None:
    assert set(corpus.rows) == {c.name for c in CASES if c.ours is None}
    assert set(corpus.rejects) == set(REJECTED)
    assert {c.swift for c in CASES if c.ours is None} == {"keeps", "drops"}


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_ms_swift_verdict_is_the_one_the_corpus_states(name: str, corpus: Corpus, swift_env: None) -> None:
    verdict, _ = swift_verdict(corpus.root / f"{name}.jsonl")
    assert verdict == BY_NAME[name].swift, BY_NAME[name].why


@pytest.mark.parametrize("name", CONVERTED)
def test_what_ms_swift_keeps_audiodata_converts_alike(name: str, corpus: Corpus, swift_env: None) -> None:
    _, kept = swift_verdict(corpus.root / f"{name}.jsonl")
    (chosen, rejected), row = kept[0], corpus.rows[name]
    ours = SwiftSide(_turns(_prompt(row)), row["system"] or None, [a["origin"] for a in row["audio_info"]])
    if row.get("chosen") is None:
        assert rejected is None
        assert (ours.messages, ours.system, ours.audios) == (chosen.messages, chosen.system, chosen.audios)
    else:
        assert rejected is not None
        for theirs, response in ((chosen, row["chosen"]), (rejected, row["rejected"])):
            assert ours.messages + _turns(response) == theirs.messages
            assert (ours.system, ours.audios) == (theirs.system, theirs.audios)


@pytest.mark.parametrize("name", [c.name for c in CASES if c.warns])
def test_converted_aliases_warn(name: str, corpus: Corpus) -> None:
    report = audiodata.lint([str(corpus.root / f"{name}.jsonl")], num_workers=1).to_dict()
    assert report["findings"] and all(f["code"] == BY_NAME[name].warns for f in report["findings"])
    assert all(f["field"].startswith("messages[") and f["field"].endswith("].role") for f in report["findings"])


@pytest.mark.parametrize("name", REJECTED)
def test_what_audiodata_cannot_store_is_rejected_with_a_located_reason(name: str, corpus: Corpus) -> None:
    code, field = BY_NAME[name].ours  # type: ignore[misc]
    reasons = corpus.rejects[name]
    assert any(r["code"] == code and r.get("field") == field for r in reasons), reasons
    assert all(r["message"] for r in reasons)


def test_a_row_ms_swift_drops_is_never_converted_silently(corpus: Corpus) -> None:
    assert all(c.name in corpus.rejects or c.warns for c in CASES if c.swift == "drops")


def _turns(messages: list[dict[str, str]] | None) -> list[tuple[str, str]]:
    return [(SWIFT_SPELLING[m["role"]], m["content"]) for m in messages or []]


# -- the export: every row ms-swift keeps as written --------------------------------------------------------------------------


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_export_rows_are_kept_by_ms_swift_and_round_trip(
    corpus: Corpus, swift_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    dest = tmp_path / "swift"
    result = export(corpus.out, "ms-swift", dest, relative_paths=relative)
    assert result.records_written == len(corpus.rows) - result.records_skipped
    # rows audiodata holds but ms-swift would drop or misread are skipped, and said
    assert set(result.skipped_by_reason) <= {SWIFT_TOOL_PROMPT}
    monkeypatch.chdir(tmp_path)  # ms-swift runs elsewhere: relative paths need ROOT_IMAGE_DIR, absolute ones nothing
    if relative:
        monkeypatch.setenv("ROOT_IMAGE_DIR", str(dest))
    else:
        monkeypatch.delenv("ROOT_IMAGE_DIR", raising=False)
    exported = {r["id"]: r for f in result.files for r in _jsonl(dest / f)}
    ours = {row["id"]: row for row in corpus.rows.values()}
    n = 0
    for name in result.files:
        kept = swift_rows(dest / name)
        assert len(kept) == len(_jsonl(dest / name))  # ms-swift drops nothing
        for row in kept:
            pair = swift_pair(row)
            assert pair is not None
            chosen, rejected = pair
            original = ours[_id_of(row, exported)]
            assert (chosen.system or None) == (original["system"] or None)
            if original.get("chosen") is None:
                assert chosen.messages == _turns(_prompt(original))
            else:
                assert rejected is not None and rejected.audios == chosen.audios
                assert chosen.messages == _turns(_prompt(original)) + _turns(original["chosen"])
                assert rejected.messages == _turns(_prompt(original)) + _turns(original["rejected"])
            assert len(chosen.audios) == len(original["audio_info"])
            for path in chosen.audios:  # resolved the way ms-swift resolves media paths (vision_utils.py:105-127)
                assert os.path.isabs(path) != relative
                resolved = _check_path(path)
                assert resolved is not None and Path(resolved).is_file()
            n += 1
    assert n == result.records_written
    back = tmp_path / "back"
    assert audiodata.convert([str(dest)], back, num_workers=1).records_rejected == 0
    original, again = records(corpus.out), records(back)
    assert not again - original  # the same records, labels and pcm_hash multisets ...
    assert sum((original - again).values()) == result.records_skipped  # ... less the rows skipped and counted


def _prompt(row: dict[str, Any]) -> list[dict[str, str]]:
    """The prompt turns of a stored row: ``messages`` (SFT) or ``prompt`` (DPO)."""
    return row["messages"] if "messages" in row else row["prompt"]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _id_of(row: dict[str, Any], exported: dict[str, dict[str, Any]]) -> str:
    """ms-swift drops the id column (core.py:294-301): find the exported row by its messages."""
    found = [i for i, r in exported.items() if r["messages"] == row["messages"] and r.get("audios") == row.get("audios")]
    assert len(found) == 1
    return found[0]


def test_the_rows_the_export_skips_are_ones_ms_swift_would_drop_or_misread(tmp_path: Path, swift_env: None) -> None:
    """The two DPO shapes ``export --to ms-swift`` skips (test_export.py), written the only way the format allows."""
    equal = tmp_path / "equal.jsonl"  # chosen == rejected, as rejected_response
    equal.write_text(json.dumps(row(rejected_response=SHELLS)) + "\n")
    assert swift_verdict(equal)[0] == DROPS
    tool_prompt = tmp_path / "tool_prompt.jsonl"  # a prompt ending on a tool result, as rejected_response
    tool_prompt.write_text(json.dumps(row(user(), CALL, RESULT, bot(), tools=TOOLS, rejected_response="No idea.")) + "\n")
    verdict, [(chosen, rejected)] = swift_verdict(tool_prompt)
    assert verdict == KEEPS and rejected is not None
    prompt = [("user", ASK), ("tool_call", CALL["content"]), ("tool", RESULT["content"])]
    assert chosen.messages == [*prompt, ("assistant", SHELLS)]
    assert rejected.messages == [("user", ASK), ("assistant", "No idea.")]  # the tool turns are gone from the rejected side
