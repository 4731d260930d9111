"""``export --to align-anything``: rows exactly as Align-Anything's AA_TA2T template reads them, loaded back with
``datasets.load_dataset`` as AA loads them, and converted back through the Align-Anything reader (the same records,
the same PCM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.export import export
from tests.conftest import write_audio, write_jsonl
from tests.export.test_export import kinds_count, records

SYSTEM = "You are a helpful assistant."  # AA_TA2T.system_prompt


def sharegpt(user: str, answer: str, audios: list[str], **extra: Any) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": answer}], "audios": audios, **extra}


def pair(prompt: str, chosen: str, rejected: str, audio: str) -> dict[str, Any]:
    return {
        "conversations": [{"from": "human", "value": prompt}],
        "chosen": {"from": "gpt", "value": chosen},
        "rejected": {"from": "gpt", "value": rejected},
        "audios": [audio],
    }


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aa")
    for k in range(4):
        write_audio(root / f"c{k}.wav", 1.0 + 0.25 * k, freq=300.0 + 90 * k)
    rows = [
        sharegpt("<audio>What is said?", "Hello there.", ["c0.wav"]),
        sharegpt("<audio>Transcribe.", "Good morning.", ["c1.wav"], system=SYSTEM),
        sharegpt("<audio>Translate.", "Bonjour.", ["c2.wav"], system="Translate all input audio into English."),  # X402
        {  # two exchanges: X403
            "conversations": [
                {"from": "human", "value": "<audio>Hi?"},
                {"from": "gpt", "value": "Hi."},
                {"from": "human", "value": "And?"},
                {"from": "gpt", "value": "Bye."},
            ],
            "audios": ["c3.wav"],
        },
        pair("<audio>Which is right?", "A greeting.", "A song.", "c1.wav"),
        pair("<audio>Summarise.", "Short.", "Long.", "c3.wav"),
    ]
    src = write_jsonl(root / "in.jsonl", rows)
    out = root / "out"
    r = audiodata.convert([str(src)], out, num_workers=1)
    assert (r.records_written, r.records_rejected) == (6, 0)
    return out


def test_rows_are_what_aa_ta2t_reads(converted: Path, tmp_path: Path) -> None:
    dest = tmp_path / "aa"
    r = export(converted, "align-anything", dest)
    assert r.files == ["sft_train.parquet", "dpo_train.parquet"]
    assert r.counts == {"sft/train": 2, "dpo/train": 2}
    assert r.skipped_by_code == {"X402": 1, "X403": 1} and r.exit_code == 1
    assert r.audio_files == 0  # the audio is inline, as on the Hub
    assert r.train == {"sft": {"train_data_files": ["sft_train.parquet"], "eval_data_files": []},
                       "dpo": {"train_data_files": ["dpo_train.parquet"], "eval_data_files": []}}  # fmt: skip
    sft = pq.read_table(dest / "sft_train.parquet").to_pylist()
    assert [(s["prompt"], s["response_1"], s["overall_response"]) for s in sft] == [
        ("What is said?", "Hello there.", 1),
        ("Transcribe.", "Good morning.", 1),
    ]
    dpo = pq.read_table(dest / "dpo_train.parquet").to_pylist()
    assert [(d["prompt"], d["response_1"], d["response_2"], d["overall_response"]) for d in dpo] == [
        ("Which is right?", "A greeting.", "A song.", 1),
        ("Summarise.", "Short.", "Long.", 1),
    ]
    # AA_TA2T.format_preference_sample, as it reads a row: better = response_{overall}, worse = the other
    for row in dpo:
        better = int(row["overall_response"])
        assert (row[f"response_{better}"], row[f"response_{2 if better == 1 else 1}"]) == (row["response_1"], row["response_2"])
        assert row["audio_path"]["bytes"][:4] == b"fLaC"  # the stored bytes, as they are


def test_load_dataset_decodes_audio_path_as_aa_reads_it(converted: Path, tmp_path: Path) -> None:
    """AA: ``load_dataset(path, data_files=..., split=...)`` then ``raw_sample['audio_path']['array']`` and
    ``['sampling_rate']`` (format_dataset.py, AA_TA2T)."""
    from datasets import Audio, load_dataset

    dest = tmp_path / "aa"
    export(converted, "align-anything", dest)
    ds = load_dataset(str(dest), data_files="dpo_train.parquet", split="train")
    assert isinstance(ds.features["audio_path"], Audio)
    sample = ds[0]
    array, rate = np.asarray(sample["audio_path"]["array"]), sample["audio_path"]["sampling_rate"]
    assert rate == 16000 and array.shape[-1] == 20000  # c1.wav: 1.25 s
    assert sample["response_1"] == "A greeting."


def test_round_trip_through_the_align_anything_reader(converted: Path, tmp_path: Path) -> None:
    """Converted back, the exported records are the originals (with AA_TA2T's system prompt, which it always trains
    with), with the same PCM; ids kept."""
    dest = tmp_path / "aa"
    export(converted, "align-anything", dest)
    back = tmp_path / "back"
    r = audiodata.convert([str(dest / "sft_train.parquet"), str(dest / "dpo_train.parquet")], back, num_workers=1)
    assert (r.records_written, r.records_rejected) == (4, 0)
    want = records(converted)
    got = records(back)
    assert kinds_count(got) == {"sft": 2, "dpo": 2}
    expressible = {k: n for k, n in want.items() if '"Bonjour."' not in k[1] and '"Bye."' not in k[1]}

    def with_aa_system(key: tuple[str, str, tuple[str, ...]]) -> tuple[str, str, tuple[str, ...]]:
        conv = json.loads(key[1])
        conv["system"] = SYSTEM
        return key[0], json.dumps(conv, sort_keys=True), key[2]

    assert got == {with_aa_system(k): n for k, n in expressible.items()}
    ids = lambda out: sorted(row["id"] for f in sorted(out.glob("data/*/*.parquet")) for row in pq.read_table(f).to_pylist())  # noqa: E731
    assert ids(back) == sorted(row["id"] for f in sorted(dest.glob("*.parquet")) for row in pq.read_table(f).to_pylist())


def test_cli_names_the_aa_training_command(converted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(converted), "--to", "align-anything", "-o", str(tmp_path / "aa"), "--no-progress"])
    assert code == 1  # two records skipped, listed by reason
    out = capsys.readouterr().out
    assert "align_anything.trainers.text_audio_to_text.dpo" in out and "--train_data_files dpo_train.parquet" in out
    assert "--train_template AA_TA2T" in out and "AA_TA2T writes its own system prompt" in out
