"""One model of a converted dataset (audiodata/dataset.py): the manifest's layout stated once, written by
convert through it byte for byte as before, its format version checked by every reader, and no reader
parsing manifest.json by hand."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.dataset import (
    FORMAT_VERSION,
    ConfigInfo,
    ConvertedDataset,
    DatasetError,
    Manifest,
    ShardEntry,
    SplitInfo,
    Summary,
)
from audiodata.errors import DatasetFormatError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(sample_out, tmp_path: Path) -> Path:
    out, _ = sample_out
    dst = tmp_path / "ds"
    shutil.copytree(out, dst)
    return dst


def edit_manifest(out: Path, change) -> None:
    data = json.loads((out / "manifest.json").read_text())
    change(data)
    (out / "manifest.json").write_text(json.dumps(data, indent=2))


def test_the_model_reads_and_writes_the_manifest_byte_for_byte(sample_out):
    out, _ = sample_out
    text = (out / "manifest.json").read_text(encoding="utf-8")
    manifest = Manifest.load(out)
    assert manifest.to_json() == text  # what convert wrote is what the model serialises: one layout
    assert list(json.loads(text)) == ["audiodata_version", "format_version", "options", "inputs", "summary", "shards", "rejects"]
    assert manifest.format_version == FORMAT_VERSION
    assert all(isinstance(s, ShardEntry) for s in manifest.shards)
    assert isinstance(manifest.summary.configs["sft"], ConfigInfo)
    assert isinstance(manifest.summary.configs["sft"].splits["train"], SplitInfo)
    assert "images" not in json.loads(text)["summary"]  # an optional field stays out while unset


def test_the_dataclasses_are_frozen(sample_out):
    manifest = Manifest.load(sample_out[0])
    with pytest.raises(AttributeError):
        manifest.summary.written = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        manifest.shards[0].rows = 0  # type: ignore[misc]


def test_converted_dataset_answers_what_readers_ask(sample_out):
    out, result = sample_out
    ds = ConvertedDataset.open(out)
    assert list(ds.configs) == ["sft", "dpo"] and ds.kind("dpo") == "dpo" and ds.sample_rate == 16000
    assert ds.splits("sft") == ["train"] and ds.splits() == ["train"]
    sft = ds.shards("sft", "train")
    assert [s.file for s in sft] == ["data/sft/train-00000-of-00001.parquet"]
    assert ds.shards("sft", "validation") == []
    assert ds.find_config("sft") == "sft" and ds.find_config("kto") is None
    rows = list(ds.iter_rows(["id", "audio_info"], batch_rows=7, config="sft"))
    assert len(rows) == sum(s.rows for s in sft) == 50 and set(rows[0]) == {"id", "audio_info"}
    assert sum(1 for _ in ds.iter_rows(["id"])) == result.records_written
    assert ds.prompt_column("sft") == "messages" and ds.prompt_column("dpo") == "prompt"
    assert "audios" in ds.features("dpo") and ds.features("dpo")["audios"].feature.sampling_rate == 16000
    card = ds.card()
    assert card.text.startswith("---") and [c["config_name"] for c in card.meta["configs"]] == ["sft", "dpo"]


def test_a_one_config_dataset_serves_every_task_name(tmp_path: Path):
    corpus = REPO / "sample_data" / "minicpm.jsonl"
    out = tmp_path / "one"
    audiodata.convert([str(corpus)], out, num_workers=1)
    ds = ConvertedDataset.open(out)
    assert list(ds.configs) == ["default"]
    assert ds.find_config("sft") == "default" and ds.find_config("sft", exact=True) is None


def test_an_older_manifest_without_the_later_keys_still_opens(copy: Path):
    def strip(m: dict) -> None:
        del m["format_version"]  # format 1 wrote none
        for key in ("duplicates", "duplicates_by_kind", "kto_labels", "skipped_inputs", "warnings_by_code"):
            del m["summary"][key]
        del m["rejects"], m["inputs"]

    edit_manifest(copy, strip)
    ds = ConvertedDataset.open(copy)
    assert ds.format_version == 1 and ds.summary.duplicates == 0 and ds.summary.kto_labels == {}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["shards"][0].update(rows="50"), "rows is str '50', not int"),
        (lambda m: m["shards"][1].pop("sha256"), "lacks 'sha256'"),
        (lambda m: m["summary"]["configs"]["sft"].update(kind="pretrain"), "kind 'pretrain' is not one of sft, dpo, kto"),
        (lambda m: m["summary"].pop("sample_rate"), "summary lacks 'sample_rate'"),
        (lambda m: m.update(shards={}), "shards is dict"),
        (lambda m: m.update(format_version="2"), "format_version is str"),
    ],
)
def test_a_damaged_manifest_is_named_with_the_field(copy: Path, change, named: str):
    edit_manifest(copy, change)
    with pytest.raises(DatasetError) as err:
        ConvertedDataset.open(copy)
    message = str(err.value)
    assert named in message and "manifest.json" in message and f"audiodata verify {copy}" in message


def test_a_format_never_written_is_refused(copy: Path):
    edit_manifest(copy, lambda m: m.update(format_version=0))
    with pytest.raises(DatasetFormatError, match="format_version 0 is not one audiodata ever wrote"):
        ConvertedDataset.open(copy)


READERS = {
    "info": lambda ds, tmp: ["info", str(ds)],
    "export": lambda ds, tmp: ["export", str(ds), "--to", "ms-swift", str(tmp / "exported")],
    "verify": lambda ds, tmp: ["verify", str(ds), "--no-audio"],
    "publish": lambda ds, tmp: ["publish", str(ds), "me/ds", "--dry-run"],
    "dedup --against": lambda ds, tmp: ["dedup", str(REPO / "sample_data/minicpm.jsonl"), "--against", str(ds), "--no-progress"],
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_a_newer_format_naming_the_version_and_the_upgrade(
    reader: str, copy: Path, tmp_path: Path, capsys
):
    edit_manifest(copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    code = main(READERS[reader](copy, tmp_path))
    printed = capsys.readouterr()
    said = " ".join((printed.err + printed.out).split())
    assert code == 2, said
    assert f"format_version {FORMAT_VERSION + 1} is newer than this audiodata {audiodata.__version__} reads" in said
    assert "upgrade audiodata" in said and "Traceback" not in said


def test_the_trainer_and_open_refuse_a_newer_format(copy: Path):
    from trainer.data import load_rows

    edit_manifest(copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(DatasetError, match="upgrade audiodata"):
        load_rows(SimpleNamespace(data=str(copy), data_config=None, task="sft"), "train")
    with pytest.raises(DatasetError, match="upgrade audiodata"):
        audiodata.open(copy, "sft")


def test_convert_result_comes_from_the_manifest(sample_out):
    out, result = sample_out
    summary = Summary.from_dict(json.loads((out / "manifest.json").read_text())["summary"])
    assert (result.records_read, result.records_written, result.records_rejected) == (
        summary.records_read,
        summary.written,
        summary.rejected,
    )
    assert result.shards == Manifest.load(out).shards
    as_json = result.to_dict()
    assert as_json["shards"][0]["file"] == result.shards[0].file and as_json["exit_code"] == result.exit_code
    assert as_json["output"] == str(out)


def test_no_reader_parses_manifest_json_by_hand():
    """The manifest is read in one place: a second reader would drift from the model (and its version check)."""
    by_hand = re.compile(r"json\.loads?\(.*manifest|manifest.*\.read_text\(|open\([^)]*manifest")
    offenders = []
    for path in [*(REPO / "audiodata").rglob("*.py"), *(REPO / "trainer").rglob("*.py")]:
        if path.name == "dataset.py" and path.parent.name == "audiodata":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if by_hand.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, offenders


@pytest.mark.parametrize("command", ["lint", "convert", "dedup"])
def test_a_converted_dataset_given_as_a_corpus_is_refused(command: str, sample_out, tmp_path: Path, capsys):
    """Its manifest.json and rejects.jsonl would otherwise be read as records, each an F003."""
    out, _ = sample_out
    argv = [command, str(out), "--no-progress"] + (["-o", str(tmp_path / "again")] if command == "convert" else [])
    assert main(argv) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert f"{out}: a converted dataset (manifest.json), not a raw corpus; `audiodata verify {out}` checks it" in said
    assert not (tmp_path / "again").exists()
