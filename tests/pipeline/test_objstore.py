"""Object stores through fsspec's memory:// filesystem: remote inputs, media and outputs give the local run's
answer; a run killed mid-way resumes from what the store holds on a machine with an empty cache, to the same
bytes; media URLs are fetched only under --allow-remote (never http(s)); a store that keeps failing is a
located reject, never a crash; transfers are checked; a missing library is one line with exit 2."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata import objstore
from audiodata.cli.main import main
from audiodata.errors import UsageError
from audiodata.pipeline import convert as convert_mod
from audiodata.pipeline.merge import merge
from tests.conftest import SAMPLE

AUDIO = SAMPLE / "audio"
CLIPS = ["clip01_22k.wav", "clip02_22k.wav", "clip03_22k.wav", "clip05_8k.wav", "clip07_16k.flac", "clip08_16k.flac"]
MEM = fsspec.filesystem("memory")


def sft(audio: str, text: str) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "<audio>Transcribe."}, {"role": "assistant", "content": text}],
        "audios": [audio],
    }


def records() -> list[dict[str, Any]]:
    """Clips by relative path (good and missing), one escaping the media root, one remote URL, one http URL."""
    out = [sft(f"audio/{name}", f"clip {k}") for k, name in enumerate(CLIPS)]
    out.insert(2, sft("audio/missing.wav", "missing"))
    out.insert(4, sft("../../elsewhere/secret.wav", "escape"))
    out.append(sft("memory://media-store/shared/clip09_16k.flac", "remote"))
    out.append(sft("https://example.com/clip.wav", "web"))
    out += [sft(f"audio/{name}", f"clip {k}") for k, name in enumerate(CLIPS)]  # exact copies (dedup)
    return out


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIODATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUDIODATA_REMOTE_BACKOFF", "0")


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[str]:
    """A fresh bucket holding the corpus (JSONL + audio), and a local copy of the same files."""
    name = f"b{uuid.uuid4().hex[:10]}"
    lines = "".join(json.dumps(r) + "\n" for r in records())
    local = tmp_path / "corpus"
    (local / "audio").mkdir(parents=True)
    (local / "a.jsonl").write_text(lines)
    MEM.pipe(f"/{name}/corpus/a.jsonl", lines.encode())
    for clip in CLIPS:
        data = (AUDIO / clip).read_bytes()
        MEM.pipe(f"/{name}/corpus/audio/{clip}", data)
        (local / "audio" / clip).write_bytes(data)
    MEM.pipe("/media-store/shared/clip09_16k.flac", (AUDIO / "clip09_16k.flac").read_bytes())
    yield f"memory://{name}"
    MEM.rm(f"/{name}", recursive=True)


def rows(folder: Path | str) -> list[dict[str, Any]]:
    """Every row of every shard in manifest order, ``source`` left out (a local run names its input by path)."""
    man = json.loads(_read(folder, "manifest.json"))
    out: list[dict[str, Any]] = []
    for shard in man["shards"]:
        table = pq.read_table(_open(folder, shard["file"]))
        out += [{k: v for k, v in r.items() if k != "source"} for r in table.to_pylist()]
    return out


def _read(folder: Path | str, rel: str) -> bytes:
    with _open(folder, rel) as fh:
        data: bytes = fh.read()
        return data


def _open(folder: Path | str, rel: str) -> Any:
    return fsspec.open(f"{folder}/{rel}", "rb").open() if isinstance(folder, str) else open(folder / rel, "rb")


def dataset_bytes(url: str) -> dict[str, bytes]:
    """Every file of a remote dataset but the work folder, by relative path."""
    root = url.split("://", 1)[1]
    return {p[len(root) + 2 :]: MEM.cat_file(p) for p in MEM.find(f"/{root}") if "/.audiodata/" not in p}


def test_remote_inputs_media_and_output_give_the_local_answer(bucket: str, tmp_path: Path) -> None:
    local = audiodata.convert([str(tmp_path / "corpus" / "a.jsonl")], tmp_path / "local", num_workers=1)
    remote = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    assert remote.output == f"{bucket}/out"
    assert rows(f"{bucket}/out") == rows(tmp_path / "local")
    assert remote.records_written == local.records_written == 2 * len(CLIPS)
    # the same rejects, named by URL: missing (A001), outside the root (A002), the remote clip not allowed and http (A003)
    assert remote.rejects_by_code == local.rejects_by_code == {"A001": 1, "A002": 1, "A003": 2}
    rejects = [json.loads(line) for line in _read(f"{bucket}/out", "rejects.jsonl").splitlines()]
    assert {r["source"] for r in rejects} == {f"{bucket}/corpus/a.jsonl"}
    by_code = {r["reasons"][0]["code"]: r for r in rejects if r["reasons"][0]["code"] != "A003"}
    assert by_code["A001"]["line"] == 3 and f"{bucket}/corpus/audio/missing.wav" in by_code["A001"]["reasons"][0]["message"]
    assert "outside the media root" in by_code["A002"]["reasons"][0]["message"]
    said = " ".join(r["reasons"][0]["message"] for r in rejects)
    assert "--allow-remote memory://media-store/ would fetch it" in said
    assert "https://example.com/clip.wav" in said
    man = json.loads(_read(f"{bucket}/out", "manifest.json"))
    for shard in man["shards"]:  # the manifest's sha256 is the bytes the store holds
        import hashlib

        assert hashlib.sha256(_read(f"{bucket}/out", shard["file"])).hexdigest() == shard["sha256"]


def test_allow_remote_fetches_only_under_the_prefix(bucket: str) -> None:
    r = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1, allow_remote=["memory://media-store"])
    assert r.rejects_by_code == {"A001": 1, "A002": 1, "A003": 1}  # the remote clip is written; http still refused
    assert any(row["messages"][-1]["content"] == "remote" for row in rows(f"{bucket}/out"))
    r = audiodata.convert(
        [f"{bucket}/corpus/a.jsonl"], f"{bucket}/out2", num_workers=1, allow_remote=["memory://media-store/other/"]
    )
    assert r.rejects_by_code["A003"] == 2  # a neighbouring prefix allows nothing here
    with pytest.raises(UsageError, match="http"):
        audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out3", allow_remote=["https://example.com/"])
    with pytest.raises(UsageError, match="name a bucket"):
        audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out3", allow_remote=["s3://"])


def test_allowed_prefix_cannot_be_climbed_out_of() -> None:
    prefixes = objstore.allow_prefixes(["s3://bucket/data"])
    assert prefixes == ("s3://bucket/data/",)
    assert objstore.allowed("s3://bucket/data/a/b.wav", prefixes)
    assert not objstore.allowed("s3://bucket/data/../private/b.wav", prefixes)
    assert not objstore.allowed("s3://bucket/database/b.wav", prefixes)
    assert not objstore.allowed("gs://bucket/data/b.wav", prefixes)


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_run_resumes_from_the_store_on_an_empty_cache_to_the_same_bytes(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    opts: dict[str, Any] = {"num_workers": workers, "max_shard_size": 200_000, "row_group_rows": 2}
    whole = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/whole", **opts)
    assert len(whole.shards) >= 3
    real = convert_mod._Run._checkpoint
    calls = {"n": 0}

    def dies_on_second(self: Any, info: Any) -> None:
        real(self, info)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the run stops here; what the store holds is what two checkpoints made durable

    monkeypatch.setattr(convert_mod._Run, "_checkpoint", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/cut", **opts)
    state = json.loads(MEM.cat_file(f"/{bucket[9:]}/cut/.audiodata/state.json"))
    assert len(state["shards"]) == 2 and state["status"] == "running"
    assert not MEM.exists(f"/{bucket[9:]}/cut/manifest.json")
    monkeypatch.setattr(convert_mod._Run, "_checkpoint", real)
    monkeypatch.setenv("AUDIODATA_CACHE", str(tmp_path / "another-machine"))  # nothing local: the store is all there is
    resumed = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/cut", **opts)
    assert resumed.resumed_from > 0
    assert dataset_bytes(f"{bucket}/cut") == dataset_bytes(f"{bucket}/whole")
    again = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/cut", **opts)
    assert again.already_complete


def test_a_local_leftover_never_reaches_the_store(bucket: str) -> None:
    """The store is the truth: a local copy with files the store does not hold (a run that died before its push)
    is brought back to the store's state before the run."""
    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    mirror = objstore.Mirror(f"{bucket}/out")
    (mirror.local / "data" / "stray.parquet").write_bytes(b"junk")
    (mirror.local / "manifest.json").write_text("{}")  # damaged locally: fetched again
    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    assert not MEM.exists(f"/{bucket[9:]}/out/data/stray.parquet")
    assert not (mirror.local / "data" / "stray.parquet").exists()
    assert json.loads((mirror.local / "manifest.json").read_text())["shards"]


def test_ranks_and_merge_in_the_store_equal_one_run(bucket: str) -> None:
    one = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/one", num_workers=1, dedup="exact")
    for i in range(2):
        audiodata.convert(
            [f"{bucket}/corpus/a.jsonl"], f"{bucket}/ranked", num_workers=1, dedup="exact", num_shards=2, shard_index=i
        )
    assert MEM.exists(f"/{bucket[9:]}/ranked/ranks/rank-00001-of-00002/manifest.json")
    merged = merge(f"{bucket}/ranked")
    assert merged.output == f"{bucket}/ranked"
    assert rows(f"{bucket}/ranked") == rows(f"{bucket}/one")
    assert _read(f"{bucket}/ranked", "rejects.jsonl") == _read(f"{bucket}/one", "rejects.jsonl")
    assert merged.records_duplicate == one.records_duplicate == len(CLIPS)
    assert merge(f"{bucket}/ranked").already_complete


def test_flaky_store_is_retried_and_a_dead_one_is_a_located_reject(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = type(MEM).cat_file
    seen: dict[str, int] = {}

    def flaky(self: Any, path: str, *a: Any, **k: Any) -> Any:
        seen[path] = seen.get(path, 0) + 1
        if path.endswith("clip01_22k.wav") and seen[path] <= 2:
            raise ConnectionError("connection reset by peer")  # twice, then it answers
        if path.endswith("clip02_22k.wav"):
            raise TimeoutError("read timed out")  # never answers
        return real(self, path, *a, **k)

    monkeypatch.setattr(type(MEM), "cat_file", flaky)
    r = audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    assert r.rejects_by_code == {"A001": 1, "A002": 1, "A003": 2, "A005": 2}  # clip02 twice in the corpus
    rejects = [json.loads(line) for line in _read(f"{bucket}/out", "rejects.jsonl").splitlines()]
    dead = [x for x in rejects if x["reasons"][0]["code"] == "A005"]
    assert [x["line"] for x in dead] == [2, 12]
    assert "audio/clip02_22k.wav cannot be read" in dead[0]["reasons"][0]["message"]
    assert "TimeoutError: read timed out (after 4 tries)" in dead[0]["reasons"][0]["message"]
    assert any(row["messages"][-1]["content"] == "clip 0" for row in rows(f"{bucket}/out"))  # the flaky one came through


def test_transfers_are_checked_against_the_store_checksum(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{bucket}/corpus/audio/clip01_22k.wav"
    real_info = type(MEM).info
    monkeypatch.setattr(type(MEM), "info", lambda self, path, **k: {**real_info(self, path, **k), "ETag": '"' + "0" * 32 + '"'})
    with pytest.raises(objstore.RemoteFault, match="do not match the store's md5"):
        objstore.download(url, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    monkeypatch.setattr(type(MEM), "info", real_info)
    got = objstore.download(url, tmp_path / "x.wav")
    with pytest.raises(objstore.RemoteFault, match="sha256"):
        objstore.download(url, tmp_path / "y.wav", sha256="f" * 64)
    assert got.size == (AUDIO / "clip01_22k.wav").stat().st_size


def test_a_shard_damaged_in_the_store_is_refused_on_resume(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    shard = json.loads(_read(f"{bucket}/out", "manifest.json"))["shards"][0]["file"]
    path = f"/{bucket[9:]}/out/{shard}"
    data = bytearray(MEM.cat_file(path))
    data[100] ^= 0xFF
    MEM.pipe(path, bytes(data))
    monkeypatch.setenv("AUDIODATA_CACHE", str(tmp_path / "elsewhere"))
    with pytest.raises(objstore.RemoteFault, match=r"differs from the [0-9a-f]{64} recorded when it was written"):
        audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)


def test_remote_folder_input_and_lint(bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lint", f"{bucket}/corpus", "--json", "--num-workers", "1"])
    out = capsys.readouterr().out
    report = json.loads(out)
    assert code == 1
    text = json.dumps(report)
    assert f"{bucket}/corpus/a.jsonl" in text and "A001" in text and "A003" in text


def test_cli_remote_output_and_missing_library(bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["convert", f"{bucket}/corpus/a.jsonl", "-o", f"{bucket}/cli", "--num-workers", "1", "--no-progress"])
    assert code == 1
    assert f"{bucket}/cli" in capsys.readouterr().out
    assert MEM.exists(f"/{bucket[9:]}/cli/manifest.json")
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        code = main(["convert", "gs://bucket/a.jsonl", "-o", f"{bucket}/gs", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        assert "gs:// needs gcsfs, which is not installed (pip install 'audiodata[gcs]')" in err
        assert len(err.strip().splitlines()) == 1


def test_hf_ids_stay_hub_datasets_and_hf_paths_are_files() -> None:
    assert not objstore.is_remote("hf://owner/name")
    assert not objstore.is_remote("hf://owner/name?split=test")
    assert objstore.is_remote("hf://datasets/owner/name/data/train.jsonl")
    assert not objstore.is_remote("https://example.com/a.jsonl")
    assert objstore.is_remote("s3://bucket/a.jsonl") and objstore.is_remote("gs://bucket/a.jsonl")


def test_scratch_names_are_the_modules_own() -> None:
    from audiodata.dedup.store import SPILL_PREFIX
    from audiodata.lock import WORK
    from audiodata.pipeline.merge import REWRITE

    assert (SPILL_PREFIX, f"{WORK}/{REWRITE}/") == objstore.SCRATCH and objstore.WORK == WORK


def test_scratch_and_the_lock_stay_local(bucket: str) -> None:
    """A spilled duplicate index, merge's shards before placing, the lock and .tmp files are never replicated;
    the rest is, the resume state last; a file gone locally is deleted from the store."""
    mirror = objstore.Mirror(f"{bucket}/m")
    mirror.pull()
    work = mirror.local / ".audiodata"
    for rel in ("audiodata-dedup-x1/run-0", "merge/a.parquet", "lock", "state.json", "rejects.jsonl", "default/s.parquet.tmp"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(rel)
    (mirror.local / "manifest.json").write_text("{}")
    order: list[str] = []
    real = objstore.upload
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(objstore, "upload", lambda src, url: order.append(url.rsplit("/m/", 1)[1]) or real(src, url))
        mirror.push()
    held = sorted(p.split("/m/", 1)[1] for p in MEM.find(f"/{bucket[9:]}/m"))
    assert held == [".audiodata/objects.json", ".audiodata/rejects.jsonl", ".audiodata/state.json", "manifest.json"]
    assert order[-2:] == [".audiodata/state.json", ".audiodata/objects.json"] and order.index("manifest.json") > 0
    (work / "rejects.jsonl").unlink()
    mirror.push()
    assert not MEM.exists(f"/{bucket[9:]}/m/.audiodata/rejects.jsonl")


def test_one_run_at_a_time_per_local_copy(bucket: str) -> None:
    from audiodata.errors import OutputError

    busy = pytest.raises(OutputError, match="another run on this machine is writing it")
    with objstore.Mirror(f"{bucket}/out").claimed(), busy:
        audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    assert audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1).records_written


def test_verify_info_and_export_read_a_dataset_in_the_store(
    bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    assert main(["verify", f"{bucket}/out", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == f"{bucket}/out"
    assert main(["info", f"{bucket}/out", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 2 * len(CLIPS)
    assert main(["export", f"{bucket}/out", "--to", "llamafactory", "-o", str(tmp_path / "lf"), "--no-progress"]) == 0
    assert (tmp_path / "lf" / "dataset_info.json").is_file()
    shard = json.loads(_read(f"{bucket}/out", "manifest.json"))["shards"][0]["file"]
    path = f"/{bucket[9:]}/out/{shard}"
    data = bytearray(MEM.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    MEM.pipe(path, bytes(data))  # damaged in the store: verify says where, it does not stop at the transfer check
    capsys.readouterr()
    assert main(["verify", f"{bucket}/out", "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any(p["where"].startswith(shard) or shard in json.dumps(p) for p in problems)


def test_a_missing_library_names_its_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_s3fs(url: str, **kw: Any) -> Any:
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_s3fs)
    with pytest.raises(
        objstore.MissingExtra, match=r"s3:// needs s3fs, which is not installed \(pip install 'audiodata\[s3\]'\)"
    ):
        objstore.filesystem("s3://bucket/a.jsonl")
    code = main(["lint", "sample_data/swift.jsonl", "--allow-remote", "s3://bucket/", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "audiodata[s3]" in err and len(err.strip().splitlines()) == 1


def test_lint_fix_of_a_remote_input_names_its_clips_by_url(bucket: str, tmp_path: Path) -> None:
    """A repaired copy written to disk keeps reaching the clips it named: by their URL (which a later convert
    fetches only with --allow-remote, as any URL in a record)."""
    (tmp_path / "fixed").mkdir()  # a folder: each input's copy under it, relative clips re-pointed
    main(["lint", f"{bucket}/corpus/a.jsonl", "--fix", str(tmp_path / "fixed"), "--no-progress", "--num-workers", "1"])
    fixed = tmp_path / "fixed" / "a.jsonl"
    audios = [json.loads(line)["audios"][0] for line in fixed.read_text().splitlines()]
    assert f"{bucket}/corpus/audio/{CLIPS[0]}" in audios and "https://example.com/clip.wav" in audios
    r = audiodata.convert([str(fixed)], tmp_path / "out", num_workers=1, allow_remote=[bucket])
    assert "../../elsewhere/secret.wav" in audios  # outside the root: never turned into a URL to fetch
    assert r.records_written == 2 * len(CLIPS)  # the relocated clips are fetched under --allow-remote
    assert r.rejects_by_code == {"A001": 1, "A002": 1, "A003": 2}  # missing, the escape, media-store and http


@pytest.mark.parametrize("given", ["lf", "lf/dataset_info.json"])
def test_a_remote_dataset_info_reads_the_files_it_names(tmp_path: Path, given: str) -> None:
    """A LLaMA-Factory folder in a store, named by its folder or its dataset_info.json: the files it names are
    staged with it and their media read from beside them, as on disk."""
    name = f"lf{uuid.uuid4().hex[:8]}"
    src = SAMPLE / "llamafactory"
    for p in src.rglob("*"):
        if p.is_file():
            MEM.pipe(f"/{name}/lf/{p.relative_to(src).as_posix()}", p.read_bytes())
    local = audiodata.convert([str(src / "dataset_info.json")], tmp_path / "local", num_workers=1)
    remote = audiodata.convert([f"memory://{name}/{given}"], tmp_path / "remote", num_workers=1)
    assert rows(tmp_path / "remote") == rows(tmp_path / "local")
    assert remote.records_written == local.records_written > 0 and remote.rejects_by_code == local.rejects_by_code
    MEM.rm(f"/{name}", recursive=True)


def test_dedup_against_and_publish_read_a_dataset_in_the_store(
    bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dedup --against s3://.../OUT`` and ``publish s3://.../OUT`` read the store's dataset as they read the same
    dataset on disk (its local copy, brought to what the store holds): the same leaks, the same upload plan."""
    corpus = str(tmp_path / "corpus" / "a.jsonl")
    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1, allow_remote=["memory://media-store"])
    audiodata.convert([corpus], tmp_path / "local", num_workers=1, allow_remote=["memory://media-store"])

    def summary(against: str) -> dict[str, Any]:
        assert main(["dedup", corpus, "--against", against, "--dedup", "exact", "--json", "--no-progress"]) == 1
        got: dict[str, Any] = json.loads(capsys.readouterr().out)["summary"]
        return got

    remote, local = summary(f"{bucket}/out"), summary(str(tmp_path / "local"))
    assert remote["leaks"] == local["leaks"] > 0 and remote["reference_records"] == local["reference_records"] > 0
    assert remote["against"] == f"{bucket}/out"

    def plan(dataset: str) -> list[tuple[str, int]]:
        assert main(["publish", dataset, "me/x", "--dry-run", "--json"]) == 0
        return [(f["path"], f["bytes"]) for f in json.loads(capsys.readouterr().out)["planned"]]

    files = plan(f"{bucket}/out")
    assert files and [p for p, _ in files] == [p for p, _ in plan(str(tmp_path / "local"))]
    assert any(p.endswith(".parquet") for p, _ in files)
    MEM.rm(f"/{bucket[9:]}/out/manifest.json")  # the store's dataset is gone: its stale local copy is not published
    assert main(["publish", f"{bucket}/out", "me/x", "--dry-run"]) == 2
    assert "manifest" in capsys.readouterr().err


def test_readers_of_one_copy_take_turns_when_asked_to_wait(bucket: str) -> None:
    """Ranks of one training run on one machine read one local copy: ``read_only(wait=True)`` waits for the
    process pulling it instead of refusing; without ``wait`` a second claim is refused, as for two writers."""
    import threading

    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    mirror = objstore.Mirror(f"{bucket}/out")
    got: list[Path] = []
    with mirror.claimed():
        reader = threading.Thread(target=lambda: got.append(objstore.Mirror(f"{bucket}/out").read_only(wait=True)))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive() and not got  # waiting for the holder
        with pytest.raises(audiodata.errors.OutputError, match="another run on this machine"):
            objstore.Mirror(f"{bucket}/out").read_only()
    reader.join(30)
    assert got == [mirror.base] and (mirror.base / "manifest.json").is_file()


def test_a_wrong_or_damaged_store_dataset_is_named_by_its_url(bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The local copy's folder under the cache means nothing to the user: errors about a dataset read from a store
    name the store's URL (a folder with nothing there, a manifest that does not parse)."""
    for argv in (["info", f"{bucket}/nothing"], ["publish", f"{bucket}/nothing", "me/x", "--dry-run"],
                 ["dedup", f"{bucket}/corpus/a.jsonl", "--against", f"{bucket}/nothing", "--no-progress"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{bucket}/nothing: not a converted dataset" in err and "cache" not in err, argv
    MEM.pipe(f"/{bucket[9:]}/bad/manifest.json", b"{not json")
    assert main(["info", f"{bucket}/bad"]) == 2
    err = capsys.readouterr().err
    assert f"{bucket}/bad/manifest.json: not a readable manifest" in err and f"audiodata verify {bucket}/bad`" in err


def test_publishing_a_store_dataset_without_its_card_names_the_url(bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    audiodata.convert([f"{bucket}/corpus/a.jsonl"], f"{bucket}/out", num_workers=1)
    MEM.rm(f"/{bucket[9:]}/out/README.md")
    capsys.readouterr()
    assert main(["publish", f"{bucket}/out", "me/x", "--dry-run"]) == 2
    assert f"{bucket}/out: no README.md dataset card" in capsys.readouterr().err
