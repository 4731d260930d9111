"""``audiodata export``: LLaMA-Factory (sharegpt, alpaca), ms-swift and MiniCPM exports.

Each export is converted back and compared with the original by conversation and
PCM hashes; LLaMA-Factory exports are also checked against the rules LLaMA-Factory
applies when it loads a dataset (research notes, llamafactory.md section 5 A-D).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.dataset import DatasetError
from audiodata.export import ExportError, export, safe_name
from audiodata.writer.schema import prompt_column
from tests.conftest import write_audio, write_jsonl

AUDIO = "<audio>"
USER_TAGS, RESPONSE_TAGS = {"human", "observation"}, {"gpt", "function_call"}

Key = tuple[str, str, tuple[str, ...]]


# -- helpers -----------------------------------------------------------------------------------


def records(out: Path) -> Counter[Key]:
    """Every record of a converted output as (kind, normalised conversation, sorted PCM hashes)."""
    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {name: cfg["kind"] for name, cfg in manifest["summary"]["configs"].items()}
    found: Counter[Key] = Counter()
    for shard in manifest["shards"]:
        kind = kinds[shard["config"]]
        for row in pq.read_table(out / shard["file"]).to_pylist():
            conv = {
                "messages": [(m["role"], m["content"]) for m in row[prompt_column(kind)]],
                "chosen": [(m["role"], m["content"]) for m in row.get("chosen") or []],
                "rejected": [(m["role"], m["content"]) for m in row.get("rejected") or []],
                "completion": [(m["role"], m["content"]) for m in row.get("completion") or []],
                "label": row.get("label"),
                "system": row["system"] or None,
                "tools": row["tools"] or None,
            }
            hashes = tuple(sorted(i["pcm_hash"] for i in row["audio_info"]))
            found[(kind, json.dumps(conv, sort_keys=True), hashes)] += 1
    return found


def kinds_count(found: Counter[Key]) -> Counter[str]:
    c: Counter[str] = Counter()
    for (kind, _, _), n in found.items():
        c[kind] += n
    return c


def convert_back(dest: Path, tmp: Path) -> Path:
    back = tmp / "back"
    result = audiodata.convert([str(dest)], back, num_workers=1)
    assert result.records_rejected == 0, result.rejects_by_code
    return back


def cli(argv: list[str]) -> tuple[int, str]:
    """``audiodata ARGV`` as the command line runs it: the exit code and everything it printed (200 columns wide)."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        mp.setenv("COLUMNS", "200")
        code = main(argv)
    return code, printed.getvalue()


def load_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        assert isinstance(data, list)
        return data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- LLaMA-Factory rules (llamafactory.md section 5), implemented independently of the exporter --------


def lf_turns(rec: dict[str, Any], entry: dict[str, Any]) -> tuple[list[dict[str, str]], list[list[dict[str, str]]]]:
    """The prompt turns and the response variants LLaMA-Factory validates together, as {from, value}."""
    cols = entry["columns"]
    if entry["formatting"] == "alpaca":
        prompt: list[dict[str, str]] = []
        for pair in rec[cols["history"]]:
            assert isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair), "B8 history pairs"
            prompt += [{"from": "human", "value": pair[0]}, {"from": "gpt", "value": pair[1]}]
        user = "\n".join(p for p in (rec[cols["prompt"]], rec[cols["query"]]) if p)
        prompt.append({"from": "human", "value": user})
        if entry["ranking"]:
            for k in ("chosen", "rejected"):
                assert isinstance(rec[cols[k]], str) and rec[cols[k]], "B9 alpaca chosen/rejected are non-empty str"
            return prompt, [[{"from": "gpt", "value": rec[cols[k]]}] for k in ("chosen", "rejected")]
        assert isinstance(rec[cols["response"]], str), "B8 alpaca output is a str"
        return prompt, [[{"from": "gpt", "value": rec[cols["response"]]}]]
    msgs = rec[cols["messages"]]
    assert isinstance(msgs, list)
    for m in msgs:  # B6
        assert isinstance(m, dict) and set(m) >= {"from", "value"}, "B6 from/value keys"
        assert isinstance(m["value"], str), "B6 content is a str"
    if msgs and msgs[0]["from"] == "system":
        msgs = msgs[1:]
    for i, m in enumerate(msgs):  # B7
        assert m["from"] in (USER_TAGS if i % 2 == 0 else RESPONSE_TAGS), f"B7 role {m['from']!r} at turn {i}"
    if entry["ranking"]:  # B8, B9
        assert len(msgs) % 2 == 1, "B8 ranking prompt count is odd (ends on the user)"
        pairs = []
        for k in ("chosen", "rejected"):
            r = rec[cols[k]]
            assert isinstance(r, dict) and r["from"] in RESPONSE_TAGS and isinstance(r["value"], str), f"B9 {k}"
            pairs.append([r])
        assert pairs[0][0]["value"] != pairs[1][0]["value"], "B9 chosen differs from rejected"
        return msgs, pairs
    assert len(msgs) >= 2 and len(msgs) % 2 == 0, "B8 SFT count is even"
    return msgs[:-1], [msgs[-1:]]


def check_lf_record(rec: dict[str, Any], entry: dict[str, Any], dest: Path) -> None:
    cols = entry["columns"]
    for col in cols.values():  # A3: every mapped column exists
        assert col in rec, f"A3 missing column {col}"
    prompt, variants = lf_turns(rec, entry)
    audios = rec[cols["audios"]]
    assert isinstance(audios, list) and all(isinstance(a, str) for a in audios), "D15 audios are path strings"
    for response in variants:  # C11: prompt + each response separately
        turns = prompt + response
        assert sum(m["value"].count(AUDIO) for m in turns) == len(audios), "C11 <audio> count == len(audios)"
        assert not any("<image>" in m["value"] or "<video>" in m["value"] for m in turns), "C12"
    for col in ("system", "tools"):  # C13
        assert AUDIO not in (rec.get(cols[col]) or ""), f"C13 <audio> in {col}"
    for a in audios:  # D16: resolved against dataset_dir, staying inside it
        assert not os.path.isabs(a)
        assert os.path.isfile(os.path.join(dest, a)), f"D16 {a} missing under dataset_dir"
        assert (dest / a).resolve().is_relative_to(dest.resolve())


def check_lf_export(dest: Path, form: str) -> int:
    info = json.loads((dest / "dataset_info.json").read_text())
    assert info
    n = 0
    for name, entry in info.items():
        assert set(entry) == {"file_name", "formatting", "ranking", "columns"}, name  # A1; default tags
        assert entry["formatting"] == form
        assert isinstance(entry["ranking"], bool)
        assert Path(entry["file_name"]).suffix in (".json", ".jsonl")
        assert (dest / entry["file_name"]).is_file()  # A1
        cols = entry["columns"]
        expected = (
            {"messages", "system", "tools", "audios"}
            if form == "sharegpt"
            else {"prompt", "query", "history", "system", "tools", "audios"} | ({"response"} if not entry["ranking"] else set())
        )
        if entry["ranking"]:
            expected |= {"chosen", "rejected"}
        assert set(cols) == expected, name
        if form == "sharegpt":
            assert cols["messages"] == "conversations"
        recs = load_records(dest / entry["file_name"])
        assert recs  # F20: at least one example survives
        for rec in recs:
            check_lf_record(rec, entry, dest)
        n += len(recs)
    return n


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sharegpt", "alpaca"])
def test_llamafactory_round_trip(sample_out: tuple[Path, Any], tmp_path: Path, form: str) -> None:
    out, _ = sample_out
    dest = tmp_path / "lf"
    result = export(out, "llamafactory", dest, form=form)
    assert result.exit_code == 0 and not result.skipped_by_reason
    original = records(out)
    assert result.records_written == sum(original.values())
    assert check_lf_export(dest, form) == result.records_written
    assert set(result.files) == {"sft_train.json", "dpo_train.json", "dataset_info.json"}
    # the audio files are the stored bytes, under DEST/audio/<config>/<split>/
    assert result.audio_files == sum(len(k[2]) * n for k, n in original.items())
    assert all(p.suffix == ".flac" for p in (dest / "audio").rglob("*") if p.is_file())
    assert (dest / "audio" / "sft" / "train").is_dir() and (dest / "audio" / "dpo" / "train").is_dir()

    back = records(convert_back(dest / "dataset_info.json", tmp_path))
    assert kinds_count(back) == kinds_count(original)
    assert back == original


def test_llamafactory_v1_round_trip(sample_out: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = sample_out
    dest = tmp_path / "v1"
    result = export(out, "llamafactory-v1", dest)
    assert result.exit_code == 0 and not result.skipped_by_reason
    original = records(out)
    assert result.records_written == sum(original.values())
    names = {"sft_train.jsonl", "sft_train.yaml", "dpo_train.jsonl", "dpo_train.yaml"}
    assert set(result.files) == names and {p.name for p in dest.iterdir() if p.is_file()} == names
    assert result.audio_files == sum(len(k[2]) * n for k, n in original.items())
    assert result.train == {"sft": {"train_dataset": ["sft_train.yaml"], "eval_dataset": []},
                            "dpo": {"train_dataset": ["dpo_train.yaml"], "eval_dataset": []}}  # fmt: skip
    for rec in load_records(dest / "dpo_train.jsonl"):  # the shared prompt on both sides, the answers last
        assert rec["chosen_messages"][:-1] == rec["rejected_messages"][:-1]
        assert [m["loss_weight"] for m in rec["chosen_messages"]][-1] == 1.0
        assert all(m["loss_weight"] == 0.0 for m in rec["chosen_messages"][:-1] if m["role"] != "assistant")
    # v1 opens the YAML's path and the audio paths relative to the working directory: convert from there
    monkeypatch.chdir(dest)
    back = tmp_path / "back"
    converted = audiodata.convert(["sft_train.yaml", "dpo_train.yaml"], back, num_workers=1)
    assert converted.records_rejected == 0 and not converted.skipped_inputs, converted.rejects_by_code
    assert records(back) == original
    # the JSONL files read alone (dialect detected, media against their folder) give the same records
    assert records(convert_back(dest, tmp_path / "again")) == original


def test_llamafactory_sharegpt_shape(sample_out: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = sample_out
    dest = tmp_path / "lf"
    export(out, "llamafactory", dest)
    dpo = json.loads((dest / "dpo_train.json").read_text())
    for rec in dpo:
        assert rec["conversations"][-1]["from"] == "human"
        assert rec["chosen"]["from"] == rec["rejected"]["from"] == "gpt"
        assert all(m["from"] != "system" for m in rec["conversations"])
    sft = json.loads((dest / "sft_train.json").read_text())
    assert any(r["system"] for r in sft) and all(isinstance(r["system"], str) for r in sft)
    assert all(a.startswith("audio/sft/train/") for r in sft for a in r["audios"])


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_ms_swift_round_trip(sample_out: tuple[Path, Any], tmp_path: Path, relative: bool) -> None:
    out, _ = sample_out
    dest = tmp_path / "swift"
    result = export(out, "ms-swift", dest, relative_paths=relative)
    assert result.exit_code == 0
    assert set(result.files) == {"sft_train.jsonl", "dpo_train.jsonl"}
    assert result.streams == {"sft_train.jsonl": ("sft", "train"), "dpo_train.jsonl": ("dpo", "train")}
    for name in result.files:
        for rec in load_records(dest / name):
            roles = [m["role"] for m in rec["messages"]]
            assert "system" not in roles[1:]
            assert roles[-1] == "assistant"
            # ms-swift resolves a relative path against its working folder (or $ROOT_IMAGE_DIR): absolute unless asked
            assert all(os.path.isabs(a) != relative for a in rec["audios"])
            assert all((dest / a).is_file() for a in rec["audios"])
            assert sum(m["content"].count(AUDIO) for m in rec["messages"]) == len(rec["audios"])
            assert ("rejected_response" in rec) == name.startswith("dpo")
    original = records(out)
    back = records(convert_back(dest, tmp_path))
    assert back == original


@pytest.fixture(scope="module")
def swift_drops_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records audiodata converts but ms-swift would drop or misread as rejected_response rows."""
    base = tmp_path_factory.mktemp("swift_drops")
    clips = [write_audio(base / f"{k}.wav", 1.0, freq=300.0 + 110 * k) for k in range(4)]
    ask = {"from": "human", "value": "<audio>What is said?"}
    rows = [
        {"conversations": [ask], "chosen": {"from": "gpt", "value": "Hello."}, "rejected": {"from": "gpt", "value": "Bye."},
         "audios": [str(clips[0])]},
        # chosen == rejected: a P001 warning here, a row ms-swift deletes (core.py:159-161)
        {"conversations": [ask], "chosen": {"from": "gpt", "value": "Hi."}, "rejected": {"from": "gpt", "value": "Hi."},
         "audios": [str(clips[1])]},
        # the prompt ends on a tool result: rejected_response would replace it too (template_inputs.py:225-247)
        {"conversations": [ask, {"from": "function_call", "value": '{"name": "asr"}'}, {"from": "observation", "value": "hi"}],
         "chosen": {"from": "gpt", "value": "It says hi."}, "rejected": {"from": "gpt", "value": "Nothing."},
         "audios": [str(clips[2])], "tools": '[{"name": "asr"}]'},
    ]  # fmt: skip
    write_jsonl(base / "in" / "dpo.jsonl", rows)
    sft = {"conversations": [ask, {"from": "gpt", "value": "Hey."}], "audios": [str(clips[3])]}
    write_jsonl(base / "in" / "sft.jsonl", [sft])
    out = base / "out"
    result = audiodata.convert([str(base / "in")], out, num_workers=1)
    assert result.records_written == 4 and result.records_rejected == 0, result.rejects_by_code
    return out


def test_ms_swift_skips_and_counts_rows_ms_swift_would_drop(swift_drops_out: Path, tmp_path: Path) -> None:
    dest = tmp_path / "swift"
    result = export(swift_drops_out, "ms-swift", dest)
    assert result.exit_code == 1
    assert result.skipped_by_reason == {  # ms-swift deletes a pair whose rejected reply equals the chosen one
        "chosen and rejected are identical": 1,
        "ms-swift's rejected_response would also replace the tool turns that end this DPO prompt": 1,
    }
    assert result.skipped_by_code == {"P001": 1, "X202": 1}  # registered codes: `audiodata rules` documents both
    assert result.records_written == 2 and len(result.skipped) == 2
    dpo = load_records(dest / "dpo_train.jsonl")
    assert [(r["messages"][-1]["content"], r["rejected_response"]) for r in dpo] == [("Hello.", "Bye.")]
    back = records(convert_back(dest, tmp_path))
    assert not back - records(swift_drops_out) and sum(back.values()) == 2


def test_ms_swift_hints_name_the_commands_and_root_image_dir(sample_out: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = sample_out
    for relative in (False, True):
        dest = tmp_path / f"swift-{relative}"
        argv = ["export", str(out), "--to", "ms-swift", "-o", str(dest)] + (["--relative-paths"] if relative else [])
        code, text = cli(argv)
        assert code == 0
        env = f"ROOT_IMAGE_DIR={dest.resolve()} " if relative else ""
        assert f"train with: {env}swift sft --dataset {dest.resolve() / 'sft_train.jsonl'}" in text
        assert f"train with: {env}swift rlhf --rlhf_type dpo --dataset {dest.resolve() / 'dpo_train.jsonl'}" in text
        assert ("set ROOT_IMAGE_DIR=" in text) == relative
    code, text = cli(["export", str(out), "--to", "llamafactory", "-o", str(tmp_path / "lf"), "--relative-paths"])
    assert code == 2
    assert "--relative-paths applies to --to ms-swift only" in text


def test_minicpm_round_trip_and_skips(sample_out: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = sample_out
    dest = tmp_path / "minicpm"
    result = export(out, "minicpm", dest)
    assert result.exit_code == 1
    reasons = result.skipped_by_reason
    assert reasons["minicpm: DPO records are not supported"] == 13
    assert any("multi-turn" in r for r in reasons) and any("exactly one audio" in r for r in reasons)
    assert len(result.skipped) == result.records_skipped
    assert all(s["reason"] and s["id"] for s in result.skipped)
    original = records(out)
    assert result.records_written + result.records_skipped == sum(original.values())
    for rec in load_records(dest / "sft_train.jsonl"):
        assert set(rec) <= {"audio", "text", "prompt", "system", "id"}
        assert len(rec["audio"]) > 128 and rec["prompt"].count(AUDIO) <= 1
    assert not (dest / "dpo_train.jsonl").exists()  # nothing fit: no empty file

    back = records(convert_back(dest, tmp_path))
    assert sum(back.values()) == result.records_written
    assert kinds_count(back) == Counter({"sft": result.records_written})
    assert not back - original  # every exported record is an original one, hashes and all
    skipped = original - back
    for kind, conv, hashes in skipped:
        msgs = json.loads(conv)["messages"]
        assert kind == "dpo" or len(msgs) != 2 or len(hashes) != 1


# -- special records: tool turns, unsafe ids -------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("odd")
    a = write_audio(base / "a.wav", 1.0, 16000, 440.0)
    b = write_audio(base / "b.wav", 1.2, 22050, 660.0)
    tool_turns = [
        {"from": "human", "value": "<audio>Look up the weather in the place said."},
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"temp": 21}'},
        {"from": "gpt", "value": "It is 21 degrees in Paris."},
    ]
    write_jsonl(
        base / "in" / "odd.jsonl",
        [
            {"id": "../../escape me", "conversations": tool_turns, "tools": '[{"name": "weather"}]', "audios": [str(a)]},
            {"id": "../../escape me", "conversations": tool_turns[:1] + tool_turns[3:], "audios": [str(b)]},
            {"id": "...", "conversations": [{"from": "human", "value": "<audio><audio>Both?"}, {"from": "gpt", "value": "Yes."}],
             "audios": [str(a), str(b)]},
        ],
    )  # fmt: skip
    out = base / "out"
    result = audiodata.convert([str(base / "in")], out, num_workers=1)
    assert result.records_written == 3, result.rejects_by_code
    return out


@pytest.mark.parametrize(
    ("to", "form"),
    [("llamafactory", "sharegpt"), ("llamafactory", "alpaca"), ("llamafactory-v1", "sharegpt"), ("ms-swift", "sharegpt")],
)
def test_tools_and_unsafe_ids(odd_out: Path, tmp_path: Path, to: str, form: str) -> None:
    dest = tmp_path / "x" / "dest"
    result = export(odd_out, to, dest, form=form)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(dest.resolve()) for p in written)
    names = sorted(p.name for p in (dest / "audio").rglob("*.flac"))
    if form == "alpaca":  # tool turns do not fit alpaca: skipped, counted
        assert names == ["escape_me-2_0.flac", "record_0.flac", "record_1.flac"]
        assert result.exit_code == 1 and result.records_written == 2
        assert result.skipped == [{"config": "default", "split": "train", "id": "../../escape me", "code": "X101",
                                   "reason": "alpaca holds only alternating user/assistant turns"}]  # fmt: skip
        assert check_lf_export(dest, form) == 2
        return
    assert names == ["escape_me-2_0.flac", "escape_me_0.flac", "record_0.flac", "record_1.flac"]
    assert result.exit_code == 0 and result.records_written == 3
    if to == "llamafactory":
        check_lf_export(dest, form)
        recs = load_records(dest / "default_train.json")
        assert [m["from"] for m in recs[0]["conversations"]] == ["human", "function_call", "observation", "gpt"]
        assert recs[0]["tools"] == '[{"name": "weather"}]'
    elif to == "llamafactory-v1":  # a function_call turn: an assistant message of tool_call items, trained
        recs = load_records(dest / "default_train.jsonl")
        msgs = recs[0]["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
        assert [m["loss_weight"] for m in msgs] == [0.0, 1.0, 0.0, 1.0]
        assert msgs[1]["content"] == [{"type": "tool_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'}]
        assert msgs[0]["content"][0]["type"] == "audio_url" and recs[0]["tools"] == '[{"name": "weather"}]'
        assert [i["type"] for i in recs[2]["messages"][0]["content"]] == ["audio_url", "audio_url", "text"]
    else:
        recs = load_records(dest / "default_train.jsonl")
        assert [m["role"] for m in recs[0]["messages"]] == ["user", "tool_call", "tool_response", "assistant"]
    assert records(convert_back(dest, tmp_path)) == records(odd_out)


def test_safe_name() -> None:
    assert safe_name("../../a b/c") == "a_b_c"
    assert safe_name("-rf .hidden") == "rf_.hidden"
    assert safe_name("...") == "record"
    assert "/" not in safe_name("x/" * 200) and len(safe_name("x" * 500)) == 100


# -- command line ----------------------------------------------------------------------------------------------------------


def test_cli_exit_codes(sample_out: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = sample_out
    dest = tmp_path / "lf"
    assert cli(["export", str(out), "--to", "llamafactory", "-o", str(dest)])[0] == 0
    assert (dest / "dataset_info.json").is_file()

    # a non-empty DIR needs --overwrite
    code, text = cli(["export", str(out), "--to", "ms-swift", "-o", str(dest)])
    assert code == 2 and "--overwrite" in text
    keep = dest / "notes.txt"
    keep.write_text("mine")
    assert cli(["export", str(out), "--to", "ms-swift", "-o", str(dest), "--overwrite"])[0] == 0
    assert keep.read_text() == "mine"  # only what an export writes is replaced
    assert not (dest / "dataset_info.json").exists() and (dest / "sft_train.jsonl").is_file()

    # skipped records: exit 1, with the reasons in the summary
    code, text = cli(["export", str(out), "--to", "minicpm", "-o", str(tmp_path / "mc")])
    assert code == 1 and "skipped records by reason" in text

    # usage errors: not a converted output, --format for another target, an unknown target
    (tmp_path / "raw").mkdir()
    assert cli(["export", str(tmp_path / "raw"), "--to", "llamafactory", "-o", str(tmp_path / "d1")])[0] == 2
    assert cli(["export", str(out), "--to", "ms-swift", "-o", str(tmp_path / "d2"), "--format", "alpaca"])[0] == 2
    with pytest.raises(SystemExit) as exit_:
        cli(["export", str(out), "--to", "axolotl", "-o", str(tmp_path / "d3")])
    assert exit_.value.code == 2


def test_refuses_unsafe_destinations(sample_out: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = sample_out
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export(out, "llamafactory", busy)
    assert (busy / "x.txt").exists()
    with pytest.raises(ExportError, match="hold or replace"):
        export(out, "llamafactory", out.parent, overwrite=True)
    with pytest.raises(ExportError):
        export(out, "llamafactory", out, overwrite=True)
    with pytest.raises(ExportError, match="inside"):
        export(out, "llamafactory", out / "export")
    with pytest.raises(DatasetError, match="manifest"):
        export(tmp_path, "minicpm", tmp_path / "d")


def test_wav_audio_keeps_hashes(odd_out: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wav"
    result = export(odd_out, "ms-swift", dest, audio_format="wav")
    files = [p for p in (dest / "audio").rglob("*") if p.is_file()]
    assert result.audio_files == len(files) == 4 and all(p.read_bytes()[:4] == b"RIFF" for p in files)
    assert records(convert_back(dest, tmp_path)) == records(odd_out)


# -- the training hint: a validation split is for evaluation -------------------------------------------------------------


@pytest.fixture(scope="module")
def split_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus with a held-out split (--val-ratio): train and validation streams for both kinds."""
    out = tmp_path_factory.mktemp("split") / "out"
    audiodata.convert([str(Path(__file__).parents[2] / "sample_data")], out, num_workers=1, val_ratio=0.3, seed=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {(s["config"], s["split"]) for s in manifest["shards"]} >= {("sft", "validation"), ("dpo", "validation")}
    return out


@pytest.mark.parametrize("to", ["llamafactory", "llamafactory-v1"])
def test_validation_split_goes_to_eval_dataset(split_out: Path, tmp_path: Path, to: str) -> None:
    dest = tmp_path / "d"
    code, text = cli(["export", str(split_out), "--to", to, "-o", str(dest)])
    assert code == 0
    printed = " ".join(text.split())
    result = export(split_out, to, tmp_path / "api")
    if to == "llamafactory":
        assert result.train == {"sft": {"dataset": ["sft_train"], "eval_dataset": ["sft_validation"]},
                                "dpo": {"dataset": ["dpo_train"], "eval_dataset": ["dpo_validation"]}}  # fmt: skip
        assert f"stage: sft dataset_dir: {dest} dataset: sft_train eval_dataset: sft_validation" in printed
        assert f"stage: dpo dataset_dir: {dest} dataset: dpo_train eval_dataset: dpo_validation" in printed
    else:
        want = {k: {"train_dataset": [f"{k}_train.yaml"], "eval_dataset": [f"{k}_validation.yaml"]} for k in ("sft", "dpo")}
        assert result.train == want
        assert f"cd {dest} && USE_V1=1 llamafactory-cli sft CONFIG.yaml with train_dataset: sft_train.yaml eval_dataset: " \
            "sft_validation.yaml" in printed
        assert "llamafactory-cli dpo CONFIG.yaml with train_dataset: dpo_train.yaml eval_dataset: dpo_validation.yaml" in printed
    assert printed.count("train with:") == 2  # one line per stage, each exactly as above: validation only to evaluate


def test_v1_export_overwrite_replaces_only_its_files(sample_out: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = sample_out
    dest = tmp_path / "v1"
    export(out, "llamafactory-v1", dest)
    (dest / "train_config.yaml").write_text("model: mine\n")  # the user's own config next to the export
    export(out, "ms-swift", dest, overwrite=True)
    assert (dest / "train_config.yaml").read_text() == "model: mine\n"
    assert not (dest / "sft_train.yaml").exists() and (dest / "sft_train.jsonl").is_file()


# -- the export rules: one engine, a rule set per target (export_rules.TARGET_RULES) ----------------------


def turn(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def stored(kind: str = "sft", **columns: Any) -> dict[str, Any]:
    """A row as convert stores it (format 2): an SFT exchange, or a DPO/KTO prompt, with one embedded audio."""
    row: dict[str, Any] = {"id": "r", "system": None, "tools": None, "audios": [{"bytes": b"fLaC...", "path": "a.flac"}]}
    ask = [turn("user", "<audio>What is said?")]
    if kind == "sft":
        row["messages"] = [*ask, turn("assistant", "Hello.")]
    elif kind == "dpo":
        row.update(prompt=ask, chosen=[turn("assistant", "Hello.")], rejected=[turn("assistant", "Bye.")])
    elif kind == "rl":
        row.update(prompt=ask, answer="Hello.", choices=None, task="asr", meta=None)
    else:
        row.update(prompt=ask, completion=[turn("assistant", "Hello.")], label=True)
    return {**row, **columns}


TOOL_TURNS = [turn("user", "<audio>Weather?"), turn("function_call", '{"name": "w", "arguments": {}}'), turn("tool", "sun")]
PNG = [{"bytes": b"\x89PNG...", "path": "p.png"}]

# code -> (the stored row with the problem, the same row repaired, its kind, --to, --form)
EXPORT_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str, str, str]] = {
    "X001": (stored(audios=[{"bytes": None, "path": "a.flac"}]), stored(), "sft", "llamafactory", "sharegpt"),
    "X002": (
        stored(messages=[turn("user", "<audio><image>Hi"), turn("assistant", "Hello.")], images=["pics/p.png"]),
        stored(messages=[turn("user", "<audio><image>Hi"), turn("assistant", "Hello.")], images=PNG),
        "sft", "llamafactory", "sharegpt",
    ),
    "X003": (stored(), stored(), "sft", "ms-swift", "sharegpt"),  # found while writing: see test_undecodable_stored_audio
    "X004": (
        stored("dpo", chosen=[turn("function_call", '{"name": "w", "arguments": {}}'), turn("assistant", "Sun.")]),
        stored("dpo"), "dpo", "llamafactory", "sharegpt",
    ),
    "X005": (stored("rl"), stored(), "rl", "llamafactory", "sharegpt"),
    "X101": (stored(messages=[*TOOL_TURNS, turn("assistant", "Sunny.")]), stored(), "sft", "llamafactory", "alpaca"),
    "X102": (stored("kto"), stored("sft"), "kto", "llamafactory-v1", "sharegpt"),
    "X103": (stored(tools="[{name: w}]"), stored(tools='[{"name": "w"}]'), "sft", "llamafactory-v1", "sharegpt"),
    "X104": (
        stored(messages=[TOOL_TURNS[0], turn("function_call", "call w"), TOOL_TURNS[2], turn("assistant", "Sunny.")]),
        stored(messages=[*TOOL_TURNS, turn("assistant", "Sunny.")]),
        "sft", "llamafactory-v1", "sharegpt",
    ),
    "X201": (
        stored("dpo", chosen=[turn("function_call", '{"name": "w", "arguments": {}}')]),
        stored("dpo"), "dpo", "ms-swift", "sharegpt",
    ),
    "X202": (stored("dpo", prompt=TOOL_TURNS), stored("dpo"), "dpo", "ms-swift", "sharegpt"),
    "X301": (stored("dpo"), stored(), "dpo", "minicpm", "sharegpt"),
    "X302": (stored(tools='[{"name": "w"}]'), stored(), "sft", "minicpm", "sharegpt"),
    "X303": (
        stored(messages=[*stored()["messages"], turn("user", "And?"), turn("assistant", "Bye.")]),
        stored(), "sft", "minicpm", "sharegpt",
    ),
    "X304": (
        stored(messages=[turn("user", "<audio><audio>Compare."), turn("assistant", "Same.")], audios=[*stored()["audios"]] * 2),
        stored(), "sft", "minicpm", "sharegpt",
    ),
    "X305": (
        stored(messages=[turn("user", "<audio><image>Hi"), turn("assistant", "Hello.")], images=PNG),
        stored(), "sft", "minicpm", "sharegpt",
    ),
    "X306": (
        stored(messages=[turn("user", "Transcribe."), turn("assistant", "<audio> says hello")]),
        stored(), "sft", "minicpm", "sharegpt",
    ),
    "X401": (stored("kto"), stored("dpo"), "kto", "align-anything", "sharegpt"),
    "X402": (
        stored(system="Translate all input audio into English."), stored(system="You are a helpful assistant."),
        "sft", "align-anything", "sharegpt",
    ),
    "X403": (
        stored("dpo", chosen=[turn("assistant", "Hello."), turn("assistant", "Again.")]),
        stored("dpo"), "dpo", "align-anything", "sharegpt",
    ),
    "X404": (
        stored(messages=[turn("user", "Listen: <audio>"), turn("assistant", "Hello.")]),
        stored(messages=[turn("user", "<audio>Listen:"), turn("assistant", "Hello.")]),
        "sft", "align-anything", "sharegpt",
    ),
    "X405": (stored(tools='[{"name": "w"}]'), stored(), "sft", "align-anything", "sharegpt"),
    "X501": (stored(), stored("rl"), "sft", "trl", "sharegpt"),
    "X502": (stored("rl", tools='[{"name": "w"}]'), stored("rl"), "rl", "verl", "sharegpt"),
    "X503": (
        stored("rl", prompt=[turn("user", "Listen: <audio>")]),
        stored("rl", prompt=[turn("user", "<audio>Who?\n\nChoices:\n(A) Man\n(B) Woman")], choices=["Man", "Woman"],
               answer="Woman", task="mcq"),
        "rl", "mmau", "sharegpt",
    ),
}  # fmt: skip


def export_findings(row: dict[str, Any], kind: str, to: str, form: str) -> list[Any]:
    """What export finds on a stored row: the record rebuilt by the one row reader, the target's rule set."""
    from audiodata.rules.engine import check_export
    from audiodata.rules.export_rules import target_rules
    from audiodata.writer.schema import record_from_row

    return check_export(record_from_row(row, kind), target_rules(to, form))


def test_every_export_rule_has_a_case() -> None:
    from audiodata.rules.registry import REGISTRY

    assert set(EXPORT_CASES) == {c for c in REGISTRY if c.startswith("X")}
    assert all(REGISTRY[c].stage == "export" for c in EXPORT_CASES)


@pytest.mark.parametrize("code", sorted(c for c in EXPORT_CASES if c != "X003"))
def test_export_rule_fires(code: str) -> None:
    bad, _, kind, to, form = EXPORT_CASES[code]
    found = export_findings(bad, kind, to, form)
    assert code in {f.code for f in found}, found
    assert all(f.message for f in found)


@pytest.mark.parametrize("code", sorted(c for c in EXPORT_CASES if c != "X003"))
def test_export_rule_stays_quiet_on_the_repaired_row(code: str) -> None:
    _, good, _, to, form = EXPORT_CASES[code]
    kind = "sft" if "messages" in good else "kto" if "label" in good else "rl" if "answer" in good else "dpo"
    assert export_findings(good, kind, to, form) == []


def test_x_rules_belong_to_their_targets_only() -> None:
    """A target's limit never skips a record for another target: the rule sets are the one switch."""
    bad, _, kind, _, _ = EXPORT_CASES["X303"]  # multi-turn: fine everywhere but MiniCPM
    assert export_findings(bad, kind, "llamafactory", "sharegpt") == []
    assert [f.code for f in export_findings(bad, kind, "minicpm", "sharegpt")] == ["X303"]
    bad, _, kind, _, _ = EXPORT_CASES["X202"]
    assert export_findings(bad, kind, "llamafactory", "sharegpt") == []


def test_stored_rows_a_record_cannot_hold_are_named() -> None:
    """A turn without text or a KTO row without its label: S001 / P002 with the field, before any rule reads it."""
    row = stored(messages=[turn("user", "<audio>Hi"), turn("assistant", None)])
    assert [(f.code, f.field) for f in export_findings(row, "sft", "ms-swift", "sharegpt")] == [("S001", "messages[1].content")]
    row = stored("kto", label=None)
    assert [(f.code, f.field) for f in export_findings(row, "kto", "llamafactory", "sharegpt")] == [("P002", "label")]


def test_undecodable_stored_audio(tmp_path: Path) -> None:
    """X003: found while writing, when --audio-format asks for a re-encode of bytes that do not decode."""
    from audiodata.export.base import _Skip
    from audiodata.export.media import _audios
    from audiodata.writer.schema import record_from_row

    good = write_audio(tmp_path / "a.wav", 0.5).read_bytes()
    rec = record_from_row(stored(audios=[{"bytes": b"RIFF....WAVEnot audio", "path": "a.wav"}]), "sft")
    with pytest.raises(_Skip) as why:
        _audios(rec, "audio/sft/train", "r", "flac")
    assert (why.value.finding.code, why.value.finding.field) == ("X003", "audios[0]")
    rec = record_from_row(stored(audios=[{"bytes": good, "path": "a.wav"}]), "sft")
    (written,) = _audios(rec, "audio/sft/train", "r", "flac")
    assert written.data[:4] == b"fLaC" and written.rel == "audio/sft/train/r_0.flac"
