"""Raw corpora through the one pipeline: Hugging Face datasets written by ``datasets`` itself (save_to_disk,
Parquet as push_to_hub lays it out), WebDataset tars written by the ``webdataset`` package, Align-Anything
rows, hub ids and dataset_info.json hub entries offline. Fixtures are made here, at test time, with the
real libraries; the audio is the committed espeak speech of sample_data/."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import soundfile as sf

import audiodata
from audiodata.audio.transform import encode, pcm_hash
from audiodata.cli.main import main
from audiodata.readers.sources import InputError, expand_inputs
from tests.conftest import SAMPLE, tree_bytes, write_audio
from tests.hub_mock import Hub, hub

__all__ = ["hub"]  # the fixture, imported for pytest

AUDIO = SAMPLE / "audio"
FLAC16 = AUDIO / "clip07_16k.flac"  # 16 kHz mono 16-bit FLAC: passes through as stored
WAV22 = AUDIO / "clip01_22k.wav"  # resampled and encoded
FLAC48 = AUDIO / "clip10_48k.flac"
SAYS = {
    FLAC16.name: "She sells sea shells by the sea shore.",
    WAV22.name: "The quick brown fox jumps over the lazy dog.",
    FLAC48.name: "A rainbow appears after the storm passes.",
}


def dataset_flac() -> bytes:
    """clip07's samples as a dataset might store them: 16 kHz mono 16-bit FLAC from another encoder setting
    (compression level 0) with a tag, so re-encoding would give other bytes than these."""
    pcm, rate = sf.read(FLAC16, dtype="int16")
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, "PCM_16", format="FLAC", compression_level=0.0) as f:
        f.title = "utterance 7"
        f.write(pcm)
    return buf.getvalue()


def read_rows(out: Path, kind: str = "sft") -> list[dict[str, Any]]:
    """The written rows of one kind (``data/`` itself when the run wrote one kind only)."""
    folder = out / "data" / kind if (out / "data" / kind).is_dir() else out / "data"
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def rejects(out: Path) -> list[dict[str, Any]]:
    path = out / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset built by ``datasets``: saved with save_to_disk, and as Parquet in push_to_hub's layout
    (``data/train-00000-of-00001.parquet``, audio bytes embedded as push_to_hub embeds them)."""
    from datasets import Audio, Dataset

    root = tmp_path_factory.mktemp("hf")
    paths = [FLAC16, WAV22, FLAC48, FLAC16]
    texts = [SAYS[FLAC16.name], SAYS[WAV22.name], SAYS[FLAC48.name], ""]  # the last row: an empty transcript
    ds = Dataset.from_dict({"audio": [str(p) for p in paths], "sentence": texts, "client_id": ["a", "b", "c", "d"]})
    ds.cast_column("audio", Audio()).save_to_disk(str(root / "saved"))
    embedded = [{"bytes": dataset_flac() if p == FLAC16 else p.read_bytes(), "path": p.name} for p in paths]
    pushed = Dataset.from_dict({"speech": embedded, "words": texts, "question": ["Transcribe:"] * 4})
    pushed.cast_column("speech", Audio()).to_parquet(str(root / "pushed" / "data" / "train-00000-of-00001.parquet"))
    return root


def test_save_to_disk_folder_converts_with_detected_columns_and_located_rejects(hf: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = audiodata.convert([str(hf / "saved")], out, num_workers=1, prompt="Transcribe the audio.")
    assert (r.records_read, r.records_written, r.records_rejected) == (4, 3, 1)
    got = read_rows(out)
    assert [row["messages"] for row in got] == [
        [{"role": "user", "content": "<audio>Transcribe the audio."}, {"role": "assistant", "content": text}]
        for text in (SAYS[FLAC16.name], SAYS[WAV22.name], SAYS[FLAC48.name])
    ]
    assert got[0]["source"] == {"file": "saved/data-00000-of-00001.arrow", "index": 0, "line": None}
    (bad,) = rejects(out)
    assert (bad["source"], bad["index"], bad["member"]) == ("saved/data-00000-of-00001.arrow", 3, "row 3")
    assert bad["reasons"][0]["field"] == "sentence"
    assert bad["record"]["audio"]["bytes"] == f"<{FLAC16.stat().st_size} bytes>"  # the row, its audio named by size
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == [{"file": "saved/data-00000-of-00001.arrow", "dialect": "transcription", "entry": None}]
    # the other columns (Common Voice's speaker id) are kept as the row's metadata, and the card says what they hold
    assert [json.loads(row["metadata"]) for row in got] == [{"client_id": "a"}, {"client_id": "b"}, {"client_id": "c"}]
    assert manifest["summary"]["metadata_keys"] == {"client_id": 3}
    assert "| `client_id` | 3 | who speaks: Common Voice's anonymised speaker id |" in (out / "README.md").read_text()


def test_parquet_folder_with_named_columns_and_prompt_column(hf: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"no transcript column .* among speech, words, question; name it with --column text=NAME"
    ):
        expand_inputs([str(hf / "pushed")])
    out = tmp_path / "out"
    r = audiodata.convert([str(hf / "pushed")], out, num_workers=1, columns={"text": "words", "prompt": "question"})
    assert (r.records_written, r.records_rejected) == (3, 1)
    assert read_rows(out)[1]["messages"][0] == {"role": "user", "content": "<audio>Transcribe:"}
    assert rejects(out)[0]["member"] == "row 3"
    with pytest.raises(audiodata.pipeline.options.OptionsError, match="KEY one of audio, text, prompt"):
        audiodata.convert([str(hf / "pushed")], tmp_path / "o2", columns={"transcript": "words"})
    code = main(["convert", str(hf / "pushed"), "-o", str(tmp_path / "o3"), "--column", "text=nope", "--no-progress"])
    assert code == 2


def test_sixteen_khz_mono_flac_passes_through_byte_for_byte_hash_checked(hf: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    audiodata.convert(
        [str(hf / "pushed" / "data" / "train-00000-of-00001.parquet")], out, num_workers=1, columns={"text": "words"}
    )
    first, resampled = read_rows(out)[:2]
    stored = first["audios"][0]["bytes"]
    assert stored == dataset_flac()  # the dataset's bytes, tag and all...
    pcm, rate = sf.read(io.BytesIO(stored), dtype="int16")
    assert stored != encode(pcm, rate, "flac")  # ...not a re-encoding (which gives other bytes here)
    assert rate == 16000 and pcm_hash(pcm) == first["audio_info"][0]["pcm_hash"]  # and the recorded hash is theirs
    assert resampled["audios"][0]["bytes"] != WAV22.read_bytes() and resampled["audio_info"][0]["source_sampling_rate"] == 22050
    report = audiodata.verify(out)
    assert not report.problems and report.clips_checked == 3


def test_pass_through_only_when_the_format_is_the_stored_one(tmp_path: Path) -> None:
    """A 24-bit or stereo 16 kHz FLAC is converted (its samples are not the stored 16-bit mono ones)."""
    from audiodata.audio.load import AudioSource
    from audiodata.audio.transform import convert, stored_as_is

    mono16 = write_audio(tmp_path / "m16.flac", seconds=0.5)
    mono24 = write_audio(tmp_path / "m24.flac", seconds=0.5, subtype="PCM_24")
    for path, expected in ((mono16, True), (mono24, False)):
        src = AudioSource(path=path, name=path.name)
        done = convert(src, 16000, 60)
        kept = stored_as_is(src, done.header, done.pcm, 16000, "flac", 2**20)
        assert (kept == path.read_bytes()) if expected else kept is None
        assert stored_as_is(src, done.header, done.pcm, 16000, "wav", 2**20) is None  # --codec wav: always encoded
        assert stored_as_is(src, done.header, done.pcm[:-1], 16000, "flac", 2**20) is None  # hash mismatch: encoded


def test_chat_format_dataset_rows_are_read_per_record(tmp_path: Path) -> None:
    """A dataset whose columns are a chat dialect's (ms-swift messages + a list of Audio) is read as that dialect."""
    from datasets import Audio, Dataset, Sequence

    msgs = [[{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": SAYS[WAV22.name]}]]
    ds = Dataset.from_dict({"messages": msgs, "audios": [[{"bytes": WAV22.read_bytes(), "path": WAV22.name}]]})
    ds.cast_column("audios", Sequence(Audio())).save_to_disk(str(tmp_path / "chat"))
    out = tmp_path / "out"
    r = audiodata.convert([str(tmp_path / "chat")], out, num_workers=1)
    assert r.records_written == 1
    assert read_rows(out)[0]["messages"][1]["content"] == SAYS[WAV22.name]


# -- WebDataset ---------------------------------------------------------------------------------------


def write_shards(root: Path) -> list[Path]:
    """Two shards written by the webdataset package: flac + json, wav + txt, a sample with no audio, a bad JSON."""
    wds = pytest.importorskip("webdataset")  # the test extra installs it

    root.mkdir(parents=True, exist_ok=True)
    samples = [
        [
            {"__key__": "utt-0000", "flac": FLAC16.read_bytes(), "json": {"text": SAYS[FLAC16.name], "speaker": "s1"}},
            {"__key__": "utt-0001", "wav": WAV22.read_bytes(), "txt": SAYS[WAV22.name]},
        ],
        [
            {"__key__": "utt-0002", "json": {"text": "no audio here"}},
            {"__key__": "utt-0003", "flac": FLAC48.read_bytes(), "json": b"{not json"},
            {"__key__": "utt-0004", "flac": FLAC48.read_bytes(), "json": {"sentence": SAYS[FLAC48.name], "prompt": "Repeat:"}},
        ],
    ]
    paths = []
    for k, shard in enumerate(samples):
        path = root / f"shard-{k:03d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for s in shard:
                sink.write(s)
        paths.append(path)
    return paths


def test_webdataset_shards_by_brace_pattern_with_rejects_naming_tar_and_member(tmp_path: Path) -> None:
    write_shards(tmp_path / "wds")
    out = tmp_path / "out"
    r = audiodata.convert([str(tmp_path / "wds" / "shard-{000..001}.tar")], out, num_workers=1)
    assert (r.records_read, r.records_written, r.records_rejected) == (5, 3, 2)
    got = read_rows(out)
    assert [row["id"] for row in got] == ["utt-0000", "utt-0001", "utt-0004"]
    assert [row["messages"][0]["content"] for row in got] == ["<audio>", "<audio>", "<audio>Repeat:"]
    assert [row["messages"][1]["content"] for row in got] == [SAYS[FLAC16.name], SAYS[WAV22.name], SAYS[FLAC48.name]]
    assert got[0]["audios"][0]["bytes"] == FLAC16.read_bytes()
    bad = {(b["source"], b["member"]): b["reasons"][0] for b in rejects(out)}  # typed absolute: named from its folder
    assert bad[("shard-001.tar", "utt-0002.json")]["message"] == "transcription: missing audio column 'audio'"
    assert bad[("shard-001.tar", "utt-0003.json")]["code"] == "F001"
    assert "invalid JSON in utt-0003.json" in bad[("shard-001.tar", "utt-0003.json")]["message"]
    with pytest.raises(InputError, match=r"shard-002\.tar: no such file"):
        expand_inputs([str(tmp_path / "wds" / "shard-{000..002}.tar")])


def test_truncated_tar_keeps_the_samples_before_and_says_where(tmp_path: Path) -> None:
    (shard, _) = write_shards(tmp_path / "wds")
    data = shard.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    r = audiodata.convert([str(cut)], out, num_workers=1)
    assert r.records_written == 1
    (broken,) = rejects(out)
    assert broken["reasons"][0]["code"] == "F004" and "cannot read the tar" in broken["reasons"][0]["message"]
    assert "the samples before it are kept" in broken["reasons"][0]["message"]


def test_lint_of_a_tar_names_the_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jsonschema import Draft202012Validator

    from tests.conftest import REPO

    write_shards(tmp_path / "wds")
    assert main(["lint", str(tmp_path / "wds" / "shard-001.tar"), "--no-progress", "--report-json", "-"]) == 1
    data = json.loads(capsys.readouterr().out)
    Draft202012Validator(json.loads((REPO / "schemas" / "lint_report.schema.json").read_text())).validate(data)
    assert {(f["member"], f["code"]) for f in data["findings"] if f["severity"] == "error"} == {
        ("utt-0002.json", "S001"),
        ("utt-0003.json", "F001"),
    }
    assert main(["lint", str(tmp_path / "wds" / "shard-001.tar"), "--no-progress"]) == 1  # the terminal report
    assert "shard-001.tar:utt-0003.json" in capsys.readouterr().out
    assert main(["lint", str(tmp_path / "wds" / "shard-001.tar"), "--no-progress", "--output-format", "concise"]) == 1
    concise = capsys.readouterr().out
    assert "F001 invalid JSON in utt-0003.json" in concise and concise.count("(utt-000") == 2


def test_lint_fix_refuses_raw_corpora(tmp_path: Path) -> None:
    (shard, _) = write_shards(tmp_path / "wds")
    with pytest.raises(audiodata.pipeline.options.OptionsError, match=r"shard-000\.tar is a webdataset input"):
        audiodata.lint([str(shard)], fix=tmp_path / "fixed.jsonl", num_workers=1)
    assert not (tmp_path / "fixed.jsonl").exists()


def test_webdataset_rows_tar_without_webdataset_package(tmp_path: Path) -> None:
    """The format is plain tar: one made with tarfile (gzipped) reads the same."""
    path = tmp_path / "plain.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("a/x-1.flac", FLAC16.read_bytes()), ("a/x-1.txt", SAYS[FLAC16.name].encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    assert audiodata.convert([str(path)], out, num_workers=1).records_written == 1
    assert read_rows(out)[0]["id"] == "x-1"


# -- Align-Anything -------------------------------------------------------------------------------------

#: Rows shaped as AA_TA2T reads them (align_anything/configs/format_dataset.py:559-654, PKU-Alignment/align-anything
#: commit 3f9decc): prompt, audio_path, response_1, response_2, overall_response. Hand-written, not copied.
AA_ROWS = [
    {
        "prompt": "What is the speaker saying?",
        "audio_path": str(FLAC16.relative_to(SAMPLE)),
        "response_1": "Something about shells.",
        "response_2": SAYS[FLAC16.name],
        "overall_response": 2,
    },
    {
        "prompt": "Describe the audio.",
        "audio_path": str(WAV22.relative_to(SAMPLE)),
        "response_1": "A pangram read aloud.",
        "response_2": "Music.",
        "overall_response": "1",
    },
    {
        "prompt": "Who speaks?",
        "audio_path": str(WAV22.relative_to(SAMPLE)),
        "response_1": "a",
        "response_2": "b",
        "overall_response": 3,
    },
    {"prompt": "Transcribe it.", "audio_path": str(FLAC48.relative_to(SAMPLE)), "response": SAYS[FLAC48.name]},
]


def aa_file(root: Path) -> Path:
    """The rows as JSONL; their audio paths are relative to sample_data (the tests pass it as --media-root)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "aa.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in AA_ROWS))
    return target


def test_align_anything_rows_as_aa_ta2t_reads_them(tmp_path: Path) -> None:
    corpus = aa_file(tmp_path / "c")
    out = tmp_path / "pairs"
    r = audiodata.convert([str(corpus)], out, num_workers=1, media_root=str(SAMPLE))
    assert (r.records_written, r.records_rejected) == (3, 1)
    pairs = read_rows(out, "dpo")
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        (SAYS[FLAC16.name], "Something about shells."),  # overall_response 2: response_2 is better
        ("A pangram read aloud.", "Music."),  # "1" as int() reads it
    ]
    assert pairs[0]["prompt"] == [{"role": "user", "content": "<audio>What is the speaker saying?"}]
    assert pairs[0]["system"] == "You are a helpful assistant."  # AA_TA2T.system_prompt
    (sft,) = read_rows(out, "sft")
    assert sft["messages"][-1] == {"role": "assistant", "content": SAYS[FLAC48.name]}
    (bad,) = rejects(out)
    assert (bad["line"], bad["reasons"][0]["field"]) == (3, "overall_response")
    out2 = tmp_path / "sft"
    audiodata.convert([str(corpus)], out2, num_workers=1, media_root=str(SAMPLE), format="align-anything-sft")
    assert [m["messages"][-1]["content"] for m in read_rows(out2)] == [
        SAYS[FLAC16.name],
        "A pangram read aloud.",
        SAYS[FLAC48.name],
    ]


def test_align_anything_as_a_dataset_with_an_audio_column(tmp_path: Path) -> None:
    """AA loads its data with datasets.load_dataset: audio_path is an Audio feature there."""
    from datasets import Audio, Dataset

    row = {**AA_ROWS[0], "audio_path": str(FLAC16)}
    Dataset.from_list([row]).cast_column("audio_path", Audio()).save_to_disk(str(tmp_path / "aa"))
    out = tmp_path / "out"
    assert audiodata.convert([str(tmp_path / "aa")], out, num_workers=1).records_written == 1
    assert read_rows(out, "dpo")[0]["chosen"][0]["content"] == SAYS[FLAC16.name]


# -- hubs, offline ----------------------------------------------------------------------------------------


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "modelscope.invalid")  # a name that never resolves (RFC 2606): offline anywhere


def test_hub_id_offline_is_one_line_naming_what_is_missing(
    offline: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["convert", "hf://someone/speech-set?subset=clean&split=validation", "-o", str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "hf://someone/speech-set?subset=clean&split=validation: not in the local Hugging Face cache" in err
    assert "HF_HUB_OFFLINE" in err and len(err.splitlines()) == 1
    with pytest.raises(InputError, match="unknown option 'config'"):
        expand_inputs(["hf://someone/speech-set?config=x"])


def test_dataset_info_hub_entries_offline_are_reported_and_the_rest_is_read(offline: None, tmp_path: Path) -> None:
    lf = tmp_path / "lf"
    lf.mkdir()
    (lf / "local.json").write_text(json.dumps([{"instruction": "<audio>What is said?", "output": "x", "audios": [str(FLAC16)]}]))
    info = {
        "local": {"file_name": "local.json", "columns": {"prompt": "instruction", "response": "output", "audios": "audios"}},
        "speech": {"hf_hub_url": "someone/speech", "subset": "clean", "split": "test", "columns": {"prompt": "q"}},
        "ms_speech": {"ms_hub_url": "someone/ms-speech"},
    }
    (lf / "dataset_info.json").write_text(json.dumps(info))
    got = expand_inputs([str(lf)])
    assert [f.display for f in got.files] == ["lf/local.json"]
    reasons = {s.entry: s.reason for s in got.skipped}
    assert reasons["speech"].startswith(
        "not read: hf://someone/speech?subset=clean&split=test: not in the local Hugging Face cache"
    )
    assert reasons["ms_speech"].startswith("not read: ms://someone/ms-speech: ")
    assert "modelscope.invalid" in reasons["ms_speech"] or "pip install 'modelscope[datasets]'" in reasons["ms_speech"]
    assert all(len(r.splitlines()) == 1 for r in reasons.values())
    r = audiodata.convert([str(lf)], tmp_path / "out", num_workers=1)
    assert r.records_written == 1 and r.warnings_by_code["F006"] == 2


# -- one pipeline: any worker count, resume ---------------------------------------------------------------------


def test_raw_corpora_output_is_identical_whatever_the_worker_count_and_resumes(hf: Path, tmp_path: Path) -> None:
    write_shards(tmp_path / "wds")
    inputs = [str(hf / "saved"), str(tmp_path / "wds" / "shard-{000..001}.tar"), str(aa_file(tmp_path / "c"))]
    opts = {"media_root": str(SAMPLE), "max_shard_size": 64 * 1024}
    audiodata.convert(inputs, tmp_path / "w1", num_workers=1, **opts)
    audiodata.convert(inputs, tmp_path / "w3", num_workers=3, batch_size=2, **opts)
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w3")

    class Boom(RuntimeError):
        pass

    def crash(p: Any) -> None:
        if p.records >= 7:
            raise Boom

    with pytest.raises(Boom):
        audiodata.convert(inputs, tmp_path / "r", num_workers=2, on_progress=crash, **opts)
    resumed = audiodata.convert(inputs, tmp_path / "r", num_workers=1, **opts)
    assert resumed.resumed_from > 0
    assert tree_bytes(tmp_path / "r") == tree_bytes(tmp_path / "w1")


# -- a hub, online: datasets streaming from a local mock of the Hub -----------------------------------------


@pytest.mark.slow
def test_hub_id_streams_through_datasets_and_converts(hub: Hub, tmp_path: Path) -> None:
    """``hf://owner/name`` read by ``datasets.load_dataset(streaming=True)`` against tests/hub_mock.py (the CLI in a
    subprocess, reaching the mock through HF_ENDPOINT as a user would): Audio bytes as stored, a split option."""
    import os
    import subprocess
    import sys

    from datasets import Audio, Dataset

    from tests.conftest import REPO

    repo, sha = "someone/speech", "a" * 40
    base = hub.repo_dir(repo)
    table = {"audio": [{"bytes": FLAC16.read_bytes(), "path": "a.flac"}, {"bytes": WAV22.read_bytes(), "path": "b.wav"}]}
    table["sentence"] = [SAYS[FLAC16.name], SAYS[WAV22.name]]
    Dataset.from_dict(table).cast_column("audio", Audio()).to_parquet(str(base / "data" / "test-00000-of-00001.parquet"))
    hub.private[repo] = False
    hub.heads[(repo, "main")] = hub.heads[(repo, sha)] = sha
    hub.repo_dir(repo, sha).symlink_to(base)  # datasets resolves the head commit, then asks for files at it
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": "hf_mock",
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_DISABLE_XET": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiodata", "convert", "hf://someone/speech?split=test", "-o", str(out), "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = read_rows(out)
    assert [r["messages"][1]["content"] for r in got] == [SAYS[FLAC16.name], SAYS[WAV22.name]]
    assert got[0]["audios"][0]["bytes"] == FLAC16.read_bytes() and got[0]["source"]["file"] == "hf://someone/speech?split=test"
    missing = subprocess.run(
        [*cmd[:4], "hf://someone/nothing", "-o", str(tmp_path / "o2")], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith(
        "no dataset someone/nothing on the Hugging Face Hub (or it is private: log in with hf auth login)"
    )


def test_gzipped_tar_bomb_is_a_finding_within_the_gzip_bounds(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tar.gz"
    zeros = bytes(40 * 2**20)  # 40 MiB of zeros: about 40 KiB gzipped, far past the 100x ratio
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("a-0.flac", FLAC16.read_bytes()), ("a-0.txt", b"fine"), ("b-1.wav", zeros)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    r = audiodata.convert([str(path)], out, num_workers=1)
    assert r.records_written == 1 and r.rejects_by_code == {"F008": 1}
    assert "--max-expansion-ratio" in rejects(out)[0]["reasons"][0]["message"]
