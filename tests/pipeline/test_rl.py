"""RL (GRPO) data, end to end: every form the peers use is read as an ``rl`` record (prompt, answer, choices, task,
meta), written as the ``rl`` config of the contract, checked by lint (Q rules, D003 conflicting answers, D004 leakage
against a converted benchmark), and exported back to TRL, ms-swift, verl and MMAU JSON, each export read back as the
same records (and ms-swift's export, and its own GRPO rows, through ms-swift's own loader where it installs).

Forms, as the peers define them (the fixtures in tests/fixtures/rl, hand-written; README there):
- TRL: ``prompt`` + extra columns handed to the rewards (``trl/trainer/grpo_trainer.py`` ``_calculate_rewards``;
  ``trl/rewards/accuracy_rewards.py`` reads ``solution``).
- ms-swift: ``messages`` + ``solution`` (``docs/source_en/Customization/Custom-dataset.md``, "PPO/GRPO";
  ``swift/dataset/preprocessor/core.py`` keeps ``solution``; ``swift/utils/utils.py`` ``remove_response``).
- verl: ``data_source``, ``prompt``, ``ability``, ``reward_model.ground_truth``, ``extra_info``
  (``examples/data_preprocess/gsm8k.py``; ``verl/utils/dataset/rl_dataset.py``).
- MMAU: ``mmau-test-mini.json`` of github.com/Sakshi113/MMAU (id, audio_id, question, choices, answer, ...).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.dataset import ConvertedDataset
from audiodata.export import export
from audiodata.export.rl import rl_hints
from tests.conftest import SAMPLE, write_jsonl

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rl"
CLIPS = (
    "clip01_22k.wav", "clip07_16k.flac", "clip08_16k.flac", "clip09_16k.flac", "clip10_48k.flac",
    "clip12_48k.ogg", "clip13_48k.ogg", "clip14_24k.mp3", "clip15_44k.mp3",
)  # fmt: skip
FILES = ("mmau_test_mini.json", "trl_grpo.jsonl", "swift_grpo.jsonl", "verl_train.parquet")
#: The row fields that make an RL record (what every export must give back).
FIELDS = ("prompt", "system", "answer", "choices", "task", "meta")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures with the sample clips they name, and the verl rows written to Parquet as verl's preprocessing
    writes them (``datasets.Dataset.to_parquet``)."""
    import datasets

    root = tmp_path_factory.mktemp("rl") / "corpus"
    for folder in ("audio", "test-mini-audios"):
        (root / folder).mkdir(parents=True)
        for name in CLIPS:
            shutil.copy(SAMPLE / "audio" / name, root / folder / name)
    for name in ("mmau_test_mini.json", "trl_grpo.jsonl", "swift_grpo.jsonl"):
        shutil.copy(FIXTURES / name, root / name)
    rows = json.loads((FIXTURES / "verl_rows.json").read_text())
    datasets.Dataset.from_list(rows).to_parquet(str(root / "verl_train.parquet"))
    return root


@pytest.fixture(scope="module")
def converted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl-out") / "ds"
    result = audiodata.convert([str(corpus / f) for f in FILES], out, num_workers=1, media_root=str(corpus))
    assert (result.records_read, result.records_rejected) == (14, 0), result.rejects_by_code
    return out


def rows(out: Path) -> dict[str, dict[str, Any]]:
    """The dataset's rows by id, audio reduced to its PCM hashes."""
    found = {}
    for r in ConvertedDataset.open(out).iter_rows():
        r["hashes"] = [a["pcm_hash"] for a in r.pop("audio_info")]
        r.pop("audios")
        found[r["id"]] = r
    return found


def by_source(out: Path, file: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows(out).values() if r["source"]["file"] == file), key=lambda r: r["source"]["index"])


def test_every_form_is_read_as_rl_into_the_contract_columns(converted: Path) -> None:
    ds = ConvertedDataset.open(converted)
    assert {name: cfg.kind for name, cfg in ds.configs.items()} == {"default": "rl"}
    assert ds.summary.rl_tasks == {"asr": 2, "mcq": 7, "qa": 5}
    names = pq.ParquetFile(ds.path(ds.shards()[0])).schema_arrow.names
    assert names == [
        "id", "prompt", "answer", "choices", "task", "meta", "system", "tools",
        "audios", "audio_info", "audio_seconds", "source",
    ]  # fmt: skip
    feats = ds.features("default")
    assert str(feats["choices"].feature.dtype) == "string" and feats["meta"].dtype == "string"
    assert "RL (GRPO, verifiable answers)" in ds.card().text and "RL tasks: 2 asr, 7 mcq, 5 qa." in ds.card().text
    assert ds.summary.warnings_by_code.get("Q005") == 1  # the ms-swift row whose reply GRPO drops


def test_info_names_the_rl_config_and_its_tasks(converted: Path) -> None:
    run = [sys.executable, "-m", "audiodata", "info", str(converted)]
    done = subprocess.run(run, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert "RL tasks: asr x2, mcq x7, qa x5" in done.stdout and " rl " in done.stdout
    done = subprocess.run([*run, "--json"], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    summary = json.loads(done.stdout)
    assert summary["rl_tasks"] == {"asr": 2, "mcq": 7, "qa": 5} and summary["configs"]["default"]["kind"] == "rl"


def test_mmau_items(converted: Path) -> None:
    mmau = by_source(converted, "mmau_test_mini.json")
    first = mmau[0]
    assert first["id"] == "7c1e2f1a-0001-4b6e-9a51-5a3d0c6e1a01"
    assert first["prompt"] == [
        {
            "role": "user",
            "content": "<audio>According to the speaker, what is being sold by the sea shore?\n\nChoices:\n"
            "(A) Sea shells\n(B) Fresh bread\n(C) Train tickets\n(D) Flowers",
        }
    ]
    assert (first["answer"], first["task"], first["system"]) == ("Sea shells", "mcq", None)
    assert json.loads(first["meta"]) == {  # MMAU's own task (the domain) stays in meta
        "dataset": "audiodata-sample", "task": "speech", "split": "test-mini", "category": "Information Extraction",
        "sub-category": "Content Understanding", "difficulty": "easy",
    }  # fmt: skip
    assert [len(r["choices"]) for r in mmau] == [4, 4, 4, 3, 2, 4]
    assert all(r["answer"] in r["choices"] for r in mmau)


def test_trl_swift_and_verl_rows(converted: Path) -> None:
    trl = by_source(converted, "trl_grpo.jsonl")
    assert trl[0]["system"] == "Transcribe exactly what is said."
    assert trl[0]["prompt"] == [{"role": "user", "content": "<audio>Transcribe the audio."}]
    assert (trl[0]["answer"], trl[0]["task"], trl[0]["meta"]) == ("The meeting has been moved to Thursday.", "asr", None)
    assert trl[1]["prompt"][0]["content"].startswith("<audio>What is being sold?")  # the content-list audio item, in place
    assert (trl[1]["choices"], trl[1]["task"]) == (["Sea shells", "Fresh bread"], "mcq")
    assert json.loads(trl[1]["meta"]) == {"difficulty": "easy"}  # an extra column: handed to rewards, kept in meta
    assert (trl[2]["answer"], trl[2]["task"], len(trl[2]["hashes"])) == ("6", "qa", 1)  # a number, as its JSON text
    swift = by_source(converted, "swift_grpo.jsonl")
    assert [r["prompt"][-1]["role"] for r in swift] == ["user"] * 3  # the reply after the prompt is not written (Q005)
    assert swift[1]["answer"] == "<answer> Turn left at the next traffic light. </answer>"
    assert swift[2]["system"] == "Answer in one word."
    verl = by_source(converted, "verl_train.parquet")
    assert [(r["task"], r["answer"]) for r in verl] == [
        ("asr", "A rainbow appears after the storm passes."),
        ("qa", "Fresh bread"),
    ]
    meta = json.loads(verl[0]["meta"])
    assert meta["data_source"] == "audiodata-sample/asr" and meta["question"] == "Transcribe the audio." and meta["index"] == 0


def test_the_same_question_reads_alike_from_every_form(tmp_path: Path, corpus: Path) -> None:
    """One multiple-choice question written in the TRL, ms-swift and verl forms is one and the same record."""
    prompt = [{"role": "user", "content": "<audio>Who speaks?\n(A) A man\n(B) A woman"}]
    forms = [
        {"prompt": prompt, "solution": "B", "choices": ["A man", "A woman"], "audios": ["audio/clip07_16k.flac"]},
        {"messages": prompt, "solution": "A woman", "choices": ["A man", "A woman"], "audios": "audio/clip07_16k.flac"},
        {
            "data_source": "x", "prompt": prompt, "ability": "mcq",
            "reward_model": {"style": "rule", "ground_truth": "A woman"},
            "extra_info": {"choices": ["A man", "A woman"]}, "audios": ["audio/clip07_16k.flac"],
        },
    ]  # fmt: skip
    report = audiodata.lint([str(write_jsonl(corpus / "forms.jsonl", forms))], media_root=str(corpus), num_workers=1).to_dict()
    assert report["summary"]["kinds"] == {"rl": 3}
    assert {f["code"] for f in report["findings"]} == {"D001"}  # the 2nd and 3rd: duplicates of the 1st (same answer)


def test_conflicting_answers_and_leakage_go_through_the_existing_rules(tmp_path: Path, corpus: Path, converted: Path) -> None:
    """D003: the same audio and question with another answer; D004: a benchmark item in the training data."""
    ask = [{"role": "user", "content": "<audio>Which day is it?"}]
    rows_ = [
        {"prompt": ask, "solution": "Thursday", "audios": ["audio/clip08_16k.flac"]},
        {"prompt": ask, "solution": "Friday", "audios": ["audio/clip08_16k.flac"]},
        {"prompt": ask, "solution": "Thursday", "choices": ["Thursday", "Friday"], "audios": ["audio/clip08_16k.flac"]},
    ]
    path = write_jsonl(corpus / "conflict.jsonl", rows_)
    found = audiodata.lint([str(path)], media_root=str(corpus), num_workers=1).to_dict()["findings"]
    assert [(f["code"], f["index"]) for f in found] == [("D003", 1)]  # other options: another question, no conflict
    bench = tmp_path / "bench"
    audiodata.convert([str(corpus / "mmau_test_mini.json")], bench, num_workers=1, media_root=str(corpus))
    trl = [json.loads(line) for line in (corpus / "trl_grpo.jsonl").read_text().splitlines()]
    item = json.loads((corpus / "mmau_test_mini.json").read_text())[1]  # a benchmark item copied into training data
    train = write_jsonl(corpus / "train.jsonl", [*trl, item])
    leaks = audiodata.dedup([str(train)], against=bench, media_root=str(corpus), num_workers=1).to_dict()["findings"]
    assert [(f["code"], f["index"]) for f in leaks if f["code"] == "D004"] == [("D004", 3)]


def test_an_asr_answer_is_measured_as_a_transcript(corpus: Path) -> None:
    """The transcript rate rules (R) read an ``asr`` record's answer: a WER reward against a reference that cannot
    fit its clip (2.3 s here) teaches nothing. The same answer under another task is not a transcript."""
    long = "The meeting has been moved to Thursday because the room on Wednesday was booked by another team."
    ask = [{"role": "user", "content": "<audio>Transcribe the audio."}]
    clip = ["audio/clip08_16k.flac"]
    records = [
        {"prompt": ask, "solution": long, "task": "asr", "audios": clip},
        {"prompt": ask, "solution": "The meeting has been moved to Thursday.", "task": "asr", "audios": clip},
        {"prompt": [{"role": "user", "content": "<audio>Say more."}], "solution": long, "task": "qa", "audios": clip},
    ]
    path = write_jsonl(corpus / "asr.jsonl", records)
    found = audiodata.lint([str(path)], media_root=str(corpus), num_workers=1).to_dict()["findings"]
    rates = {(f["code"], f["index"], f["field"]) for f in found if f["code"].startswith("R")}
    assert rates == {("R001", 0, "answer"), ("R003", 0, "answer")}  # letters and words per second, both too many


@pytest.mark.parametrize("audio", [True, False])
def test_lint_counts_rl_records_per_task_as_convert_writes_them(corpus: Path, audio: bool) -> None:
    """The lint report's ``rl_tasks`` (JSON, terminal): the records convert would write, per task tag, the same
    counts as the converted manifest's; with audio (record jobs) and text only (byte-range chunks in the workers)."""
    from audiodata.report.terminal import print_lint

    files = [str(corpus / f) for f in FILES]
    report = audiodata.lint(files, media_root=str(corpus), num_workers=2, audio=audio).to_dict()
    assert report["summary"]["rl_tasks"] == {"asr": 2, "mcq": 7, "qa": 5}
    assert report["summary"]["kinds"] == {"rl": 14}
    from jsonschema import Draft202012Validator

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "lint_report.schema.json").read_text())
    Draft202012Validator(schema).validate(report)
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    print_lint(report, Console(file=buf, width=200))
    assert "RL records by task: 7 mcq, 5 qa, 2 asr (14 in all)" in buf.getvalue()
    plain = audiodata.lint([str(SAMPLE / "swift.jsonl")], num_workers=1, audio=False).to_dict()["summary"]
    assert "rl_tasks" not in plain  # reports of other corpora stay as they were


def test_normalize_transcripts_rewrites_asr_answers_only(corpus: Path, tmp_path: Path) -> None:
    """``--normalize-transcripts``: an ``asr`` record's answer is the transcript a WER reward scores against, written
    in the run's style; the original is kept in ``meta`` (the rl config has no metadata column). Other tasks' answers
    (a choice's text, a free answer) are left as they are."""
    ask = [{"role": "user", "content": "<audio>Transcribe the audio."}]
    clip = ["audio/clip08_16k.flac"]
    records = [
        {"prompt": ask, "solution": "The meeting has been moved to Thursday.", "task": "asr", "audios": clip, "speaker": "s1"},
        {"prompt": ask, "solution": "the meeting has been moved to thursday", "task": "asr", "audios": clip},
        {"prompt": [{"role": "user", "content": "<audio>Who? (A) A Man (B) A Woman"}], "solution": "A Woman",
         "choices": ["A Man", "A Woman"], "task": "mcq", "audios": clip},
        {"prompt": [{"role": "user", "content": "<audio>Where?"}], "solution": "In the Office.", "task": "qa", "audios": clip},
    ]  # fmt: skip
    path = write_jsonl(corpus / "asr_norm.jsonl", records)
    out = tmp_path / "norm"
    audiodata.convert([str(path)], out, num_workers=1, media_root=str(corpus), normalize_transcripts="basic")
    got = sorted(rows(out).values(), key=lambda r: r["source"]["index"])
    assert [r["answer"] for r in got] == ["the meeting has been moved to thursday"] * 2 + ["A Woman", "In the Office."]
    meta = [json.loads(r["meta"]) if r["meta"] else {} for r in got]
    assert meta[0] == {"speaker": "s1", "transcript_original": {"answer": "The meeting has been moved to Thursday."}}
    assert all("transcript_original" not in m for m in meta[1:])  # unchanged, or not a transcript
    plain = tmp_path / "plain"
    audiodata.convert([str(path)], plain, num_workers=1, media_root=str(corpus))
    assert sorted(r["answer"] for r in rows(plain).values())[0] == "A Woman"  # without the flag: as written
    assert "The meeting has been moved to Thursday." in {r["answer"] for r in rows(plain).values()}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert {k: a[k] for k in (*FIELDS, "hashes")} == {k: b[k] for k in (*FIELDS, "hashes")}, (a["id"], b["id"])


@pytest.mark.parametrize(
    ("to", "file", "skipped"),
    [
        ("trl", "default_train.jsonl", {}),
        ("ms-swift", "default_train.jsonl", {}),
        ("verl", "default_train.parquet", {}),
        ("mmau", "default_train.json", {"X503": 8}),  # the MMAU items go; the other forms are not MMAU-shaped
    ],
)
def test_export_round_trips_through_our_reader(
    to: str, file: str, skipped: dict[str, int], converted: Path, tmp_path: Path
) -> None:
    dest = tmp_path / to
    result = export(converted, to, dest)
    assert result.skipped_by_code == skipped and result.records_written == 14 - sum(skipped.values())
    if to != "ms-swift":  # the line the CLI prints names the file in the peer's own terms (ms-swift: swift_hints)
        assert [str((dest / file).resolve()) in line for line in rl_hints(result)] == [True]
    back = tmp_path / "back"
    again = audiodata.convert([str(dest / file)], back, num_workers=1, media_root=str(dest))
    assert again.records_rejected == 0, again.rejects_by_code
    before, after = rows(converted), rows(back)
    assert set(after) <= set(before) and len(after) == result.records_written
    for rid, row in after.items():
        _same(before[rid], row)


def test_trl_reads_the_trl_export_as_conversational_grpo_rows(converted: Path, tmp_path: Path) -> None:
    """TRL's own ``is_conversational`` (what GRPOTrainer checks to apply the chat template) takes every exported row,
    and the keywords its ``_calculate_rewards`` builds (every key but prompt/completion/completion_ids) hold the
    reference under the name its ``accuracy_reward`` reads."""
    trl_data = pytest.importorskip("trl.data_utils")
    export(converted, "trl", tmp_path / "trl")
    lines = (tmp_path / "trl" / "default_train.jsonl").read_text().splitlines()
    exported = [json.loads(line) for line in lines]
    assert len(exported) == 14 and all(trl_data.is_conversational(r) for r in exported)
    keys = {k for r in exported for k in r if k not in ("prompt", "completion", "completion_ids")}
    assert {"solution", "choices", "task", "meta", "audios", "id"} <= keys


def test_verl_loads_the_verl_export_as_its_rlhf_dataset_does(converted: Path, tmp_path: Path) -> None:
    """``RLHFDataset._read_files_and_tokenize`` (verl/utils/dataset/rl_dataset.py) loads each file with
    ``datasets.load_dataset("parquet", data_files=FILE)["train"]``; ``__getitem__`` reads ``extra_info.index`` and the
    reward manager passes ``data_source``, ``reward_model.ground_truth`` and ``extra_info`` to ``compute_score``. Its
    ``_build_messages`` splits the prompt at ``<image>``/``<video>`` and asserts one medium per marker: the same holds
    here for ``<audio>`` and ``audios`` (decoded by the ``Audio`` feature to 16 kHz arrays)."""
    import datasets

    export(converted, "verl", tmp_path / "verl")
    data = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "verl" / "default_train.parquet"), cache_dir=str(tmp_path / "cache")
    )["train"]
    stored = rows(converted)
    assert [r["extra_info"]["index"] for r in data] == list(range(14))
    for r in data:
        row = stored[r["extra_info"]["id"]]
        assert r["reward_model"] == {"style": "rule", "ground_truth": row["answer"]} and r["ability"] == row["task"]
        assert sum(m["content"].count("<audio>") for m in r["prompt"]) == len(r["audios"]) == len(row["hashes"])
        assert r["audios"][0]["sampling_rate"] == 16000 and len(r["audios"][0]["array"]) > 16000


def test_other_targets_skip_rl_records_and_rl_targets_skip_the_rest(converted: Path, tmp_path: Path) -> None:
    r = export(converted, "llamafactory", tmp_path / "lf")
    assert (r.records_written, r.skipped_by_code) == (0, {"X005": 14})
    sft = tmp_path / "sft"
    audiodata.convert([str(SAMPLE / "swift.jsonl")], sft, num_workers=1)
    r = export(sft, "trl", tmp_path / "trl")
    assert r.records_written == 0 and set(r.skipped_by_code) == {"X501"}


def test_export_cli_writes_rl_targets(converted: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "audiodata", "export", str(converted), "--to", "verl", "-o", str(tmp_path / "v"), "--json"],
        capture_output=True, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exported"] == {"default/train": 14}
    table = pq.read_table(tmp_path / "v" / "default_train.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info", "audios"]
    first = table.slice(0, 1).to_pylist()[0]
    assert first["reward_model"]["style"] == "rule" and first["extra_info"]["index"] == 0


MIRROR_MMAU = Path("/work/.mirror/Sakshi113+MMAU/repo")


def test_the_real_mmau_test_mini_reads_as_multiple_choice(tmp_path: Path) -> None:
    """The public benchmark file itself (from the MMAU repository's mirror, never committed), read text-only: every one
    of its 1000 items is an RL multiple-choice record whose answer is one of its choices; Q002 names exactly the items
    that list their answer twice (two letters right), counted here from the file independently of audiodata."""
    if not (MIRROR_MMAU / "HEAD").exists() and not (MIRROR_MMAU / "objects").exists():
        pytest.skip("no mirror of github.com/Sakshi113/MMAU here")
    show = ["git", "-C", str(MIRROR_MMAU), "show", "HEAD:mmau-test-mini.json"]
    text = subprocess.run(show, capture_output=True, check=True).stdout
    (tmp_path / "mmau-test-mini.json").write_bytes(text)
    items = json.loads(text)
    report = audiodata.lint([str(tmp_path / "mmau-test-mini.json")], num_workers=1).to_dict()
    assert report["summary"]["records"] == 1000 and report["summary"]["kinds"] == {}  # every record has A001 (no audio here)
    by_code: dict[str, set[int]] = {}
    for f in report["findings"]:
        by_code.setdefault(f["code"], set()).add(f["index"])
    norm = [([c.strip().casefold() for c in it["choices"]], it["answer"].strip().casefold()) for it in items]
    twice = {i for i, (options, answer) in enumerate(norm) if options.count(answer) > 1}
    assert 0 < len(twice) < 50 and by_code.pop("Q002") == twice
    assert set(by_code) == {"A001"} and len(by_code["A001"]) == 1000  # only the audio (not redistributed) is missing
