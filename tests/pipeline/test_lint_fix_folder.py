"""``lint --fix`` over a folder or several files: one repaired copy per input, same layout, the
input's own container and dialect, audio paths still resolving; never one merged file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

import audiodata
from audiodata.cli.main import main
from audiodata.pipeline.lint import lint
from tests.conftest import write_audio


def sharegpt(audio: str, user: str = "<audio>Say it.", bot: str = "gpt") -> dict:
    return {"conversations": [{"from": "human", "value": user}, {"from": bot, "value": "Hi."}], "audios": [audio]}


def messages(audio: str, user: str = "Transcribe.") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": "ok"}], "audios": [audio]}


def make_corpus(root: Path) -> Path:
    """corpus/a/x.jsonl (JSONL, a role alias), corpus/b/deep/y.json (a JSON array, a missing marker),
    corpus/c.jsonl.gz (gzip JSONL, clean); every audio path relative to its file's folder."""
    write_audio(root / "a/audio/1.wav", 1.0, freq=440.0)
    write_audio(root / "b/deep/clips/2.wav", 1.0, freq=550.0)
    write_audio(root / "media/3.wav", 1.0, freq=660.0)
    rows = [sharegpt("audio/1.wav", bot="bot"), sharegpt("audio/1.wav")]
    (root / "a/x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "b/deep/y.json").write_text(json.dumps([messages("clips/2.wav"), messages("clips/2.wav", "<audio>Again.")], indent=1))
    with gzip.open(root / "c.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(sharegpt("media/3.wav")) + "\n")
    return root


def pcm_hashes(out: Path) -> list[str]:
    rows = [r for s in sorted(out.rglob("*.parquet")) for r in pq.read_table(s, columns=["audio_info"]).to_pylist()]
    return sorted(a["pcm_hash"] for r in rows for a in r["audio_info"])


def test_fix_a_folder_writes_one_copy_per_input_that_converts(tmp_path: Path):
    src = make_corpus(tmp_path / "corpus")
    fixed = tmp_path / "fixed"
    report = lint([str(src)], fix=str(fixed), num_workers=1).to_dict()
    assert {(f["index"], f["code"]) for f in report["findings"] if f["code"] in ("S008", "M001")} == {(0, "S008"), (0, "M001")}
    written = sorted(str(p.relative_to(fixed)) for p in fixed.rglob("*") if p.is_file())
    assert written == ["a/x.jsonl", "b/deep/y.json", "c.jsonl.gz"]  # one copy per input, same layout, no merged file
    fx = report["fix"]
    assert fx["records_changed"] == 2 and fx["paths_rewritten"] == 5
    # typed absolute, named relative to their folders in the report (it travels)
    assert {f["input"]: f["output"] for f in fx["files"]}["corpus/b/deep/y.json"] == "fixed/b/deep/y.json"

    # each copy keeps its input's container and dialect
    assert isinstance(json.loads((fixed / "b/deep/y.json").read_text()), list)
    first = json.loads((fixed / "a/x.jsonl").read_text().splitlines()[0])
    assert first["conversations"][1]["from"] == "gpt" and first["audios"] == [str(src / "a/audio/1.wav")]
    with gzip.open(fixed / "c.jsonl.gz", "rt") as fh:
        assert json.loads(fh.read())["audios"] == [str(src / "media/3.wav")]

    # the fixed folder converts whole: every clip resolves, the same audio as the original, the repairs are gone
    out = tmp_path / "out"
    result = audiodata.convert([str(fixed)], out, num_workers=1)
    assert (result.records_written, result.records_rejected) == (5, 0)
    assert set(pcm_hashes(out)) == set(pcm_hashes(_convert(src, tmp_path / "orig")))  # the original rejects y.json's first
    again = lint([str(fixed)], num_workers=1).to_dict()
    assert [f for f in again["findings"] if f["code"] in ("S008", "M001", "A001", "A002")] == []


def _convert(src: Path, out: Path) -> Path:
    audiodata.convert([str(src)], out, num_workers=1)
    return out


def test_fix_is_deterministic(tmp_path: Path):
    src = make_corpus(tmp_path / "corpus")
    lint([str(src)], fix=str(tmp_path / "f1"), num_workers=1)
    lint([str(src)], fix=str(tmp_path / "f2"), num_workers=2)
    for p in sorted((tmp_path / "f1").rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (tmp_path / "f2" / p.relative_to(tmp_path / "f1")).read_bytes(), p


def test_several_files_keep_their_layout_under_their_common_folder(tmp_path: Path):
    src = make_corpus(tmp_path / "corpus")
    fixed = tmp_path / "fixed"
    report = lint([str(src / "a/x.jsonl"), str(src / "b/deep/y.json")], fix=str(fixed), num_workers=1).to_dict()
    assert [Path(f["output"]).relative_to("fixed").as_posix() for f in report["fix"]["files"]] == ["a/x.jsonl", "b/deep/y.json"]
    assert audiodata.convert([str(fixed)], tmp_path / "out", num_workers=1).records_written == 4


def test_paths_stay_relative_under_the_same_explicit_media_root(tmp_path: Path):
    src = tmp_path / "corpus"
    write_audio(src / "audio/1.wav", 1.0)
    for name in ("p/x.jsonl", "q/y.jsonl"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(json.dumps(sharegpt("audio/1.wav", bot="bot")) + "\n")  # relative to --media-root
    fixed = tmp_path / "fixed"
    report = lint([str(src / "p"), str(src / "q")], fix=str(fixed), media_root=str(src), num_workers=1).to_dict()
    assert report["fix"]["paths_rewritten"] == 0
    assert json.loads((fixed / "p/x.jsonl").read_text())["audios"] == ["audio/1.wav"]
    result = audiodata.convert([str(fixed)], tmp_path / "out", num_workers=1, media_root=str(src))
    assert (result.records_written, result.records_rejected) == (2, 0)


def test_a_dataset_info_folder_is_copied_with_its_entries(tmp_path: Path):
    lf = tmp_path / "lf"
    write_audio(lf / "media/a.wav", 1.0)
    (lf / "sub").mkdir()
    (lf / "sub/data.json").write_text(json.dumps([sharegpt("media/a.wav", bot="gpt", user="Say it.")]))  # missing marker
    entry = {"file_name": "sub/data.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "audios": "audios"}}
    (lf / "dataset_info.json").write_text(json.dumps({"demo": entry, "other": {"hf_hub_url": "x/y"}}))
    fixed = tmp_path / "fixed"
    report = lint([str(lf)], fix=str(fixed), num_workers=1).to_dict()
    assert report["fix"]["records_changed"] == 1
    assert json.loads((fixed / "dataset_info.json").read_text()) == {"demo": entry}
    assert json.loads((fixed / "sub/data.json").read_text())[0]["audios"] == [str(lf / "media/a.wav")]
    assert audiodata.convert([str(fixed)], tmp_path / "out", num_workers=1).records_written == 1


def test_several_inputs_need_a_folder(tmp_path: Path, capsys):
    src = make_corpus(tmp_path / "corpus")
    assert main(["lint", str(src), "--fix", str(tmp_path / "merged.jsonl"), "--no-progress"]) == 2
    assert "name a folder" in capsys.readouterr().err
    assert not (tmp_path / "merged.jsonl").exists()
    code = main(["lint", str(src), "--fix", str(tmp_path / "fixed"), "--no-progress"])
    assert code == 1 and "3 files; 5 relative audio paths made absolute" in capsys.readouterr().out  # the input still fails


def test_fix_with_a_trailing_slash_names_a_folder_even_before_it_exists(tmp_path: Path):
    """``--fix out/`` for one input file: the copy goes to out/<name>, never to a file called ``out``."""
    src = make_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    rc = main(["lint", str(src / "a/x.jsonl"), "--fix", f"{out}/", "--num-workers", "1"])
    assert rc == 0  # S008 (a role alias) is a warning the copy repairs
    assert out.is_dir() and [p.name for p in out.iterdir()] == ["x.jsonl"]
    assert json.loads((out / "x.jsonl").read_text().splitlines()[0])["conversations"][1]["from"] == "gpt"
    plain = tmp_path / "plain.jsonl"
    main(["lint", str(src / "a/x.jsonl"), "--fix", str(plain), "--num-workers", "1"])
    assert plain.is_file()  # without the slash, one input's copy is the file named
