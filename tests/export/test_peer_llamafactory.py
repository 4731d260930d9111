"""audiodata held against LLaMA-Factory's own data code, in both directions.

LLaMA-Factory 0.9.5 is installed with ``--no-deps`` (``make test``); its data code imports without the
training stack given ``omegaconf`` and a stub ``torchaudio`` (nothing here loads audio through it).
Every record is written here, in a form LLaMA-Factory defines; each form cites the file and line of
the LLaMA-Factory source that defines it (the hiyouga/LLaMA-Factory mirror at ``ff6d4d12``, 2026-08-18;
``data/README.md`` and ``data/dataset_info.json`` for 0.9.x, ``src/llamafactory/v1/...`` for v1).
Audio comes from ``sample_data/``.

- What LLaMA-Factory accepts, audiodata converts with the same turns and audio count; what it skips
  ("Skipping this abnormal example"), drops ("Dropped invalid example") or crashes on, audiodata
  rejects with a located reason.
- ``export --to llamafactory`` and ``--to llamafactory-v1`` go through LLaMA-Factory's own parser,
  converters and v1 ``DataEngine`` record for record.
- The checks current v1 runs when it trains (``v1/core/rendering``) are not in 0.9.5; they are restated
  in :func:`v1_verdict` from the mirror's source, file and line cited.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import types
from collections import Counter
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest
import yaml

import audiodata
from audiodata.cli.main import main as cli
from audiodata.export import export
from audiodata.pipeline.read import Pending, read_records
from audiodata.readers.registry import COLUMNS, ENTRY_KEYS, HUB_KEYS, IGNORED_KEYS, TAGS, V1_KEYS
from audiodata.readers.sources import InputError, expand, expand_inputs
from audiodata.records import AUDIO_MARKER
from audiodata.writer.schema import prompt_column

SAMPLE_AUDIO = Path(__file__).resolve().parents[2] / "sample_data" / "audio"


# -- LLaMA-Factory's data code ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lf() -> SimpleNamespace:
    """LLaMA-Factory 0.9.5's parser, converters, media check and v1 data engine, imported without its training stack."""
    pytest.importorskip("llamafactory")
    pytest.importorskip("omegaconf")  # llamafactory.hparams and the v1 DataEngine import it
    import transformers  # noqa: F401  (first: its cached torchaudio probe must see the real absence, not the stub)

    stub = importlib.util.find_spec("torchaudio") is None and "torchaudio" not in sys.modules
    if stub:  # llamafactory.data.mm_plugin imports torchaudio at the top; the checks used here never call it
        module = types.ModuleType("torchaudio")
        module.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        sys.modules["torchaudio"] = module
    before = os.environ.get("DISABLE_VERSION_CHECK")
    os.environ["DISABLE_VERSION_CHECK"] = "1"  # LLaMA-Factory pins an older transformers; its data code does not use it
    try:
        from llamafactory.data.converter import align_dataset, get_dataset_converter
        from llamafactory.data.mm_plugin import BasePlugin
        from llamafactory.data.parser import DatasetAttr, get_dataset_list
        from llamafactory.hparams import DataArguments
        from llamafactory.v1.core.data_engine import DataEngine
        from llamafactory.v1.plugins.data_plugins.converter import DataConverterPlugin
        from llamafactory.v1.utils import types as v1_types
    finally:
        if before is None:
            os.environ.pop("DISABLE_VERSION_CHECK", None)
        else:
            os.environ["DISABLE_VERSION_CHECK"] = before
        if stub:
            sys.modules.pop("torchaudio", None)
    return SimpleNamespace(
        align_dataset=align_dataset,
        get_dataset_converter=get_dataset_converter,
        BasePlugin=BasePlugin,
        DatasetAttr=DatasetAttr,
        get_dataset_list=get_dataset_list,
        DataArguments=DataArguments,
        DataEngine=DataEngine,
        v1_converter=DataConverterPlugin,
        v1_types=v1_types,
    )


def lf_rows(lf: SimpleNamespace, dataset_dir: Path, name: str, cache: Path) -> tuple[Any, list[dict[str, Any]]]:
    """One dataset_info.json entry as LLaMA-Factory 0.9.5 reads it: its DatasetAttr (``get_dataset_list``), the
    file loaded as ``data/loader.py`` loads a local file (``load_dataset("json", data_files=...)``), then
    ``align_dataset`` (``data/converter.py``)."""
    import datasets

    attr = lf.get_dataset_list([name], str(dataset_dir))[0]
    assert attr.load_from == "file"
    args = lf.DataArguments(dataset_dir=str(dataset_dir), overwrite_cache=True)
    local = dataset_dir / attr.dataset_name
    files = sorted(str(p) for p in local.iterdir()) if local.is_dir() else [str(local)]
    ds = datasets.load_dataset("json", data_files=files, split=attr.split, cache_dir=str(cache))
    aligned = lf.align_dataset(ds, attr, args, SimpleNamespace(local_process_index=0))
    return attr, list(aligned)


#: What LLaMA-Factory 0.9.5 does with an aligned row instead of training it properly. LOSES: it trains the row
#: without a column the entry does not map (DatasetAttr.join sets unlisted columns to None): lf_verdict sees no problem.
SKIPPED, DROPPED, CRASHES, MISTRAINS, LOSES = "skipped", "dropped", "crashes", "mistrains", "loses"


def lf_verdict(lf: SimpleNamespace, row: dict[str, Any], ranking: bool) -> str | None:
    """None when LLaMA-Factory 0.9.5 trains the aligned row. Its checks, in its own order: the converter empties a
    broken row ("Skipping this abnormal example", data/converter.py); the processors drop odd turn counts
    ("Dropped invalid example", data/processor/supervised.py and pairwise.py); the media plugin raises when the
    <audio> count differs from the audios, over prompt+response, for each response of a pair (data/mm_plugin.py)."""
    prompt, response = row["_prompt"], row["_response"]
    if not prompt and not response:
        return SKIPPED
    if len(prompt) % 2 != 1 or (len(response) < 2 if ranking else len(response) != 1):
        return DROPPED
    if ranking and any(m["role"] not in ("assistant", "function") for m in response):
        # data/converter.py (SharegptDatasetConverter, 0.9.5): an answer with a user role is logged as
        # "Invalid role tag" but broken_data is set after the skip, so the pair is kept and trained as it is
        return MISTRAINS
    plugin = lf.BasePlugin(None, None, AUDIO_MARKER)
    for answer in response if ranking else response[:1]:
        try:
            plugin._validate_messages([*prompt, answer], row["_images"] or [], row["_videos"] or [], row["_audios"] or [])
        except ValueError:
            return CRASHES
    return None


LF_ROLES = {"user": "user", "assistant": "assistant", "observation": "tool", "function": "function_call"}


def lf_turns(row: dict[str, Any]) -> tuple[Any, ...]:
    """An aligned row as (system, prompt turns, response turns, audio count) in audiodata's role names."""
    turns = [[(LF_ROLES[m["role"]], m["content"]) for m in row[k]] for k in ("_prompt", "_response")]
    return row["_system"] or None, turns[0], turns[1], len(row["_audios"] or [])


def our_turns(rec: Any) -> tuple[Any, ...]:
    msgs = [(m.role, m.content) for m in rec.messages]
    if rec.kind == "dpo":
        return rec.system, msgs, [(m.role, m.content) for m in rec.chosen + rec.rejected], len(rec.audios)
    return rec.system, msgs[:-1], msgs[-1:], len(rec.audios)


def read(paths: list[Path], **kw: Any) -> list[Pending]:
    """audiodata's records and findings (reader, schema, text rules: what convert judges before the audio)."""
    return list(read_records(expand([str(p) for p in paths], **kw), 1 << 26))


def errors(p: Pending) -> set[str]:
    return {f.code for f in p.findings if f.is_error}


def audio(dst: Path, *names: str) -> list[str]:
    """Copies of sample clips under ``dst`` (the dataset_dir), as the relative paths a record names."""
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(SAMPLE_AUDIO / n, dst / n)
    return list(names)


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# -- 0.9.x dataset_info.json datasets: LLaMA-Factory's verdict and ours, record by record ---------------------------------

A, B = "clip07_16k.flac", "clip08_16k.flac"


def chat(*turns: tuple[str, str], audios: tuple[str, ...] = (A,)) -> dict[str, Any]:
    """sharegpt with role/content tags, as the mllm_audio_demo entry declares it (data/dataset_info.json:41-53;
    the record form of data/README.md:392-430 under those tags)."""
    return {"messages": [{"role": r, "content": c} for r, c in turns], "audios": list(audios)}


def pair(prompt: list[tuple[str, str]], chosen: tuple[str, str], rejected: tuple[str, str]) -> dict[str, Any]:
    """sharegpt preference data with the default from/value tags (data/README.md:223-272; dpo_en_demo's entry,
    data/dataset_info.json:489-497), plus an audios column (data/README.md:392-430)."""
    return {
        "conversations": [{"from": r, "value": v} for r, v in prompt],
        "chosen": {"from": chosen[0], "value": chosen[1]},
        "rejected": {"from": rejected[0], "value": rejected[1]},
        "audios": [A],
    }


def alpaca(instruction: str, output: str | None, history: list[list[str]] | None = None, audios: tuple[str, ...] = (A,)) -> dict:
    """alpaca supervised data (data/README.md:49-95) with an audios column (data/README.md:164-166)."""
    return {
        "instruction": instruction,
        "input": "",
        "output": output,
        "system": "",
        "history": history or [],
        "audios": list(audios),
    }


CHAT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}

#: entry name -> (dataset_info.json entry, [(record, LLaMA-Factory's verdict, the code audiodata rejects it with)])
CORPUS: dict[str, tuple[dict[str, Any], list[tuple[dict[str, Any], str | None, str | None]]]] = {
    "chat": (
        {
            "file_name": "chat.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "audios": "audios"},
            "tags": CHAT_TAGS,
        },
        [
            (chat(("user", "<audio>What is said?"), ("assistant", "Hello there.")), None, None),
            (
                chat(
                    ("system", "Be brief."),
                    ("user", "<audio>Who?"),
                    ("assistant", "A man."),
                    ("user", "And <audio>?"),
                    ("assistant", "A woman."),
                    audios=(A, B),
                ),
                None,
                None,
            ),
            (chat(("user", "<audio><audio>Compare."), ("assistant", "Same.")), CRASHES, "M001"),
            (chat(("assistant", "Hi."), ("user", "<audio>What?")), SKIPPED, "S003"),
            (chat(("user", "<audio>What?"), ("assistant", "Hi."), ("user", "More?")), SKIPPED, "S007"),
            (chat(("narrator", "<audio>Once upon a time."), ("assistant", "Go on.")), SKIPPED, "S002"),
        ],
    ),
    "rank": (
        {
            "file_name": "rank.json",
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "audios": "audios"},
        },
        [
            (pair([("human", "<audio>Summarise.")], ("gpt", "A greeting."), ("gpt", "No idea.")), None, None),
            (pair([("human", "<audio>Summarise.")], ("human", "A greeting."), ("gpt", "No idea.")), MISTRAINS, "S006"),
            (pair([("human", "<audio>Summarise."), ("gpt", "Sure.")], ("gpt", "A greeting."), ("gpt", "No.")), SKIPPED, "S007"),
        ],
    ),
    "plain": (
        {
            "file_name": "plain.json",
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "system": "system",
                "history": "history",
                "audios": "audios",
            },
        },
        [
            (alpaca("<audio>Transcribe.", "Hello there."), None, None),
            (alpaca("<audio>And this one?", "A second clip.", history=[["Ready?", "Yes."]]), None, None),
            (alpaca("Transcribe.", "Hello there."), CRASHES, "M001"),  # an audio and no <audio>
            (alpaca("<audio>Transcribe.", None), DROPPED, "S005"),  # no answer: unsupervised, dropped by the SFT processor
        ],
    ),
    "unmapped": (  # the audios column not mapped (data/README.md:392-430 asks for it): LLaMA-Factory does not read it
        {"file_name": "unmapped.json", "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": CHAT_TAGS},
        [
            (chat(("user", "What is said?"), ("assistant", "Hello there."), audios=()), None, None),
            (chat(("user", "<audio>What is said?"), ("assistant", "Hello there.")), CRASHES, "S001:audios"),
            (chat(("user", "Describe the clip."), ("assistant", "A man.")), LOSES, "S001:audios"),
        ],
    ),
    "partial": (  # columns given without query: LLaMA-Factory reads no input column (DatasetAttr.join)
        {"file_name": "partial.json", "columns": {"prompt": "instruction", "response": "output", "audios": "audios"}},
        [
            ({"instruction": "<audio>Transcribe.", "input": "", "output": "Hello there.", "audios": [A]}, None, None),
            (
                {"instruction": "<audio>Transcribe", "input": "in capitals.", "output": "HELLO.", "audios": [A]},
                LOSES,
                "S001:input",
            ),
        ],
    ),
}

#: Not SFT/DPO/KTO data, or not local: LLaMA-Factory's own c4_demo (data/dataset_info.json:645-650, the pretraining
#: form of data/README.md:96-119) and a hub entry (hf_hub_url, parser.py get_dataset_list), both reported once.
OTHER_ENTRIES = {
    "c4_like": {"file_name": "c4_like.jsonl", "columns": {"prompt": "text"}},
    "hub_only": {"hf_hub_url": "someone/some-audio-set", "formatting": "sharegpt"},
    "hub_first": {"hf_hub_url": "someone/other", "file_name": "chat.json", "formatting": "sharegpt"},
}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lf") / "data"
    audio(root, A, B)
    info = {}
    for name, (entry, cases) in CORPUS.items():
        write_json(root / entry["file_name"], [rec for rec, _, _ in cases])
        info[name] = entry
    (root / "c4_like.jsonl").write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(200)))
    info.update(OTHER_ENTRIES)
    write_json(root / "dataset_info.json", info)
    write_json(root / "notes.json", {"not": "a dataset"})  # a JSON file no entry names
    return root


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_lf_verdicts_match_ours_record_by_record(lf: SimpleNamespace, dataset_dir: Path, tmp_path: Path, name: str) -> None:
    entry, cases = CORPUS[name]
    attr, rows = lf_rows(lf, dataset_dir, name, tmp_path / "cache")
    assert len(rows) == len(cases)
    pending = read([dataset_dir / "dataset_info.json"], datasets=[name])
    assert len(pending) == len(cases)
    for i, ((_, want_lf, want_code), row, p) in enumerate(zip(cases, rows, pending, strict=True)):
        verdict = lf_verdict(lf, row, attr.ranking)
        assert verdict == (None if want_lf == LOSES else want_lf), (name, i, row)  # what LLaMA-Factory really does
        if want_lf is None:  # accepted there: converted here, with the same turns and audio count
            assert not errors(p), (name, i, p.findings)
            assert our_turns(p.record) == lf_turns(row), (name, i)
        else:  # skipped, dropped or a crash there: rejected here, located to a field
            found = {f.code: f for f in p.findings if f.is_error}
            want_code, _, want_field = want_code.partition(":")
            assert want_code in found, (name, i, p.findings)
            assert not want_field or found[want_code].field == want_field, found[want_code]
            assert p.source.index == i and p.source.file.endswith(entry["file_name"])
            assert found[want_code].field or want_code in ("S003", "S007"), found[want_code]


def test_lf_accepted_records_convert_whole(lf: SimpleNamespace, dataset_dir: Path, tmp_path: Path) -> None:
    """End to end (audio decoded): exactly the records LLaMA-Factory trains are written; the others are in rejects.jsonl."""
    result = audiodata.convert([str(dataset_dir)], tmp_path / "out", num_workers=1)
    accepted = sum(1 for _, cases in CORPUS.values() for _, v, _ in cases if v is None)
    assert result.records_written == accepted
    assert result.records_rejected == sum(len(c) for _, c in CORPUS.values()) - accepted
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert all(r["reasons"] and r["source"] for r in rejects)
    # the entries not read, once each, counted as warnings: no record errors for the 200 pretraining rows
    assert [(s["code"], s["entry"] or Path(s["source"]).name) for s in result.skipped_inputs] == [
        ("F006", "c4_like"),
        ("F006", "hub_only"),
        ("F006", "hub_first"),
        ("F007", "notes.json"),
    ]
    assert result.warnings_by_code["F006"] == 3 and result.warnings_by_code["F007"] == 1


def test_lf_itself_on_the_entries_not_read(
    lf: SimpleNamespace, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # hub entries are read through the Hub: offline and not cached here
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # hub entries load from the hub in LLaMA-Factory, even with a file_name beside the URL (parser.py get_dataset_list)
    for name in ("hub_only", "hub_first"):
        assert lf.get_dataset_list([name], str(dataset_dir))[0].load_from == "hf_hub"
    # the pretraining entry maps only its text: aligned for SFT every row has no response, and every row is dropped
    attr, rows = lf_rows(lf, dataset_dir, "c4_like", tmp_path / "cache")
    assert len(rows) == 200 and {lf_verdict(lf, row, attr.ranking) for row in rows} == {DROPPED}
    report = audiodata.lint([str(dataset_dir / "dataset_info.json")], num_workers=1, audio=False).to_dict()
    f006 = [f for f in report["findings"] if f["code"] == "F006"]
    assert [(f["field"], f["index"], f["severity"]) for f in f006] == [
        ("c4_like", -1, "warning"),
        ("hub_only", -1, "warning"),
        ("hub_first", -1, "warning"),
    ]
    assert "not an SFT/DPO/KTO dataset" in f006[0]["message"] and "pretraining" in f006[0]["message"]
    assert "not read: hf://someone/some-audio-set: not in the local Hugging Face cache" in f006[1]["message"]
    assert report["summary"]["records"] == sum(len(c) for _, c in CORPUS.values())  # no c4 row was read
    assert not [f for f in report["findings"] if f["source"].endswith("c4_like.jsonl")]


def test_f006_and_f007_quiet_when_everything_is_read(dataset_dir: Path, tmp_path: Path) -> None:
    lf_dir = tmp_path / "data"
    shutil.copytree(dataset_dir, lf_dir)
    info = json.loads((lf_dir / "dataset_info.json").read_text())
    for name in OTHER_ENTRIES:
        del info[name]
    write_json(lf_dir / "dataset_info.json", info)
    got = expand_inputs([str(lf_dir)], all_files=True)
    assert got.skipped == [] and any(f.path.name == "notes.json" for f in got.files)
    report = audiodata.lint([str(lf_dir)], num_workers=1, audio=False, all_files=True).to_dict()
    assert not {"F006", "F007"} & set(report["summary"]["by_code"])


def test_folder_reads_exactly_the_named_files_cli(dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["lint", str(dataset_dir), "--no-audio", "--no-progress", "--num-workers", "1", "--report-json", "-"]
    cli(base)
    named = json.loads(capsys.readouterr().out)
    assert not [f for f in named["findings"] if f["source"].endswith("notes.json") and f["code"] != "F007"]
    cli([*base, "--all-files"])
    every = json.loads(capsys.readouterr().out)
    assert every["summary"]["records"] == named["summary"]["records"] + 1  # notes.json read: an F003 reject
    assert any(f["source"].endswith("notes.json") and f["code"] == "F003" for f in every["findings"])


# -- dataset_info.json keys: every key LLaMA-Factory reads is judged, anything else is an error -------------------------------


def test_our_key_lists_cover_datasetattr_exactly(lf: SimpleNamespace) -> None:
    # DatasetAttr (data/parser.py) holds every key DatasetAttr.join reads, besides the source keys get_dataset_list reads
    lf_keys = {f.name for f in fields(lf.DatasetAttr)} - {"load_from", "dataset_name"}
    ours = set(ENTRY_KEYS) - {"file_name", *HUB_KEYS, "columns", "tags"}
    assert ours | {c for cols in COLUMNS.values() for c in cols} | set(TAGS) == lf_keys
    assert set(IGNORED_KEYS) == {"subset", "folder", "num_samples"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"file_name": "chat.json", "formating": "sharegpt"}, "dataset 'x': unknown key 'formating'"),
        (
            {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "messages", "audio": "audios"}},
            "unknown columns key 'audio'",
        ),
        (
            {"file_name": "chat.json", "formatting": "sharegpt", "tags": {"role_tag": "role", "speaker_tag": "x"}},
            "unknown tags key 'speaker_tag'",
        ),
        ({"file_name": "plain.json", "columns": {"messages": "conversations"}}, "unknown columns key 'messages'"),
        (
            {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"prompt": "instruction"}},
            "unknown columns key 'prompt'",
        ),
        (
            {"file_name": "plain.json", "tags": {"role_tag": "role"}},
            "unknown tags key 'role_tag' (none apply with formatting alpaca)",
        ),
        ({"file_name": "chat.json", "formatting": "chatml"}, "unknown formatting 'chatml'"),
        ({"file_name": "rank.json", "ranking": "yes"}, "ranking must be true or false"),
        ({"file_name": "plain.json", "split": "train[:10]"}, "split 'train[:10]'"),
        ({"file_name": "plain.json", "columns": {"audios": ""}}, "columns.audios must be a non-empty string"),
        ({"formatting": "sharegpt"}, "no file_name"),
    ],
)
def test_unknown_dataset_info_keys_are_errors(
    lf: SimpleNamespace, dataset_dir: Path, tmp_path: Path, entry: dict, message: str
) -> None:
    lf_dir = tmp_path / "d"
    shutil.copytree(dataset_dir, lf_dir)
    write_json(lf_dir / "dataset_info.json", {"x": entry})
    if entry.get("formatting") not in ("chatml",) and "file_name" in entry and "split" not in entry:
        lf.get_dataset_list(["x"], str(lf_dir))  # LLaMA-Factory itself takes the entry silently
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as err:
        expand([str(lf_dir / "dataset_info.json")])
    assert str(lf_dir / "dataset_info.json") in str(err.value)
    assert cli(["lint", str(lf_dir), "--no-audio", "--no-progress"]) == 2  # a usage error, exit 2


def test_understood_keys_are_accepted(dataset_dir: Path, tmp_path: Path) -> None:
    lf_dir = tmp_path / "d"
    shutil.copytree(dataset_dir, lf_dir)
    entry = dict(CORPUS["chat"][0])
    entry.update(subset="default", folder="audio", num_samples=3, split="train")  # ignored: not about a local file's data
    entry["columns"] = {
        **entry["columns"],
        "images": "images",
        "videos": "videos",
        "kto_tag": "label",
        "system": "system",
        "tools": "tools",
    }
    entry["tags"] = {**entry["tags"], "observation_tag": "observation", "function_tag": "function_call"}
    write_json(lf_dir / "dataset_info.json", {"chat": entry})
    files = expand([str(lf_dir / "dataset_info.json")])
    assert [f.spec.name for f in files] == ["chat"] and files[0].spec.columns["kto_tag"] == "label"


# -- v1: the native format -------------------------------------------------------------------------------------------------


def text(value: str) -> dict[str, str]:
    return {"type": "text", "value": value}


def clip(path: str) -> dict[str, str]:
    return {"type": "audio_url", "value": path}


def msg(role: str, *items: dict[str, str], weight: float | None = None) -> dict[str, Any]:
    """A v1 message: Message and Content of src/llamafactory/v1/utils/types.py:81-95, loss_weight as data/v1_sft_demo.jsonl:1."""
    m: dict[str, Any] = {"role": role, "content": list(items)}
    if weight is not None:
        m["loss_weight"] = weight
    return m


CALL = '{"name": "lookup", "arguments": {"word": "hello"}}'
VA, VB = (
    f"data/{A}",
    f"data/{B}",
)  # v1 opens media relative to the working directory, as data/v1_multimodal_demo.jsonl:1 names them
PROMPT = [msg("system", text("Answer briefly."), weight=0.0), msg("user", clip(VA), text("What is said?"), weight=0.0)]

#: (v1 row, what current v1 does (None: trains it), the field audiodata rejects it at, or None when it converts it)
#: SFTSample (types.py:97-105, data/v1_sft_demo.jsonl:1) and DPOSample (types.py:108-118, data/v1_dpo_demo.jsonl:1).
V1_CASES: list[tuple[dict[str, Any], str | None, str | None]] = [
    ({"messages": [*PROMPT, msg("assistant", text("Hello there."), weight=1.0)]}, None, None),
    (
        {
            "messages": [
                msg("user", text("Look up what "), clip(VB), text(" says.")),
                msg("assistant", {"type": "tool_call", "value": CALL}),
                msg("tool", text('{"meaning": "a greeting"}')),
                msg("assistant", text("It is a greeting.")),
            ],
            "tools": '[{"name": "lookup", "parameters": {}}]',
        },
        None,
        None,
    ),
    (
        {
            "chosen_messages": [*PROMPT, msg("assistant", text("Hello."))],
            "rejected_messages": [*PROMPT, msg("assistant", text("Bye."))],
        },
        None,
        None,
    ),
    # what v1 refuses when it trains (restated in v1_verdict): audiodata refuses it too, located
    ({"chosen_messages": [*PROMPT, msg("assistant", text("Hello."))], "rejected_messages": PROMPT}, "ValueError", None),
    (
        {"messages": [msg("user", clip(VA)), msg("assistant", {"type": "tool_call", "value": "lookup(hello)"})]},
        "ValueError",
        "messages[1].content[0].value",
    ),
    ({"messages": [*PROMPT, msg("assistant", text("Hi."))], "tools": "not json"}, "ValueError", "tools"),
    ({"chosen_messages": [*PROMPT, msg("assistant", text("Hello."))]}, "ValueError", "rejected_messages"),
    # what v1 drops without a word: an item type it does not know (format.py:64-69 keep only the known ones)
    (
        {"messages": [msg("user", {"type": "audio", "value": VA}), msg("assistant", text("Hi."))]},
        "dropped",
        "messages[0].content[0].type",
    ),
    # what v1 trains but the canonical record cannot hold: refused, never silently changed
    ({"messages": [*PROMPT, msg("assistant", text("Hi."), weight=0.0)]}, None, "messages[2].loss_weight"),
    (
        {"messages": [*PROMPT, msg("assistant", {"type": "reasoning", "value": "Short."}, text("Hi."))]},
        None,
        "messages[2].content[0]",
    ),
    (
        {"messages": [*PROMPT, msg("assistant", text("Calling."), {"type": "tool_call", "value": CALL})]},
        None,
        "messages[2].content",
    ),
    (
        {
            "chosen_messages": [*PROMPT, msg("assistant", text("Hello."))],
            "rejected_messages": [PROMPT[0], msg("user", clip(VB), text("What is said?")), msg("assistant", text("Bye."))],
        },
        None,
        "rejected_messages[1]",
    ),
    (
        {"messages": [*PROMPT, msg("assistant", text("Hi."))], "chosen_messages": [*PROMPT, msg("assistant", text("Hi."))]},
        None,
        "chosen_messages",
    ),
]


def v1_verdict(lf: SimpleNamespace, sample: dict[str, Any]) -> str | None:
    """What current LLaMA-Factory v1 does with a native row when it trains it, restated from the mirror's source:
    None (trained), "ValueError" (it stops), or "dropped" (part of the row silently ignored)."""
    roles, kinds = get_args(lf.v1_types.Message.__annotations__["role"]), get_args(lf.v1_types.Content.__annotations__["type"])
    if sample.get("messages") is not None:  # rendering.py:279 (a row with messages is SFT, whatever else it holds)
        sides = [
            sample["messages"][: i + 1] for i, m in enumerate(sample["messages"]) if m["role"] == "assistant"
        ]  # data_engine.py:140
    elif sample.get("chosen_messages") is not None and sample.get("rejected_messages") is not None:  # rendering.py:283
        sides = [sample["chosen_messages"], sample["rejected_messages"]]
    else:
        return "ValueError"  # rendering.py:313 "No valid messages or chosen_messages/rejected_messages found in sample."
    if sample.get("tools"):
        try:
            json.loads(sample["tools"])
        except json.JSONDecodeError:
            return "ValueError"  # rendering.py:75-78 "tools is not valid JSON"
    for side in sides:
        if not side or side[-1]["role"] != "assistant":
            return "ValueError"  # rendering.py:144-148: the last message must be the supervised assistant turn
        for m in side:
            assert m["role"] in roles
            for item in m["content"]:
                if item["type"] not in kinds:
                    return "dropped"  # format.py:47-69: items of other types are left out of the message
                if item["type"] == "tool_call":
                    try:
                        call = json.loads(item["value"])
                    except json.JSONDecodeError:
                        return "ValueError"  # format.py:52-56
                    if not isinstance(call, dict) or "name" not in call or "arguments" not in call:
                        return "ValueError"  # format.py:57-60
    return None


def test_v1_native_rows_both_ways(lf: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audio(tmp_path / "data", A, B)
    rows = [row for row, _, _ in V1_CASES]
    (tmp_path / "data" / "v1_audio.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the YAML form of data/v1_multimodal_demo.yaml:1-3 (path relative to the working directory, source: local)
    (tmp_path / "v1_audio.yaml").write_text(yaml.safe_dump({"v1_audio": {"path": "data/v1_audio.jsonl", "source": "local"}}))
    monkeypatch.chdir(tmp_path)
    engine = lf.DataEngine("v1_audio.yaml")  # v1's own loader: every row comes through as written
    assert len(engine) == len(rows)
    pending = read([Path("v1_audio.yaml")])
    assert [p.record.dialect if p.record else None for p in pending][:3] == ["llamafactory-v1"] * 3
    for i, ((row, want, field), p) in enumerate(zip(V1_CASES, pending, strict=True)):
        sample = {k: v for k, v in engine[i].items() if k != "_dataset_name" and v is not None}
        assert sample == row, i
        assert v1_verdict(lf, sample) == want, i
        if want is None and field is None:
            assert not errors(p), (i, p.findings)
            assert our_turns(p.record) == v1_turns(sample), i
            assert p.record.media_root == str(tmp_path)  # media against the working directory, as v1 opens them
        else:
            bad = [f for f in p.findings if f.is_error]
            assert bad, (i, row)
            if field is not None:  # the field, or for a missing key (located at the record) its name in the message
                assert any(field == f.field or (not f.field and repr(field) in f.message) for f in bad), (i, bad)
    convert = audiodata.convert(["v1_audio.yaml"], tmp_path / "out", num_workers=1)
    assert convert.records_written == 3 and convert.records_rejected == len(rows) - 3


def v1_turns(sample: dict[str, Any]) -> tuple[Any, ...]:
    """A v1 row as (system, prompt turns, response turns, audio count): text items joined, each audio_url an <audio>,
    an assistant message of tool_call items a function_call turn."""

    def flat(m: dict[str, Any]) -> tuple[str, str]:
        calls = [i["value"] for i in m["content"] if i["type"] == "tool_call"]
        if calls:
            return "function_call", calls[0] if len(calls) == 1 else "[" + ", ".join(calls) + "]"
        return m["role"], "".join(AUDIO_MARKER if i["type"] == "audio_url" else i["value"] for i in m["content"])

    sides = [sample["messages"]] if "messages" in sample else [sample["chosen_messages"], sample["rejected_messages"]]
    turns = [[flat(m) for m in side] for side in sides]
    system = turns[0][0][1] if turns[0][0][0] == "system" else None
    if system is not None:
        turns = [t[1:] for t in turns]
    n_audio = sum(i["type"] == "audio_url" for m in sides[0] for i in m["content"])
    n_audio += sum(i["type"] == "audio_url" for side in sides[1:] for i in side[-1]["content"])
    return system, turns[0][:-1], [t[-1] for t in turns], n_audio


# -- v1 dataset YAML: converters, keys, sources ---------------------------------------------------------------------------------


def test_v1_yaml_converters_match_lf(lf: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows read through a YAML's converter (data/v1_sft_demo.yaml:1-9: alpaca; converter.py's sharegpt and pair), text
    only as 0.9.5's converters are: LLaMA-Factory's DataEngine converts them, audiodata reads the same turns."""
    data = tmp_path / "data"
    write_json(data / "alpaca.json", [  # AlpacaSample, converter.py (v1) alpaca_converter
        {"system": "Be brief.", "instruction": "Say hello", "input": " to Ann.", "output": "Hello Ann."},
        {"system": "", "instruction": "Count to two.", "input": "", "output": "One, two."},
    ])  # fmt: skip
    write_json(data / "sharegpt.json", [  # SharegptSample, converter.py (v1) sharegpt_converter
        {"conversations": [{"from": "human", "value": "Look up hello."}, {"from": "function_call", "value": CALL},
                           {"from": "observation", "value": "a greeting"}, {"from": "gpt", "value": "A greeting."}],
         "tools": '[{"name": "lookup"}]'},
    ])  # fmt: skip
    write_json(data / "pair.json", [  # PairSample, converter.py (v1) pair_converter: each side a whole conversation
        {"chosen": [{"role": "user", "content": "Greet me."}, {"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "user", "content": "Greet me."}, {"role": "assistant", "content": "Go away."}]},
        {"chosen": [{"role": "user", "content": "Greet me."}, {"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "user", "content": "Insult me."}, {"role": "assistant", "content": "Go away."}]},
    ])  # fmt: skip
    spec = {
        "alpaca_rows": {"path": "data/alpaca.json", "source": "local", "converter": "alpaca", "size": 2},
        "sharegpt_rows": {"path": "data/sharegpt.json", "source": "local", "converter": "sharegpt", "weight": 1.0},
        "pair_rows": {"path": "data/pair.json", "source": "local", "converter": "pair", "streaming": False},
        "on_the_hub": {"path": "someone/v1-audio", "converter": "sharegpt"},  # no source: the hub (data_engine.py:92)
    }
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    got = expand_inputs(["mix.yaml"])
    assert [(s.code, s.entry) for s in got.skipped] == [("F006", "on_the_hub")]
    assert "source: local" in got.skipped[0].reason
    pending = list(read_records(got.files, 1 << 26))
    assert len(pending) == 5
    for name, n, first in (("alpaca_rows", 2, 0), ("sharegpt_rows", 1, 2), ("pair_rows", 2, 3)):
        rows = [json.loads(json.dumps(r)) for r in json.loads((data / f"{name.split('_')[0]}.json").read_text())]
        for k in range(n):
            sample = lf.v1_converter(spec[name]["converter"])(rows[k])  # LLaMA-Factory's own converter
            p = pending[first + k]
            if name == "pair_rows" and k == 1:  # two prompts: v1 would train it as a pair; not a pair, refused here
                assert errors(p) == {"S001"} and p.findings[0].field == "rejected[0]"
                continue
            assert not errors(p), (name, k, p.findings)
            system, prompt, response, _ = v1_turns(sample)
            ours = our_turns(p.record)
            assert ours[0] == (system or None) and ours[1] == prompt, (name, k)
            if name == "sharegpt_rows":  # v1 rewrites the tool call with json.dumps: the same call
                assert [json.loads(c) if r == "function_call" else c for r, c in ours[1]] == [
                    json.loads(c) if r == "function_call" else c for r, c in prompt
                ]
            assert ours[2] == response, (name, k)
    # alpaca: instruction and input joined as v1 joins them, with nothing between (0.9.x puts a newline there)
    assert pending[0].record.messages[0].content == "Say hello to Ann."


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "data/x.jsonl", "source": "local", "convertor": "alpaca"}, "unknown key 'convertor'"),
        ({"path": "data/x.jsonl", "source": "s3"}, "unknown source 's3'"),
        ({"path": "data/x.jsonl", "source": "local", "converter": "openai"}, "unknown converter 'openai'"),
        ({"path": "data/missing.jsonl", "source": "local"}, "resolves it against the working directory"),
        ({"path": "data/x.jsonl", "source": "local", "split": "test"}, "split 'test'"),
        ({"source": "local"}, "path must be a non-empty string"),
    ],
)
def test_v1_yaml_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: dict, message: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text(
        json.dumps({"messages": [msg("user", text("q")), msg("assistant", text("a"))]}) + "\n"
    )
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"x": entry}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        expand(["d.yaml"])
    assert set(V1_KEYS) == {"path", "source", "split", "converter", "size", "weight", "streaming"}


def test_v1_keys_are_lf_datasetinfo(lf: SimpleNamespace) -> None:
    assert set(V1_KEYS) == set(lf.v1_types.DatasetInfo.__annotations__)  # types.py:64-78


# -- our exports through LLaMA-Factory's own code, record for record ---------------------------------------------------------


@pytest.fixture(scope="module")
def converted(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus above converted (the records LLaMA-Factory trains), with a held-out split."""
    out = tmp_path_factory.mktemp("conv") / "out"
    audiodata.convert(
        [str(dataset_dir), str(Path(__file__).resolve().parents[2] / "sample_data")], out, num_workers=1, val_ratio=0.3
    )
    return out


def stored(out: Path) -> Counter[tuple[Any, ...]]:
    """The converted records as (kind, system, prompt, response, audio count)."""
    import pyarrow.parquet as pq

    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {n: c["kind"] for n, c in manifest["summary"]["configs"].items()}
    found: Counter[tuple[Any, ...]] = Counter()
    for shard in manifest["shards"]:
        for row in pq.read_table(out / shard["file"]).to_pylist():
            msgs = [(m["role"], m["content"]) for m in row[prompt_column(kinds[shard["config"]])]]
            if kinds[shard["config"]] == "dpo":
                response = [(m["role"], m["content"]) for m in row["chosen"] + row["rejected"]]
            else:
                msgs, response = msgs[:-1], msgs[-1:]
            key = (kinds[shard["config"]], row["system"] or None, json.dumps(msgs), json.dumps(response), len(row["audios"]))
            found[key] += 1
    return found


@pytest.mark.parametrize("form", ["sharegpt", "alpaca"])
def test_llamafactory_export_through_lf(lf: SimpleNamespace, converted: Path, tmp_path: Path, form: str) -> None:
    dest = tmp_path / "lf"
    result = export(converted, "llamafactory", dest, form=form)
    info = json.loads((dest / "dataset_info.json").read_text())
    seen: Counter[tuple[Any, ...]] = Counter()
    for name in info:
        attr, rows = lf_rows(lf, dest, name, tmp_path / "cache")
        assert len(rows) == result.counts[f"{name.rsplit('_', 1)[0]}/{name.rsplit('_', 1)[1]}"]
        for row in rows:
            assert lf_verdict(lf, row, attr.ranking) is None, row
            assert all((dest / a).is_file() for a in row["_audios"] or [])  # data/converter.py _find_medias: under media_dir
            system, prompt, response, n = lf_turns(row)
            seen[("dpo" if attr.ranking else "sft", system, json.dumps(prompt), json.dumps(response), n)] += 1
    skipped = result.records_skipped
    want = stored(converted)
    if form == "sharegpt":
        assert skipped == 0 and seen == want
    else:  # alpaca cannot hold tool turns: those are skipped and counted, the rest is the same
        assert not seen - want and sum(want.values()) - sum(seen.values()) == skipped


def test_llamafactory_v1_export_through_lf(
    lf: SimpleNamespace, converted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "v1"
    result = export(converted, "llamafactory-v1", dest)
    assert result.exit_code == 0
    assert result.train["sft"]["eval_dataset"] == ["sft_validation.yaml"]
    monkeypatch.chdir(dest)  # v1 opens the YAML's path and the audio paths relative to the working directory
    kinds, roles = get_args(lf.v1_types.Content.__annotations__["type"]), get_args(lf.v1_types.Message.__annotations__["role"])
    seen: Counter[tuple[Any, ...]] = Counter()
    for name in result.files:
        if not name.endswith(".yaml"):
            continue
        engine = lf.DataEngine(name)  # LLaMA-Factory v1's own loader (0.9.5), record for record
        written = [json.loads(line) for line in (dest / name).with_suffix(".jsonl").read_text().splitlines()]
        assert len(engine) == len(written)
        for i, row in enumerate(written):
            sample = {k: v for k, v in engine[i].items() if k != "_dataset_name" and v is not None}
            assert sample == row
            assert v1_verdict(lf, sample) is None
            sides = [sample["messages"]] if "messages" in sample else [sample["chosen_messages"], sample["rejected_messages"]]
            for side in sides:
                for m in side:
                    assert m["role"] in roles and m["loss_weight"] == (1.0 if m["role"] == "assistant" else 0.0)
                    assert all(item["type"] in kinds and isinstance(item["value"], str) for item in m["content"])
                    assert all(Path(item["value"]).is_file() for item in m["content"] if item["type"] == "audio_url")
            system, prompt, response, n = v1_turns(sample)
            seen[("sft" if "messages" in sample else "dpo", system, json.dumps(prompt), json.dumps(response), n)] += 1
    assert seen == stored(converted)


def test_v1_export_equals_what_v1_converters_make(lf: SimpleNamespace, converted: Path, tmp_path: Path) -> None:
    """v1's sharegpt and pair converters (0.9.5: text items, markers kept in the text) turn our 0.9.x export into
    v1 rows; our v1 export is the same rows, loss weights included, with each <audio> as its audio_url item."""
    export(converted, "llamafactory", tmp_path / "lf")
    export(converted, "llamafactory-v1", tmp_path / "v1")
    for stem in ("sft_train", "sft_validation", "dpo_train", "dpo_validation"):
        old = json.loads((tmp_path / "lf" / f"{stem}.json").read_text())
        new = [json.loads(line) for line in (tmp_path / "v1" / f"{stem}.jsonl").read_text().splitlines()]
        assert len(old) == len(new) > 0
        for o, n in zip(old, new, strict=True):
            if stem.startswith("sft"):
                made = lf.v1_converter("sharegpt")(o)  # the system column is not read by v1's sharegpt converter
                mine = [m for m in n["messages"] if m["role"] != "system"]
                assert normal(made["messages"]) == normal(mine)
                assert made.get("tools") == (json.dumps(json.loads(n["tools"])) if "tools" in n else None)
            else:
                to = {"human": "user", "gpt": "assistant", "observation": "tool", "function_call": "assistant"}
                prompt = [{"role": to[m["from"]], "content": m["value"]} for m in o["conversations"]]
                if o["system"]:
                    prompt.insert(0, {"role": "system", "content": o["system"]})
                sides = {k: [*prompt, {"role": "assistant", "content": o[k]["value"]}] for k in ("chosen", "rejected")}
                made = lf.v1_converter("pair")(sides)
                for k in ("chosen_messages", "rejected_messages"):
                    assert normal(made[k]) == normal(n[k])


def normal(messages: list[dict[str, Any]]) -> list[tuple[str, float, str]]:
    """(role, loss_weight, text) with audio_url items as <audio> markers and tool calls as parsed JSON."""
    out = []
    for m in messages:
        parts = [
            json.dumps(json.loads(i["value"]), sort_keys=True)
            if i["type"] == "tool_call"
            else AUDIO_MARKER
            if i["type"] == "audio_url"
            else i["value"]
            for i in m["content"]
        ]
        out.append((m["role"], m["loss_weight"], "".join(parts)))
    return out
