"""KTO data, end to end: every form the peers define is read as KTO (its label never dropped),
written as TRL's unpaired preference config, checked by lint, exported back, and accepted by
TRL's own trainers without renaming.

Forms, as the peers define them:
- LLaMA-Factory: ``columns.kto_tag`` in dataset_info.json, a JSON bool judging the last turn
  (sharegpt) or ``output`` (alpaca): ``src/llamafactory/data/converter.py`` (``kto_tag`` branch of
  ``AlpacaDatasetConverter``/``SharegptDatasetConverter``) and ``data/dataset_info.json``
  (``kto_en_demo``: ``"columns": {"messages": "messages", "kto_tag": "label"}``).
- ms-swift: ``messages`` ending on the judged assistant turn plus a boolean ``label``
  (``docs/source_en/Customization/Custom-dataset.md``, section "KTO").
- TRL: ``prompt`` + ``completion`` + ``label`` (``trl/trainer/kto_trainer.py``, unpaired preference).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.export import export
from tests.conftest import write_jsonl
from tests.export.test_peer_llamafactory import lf, lf_rows  # noqa: F401  (lf: LLaMA-Factory's own code, a fixture)

SAMPLE_AUDIO = Path(__file__).parents[2] / "sample_data" / "audio"
Q = "<audio>What does the speaker say?"


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True)
    for name in ("clip07_16k.flac", "clip08_16k.flac", "clip09_16k.flac", "clip01_22k.wav"):
        shutil.copy(SAMPLE_AUDIO / name, root / "audio" / name)
    return root


def lf_sharegpt(answer: str, label: Any, clip: str = "audio/clip07_16k.flac", tag: str = "label") -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": answer}],
        tag: label,
        "audios": [clip],
    }


def lf_dataset_info(root: Path, records: list[Any], alpaca: list[Any] | None = None) -> Path:
    """A LLaMA-Factory dataset_dir: the KTO entry as kto_en_demo declares it (custom kto_tag column)."""
    write_jsonl(root / "kto_sharegpt.jsonl", records)
    info: dict[str, Any] = {
        "kto_sharegpt": {
            "file_name": "kto_sharegpt.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "kto_tag": "label", "audios": "audios"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    }
    if alpaca is not None:
        write_jsonl(root / "kto_alpaca.jsonl", alpaca)
        columns = {"prompt": "instruction", "response": "output", "kto_tag": "kto_tag", "audios": "audios"}
        info["kto_alpaca"] = {"file_name": "kto_alpaca.jsonl", "columns": columns}  # LLaMA-Factory reads only mapped columns
    (root / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return root / "dataset_info.json"


def kto_rows(out: Path) -> list[dict[str, Any]]:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    rows = []
    for shard in manifest["shards"]:
        if manifest["summary"]["configs"][shard["config"]]["kind"] == "kto":
            rows += pq.read_table(out / shard["file"]).to_pylist()
    return rows


def as_triples(rows: list[dict[str, Any]]) -> Counter[tuple[str, str, bool, str]]:
    """(prompt text, completion text, label, pcm hash) per row: what KTO trains on."""
    return Counter(
        (
            "|".join(m["content"] for m in r["prompt"]),
            "|".join(m["content"] for m in r["completion"]),
            r["label"],
            r["audio_info"][0]["pcm_hash"],
        )
        for r in rows
    )


def test_llamafactory_kto_labels_are_kept_not_dropped(media: Path, tmp_path: Path):
    # The silent corruption this fixes: kto_tag was dropped and undesirable answers became SFT targets.
    records = [lf_sharegpt("It says hello.", True), lf_sharegpt("It says goodbye.", False, "audio/clip08_16k.flac")]
    alpaca = [{"instruction": Q, "output": "A greeting.", "kto_tag": False, "audios": ["audio/clip09_16k.flac"]}]
    info = lf_dataset_info(media, records, alpaca)
    result = audiodata.convert([str(info)], tmp_path / "out", num_workers=1)
    assert (result.records_written, result.records_rejected) == (3, 0)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {c["kind"] for c in manifest["summary"]["configs"].values()} == {"kto"}
    assert manifest["summary"]["kto_labels"] == {"desirable": 1, "undesirable": 2}
    rows = kto_rows(tmp_path / "out")
    by_answer = {r["completion"][0]["content"]: r for r in rows}
    assert by_answer["It says hello."]["label"] is True
    assert by_answer["It says goodbye."]["label"] is False
    assert by_answer["A greeting."]["label"] is False
    for r in rows:
        assert set(r) >= {"prompt", "completion", "label", "audios"} and "messages" not in r
        assert [m["role"] for m in r["prompt"]] == ["user"] and [m["role"] for m in r["completion"]] == ["assistant"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "KTO (unpaired preference)" in card and "1 desirable, 2 undesirable" in card


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("true", 'got "true"'), (1, "got 1"), (None, "got null"), ("MISSING", "missing KTO label")],
)
def test_a_label_that_is_not_a_boolean_is_a_located_reject(media: Path, tmp_path: Path, value: Any, wanted: str):
    bad = lf_sharegpt("It says goodbye.", value, "audio/clip08_16k.flac")
    if value == "MISSING":
        del bad["label"]
    info = lf_dataset_info(media, [lf_sharegpt("It says hello.", True), bad])
    result = audiodata.convert([str(info)], tmp_path / "out", num_workers=1)
    assert (result.records_read, result.records_written, result.records_rejected) == (2, 1, 1)
    (reject,) = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert reject["source"].endswith("kto_sharegpt.jsonl") and reject["index"] == 1 and reject["line"] == 2
    (reason,) = reject["reasons"]
    assert reason["code"] == "P002" and reason["field"] == "label" and wanted in reason["message"]
    assert reject["record"] == bad  # kept whole, with its reason


def test_every_peer_form_reads_as_the_same_kto_records(media: Path, tmp_path: Path):
    answers = [("It says hello.", True, "audio/clip07_16k.flac"), ("It says goodbye.", False, "audio/clip08_16k.flac")]
    info = lf_dataset_info(media, [lf_sharegpt(a, label, clip) for a, label, clip in answers])
    swift = [
        {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": a}], "label": label, "audios": [clip]}
        for a, label, clip in answers
    ]
    trl = [
        {
            "prompt": [{"role": "user", "content": Q}],
            "completion": [{"role": "assistant", "content": a}],
            "label": label,
            "audios": [clip],
        }
        for a, label, clip in answers
    ]
    write_jsonl(media / "swift" / "kto.jsonl", swift)
    write_jsonl(media / "trl" / "kto.jsonl", trl)
    triples = {}
    for name, given in (("lf", info), ("swift", media / "swift" / "kto.jsonl"), ("trl", media / "trl" / "kto.jsonl")):
        out = tmp_path / name
        result = audiodata.convert([str(given)], out, num_workers=1, media_root=str(media))
        assert (result.records_written, result.records_rejected) == (2, 0), name
        triples[name] = as_triples(kto_rows(out))
    assert triples["lf"] == triples["swift"] == triples["trl"]
    assert sorted(label for (_, _, label, _) in triples["lf"]) == [False, True]


def test_trl_prompt_completion_without_a_label_is_sft(media: Path, tmp_path: Path):
    rec = {"prompt": [{"role": "user", "content": Q}], "completion": [{"role": "assistant", "content": "Hi."}]}
    write_jsonl(media / "pc.jsonl", [{**rec, "audios": ["audio/clip07_16k.flac"]}])
    result = audiodata.convert([str(media / "pc.jsonl")], tmp_path / "out", num_workers=1)
    assert result.records_written == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (cfg,) = manifest["summary"]["configs"].values()
    assert cfg["kind"] == "sft"
    (row,) = pq.read_table(tmp_path / "out" / manifest["shards"][0]["file"]).to_pylist()
    assert [(m["role"], m["content"]) for m in row["messages"]] == [("user", Q), ("assistant", "Hi.")]


def test_lint_counts_tasks_and_warns_when_every_label_is_the_same(media: Path):
    info = lf_dataset_info(media, [lf_sharegpt("It says hello.", True), lf_sharegpt("Hello!", True, "audio/clip08_16k.flac")])
    report = audiodata.lint([str(info)], num_workers=1).to_dict()
    assert report["summary"]["kinds"] == {"kto": 2}
    assert report["summary"]["kto_labels"] == {"desirable": 2, "undesirable": 0}
    (p003,) = [f for f in report["findings"] if f["code"] == "P003"]
    assert p003["severity"] == "warning" and "all 2 KTO records are labelled desirable" in p003["message"]
    assert p003["index"] == 0 and p003["source"].endswith("kto_sharegpt.jsonl")


def test_kto_markers_and_roles_are_checked_like_sft(media: Path):
    records = [
        lf_sharegpt("It says <audio> hello.", True),  # a marker in the judged response (KL pairs borrow it)
        {"messages": [{"role": "user", "content": Q}], "label": False, "audios": ["audio/clip08_16k.flac"]},  # no response
        lf_sharegpt("Fine.", False, "audio/clip09_16k.flac"),
        lf_sharegpt("Hello there.", True, "audio/clip01_22k.wav"),
    ]
    info = lf_dataset_info(media, records)
    found = {(f["index"], f["code"]) for f in audiodata.lint([str(info)], num_workers=1, audio=False).to_dict()["findings"]}
    assert (0, "M002") in found and (0, "M001") in found
    assert (1, "S007") in found
    assert not any(i >= 2 for i, _ in found)


@pytest.mark.parametrize("target", ["llamafactory", "llamafactory-alpaca", "ms-swift"])
def test_export_writes_kto_back_and_round_trips(media: Path, tmp_path: Path, target: str):
    records = [lf_sharegpt("It says hello.", True), lf_sharegpt("It says goodbye.", False, "audio/clip08_16k.flac")]
    info = lf_dataset_info(media, records)
    audiodata.convert([str(info)], tmp_path / "out", num_workers=1)
    to, form = ("llamafactory", "alpaca") if target == "llamafactory-alpaca" else (target, "sharegpt")
    result = export(tmp_path / "out", to, tmp_path / "exported", form=form)
    assert result.exit_code == 0 and result.records_skipped == 0
    if to == "llamafactory":
        entry = json.loads((tmp_path / "exported" / "dataset_info.json").read_text())["default_train"]
        assert entry["columns"]["kto_tag"] == "kto_tag" and entry["ranking"] is False
        data = json.loads((tmp_path / "exported" / entry["file_name"]).read_text())
        assert sorted(r["kto_tag"] for r in data) == [False, True]
    else:
        lines = [json.loads(x) for x in (tmp_path / "exported" / "default_train.jsonl").read_text().splitlines()]
        assert sorted(r["label"] for r in lines) == [False, True]
        assert all(r["messages"][-1]["role"] == "assistant" for r in lines)
    audiodata.convert([str(tmp_path / "exported")], tmp_path / "back", num_workers=1)
    assert as_triples(kto_rows(tmp_path / "back")) == as_triples(kto_rows(tmp_path / "out"))


def test_minicpm_export_skips_kto_and_counts_it(media: Path, tmp_path: Path):
    info = lf_dataset_info(media, [lf_sharegpt("It says hello.", True)])
    audiodata.convert([str(info)], tmp_path / "out", num_workers=1)
    result = export(tmp_path / "out", "minicpm", tmp_path / "exported")
    assert result.exit_code == 1 and result.skipped_by_reason == {"minicpm: KTO records are not supported": 1}


def test_format_1_outputs_still_read(media: Path, tmp_path: Path):
    """An output written before format 2 (DPO prompt in ``messages``) still exports and dedups."""
    dpo = {
        "conversations": [{"from": "human", "value": Q}],
        "chosen": {"from": "gpt", "value": "Hello."},
        "rejected": {"from": "gpt", "value": "Bye."},
        "audios": ["audio/clip07_16k.flac"],
    }
    write_jsonl(media / "dpo.jsonl", [dpo])
    out = tmp_path / "out"
    audiodata.convert([str(media / "dpo.jsonl")], out, num_workers=1)
    manifest = json.loads((out / "manifest.json").read_text())
    for shard in manifest["shards"]:  # downgrade to the format-1 layout
        table = pq.read_table(out / shard["file"])
        table = table.rename_columns(["messages" if c == "prompt" else c for c in table.column_names])
        pq.write_table(table.replace_schema_metadata(None), out / shard["file"])
    manifest["format_version"] = 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = export(out, "ms-swift", tmp_path / "exported")
    (line,) = (tmp_path / "exported" / "default_train.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert result.exit_code == 0 and row["messages"][0]["content"] == Q and row["rejected_response"] == "Bye."
    report = audiodata.dedup([str(media / "dpo.jsonl")], against=str(out), num_workers=1).to_dict()
    assert report["summary"]["leaks"] == 1  # the prompt was read from the format-1 column


def test_trl_trainers_take_the_configs_without_renaming(media: Path, tmp_path: Path):
    """TRL's own KTOTrainer and DPOTrainer run a step on the configs as written (a tiny text model;
    TRL does not load audio, which the card says)."""
    pytest.importorskip("trl")
    from datasets import load_dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    from trainer.tiny import make_tiny_model

    records = [lf_sharegpt("It says hello.", True), lf_sharegpt("It says goodbye.", False, "audio/clip08_16k.flac")]
    dpo = {
        "conversations": [{"from": "human", "value": Q}],
        "chosen": {"from": "gpt", "value": "Hello."},
        "rejected": {"from": "gpt", "value": "Bye."},
        "audios": ["audio/clip09_16k.flac"],
    }
    info = lf_dataset_info(media, records)
    write_jsonl(media / "pairs" / "dpo.jsonl", [dpo])
    out = tmp_path / "out"
    audiodata.convert([str(info), str(media / "pairs" / "dpo.jsonl")], out, num_workers=1, media_root=str(media))

    tok = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path / "tiny"))
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    lm = tmp_path / "lm"
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(lm)
    tok.save_pretrained(lm)
    common = {"max_steps": 1, "report_to": [], "use_cpu": True, "save_strategy": "no", "max_length": 256}
    kto = load_dataset(str(out), "kto", split="train")
    assert kto.features["label"].dtype == "bool"
    args = KTOConfig(output_dir=str(tmp_path / "kto"), per_device_train_batch_size=2, **common)
    trained = KTOTrainer(model=str(lm), args=args, train_dataset=kto, processing_class=tok).train()
    assert trained.global_step == 1
    pairs = load_dataset(str(out), "dpo", split="train")
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), per_device_train_batch_size=1, **common)
    trained = DPOTrainer(model=str(lm), args=args, train_dataset=pairs, processing_class=tok).train()
    assert trained.global_step == 1


@pytest.mark.parametrize("form", ["sharegpt", "alpaca"])
def test_llamafactory_reads_the_kto_export_with_its_own_converter(media: Path, tmp_path: Path, form: str, lf: Any):  # noqa: F811
    """LLaMA-Factory 0.9.5's own parser and converter (``data/converter.py``, the kto_tag branch: a desirable
    response becomes ``[response, ""]``, an undesirable one ``["", response]``) read our export with every label."""
    records = [lf_sharegpt("It says hello.", True), lf_sharegpt("It says goodbye.", False, "audio/clip08_16k.flac")]
    audiodata.convert([str(lf_dataset_info(media, records))], tmp_path / "out", num_workers=1)
    dest = tmp_path / "lf"
    export(tmp_path / "out", "llamafactory", dest, form=form)
    attr, rows = lf_rows(lf, dest, "default_train", tmp_path / "cache")
    assert attr.kto_tag == "kto_tag" and not attr.ranking
    seen = set()
    for row in rows:
        first, second = (m["content"] for m in row["_response"])
        label = bool(first)  # LLaMA-Factory's desirability flag (data/processor/feedback.py)
        seen.add((row["_prompt"][-1]["content"], first or second, label, len(row["_audios"])))
    assert seen == {(Q, "It says hello.", True, 1), (Q, "It says goodbye.", False, 1)}
